//! Helpers for integration tests that run real peers on loopback.
//!
//! Every peer is started on a free 127.0.0.1 port, owned as a child process, and killed when
//! its guard drops. A missing peer binary makes the test **fail** with the install command;
//! it never passes silently.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod oidc;
pub mod refresh_store;
pub mod stub;

// the core types `stub` names through `super::` (see its module docs)
use docker_token_core::{Authenticator, AuthnOutcome, BackendError, Identity, LoginAttempt};

pub use tempfile::TempDir;

pub mod redis;
pub mod slapd;

/// How to install every peer at once.
pub const INSTALL_ALL: &str = "./scripts/install-peers.sh";

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
#[must_use]
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// The path of `binary`, or a panic that says how to install it.
#[must_use]
pub fn require_binary(binary: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "this test needs `{binary}`, which is not installed. Install it with `{install}` \
         (or run {INSTALL_ALL}, which installs every test peer)"
    );
}

/// A fresh temporary directory, removed on drop.
#[must_use]
pub fn workdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("docker-token-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
#[must_use]
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Output lines captured from a child process (stdout and stderr, interleaved).
pub type Lines = Arc<Mutex<Vec<String>>>;

fn capture(stream: impl Read + Send + 'static, lines: Lines, tag: &'static str) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("DOCKER_TOKEN_TEST_VERBOSE").is_some() {
                eprintln!("[{tag}] {line}");
            }
            lines.lock().expect("lines lock").push(line);
        }
    });
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    lines: Lines,
}

impl Process {
    /// Spawns `command` with stdout and stderr captured.
    #[must_use]
    pub fn spawn(name: &str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines: Lines = Arc::default();
        if let Some(out) = child.stdout.take() {
            capture(out, lines.clone(), "stdout");
        }
        if let Some(err) = child.stderr.take() {
            capture(err, lines.clone(), "stderr");
        }
        Self {
            name: name.to_owned(),
            child: Some(child),
            lines,
        }
    }

    /// Everything the process printed so far.
    #[must_use]
    pub fn output(&self) -> String {
        self.lines.lock().expect("lines lock").join("\n")
    }

    /// Waits until a printed line contains `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .expect("lines lock")
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited ({status}) before printing {needle:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {needle:?} in {timeout:?}; output:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process has exited (it is reaped then).
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// The OS process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The Debian `docker-registry` (distribution 2.8.2) with `auth: token`.
#[derive(Debug)]
pub struct Registry {
    /// Its port on 127.0.0.1.
    pub port: u16,
    process: Process,
}

/// How the registry trusts tokens.
#[derive(Debug, Clone)]
pub struct RegistryAuth<'a> {
    /// The token endpoint URL (`auth.token.realm`).
    pub realm: &'a str,
    /// `auth.token.service`, the tokens' audience.
    pub service: &'a str,
    /// `auth.token.issuer`.
    pub issuer: &'a str,
    /// `auth.token.rootcertbundle`.
    pub rootcertbundle: &'a Path,
}

impl Registry {
    /// Starts a registry storing its data under `dir`.
    #[must_use]
    pub fn start(dir: &Path, auth: &RegistryAuth<'_>) -> Self {
        let bin = require_binary("docker-registry", "apt-get install docker-registry");
        let q = |s: &str| format!("{s:?}"); // JSON strings are valid YAML scalars
        for _attempt in 0..3 {
            let port = free_port();
            let config = dir.join(format!("registry-{port}.yml"));
            let yaml = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: loopback-only-test-secret\nauth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {bundle}\n",
                root = q(&dir.join("registry-data").display().to_string()),
                realm = q(auth.realm),
                service = q(auth.service),
                issuer = q(auth.issuer),
                bundle = q(&auth.rootcertbundle.display().to_string()),
            );
            std::fs::write(&config, yaml).expect("write registry config");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve").arg(&config);
            let process = Process::spawn("docker-registry", cmd);
            if wait_for_port(port, Duration::from_secs(10)) {
                return Self { port, process };
            }
            if process.output().contains("address already in use") {
                continue;
            }
            panic!(
                "docker-registry did not start; output:\n{}",
                process.output()
            );
        }
        panic!("docker-registry: no free port after 3 attempts");
    }

    /// `127.0.0.1:<port>`, as clients write it in image references.
    #[must_use]
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the registry logged so far.
    #[must_use]
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// Builds a tiny single-layer OCI image layout at `dir/oci` (tag `latest`) with coreutils,
/// tar and gzip only; returns its path.
#[must_use]
pub fn oci_layout(dir: &Path) -> PathBuf {
    let script = r#"set -eu
mkdir -p src oci/blobs/sha256
echo "hello from a hand-made OCI image" > src/hello.txt
tar --sort=name --mtime='2020-01-01 00:00Z' --owner=0 --group=0 --numeric-owner -C src -cf layer.tar hello.txt
DIFF_ID=$(sha256sum layer.tar | cut -d' ' -f1)
gzip -n -9 -c layer.tar > layer.tar.gz
L_DIG=$(sha256sum layer.tar.gz | cut -d' ' -f1); L_SIZE=$(stat -c %s layer.tar.gz); cp layer.tar.gz oci/blobs/sha256/$L_DIG
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$DIFF_ID" > config.json
C_DIG=$(sha256sum config.json | cut -d' ' -f1); C_SIZE=$(stat -c %s config.json); cp config.json oci/blobs/sha256/$C_DIG
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' "$C_DIG" "$C_SIZE" "$L_DIG" "$L_SIZE" > manifest.json
M_DIG=$(sha256sum manifest.json | cut -d' ' -f1); M_SIZE=$(stat -c %s manifest.json); cp manifest.json oci/blobs/sha256/$M_DIG
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' "$M_DIG" "$M_SIZE" > oci/index.json
printf '{"imageLayoutVersion":"1.0.0"}' > oci/oci-layout
"#;
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .expect("run sh");
    assert!(status.success(), "building the OCI layout failed");
    dir.join("oci")
}

/// The result of a client command.
#[derive(Debug)]
pub struct CmdOutput {
    /// Whether it exited 0.
    pub success: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs a client command to completion (with a timeout), capturing its output; stdin is
/// closed at once.
#[must_use]
pub fn run(command: &mut Command, timeout: Duration) -> CmdOutput {
    run_with_stdin(command, "", timeout)
}

/// Runs a command with `input` on stdin (then closed), capturing its output.
#[must_use]
pub fn run_with_stdin(command: &mut Command, input: &str, timeout: Duration) -> CmdOutput {
    use std::io::Write;
    let rendered = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {rendered}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{rendered} did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if std::env::var_os("DOCKER_TOKEN_TEST_VERBOSE").is_some() {
        eprintln!("$ {rendered}\n-> {status}\n{stdout}\n{stderr}");
    }
    CmdOutput {
        success: status.success(),
        stdout,
        stderr,
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// The path of binary `binary` of workspace package `package`, for tests of *another*
/// package (Cargo only gives a test the binaries of its own package). The binary is looked up
/// next to the running test's profile directory (`target/<profile>/`); if it is not there it
/// is built once with `cargo build -p <package> --bin <binary>` for that profile. A workspace
/// run (`cargo nextest run --workspace`) builds it with everything else, so it is fresh.
#[must_use]
pub fn workspace_binary(package: &str, binary: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join(binary);
    let _guard = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if path.is_file() {
        return path;
    }
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", binary])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().expect("run cargo build");
    assert!(
        status.success() && path.is_file(),
        "cannot build `{binary}` of package `{package}`; run `cargo build -p {package}` first"
    );
    path
}

/// Panics with the command's output unless it succeeded.
pub fn assert_ok(what: &str, out: &CmdOutput) {
    assert!(
        out.success,
        "{what} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
}

/// Panics unless the command failed with an authentication/authorization error (as skopeo,
/// podman and docker word a registry's 401).
pub fn assert_auth_failure(what: &str, out: &CmdOutput) {
    assert!(
        !out.success,
        "{what} should have failed but succeeded: {}",
        out.stdout
    );
    let e = out.stderr.to_lowercase();
    assert!(
        e.contains("unauthorized")
            || e.contains("authentication required")
            || e.contains("denied")
            || e.contains("invalid username/password"),
        "{what}: expected an auth error, got: {}",
        out.stderr
    );
}
