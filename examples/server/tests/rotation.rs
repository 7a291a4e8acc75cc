//! Key rotation end to end: the real Debian docker-registry 2.8.2, configured with a
//! `rootcertbundle` holding the old and the new certificate, keeps accepting tokens signed
//! by the old key after docker-token-server switches its active key (SIGHUP reload); the
//! JWKS publishes both keys with a `Cache-Control` max-age, and a `TokenVerifier` built
//! from it accepts both generations.

mod common;

use std::path::Path;

use common::{ALICE_PW, T, cli, hash, hup, jwt_part, start_server};
use docker_token_core::verify::TokenVerifier;
use test_support::{Registry, RegistryAuth, workdir};

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";

fn gen_key(dir: &Path, name: &str, config: Option<&Path>) -> String {
    let mut args = vec![
        "gen-key",
        "--out-dir",
        dir.to_str().unwrap(),
        "--name",
        name,
    ];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    let out = cli(&args);
    assert!(out.success, "gen-key failed: {}", out.stderr);
    out.stdout
}

/// The server config with `active` signing and `verify_only` certificates published.
fn config(dir: &Path, active: &str, verify_only: &[&str], alice: &str) -> String {
    let keys = dir.join("keys");
    let verify: Vec<String> = verify_only
        .iter()
        .map(|n| format!("{:?}", keys.join(format!("{n}.crt")).display().to_string()))
        .collect();
    format!(
        r#"server:
  addr: "127.0.0.1:0"
token:
  issuer: "{ISSUER}"
  expiration: 900
  certificate: {cert:?}
  key: {key:?}
  verify_certificates: [{verify}]
  jwks_max_age: 120
users:
  alice:
    password: "{alice}"
acl:
  - match: {{account: "alice", name: "demo/*"}}
    actions: ["pull", "push"]
"#,
        cert = keys.join(format!("{active}.crt")).display().to_string(),
        key = keys.join(format!("{active}.key")).display().to_string(),
        verify = verify.join(", "),
    )
}

fn check_config(path: &Path) {
    let out = cli(&["check-config", path.to_str().unwrap()]);
    assert!(out.success, "check-config: {}", out.stderr);
    assert!(out.stdout.contains("OK"), "{}", out.stdout);
}

/// Waits until the server has logged `n` successful reloads (bounded by `T`).
fn wait_for_reloads(server: &test_support::Process, n: usize) {
    let deadline = std::time::Instant::now() + T;
    while server.output().matches("configuration reloaded").count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload #{n}; output:\n{}",
            server.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

async fn token(url: &str) -> String {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{url}/auth?service={SERVICE}&scope=repository:demo/app:pull,push"
        ))
        .basic_auth("alice", Some(ALICE_PW))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    body["token"].as_str().expect("token").to_owned()
}

/// The registry's answer to a tags list with `token`: 404 (NAME_UNKNOWN) means the token
/// was accepted, 401 that it was not.
async fn registry_status(registry: &Registry, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v2/demo/app/tags/list", registry.host()))
        .bearer_auth(token)
        .send()
        .await
        .expect("registry request");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, challenge)
}

async fn jwks(url: &str) -> (String, serde_json::Value) {
    let resp = reqwest::get(format!("{url}/.well-known/jwks.json"))
        .await
        .expect("jwks");
    let cache = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    (cache, resp.json().await.expect("jwks JSON"))
}

fn leaf_x5c(token: &str) -> String {
    jwt_part(token, 1)["x5c"][0]
        .as_str()
        .expect("x5c")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_keeps_accepting_old_tokens_after_the_active_key_switches() {
    let dir = workdir();
    let keys = dir.path().join("keys");
    let alice = hash(ALICE_PW);
    gen_key(&keys, "old", None);
    let config_path = dir.path().join("auth_config.yml");
    std::fs::write(&config_path, config(dir.path(), "old", &[], &alice)).unwrap();
    check_config(&config_path);

    // gen-key for the next key, next to the old one; it prints the steps for this config.
    let steps = gen_key(&keys, "new", Some(&config_path));
    assert!(steps.contains("To rotate to this key"), "{steps}");
    assert!(
        steps.contains("old.crt") && steps.contains("new.key"),
        "{steps}"
    );
    assert!(
        steps.contains("900 s") && steps.contains("120 s"),
        "{steps}"
    );
    let again = cli(&[
        "gen-key",
        "--out-dir",
        keys.to_str().unwrap(),
        "--name",
        "new",
    ]);
    assert!(!again.success && again.stderr.contains("refusing to overwrite"));

    // Step 1: the new key is published as verify-only; the registries get both certificates.
    std::fs::write(&config_path, config(dir.path(), "old", &["new"], &alice)).unwrap();
    check_config(&config_path);
    let bundle = dir.path().join("bundle.pem");
    let old_pem = std::fs::read_to_string(keys.join("old.crt")).unwrap();
    let new_pem = std::fs::read_to_string(keys.join("new.crt")).unwrap();
    std::fs::write(&bundle, format!("{old_pem}{new_pem}")).unwrap();
    let (server, url) = start_server(&config_path);
    let realm = format!("{url}/auth");
    let registry = Registry::start(
        dir.path(),
        &RegistryAuth {
            realm: &realm,
            service: SERVICE,
            issuer: ISSUER,
            rootcertbundle: &bundle,
        },
    );
    // A registry that only knows the old certificate: the control that shows a token of
    // the new key is really checked against the bundle.
    let old_only_bundle = dir.path().join("old-only.pem");
    std::fs::write(&old_only_bundle, &old_pem).unwrap();
    let old_only_dir = dir.path().join("old-only");
    std::fs::create_dir_all(&old_only_dir).unwrap();
    let old_only = Registry::start(
        &old_only_dir,
        &RegistryAuth {
            realm: &realm,
            service: SERVICE,
            issuer: ISSUER,
            rootcertbundle: &old_only_bundle,
        },
    );

    let old_token = token(&url).await;
    let (cache, document) = jwks(&url).await;
    assert_eq!(cache, "public, max-age=120");
    assert_eq!(
        document["keys"].as_array().map(Vec::len),
        Some(2),
        "{document}"
    );
    assert_eq!(registry_status(&registry, &old_token).await.0, 404);

    // Step 2: switch the active key, keep the old one verify-only; reload with SIGHUP.
    std::fs::write(&config_path, config(dir.path(), "new", &["old"], &alice)).unwrap();
    check_config(&config_path);
    hup(server.pid().expect("pid"));
    wait_for_reloads(&server, 1);
    let new_token = token(&url).await;
    assert_ne!(
        leaf_x5c(&old_token),
        leaf_x5c(&new_token),
        "the new token is signed with the new key"
    );
    assert_ne!(
        jwt_part(&old_token, 1)["kid"],
        jwt_part(&new_token, 1)["kid"]
    );

    // The registry with both certificates accepts both generations…
    assert_eq!(registry_status(&registry, &new_token).await.0, 404);
    let (status, challenge) = registry_status(&registry, &old_token).await;
    assert_eq!(
        status, 404,
        "old token rejected after the switch: {challenge}"
    );
    // …the one with only the old certificate rejects the new key's tokens.
    let (status, challenge) = registry_status(&old_only, &new_token).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(registry_status(&old_only, &old_token).await.0, 404);

    // The JWKS still lists both; a verifier built from it (what a mini-registry does)
    // accepts both generations, and one built from the old-only bundle does not.
    let (_, document) = jwks(&url).await;
    assert_eq!(
        document["keys"].as_array().map(Vec::len),
        Some(2),
        "{document}"
    );
    let from_jwks = TokenVerifier::builder(ISSUER, SERVICE)
        .jwks_json(&document)
        .unwrap()
        .build()
        .unwrap();
    for t in [&old_token, &new_token] {
        let verified = from_jwks.verify(t).expect("verifies from the JWKS");
        assert!(verified.allows("repository", "demo/app", "push"));
    }
    let from_bundle = TokenVerifier::builder(ISSUER, SERVICE)
        .certificate_bundle_file(&old_only_bundle)
        .unwrap()
        .build()
        .unwrap();
    assert!(from_bundle.verify(&old_token).is_ok());
    assert!(from_bundle.verify(&new_token).is_err());

    // Step 3: the old key is dropped after the lifetime; the JWKS shrinks to one key.
    std::fs::write(&config_path, config(dir.path(), "new", &[], &alice)).unwrap();
    hup(server.pid().expect("pid"));
    wait_for_reloads(&server, 2);
    let (_, document) = jwks(&url).await;
    assert_eq!(
        document["keys"].as_array().map(Vec::len),
        Some(1),
        "{document}"
    );
}
