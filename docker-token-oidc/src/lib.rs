//! OIDC support for docker-token: IdP access tokens as docker passwords.
//!
//! [`OidcTokenAuthenticator`] implements [`docker_token_core::Authenticator`] for
//! `docker login -u <user> -p <access token>`: opaque tokens are checked with RFC 7662
//! introspection, JWT access tokens are verified locally against the provider's JWKS, and the
//! token's `user_claim` must equal the docker user name. See its documentation for which
//! outcome each kind of password gets.
//!
//! ```no_run
//! use docker_token_core::{Authenticator, AuthenticatorChain, LoginAttempt};
//! use docker_token_oidc::{OidcTokenAuthenticator, OidcTokenConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config: OidcTokenConfig = serde_json::from_value(serde_json::json!({
//!     "issuer": "https://idp.example.org",
//!     "client_id": "registry",
//!     "client_secret_file": "/run/secrets/oidc-client-secret",
//!     "user_claim": "preferred_username",
//!     "label_claims": ["groups"],
//!     "audiences": ["https://registry.example.org"],
//! }))?;
//! let oidc = OidcTokenAuthenticator::from_config(&config)?;
//! // the IdP may be down now: this only logs, the authenticator retries on use
//! if let Err(e) = oidc.discover().await {
//!     eprintln!("OIDC discovery failed, will retry: {e}");
//! }
//! let chain = AuthenticatorChain::new().with(oidc);
//! let outcome = chain.authenticate(&LoginAttempt::new("alice", "<access token>")).await?;
//! # let _ = outcome;
//! # Ok(())
//! # }
//! ```
//!
//! [`OidcLogin`] is the browser login (authorization code flow with PKCE, `state` and
//! `nonce`): it hands out a generated docker password, keeps its bcrypt hash in a
//! [`docker_token_core::CredentialStore`], and [`OidcLoginAuthenticator`] accepts it. Its
//! handlers are framework-free (`http` types); `docker-token-axum` mounts them (feature `oidc`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod authenticator;
mod claims;
mod config;
mod discovery;
mod http;
mod introspection;
mod jwks;
mod jwt;
mod login;
#[cfg(test)]
mod proptests;
mod single_flight;

pub use algorithm::JwtAlgorithm;
pub use authenticator::OidcTokenAuthenticator;
pub use config::{ClientAuth, OidcTokenConfig};
pub use login::{OidcLogin, OidcLoginAuthenticator, OidcLoginConfig};
