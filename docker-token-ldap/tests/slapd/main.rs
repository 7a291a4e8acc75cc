//! `LdapAuthenticator` against a real OpenLDAP on free loopback ports (test-support's `Slapd`).
//! Needs `slapd`, `ldap-utils`, `openssl` and `ss`; missing ones make the tests fail with the
//! install command.

use std::sync::Arc;
use std::time::Duration;

use docker_token_core::{
    Authenticator, AuthenticatorChain, AuthnOutcome, BackendErrorKind, Labels, LoginAttempt,
    StaticUsers,
};
use docker_token_ldap::{
    GroupSearch, LabelMapping, LdapAuthenticator, LdapConfig, TlsMode, UserBind,
};
use test_support::slapd::{PEOPLE, SERVICE_DN, SERVICE_PW, Slapd};

mod authn;
mod transport;

pub(crate) fn config(s: &Slapd) -> LdapConfig {
    let pw = s.dir().join("service.pw");
    std::fs::write(&pw, format!("{SERVICE_PW}\n")).unwrap();
    let mut c = LdapConfig::default();
    c.urls = vec![s.ldap_url()];
    c.bind_dn = Some(SERVICE_DN.to_owned());
    c.bind_password_file = Some(pw);
    c.base = PEOPLE.to_owned();
    c.filter = "(&(objectClass=inetOrgPerson)(uid=${account}))".to_owned();
    c.connect_timeout = Duration::from_secs(2);
    c.operation_timeout = Duration::from_secs(2);
    c.pool_size = 4;
    c.cache_size = 100;
    c
}

pub(crate) fn member_of_label() -> (String, LabelMapping) {
    ("group".to_owned(), {
        let mut m = LabelMapping::new("memberOf");
        m.parse_cn = true;
        m.lower_case = true;
        m
    })
}

pub(crate) async fn outcome(a: &impl Authenticator, user: &str, pw: &str) -> AuthnOutcome {
    a.authenticate(&LoginAttempt::new(user, pw))
        .await
        .unwrap_or_else(|e| panic!("{user:?}: {e}"))
}

pub(crate) fn labels_of(o: &AuthnOutcome) -> Labels {
    match o {
        AuthnOutcome::Authenticated(id) => id.labels.clone(),
        other => panic!("expected Authenticated, got {other:?}"),
    }
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `n` concurrent logins: 3/4 good, 1/4 wrong passwords; returns (accepted, rejected).
pub(crate) async fn burst(ldap: &Arc<LdapAuthenticator>, n: usize) -> (usize, usize) {
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
