//! The `docker-token-server` command line: config validation, explain, hash-password, gen-key,
//! and the embedded default (persistence across restarts, graceful shutdown).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ALICE_PW, Opts, SERVER, T, cli, write_config};
use test_support::{Process, workdir};

#[test]
fn check_config_accepts_a_docker_auth_config() {
    let dir = workdir();
    let cfg = write_config(dir.path(), &Opts::default());
    let out = cli(&["check-config", cfg.to_str().unwrap()]);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("OK"));
}

fn check(yaml: &str) -> test_support::CmdOutput {
    let dir = workdir();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = cli(&["check-config", path.to_str().unwrap()]);
    assert!(!out.success, "expected a rejection of:\n{yaml}");
    assert!(
        out.stderr.contains("bad.yml"),
        "the error must name the file: {}",
        out.stderr
    );
    out
}

const BASE: &str = "server:\n  addr: 127.0.0.1:0\ntoken:\n  issuer: i\n  expiration: 60\n";

#[test]
fn unknown_keys_name_file_line_and_key() {
    // docker_auth issue #326: a typo in `match` silently matched everyone
    let out = check(&format!(
        "{BASE}users: {{}}\nacl:\n  - match: {{acount: admin}}\n    actions: [\"*\"]\n"
    ));
    assert!(out.stderr.contains("acount"), "{}", out.stderr);
    assert!(
        out.stderr.contains("line 8") || out.stderr.contains(":8:") || out.stderr.contains("8:"),
        "line number missing: {}",
        out.stderr
    );
    let out = check(&format!("{BASE}  expirey: 5\nusers: {{}}\nacl: []\n"));
    assert!(out.stderr.contains("expirey"), "{}", out.stderr);
}

#[test]
fn unsupported_sections_are_named() {
    let out = check(&format!(
        "{BASE}users: {{}}\nacl: []\nmongo_auth:\n  dial_info: {{addrs: [x]}}\n"
    ));
    assert!(
        out.stderr.contains("mongo_auth") && out.stderr.contains("not supported"),
        "{}",
        out.stderr
    );
}

#[test]
fn semantic_errors_are_precise() {
    let out = check(&format!("{BASE}users:\n  bob: {{}}\nacl: []\n"));
    assert!(
        out.stderr.contains("users.\"bob\"") && out.stderr.contains("password"),
        "{}",
        out.stderr
    );
    let out = check(&format!(
        "{BASE}users: {{}}\nacl:\n  - match: {{ip: 10.0.0.0/33}}\n    actions: []\n"
    ));
    assert!(out.stderr.contains("acl[0].match.ip"), "{}", out.stderr);
    let out = check(&format!("{BASE}users: {{}}\n"));
    assert!(out.stderr.contains("acl"), "{}", out.stderr);
    let out = check(
        "server:\n  addr: x\ntoken:\n  issuer: i\n  expiration: 60\n  key: /nonexistent/key.pem\nusers: {}\nacl: []\n",
    );
    assert!(
        out.stderr.contains("/nonexistent/key.pem"),
        "{}",
        out.stderr
    );
}

#[test]
fn lifetime_and_refresh_keys_are_checked() {
    for (extra, acl, want) in [
        ("  refresh: {idle: 7d, absolut: 90d}\n", "[]", "absolut"),
        (
            "  refresh: {idle: 30d, absolute: 7d}\n",
            "[]",
            "token.refresh: idle must not be longer",
        ),
        ("  refresh: {idle: soon}\n", "[]", "invalid duration"),
        (
            "  expiration_by_action: {push: 0}\n",
            "[]",
            "token.expiration_by_action.push",
        ),
        (
            "",
            "[{match: {}, actions: [], expiration: 0}]",
            "acl[0].expiration",
        ),
        ("", "[{match: {}, actions: [], expires: 10}]", "expires"),
    ] {
        let out = check(&format!("{BASE}{extra}users: {{}}\nacl: {acl}\n"));
        assert!(out.stderr.contains(want), "{want}: {}", out.stderr);
    }
    // and a good one passes
    let dir = workdir();
    let cfg = write_config(dir.path(), &Opts::default());
    let yaml = std::fs::read_to_string(&cfg).unwrap().replacen(
        "token:\n",
        "token:\n  expiration_by_action: {push: 1h}\n  refresh: {idle: 7d, absolute: 90d, rotate: false}\n",
        1,
    );
    std::fs::write(&cfg, yaml).unwrap();
    let out = cli(&["check-config", cfg.to_str().unwrap()]);
    assert!(out.success, "{}", out.stderr);
}

fn explain(cfg: &std::path::Path, args: &[&str]) -> test_support::CmdOutput {
    let mut all = vec!["explain", "--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    cli(&all)
}

#[test]
fn explain_json_shape_and_exit_codes() {
    let dir = workdir();
    let cfg = write_config(dir.path(), &Opts::default());
    let out = explain(
        &cfg,
        &[
            "--account",
            "alice",
            "--label",
            "team=demo",
            "--scope",
            "repository:demo/app:push,pull",
            "--scope",
            "repository:zzz:pull",
            "--json",
        ],
    );
    assert!(out.success, "{}", out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("exactly one JSON object");
    assert_eq!(
        v,
        serde_json::json!({"scopes": [
            {"type": "repository", "name": "demo/app", "requested": ["pull", "push"], "granted": ["pull", "push"],
             "rule": {"index": 1, "comment": "alice owns her team's repositories"}},
            {"type": "repository", "name": "zzz", "requested": ["pull"], "granted": [], "rule": null}
        ]})
    );
    // anonymous, denied push: still exit 0
    let out = explain(
        &cfg,
        &[
            "--account",
            "",
            "--scope",
            "repository:demo/app:pull,push",
            "--json",
        ],
    );
    assert!(out.success, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["scopes"][0]["granted"], serde_json::json!(["pull"]));
    assert_eq!(v["scopes"][0]["rule"]["index"], 3);
    // a bad scope or config: exit 2, error on stderr
    let out = explain(&cfg, &["--account", "x", "--scope", "Repository:x:pull"]);
    assert_eq!(
        Command::new(SERVER)
            .args([
                "explain",
                "--config",
                cfg.to_str().unwrap(),
                "--account",
                "x",
                "--scope",
                "nope"
            ])
            .status()
            .unwrap()
            .code(),
        Some(2)
    );
    assert!(out.stderr.contains("Repository"), "{}", out.stderr);
    let missing = dir.path().join("missing.yml");
    let status = Command::new(SERVER)
        .args([
            "explain",
            "--config",
            missing.to_str().unwrap(),
            "--account",
            "x",
            "--scope",
            "repository:x:pull",
        ])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(2));
}

/// bcrypt only hashes 72 bytes and the server rejects longer passwords at login, so a
/// longer one must not get a hash that would accept only its first 72 bytes.
#[test]
fn hash_password_refuses_passwords_over_72_bytes() {
    let out = test_support::run_with_stdin(
        Command::new(SERVER).args(["hash-password", "--cost", "4"]),
        &format!("{}\n", "p".repeat(73)),
        T,
    );
    assert!(!out.success, "{}", out.stdout);
    assert!(out.stderr.contains("73 bytes long"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "no hash printed: {}", out.stdout);
    assert!(common::hash(&"p".repeat(72)).starts_with("$2"));
}

#[test]
fn hash_password_and_gen_key() {
    let h = common::hash("correct horse");
    assert!(h.starts_with("$2") && h.len() == 60, "{h}");
    assert_ne!(h, common::hash("correct horse"), "salted");
    let dir = workdir();
    let keys = common::gen_key(dir.path());
    assert!(
        std::fs::read_to_string(keys.join("token.key"))
            .unwrap()
            .contains("PRIVATE KEY")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(keys.join("token.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o077,
        0,
        "key must be private"
    );
    let again = cli(&["gen-key", "--out-dir", keys.to_str().unwrap()]);
    assert!(
        !again.success && again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );
    let rsa = cli(&[
        "gen-key",
        "--out-dir",
        dir.path().join("rsa").to_str().unwrap(),
        "--algorithm",
        "rs256",
    ]);
    assert!(
        rsa.success && rsa.stdout.contains("RS256"),
        "{}\n{}",
        rsa.stdout,
        rsa.stderr
    );
}

fn quickstart(data: &std::path::Path) -> (Process, String, String) {
    let mut cmd = Command::new(SERVER);
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    let mut p = Process::spawn("docker-token-server", cmd);
    let url = listening_url(&mut p, "http");
    let out = p.output();
    (p, url, out)
}

/// The URL from the server's `listening on <scheme>://…` line.
fn listening_url(server: &mut Process, scheme: &str) -> String {
    server
        .wait_for_line(&format!("listening on {scheme}://"), T)
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_default_persists_and_shuts_down_gracefully() {
    let dir = workdir();
    let data = dir.path().join("data");
    let (mut first, url, out) = quickstart(&data);
    let password = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("user admin, password ")
                .map(|r| r.split(' ').next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no password printed:\n{out}"));
    assert!(password.len() >= 22, "≥128 bits");
    assert!(
        out.contains("auth:\n  token:")
            && out.contains("rootcertbundle:")
            && out.contains(&format!("realm: {url}/auth")),
        "{out}"
    );
    let http = reqwest::Client::new();
    let ok = http
        .get(format!(
            "{url}/auth?service=docker-registry&scope=repository:x:push"
        ))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let cert_before = std::fs::read(data.join("token.crt")).unwrap();
    let status = tokio::task::block_in_place(|| first.terminate(Duration::from_secs(10)))
        .expect("exits on SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let (_second, url2, out2) = quickstart(&data);
    assert!(
        !out2.contains(&password),
        "the password is printed only once"
    );
    assert!(out2.contains("printed at first start"), "{out2}");
    assert_eq!(
        std::fs::read(data.join("token.crt")).unwrap(),
        cert_before,
        "the key and certificate are kept"
    );
    let again = http
        .get(format!("{url2}/auth?service=s"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the admin password survives a restart");
    let wrong = http
        .get(format!("{url2}/auth?service=s"))
        .basic_auth("admin", Some(ALICE_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

/// cesanta/docker_auth's `examples/simple.yml`, with only the paths and the port substituted:
/// TLS from `server.certificate`/`key`, which are also the token signing pair (docker_auth's
/// fallback), and the example's bcrypt hashes (`admin`/`badmin`, `test`/`123`).
#[tokio::test(flavor = "multi_thread")]
async fn docker_auth_simple_example_runs_unchanged_over_tls() {
    let dir = workdir();
    let keys = common::gen_key(dir.path());
    let yaml = format!(
        r#"# A simple example. See reference.yml for explanation for explanation of all options.
server:
  addr: "127.0.0.1:0"
  certificate: "{cert}"
  key: "{key}"

token:
  issuer: "Acme auth server"  # Must match issuer in the Registry config.
  expiration: 900

users:
  # Password is specified as a BCrypt hash. Use `htpasswd -nB USERNAME` to generate.
  "admin":
    password: "$2y$05$LO.vzwpWC5LZGqThvEfznu8qhb5SGqvBSWY1J3yZ4AxtMRZ3kN5jC"  # badmin
  "test":
    password: "$2y$05$WuwBasGDAgr.QCbGIjKJaep4dhxeai9gNZdmBnQXqpKly57oNutya"  # 123

acl:
  - match: {{account: "admin"}}
    actions: ["*"]
    comment: "Admin has full access to everything."
  - match: {{account: "user"}}
    actions: ["pull"]
    comment: "User \"user\" can pull stuff."
  # Access is denied by default.
"#,
        cert = keys.join("token.crt").display(),
        key = keys.join("token.key").display(),
    );
    let (_server, url) = serve_tls(dir.path(), "simple.yml", &yaml);
    let http = https_client(None);
    let get = |user: &'static str, pw: &'static str| {
        http.get(format!(
            "{url}/auth?service=Docker+registry&scope=repository:x:push,pull"
        ))
        .basic_auth(user, Some(pw))
        .send()
    };
    let r = get("admin", "badmin").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let claims = common::jwt_part(body["token"].as_str().unwrap(), 2);
    assert_eq!(claims["iss"], "Acme auth server");
    assert_eq!(claims["aud"], "Docker registry");
    assert_eq!(
        claims["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );
    let header = common::jwt_part(body["token"].as_str().unwrap(), 1);
    assert!(
        header["x5c"].is_array(),
        "the server pair signs and its certificate goes into x5c: {header}"
    );
    let r = get("test", "123").await.unwrap();
    assert_eq!(r.status(), 200, "\"test\" authenticates");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        common::jwt_part(body["token"].as_str().unwrap(), 2)["access"][0]["actions"],
        serde_json::json!([]),
        "denied by default"
    );
    assert_eq!(get("admin", "wrong").await.unwrap().status(), 401);
    // plain HTTP to the TLS port is refused
    assert!(
        reqwest::get(url.replace("https://", "http://") + "/healthz")
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
}

/// Writes `yaml` as `name` in `dir`, starts the server on it and returns it with its
/// `https://` URL.
fn serve_tls(dir: &std::path::Path, name: &str, yaml: &str) -> (Process, String) {
    let cfg = dir.join(name);
    std::fs::write(&cfg, yaml).unwrap();
    let mut cmd = Command::new(SERVER);
    cmd.args(["serve", "--config"]).arg(&cfg);
    let mut server = Process::spawn("docker-token-server", cmd);
    let url = listening_url(&mut server, "https");
    (server, url)
}

/// A client for the test servers: the generated certificate has no IP SAN, so this checks
/// that TLS is served, not the PKI.
fn https_client(timeout: Option<Duration>) -> reqwest::Client {
    let builder = reqwest::Client::builder().tls_danger_accept_invalid_certs(true);
    match timeout {
        Some(t) => builder.timeout(t),
        None => builder,
    }
    .build()
    .unwrap()
}

/// Over TLS the connection limit and the header read timeout hold as over plain HTTP: idle
/// clients that never start the handshake take the slots until the timeout cuts them, then
/// the waiting client is served.
#[tokio::test(flavor = "multi_thread")]
async fn tls_connections_are_limited_and_idle_handshakes_cut() {
    use std::io::Read as _;
    let dir = workdir();
    let keys = common::gen_key(dir.path());
    let yaml = format!(
        "server:\n  addr: \"127.0.0.1:0\"\n  certificate: \"{cert}\"\n  key: \"{key}\"\n  \
         header_read_timeout: 5\n  max_connections: 3\ntoken:\n  issuer: i\n  expiration: 60\n\
         users:\n  \"\": {{}}\nacl:\n  - {{match: {{account: \"\"}}, actions: [pull]}}\n",
        cert = keys.join("token.crt").display(),
        key = keys.join("token.key").display(),
    );
    let (server, url) = serve_tls(dir.path(), "tls.yml", &yaml);
    let addr: std::net::SocketAddr = url.trim_start_matches("https://").parse().unwrap();
    let client = |timeout: Duration| https_client(Some(timeout));
    let healthz = format!("{url}/healthz");
    assert_eq!(client(T).get(&healthz).send().await.unwrap().status(), 200);
    // three connections that never send a byte fill the three slots
    let idle: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let blocked = client(Duration::from_secs(1)).get(&healthz).send().await;
    assert!(
        blocked.is_err(),
        "a fourth client is served while three idle ones hold the slots: {blocked:?}"
    );
    // the idle ones are cut after the header read timeout, then the waiting client is served
    let served = client(Duration::from_secs(30)).get(&healthz).send().await;
    assert_eq!(
        served.map(|r| r.status()).ok(),
        Some(reqwest::StatusCode::OK)
    );
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        assert!(
            matches!(c.read(&mut b), Ok(0) | Err(_)),
            "an idle connection that never started TLS is closed"
        );
    }
    let output = server.output();
    assert!(!output.contains("panicked"), "{output}");
}

#[test]
fn oidc_token_dbs_other_than_level_and_redis_are_named() {
    let oidc = "oidc_auth:\n  issuer: https://idp.example.org\n  redirect_url: https://auth.example.org/oidc_auth\n  client_id: c\n  client_secret: s\n";
    for (key, value, why) in [
        ("gcs_token_db", "{bucket: b}", "not supported yet"),
        // docker_auth's redis_token_db works with redis_options, not with a cluster
        (
            "redis_token_db",
            "{redis_cluster_options: {addrs: [x]}}",
            "not supported",
        ),
        ("redis_token_db", "{addr: \"127.0.0.1:6379\"}", "addr"),
    ] {
        let out = check(&format!("{BASE}{oidc}  {key}: {value}\nacl: []\n"));
        assert!(
            out.stderr.contains(key) && out.stderr.contains(why),
            "{key}: {}",
            out.stderr
        );
    }
    // a valid oidc_auth section is not what fails here (the token key is missing)
    let out = check(&format!("{BASE}{oidc}acl: []\n"));
    assert!(!out.stderr.contains("oidc_auth"), "{}", out.stderr);
}

#[test]
fn store_section_is_validated() {
    let cases = [
        (
            "store:\n  redis: {url: \"redis://127.0.0.1:6379\", prefix: x}\n",
            "prefix",
        ),
        (
            "store:\n  redis: {url: \"http://127.0.0.1:6379\"}\n",
            "store.redis.url",
        ),
        (
            "store:\n  redis: {url: \"redis://:hunter2@127.0.0.1:6379\", tls: {}}\n",
            "store.redis.tls",
        ),
        (
            "store:\n  redb: {path: /tmp/x.redb}\n  redis: {url: \"redis://h\"}\n",
            "exactly one",
        ),
        ("store: {}\n", "exactly one"),
        ("store:\n  memcached: {}\n", "memcached"),
    ];
    for (section, needle) in cases {
        let out = check(&format!("{BASE}users: {{}}\nacl: []\n{section}"));
        assert!(out.stderr.contains(needle), "{section}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    }
}

#[test]
fn robots_need_a_store_and_a_valid_name() {
    let dir = workdir();
    let path = dir.path().join("no-store.yml");
    std::fs::write(&path, format!("{BASE}users: {{}}\nacl: []\n")).unwrap();
    let out = cli(&["robots", "list", "--config", path.to_str().unwrap()]);
    assert!(
        !out.success && out.stderr.contains("store:"),
        "{}",
        out.stderr
    );
    // an embedded store: create, list, revoke without a running server
    let db = dir.path().join("state/store.redb");
    let path = dir.path().join("store.yml");
    std::fs::write(
        &path,
        format!(
            "{BASE}users: {{}}\nacl: []\nstore:\n  redb: {{path: {}}}\n",
            db.display()
        ),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let out = cli(&[
        "robots", "create", "ci", "--config", cfg, "--label", "team=ci",
    ]);
    assert!(out.success, "{}", out.stderr);
    let secret = out.stdout.trim().to_owned();
    assert!(secret.len() >= 43);
    let out = cli(&["robots", "list", "--config", cfg]);
    assert!(
        out.stdout.contains("robot$ci") && out.stdout.contains("team=ci"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&secret));
    for bad in ["Robot", "a/b", "", "x y", "-x"] {
        let out = cli(&["robots", "create", bad, "--config", cfg]);
        assert!(!out.success, "{bad:?} accepted");
    }
    let out = cli(&["robots", "create", "x", "--config", cfg, "--expires", "0d"]);
    assert!(!out.success);
    let out = cli(&["robots", "revoke", "robot$ci", "--config", cfg]);
    assert!(
        out.success && out.stdout.contains("revoked robot$ci"),
        "{}",
        out.stderr
    );
    let out = cli(&["robots", "revoke", "ci", "--config", cfg]);
    assert!(!out.success);
}
