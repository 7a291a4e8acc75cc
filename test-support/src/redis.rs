//! A throwaway `redis-server` (Debian `redis-server`) on a free loopback port, with its data
//! in a temporary directory; killed on drop.
//!
//! The server keeps an append-only file, so [`RedisServer::stop`] followed by
//! [`RedisServer::start_again`] (same port, same directory) brings the data back — the way a
//! restarted production Redis does. [`RedisServer::cli`] runs `redis-cli` against it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{CmdOutput, Process, TempDir, free_port, require_binary, run, workdir};

const INSTALL: &str = "apt-get install redis-server";

/// A running (or stopped) test Redis.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1 (the TLS port with [`RedisServer::start_tls`]).
    pub port: u16,
    dir: TempDir,
    bin: PathBuf,
    process: Option<Process>,
    tls: bool,
}

impl RedisServer {
    /// Starts `redis-server` on a free port. Panics (naming the package) when it is not
    /// installed.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts `redis-server` speaking TLS only, with a certificate for `127.0.0.1` signed by
    /// a throwaway CA ([`RedisServer::ca_file`]); needs `openssl`.
    #[must_use]
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let bin = require_binary("redis-server", INSTALL);
        let mut dir = workdir();
        if tls {
            // ca.crt, server.crt (localhost, 127.0.0.1), server.key
            crate::slapd::make_tls(dir.path());
        }
        for _attempt in 0..3 {
            let mut s = Self {
                port: free_port(),
                dir,
                bin: bin.clone(),
                process: None,
                tls,
            };
            match s.spawn() {
                Ok(()) => return s,
                Err(output) if output.contains("Address already in use") => {
                    dir = s.dir;
                }
                Err(output) => panic!("redis-server did not start; output:\n{output}"),
            }
        }
        panic!("redis-server: no free port after 3 attempts");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.bin);
        if self.tls {
            let file = |n: &str| self.dir.path().join(n).display().to_string();
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-cert-file", &file("server.crt")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.crt")])
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--loglevel",
            "notice",
        ])
        .arg("--dir")
        .arg(self.dir.path());
        let mut process = Process::spawn("redis-server", cmd);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if process.output().contains("Ready to accept connections") {
                self.process = Some(process);
                return Ok(());
            }
            if process.has_exited() || std::time::Instant::now() > deadline {
                return Err(process.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` with TLS).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA certificate (PEM) that signed the TLS server's certificate.
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Stops it (SIGTERM: the append-only file is complete); the port stays reserved in
    /// spirit, nothing else is started on it by this guard.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(10));
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "redis-server is still running");
        if let Err(output) = self.spawn() {
            panic!("redis-server did not restart; output:\n{output}");
        }
    }

    /// Runs `redis-cli -p <port> <args…>` (needs the `redis-tools` package, a dependency of
    /// `redis-server`).
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        let bin = require_binary("redis-cli", INSTALL);
        let mut cmd = Command::new(bin);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.tls {
            cmd.arg("--tls").arg("--cacert").arg(self.ca_file());
        }
        run(cmd.args(args), Duration::from_secs(30))
    }

    /// What the server printed so far.
    #[must_use]
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(Process::output)
            .unwrap_or_default()
    }
}
