//! Shared helpers for the tests against the real `oidc-provider` (test_support::oidc).
#![allow(dead_code, unreachable_pub)]

use docker_token_core::{Authenticator, AuthnOutcome, BackendError, Identity, LoginAttempt};
use docker_token_oidc::{OidcTokenAuthenticator, OidcTokenConfig};
use test_support::oidc::{Provider, RS_CLIENT};

/// A configuration for the provider's resource-server client, user claim `username`, labels
/// from `groups`, and no JWT verification (no audiences).
pub fn config(provider: &Provider) -> OidcTokenConfig {
    config_for(&provider.issuer)
}

/// The same for an issuer URL (the provider may not be running).
pub fn config_for(issuer: &str) -> OidcTokenConfig {
    let mut c = OidcTokenConfig::new(issuer, RS_CLIENT.0, Some(RS_CLIENT.1.into()), "username");
    c.label_claims = vec!["groups".to_owned()];
    c
}

/// Builds the authenticator.
pub fn authenticator(config: &OidcTokenConfig) -> OidcTokenAuthenticator {
    OidcTokenAuthenticator::from_config(config).expect("valid configuration")
}

/// Authenticates `user` with `password`.
pub async fn login(
    auth: &OidcTokenAuthenticator,
    user: &str,
    password: &str,
) -> Result<AuthnOutcome, BackendError> {
    auth.authenticate(&LoginAttempt::new(user, password)).await
}

/// The identity an `Authenticated` outcome carries; panics on any other outcome.
pub fn identity(outcome: Result<AuthnOutcome, BackendError>) -> Identity {
    match outcome {
        Ok(AuthnOutcome::Authenticated(id)) => id,
        other => panic!("expected Authenticated, got {other:?}"),
    }
}

/// Logs to stderr when DOCKER_TOKEN_TEST_VERBOSE is set.
pub fn init_tracing() {
    if std::env::var_os("DOCKER_TOKEN_TEST_VERBOSE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
}
