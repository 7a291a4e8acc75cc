//! JWT access tokens verified locally with the provider's JWKS, against the real `oidc-provider`.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{authenticator, config, identity, init_tracing, login};
use docker_token_core::{Algorithm, AuthnOutcome, SigningKey};
use docker_token_oidc::{JwtAlgorithm, OidcTokenConfig};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use test_support::oidc::{JWT_RESOURCE, PROVIDER_KID, Provider, ProviderOptions};

const JWKS: (&str, &str) = ("GET", "/jwks");
const INTROSPECT: (&str, &str) = ("POST", "/token/introspection");

fn jwt_config(p: &Provider) -> OidcTokenConfig {
    let mut c = config(p);
    c.audiences = vec![JWT_RESOURCE.to_owned()];
    c
}

/// The payload of a JWT, unverified.
fn payload(jwt: &str) -> serde_json::Map<String, Value> {
    let seg = jwt.split('.').nth(1).expect("a payload segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("JSON object")
}

/// Signs `claims` with a freshly generated RSA key (not the provider's) under `kid`.
fn sign_with_other_key(claims: &serde_json::Map<String, Value>, kid: &str) -> String {
    let generated =
        SigningKey::generate(Algorithm::RS256, "attacker").expect("generate an RSA key");
    let key = EncodingKey::from_rsa_pem(generated.key_pem.expose().as_bytes()).expect("PEM key");
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

#[tokio::test]
async fn jwt_access_token_is_verified_locally() {
    init_tracing();
    let p = Provider::start();
    let auth = authenticator(&jwt_config(&p));
    let token = p.access_token("alice", "alicepw", Some(JWT_RESOURCE));
    assert_eq!(
        token.split('.').count(),
        3,
        "the provider issues a JWT for this resource"
    );
    let id = identity(login(&auth, "alice", &token).await);
    assert_eq!(id.account, "alice");
    assert_eq!(id.labels["groups"], ["dev", "ops"]);
    assert_eq!(
        login(&auth, "bob", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(p.request_count(JWKS.0, JWKS.1), 1, "{}", p.output());
    assert_eq!(
        p.request_count(INTROSPECT.0, INTROSPECT.1),
        0,
        "JWTs are not introspected"
    );

    // a second token signed by the same key needs no further JWKS download
    let bob = p.access_token("bob", "bobpw", Some(JWT_RESOURCE));
    assert_eq!(
        identity(login(&auth, "bob", &bob).await).labels["groups"],
        ["dev"]
    );
    assert_eq!(p.request_count(JWKS.0, JWKS.1), 1);
}

#[tokio::test]
async fn forged_and_tampered_jwts_are_rejected() {
    init_tracing();
    let p = Provider::start();
    let auth = authenticator(&jwt_config(&p));
    let real = p.access_token("bob", "bobpw", Some(JWT_RESOURCE));
    let mut claims = payload(&real);

    // tampered: bob's signed token with its payload rewritten to alice
    claims.insert("username".to_owned(), Value::from("alice"));
    claims.insert("sub".to_owned(), Value::from("alice"));
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let tampered = parts.join(".");
    assert_eq!(
        login(&auth, "alice", &tampered).await.unwrap(),
        AuthnOutcome::Rejected
    );

    // re-signed with another key under the provider's kid
    let forged = sign_with_other_key(&claims, PROVIDER_KID);
    assert_eq!(
        login(&auth, "alice", &forged).await.unwrap(),
        AuthnOutcome::Rejected
    );

    // signature stripped
    parts[2] = String::new();
    assert_eq!(
        login(&auth, "alice", &parts.join(".")).await.unwrap(),
        AuthnOutcome::Rejected
    );

    // the real token still works, and nothing went to introspection
    assert!(matches!(
        login(&auth, "bob", &real).await.unwrap(),
        AuthnOutcome::Authenticated(_)
    ));
    assert_eq!(p.request_count(INTROSPECT.0, INTROSPECT.1), 0);
}

#[tokio::test]
async fn unknown_kid_is_rejected_and_jwks_refresh_is_rate_limited() {
    let p = Provider::start();
    let real = p.access_token("alice", "alicepw", Some(JWT_RESOURCE));
    let claims = payload(&real);
    let unknown_1 = sign_with_other_key(&claims, "rotated-key-1");
    let unknown_2 = sign_with_other_key(&claims, "rotated-key-2");

    // default interval (30 s): the first download is the only one
    let auth = authenticator(&jwt_config(&p));
    assert_eq!(
        login(&auth, "alice", &unknown_1).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(
        login(&auth, "alice", &unknown_2).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(p.request_count(JWKS.0, JWKS.1), 1, "{}", p.output());

    // no minimum interval: each unknown kid triggers one refresh
    let mut c = jwt_config(&p);
    c.jwks_min_refresh_interval = Duration::ZERO;
    let eager = authenticator(&c);
    identity(login(&eager, "alice", &real).await);
    assert_eq!(p.request_count(JWKS.0, JWKS.1), 2);
    assert_eq!(
        login(&eager, "alice", &unknown_1).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(p.request_count(JWKS.0, JWKS.1), 3);
}

#[tokio::test]
async fn audience_issuer_and_algorithm_are_enforced() {
    let p = Provider::start();
    let token = p.access_token("alice", "alicepw", Some(JWT_RESOURCE));

    let mut c = jwt_config(&p);
    c.audiences = vec!["urn:example:another-registry".to_owned()];
    assert_eq!(
        login(&authenticator(&c), "alice", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );

    let mut c = jwt_config(&p);
    c.algorithms = vec![JwtAlgorithm::ES256];
    assert_eq!(
        login(&authenticator(&c), "alice", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );

    // a JWT of another issuer is not ours to judge: no network call at all
    let mut claims = payload(&token);
    claims.insert(
        "iss".to_owned(),
        Value::from("https://elsewhere.example.org"),
    );
    let foreign = sign_with_other_key(&claims, "their-key");
    let auth = authenticator(&jwt_config(&p));
    assert_eq!(
        login(&auth, "alice", &foreign).await.unwrap(),
        AuthnOutcome::NotApplicable
    );
    assert_eq!(auth.http_requests(), 0);
}

#[tokio::test]
async fn expired_jwt_is_rejected() {
    let p = Provider::start_with(ProviderOptions {
        access_token_ttl: Some(1),
        port: None,
        ..Default::default()
    });
    let mut c = jwt_config(&p);
    c.clock_skew = Duration::ZERO;
    let auth = authenticator(&c);
    let token = p.access_token("alice", "alicepw", Some(JWT_RESOURCE));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        login(&auth, "alice", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );
}

#[tokio::test]
async fn without_audiences_jwts_go_to_introspection_which_refuses_them() {
    let p = Provider::start();
    let auth = authenticator(&config(&p));
    let token = p.access_token("alice", "alicepw", Some(JWT_RESOURCE));
    assert_eq!(
        login(&auth, "alice", &token).await.unwrap(),
        AuthnOutcome::NotApplicable
    );
    assert_eq!(p.request_count(INTROSPECT.0, INTROSPECT.1), 1);
    assert_eq!(p.request_count(JWKS.0, JWKS.1), 0);
}

#[tokio::test]
async fn jwt_only_mode_needs_no_client_secret() {
    let p = Provider::start();
    let mut c = jwt_config(&p);
    c.client_secret = None;
    let auth = authenticator(&c);
    let jwt = p.access_token("bob", "bobpw", Some(JWT_RESOURCE));
    identity(login(&auth, "bob", &jwt).await);
    let opaque = p.access_token("bob", "bobpw", None);
    assert_eq!(
        login(&auth, "bob", &opaque).await.unwrap(),
        AuthnOutcome::NotApplicable
    );
    assert_eq!(p.request_count(INTROSPECT.0, INTROSPECT.1), 0);
}
