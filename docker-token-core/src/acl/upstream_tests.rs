//! Every case of cesanta/docker_auth `auth_server/authz/acl_test.go`, restated.

use std::net::IpAddr;

use super::MatchConditions;
use super::tests::{Req, labels, matches, validates};

fn mc() -> MatchConditions {
    MatchConditions::default()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

// ---- TestValidation ----

#[test]
fn validation_accepts_upstream_valid_cases() {
    let valid = [
        mc(),
        MatchConditions {
            account: s("foo"),
            ..mc()
        },
        MatchConditions {
            account: s("foo?*"),
            ..mc()
        },
        MatchConditions {
            account: s("/foo.*/"),
            ..mc()
        },
        MatchConditions {
            resource_type: s("foo"),
            ..mc()
        },
        MatchConditions {
            resource_type: s("foo?*"),
            ..mc()
        },
        MatchConditions {
            resource_type: s("/foo.*/"),
            ..mc()
        },
        MatchConditions {
            name: s("foo"),
            ..mc()
        },
        MatchConditions {
            name: s("foo?*"),
            ..mc()
        },
        MatchConditions {
            name: s("/foo.*/"),
            ..mc()
        },
        MatchConditions {
            service: s("foo"),
            ..mc()
        },
        MatchConditions {
            service: s("foo?*"),
            ..mc()
        },
        MatchConditions {
            service: s("/foo.*/"),
            ..mc()
        },
        MatchConditions {
            ip: s("192.168.0.1"),
            ..mc()
        },
        MatchConditions {
            ip: s("192.168.0.0/16"),
            ..mc()
        },
        MatchConditions {
            ip: s("2001:db8::1"),
            ..mc()
        },
        MatchConditions {
            ip: s("2001:db8::/48"),
            ..mc()
        },
        MatchConditions {
            labels: Some(labels(&[("foo", "bar")])),
            ..mc()
        },
    ];
    for (i, c) in valid.into_iter().enumerate() {
        let shown = format!("{c:?}");
        assert!(validates(c).is_ok(), "case {i} {shown} should validate");
    }
}

#[test]
fn validation_rejects_upstream_invalid_cases() {
    let invalid = [
        MatchConditions {
            account: s("/foo?*/"),
            ..mc()
        },
        MatchConditions {
            resource_type: s("/foo?*/"),
            ..mc()
        },
        MatchConditions {
            name: s("/foo?*/"),
            ..mc()
        },
        MatchConditions {
            service: s("/foo?*/"),
            ..mc()
        },
        MatchConditions {
            ip: s("192.168.0.1/100"),
            ..mc()
        },
        MatchConditions {
            ip: s("192.168.0.*"),
            ..mc()
        },
        MatchConditions {
            ip: s("foo"),
            ..mc()
        },
        MatchConditions {
            ip: s("2001:db8::/222"),
            ..mc()
        },
        MatchConditions {
            labels: Some(labels(&[("foo", "/bar?*/")])),
            ..mc()
        },
    ];
    for (i, c) in invalid.into_iter().enumerate() {
        let shown = format!("{c:?}");
        assert!(validates(c).is_err(), "case {i} {shown} should be rejected");
    }
}

// ---- TestMatching ----

/// `ai1` … `ai5` of the upstream test.
fn ai(n: u8) -> Req {
    let base = Req::new("foo", "bar", "baz", "notary");
    let both = [
        ("group", &["admins", "VIP"][..]),
        ("project", &["api", "frontend"][..]),
    ];
    match n {
        1 => base,
        2 => base.labels(&both[..1]),
        3 => Req {
            name: "admins/foo".into(),
            ..base.labels(&both[..1])
        },
        4 => Req {
            name: "VIP/api".into(),
            ..base.labels(&both)
        },
        _ => Req {
            name: "devs/api".into(),
            ..base.labels(&both)
        },
    }
}

#[test]
fn matching_fields_and_globs() {
    let cases = [
        (mc(), true),
        (
            MatchConditions {
                account: s("foo"),
                ..mc()
            },
            true,
        ),
        (
            MatchConditions {
                account: s("foo"),
                resource_type: s("bar"),
                ..mc()
            },
            true,
        ),
        (
            MatchConditions {
                account: s("foo"),
                resource_type: s("baz"),
                ..mc()
            },
            false,
        ),
        (
            MatchConditions {
                account: s("fo?"),
                resource_type: s("b*"),
                name: s("/z$/"),
                ..mc()
            },
            true,
        ),
        (
            MatchConditions {
                account: s("fo?"),
                resource_type: s("b*"),
                name: s("/^z/"),
                ..mc()
            },
            false,
        ),
        (
            MatchConditions {
                service: s("notary"),
                resource_type: s("bar"),
                ..mc()
            },
            true,
        ),
        (
            MatchConditions {
                service: s("notary"),
                resource_type: s("baz"),
                ..mc()
            },
            false,
        ),
        (
            MatchConditions {
                service: s("notary1"),
                resource_type: s("bar"),
                ..mc()
            },
            false,
        ),
    ];
    for (i, (c, want)) in cases.into_iter().enumerate() {
        assert_eq!(matches(c, &ai(1)), want, "case {i}");
    }
}

#[test]
fn matching_variable_substitution_and_quoting() {
    let only = |account: &str, name: &str| Req::new(account, "", name, "");
    assert!(matches(
        MatchConditions {
            name: s("${account}"),
            ..mc()
        },
        &only("foo", "foo")
    ));
    assert!(matches(
        MatchConditions {
            name: s("/${account}_.*/"),
            ..mc()
        },
        &only("foo", "foo_x")
    ));
    // Quoting: an account ".*" is literal text in the regex.
    assert!(!matches(
        MatchConditions {
            name: s("/${account}_.*/"),
            ..mc()
        },
        &only(".*", "foo_x")
    ));
}

#[test]
fn matching_capture_groups() {
    let account = s(r"/^(.+)@test\.com$/");
    let req = Req::new("john.smith@test.com", "", "john.smith/test", "");
    assert!(matches(
        MatchConditions {
            account: account.clone(),
            name: s("${account:1}/*"),
            ..mc()
        },
        &req
    ));
    assert!(!matches(
        MatchConditions {
            account,
            name: s("${account:3}/*"),
            ..mc()
        },
        &req
    ));
    let req = Req::new("john.smith@it.test.com", "", "john.smith-it/test", "");
    let c = MatchConditions {
        account: s(r"/^(.+)@(.+?).test\.com$/"),
        name: s("${account:1}-${account:2}/*"),
        ..mc()
    };
    assert!(matches(c, &req));
}

#[test]
fn matching_ip() {
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    let cases = [
        ("127.0.0.1", None, false),
        ("127.0.0.1", ip("127.0.0.1"), true),
        ("127.0.0.1", ip("127.0.0.2"), false),
        ("127.0.0.2", ip("127.0.0.1"), false),
        ("127.0.0.0/8", ip("127.0.0.1"), true),
        ("127.0.0.0/8", ip("127.0.0.2"), true),
        ("2001:db8::1", None, false),
        ("2001:db8::1", ip("2001:db8::1"), true),
        ("2001:db8::1", ip("2001:db8::2"), false),
        ("2001:db8::2", ip("2001:db8::1"), false),
        ("2001:db8::/48", ip("2001:db8::1"), true),
        ("2001:db8::/48", ip("2001:db8::2"), true),
    ];
    for (rule, client, want) in cases {
        let req = Req {
            ip: client,
            ..Req::new("", "", "", "")
        };
        assert_eq!(
            matches(
                MatchConditions {
                    ip: s(rule),
                    ..mc()
                },
                &req
            ),
            want,
            "{rule} vs {client:?}"
        );
    }
}

#[test]
fn matching_label_conditions() {
    let l = |pairs: &[(&str, &str)]| MatchConditions {
        labels: Some(labels(pairs)),
        ..mc()
    };
    let cases = [
        (l(&[("foo", "bar")]), 1, false),
        (l(&[("foo", "bar")]), 2, false),
        (l(&[("group", "admins")]), 2, true),
        (l(&[("foo", "bar"), ("group", "admins")]), 2, false), // "and" logic
        (l(&[("group", "VIP")]), 2, true),
        (l(&[("group", "a*")]), 2, true),
        (l(&[("group", "/(admins|VIP)/")]), 2, true),
    ];
    for (i, (c, n, want)) in cases.into_iter().enumerate() {
        assert_eq!(matches(c, &ai(n)), want, "case {i}");
    }
}

#[test]
fn matching_label_placeholders() {
    let n = |p: &str| MatchConditions { name: s(p), ..mc() };
    let cases = [
        (n("${labels:group}/*"), 1, false),                 // no labels
        (n("${labels:noexist}/*"), 2, false),               // wrong labels
        (n("${labels:group}/*"), 3, true),                  // match label
        (n("${labels:noexist}/*"), 3, false),               // missing label
        (n("${labels:group}/${labels:project}"), 4, true),  // multiple label match success
        (n("${labels:group}/${labels:noexist}"), 4, false), // multiple label match fail
        (n("${labels:group}/${labels:project}"), 4, true),  // (listed twice upstream)
        (n("${labels:group}/${labels:noexist}"), 4, false), // (listed twice upstream)
        (n("${labels:group}/${labels:project}"), 5, false), // right labels, wrong value
    ];
    for (i, (c, req, want)) in cases.into_iter().enumerate() {
        assert_eq!(matches(c, &ai(req)), want, "case {i}");
    }
}
