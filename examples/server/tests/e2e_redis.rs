//! Two docker-token-server replicas sharing one real `redis-server` (`store: {redis: …}`),
//! with the real registry, docker CLI and skopeo: robots created through the command line
//! and browser-login credentials in the shared store work on both replicas; a revocation is
//! seen by both at once; Redis down is a 503 (not 401, not 500) and its return needs no
//! restart; every stored item carries a Redis TTL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{ADMIN_PW, SERVER, T, gen_key, hash, start_server};
use docker_token_core::{CredentialStore, StoredCredential};
use docker_token_redis::{RedisConfig, RedisStore};
use test_support::redis::RedisServer;
use test_support::{
    CmdOutput, Process, Registry, RegistryAuth, require_binary, run, run_with_stdin, workdir,
};

const PREFIX: &str = "e2e:";
const SERVICE: &str = "test-registry";

fn write_config(dir: &Path, redis_url: &str) -> PathBuf {
    let keys = gen_key(dir);
    let yaml = format!(
        r#"server:
  addr: "127.0.0.1:0"
token:
  issuer: "test-issuer"
  expiration: 900
  certificate: {cert}
  key: {key}
  refresh: {{idle: 1h, absolute: 1d}}   # no path: the tokens live in store: (Redis)
users:
  admin:
    password: "{admin}"
oidc_auth:
  # never contacted here: stored credentials are checked without the provider until
  # revalidate_after
  issuer: "https://idp.invalid"
  redirect_url: "https://auth.example.org/oidc_auth"
  client_id: registry
  client_secret: not-used
  cookie_key_file: {cookie_key}
acl:
  - match: {{account: admin}}
    actions: ["*"]
  - match: {{labels: {{team: ci}}, name: "ci/*"}}
    actions: ["*"]
    comment: "the CI team's robots push ci/"
  - match: {{account: "carol", name: "carol/*"}}
    actions: ["*"]
store:
  redis:
    url: "{redis_url}"
    key_prefix: "{PREFIX}"
"#,
        cert = keys.join("token.crt").display(),
        key = keys.join("token.key").display(),
        admin = hash(ADMIN_PW),
        cookie_key = dir.join("cookie.key").display(),
    );
    std::fs::write(dir.join("cookie.key"), "k".repeat(48)).unwrap();
    let path = dir.join("auth_config.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn server_cli(args: &[&str]) -> CmdOutput {
    run(Command::new(SERVER).args(args), T)
}

fn assert_ok(what: &str, out: &CmdOutput) {
    assert!(
        out.success,
        "{what} failed:\n{}\n{}",
        out.stdout, out.stderr
    );
}

/// A token request (GET) against one replica; returns the status and the body.
async fn token(base: &str, scope: &str, user: &str, password: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/auth"))
        .query(&[("service", SERVICE), ("scope", scope)])
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The actions the token in a token response grants (its first `access` entry).
fn granted(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON token response");
    let claims = common::jwt_part(v["token"].as_str().expect("a token"), 2);
    claims["access"][0]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn docker_login(dir: &Path, host: &str, user: &str, password: &str) -> CmdOutput {
    let docker = require_binary("docker", "apt-get install docker.io (only the CLI is used)");
    let cfg = dir.join("dockercfg");
    std::fs::create_dir_all(&cfg).unwrap();
    run_with_stdin(
        Command::new(docker)
            .args(["login", host, "-u", user, "--password-stdin"])
            .env("DOCKER_CONFIG", &cfg),
        &format!("{password}\n"),
        T,
    )
}

fn skopeo_push(dir: &Path, oci: &Path, dst: &str, creds: &str) -> CmdOutput {
    let bin = require_binary("skopeo", "apt-get install skopeo");
    run(
        Command::new(bin)
            .args(["copy", "--dest-tls-verify=false", "--dest-creds", creds])
            .arg(format!("oci:{}:latest", oci.display()))
            .arg(format!("docker://{dst}"))
            .env("REGISTRY_AUTH_FILE", dir.join("auth.json")),
        T,
    )
}

fn ttl(redis: &RedisServer, key: &str) -> i64 {
    let out = redis.cli(&["TTL", key]);
    assert!(out.success, "redis-cli: {}", out.stderr);
    out.stdout.trim().parse().expect("TTL is a number")
}

struct Replicas {
    a: (Process, String),
    b: (Process, String),
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_robots_and_logins_through_redis() {
    let dir = workdir();
    let mut redis = RedisServer::start();
    let config = write_config(dir.path(), &redis.url());
    let cfg = config.to_str().unwrap();
    assert_ok("check-config", &server_cli(&["check-config", cfg]));
    let r = Replicas {
        a: start_server(&config),
        b: start_server(&config),
    };
    let (a, b) = (r.a.1.clone(), r.b.1.clone());
    let registry = Registry::start(
        dir.path(),
        &RegistryAuth {
            realm: &format!("{a}/auth"),
            service: SERVICE,
            issuer: "test-issuer",
            rootcertbundle: &dir.path().join("keys/token.crt"),
        },
    );
    let oci = test_support::oci_layout(dir.path());

    // a robot created by the command line (no replica involved) ...
    let created = server_cli(&[
        "robots",
        "create",
        "builder",
        "--config",
        cfg,
        "--expires",
        "1d",
        "--label",
        "team=ci",
    ]);
    assert_ok("robots create", &created);
    let secret = created.stdout.trim().to_owned();
    assert!(secret.len() >= 43, "a 256-bit secret: {secret:?}");
    assert!(
        created.stderr.contains("robot$builder"),
        "{}",
        created.stderr
    );
    let list = server_cli(&["robots", "list", "--config", cfg, "--json"]);
    assert_ok("robots list", &list);
    assert!(!list.stdout.contains(&secret), "list never shows secrets");
    let listed: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(listed[0]["account"], "robot$builder");
    assert_eq!(listed[0]["labels"]["team"][0], "ci");
    let again = server_cli(&["robots", "create", "builder", "--config", cfg]);
    assert!(
        !again.success && again.stderr.contains("exists"),
        "{}",
        again.stderr
    );
    let hostile = server_cli(&["robots", "create", "../x\u{1b}[31m", "--config", cfg]);
    assert!(
        !hostile.success && !hostile.stderr.contains("../x"),
        "{}",
        hostile.stderr
    );

    // ... is accepted by both replicas, its labels feeding the ACL
    let robot = "robot$builder";
    for base in [&a, &b] {
        let (status, body) = token(base, "repository:ci/app:pull,push", robot, &secret).await;
        assert_eq!(status, 200, "{base}: {body}");
        assert_eq!(granted(&body), ["pull", "push"], "{body}");
        let (status, body) = token(base, "repository:other/app:push", robot, &secret).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            granted(&body).is_empty(),
            "the ACL grants nothing outside ci/: {body}"
        );
        let (status, _) = token(base, "repository:ci/app:pull", robot, "wrong").await;
        assert_eq!(status, 401);
    }
    // docker login and a skopeo push as the robot (the registry sends clients to replica A)
    assert_ok(
        "docker login as the robot",
        &docker_login(dir.path(), &registry.host(), robot, &secret),
    );
    let creds = format!("{robot}:{secret}");
    assert_ok(
        "skopeo push as the robot",
        &skopeo_push(
            dir.path(),
            &oci,
            &format!("{}/ci/app:v1", registry.host()),
            &creds,
        ),
    );

    // a browser-login credential in the shared store (as replica A's login would write it)
    // is accepted by both replicas
    let store = RedisStore::new(&RedisConfig::new(redis.url()).with_key_prefix(PREFIX)).unwrap();
    let password = "generated-docker-password-0123456789";
    let bcrypt = hash(password);
    let in_a_day = SystemTime::now() + Duration::from_secs(86_400);
    store
        .put("carol", StoredCredential::new("carol", bcrypt, in_a_day))
        .await
        .unwrap();
    for base in [&a, &b] {
        let (status, body) = token(base, "repository:carol/x:push", "carol", password).await;
        assert_eq!(status, 200, "{base}: {body}");
    }

    // a refresh token issued by replica A is exchanged on replica B
    let form = common::form_body;
    let post = |base: String, body: String| async move {
        let r = reqwest::Client::new()
            .post(format!("{base}/auth"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        (status, v)
    };
    let (status, body) = post(
        a.clone(),
        form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", ADMIN_PW),
            ("service", SERVICE),
            ("client_id", "docker"),
            ("access_type", "offline"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let refresh_form = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt),
        ("service", SERVICE),
        ("client_id", "docker"),
        ("scope", "repository:any/app:pull"),
    ]);
    let (status, body) = post(b.clone(), refresh_form.clone()).await;
    assert_eq!(status, 200, "replica B accepts A's refresh token: {body}");
    let rt_key = store.key_for_refresh_token(&docker_token_core::refresh::refresh_token_id(&rt));
    let rt_ttl = ttl(&redis, &rt_key);
    assert!(
        (3500..=3600).contains(&rt_ttl),
        "refresh-token TTL = idle: {rt_ttl}"
    );

    // every stored item has a TTL, and no key holds a client value
    let robot_ttl = ttl(&redis, &store.key_for_robot("builder"));
    assert!(
        (86_000..=86_400).contains(&robot_ttl),
        "robot TTL {robot_ttl}"
    );
    let cred_ttl = ttl(&redis, &store.key_for_credential("carol"));
    assert!(
        (86_000..=86_400).contains(&cred_ttl),
        "credential TTL {cred_ttl}"
    );
    let keys = redis.cli(&["--scan", "--pattern", "*"]).stdout;
    for k in keys.lines() {
        assert!(k.starts_with(PREFIX), "{k}");
        assert!(
            !k.contains("builder") && !k.contains("carol"),
            "raw name in {k}"
        );
        assert!(ttl(&redis, k) > 0, "{k} has no TTL");
    }

    // Redis down: the robot and the stored credential are answered 503 by both replicas
    // (not 401, not 500), static users keep working, and the replicas say why
    redis.stop();
    for base in [&a, &b] {
        let (status, body) = token(base, "repository:ci/app:pull", robot, &secret).await;
        assert_eq!(status, 503, "{base}: {body}");
        assert!(body.contains("\"errors\""), "{body}");
        let (status, _) = token(base, "repository:carol/x:pull", "carol", password).await;
        assert_eq!(status, 503);
        let (status, body) = token(base, "repository:any/x:pull", "admin", ADMIN_PW).await;
        assert_eq!(status, 200, "static users do not need Redis: {body}");
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status();
        assert_eq!(ready.as_u16(), 503, "{base}/readyz while Redis is down");
    }
    let mut replicas = r;
    replicas.a.0.wait_for_line("Redis store unavailable", T);
    replicas.b.0.wait_for_line("Redis store unavailable", T);
    // ... and back, without restarting the replicas (bounded wait for the reconnection)
    redis.start_again();
    for base in [&a, &b] {
        let mut last = (0, String::new());
        for _ in 0..100 {
            last = token(base, "repository:ci/app:pull", robot, &secret).await;
            if last.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last.0, 200, "{base} did not recover: {}", last.1);
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status();
        assert_eq!(ready.as_u16(), 200, "{base}/readyz after Redis is back");
    }
    replicas.a.0.wait_for_line("Redis store reachable again", T);

    // revoked through the command line: the next token request fails on both replicas
    let revoked = server_cli(&["robots", "revoke", robot, "--config", cfg]);
    assert_ok("robots revoke", &revoked);
    for base in [&a, &b] {
        let (status, body) = token(base, "repository:ci/app:pull", robot, &secret).await;
        assert_eq!(status, 401, "{base}: {body}");
    }
    let list = server_cli(&["robots", "list", "--config", cfg]);
    assert!(!list.stdout.contains("builder"), "{}", list.stdout);
    let gone = server_cli(&["robots", "revoke", "builder", "--config", cfg]);
    assert!(!gone.success, "revoking twice fails");
    // refresh tokens revoked through the command line (no admin socket: the CLI uses Redis)
    let revoked = server_cli(&["tokens", "revoke", "--config", cfg, "--account", "admin"]);
    assert_ok("tokens revoke", &revoked);
    let (status, body) = post(a.clone(), refresh_form.clone()).await;
    assert_eq!(status, 401, "revoked refresh token: {body}");
    let logs = replicas.a.0.output();
    assert!(
        !logs.contains(&secret) && !logs.contains(password),
        "secrets in logs"
    );
}

/// The embedded store: `robots` commands change the file while the server runs.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_store_robots_with_a_running_server() {
    let dir = workdir();
    let keys = gen_key(dir.path());
    let path = dir.path().join("auth_config.yml");
    std::fs::write(
        &path,
        format!(
            "server: {{addr: \"127.0.0.1:0\"}}\ntoken:\n  issuer: test-issuer\n  expiration: 900\n  key: {}\nusers: {{}}\nacl:\n  - match: {{account: \"robot$deploy\"}}\n    actions: [pull]\nstore:\n  redb: {{path: {}}}\n",
            keys.join("token.key").display(),
            dir.path().join("state/store.redb").display()
        ),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let (_server, base) = start_server(&path);
    let created = server_cli(&["robots", "create", "deploy", "--config", cfg]);
    assert_ok("robots create beside a running server", &created);
    let secret = created.stdout.trim().to_owned();
    let (status, body) = token(&base, "repository:app:pull", "robot$deploy", &secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(granted(&body), ["pull"], "{body}");
    assert_ok(
        "robots revoke beside a running server",
        &server_cli(&["robots", "revoke", "deploy", "--config", cfg]),
    );
    let (status, _) = token(&base, "repository:app:pull", "robot$deploy", &secret).await;
    assert_eq!(status, 401, "revoked: refused at once");
}

/// A browser login (the real `oidc-provider`) started on replica A finishes on replica B —
/// they share `cookie_key_file` — and the docker password it hands out works on A.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_login_on_one_replica_works_on_the_other() {
    use test_support::oidc::{Provider, ProviderOptions};
    let dir = workdir();
    let redis = RedisServer::start();
    let (port_a, port_b) = (test_support::free_port(), test_support::free_port());
    let (a, b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let callback = format!("{b}/oidc_auth/callback");
    let provider = Provider::start_with(ProviderOptions {
        rp_redirect_uris: vec![callback.clone()],
        ..Default::default()
    });
    let keys = gen_key(dir.path());
    let cookie_key = dir.path().join("cookie.key");
    std::fs::write(&cookie_key, "shared-cookie-key-".repeat(3)).unwrap();
    let config = |port: u16| {
        let path = dir.path().join(format!("replica-{port}.yml"));
        std::fs::write(
            &path,
            format!(
                r#"server: {{addr: "127.0.0.1:{port}"}}
token:
  issuer: test-issuer
  expiration: 900
  key: {key}
oidc_auth:
  issuer: "{issuer}"
  redirect_url: "{callback}"
  client_id: registry-ui
  client_secret: registry-ui-secret
  scopes: [openid, profile, email, groups]
  user_claim: preferred_username
  labels_claims: [groups]
  cookie_key_file: {cookie_key}
acl:
  - match: {{account: "/.+/", name: "${{labels:groups}}/*"}}
    actions: ["*"]
store:
  redis: {{url: "{url}", key_prefix: "login:"}}
"#,
                key = keys.join("token.key").display(),
                issuer = provider.issuer,
                cookie_key = cookie_key.display(),
                url = redis.url(),
            ),
        )
        .unwrap();
        path
    };
    let (_server_a, url_a) = start_server(&config(port_a));
    let (_server_b, url_b) = start_server(&config(port_b));
    assert_eq!((url_a.as_str(), url_b.as_str()), (a.as_str(), b.as_str()));

    let mut browser = common::Browser::new();
    let auth_url = browser.start(&a).await;
    let cb = browser
        .idp_login(&auth_url, "alice", "alicepw", &callback)
        .await;
    let (status, page) = browser.callback(&cb).await;
    assert_eq!(
        status, 200,
        "replica B finishes the login started on A: {page}"
    );
    let password = common::password_of(&page);
    for base in [&a, &b] {
        let (status, body) = token(base, "repository:dev/app:push", "alice", &password).await;
        assert_eq!(status, 200, "{base}: {body}");
        assert_eq!(
            granted(&body),
            ["push"],
            "alice's groups label (dev) feeds the ACL: {body}"
        );
    }
    let store = RedisStore::new(&RedisConfig::new(redis.url()).with_key_prefix("login:")).unwrap();
    let t = ttl(&redis, &store.key_for_credential("alice"));
    assert!(
        t > 29 * 86_400,
        "password_lifetime (30 days) as the TTL: {t}"
    );
}
