//! End-to-end refresh tokens and per-rule lifetimes with the real docker CLI, skopeo and the
//! Debian docker-registry 2.8.2:
//!
//! * `docker login` (GET `offline_token=true&client_id=docker`) stores the refresh token as
//!   its `identitytoken`, not the password; `docker manifest inspect` (the CLI's own registry
//!   client; without a daemon the CLI cannot pull or push) then gets its token with nothing
//!   but that identity token (POST `grant_type=refresh_token`);
//! * a skopeo push works with an auth.json holding only the user name and a refresh token
//!   (containers/image's refresh grant), and a token bound to another client is refused;
//! * `tokens revoke` (through the admin socket of the running server) stops both;
//! * a user removed from the configuration (SIGHUP) loses the refresh grant;
//! * containerd's `ctr` (a private daemon) POSTs the password grant with `--user` and uses
//!   the refresh grant alone with `--refresh`;
//! * an ACL rule's `expiration` sets `exp - iat` and `expires_in`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{ALICE_PW, Env, Opts, SERVER, T, jwt_part};
use test_support::{CmdOutput, require_binary, run, run_with_stdin};

/// Refresh tokens in a redb file, an admin socket, and a rule with its own lifetime.
fn with_refresh(dir: &Path, yaml: &str) -> String {
    let refresh = format!(
        "token:\n  refresh: {{idle: 7d, absolute: 90d, path: \"{}\"}}\n",
        dir.join("refresh.redb").display()
    );
    let admin = format!(
        "server:\n  admin_socket: \"{}\"\n",
        dir.join("admin.sock").display()
    );
    let rule = "acl:\n  - match: {account: \"alice\", name: \"ci/*\"}\n    actions: [\"pull\", \"push\"]\n    expiration: 3600\n";
    yaml.replacen("token:\n", &refresh, 1)
        .replacen("server:\n", &admin, 1)
        .replacen("acl:\n", rule, 1)
}

fn config_path(env: &Env) -> std::path::PathBuf {
    env.dir.path().join("auth_config.yml")
}

fn tokens_cli(env: &Env, args: &[&str]) -> CmdOutput {
    let config = config_path(env);
    let mut all = vec!["tokens"];
    all.extend_from_slice(args);
    all.extend(["--config", config.to_str().unwrap()]);
    run(Command::new(SERVER).args(&all), T)
}

/// POSTs a form to the token endpoint; returns (status, JSON body).
async fn post(env: &Env, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(&env.token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            common::form_body(form), // a real client's body
        )
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}

/// A refresh token for `client_id`, from the OAuth2 password grant with `access_type=offline`.
async fn refresh_token_for(env: &Env, client_id: &str) -> String {
    let (status, body) = post(
        env,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ALICE_PW),
            ("service", &env.service),
            ("client_id", client_id),
            ("access_type", "offline"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// An auth.json with only the user name and a refresh token (what docker writes).
fn auth_file(env: &Env, name: &str, token: &str) -> std::path::PathBuf {
    let path = env.dir.path().join(name);
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:");
    let json = serde_json::json!({
        "auths": { env.registry.host(): { "auth": auth, "identitytoken": token } }
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

/// `skopeo copy` of the test image with the credentials in `authfile` only.
fn skopeo_push(env: &Env, authfile: &Path, repo: &str) -> CmdOutput {
    let src = format!("oci:{}:latest", env.oci.display());
    let dst = format!("docker://{}/{repo}", env.registry.host());
    env.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-authfile",
        authfile.to_str().unwrap(),
        &src,
        &dst,
    ])
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Waits (bounded) until the server printed `needle` at least `n` times.
fn wait_for_count(env: &Env, needle: &str, n: usize) {
    let deadline = Instant::now() + T;
    while count(&env.server.output(), needle) < n {
        assert!(
            Instant::now() < deadline,
            "the server did not print {needle:?} {n} times:\n{}",
            env.server.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hup(env: &Env) {
    let pid = env.server.pid().expect("pid").to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn docker_login_stores_a_refresh_token_and_docker_manifest_uses_it_alone() {
    let docker = require_binary("docker", "apt-get install docker.io (only the CLI is used)");
    // the docker CLI's own registry client sends client_id=registry-client, not the
    // client_id=docker of `docker login`: this works because client ids are not bound by
    // default
    let env = Env::start_edited(Opts::default(), with_refresh);
    let cfg = env.dir.path().join("dockercfg");
    std::fs::create_dir_all(&cfg).unwrap();
    let docker_cmd = |args: &[&str], stdin: &str| {
        let mut c = Command::new(&docker);
        c.args(args).env("DOCKER_CONFIG", &cfg);
        run_with_stdin(&mut c, stdin, T)
    };
    let host = env.registry.host();
    let good = docker_cmd(
        &["login", &host, "-u", "alice", "--password-stdin"],
        &format!("{ALICE_PW}\n"),
    );
    assert!(
        good.success && good.stdout.contains("Login Succeeded"),
        "{}\n{}",
        good.stdout,
        good.stderr
    );
    // docker stored the refresh token as its identity token, and not the password
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.join("config.json")).unwrap()).unwrap();
    let entry = &stored["auths"][host.as_str()];
    let identity = entry["identitytoken"]
        .as_str()
        .unwrap_or_else(|| panic!("no identitytoken in {stored}"))
        .to_owned();
    assert_eq!(identity.len(), 43, "{identity}");
    assert_eq!(
        entry["auth"],
        base64::engine::general_purpose::STANDARD.encode("alice:")
    );
    assert!(!stored.to_string().contains(ALICE_PW));

    // an image to look at (pushed with the password by skopeo)
    let pushed = env.push("demo/hello:v1", Some(&Env::alice()));
    assert!(pushed.success, "{}", pushed.stderr);

    // docker's registry client with the stored identity token only: the refresh grant
    let image = format!("{host}/demo/hello:v1");
    let inspect = || docker_cmd(&["manifest", "inspect", "--insecure", &image], "");
    let seen = inspect();
    assert!(
        seen.success && seen.stdout.contains("schemaVersion"),
        "docker manifest inspect with the identity token: {}\n{}",
        seen.stdout,
        seen.stderr
    );
    wait_for_count(&env, "grant=\"refresh_token\"", 1);
    let log = env.server.output();
    assert!(
        log.lines().any(|l| l.contains("token issued")
            && l.contains("grant=\"refresh_token\"")
            && l.contains("demo/hello:pull")),
        "no refresh grant for the pull in the log:\n{log}"
    );

    // revoked: the same command fails
    let revoke = tokens_cli(&env, &["revoke", "--account", "alice"]);
    assert!(revoke.success, "{}\n{}", revoke.stdout, revoke.stderr);
    assert!(revoke.stdout.contains("revoked 1"), "{}", revoke.stdout);
    let after = inspect();
    assert!(
        !after.success,
        "manifest inspect after revocation: {}",
        after.stdout
    );
    wait_for_count(&env, "unknown, expired or revoked", 1);
    assert!(
        !env.server.output().contains(&identity),
        "the refresh token was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_with_a_refresh_token_alone_until_revoked_or_the_user_is_removed() {
    // client ids bound (opt-in): a token docker got is refused to skopeo below
    let env = Env::start_edited(Opts::default(), |dir, yaml| {
        with_refresh(dir, yaml).replacen(
            "absolute: 90d,",
            "absolute: 90d, bind_client_id: true,",
            1,
        )
    });
    let rt = refresh_token_for(&env, "containers/image").await;
    let authfile = auth_file(&env, "auth-rt.json", &rt);

    // the push authenticates with nothing but the refresh token
    let pushed = skopeo_push(&env, &authfile, "demo/refreshed:v1");
    assert!(pushed.success, "{}\n{}", pushed.stdout, pushed.stderr);
    let log = env.server.output();
    assert!(
        log.lines().any(|l| l.contains("token issued")
            && l.contains("refresh_token")
            && l.contains("demo/refreshed:pull,push")),
        "the push did not use the refresh grant:\n{log}"
    );

    // a token bound to client_id=docker is refused to containers/image
    let docker_rt = refresh_token_for(&env, "docker").await;
    let borrowed = auth_file(&env, "borrowed.json", &docker_rt);
    let refused = skopeo_push(&env, &borrowed, "demo/borrowed:v1");
    assert!(!refused.success, "a docker refresh token worked for skopeo");
    wait_for_count(&env, "issued to another client", 1);

    // tokens list shows it by id (a hash), never the token
    let list = tokens_cli(&env, &["list", "--account", "alice"]);
    assert!(list.success, "{}", list.stderr);
    assert!(
        list.stdout.contains("\"containers/image\""),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains(&rt));
    let json = tokens_cli(&env, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let id = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["client_id"] == "containers/image")
        .expect("the containers/image token")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // revoke by id: the next push fails
    let revoke = tokens_cli(&env, &["revoke", "--id", &id]);
    assert!(revoke.stdout.contains("revoked 1"), "{}", revoke.stdout);
    let refused = skopeo_push(&env, &authfile, "demo/refreshed:v2");
    assert!(!refused.success, "push after revocation succeeded");
    let (status, body) = post(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("service", &env.service),
            ("client_id", "containers/image"),
        ],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    // garbage and another service: 401 as well, never 500
    for (token, service) in [("garbage", env.service.as_str()), (rt.as_str(), "other")] {
        let (status, body) = post(
            &env,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("service", service),
                ("client_id", "containers/image"),
            ],
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }

    // a fresh token works until alice is removed from the configuration (SIGHUP)
    let rt = refresh_token_for(&env, "containers/image").await;
    let authfile = auth_file(&env, "auth-rt2.json", &rt);
    let pushed = skopeo_push(&env, &authfile, "demo/refreshed:v3");
    assert!(pushed.success, "{}", pushed.stderr);
    let config = config_path(&env);
    let yaml = std::fs::read_to_string(&config).unwrap();
    let mut without_alice = String::new();
    let mut skipping = false;
    for line in yaml.lines() {
        if line == "  alice:" {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with("    ") {
            continue;
        }
        skipping = false;
        without_alice.push_str(line);
        without_alice.push('\n');
    }
    assert!(!without_alice.contains("  alice:"));
    std::fs::write(&config, without_alice).unwrap();
    hup(&env);
    wait_for_count(&env, "configuration reloaded", 1);
    let refused = skopeo_push(&env, &authfile, "demo/refreshed:v4");
    assert!(!refused.success, "push by a removed user succeeded");
    wait_for_count(&env, "the account no longer exists", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_expiration_sets_the_token_lifetime() {
    let env = Env::start_edited(Opts::default(), with_refresh);
    let (status, body) = env
        .token(
            &format!("service={}&scope=repository:ci/app:pull,push", env.service),
            Some(("alice", ALICE_PW)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 3600);
    let claims = jwt_part(body["token"].as_str().unwrap(), 2);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(
        claims["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );
    // nothing sets a lifetime for demo/: token.expiration
    let (_, plain) = env
        .token(
            &format!("service={}&scope=repository:demo/app:pull", env.service),
            Some(("alice", ALICE_PW)),
        )
        .await;
    assert_eq!(plain["expires_in"], 900);
}

/// containerd (`ctr`, Debian `containerd` 1.6) as an extra client: with `--user` it POSTs
/// the password grant first; with `--refresh` it uses the refresh grant alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_pulls_with_a_password_post_and_with_a_refresh_token() {
    let containerd = require_binary("containerd", "apt-get install containerd");
    let ctr = require_binary("ctr", "apt-get install containerd");
    let env = Env::start_edited(Opts::default(), with_refresh);
    let pushed = env.push("demo/hello:v1", Some(&Env::alice()));
    assert!(pushed.success, "{}", pushed.stderr);

    // a private containerd daemon (root, state and sockets in the work directory)
    let d = env.dir.path().join("containerd");
    std::fs::create_dir_all(&d).unwrap();
    let socket = d.join("c.sock");
    let config = format!(
        "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
         \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
         \"io.containerd.snapshotter.v1.aufs\"]\n\
         [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
         [debug]\n  address = \"{dbg}\"\n",
        root = d.join("root").display(),
        state = d.join("state").display(),
        sock = socket.display(),
        dbg = d.join("debug.sock").display(),
    );
    std::fs::write(d.join("config.toml"), config).unwrap();
    let mut cmd = Command::new(&containerd);
    cmd.arg("--config").arg(d.join("config.toml"));
    let mut daemon = test_support::Process::spawn("containerd", cmd);
    daemon.wait_for_line("containerd successfully booted", T);

    let image = format!("{}/demo/hello:v1", env.registry.host());
    let pull = |auth: &[&str]| {
        let mut c = Command::new(&ctr);
        c.arg("--address")
            .arg(&socket)
            .args(["--namespace", "dt-test", "content", "fetch", "--plain-http"])
            .args(auth)
            .arg(&image);
        run(&mut c, T)
    };
    let user = Env::alice();
    let with_password = pull(&["--user", &user]);
    assert!(
        with_password.success,
        "ctr with --user: {}\n{}",
        with_password.stdout, with_password.stderr
    );
    let log = env.server.output();
    assert!(
        log.lines().any(|l| l.contains("token issued")
            && l.contains("grant=\"password\"")
            && l.contains("demo/hello:pull")),
        "ctr did not POST the password grant:\n{log}"
    );

    // a refresh token for containerd's client id, used alone
    let rt = refresh_token_for(&env, "containerd-client").await;
    let with_refresh = pull(&["--refresh", &rt]);
    assert!(
        with_refresh.success,
        "ctr with --refresh: {}\n{}",
        with_refresh.stdout, with_refresh.stderr
    );
    let log = env.server.output();
    assert!(
        log.lines().any(|l| l.contains("token issued")
            && l.contains("grant=\"refresh_token\"")
            && l.contains("demo/hello:pull")),
        "ctr did not use the refresh grant:\n{log}"
    );
    assert!(!log.contains(&rt), "the refresh token was logged");
    drop(daemon);
}
