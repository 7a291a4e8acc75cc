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

async fn get_status(url: &str) -> u16 {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// The OIDC login routes follow SIGHUP like the rest: adding `oidc_auth` mounts them, a new
/// `redirect_url` moves the callback, removing the section unmounts them. (The provider is
/// unreachable here, which the start route answers with 503: building a login makes no
/// network call, and the routing is what this test is about.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_oidc_login_routes() {
    let dir = test_support::workdir();
    let config = write_config(dir.path(), &Opts::default());
    let original = std::fs::read_to_string(&config).unwrap();
    let (mut server, url) = start_server(&config);
    let pid = server.pid().expect("pid");
    let oidc = |callback: &str| {
        format!(
            "{original}oidc_auth:\n  issuer: \"http://127.0.0.1:9\"\n  redirect_url: \"{url}{callback}\"\n  client_id: registry-ui\n  client_secret: not-a-real-secret\n"
        )
    };
    assert_eq!(get_status(&format!("{url}/oidc_auth")).await, 404);

    std::fs::write(&config, oidc("/oidc_auth/callback")).unwrap();
    hup(pid);
    server.wait_for_line("configuration reloaded", T);
    assert_eq!(
        get_status(&format!("{url}/oidc_auth")).await,
        503,
        "the login is mounted (its provider is down)"
    );
    let cb = get_status(&format!("{url}/oidc_auth/callback?code=x&state=y")).await;
    assert!(
        (400..500).contains(&cb) && cb != 404,
        "callback mounted and rejecting garbage: {cb}"
    );

    std::fs::write(&config, oidc("/login/done")).unwrap();
    hup(pid);
    wait_for_nth_line(&mut server, "configuration reloaded", 2);
    assert_eq!(get_status(&format!("{url}/oidc_auth/callback")).await, 404);
    let cb = get_status(&format!("{url}/login/done?code=x&state=y")).await;
    assert!(
        (400..500).contains(&cb) && cb != 404,
        "moved callback: {cb}"
    );

    std::fs::write(&config, &original).unwrap();
    hup(pid);
    wait_for_nth_line(&mut server, "configuration reloaded", 3);
    assert_eq!(get_status(&format!("{url}/oidc_auth")).await, 404);
    assert_eq!(get_status(&format!("{url}/login/done")).await, 404);
    assert_eq!(status(&url, "alice", ALICE_PW).await, 200);
}

fn wait_for_nth_line(server: &mut test_support::Process, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + T;
    while server.output().matches(needle).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no {n}th {needle:?}; output:\n{}",
            server.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
