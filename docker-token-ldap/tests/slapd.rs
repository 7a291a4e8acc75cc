//! `LdapAuthenticator` against a real OpenLDAP on free loopback ports (test-support's `Slapd`).
//! Needs `slapd`, `ldap-utils`, `openssl` and `ss`; missing ones make the tests fail with the
//! install command.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docker_token_core::{
    Authenticator, AuthenticatorChain, AuthnOutcome, BackendErrorKind, Labels, LoginAttempt,
    StaticUsers,
};
use docker_token_ldap::{
    GroupSearch, LabelMapping, LdapAuthenticator, LdapConfig, TlsMode, UserBind,
};
use test_support::slapd::{PEOPLE, SERVICE_DN, SERVICE_PW, Slapd};

fn config(s: &Slapd) -> LdapConfig {
    let pw = s.dir().join("service.pw");
    std::fs::write(&pw, format!("{SERVICE_PW}\n")).unwrap();
    LdapConfig {
        urls: vec![s.ldap_url()],
        bind_dn: Some(SERVICE_DN.to_owned()),
        bind_password_file: Some(pw),
        base: PEOPLE.to_owned(),
        filter: "(&(objectClass=inetOrgPerson)(uid=${account}))".to_owned(),
        connect_timeout: 2.0,
        operation_timeout: 2.0,
        pool_size: 4,
        cache_size: 100,
        ..LdapConfig::default()
    }
}

fn member_of_label() -> (String, LabelMapping) {
    (
        "group".to_owned(),
        LabelMapping {
            attribute: "memberOf".to_owned(),
            parse_cn: true,
            lower_case: true,
            under: None,
        },
    )
}

async fn outcome(a: &impl Authenticator, user: &str, pw: &str) -> AuthnOutcome {
    a.authenticate(&LoginAttempt::new(user, pw))
        .await
        .unwrap_or_else(|e| panic!("{user:?}: {e}"))
}

fn labels_of(o: &AuthnOutcome) -> Labels {
    match o {
        AuthnOutcome::Authenticated(id) => id.labels.clone(),
        other => panic!("expected Authenticated, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_bind_outcomes_and_chain_fallthrough() {
    let s = Slapd::start();
    let ldap = Arc::new(LdapAuthenticator::from_config(&config(&s)).unwrap());

    // empty password: rejected before any LDAP traffic
    assert_eq!(outcome(&ldap, "alice", "").await, AuthnOutcome::Rejected);
    assert_eq!(
        ldap.stats().opened_total,
        0,
        "no connection for an empty password"
    );
    assert_eq!(outcome(&ldap, "", "").await, AuthnOutcome::NotApplicable);

    let ok = outcome(&ldap, "alice", "alicepw").await;
    assert!(
        matches!(&ok, AuthnOutcome::Authenticated(id) if id.account == "alice"),
        "{ok:?}"
    );
    assert_eq!(
        outcome(&ldap, "alice", "wrong").await,
        AuthnOutcome::Rejected
    );
    assert_eq!(
        outcome(&ldap, "alice", "alicepw ").await,
        AuthnOutcome::Rejected
    );
    assert_eq!(
        outcome(&ldap, "nobody", "x").await,
        AuthnOutcome::NotApplicable
    );
    ldap.ready().await.unwrap();

    // the chain: LDAP first, then static users
    let hash = bcrypt::hash("robotpw", 4).unwrap();
    let statics = StaticUsers::from_htpasswd(&format!("robot:{hash}\nalice:{hash}\n")).unwrap();
    let chain = AuthenticatorChain::new().with(ldap.clone()).with(statics);
    let (o, by) = chain
        .authenticate_with_source(&LoginAttempt::new("robot", "robotpw"))
        .await
        .unwrap();
    assert!(matches!(o, AuthnOutcome::Authenticated(_)), "{o:?}");
    assert_eq!(
        by,
        Some("static"),
        "an unknown LDAP user falls through to static users"
    );
    let (o, by) = chain
        .authenticate_with_source(&LoginAttempt::new("alice", "robotpw"))
        .await
        .unwrap();
    assert_eq!(
        (o, by),
        (AuthnOutcome::Rejected, Some("ldap")),
        "LDAP decides for its own users"
    );
    let (o, _) = chain
        .authenticate_with_source(&LoginAttempt::new("ghost", "x"))
        .await
        .unwrap();
    assert_eq!(o, AuthnOutcome::NotApplicable);

    // a filter that matches several entries is a configuration error (500), said clearly
    let mut c = config(&s);
    c.filter = "(|(uid=${account})(uid=bob))".to_owned();
    let e = LdapAuthenticator::from_config(&c)
        .unwrap()
        .authenticate(&LoginAttempt::new("alice", "alicepw"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), BackendErrorKind::Misconfigured);
    assert!(e.to_string().contains("exactly one"), "{e}");

    // a wrong service password is a configuration error too, not a 401
    let mut c = config(&s);
    std::fs::write(s.dir().join("bad.pw"), "nope").unwrap();
    c.bind_password_file = Some(s.dir().join("bad.pw"));
    let bad = LdapAuthenticator::from_config(&c).unwrap();
    assert_eq!(
        bad.authenticate(&LoginAttempt::new("alice", "alicepw"))
            .await
            .unwrap_err()
            .kind(),
        BackendErrorKind::Misconfigured
    );
    assert!(bad.ready().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_need_escaping_and_injection_attempts() {
    let s = Slapd::start();
    let mut c = config(&s);
    c.filter = "(&(objectClass=inetOrgPerson)(|(uid=${account})(cn=${account})))".to_owned();
    let ldap = LdapAuthenticator::from_config(&c).unwrap();
    assert!(matches!(
        outcome(&ldap, "dave (contractor)", "davepw").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert_eq!(
        outcome(&ldap, "dave (contractor)", "alicepw").await,
        AuthnOutcome::Rejected
    );
    // found by cn; the server returns the DN as `cn=Doe\2C John,…`, which is bound as is
    assert!(matches!(
        outcome(&ldap, "Doe, John", "jdoepw").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert!(matches!(
        outcome(&ldap, "jdoe", "jdoepw").await,
        AuthnOutcome::Authenticated(_)
    ));

    let hostile = [
        "*",
        "*)(uid=*",
        "admin)(|(uid=*",
        "alice)(uid=*",
        "alice\0",
        "\0",
        "a*",
        "dave*",
        "*contractor*",
        "alice)",
        "alice,ou=people,dc=example,dc=org",
        r"\2a",
        "(uid=alice)",
    ];
    for pw in ["alicepw", "davepw", "*"] {
        for user in hostile {
            assert_eq!(
                outcome(&ldap, user, pw).await,
                AuthnOutcome::NotApplicable,
                "search+bind {user:?}/{pw:?}"
            );
        }
    }

    // direct bind: the account is RFC 4514-escaped into the DN template
    let mut d = config(&s);
    d.initial_bind_as_user = true;
    d.bind_dn = Some(format!("cn=${{account}},{PEOPLE}"));
    d.bind_password_file = None;
    d.filter = String::new();
    d.labels = [member_of_label()].into();
    let direct = LdapAuthenticator::from_config(&d).unwrap();
    let o = outcome(&direct, "Doe, John", "jdoepw").await;
    assert_eq!(labels_of(&o)["group"], strings(&["dev"]));
    assert_eq!(
        outcome(&direct, "Doe, John", "wrong").await,
        AuthnOutcome::Rejected
    );
    d.bind_dn = Some(format!("uid=${{account}},{PEOPLE}"));
    let direct = LdapAuthenticator::from_config(&d).unwrap();
    assert!(matches!(
        outcome(&direct, "dave (contractor)", "davepw").await,
        AuthnOutcome::Authenticated(_)
    ));
    let o = outcome(&direct, "alice", "alicepw").await;
    assert_eq!(labels_of(&o)["group"], strings(&["dev", "ops"]));
    for user in
        hostile
            .iter()
            .chain(&["alice+cn=x", "alice,ou=x", "#alice", "alice\\", "alice\\2c"])
    {
        assert_eq!(
            outcome(&direct, user, "alicepw").await,
            AuthnOutcome::Rejected,
            "direct {user:?}"
        );
    }
    direct.ready().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_from_member_of_and_group_searches() {
    let s = Slapd::start();
    let mut c = config(&s);
    c.labels = [
        member_of_label(),
        (
            "mail".to_owned(),
            LabelMapping {
                attribute: "mail".to_owned(),
                ..LabelMapping::default()
            },
        ),
        (
            "group_dn".to_owned(),
            LabelMapping {
                attribute: "memberOf".to_owned(),
                under: Some("OU=Groups,DC=example,DC=org".to_owned()),
                ..LabelMapping::default()
            },
        ),
    ]
    .into();
    let ldap = LdapAuthenticator::from_config(&c).unwrap();
    let alice = labels_of(&outcome(&ldap, "alice", "alicepw").await);
    assert_eq!(alice["group"], strings(&["dev", "ops"]));
    assert_eq!(alice["mail"], strings(&["alice@example.org"]));
    assert_eq!(
        alice["group_dn"],
        strings(&[
            "cn=dev,ou=groups,dc=example,dc=org",
            "cn=ops,ou=groups,dc=example,dc=org"
        ])
    );
    assert_eq!(
        labels_of(&outcome(&ldap, "jdoe", "jdoepw").await)["group"],
        strings(&["dev"])
    );
    assert!(!labels_of(&outcome(&ldap, "carol", "carolpw").await).contains_key("group"));

    // groupOfNames search by the user's DN (jdoe's DN has an escaped comma)
    let mut g = config(&s);
    g.group_search = Some(GroupSearch {
        base: "ou=groups,dc=example,dc=org".to_owned(),
        filter: "(&(objectClass=groupOfNames)(member=${dn}))".to_owned(),
        attribute: "cn".to_owned(),
        label: "group".to_owned(),
        lower_case: true,
    });
    let ldap = LdapAuthenticator::from_config(&g).unwrap();
    assert_eq!(
        labels_of(&outcome(&ldap, "alice", "alicepw").await)["group"],
        strings(&["dev", "ops"])
    );
    assert_eq!(
        labels_of(&outcome(&ldap, "jdoe", "jdoepw").await)["group"],
        strings(&["dev"])
    );
    assert!(!labels_of(&outcome(&ldap, "carol", "carolpw").await).contains_key("group"));

    // posixGroup search by memberUid
    g.group_search = Some(GroupSearch {
        base: "ou=posixgroups,dc=example,dc=org".to_owned(),
        filter: "(&(objectClass=posixGroup)(memberUid=${account}))".to_owned(),
        attribute: "cn".to_owned(),
        label: "posix".to_owned(),
        lower_case: false,
    });
    let ldap = LdapAuthenticator::from_config(&g).unwrap();
    assert_eq!(
        labels_of(&outcome(&ldap, "alice", "alicepw").await)["posix"],
        strings(&["dev", "ops"])
    );
    assert_eq!(
        labels_of(&outcome(&ldap, "bob", "bobpw").await)["posix"],
        strings(&["dev"])
    );
    // TODO(acl): drive a `${labels:group}` ACL rule with these labels once
    // docker_token_core::acl::Acl is on main (it is a stub in this worktree).
}

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
    c.connect_timeout = 1.0;
    c.operation_timeout = 1.0;
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

async fn burst(ldap: &Arc<LdapAuthenticator>, n: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let ldap = ldap.clone();
        tasks.push(tokio::spawn(async move {
            let (user, pw, good) = match i % 4 {
                0 => ("alice", "alicepw", true),
                1 => ("bob", "bobpw", true),
                2 => ("jdoe", "jdoepw", true),
                _ => ("alice", "wrong", false),
            };
            let o = ldap
                .authenticate(&LoginAttempt::new(user, pw))
                .await
                .unwrap();
            assert_eq!(
                matches!(o, AuthnOutcome::Authenticated(_)),
                good,
                "{user}/{pw}: {o:?}"
            );
            good
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    (ok, n - ok)
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
    c.cache_ttl = 30.0;
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
