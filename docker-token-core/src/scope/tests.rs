use super::*;

fn parse(s: &str) -> Scope {
    match Scope::parse(s) {
        Ok(scope) => scope,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn texts(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().map(ToString::to_string).collect()
}

#[test]
fn simple_scope() {
    let s = parse("repository:library/alpine:pull");
    assert_eq!(s.resource_type(), "repository");
    assert_eq!(s.class(), None);
    assert_eq!(s.name(), "library/alpine");
    assert_eq!(s.actions(), ["pull"]);
}

#[test]
fn host_port_name_keeps_its_colon() {
    let s = parse("repository:myhost:5000/foo:pull");
    assert_eq!(s.resource_type(), "repository");
    assert_eq!(s.name(), "myhost:5000/foo");
    assert_eq!(s.actions(), ["pull"]);
    // more colons than one are the registry's business, not ours
    let s = parse("repository:a:1:b:push");
    assert_eq!(s.name(), "a:1:b");
    assert_eq!(s.actions(), ["push"]);
}

#[test]
fn actions_are_sorted_and_unique() {
    let s = parse("repository:x:push,pull,push,,pull");
    assert_eq!(s.actions(), ["pull", "push"]);
    assert_eq!(s.to_string(), "repository:x:pull,push");
}

#[test]
fn star_is_a_real_action() {
    let s = parse("repository:demo/hello:*");
    assert_eq!(s.actions(), ["*"]);
    let s = parse("registry:catalog:*");
    assert_eq!(s.resource_type(), "registry");
    assert_eq!(s.name(), "catalog");
    assert_eq!(s.actions(), ["*"]);
    assert_eq!(s.to_string(), "registry:catalog:*");
    let s = parse("repository:x:pull,*");
    assert_eq!(s.actions(), ["*", "pull"]);
}

#[test]
fn class_is_kept() {
    let s = parse("repository(plugin):vieux/sshfs:pull");
    assert_eq!(s.resource_type(), "repository");
    assert_eq!(s.class(), Some("plugin"));
    assert_eq!(s.name(), "vieux/sshfs");
    assert_eq!(s.to_string(), "repository(plugin):vieux/sshfs:pull");
}

#[test]
fn empty_actions_are_allowed() {
    let s = parse("repository:x:");
    assert_eq!(s.name(), "x");
    assert!(s.actions().is_empty());
    let s = parse("repository:x:,,");
    assert!(s.actions().is_empty());
}

#[test]
fn lenient_names_are_accepted() {
    for name in [
        "Upper/Case",
        "a.b/c__d",
        "a--b/c-d",
        "localhost:5000/x",
        "[::1]:5000/x",
        "x",
        "ünïcode",
    ] {
        assert_eq!(parse(&format!("repository:{name}:pull")).name(), name);
    }
}

#[test]
fn lenient_actions_are_accepted() {
    assert_eq!(parse("registry:catalog:search").actions(), ["search"]);
    assert_eq!(
        parse("x:y:PULL,my_action,a-b,42").actions(),
        ["42", "PULL", "a-b", "my_action"]
    );
}

#[test]
fn upper_case_type_is_rejected() {
    let e = Scope::parse("Repository:foo:pull").unwrap_err();
    assert_eq!(
        e,
        ScopeError::InvalidType {
            scope: "Repository:foo:pull".into(),
            found: "Repository".into()
        }
    );
    assert!(e.to_string().contains("\"Repository\""), "{e}");
}

#[test]
fn bad_types_and_classes() {
    for (text, found) in [
        (":foo:pull", ""),
        ("repo-sitory:foo:pull", "repo-sitory"),
        ("repo sitory:foo:pull", "repo sitory"),
        ("(plugin):foo:pull", ""),
    ] {
        match Scope::parse(text) {
            Err(ScopeError::InvalidType { found: f, .. }) => assert_eq!(f, found, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    for (text, found) in [
        ("repository():foo:pull", "()"),
        ("repository(Plugin):foo:pull", "(Plugin)"),
        ("repository(plugin:foo:pull", "(plugin"),
        ("repository(plugin)x:foo:pull", "(plugin)x"),
        ("repository(a)(b):foo:pull", "(a)(b)"),
    ] {
        match Scope::parse(text) {
            Err(ScopeError::InvalidClass { found: f, .. }) => assert_eq!(f, found, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn missing_parts() {
    assert_eq!(
        Scope::parse("repository").unwrap_err(),
        ScopeError::MissingName {
            scope: "repository".into()
        }
    );
    assert_eq!(
        Scope::parse("repository:foo").unwrap_err(),
        ScopeError::MissingActions {
            scope: "repository:foo".into()
        }
    );
    assert_eq!(
        Scope::parse("repository::pull").unwrap_err(),
        ScopeError::EmptyName {
            scope: "repository::pull".into()
        }
    );
    assert!(matches!(
        Scope::parse(""),
        Err(ScopeError::MissingName { .. })
    ));
}

#[test]
fn bad_names_and_actions() {
    assert!(matches!(
        Scope::parse("repository:a b:pull"),
        Err(ScopeError::InvalidName {
            reason: "contains whitespace",
            ..
        })
    ));
    assert!(matches!(
        Scope::parse("repository:a\u{7}b:pull"),
        Err(ScopeError::InvalidName {
            reason: "contains a control character",
            ..
        })
    ));
    assert_eq!(
        Scope::parse("repository:a:pull,pu*sh").unwrap_err(),
        ScopeError::InvalidAction {
            scope: "repository:a:pull,pu*sh".into(),
            action: "pu*sh".into()
        }
    );
    assert!(matches!(
        Scope::parse("repository:a:pull push"),
        Err(ScopeError::InvalidAction { .. })
    ));
}

#[test]
fn too_long_is_its_own_error_and_the_message_is_clipped() {
    let long = format!("repository:{}:pull", "a".repeat(MAX_SCOPE_LEN));
    let e = Scope::parse(&long).unwrap_err();
    assert!(matches!(e, ScopeError::TooLong { len, max: MAX_SCOPE_LEN, .. } if len == long.len()));
    assert!(e.scope().chars().count() <= ERROR_SCOPE_CHARS + 1);
    assert!(e.to_string().len() < 300, "{e}");
    // at the limit it still parses
    let at_limit = format!(
        "repository:{}:pull",
        "a".repeat(MAX_SCOPE_LEN - "repository::pull".len())
    );
    assert_eq!(at_limit.len(), MAX_SCOPE_LEN);
    assert!(Scope::parse(&at_limit).is_ok());
}

#[test]
fn long_bad_parts_are_clipped_on_char_boundaries() {
    let e = Scope::parse(&format!("repository:x:{}", "é".repeat(200))).unwrap_err();
    let ScopeError::InvalidAction { action, scope } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(action.chars().count(), ERROR_PART_CHARS + 1);
    assert!(action.ends_with('…'));
    assert_eq!(scope.chars().count(), ERROR_SCOPE_CHARS + 1);
}

#[test]
fn errors_escape_control_characters() {
    let e = Scope::parse("repository:a\nInjected: yes:pull").unwrap_err();
    assert!(!e.to_string().contains('\n'), "{e}");
}

#[test]
fn from_str_matches_parse() {
    let a: Scope = "repository:x:pull".parse().unwrap();
    assert_eq!(a, Scope::parse("repository:x:pull").unwrap());
    assert_eq!(a, Scope::new("repository", "x", ["pull"]));
    assert!("nope".parse::<Scope>().is_err());
}

#[test]
fn display_round_trips() {
    let types = ["repository", "registry", "repository(plugin)", "x1(y2)"];
    let names = [
        "x",
        "library/alpine",
        "myhost:5000/foo",
        "a:1:b",
        "A.b__c-d",
        "[::1]:5000/z",
    ];
    let actions = [
        "",
        "pull",
        "push,pull",
        "*",
        "pull,*,push,delete",
        ",,pull,",
        "search",
    ];
    let mut count = 0;
    for t in types {
        for n in names {
            for a in actions {
                let text = format!("{t}:{n}:{a}");
                let scope = parse(&text);
                let shown = scope.to_string();
                assert_eq!(parse(&shown), scope, "{text} -> {shown}");
                // Display is canonical: printing again changes nothing
                assert_eq!(parse(&shown).to_string(), shown);
                count += 1;
            }
        }
    }
    assert_eq!(count, types.len() * names.len() * actions.len());
}

#[test]
fn repeated_and_space_separated_values() {
    let scopes = parse_scopes([
        "repository:demo/other:pull,push",
        "repository:demo/hello:pull registry:catalog:*",
    ])
    .unwrap();
    assert_eq!(
        texts(&scopes),
        [
            "repository:demo/other:pull,push",
            "repository:demo/hello:pull",
            "registry:catalog:*"
        ]
    );
}

#[test]
fn runs_of_spaces_and_empty_values_are_skipped_anywhere() {
    let scopes = parse_scopes([
        "",
        "  repository:a:pull   repository:b:push ",
        "",
        " ",
        "repository:c:",
    ])
    .unwrap();
    assert_eq!(
        texts(&scopes),
        ["repository:a:pull", "repository:b:push", "repository:c:"]
    );
    assert!(parse_scopes(Vec::<String>::new()).unwrap().is_empty());
    assert!(parse_scopes(["", " "]).unwrap().is_empty());
}

#[test]
fn duplicates_are_merged_in_first_occurrence_order() {
    // skopeo after an insufficient_scope retry: scope=X&scope=X
    let scopes =
        parse_scopes(["repository:demo/hello:pull", "repository:demo/hello:pull"]).unwrap();
    assert_eq!(texts(&scopes), ["repository:demo/hello:pull"]);

    let scopes = parse_scopes([
        "repository:a:push,pull",
        "repository:b:pull",
        "repository:a:pull repository:a:delete",
        "repository:b:*",
    ])
    .unwrap();
    assert_eq!(
        texts(&scopes),
        ["repository:a:delete,pull,push", "repository:b:*,pull"]
    );
}

#[test]
fn different_classes_and_types_are_different_resources() {
    let scopes = parse_scopes([
        "repository:x:pull",
        "repository(plugin):x:push",
        "registry:x:*",
        "repository:x:push",
    ])
    .unwrap();
    assert_eq!(
        texts(&scopes),
        [
            "repository:x:pull,push",
            "repository(plugin):x:push",
            "registry:x:*"
        ]
    );
    assert!(!scopes[0].same_resource(&scopes[1]));
    assert!(scopes[0].same_resource(&Scope::new("repository", "x", ["delete"])));
}

#[test]
fn one_bad_scope_fails_the_list() {
    let e = parse_scopes(["repository:a:pull", "repository:b:pull Repository:c:pull"]).unwrap_err();
    assert_eq!(e.scope(), "Repository:c:pull");
    assert!(matches!(e, ScopeError::InvalidType { .. }));
}

#[test]
fn error_converts_into_a_400() {
    let e = crate::Error::from(Scope::parse("repository:x").unwrap_err());
    assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
    let msg = e.public_message();
    assert!(msg.starts_with("invalid scope: "), "{msg}");
    assert!(msg.contains("repository:x"), "{msg}");
}

/// A small deterministic xorshift generator, so the property test needs no extra crate and
/// fails reproducibly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).unwrap();
        items[usize::try_from(self.next() % len).unwrap()]
    }
}

#[test]
fn random_inputs_never_panic_and_every_parsed_scope_round_trips() {
    // Each part is drawn mostly from pieces that fit it and sometimes from pieces that
    // don't (delimiters, upper case, whitespace, control characters), so that many inputs
    // are near misses of the grammar.
    let junk = ["(", ")", ":", ",", " ", "\t", "\u{0}", "Z", "*", "é", ""];
    let types = ["repository", "registry", "r", "(plugin)", "2"];
    let names = ["a", "Z", "5000", "/", ".", "_", "-", ":", "é", "library"];
    let actions = ["pull", "push", ",", "*", "A_b-1"];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let part = |rng: &mut XorShift, good: &[&str]| -> String {
        let len = rng.next() % 4;
        (0..len)
            .map(|_| {
                if rng.next().is_multiple_of(8) {
                    rng.pick(&junk)
                } else {
                    rng.pick(good)
                }
            })
            .collect()
    };
    let (mut parsed, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let text = format!(
            "{}:{}:{}",
            part(&mut rng, &types),
            part(&mut rng, &names),
            part(&mut rng, &actions)
        );
        // sometimes drop a delimiter or the whole tail
        let text = match rng.next() % 10 {
            0 => text.replacen(':', "", 1),
            1 => text.split(':').next().unwrap_or_default().to_owned(),
            _ => text,
        };
        match Scope::parse(&text) {
            Ok(scope) => {
                parsed += 1;
                let shown = scope.to_string();
                assert_eq!(
                    Scope::parse(&shown).as_ref(),
                    Ok(&scope),
                    "{text:?} -> {shown:?}"
                );
                assert!(!scope.name().is_empty());
            }
            Err(e) => {
                rejected += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        // the list parser agrees with the single parser on inputs without separators
        if !text.is_empty() && !text.contains(char::is_whitespace) {
            assert_eq!(
                parse_scopes([&text]).map(|v| v.into_iter().next()),
                Scope::parse(&text).map(Some)
            );
        }
    }
    // both branches were exercised, so the property is not vacuous
    assert!(parsed > 2000, "only {parsed} inputs parsed");
    assert!(rejected > 2000, "only {rejected} inputs rejected");
}
