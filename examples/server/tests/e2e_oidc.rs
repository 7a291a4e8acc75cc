//! The OIDC sections end to end: docker-token-server + the real `oidc-provider` + the real
//! registry, with a real headless Chromium (playwright-core) for the browser login, the docker
//! CLI and skopeo as clients.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Browser, T, gen_key, password_of, start_server};
use test_support::oidc::{JWT_RESOURCE, Provider, ProviderOptions, provider_dir};
use test_support::{
    CmdOutput, Process, Registry, RegistryAuth, TempDir, free_port, require_binary, run,
    run_with_stdin, workdir,
};

const SERVICE: &str = "oidc-registry";

struct OidcEnv {
    dir: TempDir,
    provider: Provider,
    server: Process,
    config: PathBuf,
    base: String,
    registry: Registry,
    oci: PathBuf,
}

impl OidcEnv {
    /// `revalidate_after` of the browser login (e.g. "1h", "2s").
    fn start(revalidate_after: &str) -> Self {
        let dir = workdir();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let provider = Provider::start_with(ProviderOptions {
            rp_redirect_uris: vec![format!("{base}/oidc_auth/callback")],
            ..Default::default()
        });
        let keys = gen_key(dir.path());
        let config = dir.path().join("auth_config.yml");
        let yaml = format!(
            r#"server:
  addr: "127.0.0.1:{port}"
token:
  issuer: "test-issuer"
  expiration: 900
  certificate: {cert}
  key: {key}
oidc_auth:
  issuer: "{issuer}"
  redirect_url: "{base}/oidc_auth/callback"
  client_id: registry-ui
  client_secret: registry-ui-secret
  scopes: [openid, profile, email, groups, offline_access]
  user_claim: preferred_username
  labels_claims: [groups]
  registry_url: "registry.test.example"
  revalidate_after: "{revalidate_after}"
  level_token_db:
    path: {db}
oidc_token_auth:
  issuer: "{issuer}"
  client_id: registry
  client_secret: registry-secret
  user_claim: sub
  label_claims: [groups]
  audiences: ["{JWT_RESOURCE}"]
acl:
  - match: {{account: "/.+/", name: "${{labels:groups}}/*"}}
    actions: ["*"]
    comment: "members of a group own the group's repositories"
"#,
            cert = keys.join("token.crt").display(),
            key = keys.join("token.key").display(),
            issuer = provider.issuer,
            db = dir.path().join("state/oidc.redb").display(),
        );
        std::fs::write(&config, yaml).unwrap();
        let (server, url) = start_server(&config);
        assert_eq!(url, base);
        let registry = Registry::start(
            dir.path(),
            &RegistryAuth {
                realm: &format!("{base}/auth"),
                service: SERVICE,
                issuer: "test-issuer",
                rootcertbundle: &keys.join("token.crt"),
            },
        );
        let oci = test_support::oci_layout(dir.path());
        Self {
            dir,
            provider,
            server,
            config,
            base,
            registry,
            oci,
        }
    }

    fn restart_server(&mut self) {
        self.server.terminate(T);
        let (server, url) = start_server(&self.config);
        assert_eq!(url, self.base);
        self.server = server;
    }

    fn skopeo(&self, args: &[&str]) -> CmdOutput {
        let bin = require_binary("skopeo", "apt-get install skopeo");
        run(
            Command::new(bin)
                .args(args)
                .env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json")),
            T,
        )
    }

    fn push(&self, repo: &str, user: &str, password: &str) -> CmdOutput {
        let src = format!("oci:{}:latest", self.oci.display());
        let dst = format!("docker://{}/{repo}", self.registry.host());
        let creds = format!("{user}:{password}");
        self.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &src,
            &dst,
        ])
    }

    fn docker_login(&self, user: &str, password: &str) -> CmdOutput {
        let docker = require_binary("docker", "apt-get install docker.io (only the CLI is used)");
        let cfg = self.dir.path().join("dockercfg");
        std::fs::create_dir_all(&cfg).unwrap();
        run_with_stdin(
            Command::new(docker)
                .args([
                    "login",
                    &self.registry.host(),
                    "-u",
                    user,
                    "--password-stdin",
                ])
                .env("DOCKER_CONFIG", &cfg),
            &format!("{password}\n"),
            T,
        )
    }

    async fn sign_out(&self, user: &str, password: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/oidc_auth/sign_out", self.base))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn assert_ok(what: &str, out: &CmdOutput) {
    assert!(
        out.success,
        "{what} failed:\n{}\n{}",
        out.stdout, out.stderr
    );
}

/// The browser login in real headless Chromium.
fn browser_login(start: &str, user: &str, password: &str) -> (String, String) {
    let chromium = require_binary("chromium", "apt-get install chromium");
    let node = require_binary("node", "apt-get install nodejs npm");
    let dir = provider_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `{}`",
        test_support::oidc::NPM_INSTALL
    );
    let out = run(
        Command::new(node)
            .arg("browser-login.mjs")
            .args([start, user, password])
            .env("CHROMIUM", chromium)
            .current_dir(dir),
        T,
    );
    assert_ok("the browser login", &out);
    let field = |name: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in {}", out.stdout))
            .to_owned()
    };
    assert!(field("PROVIDER_PAGE").starts_with("/interaction/"));
    assert!(field("DOCKER_CMD").contains("docker login --username 'alice'"));
    (field("USER"), field("PASSWORD"))
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_login_then_docker_and_skopeo_then_sign_out() {
    let env = OidcEnv::start("1h");
    let (user, password) = browser_login(&format!("{}/oidc_auth", env.base), "alice", "alicepw");
    assert_eq!(user, "alice");
    assert!(password.len() >= 22, "at least 128 bits: {password}");
    let login = env.docker_login("alice", &password);
    assert!(
        login.success && login.stdout.contains("Login Succeeded"),
        "{}\n{}",
        login.stdout,
        login.stderr
    );
    // groups [dev, ops] from the id token are labels: dev/* and ops/* are alice's
    assert_ok(
        "push with the docker password",
        &env.push("dev/app:v1", "alice", &password),
    );
    assert_ok("push to ops/", &env.push("ops/app:v1", "alice", &password));
    assert!(
        !env.push("qa/app:v1", "alice", &password).success,
        "qa is not alice's group"
    );
    assert!(!env.docker_login("alice", "wrong-password").success);
    assert!(!env.push("dev/app:v2", "alice", "wrong-password").success);
    assert_eq!(env.sign_out("alice", "wrong-password").await, 401);
    assert_eq!(env.sign_out("alice", &password).await, 200);
    assert!(
        !env.push("dev/app:v3", "alice", &password).success,
        "signed out"
    );
    assert!(!env.docker_login("alice", &password).success, "signed out");
    assert!(
        env.server
            .output()
            .contains("OIDC sign-out: docker password deleted")
    );
}

/// Replaces one query parameter of a URL.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_rejections_and_restart() {
    let mut env = OidcEnv::start("2s");
    let stop = format!("{}/oidc_auth/callback", env.base);
    let auth = format!("{}/auth", env.provider.issuer);

    // the PKCE challenge and nonce are sent
    let mut b = Browser::new();
    let auth_url = b.start(&env.base).await;
    assert!(auth_url.starts_with(&auth), "{auth_url}");
    for p in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(auth_url.contains(p), "{p} missing: {auth_url}");
    }
    // a good login, then its replay
    let cb = b.idp_login(&auth_url, "bob", "bobpw", &stop).await;
    let saved_cookies = b.cookies.clone();
    let (status, page) = b.callback(&cb).await;
    assert_eq!(status, 200, "{page}");
    let bob_pw = password_of(&page);
    b.cookies = saved_cookies;
    let (status, page) = b.callback(&cb).await;
    assert_eq!(status, 400, "a replayed callback must fail: {page}");
    assert!(page.contains("already used"), "{page}");

    // state mismatch: the answer of one login in another login's browser
    let mut one = Browser::new();
    let url_one = one.start(&env.base).await;
    let mut two = Browser::new();
    let _ = two.start(&env.base).await;
    let cb_one = one.idp_login(&url_one, "carol", "carolpw", &stop).await;
    let ours = "docker_token_oidc_login";
    two.cookies.retain(|k, _| k == ours);
    let (status, page) = two.callback(&cb_one).await;
    assert_eq!(status, 400);
    assert!(page.contains("State mismatch"), "{page}");

    // no cookie: no PKCE verifier, no state
    let mut three = Browser::new();
    let url_three = three.start(&env.base).await;
    let cb_three = three.idp_login(&url_three, "carol", "carolpw", &stop).await;
    three.cookies.remove(ours);
    let (status, page) = three.callback(&cb_three).await;
    assert_eq!(status, 400);
    assert!(page.contains("PKCE verifier is missing"), "{page}");

    // nonce mismatch: the provider is asked with another nonce than the cookie holds
    let mut four = Browser::new();
    let url_four = with_param(&four.start(&env.base).await, "nonce", "another-nonce-value");
    let cb_four = four.idp_login(&url_four, "carol", "carolpw", &stop).await;
    let (status, page) = four.callback(&cb_four).await;
    assert_eq!(status, 400);
    assert!(page.contains("nonce mismatch"), "{page}");

    // the server's log is read by another thread: wait for each line rather than racing it
    for reason in [
        "replay",
        "state_mismatch",
        "missing_cookie",
        "nonce_mismatch",
    ] {
        let needle = format!("reason=\"{reason}\"");
        tokio::task::block_in_place(|| {
            env.server
                .wait_for_line(&needle, std::time::Duration::from_secs(10))
        });
    }

    // bob's password works, survives a restart (redb store), and is re-validated with the
    // refresh token after revalidate_after (2 s)
    assert_ok(
        "push with bob's docker password",
        &env.push("dev/bob:v1", "bob", &bob_pw),
    );
    env.restart_server();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_ok(
        "push after a restart",
        &env.push("dev/bob:v2", "bob", &bob_pw),
    );
    tokio::task::block_in_place(|| {
        env.server.wait_for_line(
            "re-validated with the refresh token",
            std::time::Duration::from_secs(10),
        )
    });
    assert!(!env.push("dev/bob:v3", "bob", "not-the-password").success);
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_token_auth_access_token_as_password() {
    let env = OidcEnv::start("1h");
    let token = env
        .provider
        .access_token("bob", "bobpw", Some(JWT_RESOURCE));
    assert_ok(
        "push with an IdP access token",
        &env.push("dev/tok:v1", "bob", &token),
    );
    assert!(
        !env.push("ops/tok:v1", "bob", &token).success,
        "bob is not in ops"
    );
    assert!(
        !env.push("dev/tok:v2", "alice", &token).success,
        "bob's token is not alice's"
    );
}
