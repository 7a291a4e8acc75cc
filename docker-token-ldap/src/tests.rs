//! Configuration validation and the no-network paths of the authenticator.

use super::*;
use crate::config::account_attribute_of;

fn base() -> LdapConfig {
    serde_json::from_str(
        r#"{"urls":["ldap://127.0.0.1:1"],"base":"ou=people,dc=example,dc=org",
            "filter":"(uid=${account})"}"#,
    )
    .unwrap()
}

fn err(c: &LdapConfig) -> String {
    LdapAuthenticator::from_config(c).unwrap_err().to_string()
}

#[test]
fn valid_configs_build_without_connecting() {
    let a = LdapAuthenticator::from_config(&base()).unwrap();
    assert_eq!(a.stats().opened_total, 0);
    assert_eq!(a.name(), "ldap");
    let mut d = base();
    d.initial_bind_as_user = true;
    d.bind_dn = Some("uid=${account},ou=people,dc=example,dc=org".to_owned());
    d.filter = String::new();
    LdapAuthenticator::from_config(&d).unwrap();
}

#[test]
fn invalid_configs_say_where_and_why() {
    let mut c = base();
    c.filter = "(uid=alice)".to_owned();
    assert!(err(&c).starts_with("filter: "), "{}", err(&c));
    c.filter = "(uid=${account}".to_owned();
    assert!(err(&c).contains("not a valid LDAP filter"), "{}", err(&c));
    c.filter = "(uid=${acount})".to_owned();
    assert!(err(&c).starts_with("filter: "));

    let mut c = base();
    c.base = "not a dn".to_owned();
    assert!(err(&c).starts_with("base: "));
    c.base = String::new();
    assert!(err(&c).starts_with("base: "));

    let mut c = base();
    c.bind_dn = Some("cn=readonly,dc=example,dc=org".to_owned());
    assert!(err(&c).contains("bind_password_file or bind_password_env"));

    let mut c = base();
    c.pool_size = 0;
    assert!(err(&c).starts_with("pool_size: "));

    let mut d = base();
    d.initial_bind_as_user = true;
    d.bind_dn = Some("cn=fixed,dc=example,dc=org".to_owned());
    assert!(err(&d).contains("${account}"));
    d.bind_dn = Some("uid=${account},dc=example,dc=org".to_owned());
    d.user_bind = UserBind::Rebind;
    assert!(err(&d).starts_with("user_bind: "));

    let mut g = base();
    g.group_search = Some(GroupSearch {
        base: "ou=groups,dc=example,dc=org".to_owned(),
        filter: "(member=${user})".to_owned(),
        attribute: "cn".to_owned(),
        label: "group".to_owned(),
        lower_case: false,
    });
    assert!(err(&g).starts_with("group_search.filter: "), "{}", err(&g));
}

#[test]
fn empty_password_and_empty_account_never_touch_the_network() {
    let a = LdapAuthenticator::from_config(&base()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rejected = a
            .authenticate(&LoginAttempt::new("alice", ""))
            .await
            .unwrap();
        assert_eq!(rejected, AuthnOutcome::Rejected);
        let na = a.authenticate(&LoginAttempt::new("", "pw")).await.unwrap();
        assert_eq!(na, AuthnOutcome::NotApplicable);
    });
    assert_eq!(a.stats().opened_total, 0);
}

#[test]
fn the_account_attribute_is_inferred_from_the_filter() {
    assert_eq!(
        account_attribute_of("(uid=${account})").as_deref(),
        Some("uid")
    );
    assert_eq!(
        account_attribute_of("(&(objectClass=inetOrgPerson)(sAMAccountName=${account}))")
            .as_deref(),
        Some("sAMAccountName")
    );
    // two candidates, or none: no guess
    assert_eq!(
        account_attribute_of("(|(uid=${account})(mail=${account}))"),
        None
    );
    assert_eq!(account_attribute_of("(cn=*${account}*)"), None);
    assert_eq!(account_attribute_of(""), None);
}
