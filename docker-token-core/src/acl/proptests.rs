//! Property tests of the ACL pattern languages against the `regex` crate, on random patterns
//! from the part of each dialect that has an obvious `regex` equivalent.

use proptest::prelude::*;
use regex::Regex;

use super::glob::{glob_match, validate_glob};
use super::pattern::Pattern;
use super::re2;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One glob token and its regex: `*` and `?` never cross `/`, sets may match `/`.
fn glob_token() -> impl Strategy<Value = (String, String)> {
    prop::sample::select(vec![
        ("a", "a"),
        ("b", "b"),
        ("/", "/"),
        (".", "\\."),
        ("*", "[^/]*"),
        ("?", "[^/]"),
        ("[ab]", "[ab]"),
        ("[a-c]", "[a-c]"),
        ("[^a]", "[^a]"),
        ("\\*", "\\*"),
        ("\\a", "a"),
        ("é", "é"),
    ])
    .prop_map(|(g, r)| (g.to_owned(), r.to_owned()))
}

fn glob_and_regex() -> impl Strategy<Value = (String, Regex)> {
    prop::collection::vec(glob_token(), 0..8).prop_map(|tokens| {
        let glob: String = tokens.iter().map(|(g, _)| g.as_str()).collect();
        let re: String = tokens.iter().map(|(_, r)| r.as_str()).collect();
        (glob, Regex::new(&format!("^(?s:{re})$")).unwrap())
    })
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', '/', '.', '*', 'é']),
        0..10,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A Go-RE2 pattern that means the same in Rust's `regex` (ASCII subjects): literals, `.`,
/// classes, groups, alternation, anchors and single repetition operators.
fn re2_pattern() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        "a", "b", ".", "[a-c]", "[^b]", "\\d", "\\w", "\\s", "\\.", "x",
    ])
    .prop_map(str::to_owned);
    let leaf = (
        atom,
        prop::sample::select(vec!["", "*", "+", "?", "{2}", "{1,3}", "*?", "+?"]),
    )
        .prop_map(|(a, r)| format!("{a}{r}"));
    let expr = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}|{b}")),
            (inner, prop::sample::select(vec!["", "*", "?", "+"]))
                .prop_map(|(a, r)| format!("({a}){r}")),
        ]
    });
    (any::<bool>(), expr, any::<bool>()).prop_map(|(start, e, end)| {
        format!(
            "{}{e}{}",
            if start { "^" } else { "" },
            if end { "$" } else { "" }
        )
    })
}

fn subject() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', 'x', '1', ' ', '.', '_', '/']),
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn go_glob_port_agrees_with_regex((glob, re) in glob_and_regex(), name in name()) {
        prop_assert_eq!(validate_glob(&glob), Ok(()));
        prop_assert_eq!(
            glob_match(&glob, &name),
            Ok(re.is_match(&name)),
            "glob {:?} vs regex {:?} on {:?}", glob, re.as_str(), name
        );
    }

    #[test]
    fn glob_never_panics(pattern in any::<String>(), name in any::<String>()) {
        let result = glob_match(&pattern, &name);
        if validate_glob(&pattern).is_ok() {
            // what passed validation at load never fails while matching
            prop_assert!(result.is_ok(), "{:?} on {:?}", pattern, name);
        }
    }

    #[test]
    fn re2_layer_agrees_with_regex(pattern in re2_pattern(), subject in subject()) {
        let ours = re2::compile(&pattern, 1 << 20)
            .map_err(|e| TestCaseError::fail(format!("{pattern:?}: {e}")))?;
        let reference = Regex::new(&pattern).unwrap();
        prop_assert_eq!(
            ours.is_match(&subject),
            reference.is_match(&subject),
            "{:?} on {:?} (translated {:?})", pattern, subject, ours.as_str()
        );
    }

    #[test]
    fn re2_layer_never_panics(pattern in any::<String>()) {
        let _ = re2::compile(&pattern, 1 << 16);
    }

    #[test]
    fn pattern_compiler_never_panics(raw in any::<String>(), value in any::<String>()) {
        if let Ok(p) = Pattern::compile(&raw) {
            let _ = p.matches_plain(&value);
        }
        let slashed = format!("/{raw}/");
        if let Ok(p) = Pattern::compile(&slashed) {
            let _ = p.matches_plain(&value);
        }
    }
}

/// One request of [`remembered_decisions_equal_fresh_ones`], from small alphabets so that
/// the same inputs come back and near-identical ones differ in a single field.
#[derive(Clone, Debug)]
struct Probe {
    account: &'static str,
    ty: &'static str,
    name: &'static str,
    service: &'static str,
    ip: Option<std::net::IpAddr>,
    teams: Vec<&'static str>,
    tier: Option<&'static str>,
}

fn probe() -> impl Strategy<Value = Probe> {
    (
        prop::sample::select(vec!["alice", "bob", "a.b", "svc-1", ""]),
        prop::sample::select(vec!["repository", "registry"]),
        prop::sample::select(vec![
            "alice/x", "bob/x", "a.b/x", "dev/x", "ops/y", "x", "catalog",
        ]),
        prop::sample::select(vec!["registry", "other"]),
        prop::sample::select(vec![
            None,
            Some("10.0.0.1"),
            Some("192.168.0.1"),
            Some("::ffff:10.0.0.2"),
        ]),
        prop::sample::subsequence(vec!["dev", "ops"], 0..=2),
        prop::sample::select(vec![None, Some("gold"), Some("lead")]),
    )
        .prop_map(|(account, ty, name, service, ip, teams, tier)| Probe {
            account,
            ty,
            name,
            service,
            ip: ip.and_then(|s| s.parse().ok()),
            teams,
            tier,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..config() })]

    #[test]
    fn remembered_decisions_equal_fresh_ones(probes in prop::collection::vec(probe(), 1..40)) {
        let rules: Vec<super::AclEntry> = serde_json::from_value(serde_json::json!([
            {"match": {"account": "/^svc-[0-9]+$/", "type": "registry"}, "actions": ["pull"]},
            {"match": {"account": "/.+/", "name": "${account}/*"}, "actions": ["*"]},
            {"match": {"name": "${labels:team}/*", "service": "registry"}, "actions": ["pull"]},
            {"match": {"ip": "10.0.0.0/8", "name": "x"}, "actions": ["pull"]},
            {"match": {"account": "/^(a)\\.b$/", "name": "${account:1}*"}, "actions": ["push"]},
            {"match": {"labels": {"tier": "gold"}, "service": "other"}, "actions": ["*"]},
            {"match": {"account": "", "name": "catalog"}, "actions": []},
        ]))
        .unwrap();
        let acl = super::Acl::new(rules).unwrap();
        for p in &probes {
            let mut labels = crate::identity::Labels::new();
            if !p.teams.is_empty() {
                labels.insert("team".to_owned(), p.teams.iter().map(|t| (*t).to_owned()).collect());
            }
            if let Some(tier) = p.tier {
                labels.insert("tier".to_owned(), vec![tier.to_owned()]);
            }
            let identity = crate::identity::Identity::new(p.account).with_labels(labels);
            let scope = crate::scope::Scope::new(p.ty, p.name, ["pull", "push"]);
            let req = crate::authz::AuthzRequest {
                identity: &identity,
                service: p.service,
                client_ip: p.ip,
                scope: &scope,
            };
            let remembered = acl.evaluate(&req).and_then(|g| g.rule).map(|r| r.index);
            prop_assert_eq!(remembered, acl.first_match(&req), "{:?}", p);
        }
    }
}
