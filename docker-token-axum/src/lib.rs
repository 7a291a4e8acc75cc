//! A thin [axum](https://docs.rs/axum) adapter over [`docker_token_core::TokenService`].
//!
//! Work in progress: see the project's server issue. The crate exists so the workspace layout is final.
