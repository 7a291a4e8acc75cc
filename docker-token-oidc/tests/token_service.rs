//! End to end in the library: an IdP access token as the password, the ACL granting by the
//! `groups` claim (`${labels:groups}`), against the real `oidc-provider`.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{authenticator, config};
use docker_token_core::acl::{Acl, AclEntry};
use docker_token_core::request::TokenRequest;
use docker_token_core::token::TokenIssuer;
use docker_token_core::{
    Algorithm, AuthenticatorChain, AuthorizerChain, Error, KeySet, SigningKey, TokenService,
};
use http::HeaderValue;
use test_support::oidc::Provider;

fn basic(user: &str, password: &str) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
}

#[tokio::test]
async fn acl_grants_by_idp_groups() {
    let p = Provider::start();
    let key = SigningKey::generate(Algorithm::ES256, "token-signer")
        .unwrap()
        .key;
    let issuer = TokenIssuer::new("test-issuer", Duration::from_secs(300), KeySet::new(key));
    let rules: Vec<AclEntry> = serde_json::from_value(serde_json::json!([
        {"match": {"account": "/.+/", "name": "${labels:groups}/*"}, "actions": ["pull", "push"]},
    ]))
    .unwrap();
    let service = TokenService::builder(issuer)
        .authenticators(AuthenticatorChain::new().with(authenticator(&config(&p))))
        .authorizers(AuthorizerChain::new().with(Acl::new(rules).unwrap()))
        .build();

    let token = p.access_token("alice", "alicepw", None);
    let query = "service=registry&scope=repository:ops/app:pull,push&scope=repository:qa/app:pull";
    let request = TokenRequest::from_query(query, Some(&basic("alice", &token)), None).unwrap();
    let issued = service.issue(&request).await.unwrap();
    assert_eq!(issued.account, "alice");
    assert_eq!(issued.authenticator.as_deref(), Some("oidc_token"));
    let ops = issued.access.iter().find(|a| a.name == "ops/app").unwrap();
    let mut actions = ops.actions.clone();
    actions.sort();
    assert_eq!(actions, ["pull", "push"], "alice is in group ops");
    assert!(
        !issued
            .access
            .iter()
            .any(|a| a.name == "qa/app" && !a.actions.is_empty()),
        "alice is not in group qa: {:?}",
        issued.access
    );

    // bob is only in dev
    let bob = p.access_token("bob", "bobpw", None);
    let request = TokenRequest::from_query(query, Some(&basic("bob", &bob)), None).unwrap();
    let issued = service.issue(&request).await.unwrap();
    assert!(
        issued.access.iter().all(|a| a.actions.is_empty()),
        "{:?}",
        issued.access
    );

    // someone else's token is a 401
    let request = TokenRequest::from_query(query, Some(&basic("bob", &token)), None).unwrap();
    let err = service.issue(&request).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized), "{err:?}");
}
