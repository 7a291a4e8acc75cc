use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use docker_token_core::{AccessEntry, Algorithm, KeySet, SigningKey, TokenIssuer};
use http::Request;
use tower::ServiceExt as _;

use super::*;

const REALM: &str = "http://127.0.0.1:5001/auth";
const SERVICE: &str = "my \"registry\"";

fn issuer() -> &'static TokenIssuer {
    static ISSUER: OnceLock<TokenIssuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let key = SigningKey::generate(Algorithm::ES256, "test").unwrap().key;
        TokenIssuer::new("test-issuer", Duration::from_secs(300), KeySet::new(key))
    })
}

fn verifier() -> TokenVerifier {
    TokenVerifier::builder("test-issuer", SERVICE)
        .key_set(issuer().keys())
        .build()
        .unwrap()
}

fn token(access: &[AccessEntry]) -> String {
    issuer().issue("alice", SERVICE, access).unwrap().token
}

fn app() -> Router {
    Router::new()
        .fallback(any(|auth: Authorized| async move {
            format!("ok {:?}", auth.route.repository())
        }))
        .layer(RequireScope::new(verifier(), REALM, SERVICE))
}

async fn send(method: &str, uri: &str, bearer: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn challenge(headers: &HeaderMap) -> &str {
    headers[header::WWW_AUTHENTICATE].to_str().unwrap()
}

#[tokio::test]
async fn no_token_gets_the_plain_challenge_and_registry_body() {
    let (status, headers, body) = send("GET", "/v2/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&headers),
        r#"Bearer realm="http://127.0.0.1:5001/auth",service="my \"registry\"""#
    );
    assert_eq!(
        body,
        "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":null}]}\n"
    );
    assert_eq!(headers[API_VERSION_HEADER], API_VERSION);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/json; charset=utf-8"
    );

    let (status, headers, body) = send("GET", "/v2/team/app/tags/list", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&headers),
        r#"Bearer realm="http://127.0.0.1:5001/auth",service="my \"registry\"",scope="repository:team/app:pull""#
    );
    assert!(
        body.contains(
            r#""detail":[{"Type":"repository","Class":"","Name":"team/app","Action":"pull"}]"#
        ),
        "{body}"
    );
}

#[tokio::test]
async fn valid_token_passes_with_the_route() {
    let t = token(&[]);
    let (status, _, body) = send("GET", "/v2/", Some(&t)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t = token(&[AccessEntry::new("repository", "team/app", ["pull"])]);
    let (status, _, body) = send("HEAD", "/v2/team/app/manifests/v1", Some(&t)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send("GET", "/v2/team/app/tags/list", Some(&t)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ok Some(\"team/app\")")
    );
}

#[tokio::test]
async fn insufficient_scope_names_every_needed_record() {
    let t = token(&[AccessEntry::new("repository", "app", ["pull"])]);
    let (status, headers, body) = send(
        "POST",
        "/v2/app/blobs/uploads/?mount=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef&from=base/img",
        Some(&t),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&headers),
        r#"Bearer realm="http://127.0.0.1:5001/auth",service="my \"registry\"",scope="repository:app:pull,push repository:base/img:pull",error="insufficient_scope""#
    );
    assert_eq!(
        body,
        concat!(
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":["#,
            r#"{"Type":"repository","Class":"","Name":"app","Action":"pull"},"#,
            r#"{"Type":"repository","Class":"","Name":"app","Action":"push"},"#,
            r#"{"Type":"repository","Class":"","Name":"base/img","Action":"pull"}]}]}"#,
            "\n"
        )
    );
    // delete needs `delete` (or `*`), not push
    let t = token(&[AccessEntry::new("repository", "app", ["pull", "push"])]);
    let (status, headers, _) = send("DELETE", "/v2/app/manifests/v1", Some(&t)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&headers)
            .ends_with(r#"scope="repository:app:delete",error="insufficient_scope""#)
    );
    let t = token(&[AccessEntry::new("repository", "app", ["*"])]);
    let (status, _, _) = send("DELETE", "/v2/app/manifests/v1", Some(&t)).await;
    assert_eq!(status, StatusCode::OK);
    // the catalog needs the literal `*`
    let t = token(&[AccessEntry::new("registry", "catalog", ["pull"])]);
    let (status, headers, _) = send("GET", "/v2/_catalog", Some(&t)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&headers).ends_with(r#"scope="registry:catalog:*",error="insufficient_scope""#)
    );
    // a grant for another repository does not count
    let t = token(&[AccessEntry::new("repository", "other", ["*"])]);
    let (status, _, _) = send("GET", "/v2/app/tags/list", Some(&t)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_tokens_and_malformed_headers() {
    let (status, headers, _) = send("GET", "/v2/", Some("not-a-jwt")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).ends_with(r#",error="invalid_token""#));
    // two spaces, or another scheme: registry 2.8 treats it as no token at all
    for value in ["Bearer  x.y.z", "Basic YTpi", "Bearer", "Bearer a b"] {
        let req = Request::get("/v2/")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let c = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(!c.contains("error="), "{value}: {c}");
    }
    // the scheme is case-insensitive
    let t = token(&[]);
    let req = Request::get("/v2/")
        .header(header::AUTHORIZATION, format!("bEaReR {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app().oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_are_404_without_challenge_and_other_paths_pass() {
    for uri in ["/v2/UPPER/tags/list", "/v2/a/nope", "/v2/../x/tags/list"] {
        let (status, headers, body) = send("GET", uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
        assert!(body.starts_with(r#"{"errors":[{"code":""#), "{body}");
    }
    let (status, _, body) = send("GET", "/v2/a/blobs/uploads/?from=Bad..Name", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // outside /v2 the layer does nothing (the handler's extractor then reports the wiring)
    let (status, _, _) = send("GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn readme_shows_the_compiled_example() {
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(include_str!("protecting.md")),
        "README.md must contain docker-token-axum/src/resource/protecting.md verbatim"
    );
}

#[tokio::test]
async fn tokens_of_another_key_or_service_are_invalid() {
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger")
        .unwrap()
        .key;
    let other = TokenIssuer::new(
        "test-issuer",
        Duration::from_secs(300),
        KeySet::new(stranger),
    );
    let all = [AccessEntry::new("repository", "app", ["*"])];
    let forged = other.issue("alice", SERVICE, &all).unwrap().token;
    let (status, headers, _) = send("GET", "/v2/app/tags/list", Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).ends_with(r#"scope="repository:app:pull",error="invalid_token""#));
    let elsewhere = issuer()
        .issue("alice", "another service", &all)
        .unwrap()
        .token;
    let (status, headers, _) = send("GET", "/v2/app/tags/list", Some(&elsewhere)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).ends_with(r#",error="invalid_token""#));
}
