//! OIDC support for docker-token: IdP access tokens as docker passwords and a browser login.
//!
//! Work in progress: see the project's OIDC issue. The crate exists so the workspace layout is final.
