//! The adapter through its real router (no network): HTTP in, token or typed error out.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use docker_token_axum::{ClientIpConfig, TokenRouter};
use docker_token_core::acl::{Acl, AclEntry};
use docker_token_core::keys::{Algorithm, KeySet, SigningKey};
use docker_token_core::static_users::UsersConfig;
use docker_token_core::{
    Authenticator, AuthenticatorChain, AuthorizerChain, StaticUsers, TokenIssuer, TokenService,
};
use http::{HeaderName, Request, StatusCode, header};
use http_body_util::BodyExt;
use test_support::stub::Stub;
use tower::ServiceExt;

fn service(extra: Option<Box<dyn Authenticator>>) -> TokenService {
    let users: UsersConfig = serde_json::from_value(serde_json::json!({
        "alice": {"password": bcrypt::hash("pw", 4).unwrap()},
        "": {}
    }))
    .unwrap();
    let acl: Vec<AclEntry> = serde_json::from_value(serde_json::json!([
        {"match": {"account": "alice"}, "actions": ["*"]},
        {"match": {"account": "", "ip": "10.1.0.0/16"}, "actions": ["pull"], "comment": "office"},
    ]))
    .unwrap();
    let key = SigningKey::generate(Algorithm::ES256, "t").unwrap().key;
    let mut authn = AuthenticatorChain::new();
    if let Some(e) = extra {
        authn.push(std::sync::Arc::new(e));
    }
    authn.push(std::sync::Arc::new(
        StaticUsers::from_config(&users).unwrap(),
    ));
    TokenService::builder(TokenIssuer::new(
        "iss",
        Duration::from_secs(60),
        KeySet::new(key),
    ))
    .authenticators(authn)
    .authorizers(AuthorizerChain::new().with(Acl::new(acl).unwrap()))
    .build()
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

async fn send(
    app: axum::Router,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, json)
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let seg = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn get_with_repeated_and_space_separated_scopes() {
    let app = TokenRouter::new(service(None)).build();
    let req = Request::get("/auth?service=my+registry&scope=repository:a:pull&scope=repository:b:push%20repository:a:push&account=alice")
        .header(header::AUTHORIZATION, basic("alice", "pw"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(app, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].is_u64());
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(c["aud"], "my registry");
    assert_eq!(
        c["access"],
        serde_json::json!([
            {"type": "repository", "name": "a", "actions": ["pull", "push"]},
            {"type": "repository", "name": "b", "actions": ["push"]}
        ])
    );
}

#[tokio::test]
async fn post_form_password_grant_chunked_and_alias_path() {
    let app = TokenRouter::new(service(None)).build();
    // a streamed body has no Content-Length: hyper sends it chunked, like containers/image
    let chunks = vec![
        Ok::<_, std::io::Error>(
            "grant_type=password&username=alice&pass"
                .as_bytes()
                .to_vec(),
        ),
        Ok(
            "word=pw&service=reg&client_id=containerd-client&scope=repository%3Ax%3Apull"
                .as_bytes()
                .to_vec(),
        ),
    ];
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let req = Request::post("/auth/token")
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .unwrap();
    let (status, _, body) = send(app, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
}

#[tokio::test]
async fn errors_are_typed_docker_json() {
    let app = TokenRouter::new(service(None)).build();
    let bad = |uri: &str, auth: Option<String>| {
        let mut b = Request::get(uri);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).unwrap()
    };
    let (s, h, b) = send(
        app.clone(),
        bad("/auth?service=r", Some(basic("alice", "nope"))),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(h[header::WWW_AUTHENTICATE], "Basic realm=\"iss\"");
    assert_eq!(b["errors"][0]["code"], "UNAUTHORIZED");
    let (s, _, b) = send(app.clone(), bad("/auth?scope=repository:x", None)).await;
    assert_eq!(s, 400);
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("repository:x"),
        "{b}"
    );
    let (s, _, _) = send(
        app.clone(),
        bad("/auth?account=bob", Some(basic("alice", "pw"))),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, b) = send(
        app.clone(),
        bad(&format!("/auth?service={}", "x".repeat(20_000)), None),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let big = Request::post("/auth")
        .body(Body::from(vec![b'a'; 100_000]))
        .unwrap();
    let (s, _, _) = send(app.clone(), big).await;
    assert_eq!(s, 413);
    let put = Request::put("/auth").body(Body::empty()).unwrap();
    let (s, _, _) = send(app, put).await;
    assert_eq!(s, 405, "containerd falls back to GET on 405");
}

#[tokio::test]
async fn jwks_health_and_prefix() {
    let app = TokenRouter::new(service(None)).prefix("/docker").build();
    let (s, h, b) = send(
        app.clone(),
        Request::get("/docker/.well-known/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["keys"][0]["kty"], "EC");
    assert_eq!(h["cache-control"], "public, max-age=300");
    assert!(h.get("pragma").is_none());
    let custom = TokenRouter::new(service(None))
        .jwks_max_age(std::time::Duration::from_secs(42))
        .build();
    let (_, h, _) = send(
        custom,
        Request::get("/.well-known/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(h["cache-control"], "public, max-age=42");
    let (s, _, _) = send(
        app.clone(),
        Request::get("/docker/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = send(
        app.clone(),
        Request::get("/docker/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = send(app, Request::get("/auth").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 404, "routes live under the prefix only");
}

#[tokio::test]
async fn unavailable_backend_is_503_and_not_ready() {
    let app = TokenRouter::new(service(Some(Box::new(Stub::down("down"))))).build();
    let req = Request::get("/auth?service=r")
        .header(header::AUTHORIZATION, basic("alice", "pw"))
        .body(Body::empty())
        .unwrap();
    let (s, _, b) = send(app.clone(), req).await;
    assert_eq!(s, 503);
    assert_eq!(b["errors"][0]["code"], "UNAVAILABLE");
    let (s, _, _) = send(app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 503);
}

#[tokio::test]
async fn client_ip_from_trusted_proxy_header_drives_ip_rules() {
    let ip = ClientIpConfig::from_header(HeaderName::from_static("x-forwarded-for"), -1);
    let app = TokenRouter::new(service(None)).client_ip(ip).build();
    let req = |xff: &str| {
        Request::get("/auth?service=r&scope=repository:x:pull")
            .header("x-forwarded-for", xff)
            .body(Body::empty())
            .unwrap()
    };
    let (s, _, b) = send(app.clone(), req("192.0.2.1, 10.1.2.3")).await;
    assert_eq!(s, 200);
    assert_eq!(
        claims(b["token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull"])
    );
    let (s, _, b) = send(app.clone(), req("10.1.2.3, 192.0.2.1")).await;
    assert_eq!(s, 200);
    assert_eq!(
        claims(b["token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!([])
    );
    let no_header = Request::get("/auth?service=r").body(Body::empty()).unwrap();
    let (s, _, b) = send(app, no_header).await;
    assert_eq!(s, 400, "{b}");
}
