//! A throwaway OpenID Provider: `node provider.mjs` (the `oidc-provider` npm package) on a
//! loopback port, plus a tiny blocking HTTP client for the token, revocation and
//! introspection endpoints.
//!
//! The provider (see `test-support/oidc-provider/provider.mjs`) knows the users
//! `alice`/`alicepw` (groups `dev`, `ops`), `bob`/`bobpw` (`dev`) and `carol`/`carolpw` (none),
//! the clients `registry-ui`/`registry-ui-secret` (password grant, code flow) and
//! `registry`/`registry-secret` (the resource server that may introspect every token), and
//! the resource indicators `urn:example:registry` (JWT access tokens) and
//! `urn:example:registry-opaque` (opaque access tokens with an `aud`). It logs every request
//! as `REQ <METHOD> <path>`, which [`Provider::request_count`] counts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::{Process, require_binary};

/// How to install the provider's npm packages (from the workspace root).
pub const NPM_INSTALL: &str = "npm ci --prefix test-support/oidc-provider";

/// The RP client of the test provider (password grant, authorization code flow).
pub const UI_CLIENT: (&str, &str) = ("registry-ui", "registry-ui-secret");
/// The resource-server client of the test provider: it may introspect every token.
pub const RS_CLIENT: (&str, &str) = ("registry", "registry-secret");
/// The resource indicator that yields JWT access tokens (`aud` = this value).
pub const JWT_RESOURCE: &str = "urn:example:registry";
/// The resource indicator that yields opaque access tokens with this `aud`.
pub const OPAQUE_RESOURCE: &str = "urn:example:registry-opaque";
/// The `kid` of the provider's signing key (a fresh RSA key per start).
pub const PROVIDER_KID: &str = "test-rs256";

/// Options for [`Provider::start_with`].
#[derive(Clone, Debug, Default)]
pub struct ProviderOptions {
    /// Access-token lifetime in seconds (`AT_TTL`); the provider's default is 3600.
    pub access_token_ttl: Option<u64>,
    /// A fixed port; `None` lets the OS choose.
    pub port: Option<u16>,
    /// Extra redirect URIs of the `registry-ui` client (`RP_REDIRECT_URIS`), e.g. the
    /// callback of a server under test on its own port.
    pub rp_redirect_uris: Vec<String>,
}

/// A running `oidc-provider`, killed on drop.
#[derive(Debug)]
pub struct Provider {
    /// The issuer, `http://127.0.0.1:<port>`.
    pub issuer: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    options: ProviderOptions,
    process: Option<Process>,
}

/// The directory of `provider.mjs` and `browser-login.mjs` (and their `node_modules`).
#[must_use]
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

impl Provider {
    /// Starts the provider on a free port with default options.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(ProviderOptions::default())
    }

    /// Starts the provider. Panics (with the install command) when `node` or the npm
    /// packages are missing, and when the provider does not report READY in 20 s.
    #[must_use]
    pub fn start_with(options: ProviderOptions) -> Self {
        let (process, issuer, port) = spawn(&options);
        Self {
            issuer,
            port,
            options: ProviderOptions {
                port: Some(port),
                ..options
            },
            process: Some(process),
        }
    }

    /// Stops the provider (SIGTERM, then SIGKILL on drop of the guard).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.terminate(Duration::from_secs(5));
        }
    }

    /// Starts it again on the same port (with fresh keys and no tokens: its state is in memory).
    pub fn restart(&mut self) {
        self.stop();
        let (process, issuer, port) = spawn(&self.options);
        assert_eq!(port, self.port, "restart must reuse the port");
        self.issuer = issuer;
        self.process = Some(process);
    }

    /// Everything the provider printed so far.
    #[must_use]
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(Process::output)
            .unwrap_or_default()
    }

    /// How many `method path` requests the provider has received (paths without query).
    #[must_use]
    ///
    /// The provider logs each request before answering it, but its output is read by another
    /// thread; so this first sends a marker request and waits until the marker's line is
    /// captured: every earlier request's line is then captured, too.
    pub fn request_count(&self, method: &str, path: &str) -> usize {
        static MARKERS: AtomicUsize = AtomicUsize::new(0);
        if let Some(process) = &self.process {
            let marker = format!(
                "/__count-marker/{}",
                MARKERS.fetch_add(1, Ordering::Relaxed)
            );
            let (status, _) = send(
                self.port,
                &format!(
                    "GET {marker} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.port
                ),
            );
            assert_ne!(status, 0, "the provider did not answer the marker request");
            let needle = format!("REQ GET {marker}");
            let deadline = Instant::now() + Duration::from_secs(5);
            while !process.output().lines().any(|l| l == needle) {
                assert!(
                    Instant::now() < deadline,
                    "the provider did not log {marker}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let needle = format!("REQ {method} {path}");
        self.output().lines().filter(|l| *l == needle).count()
    }

    /// A token from the provider's (non-standard) password grant for `registry-ui`.
    /// `resource` selects the token format (see [`JWT_RESOURCE`], [`OPAQUE_RESOURCE`]).
    /// Returns the token endpoint's JSON; panics on an HTTP error.
    #[must_use]
    pub fn password_grant(
        &self,
        user: &str,
        password: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> serde_json::Value {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("scope", scope),
        ];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let (status, body) = post_form(self.port, "/token", UI_CLIENT, &form);
        assert_eq!(status, 200, "password grant failed: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("token response is not JSON ({e}): {body}"))
    }

    /// The `access_token` of [`password_grant`](Self::password_grant).
    #[must_use]
    pub fn access_token(&self, user: &str, password: &str, resource: Option<&str>) -> String {
        let scope = if resource.is_some() {
            "pull push"
        } else {
            "openid groups"
        };
        let v = self.password_grant(user, password, scope, resource);
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {v}"))
            .to_owned()
    }

    /// A `client_credentials` token of `registry-ui` (a token without a user).
    #[must_use]
    pub fn client_credentials_token(&self) -> String {
        let (status, body) = post_form(
            self.port,
            "/token",
            UI_CLIENT,
            &[("grant_type", "client_credentials")],
        );
        assert_eq!(status, 200, "client_credentials failed: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }

    /// Revokes a token of `registry-ui` (RFC 7009).
    pub fn revoke(&self, token: &str) {
        let (status, body) = post_form(
            self.port,
            "/token/revocation",
            UI_CLIENT,
            &[("token", token)],
        );
        assert_eq!(status, 200, "revocation failed: {body}");
    }

    /// Introspects a token as the resource server; returns (status, body).
    #[must_use]
    pub fn introspect(&self, token: &str) -> (u16, String) {
        post_form(
            self.port,
            "/token/introspection",
            RS_CLIENT,
            &[("token", token)],
        )
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(options: &ProviderOptions) -> (Process, String, u16) {
    let node = require_binary(
        "node",
        "apt-get install nodejs npm (Node 20.19+), then `npm ci --prefix test-support/oidc-provider`",
    );
    let dir = provider_dir();
    assert!(
        dir.join("node_modules").join("oidc-provider").is_dir(),
        "the OIDC test provider's npm packages are not installed in {}. Install them with `{NPM_INSTALL}` \
         (from the workspace root; or run {}, which installs every test peer)",
        dir.display(),
        crate::INSTALL_ALL
    );
    let make_cmd = || {
        let mut cmd = Command::new(&node);
        cmd.arg("provider.mjs")
            .current_dir(&dir)
            .env("PORT", options.port.unwrap_or(0).to_string());
        if let Some(ttl) = options.access_token_ttl {
            cmd.env("AT_TTL", ttl.to_string());
        }
        if !options.rp_redirect_uris.is_empty() {
            cmd.env("RP_REDIRECT_URIS", options.rp_redirect_uris.join(","));
        }
        cmd
    };
    // the same port may still be in TIME_WAIT / being released right after a stop: retry briefly
    let mut last = String::new();
    for _attempt in 0..20 {
        let mut process = Process::spawn("oidc-provider", make_cmd());
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            process.wait_for_line("READY ", Duration::from_secs(20))
        })) {
            Ok(line) => {
                let issuer = line.trim_start_matches("READY ").trim().to_owned();
                let port = issuer
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("bad READY line {line:?}"));
                return (process, issuer, port);
            }
            Err(_) if process.output().contains("EADDRINUSE") => {
                last = process.output();
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => std::panic::resume_unwind(e),
        }
    }
    panic!("oidc-provider: port still in use after 20 attempts:\n{last}");
}

/// A minimal blocking HTTP/1.1 POST with a form body and client_secret_basic to 127.0.0.1.
/// Returns (status, body).
#[must_use]
pub fn post_form(
    port: u16,
    path: &str,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.0, client.1));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    send(port, &request)
}

/// Sends a raw HTTP/1.1 request (with `Connection: close`) and returns (status, body).
fn send(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let (head, rest) = raw.split_at(split);
    let head = String::from_utf8_lossy(head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
