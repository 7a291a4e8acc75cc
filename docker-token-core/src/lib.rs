//! # docker-token-core
//!
//! Docker/OCI registry token authentication as a library: the scope grammar, the token
//! request model, pluggable [`Authenticator`]s and [`Authorizer`]s with docker_auth's chain
//! semantics, static users (bcrypt, htpasswd), the docker_auth ACL language, token minting
//! that registries 2.x and 3.x accept, the [`TokenService`] that ties them together, and
//! the resource-server side: a [`TokenVerifier`] and the registry's [`Challenge`].
//!
//! The crate knows nothing about HTTP frameworks, HTTP clients or LDAP; it uses the `http`
//! crate only for status and header types.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod acl;
mod authn;
mod authz;
pub mod cache;
pub mod config;
pub mod credential_store;
mod error;
mod identity;
pub mod keys;
pub mod metrics;
mod one_line;
pub mod rate_limit;
pub mod refresh;
pub mod request;
mod reuse;
pub mod scope;
mod secret;
mod service;
pub mod static_users;
/// The stub authenticators of the `test-support` crate, compiled here against this crate's
/// own types: depending on `test-support` would give these unit tests a second copy of them.
#[cfg(test)]
#[allow(dead_code, unreachable_pub)]
#[path = "../../test-support/src/stub.rs"]
mod stub;
pub mod token;
pub mod verify;

pub use authn::{Authenticator, AuthenticatorChain, AuthnOutcome, LoginAttempt, LookupOutcome};
pub use authz::{
    Authorizer, AuthorizerChain, AuthzOutcome, AuthzRequest, Decision, Grant, RuleRef,
};
pub use cache::{CacheConfig, CachedAuthenticator};
pub use credential_store::{CredentialStore, InMemoryCredentialStore, StoredCredential};
pub use error::{
    BackendError, BackendErrorKind, BoxError, ConfigError, Error, Result, display_chain,
};
pub use identity::{Identity, Labels};
#[cfg(any(test, feature = "generate"))]
#[cfg_attr(docsrs, doc(cfg(feature = "generate")))]
pub use keys::GeneratedKey;
pub use keys::{Algorithm, KeyError, KeySet, KidStyle, SigningKey, VerifyingKey};
pub use one_line::OneLine;
pub use rate_limit::{FailedLoginLimiter, RateLimitConfig};
pub use scope::{Scope, ScopeError};
pub use secret::Password;
pub use service::{Issued, ScopeDecision, TokenService, TokenServiceBuilder};
pub use static_users::StaticUsers;
pub use token::{AccessEntry, IssuedToken, TokenIssuer, TokenResponse};
pub use verify::{
    Access, Challenge, ChallengeError, TokenVerifier, TokenVerifierBuilder, VerifiedToken,
    VerifyError,
};
