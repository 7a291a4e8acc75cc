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

/// A minimal cookie-keeping HTTP client that does not follow redirects (curl-style flow).
pub struct Browser {
    pub client: reqwest::Client,
    pub cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: std::collections::BTreeMap::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            if value.is_empty() || v.contains("Max-Age=0") || v.contains("expires=Thu, 01 Jan 1970")
            {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let r = self
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    pub async fn post_form(&mut self, url: &str, form: &str) -> reqwest::Response {
        let r = self
            .client
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    /// `GET /oidc_auth`: the authorization URL (and our cookie in the jar).
    pub async fn start(&mut self, base: &str) -> String {
        let r = self.get(&format!("{base}/oidc_auth")).await;
        assert_eq!(r.status(), 302);
        location(&r)
    }

    /// Signs in at the provider; returns the callback URL it redirects to (not followed).
    pub async fn idp_login(&mut self, auth_url: &str, user: &str, pw: &str, stop: &str) -> String {
        let mut r = self.get(auth_url).await;
        for _ in 0..10 {
            if r.status().is_redirection() {
                let loc = location(&r);
                if loc.starts_with(stop) {
                    return loc;
                }
                r = self.get(&loc).await;
            } else if r.status() == 200 && r.url().path().starts_with("/interaction/") {
                let url = format!("{}/login", r.url().as_str().split('?').next().unwrap());
                r = self
                    .post_form(&url, &format!("username={user}&password={pw}"))
                    .await;
            } else {
                let (status, url) = (r.status(), r.url().clone());
                panic!("unexpected {status} at {url}: {}", r.text().await.unwrap());
            }
        }
        panic!("too many redirects");
    }

    pub async fn callback(&mut self, url: &str) -> (u16, String) {
        let r = self.get(url).await;
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

pub fn location(r: &reqwest::Response) -> String {
    let loc = r.headers()[reqwest::header::LOCATION].to_str().unwrap();
    r.url().join(loc).unwrap().to_string()
}

pub fn password_of(page: &str) -> String {
    let start = page
        .find("<code id=\"password\">")
        .expect("password on the page")
        + 20;
    page[start..].split('<').next().unwrap().to_owned()
}

/// An `application/x-www-form-urlencoded` body, every value percent-encoded (RFC 3986
/// unreserved characters kept), as a real client sends it.
pub fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
