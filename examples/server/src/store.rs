//! The server's persistent state: the `store:` section (an embedded redb file, or Redis for
//! replicas), the browser-login store picked from `oidc_auth`'s token-DB keys, and the
//! sweepers of the embedded store (Redis expires its records by itself).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use docker_token_core::refresh::RefreshTokenStore;
use docker_token_core::{BackendError, CredentialStore};
use docker_token_redis::{RedisConfig, RedisStore};
use docker_token_store::RedbStore;
use docker_token_store::robots::RobotStore;
use serde::Deserialize;
use tokio::task::JoinHandle;

/// `store:` — ours. Exactly one of `redb` and `redis`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreConfig {
    /// One embedded file (a single server).
    #[serde(default)]
    pub(crate) redb: Option<RedbConfig>,
    /// Redis, shared by replicas.
    #[serde(default)]
    pub(crate) redis: Option<RedisConfig>,
}

/// `store.redb:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedbConfig {
    /// The database file (created, with its directory, readable by the server's user only).
    pub(crate) path: PathBuf,
}

/// The stores built from a `store:` section.
#[derive(Clone)]
pub(crate) struct Stores {
    /// Browser-login credentials (unless `oidc_auth` names its own token DB).
    pub(crate) credentials: Arc<dyn CredentialStore>,
    /// Robot accounts.
    pub(crate) robots: Arc<dyn RobotStore>,
    /// Refresh tokens (unless `token.refresh.path` names its own file).
    pub(crate) refresh: Arc<dyn RefreshTokenStore>,
    /// Whether expired records must be swept (the embedded file; Redis expires them).
    pub(crate) needs_sweeping: bool,
    /// Whether several replicas may share it (Redis).
    pub(crate) shared: bool,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("needs_sweeping", &self.needs_sweeping)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl StoreConfig {
    /// Opens the embedded file or prepares the Redis client (no network). Errors name the key.
    pub(crate) fn build(&self) -> Result<Stores, String> {
        match (&self.redb, &self.redis) {
            (Some(r), None) => {
                let s = Arc::new(RedbStore::open(&r.path).map_err(|e| format!("redb.path: {e}"))?);
                Ok(Stores {
                    credentials: s.clone(),
                    robots: s.clone(),
                    refresh: s,
                    needs_sweeping: true,
                    shared: false,
                })
            }
            (None, Some(r)) => {
                let s = Arc::new(RedisStore::new(r).map_err(|e| format!("redis.{e}"))?);
                Ok(Stores {
                    credentials: s.clone(),
                    robots: s.clone(),
                    refresh: s,
                    needs_sweeping: false,
                    shared: true,
                })
            }
            _ => Err("set exactly one of redb: {path: …} and redis: {url: …}".to_owned()),
        }
    }
}

/// The credential store of `oidc_auth`: its own `level_token_db.path` (or docker_auth's older
/// `token_db`) is a redb file, its `redis_token_db` (docker_auth's `redis_options`) is Redis;
/// otherwise the top-level `store:`; otherwise process memory (lost on restart). Returns the
/// store and whether it must be swept.
pub(crate) fn oidc_store(
    c: &crate::config::OidcAuthSection,
    top: Option<&Stores>,
) -> Result<(Arc<dyn CredentialStore>, bool), String> {
    if c.gcs_token_db.is_some() {
        return Err(
            "gcs_token_db is not supported yet; use level_token_db: {path: …} or the top-level store:"
                .to_owned(),
        );
    }
    let own = [
        c.level_token_db.is_some(),
        c.token_db.is_some(),
        c.redis_token_db.is_some(),
    ];
    if own.iter().filter(|x| **x).count() > 1 {
        return Err("set one of level_token_db, token_db and redis_token_db".to_owned());
    }
    if let Some(v) = &c.redis_token_db {
        let config = RedisConfig::from_docker_auth(v).map_err(|e| e.to_string())?;
        let s = RedisStore::new(&config).map_err(|e| format!("redis_token_db: {e}"))?;
        return Ok((Arc::new(s), false));
    }
    if let Some(p) = c
        .level_token_db
        .as_ref()
        .map(|l| &l.path)
        .or(c.token_db.as_ref())
    {
        let s = RedbStore::open(p).map_err(|e| format!("level_token_db: {e}"))?;
        return Ok((Arc::new(s), true));
    }
    if let Some(top) = top {
        return Ok((top.credentials.clone(), top.needs_sweeping));
    }
    tracing::warn!(
        "oidc_auth has no token DB and there is no store: section: docker passwords are kept in memory and lost on restart"
    );
    // one store per process, so that a configuration reload keeps the passwords
    static MEMORY: std::sync::OnceLock<Arc<docker_token_core::InMemoryCredentialStore>> =
        std::sync::OnceLock::new();
    Ok((MEMORY.get_or_init(Default::default).clone(), false))
}

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
