//! SIGHUP reloads the configuration: an invalid file keeps the running one; a valid one is
//! used for new requests, with fresh credential caches (a changed password takes effect at
//! once, not after the cache TTL).

mod common;

use common::{ALICE_PW, Opts, T, hash, hup, start_server, write_config};

async fn status(url: &str, user: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .get(format!(
            "{url}/auth?service=test-registry&scope=repository:demo/app:pull"
        ))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_valid_configs_and_keeps_serving_on_invalid_ones() {
    let dir = test_support::workdir();
    let config = write_config(dir.path(), &Opts::default());
    let original = std::fs::read_to_string(&config).unwrap();
    let (mut server, url) = start_server(&config);
    let pid = server.pid().expect("pid");

    assert_eq!(status(&url, "alice", ALICE_PW).await, 200);
    assert_eq!(status(&url, "alice", ALICE_PW).await, 200, "now cached");

    // an invalid file: logged, the old configuration keeps serving
    std::fs::write(&config, format!("{original}bogus_section: 1\n")).unwrap();
    hup(pid);
    let line = server.wait_for_line("configuration reload failed", T);
    assert!(line.contains("bogus_section"), "{line}");
    assert_eq!(status(&url, "alice", ALICE_PW).await, 200);

    // a valid file with alice's password changed: the new service (and a fresh cache)
    let alice_hash = original
        .lines()
        .skip_while(|l| !l.contains("alice:"))
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("alice's password line")
        .trim_matches('"')
        .to_owned();
    let changed = original.replace(&alice_hash, &hash("new-password"));
    assert_ne!(changed, original);
    std::fs::write(&config, changed).unwrap();
    hup(pid);
    server.wait_for_line("configuration reloaded", T);
    assert_eq!(
        status(&url, "alice", ALICE_PW).await,
        401,
        "the old password was cached by the old service only"
    );
    assert_eq!(status(&url, "alice", "new-password").await, 200);
    assert_eq!(status(&url, "admin", common::ADMIN_PW).await, 200);
}
