//! Housekeeping of the server's stores: the sweeper of the embedded store (Redis expires its
//! records by itself).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use docker_token_core::CredentialStore;
use docker_token_core::refresh::RefreshTokenStore;

/// Sweeps expired records now and then every `every`, logging what it removed. Abort the
/// returned task to stop it.
pub(crate) fn spawn_sweeper(
    store: Arc<dyn CredentialStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.sweep_expired(SystemTime::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept expired records from the store"),
                Err(e) => {
                    tracing::warn!(error = %docker_token_core::display_chain(&e), "cannot sweep the store")
                }
            }
        }
    })
}

/// Sweeps expired refresh tokens now and then every `every`, logging what it removed.
pub(crate) fn spawn_refresh_sweeper(store: Arc<dyn RefreshTokenStore>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.sweep_expired_tokens(SystemTime::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept expired refresh tokens"),
                Err(e) => {
                    tracing::warn!(error = %docker_token_core::display_chain(&e), "cannot sweep the refresh-token store")
                }
            }
        }
    });
}
