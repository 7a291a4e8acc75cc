//! The server under test: keys, configuration files, and the process.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bcrypt cost-5 user of every configuration.
pub(crate) const USER: &str = "alice";
/// Its password.
pub(crate) const PASSWORD: &str = "load-test-secret";

/// Runs a command, failing with its output.
pub(crate) fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `cargo build --release -p docker-token-server`; returns the binary's path.
pub(crate) fn build_server() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("load: building docker-token-server (release)…");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "docker-token-server"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release -p docker-token-server failed".to_owned());
    }
    // this binary and the server share target/release
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .map(|d| d.join("docker-token-server"))
        .filter(|p| p.is_file())
        .ok_or("docker-token-server not found next to the load binary")?;
    Ok(bin)
}

/// An ES256 key and certificate from `gen-key`.
pub(crate) fn es256_key(server: &Path, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let out = dir.join("es256");
    run(Command::new(server)
        .args(["gen-key", "--out-dir"])
        .arg(&out))?;
    Ok((out.join("token.key"), out.join("token.crt")))
}

/// An RSA-4096 key and a self-signed certificate (gen-key makes 2048-bit keys).
pub(crate) fn rsa4096_key(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let key = dir.join("rsa4096.key");
    let crt = dir.join("rsa4096.crt");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:4096",
            "-out",
        ])
        .arg(&key))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=load-bench",
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt))?;
    Ok((key, crt))
}

/// What differs between the configurations.
pub(crate) struct Variant<'a> {
    pub(crate) key: &'a Path,
    pub(crate) cert: &'a Path,
    /// `users:` (with the bcrypt user and anonymous) unless `ldap` is set.
    pub(crate) ldap: Option<String>,
    /// A `credential_cache:` section, if any.
    pub(crate) credential_cache: Option<&'a str>,
    /// `token.reuse_window` in seconds (0: off).
    pub(crate) reuse_window: u64,
    /// `server.metrics: {enabled: true}` (Prometheus recorder on, `/metrics` served).
    pub(crate) metrics: bool,
}

/// A docker_auth-style configuration: the variant's key and users, a 20-rule ACL whose
/// matching rules come last.
pub(crate) fn config(
    dir: &Path,
    name: &str,
    port: u16,
    v: &Variant<'_>,
) -> Result<PathBuf, String> {
    let mut y = String::new();
    let _ = write!(
        y,
        "server:\n  addr: \"127.0.0.1:{port}\"\n{}token:\n  issuer: load-bench\n  expiration: 900\n  key: {}\n  certificate: {}\n",
        if v.metrics {
            "  metrics: {enabled: true}\n"
        } else {
            ""
        },
        v.key.display(),
        v.cert.display()
    );
    if v.reuse_window > 0 {
        let _ = writeln!(y, "  reuse_window: {}", v.reuse_window);
    }
    match &v.ldap {
        Some(section) => y.push_str(section),
        None => {
            let hash = bcrypt::hash(PASSWORD, 5).map_err(|e| e.to_string())?;
            let _ = write!(
                y,
                "users:\n  {USER}:\n    password: \"{hash}\"\n    labels: {{team: [demo]}}\n  \"\": {{}}\n"
            );
        }
    }
    if let Some(c) = v.credential_cache {
        let _ = writeln!(y, "credential_cache: {c}");
    }
    y.push_str("acl:\n");
    for i in 0..17 {
        let rule = match i % 3 {
            0 => format!(
                "{{match: {{account: user{i}, name: \"team{i}/*\"}}, actions: [pull, push]}}"
            ),
            1 => format!(
                "{{match: {{account: \"/^svc-[0-9]+$/\", name: \"svc{i}/*\"}}, actions: [pull]}}"
            ),
            _ => format!(
                "{{match: {{account: \"/.+/\", name: \"${{account}}/*\", labels: {{group: g{i}}}}}, actions: [\"*\"]}}"
            ),
        };
        let _ = writeln!(y, "  - {rule}");
    }
    y.push_str("  - {match: {account: \"/.+/\", name: \"${labels:group}/*\"}, actions: [pull, push], comment: LDAP groups}\n");
    y.push_str("  - {match: {account: alice, name: \"${labels:team}/*\"}, actions: [\"*\"], comment: team}\n");
    y.push_str("  - {match: {account: \"\", name: \"demo/*\"}, actions: [pull], comment: anonymous pull}\n");
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, y).map_err(|e| e.to_string())?;
    Ok(path)
}

/// A running docker-token-server; SIGTERM (then SIGKILL) on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts `serve --config <config>` with `RUST_LOG=<log>`, logs to `<config>.log`, and
    /// waits until it answers `/healthz`.
    pub(crate) fn start(bin: &Path, config: &Path, port: u16, log: &str) -> Result<Self, String> {
        let child = spawn(bin, config, log)?;
        let mut me = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(me.addr, "/healthz", None).ok() != Some(200) {
            if let Ok(Some(status)) = me.child.try_wait() {
                return Err(format!(
                    "the server exited ({status}); see {}.log",
                    config.display()
                ));
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(config.with_extension("log")).unwrap_or_default();
                return Err(format!(
                    "the server did not answer /healthz on {} within 30 s (last: {:?}); its log:\n{log}",
                    me.addr,
                    get(me.addr, "/healthz", None)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        me.child.try_wait().map_err(|e| e.to_string())?;
        Ok(me)
    }

    /// The peak resident set size so far (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn(bin: &Path, config: &Path, log: &str) -> Result<Child, String> {
    let log_file =
        std::fs::File::create(config.with_extension("log")).map_err(|e| e.to_string())?;
    Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))
}

/// One `GET` on a fresh connection; the status.
pub(crate) fn get(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no HTTP status".to_owned())
}

/// The Basic header of the load user.
pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
