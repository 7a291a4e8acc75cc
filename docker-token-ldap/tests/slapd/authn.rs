//! Outcomes, escaping, injection attempts and labels.

use super::*;

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
        ("mail".to_owned(), LabelMapping::new("mail")),
        ("group_dn".to_owned(), {
            let mut m = LabelMapping::new("memberOf");
            m.under = Some("OU=Groups,DC=example,DC=org".to_owned());
            m
        }),
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
    let mut search = GroupSearch::new(
        "ou=groups,dc=example,dc=org",
        "(&(objectClass=groupOfNames)(member=${dn}))",
    );
    search.label = "group".to_owned();
    search.lower_case = true;
    g.group_search = Some(search);
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

    let by_dn = g.group_search.clone();

    // posixGroup search by memberUid
    let mut search = GroupSearch::new(
        "ou=posixgroups,dc=example,dc=org",
        "(&(objectClass=posixGroup)(memberUid=${account}))",
    );
    search.label = "posix".to_owned();
    g.group_search = Some(search);
    let ldap = LdapAuthenticator::from_config(&g).unwrap();
    assert_eq!(
        labels_of(&outcome(&ldap, "alice", "alicepw").await)["posix"],
        strings(&["dev", "ops"])
    );
    assert_eq!(
        labels_of(&outcome(&ldap, "bob", "bobpw").await)["posix"],
        strings(&["dev"])
    );

    // direct bind: the entry and its groups are read as the user, on the bind connection
    let mut d = config(&s);
    d.initial_bind_as_user = true;
    d.bind_dn = Some(format!("uid=${{account}},{PEOPLE}"));
    d.bind_password_file = None;
    d.filter = String::new();
    d.group_search = by_dn;
    let direct = LdapAuthenticator::from_config(&d).unwrap();
    assert_eq!(
        labels_of(&outcome(&direct, "alice", "alicepw").await)["group"],
        strings(&["dev", "ops"])
    );
    assert_eq!(
        outcome(&direct, "alice", "wrong").await,
        AuthnOutcome::Rejected
    );
    // TODO(acl): drive a `${labels:group}` ACL rule with these labels once
    // docker_token_core::acl::Acl is on main (it is a stub in this worktree).
}

/// LDAP matches `uid` case-insensitively and ignores surrounding spaces: `ALICE` and
/// ` alice` bind as alice. The identity must then be `alice`, as the directory spells it, or
/// ACL rules written for `alice` (a deny, say) would not apply to `ALICE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_is_spelled_as_in_the_directory() {
    let s = Slapd::start();
    let mut cfg = config(&s);
    cfg.cache_ttl = Duration::from_secs(30);
    let ldap = LdapAuthenticator::from_config(&cfg).unwrap();
    for typed in ["alice", "ALICE", "Alice", " alice"] {
        for round in 0..2 {
            // the second round is served by the cache
            let out = outcome(&ldap, typed, "alicepw").await;
            assert!(
                matches!(&out, AuthnOutcome::Authenticated(id) if id.account == "alice"),
                "{typed:?} (round {round}) → {out:?}"
            );
        }
    }
    // an explicit attribute: mail
    let mut cfg = config(&s);
    cfg.filter = "(|(uid=${account})(mail=${account}))".to_owned();
    cfg.account_attribute = Some("uid".to_owned());
    let ldap = LdapAuthenticator::from_config(&cfg).unwrap();
    let out = outcome(&ldap, "ALICE", "alicepw").await;
    assert!(
        matches!(&out, AuthnOutcome::Authenticated(id) if id.account == "alice"),
        "{out:?}"
    );
    // logging in by mail keeps the typed name (the uid does not equal it)
    let out = outcome(&ldap, "alice@example.org", "alicepw").await;
    assert!(
        matches!(&out, AuthnOutcome::Authenticated(id) if id.account == "alice@example.org"),
        "{out:?}"
    );
}

/// The refresh-token grant looks users up without a password: search+bind mode finds them
/// with the service account (current labels, the directory's spelling); direct-bind mode
/// cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_without_a_password() {
    use docker_token_core::LookupOutcome;
    let s = Slapd::start();
    let mut c = config(&s);
    c.labels = [member_of_label()].into();
    c.cache_ttl = Duration::from_secs(60);
    let ldap = LdapAuthenticator::from_config(&c).unwrap();
    match ldap.lookup_account("alice").await.unwrap() {
        LookupOutcome::Found(id) => {
            assert_eq!(id.account, "alice");
            assert_eq!(id.labels["group"], strings(&["dev", "ops"]));
        }
        other => panic!("{other:?}"),
    }
    match ldap.lookup_account("ALICE").await.unwrap() {
        LookupOutcome::Found(id) => assert_eq!(id.account, "alice", "the directory's spelling"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ldap.lookup_account("nobody").await.unwrap(),
        LookupOutcome::NotFound
    );
    assert_eq!(
        ldap.lookup_account("*").await.unwrap(),
        LookupOutcome::NotFound,
        "filter metacharacters are escaped"
    );
    assert_eq!(
        ldap.lookup_account("").await.unwrap(),
        LookupOutcome::NotFound
    );

    let mut d = config(&s);
    d.initial_bind_as_user = true;
    d.bind_dn = Some(format!("uid=${{account}},{PEOPLE}"));
    d.bind_password_file = None;
    d.filter = String::new();
    let direct = LdapAuthenticator::from_config(&d).unwrap();
    assert_eq!(
        direct.lookup_account("alice").await.unwrap(),
        LookupOutcome::Unsupported
    );
}
