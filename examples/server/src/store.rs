//! The persistent [`CredentialStore`] of the OIDC browser login: one embedded redb file
//! (`oidc_auth.level_token_db.path`). Logins survive restarts; redb serialises writers and
//! gives readers snapshots, so concurrent requests are safe; expired records are swept by a
//! background task ([`spawn_sweeper`]).
//!
//! Records are JSON ([`StoredCredential`]'s serde form) under the docker user name. The file
//! holds bcrypt hashes and refresh tokens: the server creates it readable by its user only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use docker_token_core::{BackendError, CredentialStore, StoredCredential};
use redb::{Database, ReadableDatabase as _, TableDefinition};

const TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("oidc_credentials");
const BACKEND: &str = "oidc_auth.level_token_db";

/// A redb-backed store, shared by every user of the same file in this process.
#[derive(Clone)]
pub(crate) struct RedbCredentialStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbCredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbCredentialStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Open stores by path: a configuration reload reuses the open database (redb allows one
/// open handle per file).
fn open_stores() -> &'static Mutex<HashMap<PathBuf, RedbCredentialStore>> {
    static STORES: OnceLock<Mutex<HashMap<PathBuf, RedbCredentialStore>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

fn backend(e: impl Into<redb::Error>) -> BackendError {
    let e: redb::Error = e.into();
    BackendError::unavailable(BACKEND, e.to_string())
}

impl RedbCredentialStore {
    /// Opens (or creates) the store at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let mut stores = open_stores().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stores.get(path) {
            return Ok(s.clone());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let db = Database::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        restrict_permissions(path);
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        tx.open_table(TABLE).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        let store = Self {
            db: Arc::new(db),
            path: path.to_owned(),
        };
        stores.insert(path.to_owned(), store.clone());
        Ok(store)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| BackendError::unavailable(BACKEND, e.to_string()))?
    }
}

fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict the credential store's permissions");
    }
}

fn decode(bytes: &[u8]) -> Option<StoredCredential> {
    serde_json::from_slice(bytes).ok()
}

#[async_trait]
impl CredentialStore for RedbCredentialStore {
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
        let key = key.to_owned();
        let value = serde_json::to_vec(&credential)
            .map_err(|e| BackendError::misconfigured(BACKEND, e.to_string()))?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            tx.open_table(TABLE)
                .map_err(backend)?
                .insert(key.as_str(), value.as_slice())
                .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let table = tx.open_table(TABLE).map_err(backend)?;
            let found = table.get(key.as_str()).map_err(backend)?;
            let now = SystemTime::now();
            Ok(found
                .and_then(|v| decode(v.value()))
                .filter(|c| !c.is_expired_at(now)))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let existed = tx
                .open_table(TABLE)
                .map_err(backend)?
                .remove(key.as_str())
                .map_err(backend)?
                .is_some();
            tx.commit().map_err(backend)?;
            Ok(existed)
        })
        .await
    }

    async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let mut removed = 0;
            tx.open_table(TABLE)
                .map_err(backend)?
                .retain(|_, v| {
                    // unreadable records are garbage, too
                    let keep = decode(v).is_some_and(|c| !c.is_expired_at(now));
                    removed += usize::from(!keep);
                    keep
                })
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(removed)
        })
        .await
    }
}

/// Sweeps expired records now and then every `every`, logging what it removed.
pub(crate) fn spawn_sweeper(store: Arc<dyn CredentialStore>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.sweep_expired(SystemTime::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept expired OIDC docker passwords"),
                Err(e) => {
                    tracing::warn!(error = %docker_token_core::display_chain(&e), "cannot sweep the credential store")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(account: &str, expires_in: i64) -> StoredCredential {
        let at = if expires_in >= 0 {
            SystemTime::now() + Duration::from_secs(expires_in.unsigned_abs())
        } else {
            SystemTime::now() - Duration::from_secs(expires_in.unsigned_abs())
        };
        StoredCredential::new(account, "$2b$04$hash", at)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn persists_sweeps_and_is_shared() {
        let dir = std::env::temp_dir().join(format!("dt-redb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/creds.redb");
        let store = RedbCredentialStore::open(&path).unwrap();
        store.put("alice", record("alice", 3600)).await.unwrap();
        store.put("old", record("old", -10)).await.unwrap();
        assert_eq!(store.get("alice").await.unwrap().unwrap().account, "alice");
        assert!(
            store.get("old").await.unwrap().is_none(),
            "expired is not returned"
        );
        // a second open of the same path (a reload) shares the database
        let again = RedbCredentialStore::open(&path).unwrap();
        assert!(again.get("alice").await.unwrap().is_some());
        // concurrent writers
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.put(&format!("u{i}"), record(&format!("u{i}"), 60)).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(store.get("u15").await.unwrap().is_some());
        assert_eq!(store.sweep_expired(SystemTime::now()).await.unwrap(), 1);
        assert!(store.delete("alice").await.unwrap());
        assert!(!store.delete("alice").await.unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "only the owner may read the store");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
