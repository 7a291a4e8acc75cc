//! End-to-end: real clients (skopeo, podman, the docker CLI, oci-client) against
//! docker-token-mini-registry, with tokens from a separate docker-token-server process and
//! from the registry's embedded token service; and the 401 answers compared byte for byte
//! with the Debian registry 2.8's.

mod common;

use std::process::Command;

use common::{ALICE_PW, Env, Mode, T};
use test_support::{assert_auth_failure, assert_ok, require_binary, run_with_stdin};

/// skopeo push/pull/inspect/list-tags/copy/delete, ACL denials and anonymous pulls.
fn skopeo_workflow(env: &Env) {
    let host = &env.host;
    let alice = Env::alice();
    let login = env.skopeo(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        ALICE_PW,
        host,
    ]);
    assert_ok("skopeo login", &login);
    let bad = env.skopeo(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "x",
        host,
    ]);
    assert!(!bad.success, "skopeo login with a wrong password succeeded");
    let _ = env.skopeo(&["logout", host]);

    // alice owns demo/ (push), may only pull shared/, nothing else
    assert_ok(
        "alice push demo/hello",
        &env.push("demo/hello:v1", Some(&alice)),
    );
    assert_auth_failure("alice push other/x", &env.push("other/x:v1", Some(&alice)));
    assert_auth_failure("anonymous push", &env.push("demo/anon:v1", None));

    // anonymous pull: allowed on demo/ by the ACL, denied elsewhere
    let pulled = env.pull("demo/hello:v1", None);
    assert_ok("anonymous pull demo/hello", &pulled);
    assert!(pulled.stdout.contains("\"Digest\""), "{}", pulled.stdout);
    assert_ok(
        "admin push private/secret",
        &env.push("private/secret:v1", Some(&Env::admin())),
    );
    assert_auth_failure(
        "anonymous pull private",
        &env.pull("private/secret:v1", None),
    );
    assert_ok(
        "admin pull private",
        &env.pull("private/secret:v1", Some(&Env::admin())),
    );

    let tags = env.skopeo(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &alice,
        &format!("docker://{host}/demo/hello"),
    ]);
    assert_ok("list-tags", &tags);
    assert!(tags.stdout.contains("\"v1\""), "{}", tags.stdout);

    // registry-to-registry copy: blobs are mounted from demo/hello (two scopes in a token)
    let src = format!("docker://{host}/demo/hello:v1");
    let dst = format!("docker://{host}/demo/copy:v1");
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
    let copy = env.pull("demo/copy:v1", Some(&alice));
    assert_ok("pull the copy", &copy);

    // delete: skopeo asks for repository:demo/copy:* ; the registry needs `delete`
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
    // pull-only on shared/: delete denied
    assert_ok(
        "admin push shared/base",
        &env.push("shared/base:v1", Some(&Env::admin())),
    );
    let shared = format!("docker://{host}/shared/base:v1");
    assert_auth_failure(
        "alice delete shared",
        &env.skopeo(&["delete", "--tls-verify=false", "--creds", &alice, &shared]),
    );
    assert_ok(
        "shared still there",
        &env.pull("shared/base:v1", Some(&alice)),
    );

    let logs = env.logs();
    assert!(logs.contains("refused: insufficient scope"), "{logs}");
    assert!(
        !logs.contains(ALICE_PW),
        "a password leaked into a log:\n{logs}"
    );
}

fn docker_login(env: &Env) {
    let docker = require_binary(
        "docker",
        "./scripts/install-peers.sh (the docker CLI; no daemon)",
    );
    let cfg = env.dir.path().join("dockercfg");
    std::fs::create_dir_all(&cfg).unwrap();
    let login = |pw: &str| {
        run_with_stdin(
            Command::new(&docker)
                .args(["login", &env.host, "-u", "alice", "--password-stdin"])
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
    assert!(stored.contains(&env.host), "{stored}");
    let bad = login("wrong-password");
    assert!(!bad.success, "docker login with a wrong password succeeded");
    assert!(
        bad.stderr.contains("authentication failed"),
        "{}",
        bad.stderr
    );
}

fn podman_login(env: &Env) {
    let podman = require_binary("podman", "apt-get install podman");
    let d = env.dir.path();
    let login = |pw: &str| {
        let mut c = Command::new(&podman);
        c.arg("--root")
            .arg(d.join("podman-root"))
            .arg("--runroot")
            .arg(d.join("podman-run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "login",
                "--tls-verify=false",
                "-u",
                "alice",
                "--password-stdin",
                &env.host,
            ])
            .env("REGISTRY_AUTH_FILE", d.join("podman-auth.json"));
        run_with_stdin(&mut c, &format!("{pw}\n"), T)
    };
    let good = login(ALICE_PW);
    assert!(
        good.success && good.stdout.contains("Login Succeeded"),
        "{}\n{}",
        good.stdout,
        good.stderr
    );
    assert!(
        !login("nope").success,
        "podman login with a wrong password succeeded"
    );
}

#[test]
fn separate_token_server_skopeo_docker_podman() {
    let env = Env::start(Mode::Separate);
    skopeo_workflow(&env);
    docker_login(&env);
    podman_login(&env);
}

#[test]
fn single_process_skopeo_docker_podman() {
    let env = Env::start(Mode::SingleProcess);
    skopeo_workflow(&env);
    docker_login(&env);
    podman_login(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_client_push_and_pull_in_both_modes() {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let client = || {
        Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
    };
    for mode in [Mode::Separate, Mode::SingleProcess] {
        let env = tokio::task::spawn_blocking(move || Env::start(mode))
            .await
            .unwrap();
        let reference: Reference = format!("{}/demo/rust:v1", env.host).parse().unwrap();
        let alice = RegistryAuth::Basic("alice".into(), ALICE_PW.into());
        let layer = ImageLayer::oci_v1(b"hello from oci-client".to_vec(), None);
        let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
        client()
            .push(&reference, &[layer], config, &alice, None)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: push: {e}\n{}", env.logs()));

        let (manifest, _) = client()
            .pull_image_manifest(&reference, &alice)
            .await
            .expect("authenticated pull");
        assert_eq!(manifest.layers.len(), 1);

        let anon = client();
        let (manifest, _) = anon
            .pull_image_manifest(&reference, &RegistryAuth::Anonymous)
            .await
            .expect("anonymous pull of demo/");
        let mut blob = Vec::new();
        anon.pull_blob(&reference, &manifest.layers[0], &mut blob)
            .await
            .expect("anonymous blob pull");
        assert_eq!(blob, b"hello from oci-client", "{mode:?}");

        let other: Reference = format!("{}/demo/anon:v1", env.host).parse().unwrap();
        let layer = ImageLayer::oci_v1(b"x".to_vec(), None);
        let config = Config::oci_v1(b"{}".to_vec(), None);
        assert!(
            client()
                .push(&other, &[layer], config, &RegistryAuth::Anonymous, None)
                .await
                .is_err(),
            "{mode:?}: anonymous push succeeded"
        );
    }
}
