//! Opaque access tokens checked by RFC 7662 introspection, against the real `oidc-provider`.

mod common;

use std::time::Duration;

use common::{authenticator, config, config_for, identity, init_tracing, login};
use docker_token_core::{
    Authenticator, AuthenticatorChain, AuthnOutcome, BackendErrorKind, Identity, LoginAttempt,
    StaticUsers,
};
use docker_token_oidc::ClientAuth;
use test_support::oidc::{OPAQUE_RESOURCE, Provider, ProviderOptions};

const INTROSPECT: (&str, &str) = ("POST", "/token/introspection");

#[tokio::test]
async fn opaque_token_authenticates_with_group_labels() {
    init_tracing();
    let p = Provider::start();
    let auth = authenticator(&config(&p));
    let alice = p.access_token("alice", "alicepw", None);
    let id = identity(login(&auth, "alice", &alice).await);
    assert_eq!(id.account, "alice");
    assert_eq!(id.labels["groups"], ["dev", "ops"]);
    assert_eq!(
        id.labels.len(),
        1,
        "only label_claims become labels: {:?}",
        id.labels
    );

    let carol = p.access_token("carol", "carolpw", None);
    let id = identity(login(&auth, "carol", &carol).await);
    assert_eq!(id.labels["groups"], Vec::<String>::new());
    assert!(auth.ready().await.is_ok());
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let p = Provider::start();
    let mut c = config(&p);
    c.client_auth = ClientAuth::ClientSecretPost;
    let auth = authenticator(&c);
    let bob = p.access_token("bob", "bobpw", None);
    assert_eq!(
        identity(login(&auth, "bob", &bob).await).labels["groups"],
        ["dev"]
    );
}

#[tokio::test]
async fn another_users_token_and_a_token_without_user_are_rejected() {
    let p = Provider::start();
    let auth = authenticator(&config(&p));
    let alice = p.access_token("alice", "alicepw", None);
    assert_eq!(
        login(&auth, "bob", &alice).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(
        login(&auth, "Alice", &alice).await.unwrap(),
        AuthnOutcome::Rejected
    );
    let machine = p.client_credentials_token();
    assert_eq!(
        login(&auth, "registry-ui", &machine).await.unwrap(),
        AuthnOutcome::Rejected
    );
    // the fallback claim is only used when configured
    let mut c = config(&p);
    c.user_claim = "preferred_username".to_owned();
    let strict = authenticator(&c);
    assert_eq!(
        login(&strict, "alice", &alice).await.unwrap(),
        AuthnOutcome::Rejected
    );
    c.user_claim_fallbacks = vec!["username".to_owned()];
    let fallback = authenticator(&c);
    assert_eq!(
        identity(login(&fallback, "alice", &alice).await).account,
        "alice"
    );
}

#[tokio::test]
async fn garbage_and_revoked_tokens_are_not_applicable_and_do_not_mask_static_users() {
    let p = Provider::start();
    let auth = authenticator(&config(&p));
    let garbage = "ZZZZ-this-is-not-a-token-at-all-0123456789";
    assert_eq!(
        login(&auth, "alice", garbage).await.unwrap(),
        AuthnOutcome::NotApplicable
    );

    let revoked = p.access_token("alice", "alicepw", None);
    p.revoke(&revoked);
    assert_eq!(
        login(&auth, "alice", &revoked).await.unwrap(),
        AuthnOutcome::NotApplicable
    );

    // OIDC first, static users second: a static password still works (and a wrong one is 401)
    let hash = bcrypt::hash("a-long-static-password", 4).unwrap();
    let statics = StaticUsers::from_htpasswd(&format!("dave:{hash}\n")).unwrap();
    let chain = AuthenticatorChain::new().with(auth).with(statics);
    let (outcome, by) = chain
        .authenticate_with_source(&LoginAttempt::new("dave", "a-long-static-password"))
        .await
        .unwrap();
    assert_eq!(outcome, AuthnOutcome::Authenticated(Identity::new("dave")));
    assert_eq!(by, Some("static"));
    let wrong = chain
        .authenticate(&LoginAttempt::new("dave", "a-long-wrong-password"))
        .await;
    assert_eq!(wrong.unwrap(), AuthnOutcome::Rejected);
    assert_eq!(
        p.request_count(INTROSPECT.0, INTROSPECT.1),
        4,
        "{}",
        p.output()
    );
}

#[tokio::test]
async fn expired_token_stops_working_and_the_cache_ends_at_expiry() {
    let p = Provider::start_with(ProviderOptions {
        access_token_ttl: Some(2),
        port: None,
        ..Default::default()
    });
    let auth = authenticator(&config(&p));
    let token = p.access_token("alice", "alicepw", None);
    identity(login(&auth, "alice", &token).await);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(
        login(&auth, "alice", &token).await.unwrap(),
        AuthnOutcome::NotApplicable
    );
    assert_eq!(
        p.request_count(INTROSPECT.0, INTROSPECT.1),
        2,
        "the cached success must end at exp"
    );
}

#[tokio::test]
async fn short_passwords_never_reach_the_idp() {
    let p = Provider::start();
    let auth = authenticator(&config(&p));
    for pw in ["", "short", "fifteen-chars!!"] {
        assert_eq!(
            login(&auth, "alice", pw).await.unwrap(),
            AuthnOutcome::NotApplicable
        );
    }
    assert_eq!(
        login(&auth, "", "some-long-password-of-nobody")
            .await
            .unwrap(),
        AuthnOutcome::NotApplicable
    );
    assert_eq!(auth.http_requests(), 0);
}

#[tokio::test]
async fn audience_of_an_introspected_token_must_be_accepted() {
    let p = Provider::start();
    let token = p.access_token("bob", "bobpw", Some(OPAQUE_RESOURCE));
    let mut c = config(&p);
    c.audiences = vec!["urn:example:somewhere-else".to_owned()];
    assert_eq!(
        login(&authenticator(&c), "bob", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );
    c.audiences.push(OPAQUE_RESOURCE.to_owned());
    assert_eq!(
        identity(login(&authenticator(&c), "bob", &token).await).labels["groups"],
        ["dev"]
    );
}

#[tokio::test]
async fn cache_avoids_repeated_introspection() {
    let p = Provider::start();
    let auth = authenticator(&config(&p));
    let token = p.access_token("alice", "alicepw", None);
    identity(login(&auth, "alice", &token).await);
    let after_first = auth.http_requests();
    assert_eq!(p.request_count(INTROSPECT.0, INTROSPECT.1), 1);
    for _ in 0..3 {
        identity(login(&auth, "alice", &token).await);
    }
    assert_eq!(auth.http_requests(), after_first, "cached: no HTTP request");
    assert_eq!(
        p.request_count(INTROSPECT.0, INTROSPECT.1),
        1,
        "{}",
        p.output()
    );
    // the same token for another user is a different question
    assert_eq!(
        login(&auth, "bob", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(
        login(&auth, "bob", &token).await.unwrap(),
        AuthnOutcome::Rejected
    );
    assert_eq!(
        p.request_count(INTROSPECT.0, INTROSPECT.1),
        2,
        "the rejection is cached, too"
    );

    // with the caches off, every login asks the IdP
    let mut c = config(&p);
    c.cache_ttl = Duration::ZERO;
    c.negative_cache_ttl = Duration::ZERO;
    let uncached = authenticator(&c);
    identity(login(&uncached, "alice", &token).await);
    identity(login(&uncached, "alice", &token).await);
    assert_eq!(p.request_count(INTROSPECT.0, INTROSPECT.1), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_of_one_token_make_one_introspection() {
    let p = Provider::start();
    let auth = std::sync::Arc::new(authenticator(&config(&p)));
    let token = p.access_token("alice", "alicepw", None);
    auth.discover().await.expect("discovery");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (auth, token) = (auth.clone(), token.clone());
            tokio::spawn(async move { login(&auth, "alice", &token).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(identity(t.await.expect("task")).account, "alice");
    }
    assert_eq!(
        p.request_count(INTROSPECT.0, INTROSPECT.1),
        1,
        "the concurrent checks waited for one introspection: {}",
        p.output()
    );
}

#[tokio::test]
async fn wrong_client_secret_is_unavailable() {
    let p = Provider::start();
    let mut c = config(&p);
    c.client_secret = Some("not-the-secret".into());
    let auth = authenticator(&c);
    let token = p.access_token("alice", "alicepw", None);
    let err = login(&auth, "alice", &token).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable);
    assert_eq!(err.backend(), "oidc_token");
    let text = docker_token_core::display_chain(&err);
    assert!(text.contains("client authentication failed"), "{text}");
    assert!(
        !text.contains("not-the-secret") && !text.contains(&token),
        "{text}"
    );
    // errors are not cached: the next attempt asks again
    assert!(login(&auth, "alice", &token).await.is_err());
    assert_eq!(p.request_count(INTROSPECT.0, INTROSPECT.1), 2);
    // for form-posted credentials, too
    c.client_auth = ClientAuth::ClientSecretPost;
    let err = login(&authenticator(&c), "alice", &token)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable);
}

#[tokio::test]
async fn provider_down_then_back_on_the_same_port() {
    init_tracing();
    let mut p = Provider::start();
    let auth = authenticator(&config(&p));
    let token = p.access_token("alice", "alicepw", None);
    identity(login(&auth, "alice", &token).await);

    p.stop();
    let other = "another-token-that-was-never-cached-0123456789";
    let err = login(&auth, "alice", other).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
    // a cached success keeps working while the IdP is down
    identity(login(&auth, "alice", &token).await);

    p.restart();
    let fresh = p.access_token("bob", "bobpw", None);
    assert_eq!(
        identity(login(&auth, "bob", &fresh).await).labels["groups"],
        ["dev"]
    );
}

#[tokio::test]
async fn idp_down_at_startup_then_discovered_later() {
    let port = test_support::free_port();
    let c = config_for(&format!("http://127.0.0.1:{port}"));
    let auth = authenticator(&c);
    let first = auth.discover().await.unwrap_err();
    assert_eq!(first.kind(), BackendErrorKind::Unavailable);
    // within the back-off, the failure is answered again, reading the same
    let err = login(&auth, "alice", "some-token-value-0123456789")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable);
    assert_eq!(err.to_string(), first.to_string());
    assert_eq!(
        docker_token_core::display_chain(&err),
        docker_token_core::display_chain(&first)
    );
    let err = auth.ready().await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable);

    let p = Provider::start_with(ProviderOptions {
        access_token_ttl: None,
        port: Some(port),
        ..Default::default()
    });
    let token = p.access_token("alice", "alicepw", None);
    // a failed discovery is retried after a second
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match login(&auth, "alice", &token).await {
            Ok(outcome) => {
                assert!(
                    matches!(outcome, AuthnOutcome::Authenticated(_)),
                    "{outcome:?}"
                );
                break;
            }
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    auth.ready().await.unwrap();
}

#[tokio::test]
async fn issuer_mismatch_is_a_misconfiguration() {
    let p = Provider::start();
    let c = config_for(&format!("{}/", p.issuer));
    let err = authenticator(&c).discover().await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Misconfigured);
    assert!(err.to_string().contains("trailing slash"), "{err}");
}
