//! Property tests for the parsers that read client input: the scope grammar, GET queries and
//! POST forms, and the Basic `Authorization` header. No input may panic; what parses must
//! survive a round trip.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use docker_token_core::request::{Credentials, TokenRequest};
use docker_token_core::scope::{MAX_SCOPES, parse_scopes};
use docker_token_core::{Error, Scope};
use http::HeaderValue;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Scope-like text: mostly the grammar's own characters, so that many inputs get far.
fn scope_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec![
                ':', ',', '(', ')', '/', '*', 'a', 'b', 'z', '0', '.', '-', '_', 'A',
            ]),
            1 => any::<char>(),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A well-formed scope: type, optional class, a name (maybe with host:port), actions.
fn valid_scope() -> impl Strategy<Value = (String, Option<String>, String, Vec<String>)> {
    (
        "[a-z0-9]{1,10}",
        prop::option::of("[a-z0-9]{1,6}"),
        "([a-z0-9.-]{1,10}(:[0-9]{1,5})?/)?[a-zA-Z0-9._/-]{1,30}",
        prop::collection::vec(
            prop_oneof!["[a-zA-Z0-9_-]{1,8}", Just("*".to_owned())],
            0..5,
        ),
    )
}

/// Query/form-like bytes: separators, percent escapes, plus arbitrary bytes.
fn form_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(b"&=%+:,/ abcsepvrtu0F9".to_vec()),
            1 => prop::sample::select(vec![
                b"scope=".to_vec(), b"service=".to_vec(), b"account=".to_vec(),
                b"grant_type=password".to_vec(), b"grant_type=refresh_token".to_vec(),
                b"username=".to_vec(), b"password=".to_vec(), b"refresh_token=".to_vec(),
                b"%FF".to_vec(), b"%0A".to_vec(), b"%00".to_vec(), b"%C3%28".to_vec(),
                b"repository:a/b:pull".to_vec(),
            ]).prop_map(|v| v[0]),
            1 => any::<u8>(),
        ],
        0..80,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scope_parser_never_panics_and_round_trips(text in scope_like()) {
        if let Ok(scope) = Scope::parse(&text) {
            let shown = scope.to_string();
            prop_assert_eq!(Scope::parse(&shown), Ok(scope.clone()), "{:?} -> {:?}", text, shown);
            prop_assert!(!scope.name().is_empty());
            prop_assert!(scope.actions().windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        }
    }

    #[test]
    fn arbitrary_strings_never_panic_the_scope_parser(text in any::<String>()) {
        let _ = Scope::parse(&text);
        let _ = parse_scopes([text.as_str()]);
    }

    #[test]
    fn valid_scopes_parse_to_their_parts((ty, class, name, actions) in valid_scope()) {
        let class_part = class.as_ref().map(|c| format!("({c})")).unwrap_or_default();
        let text = format!("{ty}{class_part}:{name}:{}", actions.join(","));
        let scope = Scope::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(scope.resource_type(), ty.as_str());
        prop_assert_eq!(scope.class(), class.as_deref());
        prop_assert_eq!(scope.name(), name.as_str());
        let mut want = actions;
        want.sort();
        want.dedup();
        prop_assert_eq!(scope.actions(), want.as_slice());
        prop_assert_eq!(Scope::parse(&scope.to_string()), Ok(scope));
    }

    #[test]
    fn parse_scopes_merges_and_stays_bounded(values in prop::collection::vec(scope_like(), 0..8)) {
        if let Ok(scopes) = parse_scopes(&values) {
            prop_assert!(scopes.len() <= MAX_SCOPES);
            for (i, a) in scopes.iter().enumerate() {
                for b in scopes.iter().skip(i + 1) {
                    prop_assert!(!a.same_resource(b), "{} and {} not merged", a, b);
                }
            }
        }
    }

    #[test]
    fn request_parsers_never_panic(bytes in form_like(), header in prop::option::of(any::<Vec<u8>>())) {
        let header = header.and_then(|h| HeaderValue::from_bytes(&h).ok());
        if let Ok(query) = std::str::from_utf8(&bytes) {
            let _ = TokenRequest::from_query(query, header.as_ref(), None);
        }
        let _ = TokenRequest::from_form(&bytes, header.as_ref(), None);
    }

    #[test]
    fn query_round_trips(
        service in any::<String>(),
        scopes in prop::collection::vec(valid_scope(), 0..4),
        user in "[^:\\p{Cc}]{0,20}",
        password in any::<String>(),
        send_account in any::<bool>(),
    ) {
        let texts: Vec<String> = scopes
            .iter()
            .map(|(t, _, n, a)| format!("{t}:{n}:{}", a.join(",")))
            .collect();
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("service", &service);
        for t in &texts {
            q.append_pair("scope", t);
        }
        if send_account {
            q.append_pair("account", &user);
        }
        let query = q.finish();
        let auth = HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{password}"))
        ))
        .unwrap();
        let parsed = TokenRequest::from_query(&query, Some(&auth), None);
        if service.chars().any(char::is_control) {
            prop_assert!(matches!(parsed, Err(Error::InvalidRequest(_))), "{:?}", parsed);
            return Ok(());
        }
        let req = parsed.map_err(|e| TestCaseError::fail(format!("{query}: {e}")))?;
        prop_assert_eq!(&req.service, &service);
        prop_assert_eq!(req.account.as_deref(), Some(user.as_str()));
        let login = req.login();
        prop_assert_eq!(login.password.expose(), password.as_str());
        prop_assert_eq!(req.scopes, parse_scopes(&texts).unwrap());
    }

    #[test]
    fn form_round_trips(
        user in "[^\\p{Cc}]{1,20}",
        password in any::<String>(),
        scope in prop::option::of(valid_scope()),
    ) {
        let mut f = form_urlencoded::Serializer::new(String::new());
        f.append_pair("grant_type", "password")
            .append_pair("username", &user)
            .append_pair("password", &password)
            .append_pair("client_id", "docker");
        if let Some((t, _, n, a)) = &scope {
            f.append_pair("scope", &format!("{t}:{n}:{}", a.join(",")));
        }
        let body = f.finish();
        let req = TokenRequest::from_form(body.as_bytes(), None, None)
            .map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
        prop_assert_eq!(req.account.as_deref(), Some(user.as_str()));
        let login = req.login();
        prop_assert_eq!(login.password.expose(), password.as_str());
        prop_assert_eq!(req.client_id.as_deref(), Some("docker"));
        prop_assert_eq!(req.scopes.len(), usize::from(scope.is_some()));
    }

    #[test]
    fn basic_header_never_panics(bytes in any::<Vec<u8>>(), b64 in any::<Vec<u8>>()) {
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            let _ = Credentials::from_authorization(&v);
        }
        let encoded = format!("Basic {}", STANDARD.encode(&b64));
        let v = HeaderValue::from_str(&encoded).unwrap();
        match Credentials::from_authorization(&v) {
            Ok(Credentials::Basic { username, password }) => {
                let text = std::str::from_utf8(&b64).unwrap();
                prop_assert_eq!(format!("{username}:{}", password.expose()), text);
                prop_assert!(!username.contains(':'));
            }
            Ok(other) => prop_assert!(false, "{:?}", other),
            Err(e) => prop_assert!(matches!(e, Error::InvalidRequest(_))),
        }
    }

    #[test]
    fn basic_header_round_trips(user in "[^:\\p{Cc}]{0,30}", password in any::<String>(), pad in any::<bool>(), scheme in prop::sample::select(vec!["Basic", "basic", "BASIC"])) {
        let mut enc = STANDARD.encode(format!("{user}:{password}"));
        if !pad {
            enc = enc.trim_end_matches('=').to_owned();
        }
        let v = HeaderValue::from_str(&format!("{scheme} {enc}")).unwrap();
        match Credentials::from_authorization(&v) {
            Ok(Credentials::Basic { username, password: p }) => {
                prop_assert_eq!(username, user);
                prop_assert_eq!(p.expose(), password.as_str());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
