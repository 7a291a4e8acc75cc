//! An LDAP [`Authenticator`](docker_token_core::Authenticator) for docker-token.
//!
//! Work in progress: see the project's LDAP issue. The crate exists so the workspace layout is final.
