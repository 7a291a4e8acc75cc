//! Key rotation seen from the registry: the mini-registry re-reads docker-token-server's JWKS,
//! so after the server switches its active key (the old one kept as verify-only), tokens
//! signed by either key are accepted.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ALICE_PW, Env, Mode, gen_key};

async fn status(env: &Env, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{}/v2/demo/hello/tags/list", env.host))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `kid` of a token's header.
fn kid(token: &str) -> String {
    use base64::Engine as _;
    let seg = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn old_tokens_still_verify_after_the_active_key_switches() {
    let env =
        tokio::task::spawn_blocking(|| Env::start_with(Mode::Separate, "  jwks_refresh: 1\n"))
            .await
            .unwrap();
    let query = format!(
        "service={}&scope=repository:demo/hello:pull",
        common::SERVICE.replace(' ', "+")
    );
    let alice = Some(("alice", ALICE_PW));
    let old = env.token(&query, alice).await;
    // 404: authorized, but the repository does not exist
    assert_eq!(status(&env, &old).await, 404);

    // rotate: a new active key, the old certificate kept as verify-only; reload with SIGHUP
    let new_keys = gen_key(env.dir.path(), "keys-new");
    let config_path = env.dir.path().join("auth_config.yml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let old_keys = env.keys.display().to_string();
    let rotated = config
        .replace(
            &format!("  certificate: {old_keys}/token.crt\n  key: {old_keys}/token.key\n"),
            &format!(
                "  certificate: {new}/token.crt\n  key: {new}/token.key\n  verify_certificates: [{old_keys}/token.crt]\n",
                new = new_keys.display()
            ),
        );
    assert_ne!(config, rotated, "the key lines were not found");
    std::fs::write(&config_path, rotated).unwrap();
    let pid = env.server.as_ref().unwrap().pid().unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );

    // wait (bounded) until the server signs with the new key ...
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        let t = env.token(&query, alice).await;
        if kid(&t) != kid(&old) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not switch keys:\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // ... and the registry has re-read the JWKS
    while status(&env, &new).await != 404 {
        assert!(
            Instant::now() < deadline,
            "the registry never accepted the new key:\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        status(&env, &old).await,
        404,
        "a token of the old key was refused"
    );
    // an unknown signer is still refused
    let stranger = {
        let mut parts: Vec<&str> = new.split('.').collect();
        parts[2] = "AAAA";
        parts.join(".")
    };
    assert_eq!(status(&env, &stranger).await, 401);
}
