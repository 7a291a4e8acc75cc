//! Tests beyond upstream's: placeholders, labels, IPs, validation errors, grants.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use super::entry::MAX_LABEL_COMBINATIONS;
use super::{Acl, AclEntry, MatchConditions};
use crate::authz::{Authorizer, AuthzOutcome, AuthzRequest, Grant, RuleRef};
use crate::error::ConfigError;
use crate::identity::{Identity, Labels};
use crate::scope::Scope;

/// A request in test-friendly form.
#[derive(Clone, Debug)]
pub(super) struct Req {
    pub(super) account: String,
    pub(super) ty: String,
    pub(super) name: String,
    pub(super) service: String,
    pub(super) ip: Option<IpAddr>,
    pub(super) labels: Labels,
    pub(super) actions: Vec<String>,
    pub(super) class: Option<String>,
}

impl Req {
    pub(super) fn new(account: &str, ty: &str, name: &str, service: &str) -> Self {
        Self {
            account: account.into(),
            ty: ty.into(),
            name: name.into(),
            service: service.into(),
            ip: None,
            labels: Labels::new(),
            actions: vec!["pull".into()],
            class: None,
        }
    }

    pub(super) fn labels(mut self, pairs: &[(&str, &[&str])]) -> Self {
        for (k, vs) in pairs {
            self.labels
                .insert((*k).into(), vs.iter().map(|v| (*v).to_owned()).collect());
        }
        self
    }

    fn actions(mut self, actions: &[&str]) -> Self {
        self.actions = actions.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.parse().ok();
        assert!(self.ip.is_some(), "bad test IP {ip}");
        self
    }
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn rule(m: MatchConditions, actions: &[&str]) -> AclEntry {
    AclEntry {
        match_: m,
        actions: Some(actions.iter().map(|a| (*a).to_owned()).collect()),
        comment: None,
        expiration: None,
    }
}

pub(super) fn validates(m: MatchConditions) -> Result<Acl, ConfigError> {
    Acl::new(vec![rule(m, &["*"])])
}

fn eval(acl: &Acl, r: &Req) -> Option<Grant> {
    let identity = Identity::new(r.account.clone()).with_labels(r.labels.clone());
    let mut scope = Scope::new(r.ty.clone(), r.name.clone(), r.actions.clone());
    if let Some(c) = &r.class {
        scope = scope.with_class(c.clone());
    }
    acl.evaluate(&AuthzRequest {
        identity: &identity,
        service: &r.service,
        client_ip: r.ip,
        scope: &scope,
    })
}

pub(super) fn matches(m: MatchConditions, r: &Req) -> bool {
    let acl = validates(m).unwrap_or_else(|e| panic!("rule should validate: {e}"));
    eval(&acl, r).is_some()
}

fn from_json(v: serde_json::Value) -> Result<Acl, String> {
    let entries: Vec<AclEntry> = serde_json::from_value(v).map_err(|e| e.to_string())?;
    Acl::new(entries).map_err(|e| e.to_string())
}

fn granted(acl: &Acl, r: &Req) -> Option<Vec<String>> {
    eval(acl, r).map(|g| g.actions)
}

fn m_name(p: &str) -> MatchConditions {
    MatchConditions {
        name: Some(p.into()),
        ..MatchConditions::default()
    }
}

#[test]
fn account_placeholder_is_quoted_in_globs_and_regexes() {
    let req = |name: &str| Req::new("john.smith", "repository", name, "registry");
    assert!(matches(m_name("${account}/*"), &req("john.smith/app")));
    assert!(!matches(m_name("${account}/*"), &req("johnxsmith/app")));
    assert!(
        !matches(m_name("${account}/*"), &req("john.smith/team/app")),
        "* never crosses /"
    );
    assert!(matches(
        m_name(r"/^${account}\/.+$/"),
        &req("john.smith/team/app")
    ));
    assert!(!matches(
        m_name(r"/^${account}\/.+$/"),
        &req("johnxsmith/app")
    ));
}

#[test]
fn label_placeholder_tries_every_value() {
    let req = |name: &str| {
        Req::new("u", "repository", name, "").labels(&[("group", &["dev", "ops", "qa"])])
    };
    assert!(matches(m_name("${labels:group}/*"), &req("qa/app")));
    assert!(matches(m_name("${labels:group}/*"), &req("dev/app")));
    assert!(!matches(m_name("${labels:group}/*"), &req("prod/app")));
    // Regex form, substituted per request through the cache.
    let acl = validates(m_name("/^${labels:group}-shared$/")).unwrap();
    assert!(eval(&acl, &req("ops-shared")).is_some());
    assert!(
        eval(&acl, &req("ops-shared")).is_some(),
        "second lookup hits the cache"
    );
    assert!(eval(&acl, &req("prod-shared")).is_none());
    // Values are not quoted: a glob value acts as a glob (docker_auth's "user-based access").
    let wide = Req::new("u", "repository", "test/x", "").labels(&[("full", &["test/*"])]);
    assert!(matches(m_name("${labels:full}"), &wide));
}

#[test]
fn label_combinations_are_bounded() {
    let many: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let req = Req::new("u", "repository", "v29/v29/v29", "").labels(&[
        ("a", &many),
        ("b", &many),
        ("c", &many),
    ]);
    const { assert!(30 * 30 * 30 > MAX_LABEL_COMBINATIONS) };
    assert!(!matches(
        m_name("${labels:a}/${labels:b}/${labels:c}"),
        &req
    ));
    let two = Req {
        name: "v29/v29".into(),
        ..req
    };
    assert!(matches(m_name("${labels:a}/${labels:b}"), &two));
}

#[test]
fn capture_placeholders() {
    let m = MatchConditions {
        name: Some(r"/^team-([a-z]+)\/.*$/".into()),
        account: Some("${name:1}".into()),
        ..MatchConditions::default()
    };
    let acl = validates(m).unwrap();
    assert!(eval(&acl, &Req::new("blue", "repository", "team-blue/app", "")).is_some());
    assert!(eval(&acl, &Req::new("red", "repository", "team-blue/app", "")).is_none());
    // Captured text is not quoted: "." in it stays a regex wildcard.
    let m = MatchConditions {
        account: Some("/^(.+)@corp$/".into()),
        name: Some("/^${account:1}-[a-z]+$/".into()),
        ..MatchConditions::default()
    };
    let acl = validates(m).unwrap();
    assert!(eval(&acl, &Req::new("a.b@corp", "repository", "axb-app", "")).is_some());
    // No match of the field's regex: the placeholder stays literal.
    assert!(eval(&acl, &Req::new("a.b@other", "repository", "a.b-app", "")).is_none());
}

#[test]
fn capture_out_of_range_stays_literal() {
    let m = MatchConditions {
        account: Some("/^(.+)$/".into()),
        name: Some("${account:2}".into()),
        ..MatchConditions::default()
    };
    assert!(matches(
        m.clone(),
        &Req::new("x", "repository", "${account:2}", "")
    ));
    assert!(!matches(m, &Req::new("x", "repository", "x", "")));
}

#[test]
fn capture_in_label_condition_needs_the_field_to_use_it_too() {
    let team = |name: Option<&str>| MatchConditions {
        account: Some("/^(.+)@corp$/".into()),
        name: name.map(Into::into),
        labels: Some(labels(&[("team", "${account:1}")])),
        ..MatchConditions::default()
    };
    let req = Req::new("blue@corp", "repository", "blue/app", "").labels(&[("team", &["blue"])]);
    assert!(
        !matches(team(None), &req),
        "docker_auth only collects captures from the four fields"
    );
    assert!(matches(team(Some("${account:1}/*")), &req));
    assert!(!matches(
        team(Some("${account:1}/*")),
        &Req {
            name: "red/app".into(),
            ..req
        }
    ));
}

#[test]
fn label_conditions() {
    let l = |pairs: &[(&str, &str)]| MatchConditions {
        labels: Some(labels(pairs)),
        ..MatchConditions::default()
    };
    let alice =
        Req::new("alice", "repository", "x", "").labels(&[("owner", &["alice"]), ("empty", &[])]);
    assert!(
        matches(l(&[("owner", "${account}")]), &alice),
        "account placeholder in a label pattern"
    );
    assert!(!matches(
        l(&[("owner", "${account}")]),
        &Req {
            account: "bob".into(),
            ..alice.clone()
        }
    ));
    assert!(
        !matches(l(&[("empty", "*")]), &alice),
        "an empty value list never matches"
    );
    assert!(!matches(l(&[("missing", "*")]), &alice));
    assert!(matches(l(&[]), &alice), "labels: {{}} is no constraint");
    // Label placeholders are not substituted in label conditions.
    let g = Req::new("u", "repository", "x", "").labels(&[("a", &["v"]), ("b", &["v"])]);
    assert!(!matches(l(&[("a", "${labels:b}")]), &g));
}

#[test]
fn ip_rules() {
    let ip = |rule: &str| MatchConditions {
        ip: Some(rule.into()),
        ..MatchConditions::default()
    };
    let r = Req::new("", "repository", "x", "");
    assert!(
        matches(ip("10.1.2.3/8"), &r.clone().ip("10.200.0.1")),
        "host bits are masked"
    );
    assert!(!matches(ip("10.0.0.0/8"), &r.clone().ip("11.0.0.1")));
    assert!(
        matches(ip("10.0.0.0/8"), &r.clone().ip("::ffff:10.0.0.1")),
        "mapped client"
    );
    assert!(
        matches(ip("::ffff:10.0.0.1"), &r.clone().ip("10.0.0.1")),
        "mapped rule"
    );
    assert!(matches(
        ip("::ffff:10.0.0.0/104"),
        &r.clone().ip("10.9.9.9")
    ));
    assert!(!matches(ip("10.0.0.0/8"), &r.clone().ip("2001:db8::1")));
    assert!(matches(
        ip("2001:db8::/32"),
        &r.clone().ip("2001:db8:ffff::1")
    ));
    assert!(
        !matches(ip("::1"), &r),
        "unknown client IP never matches an ip rule"
    );
    assert!(
        matches(MatchConditions::default(), &r),
        "{{}} matches even an unknown IP"
    );
}

#[test]
fn type_is_matched_without_class_and_empty_matches_only_empty() {
    let t = MatchConditions {
        resource_type: Some("repository".into()),
        ..MatchConditions::default()
    };
    let r = Req {
        class: Some("plugin".into()),
        ..Req::new("", "repository", "x", "")
    };
    assert!(matches(t, &r));
    let anon = MatchConditions {
        account: Some(String::new()),
        ..MatchConditions::default()
    };
    assert!(matches(anon.clone(), &Req::new("", "repository", "x", "")));
    assert!(!matches(anon, &Req::new("bob", "repository", "x", "")));
    let any = MatchConditions {
        account: Some("/.+/".into()),
        ..MatchConditions::default()
    };
    assert!(!matches(any, &Req::new("", "repository", "x", "")));
}

#[test]
fn first_match_decides_and_reports_the_rule() {
    let acl = from_json(serde_json::json!([
        {"match": {"account": "admin"}, "actions": ["*"], "comment": "admins"},
        {"match": {"account": "mallory"}, "actions": [], "comment": "banned"},
        {"match": {"account": "/.+/"}, "actions": ["pull"]},
        {"match": {}, "actions": ["push"]}
    ]))
    .unwrap();
    assert_eq!(acl.len(), 4);
    let r = |who: &str| Req::new(who, "repository", "x", "").actions(&["pull", "push"]);
    let g = eval(&acl, &r("mallory")).unwrap();
    assert_eq!(
        g,
        Grant {
            actions: vec![],
            rule: Some(RuleRef {
                index: 1,
                comment: Some("banned".into())
            }),
            expiration: None,
        }
    );
    let g = eval(&acl, &r("bob")).unwrap();
    assert_eq!(
        (g.actions, g.rule.map(|r| r.index)),
        (vec!["pull".to_owned()], Some(2))
    );
    assert_eq!(
        granted(&acl, &r("admin")),
        Some(vec!["pull".into(), "push".into()])
    );
    assert_eq!(granted(&acl, &r("")), Some(vec!["push".into()]));
    let empty = Acl::new(vec![]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(eval(&empty, &r("admin")), None);
}

#[test]
fn requested_star_needs_star_rule() {
    let acl = from_json(serde_json::json!([
        {"match": {"account": "root"}, "actions": ["*"]},
        {"match": {"account": "ops"}, "actions": ["*", "pull"]},
        {"match": {"account": "dev"}, "actions": ["pull", "push", "delete"]}
    ]))
    .unwrap();
    let cat = |who: &str| Req::new(who, "registry", "catalog", "").actions(&["*"]);
    assert_eq!(granted(&acl, &cat("root")), Some(vec!["*".into()]));
    assert_eq!(granted(&acl, &cat("ops")), Some(vec!["*".into()]));
    assert_eq!(granted(&acl, &cat("dev")), Some(vec![]));
    // "*" next to other actions is literal, not "all".
    let push = Req::new("ops", "repository", "x", "").actions(&["push"]);
    assert_eq!(granted(&acl, &push), Some(vec![]));
}

#[tokio::test]
async fn authorizer_outcomes() {
    let acl = Acl::new(vec![rule(m_name("x"), &["pull"])]).unwrap();
    assert_eq!(acl.name(), "acl");
    let who = Identity::new("u");
    let hit = Scope::new("repository", "x", ["pull", "push"]);
    let miss = Scope::new("repository", "y", ["pull"]);
    let req = |s| AuthzRequest {
        identity: &who,
        service: "",
        client_ip: None,
        scope: s,
    };
    let out = acl.authorize(&req(&hit)).await.unwrap();
    assert!(matches!(out, AuthzOutcome::Granted(g) if g.actions == ["pull"]));
    assert_eq!(
        acl.authorize(&req(&miss)).await.unwrap(),
        AuthzOutcome::NotApplicable
    );
}

#[test]
fn load_errors_name_the_rule() {
    let err = |v: serde_json::Value| from_json(v).unwrap_err();
    let ok = serde_json::json!({"match": {}, "actions": []});
    let e = err(serde_json::json!([ok, ok, ok, {"match": {"ip": "10.0.0.1/33"}, "actions": []}]));
    assert!(
        e.starts_with("acl[3].match.ip: invalid IP address or CIDR \"10.0.0.1/33\""),
        "{e}"
    );
    let e = err(serde_json::json!([{"match": {"name": "foo["}, "actions": []}]));
    assert!(
        e.starts_with("acl[0].match.name: invalid glob pattern \"foo[\""),
        "{e}"
    );
    let e = err(serde_json::json!([ok, {"match": {"account": "/a**/"}, "actions": []}]));
    assert!(
        e.starts_with("acl[1].match.account: invalid regex pattern")
            && e.contains("nested repetition"),
        "{e}"
    );
    let e = err(serde_json::json!([{"match": {"type": "/a{1001}/"}, "actions": []}]));
    assert!(
        e.starts_with("acl[0].match.type: ") && e.contains("invalid repeat count"),
        "{e}"
    );
    let e = err(serde_json::json!([{"match": {"labels": {"group": "/x{2}*/"}}, "actions": []}]));
    assert!(
        e.starts_with("acl[0].match.labels.group: invalid regex"),
        "{e}"
    );
    let e = err(serde_json::json!([ok, {"match": {}}]));
    assert!(e.starts_with("acl[1].actions: missing"), "{e}");
}

#[test]
fn unknown_and_missing_keys_are_rejected() {
    let e = from_json(serde_json::json!([{"match": {"acount": "x"}, "actions": []}])).unwrap_err();
    assert!(e.contains("unknown field `acount`"), "{e}");
    let e =
        from_json(serde_json::json!([{"match": {}, "actions": [], "coment": "x"}])).unwrap_err();
    assert!(e.contains("unknown field `coment`"), "{e}");
    let e = from_json(serde_json::json!([{"actions": []}])).unwrap_err();
    assert!(e.contains("missing field `match`"), "{e}");
}

/// Rough timing; run with `cargo test -p docker-token-core --release --lib acl::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn timing() {
    for n in [10usize, 1000] {
        let mut entries: Vec<AclEntry> = (0..n)
            .map(|i| match i % 3 {
                0 => rule(
                    MatchConditions {
                        account: Some(format!("user{i}")),
                        ..MatchConditions::default()
                    },
                    &["*"],
                ),
                1 => rule(m_name(&format!("/^team{i}\\/.+$/")), &["pull"]),
                _ => rule(
                    MatchConditions {
                        account: Some("/.+/".into()),
                        name: Some(format!("{i}-${{account}}/*")),
                        ..MatchConditions::default()
                    },
                    &["pull"],
                ),
            })
            .collect();
        entries.push(rule(m_name("${labels:group}/*"), &["pull", "push"]));
        let acl = Acl::new(entries).unwrap();
        let r = Req::new("alice", "repository", "ops/app", "registry")
            .labels(&[("group", &["dev", "ops"])])
            .actions(&["pull", "push"]);
        assert!(eval(&acl, &r).is_some(), "the last rule matches");
        let iters = 20_000 / n.max(1) * 10;
        let start = Instant::now();
        for _ in 0..iters {
            assert!(eval(&acl, &r).is_some());
        }
        let per = start.elapsed() / u32::try_from(iters).unwrap_or(1);
        println!("{n} rules (request matches the last rule): {per:?} per evaluate()");
    }
}

#[test]
fn a_rule_may_set_the_token_lifetime() {
    let acl = from_json(serde_json::json!([
        {"match": {"account": "ci"}, "actions": ["pull", "push"], "expiration": 3600},
        {"match": {"account": "bot"}, "actions": ["pull"], "expiration": "15m"},
        {"match": {}, "actions": ["pull"]}
    ]))
    .unwrap();
    let r = |who: &str| Req::new(who, "repository", "x", "").actions(&["pull", "push"]);
    assert_eq!(
        eval(&acl, &r("ci")).unwrap().expiration,
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(
        eval(&acl, &r("bot")).unwrap().expiration,
        Some(std::time::Duration::from_secs(900))
    );
    assert_eq!(eval(&acl, &r("eve")).unwrap().expiration, None);
    let zero = from_json(serde_json::json!([{"match": {}, "actions": [], "expiration": 0}]));
    assert_eq!(zero.unwrap_err(), "acl[0].expiration: must be at least 1 s");
    assert!(
        from_json(serde_json::json!([{"match": {}, "actions": [], "expiration": "soon"}])).is_err()
    );
}

#[test]
fn a_regex_shared_by_several_rules_runs_once_and_decides_for_each() {
    let acl = from_json(serde_json::json!([
        {"match": {"account": "/^svc-[0-9]+$/", "name": "a/*"}, "actions": ["pull"]},
        {"match": {"account": "/^svc-[0-9]+$/", "name": "b/*"}, "actions": ["push"]},
        {"match": {"account": "/.+/", "name": "b/*"}, "actions": ["pull"]},
        {"match": {"account": "/.+/", "type": "/.+/"}, "actions": ["*"]},
    ]))
    .unwrap();
    // two distinct (field, regex) pairs for account, one for type
    assert_eq!(acl.inner.memo_slots, 3);
    let rule = |r: &Req| eval(&acl, r).and_then(|g| g.rule).map(|r| r.index);
    let push_pull = ["pull", "push"];
    assert_eq!(
        rule(&Req::new("svc-1", "repository", "b/x", "r").actions(&push_pull)),
        Some(1)
    );
    assert_eq!(rule(&Req::new("svc-1", "repository", "a/x", "r")), Some(0));
    assert_eq!(rule(&Req::new("alice", "repository", "b/x", "r")), Some(2));
    assert_eq!(rule(&Req::new("alice", "repository", "c/x", "r")), Some(3));
    assert_eq!(rule(&Req::new("", "repository", "c/x", "r")), None);
}

#[test]
fn a_label_condition_without_the_label_fails_before_substitution() {
    let acl = from_json(serde_json::json!([
        {"match": {"account": "/.+/", "name": "${labels:team}/*", "labels": {"group": "g1"}},
         "actions": ["*"]},
        {"match": {"name": "${labels:team}/*"}, "actions": ["pull"]},
    ]))
    .unwrap();
    let r = Req::new("alice", "repository", "demo/app", "r").labels(&[("team", &["demo"])]);
    assert_eq!(
        eval(&acl, &r).and_then(|g| g.rule).map(|r| r.index),
        Some(1)
    );
    let with_group = r.clone().labels(&[("group", &["g1"])]);
    assert_eq!(
        eval(&acl, &with_group)
            .and_then(|g| g.rule)
            .map(|r| r.index),
        Some(0)
    );
    let empty_group = r.labels(&[("group", &[])]);
    assert_eq!(
        eval(&acl, &empty_group)
            .and_then(|g| g.rule)
            .map(|r| r.index),
        Some(1)
    );
}

#[test]
fn remembered_decisions_follow_every_input() {
    let acl = from_json(serde_json::json!([
        {"match": {"account": "/.+/", "name": "${labels:team}/*"}, "actions": ["*"]},
        {"match": {"ip": "10.0.0.0/8", "name": "internal/*"}, "actions": ["pull"]},
        {"match": {"account": "/.+/", "service": "other", "labels": {"tier": "gold"}}, "actions": ["pull"]},
        {"match": {"account": "alice", "type": "registry"}, "actions": ["*"]}
    ]))
    .unwrap();
    let r =
        |name: &str| Req::new("alice", "repository", name, "registry").actions(&["pull", "push"]);
    let team = |t: &str| r("demo/app").labels(&[("team", &[t])]);
    let cases: Vec<(Req, Option<usize>)> = vec![
        (team("demo"), Some(0)),
        (team("other"), None),
        (team("demo"), Some(0)),
        (r("internal/x").ip("10.1.2.3"), Some(1)),
        (r("internal/x").ip("192.168.1.1"), None),
        (r("internal/x"), None),
        (r("internal/x").ip("::ffff:10.9.9.9"), Some(1)),
        (
            Req::new("alice", "repository", "x/y", "other").labels(&[("tier", &["gold"])]),
            Some(2),
        ),
        (
            Req::new("alice", "repository", "x/y", "other").labels(&[("tier", &["lead"])]),
            None,
        ),
        (
            Req::new("alice", "registry", "catalog", "registry"),
            Some(3),
        ),
        (Req::new("bob", "registry", "catalog", "registry"), None),
        (Req::new("alice", "repository", "catalog", "registry"), None),
    ];
    // twice: the second round answers from remembered decisions
    for round in 0..2 {
        for (req, rule) in &cases {
            let grant = eval(&acl, req);
            assert_eq!(
                grant
                    .as_ref()
                    .and_then(|g| g.rule.as_ref())
                    .map(|r| r.index),
                *rule,
                "round {round}: {req:?}"
            );
            if let Some(g) = grant {
                // the actions still come from this request
                let expected = if *rule == Some(1) || *rule == Some(2) {
                    vec!["pull".to_owned()]
                } else {
                    req.actions.clone()
                };
                assert_eq!(g.actions, expected, "{req:?}");
            }
        }
    }
    assert!(acl.inner.decisions.len() >= 10, "decisions are remembered");
    // inputs too long to remember are still decided
    let many: Vec<String> = (0..200).map(|i| format!("team-{i:04}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let long = r("team-0199/app").labels(&[("team", &refs)]);
    let before = acl.inner.decisions.len();
    assert_eq!(
        eval(&acl, &long).and_then(|g| g.rule).map(|r| r.index),
        Some(0)
    );
    assert_eq!(acl.inner.decisions.len(), before, "not remembered");
}
