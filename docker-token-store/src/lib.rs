//! # docker-token-store
//!
//! State that a docker-token server keeps beyond one request:
//!
//! - [`robots`]: robot accounts for CI (`robot$NAME` + a secret shown once), the
//!   [`RobotStore`](robots::RobotStore) trait, an in-memory store and the
//!   [`RobotAuthenticator`](robots::RobotAuthenticator);
//! - with the **`redb`** feature (Rust 1.90), [`RedbStore`]: one embedded redb file holding the
//!   browser-login credentials ([`docker_token_core::CredentialStore`]) and the robots, for a
//!   single server.
//!
//! Several replicas share their state through Redis instead: the `docker-token-redis` crate
//! implements the same traits.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "redb")]
mod embedded;
pub mod robots;

#[cfg(feature = "redb")]
#[cfg_attr(docsrs, doc(cfg(feature = "redb")))]
pub use embedded::RedbStore;
