use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
}

fn get(query: &str, auth: Option<&HeaderValue>) -> TokenRequest {
    match TokenRequest::from_query(query, auth, Some(IP)) {
        Ok(r) => r,
        Err(e) => panic!("GET {query:?} should parse: {e}"),
    }
}

fn post(body: &str, auth: Option<&HeaderValue>) -> TokenRequest {
    match TokenRequest::from_form(body.as_bytes(), auth, Some(IP)) {
        Ok(r) => r,
        Err(e) => panic!("POST {body:?} should parse: {e}"),
    }
}

fn scopes(req: &TokenRequest) -> Vec<String> {
    req.scopes.iter().map(ToString::to_string).collect()
}

fn invalid_request_message(result: Result<TokenRequest, Error>) -> String {
    match result {
        Err(Error::InvalidRequest(msg)) => msg,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

// ---- protocol.md §6.4: containers/image (skopeo, podman) request log ----

#[test]
fn skopeo_push_with_account_and_basic() {
    let auth = basic("alice", "secret");
    let req = get(
        "account=alice&scope=repository%3Ademo%2Fhello%3Apull%2Cpush&service=test-registry",
        Some(&auth),
    );
    assert_eq!(req.service, "test-registry");
    assert_eq!(scopes(&req), ["repository:demo/hello:pull,push"]);
    assert_eq!(req.account.as_deref(), Some("alice"));
    assert_eq!(req.grant, GrantType::Get);
    assert!(!req.offline_token);
    assert_eq!(req.client_id, None);
    assert_eq!(req.client_ip, Some(IP));
    let login = req.login();
    assert_eq!(login.account, "alice");
    assert_eq!(login.password.expose(), "secret");
    assert_eq!(login.client_ip, Some(IP));
    assert_eq!(login.service, "test-registry");
}

#[test]
fn skopeo_anonymous_pull() {
    let req = get(
        "scope=repository%3Ademo%2Fhello%3Apull&service=test-registry",
        None,
    );
    assert_eq!(scopes(&req), ["repository:demo/hello:pull"]);
    assert_eq!(req.credentials, Credentials::Anonymous);
    assert_eq!(req.account, None);
    assert!(req.login().is_anonymous());
    assert_eq!(req.login().service, "test-registry");
}

#[test]
fn skopeo_login_has_no_scope() {
    let auth = basic("alice", "secret");
    let req = get("account=alice&service=test-registry", Some(&auth));
    assert!(req.scopes.is_empty());
    assert_eq!(req.account.as_deref(), Some("alice"));
}

#[test]
fn skopeo_delete_asks_for_star() {
    let auth = basic("alice", "secret");
    let req = get(
        "account=alice&scope=repository%3Ademo%2Fhello%3A%2A&service=test-registry",
        Some(&auth),
    );
    assert_eq!(scopes(&req), ["repository:demo/hello:*"]);
    assert_eq!(req.scopes[0].actions(), ["*"]);
}

#[test]
fn mount_probe_with_repeated_unencoded_scopes() {
    let auth = basic("alice", "secret");
    let req = get(
        "account=alice&scope=repository:demo/other:pull,push&scope=repository:demo/hello:pull",
        Some(&auth),
    );
    assert_eq!(
        scopes(&req),
        [
            "repository:demo/other:pull,push",
            "repository:demo/hello:pull"
        ]
    );
}

#[test]
fn containers_image_refresh_post_with_repeated_scopes() {
    let req = post(
        "client_id=containers/image&grant_type=refresh_token&refresh_token=RT-abc&\
         scope=repository:demo/hello:pull,push&scope=repository:demo/other:pull&service=test-registry",
        None,
    );
    assert_eq!(
        req.grant,
        GrantType::RefreshToken {
            refresh_token: Password::new("RT-abc")
        }
    );
    assert_eq!(req.client_id.as_deref(), Some("containers/image"));
    assert_eq!(req.service, "test-registry");
    assert_eq!(
        scopes(&req),
        [
            "repository:demo/hello:pull,push",
            "repository:demo/other:pull"
        ]
    );
    assert_eq!(req.credentials, Credentials::Anonymous);
    assert!(!format!("{req:?}").contains("RT-abc"));
}

// ---- docker (§6.2) and containerd (§6.3) ----

#[test]
fn docker_login_with_offline_token_and_client_id() {
    let auth = basic("alice", "secret");
    let req = get(
        "account=alice&client_id=docker&offline_token=true&service=S",
        Some(&auth),
    );
    assert!(req.offline_token);
    assert_eq!(req.client_id.as_deref(), Some("docker"));
    assert!(req.scopes.is_empty());
    for (value, expected) in [
        ("TRUE", true),
        ("1", true),
        ("false", false),
        ("", false),
        ("yes", false),
    ] {
        let req = get(&format!("offline_token={value}"), None);
        assert_eq!(req.offline_token, expected, "offline_token={value}");
    }
}

#[test]
fn docker_refresh_post_with_space_joined_scope() {
    let req = post(
        "client_id=docker&grant_type=refresh_token&refresh_token=RT&\
         scope=repository%3Aa%3Apull+repository%3Ab%3Apull%2Cpush&service=S",
        None,
    );
    assert_eq!(
        scopes(&req),
        ["repository:a:pull", "repository:b:pull,push"]
    );
    assert!(matches!(req.grant, GrantType::RefreshToken { .. }));
}

#[test]
fn containerd_password_grant() {
    let req = post(
        "access_type=offline&client_id=containerd-client&grant_type=password&password=s3cr%3At&\
         scope=repository%3Ademo%2Fhello%3Apull%2Cpush&service=test-registry&username=alice",
        None,
    );
    assert_eq!(req.grant, GrantType::Password);
    assert_eq!(req.client_id.as_deref(), Some("containerd-client"));
    assert!(req.offline_token);
    assert_eq!(req.account.as_deref(), Some("alice"));
    assert_eq!(
        req.credentials,
        Credentials::Basic {
            username: "alice".into(),
            password: Password::new("s3cr:t")
        }
    );
    assert_eq!(req.login().password.expose(), "s3cr:t");
    assert!(!format!("{req:?}").contains("s3cr"));
}

#[test]
fn containerd_empty_user_basic_with_identity_token() {
    let auth = basic("", "identity-token-xyz");
    let req = get("scope=repository%3Aa%3Apull&service=S", Some(&auth));
    assert_eq!(
        req.credentials,
        Credentials::Basic {
            username: String::new(),
            password: Password::new("identity-token-xyz")
        }
    );
    assert_eq!(req.account.as_deref(), Some(""));
    let login = req.login();
    assert_eq!(login.account, "");
    assert_eq!(login.password.expose(), "identity-token-xyz");
    assert!(!login.is_anonymous());
}

#[test]
fn access_type_other_than_offline_is_no_refresh_token() {
    let req = post(
        "grant_type=refresh_token&refresh_token=x&access_type=online",
        None,
    );
    assert!(!req.offline_token);
    let req = post(
        "grant_type=refresh_token&refresh_token=x&access_type=OFFLINE",
        None,
    );
    assert!(req.offline_token);
    // the GET parameter means nothing in a form, and the form one nothing in a query
    assert!(
        !post(
            "grant_type=refresh_token&refresh_token=x&offline_token=true",
            None
        )
        .offline_token
    );
    assert!(!get("access_type=offline", None).offline_token);
}

// ---- service ----

#[test]
fn service_is_verbatim_after_form_decoding() {
    assert_eq!(get("service=my+service", None).service, "my service");
    assert_eq!(get("service=my%20service", None).service, "my service");
    assert_eq!(
        get("service=Registry%3A5000", None).service,
        "Registry:5000"
    );
    assert_eq!(get("scope=registry:catalog:*", None).service, "");
    assert_eq!(
        post(
            "grant_type=refresh_token&refresh_token=x&service=my+service",
            None
        )
        .service,
        "my service"
    );
}

#[test]
fn leading_question_mark_is_tolerated() {
    assert_eq!(get("?service=s", None).service, "s");
}

// ---- account ----

#[test]
fn account_mismatch_on_get() {
    let auth = basic("alice", "secret");
    let r = TokenRequest::from_query("account=bob&service=S", Some(&auth), None);
    assert!(matches!(r, Err(Error::AccountMismatch)), "{r:?}");
    // case matters: user names are compared exactly
    let r = TokenRequest::from_query("account=Alice", Some(&auth), None);
    assert!(matches!(r, Err(Error::AccountMismatch)), "{r:?}");
}

#[test]
fn account_absent_or_empty_means_the_user() {
    let auth = basic("alice", "secret");
    assert_eq!(
        get("service=S", Some(&auth)).account.as_deref(),
        Some("alice")
    );
    assert_eq!(
        get("account=", Some(&auth)).account.as_deref(),
        Some("alice")
    );
}

#[test]
fn account_without_credentials_is_ignored() {
    let req = get("account=bob&service=S", None);
    assert_eq!(req.account, None);
    assert_eq!(req.credentials, Credentials::Anonymous);
    let login = req.login();
    assert_eq!(login.account, "");
    assert!(login.is_anonymous());
}

#[test]
fn post_account_loophole_is_closed() {
    // docker_auth authenticated `b` with P here
    let r = TokenRequest::from_form(
        b"grant_type=password&username=a&password=P&account=b",
        None,
        None,
    );
    assert!(matches!(r, Err(Error::AccountMismatch)), "{r:?}");
    let ok = post("grant_type=password&username=a&password=P&account=a", None);
    assert_eq!(ok.account.as_deref(), Some("a"));
}

#[test]
fn refresh_grant_with_basic_checks_account_too() {
    let auth = basic("alice", "pw");
    let r = TokenRequest::from_form(
        b"grant_type=refresh_token&refresh_token=x&account=bob",
        Some(&auth),
        None,
    );
    assert!(matches!(r, Err(Error::AccountMismatch)), "{r:?}");
    let req = post("grant_type=refresh_token&refresh_token=x&account=bob", None);
    assert_eq!(req.account, None);
}

// ---- password grant credentials ----

#[test]
fn basic_header_takes_precedence_and_must_agree_with_form() {
    let auth = basic("alice", "pw");
    let req = post("grant_type=password", Some(&auth));
    assert_eq!(req.login().account, "alice");
    let req = post(
        "grant_type=password&username=alice&password=pw",
        Some(&auth),
    );
    assert_eq!(req.login().password.expose(), "pw");
    let r = TokenRequest::from_form(
        b"grant_type=password&username=bob&password=pw",
        Some(&auth),
        None,
    );
    assert!(matches!(r, Err(Error::AccountMismatch)), "{r:?}");
    let msg = invalid_request_message(TokenRequest::from_form(
        b"grant_type=password&username=alice&password=other-secret",
        Some(&auth),
        None,
    ));
    assert!(
        !msg.contains("other-secret") && !msg.contains("pw"),
        "{msg}"
    );
}

#[test]
fn password_grant_needs_credentials() {
    let msg = invalid_request_message(TokenRequest::from_form(b"grant_type=password", None, None));
    assert!(msg.contains("credentials"), "{msg}");
    let msg = invalid_request_message(TokenRequest::from_form(
        b"grant_type=password&username=alice",
        None,
        None,
    ));
    assert!(msg.contains("password"), "{msg}");
    let msg = invalid_request_message(TokenRequest::from_form(
        b"grant_type=password&password=hunter2",
        None,
        None,
    ));
    assert!(!msg.contains("hunter2"), "{msg}");
    // an empty password is a shape the authenticators reject, not a malformed request
    let req = post("grant_type=password&username=alice&password=", None);
    assert!(req.login().password.is_empty());
}

#[test]
fn credentials_in_a_query_string_are_never_used() {
    let req = get("username=alice&password=secret&grant_type=password", None);
    assert_eq!(req.credentials, Credentials::Anonymous);
    assert_eq!(req.grant, GrantType::Get);
}

// ---- grant types ----

#[test]
fn unsupported_and_missing_grant_types() {
    for (body, expected) in [
        ("", ""),
        ("service=S", ""),
        ("grant_type=authorization_code&code=x", "authorization_code"),
        ("grant_type=client_credentials", "client_credentials"),
        ("grant_type=Password&username=a&password=b", "Password"),
    ] {
        match TokenRequest::from_form(body.as_bytes(), None, None) {
            Err(Error::UnsupportedGrantType(g)) => assert_eq!(g, expected, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    let long = format!("grant_type={}", "x".repeat(10_000));
    match TokenRequest::from_form(long.as_bytes(), None, None) {
        Err(Error::UnsupportedGrantType(g)) => assert!(g.chars().count() <= ERROR_VALUE_CHARS + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refresh_grant_needs_a_token() {
    for body in [
        "grant_type=refresh_token",
        "grant_type=refresh_token&refresh_token=",
    ] {
        let msg = invalid_request_message(TokenRequest::from_form(body.as_bytes(), None, None));
        assert!(msg.contains("refresh_token"), "{msg}");
    }
}

// ---- Authorization header ----

#[test]
fn password_may_contain_colons_and_user_ends_at_the_first() {
    let auth = basic("alice", "pa:ss:word");
    let req = get("", Some(&auth));
    assert_eq!(req.login().account, "alice");
    assert_eq!(req.login().password.expose(), "pa:ss:word");
}

#[test]
fn scheme_is_case_insensitive_and_padding_optional() {
    let encoded = STANDARD.encode("alice:pw1"); // "YWxpY2U6cHcx", no padding needed
    for header in [
        format!("basic {encoded}"),
        format!("BASIC  {encoded} "),
        "Basic YWxpY2U6cHc=".to_owned(),
        "Basic YWxpY2U6cHc".to_owned(),
    ] {
        let value = HeaderValue::from_str(&header).unwrap();
        let creds = Credentials::from_authorization(&value).unwrap();
        assert_eq!(creds.username(), Some("alice"), "{header}");
    }
}

#[test]
fn malformed_basic_credentials_are_400_without_echo() {
    let no_colon = STANDARD.encode("alicesecretvalue");
    let not_utf8 = STANDARD.encode([0x61, 0x3a, 0xff, 0xfe]);
    for header in [
        "Basic !!secretvalue!!".to_owned(),
        "Basic".to_owned(),
        "Basic    ".to_owned(),
        format!("Basic {no_colon}"),
        format!("Basic {not_utf8}"),
    ] {
        let value = HeaderValue::from_str(&header).unwrap();
        let r = TokenRequest::from_query("service=S", Some(&value), None);
        let err = r.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{header}");
        let shown = format!("{err} {err:?} {}", err.public_message());
        assert!(!shown.contains("secretvalue"), "{shown}");
        assert!(!shown.contains(&no_colon), "{shown}");
    }
}

#[test]
fn other_schemes_are_rejected_without_echo() {
    for header in [
        "Bearer eyJsecrettoken",
        "Digest username=x",
        "eyJsecrettoken",
    ] {
        let value = HeaderValue::from_static(header);
        let msg = invalid_request_message(TokenRequest::from_query("", Some(&value), None));
        assert!(msg.contains("unsupported authorization scheme"), "{msg}");
        assert!(!msg.contains("secrettoken"), "{msg}");
    }
    let value = HeaderValue::from_bytes(b"Basic \xff").unwrap();
    assert!(matches!(
        TokenRequest::from_query("", Some(&value), None),
        Err(Error::InvalidRequest(_))
    ));
}

// ---- parameters ----

#[test]
fn unknown_parameters_are_ignored() {
    let req = get("service=S&foo=bar&nonce=1&scope=repository:a:pull", None);
    assert_eq!(req.service, "S");
    assert_eq!(scopes(&req), ["repository:a:pull"]);
}

#[test]
fn repeated_singular_parameters() {
    assert_eq!(get("service=S&service=S", None).service, "S");
    let msg = invalid_request_message(TokenRequest::from_query("service=a&service=b", None, None));
    assert!(msg.contains("service"), "{msg}");
    let msg = invalid_request_message(TokenRequest::from_form(
        b"grant_type=password&username=a&password=one-secret&password=two-secret",
        None,
        None,
    ));
    assert!(msg.contains("password"), "{msg}");
    assert!(
        !msg.contains("one-secret") && !msg.contains("two-secret"),
        "{msg}"
    );
    assert!(matches!(
        TokenRequest::from_form(b"grant_type=password&grant_type=refresh_token", None, None),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn scopes_are_merged_and_empty_values_skipped() {
    let req = get(
        "scope=&scope=repository:a:push,pull&scope=repository:a:pull&scope=%20%20registry:catalog:*",
        None,
    );
    assert_eq!(
        scopes(&req),
        ["repository:a:pull,push", "registry:catalog:*"]
    );
    let req = post("grant_type=refresh_token&refresh_token=x&scope=", None);
    assert!(req.scopes.is_empty());
}

#[test]
fn bad_scope_is_invalid_scope() {
    let r = TokenRequest::from_query("scope=Repository:a:pull", None, None);
    assert!(
        matches!(
            r,
            Err(Error::InvalidScope(crate::ScopeError::InvalidType { .. }))
        ),
        "{r:?}"
    );
    let r = TokenRequest::from_form(
        b"grant_type=refresh_token&refresh_token=x&scope=repo",
        None,
        None,
    );
    assert!(matches!(r, Err(Error::InvalidScope(_))), "{r:?}");
}

#[test]
fn debug_never_shows_secrets() {
    let auth = basic("alice", "hunter2-basic");
    let req = get("service=S&scope=repository:a:pull", Some(&auth));
    let shown = format!("{req:?} {:?} {:?}", req.login(), req.credentials);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("alice"), "{shown}");
    let req = post(
        "grant_type=password&username=bob&password=hunter2-form&service=S",
        None,
    );
    assert!(!format!("{req:?}").contains("hunter2"));
    let req = post(
        "grant_type=refresh_token&refresh_token=hunter2-refresh",
        None,
    );
    assert!(!format!("{req:?} {:?}", req.grant).contains("hunter2"));
}
