//! Replacing the service through a [`ServiceHandle`]: new requests see the new service at
//! once, an in-flight request finishes with the one it started with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use docker_token_axum::{ServiceHandle, TokenRouter};
use docker_token_core::keys::{Algorithm, KeySet, SigningKey};
use docker_token_core::{
    Authenticator, AuthenticatorChain, AuthnOutcome, BackendError, Identity, LoginAttempt,
    TokenIssuer, TokenService,
};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use test_support::stub::Stub;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// Accepts everyone, but only after `release` has a permit; says when it was entered.
struct Gate {
    entered: Notify,
    release: Semaphore,
}

#[async_trait]
impl Authenticator for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        self.entered.notify_one();
        let permit = self.release.acquire().await;
        drop(permit);
        Ok(AuthnOutcome::Authenticated(Identity::new(
            login.account.clone(),
        )))
    }
}

fn service(issuer: &str, authn: AuthenticatorChain) -> TokenService {
    let key = SigningKey::generate(Algorithm::ES256, issuer).unwrap().key;
    TokenService::builder(TokenIssuer::new(
        issuer,
        Duration::from_secs(60),
        KeySet::new(key),
    ))
    .authenticators(authn)
    .build()
}

async fn issuer_of(app: axum::Router, user: &str) -> (StatusCode, String) {
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
    let mut req = Request::get("/auth?service=reg")
        .header(header::AUTHORIZATION, format!("Basic {creds}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let Some(token) = body["token"].as_str() else {
        return (status, String::new());
    };
    let claims = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    (status, claims["iss"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_affects_new_requests_and_spares_in_flight_ones() {
    let gate = Arc::new(Gate {
        entered: Notify::new(),
        release: Semaphore::new(0),
    });
    let old = service("old", AuthenticatorChain::new().with(gate.clone()));
    let handle = ServiceHandle::new(old);
    let app = TokenRouter::with_handle(handle.clone()).build();

    let in_flight = tokio::spawn(issuer_of(app.clone(), "bob"));
    tokio::time::timeout(Duration::from_secs(10), gate.entered.notified())
        .await
        .expect("the first request reaches the old service's authenticator");

    let previous = handle.replace(service(
        "new",
        AuthenticatorChain::new().with(Stub::accept("open")),
    ));
    assert_eq!(previous.issuer().issuer(), "old");
    assert_eq!(handle.current().issuer().issuer(), "new");
    assert_eq!(
        issuer_of(app.clone(), "carol").await,
        (StatusCode::OK, "new".to_owned()),
        "a request after the swap uses the new service"
    );
    assert!(!in_flight.is_finished(), "the old request is still waiting");

    gate.release.add_permits(1);
    let done = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request finishes")
        .unwrap();
    assert_eq!(done, (StatusCode::OK, "old".to_owned()));
}
