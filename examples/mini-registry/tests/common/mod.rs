//! docker-token-mini-registry on loopback, with its tokens from a separate docker-token-server
//! process or from its own embedded token service, and isolated client state.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use docker_token_core::{Algorithm, SigningKey};
use test_support::{CmdOutput, Process, TempDir, require_binary, run, workdir};

pub const REGISTRY: &str = env!("CARGO_BIN_EXE_docker-token-mini-registry");
pub const T: Duration = Duration::from_secs(60);
pub const SERVICE: &str = "mini registry";
pub const ISSUER: &str = "test-issuer";

pub const ADMIN_PW: &str = "admin-Secret-1";
pub const ALICE_PW: &str = "alice:Secret with spaces";

/// Writes `token.key` and `token.crt` (ES256) into `dir/<name>/`; returns that directory.
pub fn gen_key(dir: &Path, name: &str) -> PathBuf {
    let keys = dir.join(name);
    std::fs::create_dir_all(&keys).unwrap();
    let generated = SigningKey::generate(Algorithm::ES256, "mini-registry-test").unwrap();
    std::fs::write(keys.join("token.key"), generated.key_pem.expose()).unwrap();
    std::fs::write(keys.join("token.crt"), &generated.certificate_pem).unwrap();
    keys
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// docker_auth's `token:`, `users:` and `acl:` sections — the same text for
/// docker-token-server and for the mini-registry's single-process mode.
pub fn auth_sections(keys: &Path) -> String {
    format!(
        r#"token:
  issuer: "{ISSUER}"
  expiration: 900
  certificate: {cert}
  key: {key}
users:
  admin:
    password: "{admin}"
  alice:
    password: "{alice}"
    labels:
      team: ["demo"]
  "": {{}}
acl:
  - match: {{account: "admin"}}
    actions: ["*"]
  - match: {{account: "alice", name: "${{labels:team}}/*"}}
    actions: ["*"]
  - match: {{account: "alice", name: "shared/*"}}
    actions: ["pull"]
  - match: {{account: "", name: "demo/*"}}
    actions: ["pull"]
    comment: "anonymous may pull demo/"
"#,
        cert = keys.join("token.crt").display(),
        key = keys.join("token.key").display(),
        admin = hash(ADMIN_PW),
        alice = hash(ALICE_PW),
    )
}

/// Starts a binary with `--config`-style args and waits for its "listening on http://" line;
/// returns the process and the URL.
fn start(name: &str, cmd: Command) -> (Process, String) {
    let mut p = Process::spawn(name, cmd);
    let line = p.wait_for_line("listening on http://", T);
    let url = line.rsplit(' ').next().unwrap().to_owned();
    (p, url)
}

/// docker-token-server with `sections`; returns it and its base URL.
pub fn start_token_server(dir: &Path, sections: &str) -> (Process, String) {
    let bin = test_support::workspace_binary("docker-token-server", "docker-token-server");
    let path = dir.join("auth_config.yml");
    std::fs::write(
        &path,
        format!("server:\n  addr: \"127.0.0.1:0\"\n{sections}"),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info");
    start("docker-token-server", cmd)
}

/// The mini-registry with the YAML `config`; returns it and `127.0.0.1:<port>`.
pub fn start_registry(dir: &Path, file: &str, config: &str) -> (Process, String) {
    let path = dir.join(file);
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(REGISTRY);
    cmd.arg("--config").arg(&path).env("RUST_LOG", "info");
    let (p, url) = start("docker-token-mini-registry", cmd);
    (p, url.trim_start_matches("http://").to_owned())
}

/// Which way the registry gets its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// docker-token-server in its own process; the registry reads its JWKS URL.
    Separate,
    /// The registry embeds the token service.
    SingleProcess,
}

pub struct Env {
    pub dir: TempDir,
    pub keys: PathBuf,
    pub server: Option<Process>,
    pub registry: Process,
    /// `127.0.0.1:<port>` of the registry.
    pub host: String,
    /// The token endpoint (the challenge's realm).
    pub token_url: String,
    /// Base URL of the token server (`http://127.0.0.1:<port>`).
    pub token_base: String,
    pub oci: PathBuf,
}

impl Env {
    pub fn start(mode: Mode) -> Self {
        Self::start_with(mode, "")
    }

    /// `extra_auth` is appended to the registry's `auth:` section (e.g. `  jwks_refresh: 1\n`).
    pub fn start_with(mode: Mode, extra_auth: &str) -> Self {
        Self::start_full(mode, "", extra_auth)
    }

    /// `extra_registry` is appended to the registry's `registry:` section.
    pub fn start_with_registry(mode: Mode, extra_registry: &str) -> Self {
        Self::start_full(mode, extra_registry, "")
    }

    fn start_full(mode: Mode, extra_registry: &str, extra_auth: &str) -> Self {
        let dir = workdir();
        let keys = gen_key(dir.path(), "keys");
        let sections = auth_sections(&keys);
        let (server, registry, host, token_base) = match mode {
            Mode::Separate => {
                let (server, base) = start_token_server(dir.path(), &sections);
                let config = format!(
                    "registry:\n  addr: \"127.0.0.1:0\"\n{extra_registry}auth:\n  realm: \"{base}/auth\"\n  service: \"{SERVICE}\"\n  issuer: \"{ISSUER}\"\n  jwks_url: \"{base}/.well-known/jwks.json\"\n{extra_auth}"
                );
                let (registry, host) = start_registry(dir.path(), "registry.yml", &config);
                (Some(server), registry, host, base)
            }
            Mode::SingleProcess => {
                let config = format!(
                    "registry:\n  addr: \"127.0.0.1:0\"\n{extra_registry}auth:\n  service: \"{SERVICE}\"\n{extra_auth}{sections}"
                );
                let (registry, host) = start_registry(dir.path(), "registry.yml", &config);
                let base = format!("http://{host}");
                (None, registry, host, base)
            }
        };
        let oci = test_support::oci_layout(dir.path());
        Self {
            token_url: format!("{token_base}/auth"),
            dir,
            keys,
            server,
            registry,
            host,
            token_base,
            oci,
        }
    }

    pub fn skopeo(&self, args: &[&str]) -> CmdOutput {
        let bin = require_binary("skopeo", "apt-get install skopeo");
        run(
            Command::new(bin)
                .args(args)
                .env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json")),
            T,
        )
    }

    /// `skopeo copy` of the test image to `repo:tag`, with optional credentials.
    pub fn push(&self, repo: &str, creds: Option<&str>) -> CmdOutput {
        let src = format!("oci:{}:latest", self.oci.display());
        let dst = format!("docker://{}/{repo}", self.host);
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        match creds {
            Some(c) => args.extend(["--dest-creds", c]),
            None => args.push("--dest-no-creds"),
        }
        args.extend([src.as_str(), dst.as_str()]);
        self.skopeo(&args)
    }

    /// `skopeo inspect` (manifest and config pull), with optional credentials.
    pub fn pull(&self, repo: &str, creds: Option<&str>) -> CmdOutput {
        let src = format!("docker://{}/{repo}", self.host);
        let mut args = vec!["inspect", "--tls-verify=false"];
        match creds {
            Some(c) => args.extend(["--creds", c]),
            None => args.push("--no-creds"),
        }
        args.push(src.as_str());
        self.skopeo(&args)
    }

    pub fn admin() -> String {
        format!("admin:{ADMIN_PW}")
    }

    pub fn alice() -> String {
        format!("alice:{ALICE_PW}")
    }

    /// A token from the token endpoint (GET) with optional Basic credentials.
    pub async fn token(&self, query: &str, basic: Option<(&str, &str)>) -> String {
        let mut req = reqwest::Client::new().get(format!("{}?{query}", self.token_url));
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.expect("token request");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Everything the processes logged so far.
    pub fn logs(&self) -> String {
        let mut s = self.registry.output();
        if let Some(server) = &self.server {
            s.push('\n');
            s.push_str(&server.output());
        }
        s
    }
}
