//! A docker-token-server + docker-registry pair on loopback, configured like a docker_auth
//! deployment (static users + ACL), with isolated client state.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use test_support::{
    CmdOutput, Process, Registry, RegistryAuth, TempDir, require_binary, run, run_with_stdin,
    workdir,
};

pub const SERVER: &str = env!("CARGO_BIN_EXE_docker-token-server");
pub const T: Duration = Duration::from_secs(60);

pub const ADMIN_PW: &str = "admin-Secret-1";
pub const ALICE_PW: &str = "alice:Secret with spaces";

/// Options for one environment.
pub struct Opts {
    pub service: &'static str,
    /// Put `token.certificate` in the config (x5c in the header); otherwise kid only.
    pub with_certificate: bool,
    /// `kid_style` to configure.
    pub kid_style: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            service: "test-registry",
            with_certificate: true,
            kid_style: "libtrust",
        }
    }
}

pub struct Env {
    pub dir: TempDir,
    pub server: Process,
    pub token_url: String,
    pub registry: Registry,
    pub service: String,
    pub oci: PathBuf,
}

/// Runs `docker-token-server <args>`.
pub fn cli(args: &[&str]) -> CmdOutput {
    run(Command::new(SERVER).args(args), T)
}

pub fn hash(password: &str) -> String {
    let out = run_with_stdin(
        Command::new(SERVER).args(["hash-password", "--cost", "4"]),
        &format!("{password}\n"),
        T,
    );
    assert!(out.success, "hash-password failed: {}", out.stderr);
    out.stdout.trim().to_owned()
}

pub fn gen_key(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    let out = cli(&["gen-key", "--out-dir", keys.to_str().unwrap()]);
    assert!(out.success, "gen-key failed: {}", out.stderr);
    assert!(out.stdout.contains("kid libtrust"), "{}", out.stdout);
    keys
}

pub fn write_config(dir: &Path, opts: &Opts) -> PathBuf {
    let keys = gen_key(dir);
    let cert_line = if opts.with_certificate {
        format!("  certificate: {}\n", keys.join("token.crt").display())
    } else {
        String::new()
    };
    let yaml = format!(
        r#"# a docker_auth-style configuration: static users + ACL
server:
  addr: "127.0.0.1:0"
token:
  issuer: "test-issuer"
  expiration: 900
{cert_line}  key: {key}
  kid_style: {kid_style}
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
    comment: "admin may do anything"
  - match: {{account: "alice", name: "${{labels:team}}/*"}}
    actions: ["*"]
    comment: "alice owns her team's repositories"
  - match: {{account: "alice", name: "shared/*"}}
    actions: ["pull"]
  - match: {{account: "", name: "demo/*"}}
    actions: ["pull"]
    comment: "anonymous may pull demo/"
"#,
        key = keys.join("token.key").display(),
        kid_style = opts.kid_style,
        admin = hash(ADMIN_PW),
        alice = hash(ALICE_PW),
    );
    let path = dir.join("auth_config.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Sends SIGHUP (a configuration reload) to `pid`.
pub fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP {pid} failed");
}

/// Starts `docker-token-server serve --config <file>` and returns it with its base URL.
pub fn start_server(config: &Path) -> (Process, String) {
    let mut cmd = Command::new(SERVER);
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info");
    let mut server = Process::spawn("docker-token-server", cmd);
    let line = server.wait_for_line("listening on http://", T);
    let url = line.rsplit(' ').next().unwrap().to_owned();
    (server, url)
}

impl Env {
    pub fn start(opts: Opts) -> Self {
        Self::start_edited(opts, |_, yaml| yaml.to_owned())
    }

    /// As [`start`](Self::start), with the configuration text changed by `edit` (which gets
    /// the work directory and the YAML) before the server starts.
    pub fn start_edited(opts: Opts, edit: impl FnOnce(&Path, &str) -> String) -> Self {
        let dir = workdir();
        let config = write_config(dir.path(), &opts);
        let yaml = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, edit(dir.path(), &yaml)).unwrap();
        let (server, base) = start_server(&config);
        let token_url = format!("{base}/auth");
        let registry = Registry::start(
            dir.path(),
            &RegistryAuth {
                realm: &token_url,
                service: opts.service,
                issuer: "test-issuer",
                rootcertbundle: &dir.path().join("keys/token.crt"),
            },
        );
        let oci = test_support::oci_layout(dir.path());
        Self {
            dir,
            server,
            token_url,
            registry,
            service: opts.service.to_owned(),
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
        let dst = format!("docker://{}/{repo}", self.registry.host());
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--dest-creds", c]);
        } else {
            args.push("--dest-no-creds");
        }
        args.extend([src.as_str(), dst.as_str()]);
        self.skopeo(&args)
    }

    /// `skopeo inspect` (a pull of the manifest), with optional credentials.
    pub fn pull(&self, repo: &str, creds: Option<&str>) -> CmdOutput {
        let src = format!("docker://{}/{repo}", self.registry.host());
        let mut args = vec!["inspect", "--tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--creds", c]);
        } else {
            args.push("--no-creds");
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

    /// A raw token request (GET) with optional Basic credentials; returns (status, body JSON).
    pub async fn token(
        &self,
        query: &str,
        basic: Option<(&str, &str)>,
    ) -> (u16, serde_json::Value) {
        let client = reqwest::Client::new();
        let mut req = client.get(format!("{}?{query}", self.token_url));
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.expect("token request");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        )
    }
}

/// Decodes a JWT segment (1 = header, 2 = claims) without verifying.
pub fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    use base64::Engine;
    let seg = token.split('.').nth(index - 1).expect("segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}
