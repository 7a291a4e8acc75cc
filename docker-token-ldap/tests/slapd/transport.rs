//! TLS, failover, outages, the pool bound, the cache and the user-bind strategies.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_ldaps_and_certificate_checks() {
    let s = Slapd::start();
    let with = |urls: Vec<String>, tls: Option<TlsMode>, ca: std::path::PathBuf, skip: bool| {
        let mut c = config(&s);
        c.urls = urls;
        c.tls = tls;
        c.ca_certificate = Some(ca);
        c.insecure_tls_skip_verify = skip;
        LdapAuthenticator::from_config(&c).unwrap()
    };
    let localhost_ldaps = format!("ldaps://localhost:{}", s.ldaps_port);
    for (name, a) in [
        (
            "starttls",
            with(
                vec![s.ldap_url()],
                Some(TlsMode::Starttls),
                s.ca_cert(),
                false,
            ),
        ),
        ("ldaps", with(vec![s.ldaps_url()], None, s.ca_cert(), false)),
        (
            "ldaps localhost",
            with(vec![localhost_ldaps], None, s.ca_cert(), false),
        ),
        (
            "skip verify",
            with(vec![s.ldaps_url()], None, s.wrong_ca_cert(), true),
        ),
    ] {
        let o = a
            .authenticate(&LoginAttempt::new("bob", "bobpw"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(o, AuthnOutcome::Authenticated(_)), "{name}: {o:?}");
        assert_eq!(
            outcome(&a, "bob", "nope").await,
            AuthnOutcome::Rejected,
            "{name}"
        );
    }
    for (name, a) in [
        (
            "ldaps, wrong CA",
            with(vec![s.ldaps_url()], None, s.wrong_ca_cert(), false),
        ),
        (
            "starttls, wrong CA",
            with(
                vec![s.ldap_url()],
                Some(TlsMode::Starttls),
                s.wrong_ca_cert(),
                false,
            ),
        ),
    ] {
        let e = a
            .authenticate(&LoginAttempt::new("bob", "bobpw"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::Misconfigured, "{name}: {e}");
        assert!(e.to_string().contains("certificate"), "{name}: {e}");
        assert!(a.ready().await.is_err(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_second_url() {
    let s = Slapd::start();
    let mut c = config(&s);
    let dead = format!("ldap://127.0.0.1:{}", test_support::free_port());
    c.urls = vec![dead, s.ldap_url()];
    let ldap = LdapAuthenticator::from_config(&c).unwrap();
    let t = Instant::now();
    assert!(matches!(
        outcome(&ldap, "alice", "alicepw").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a refused connection fails over at once: {:?}",
        t.elapsed()
    );
    ldap.ready().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slapd_down_is_unavailable_and_recovery_needs_no_restart() {
    let mut s = Slapd::start();
    let mut c = config(&s);
    c.connect_timeout = Duration::from_secs(1);
    c.operation_timeout = Duration::from_secs(1);
    let ldap = LdapAuthenticator::from_config(&c).unwrap();
    assert!(matches!(
        outcome(&ldap, "alice", "alicepw").await,
        AuthnOutcome::Authenticated(_)
    ));
    ldap.ready().await.unwrap();

    s.stop();
    let t = Instant::now();
    let e = ldap
        .authenticate(&LoginAttempt::new("alice", "alicepw"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), BackendErrorKind::Unavailable, "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        ldap.ready().await.unwrap_err().kind(),
        BackendErrorKind::Unavailable
    );

    s.start_again();
    assert!(matches!(
        outcome(&ldap, "alice", "alicepw").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert_eq!(
        outcome(&ldap, "alice", "wrong").await,
        AuthnOutcome::Rejected
    );
    ldap.ready().await.unwrap();

    // a hung server (accepts, never answers): unavailable within the timeouts
    s.freeze(true);
    let t = Instant::now();
    let e = ldap
        .authenticate(&LoginAttempt::new("bob", "bobpw"))
        .await
        .unwrap_err();
    let took = t.elapsed();
    s.freeze(false);
    assert_eq!(e.kind(), BackendErrorKind::Unavailable, "{e}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(matches!(
        outcome(&ldap, "bob", "bobpw").await,
        AuthnOutcome::Authenticated(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_stays_bounded_under_200_concurrent_requests() {
    let s = Arc::new(Slapd::start());
    let c = config(&s);
    let ldap = Arc::new(LdapAuthenticator::from_config(&c).unwrap());
    let bound = 2 * c.pool_size; // service pool + user-bind pool

    let done = Arc::new(AtomicBool::new(false));
    let (max_ours, max_server) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sampler = {
        let (ldap, s, done, mo, ms) = (
            ldap.clone(),
            s.clone(),
            done.clone(),
            max_ours.clone(),
            max_server.clone(),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                mo.fetch_max(ldap.stats().open_connections, Ordering::Relaxed);
                ms.fetch_max(s.established_connections(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let t = Instant::now();
    let (ok, rejected) = burst(&ldap, 200).await;
    let took = t.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!((ok, rejected), (150, 50));
    let stats = ldap.stats();
    eprintln!(
        "200 concurrent logins in {took:?}; {stats:?}; max open (ours) {max_ours:?}, max established (ss) {max_server:?}"
    );
    assert!(
        max_ours.load(Ordering::Relaxed) <= bound,
        "{max_ours:?} > {bound}"
    );
    assert!(
        max_server.load(Ordering::Relaxed) <= bound,
        "slapd saw {max_server:?} > {bound}"
    );
    assert!(
        max_server.load(Ordering::Relaxed) >= 1,
        "the sampler saw the connections"
    );
    assert!(
        stats.opened_total <= bound as u64,
        "connections are reused, not reopened: {stats:?}"
    );
    assert!(s.established_connections() <= bound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_serves_bursts_and_never_caches_failures() {
    let mut s = Slapd::start();
    let mut c = config(&s);
    c.cache_ttl = Duration::from_secs(30);
    let ldap = Arc::new(LdapAuthenticator::from_config(&c).unwrap());
    let first = labels_of(&outcome(&ldap, "alice", "alicepw").await);
    outcome(&ldap, "bob", "bobpw").await;
    assert_eq!(ldap.stats().cached, 2);

    s.stop(); // from here on, only the cache can answer
    let again = labels_of(&outcome(&ldap, "alice", "alicepw").await);
    assert_eq!(first, again, "cached labels");
    for _ in 0..50 {
        assert!(matches!(
            outcome(&ldap, "bob", "bobpw").await,
            AuthnOutcome::Authenticated(_)
        ));
    }
    let e = ldap
        .authenticate(&LoginAttempt::new("bob", "bobpx"))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        BackendErrorKind::Unavailable,
        "a different password is not a cache hit"
    );
    s.start_again();
    assert_eq!(
        outcome(&ldap, "alice", "wrong").await,
        AuthnOutcome::Rejected
    );
    assert_eq!(
        outcome(&ldap, "alice", "wrong").await,
        AuthnOutcome::Rejected,
        "failures are not cached as successes"
    );
    assert_eq!(
        ldap.stats().cached,
        1,
        "a failed attempt drops the account's entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_bind_strategy_is_correct() {
    let s = Slapd::start();
    for strategy in [UserBind::Pooled, UserBind::Rebind, UserBind::Fresh] {
        let mut c = config(&s);
        c.user_bind = strategy;
        c.pool_size = 1; // one service connection: a rebind that left it as the user would show
        c.labels = [member_of_label()].into();
        let ldap = LdapAuthenticator::from_config(&c).unwrap();
        for _ in 0..3 {
            assert_eq!(
                labels_of(&outcome(&ldap, "alice", "alicepw").await)["group"],
                strings(&["dev", "ops"]),
                "{strategy:?}"
            );
            assert_eq!(
                outcome(&ldap, "bob", "alicepw").await,
                AuthnOutcome::Rejected,
                "{strategy:?}"
            );
            // after a failed bind the connection is anonymous; anonymous search is refused by
            // this slapd, so this search proves the service identity was restored
            assert_eq!(
                labels_of(&outcome(&ldap, "jdoe", "jdoepw").await)["group"],
                strings(&["dev"]),
                "{strategy:?}"
            );
            assert_eq!(
                outcome(&ldap, "nobody", "x").await,
                AuthnOutcome::NotApplicable,
                "{strategy:?}"
            );
        }
        ldap.ready().await.unwrap();
    }
}

/// The pool-vs-rebind-vs-fresh measurement behind the `user_bind` default. Run with
/// `cargo test -p docker-token-ldap --release --test slapd -- --ignored --nocapture measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_user_bind_strategies() {
    let s = Slapd::start();
    for round in 0..2 {
        for strategy in [UserBind::Pooled, UserBind::Rebind, UserBind::Fresh] {
            for tls in [false, true] {
                let mut c = config(&s);
                c.user_bind = strategy;
                if tls {
                    c.urls = vec![s.ldaps_url()];
                    c.ca_certificate = Some(s.ca_cert());
                }
                let ldap = Arc::new(LdapAuthenticator::from_config(&c).unwrap());
                burst(&ldap, 8).await; // warm the pools
                let n = 2000;
                let t = Instant::now();
                for _ in 0..(n / 200) {
                    burst(&ldap, 200).await;
                }
                let took = t.elapsed();
                eprintln!(
                    "round {round} {strategy:?} tls={tls}: {n} logins in {took:?} = {:.0}/s; opened {}",
                    n as f64 / took.as_secs_f64(),
                    ldap.stats().opened_total
                );
            }
        }
    }
}
