//! Housekeeping of the server's stores: the sweepers of the embedded store (Redis expires its
//! records by itself).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use docker_token_core::refresh::RefreshTokenStore;
use docker_token_core::{BackendError, CredentialStore};
use tokio::task::JoinHandle;

/// Sweeps expired records now and then every `every`, logging what it removed. Abort the
/// returned task to stop it.
pub(crate) fn spawn_sweeper(store: Arc<dyn CredentialStore>, every: Duration) -> JoinHandle<()> {
    spawn_periodic_sweep("the store", every, move |now| {
        let store = store.clone();
        async move { store.sweep_expired(now).await }
    })
}

/// Sweeps expired refresh tokens now and then every `every`, logging what it removed.
pub(crate) fn spawn_refresh_sweeper(
    store: Arc<dyn RefreshTokenStore>,
    every: Duration,
) -> JoinHandle<()> {
    spawn_periodic_sweep("the refresh-token store", every, move |now| {
        let store = store.clone();
        async move { store.sweep_expired_tokens(now).await }
    })
}

fn spawn_periodic_sweep<F, Fut>(what: &'static str, every: Duration, sweep: F) -> JoinHandle<()>
where
    F: Fn(SystemTime) -> Fut + Send + 'static,
    Fut: Future<Output = Result<usize, BackendError>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match sweep(SystemTime::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, store = what, "swept expired records"),
                Err(e) => {
                    tracing::warn!(store = what, error = %docker_token_core::display_chain(&e), "cannot sweep")
                }
            }
        }
    })
}
