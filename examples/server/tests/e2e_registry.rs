//! End-to-end: the real Debian docker-registry 2.8.2 trusts tokens from docker-token-server
//! (started from a docker_auth-format config), and real clients push and pull through it:
//! skopeo, podman, the docker CLI (login) and the oci-client crate.

mod common;

use std::process::Command;

use common::{ADMIN_PW, ALICE_PW, Env, Opts, T, jwt_part};
use test_support::{assert_auth_failure, assert_ok, require_binary, run_with_stdin};

#[test]
fn skopeo_push_pull_delete_copy_and_denials() {
    let env = Env::start(Opts::default());
    let host = env.registry.host();

    // login: good and bad password
    let login = env.skopeo(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        ALICE_PW,
        &host,
    ]);
    assert_ok("skopeo login alice", &login);
    let bad = env.skopeo(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "wrong",
        &host,
    ]);
    assert!(
        !bad.success && bad.stderr.contains("invalid username/password"),
        "{}",
        bad.stderr
    );
    let _ = env.skopeo(&["logout", &host]);

    // push allowed (alice owns demo/ through ${labels:team}) and denied (other/)
    assert_ok(
        "alice push demo/hello",
        &env.push("demo/hello:v1", Some(&Env::alice())),
    );
    assert_auth_failure(
        "alice push other/x",
        &env.push("other/x:v1", Some(&Env::alice())),
    );
    assert_auth_failure("anonymous push demo/anon", &env.push("demo/anon:v1", None));

    // anonymous pull: allowed on demo/, denied elsewhere
    let pulled = env.pull("demo/hello:v1", None);
    assert_ok("anonymous pull demo/hello", &pulled);
    assert!(pulled.stdout.contains("\"Digest\""), "{}", pulled.stdout);
    assert_ok(
        "admin push private/secret",
        &env.push("private/secret:v1", Some(&Env::admin())),
    );
    assert_auth_failure(
        "anonymous pull private/secret",
        &env.pull("private/secret:v1", None),
    );
    assert_ok(
        "admin pull private/secret",
        &env.pull("private/secret:v1", Some(&Env::admin())),
    );

    // cross-repository copy (mount probe asks for two scopes in one request)
    let src = format!("docker://{host}/demo/hello:v1");
    let dst = format!("docker://{host}/demo/copy:v1");
    let alice = Env::alice();
    assert_ok(
        "cross-repository copy",
        &env.skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &alice,
            "--dest-creds",
            &alice,
            &src,
            &dst,
        ]),
    );
    assert_ok("pull the copy", &env.pull("demo/copy:v1", Some(&alice)));

    // delete: skopeo asks for repository:demo/copy:* ; alice's rule grants ["*"]
    assert_ok(
        "alice delete",
        &env.skopeo(&["delete", "--tls-verify=false", "--creds", &alice, &dst]),
    );
    let gone = env.pull("demo/copy:v1", Some(&alice));
    assert!(
        !gone.success && gone.stderr.to_lowercase().contains("manifest unknown"),
        "{}",
        gone.stderr
    );
    // shared/ is pull-only for alice: delete denied
    assert_ok(
        "admin push shared/base",
        &env.push("shared/base:v1", Some(&Env::admin())),
    );
    let shared = format!("docker://{host}/shared/base:v1");
    assert_auth_failure(
        "alice delete shared",
        &env.skopeo(&["delete", "--tls-verify=false", "--creds", &alice, &shared]),
    );

    // secrets never reach the server log
    let log = env.server.output();
    assert!(log.contains("token issued"), "audit log missing:\n{log}");
    assert!(
        !log.contains(ALICE_PW) && !log.contains(ADMIN_PW),
        "a password leaked into the log:\n{log}"
    );
}

#[test]
fn docker_cli_login_good_and_bad() {
    let docker = require_binary("docker", "apt-get install docker.io (only the CLI is used)");
    let env = Env::start(Opts::default());
    let cfg = env.dir.path().join("dockercfg");
    std::fs::create_dir_all(&cfg).unwrap();
    let login = |pw: &str| {
        run_with_stdin(
            Command::new(&docker)
                .args([
                    "login",
                    &env.registry.host(),
                    "-u",
                    "alice",
                    "--password-stdin",
                ])
                .env("DOCKER_CONFIG", &cfg),
            &format!("{pw}\n"),
            T,
        )
    };
    let good = login(ALICE_PW);
    assert!(
        good.success && good.stdout.contains("Login Succeeded"),
        "{}\n{}",
        good.stdout,
        good.stderr
    );
    let stored = std::fs::read_to_string(cfg.join("config.json")).unwrap();
    assert!(stored.contains(&env.registry.host()), "{stored}");
    let bad = login("wrong-password");
    assert!(!bad.success, "docker login with a wrong password succeeded");
    assert!(
        bad.stderr.contains("authentication failed"),
        "docker should show our JSON error message: {}",
        bad.stderr
    );
}

#[test]
fn podman_login() {
    let podman = require_binary("podman", "apt-get install podman");
    let env = Env::start(Opts::default());
    let d = env.dir.path();
    let podman_cmd = |args: &[&str]| {
        let mut c = Command::new(&podman);
        c.arg("--root")
            .arg(d.join("podman-root"))
            .arg("--runroot")
            .arg(d.join("podman-run"));
        c.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        c.args(args)
            .env("REGISTRY_AUTH_FILE", d.join("podman-auth.json"));
        c
    };
    let host = env.registry.host();
    let good = run_with_stdin(
        &mut podman_cmd(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ]),
        &format!("{ALICE_PW}\n"),
        T,
    );
    assert!(
        good.success && good.stdout.contains("Login Succeeded"),
        "{}\n{}",
        good.stdout,
        good.stderr
    );
    let bad = run_with_stdin(
        &mut podman_cmd(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ]),
        "nope\n",
        T,
    );
    assert!(!bad.success, "podman login with a wrong password succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_client_anonymous_pull_and_authenticated_push_pull() {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let env = tokio::task::spawn_blocking(|| Env::start(Opts::default()))
        .await
        .unwrap();
    let host = env.registry.host();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });

    // authenticated push as alice into her team's namespace
    let reference: Reference = format!("{host}/demo/rust:v1").parse().unwrap();
    let alice = RegistryAuth::Basic("alice".into(), ALICE_PW.into());
    let layer = ImageLayer::oci_v1(b"hello from oci-client".to_vec(), None);
    let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
    client
        .push(&reference, &[layer], config, &alice, None)
        .await
        .expect("authenticated push");

    // authenticated pull
    let alice_client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let (manifest, _digest) = alice_client
        .pull_image_manifest(&reference, &alice)
        .await
        .expect("authenticated pull");
    assert_eq!(manifest.layers.len(), 1);

    // anonymous pull of the same image (anonymous may pull demo/)
    let anon_client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let (manifest, _) = anon_client
        .pull_image_manifest(&reference, &RegistryAuth::Anonymous)
        .await
        .expect("anonymous pull");
    let mut blob = Vec::new();
    anon_client
        .pull_blob(&reference, &manifest.layers[0], &mut blob)
        .await
        .expect("anonymous blob pull");
    assert_eq!(blob, b"hello from oci-client");

    // anonymous push is refused
    let push_anon: Reference = format!("{host}/demo/anon:v1").parse().unwrap();
    let anon_push_client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let layer = ImageLayer::oci_v1(b"x".to_vec(), None);
    let config = Config::oci_v1(b"{}".to_vec(), None);
    assert!(
        anon_push_client
            .push(&push_anon, &[layer], config, &RegistryAuth::Anonymous, None)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_for_admin_only() {
    let env = tokio::task::spawn_blocking(|| Env::start(Opts::default()))
        .await
        .unwrap();
    let host = env.registry.host();
    let push = {
        let e = &env;
        tokio::task::block_in_place(|| e.push("demo/hello:v1", Some(&Env::admin())))
    };
    assert_ok("admin push", &push);
    let http = reqwest::Client::new();
    let q = format!("service={}&scope=registry:catalog:*", env.service);

    let (status, body) = env.token(&q, Some(("admin", ADMIN_PW))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        jwt_part(token, 2)["access"][0]["actions"],
        serde_json::json!(["*"])
    );
    let r = http
        .get(format!("http://{host}/v2/_catalog"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("demo/hello"));

    let (status, body) = env.token(&q, Some(("alice", ALICE_PW))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        jwt_part(token, 2)["access"][0]["actions"],
        serde_json::json!([])
    );
    let r = http
        .get(format!("http://{host}/v2/_catalog"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_scope_is_200_with_empty_actions_and_the_registry_refuses() {
    let env = tokio::task::spawn_blocking(|| Env::start(Opts::default()))
        .await
        .unwrap();
    let (status, body) = env
        .token(
            &format!(
                "service={}&scope=repository:other/x:pull,push&account=alice",
                env.service
            ),
            Some(("alice", ALICE_PW)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let token = body["token"].as_str().unwrap();
    let claims = jwt_part(token, 2);
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type":"repository","name":"other/x","actions":[]}])
    );
    assert_eq!(claims["aud"], env.service.as_str());
    let r = reqwest::Client::new()
        .post(format!(
            "http://{}/v2/other/x/blobs/uploads/",
            env.registry.host()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    // bad credentials are a 401 with a Basic challenge and a docker-style body
    let (status, body) = env
        .token(&format!("service={}", env.service), Some(("alice", "nope")))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
}

#[test]
fn service_name_with_spaces() {
    let env = Env::start(Opts {
        service: "my registry service",
        ..Opts::default()
    });
    assert_ok(
        "push with a spaced service",
        &env.push("demo/spaces:v1", Some(&Env::alice())),
    );
    assert_ok(
        "pull with a spaced service",
        &env.pull("demo/spaces:v1", None),
    );
}

/// The JOSE header of a token issued to alice.
fn token_header(env: &Env) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, body) = rt.block_on(env.token(
        &format!("service={}", env.service),
        Some(("alice", ALICE_PW)),
    ));
    jwt_part(body["token"].as_str().unwrap(), 1)
}

#[test]
fn x5c_and_kid_only_tokens_are_accepted() {
    // default: certificate configured → x5c + libtrust kid
    let env = Env::start(Opts::default());
    let header = token_header(&env);
    assert!(
        header["x5c"].as_array().is_some_and(|a| a.len() == 1),
        "{header}"
    );
    assert_ok(
        "push with x5c tokens",
        &env.push("demo/x5c:v1", Some(&Env::alice())),
    );

    // key only → no x5c; the registry must find the key by its libtrust kid
    let env = Env::start(Opts {
        with_certificate: false,
        ..Opts::default()
    });
    let header = token_header(&env);
    assert!(header.get("x5c").is_none(), "{header}");
    assert_eq!(header["kid"].as_str().unwrap().len(), 59, "{header}");
    assert_ok(
        "push with kid-only tokens",
        &env.push("demo/kid:v1", Some(&Env::alice())),
    );
    assert_ok(
        "anonymous pull with kid-only tokens",
        &env.pull("demo/kid:v1", None),
    );

    // the RFC 7638 kid without x5c is what registry 3.x wants; 2.8 rejects it (protocol.md §9)
    let env = Env::start(Opts {
        with_certificate: false,
        kid_style: "rfc7638",
        ..Opts::default()
    });
    assert_auth_failure(
        "2.8 with an RFC 7638 kid only",
        &env.push("demo/v3kid:v1", Some(&Env::alice())),
    );
}
