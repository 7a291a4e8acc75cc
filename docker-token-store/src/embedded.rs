//! [`RedbStore`]: browser-login credentials and robots in one embedded redb file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use docker_token_core::refresh::{RefreshRecord, RefreshTokenStore};
use docker_token_core::{BackendError, CredentialStore, StoredCredential};
use redb::{
    Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase, ReadableTable as _,
    TableDefinition,
};

use crate::robots::{Robot, RobotStore};

/// The browser-login credentials, by docker user name (the table name of earlier releases).
const CREDENTIALS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("oidc_credentials");
/// Robot accounts, by robot name.
const ROBOTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("robots");
/// Refresh tokens, by id (a hash of the token, never the token).
const REFRESH: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("refresh_tokens");

const BACKEND: &str = "store.redb";

/// How long an operation waits for another process (a `robots` command) to release the file.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A redb file holding [`StoredCredential`]s, [`Robot`]s and refresh tokens
/// ([`RefreshRecord`]s, by id) as JSON.
///
/// The file is opened for each operation and closed after it (reads share a lock, writes
/// take it alone), so that a running server and a command-line tool (`robots create`) can
/// use the same file; an operation waits up to 5 s for the other process. Expired records
/// are hidden at once and removed by [`CredentialStore::sweep_expired`] (both tables). The
/// file is created readable by its owner only: it holds bcrypt hashes, secret hashes and
/// IdP refresh tokens.
///
/// redb needs Rust 1.90 (this module is behind the `redb` feature).
#[derive(Clone)]
pub struct RedbStore {
    path: PathBuf,
    /// Serialises this process's openings of the file (readers together, writers alone).
    local: Arc<RwLock<()>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One lock per path in this process (a reload or a second section naming the same file
/// shares it).
fn local_lock(path: &Path) -> Arc<RwLock<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<RwLock<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    locks.entry(path.to_owned()).or_default().clone()
}

fn backend(e: impl Into<redb::Error>) -> BackendError {
    let e: redb::Error = e.into();
    BackendError::unavailable(BACKEND, e.to_string())
}

/// Retries `open` while another process holds the file, up to [`LOCK_WAIT`].
fn open_retrying<T>(mut open: impl FnMut() -> Result<T, DatabaseError>) -> Result<T, BackendError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match open() {
            Ok(db) => return Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(BackendError::unavailable(
                    BACKEND,
                    "the store file stayed locked by another process for 5 s",
                ));
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path`, creating its directory and both tables. The
    /// error text names the path.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let store = Self {
            path: path.to_owned(),
            local: local_lock(path),
        };
        store
            .write(|db| {
                let tx = db.begin_write().map_err(backend)?;
                tx.open_table(CREDENTIALS).map_err(backend)?;
                tx.open_table(ROBOTS).map_err(backend)?;
                tx.open_table(REFRESH).map_err(backend)?;
                tx.commit().map_err(backend)
            })
            .map_err(|e| format!("{}: {}", path.display(), e))?;
        restrict_permissions(path);
        Ok(store)
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let _g = self.local.write().unwrap_or_else(|p| p.into_inner());
        let db = open_retrying(|| Database::create(&self.path))?;
        f(&db)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&ReadOnlyDatabase) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        {
            let _g = self.local.read().unwrap_or_else(|p| p.into_inner());
            let mut damaged = false;
            let opened = open_retrying(|| {
                ReadOnlyDatabase::open(&self.path).inspect_err(|e| {
                    damaged = !matches!(e, DatabaseError::DatabaseAlreadyOpen);
                })
            });
            match opened {
                Ok(db) => return f(&db),
                Err(e) if !damaged => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.path.display(), "the store needs a repair")
                }
            }
        }
        // a file left by a crash needs a repair, which only a writable open does
        self.write(|_| Ok(()))?;
        let _g = self.local.read().unwrap_or_else(|p| p.into_inner());
        let db = open_retrying(|| ReadOnlyDatabase::open(&self.path))?;
        f(&db)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| BackendError::unavailable(BACKEND, e.to_string()))?
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>, BackendError> {
        self.read(|db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(table).map_err(backend)?;
            let found = t.get(key).map_err(backend)?;
            Ok(found.and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    fn put_json(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), BackendError> {
        self.write(|db| {
            let tx = db.begin_write().map_err(backend)?;
            tx.open_table(table)
                .map_err(backend)?
                .insert(key, value)
                .map_err(backend)?;
            tx.commit().map_err(backend)
        })
    }

    fn remove(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<bool, BackendError> {
        self.write(|db| {
            let tx = db.begin_write().map_err(backend)?;
            let existed = tx
                .open_table(table)
                .map_err(backend)?
                .remove(key)
                .map_err(backend)?
                .is_some();
            tx.commit().map_err(backend)?;
            Ok(existed)
        })
    }
}

fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict the store's permissions");
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(v).map_err(|e| BackendError::internal(BACKEND, e.to_string()))
}

#[async_trait]
impl CredentialStore for RedbStore {
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
        let key = key.to_owned();
        let value = encode(&credential)?;
        self.blocking(move |s| s.put_json(CREDENTIALS, &key, &value))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
        let key = key.to_owned();
        let now = SystemTime::now();
        let found: Option<StoredCredential> = self
            .blocking(move |s| s.get_json(CREDENTIALS, &key))
            .await?;
        Ok(found.filter(|c| !c.is_expired_at(now)))
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let key = key.to_owned();
        self.blocking(move |s| s.remove(CREDENTIALS, &key)).await
    }

    /// Removes expired (and unreadable) credentials **and robots**; returns how many.
    async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError> {
        self.blocking(move |s| {
            s.write(|db| {
                let tx = db.begin_write().map_err(backend)?;
                let mut removed = 0;
                tx.open_table(CREDENTIALS)
                    .map_err(backend)?
                    .retain(|_, v| {
                        let keep = serde_json::from_slice::<StoredCredential>(v)
                            .is_ok_and(|c| !c.is_expired_at(now));
                        removed += usize::from(!keep);
                        keep
                    })
                    .map_err(backend)?;
                tx.open_table(ROBOTS)
                    .map_err(backend)?
                    .retain(|_, v| {
                        let keep =
                            serde_json::from_slice::<Robot>(v).is_ok_and(|r| !r.is_expired_at(now));
                        removed += usize::from(!keep);
                        keep
                    })
                    .map_err(backend)?;
                tx.commit().map_err(backend)?;
                Ok(removed)
            })
        })
        .await
    }
}

#[async_trait]
impl RobotStore for RedbStore {
    async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError> {
        let value = encode(&robot)?;
        self.blocking(move |s| {
            s.write(|db| {
                let tx = db.begin_write().map_err(backend)?;
                let created = {
                    let mut t = tx.open_table(ROBOTS).map_err(backend)?;
                    let live = t
                        .get(robot.name.as_str())
                        .map_err(backend)?
                        .and_then(|v| serde_json::from_slice::<Robot>(v.value()).ok())
                        .is_some_and(|r| !r.is_expired_at(SystemTime::now()));
                    if !live {
                        t.insert(robot.name.as_str(), value.as_slice())
                            .map_err(backend)?;
                    }
                    !live
                };
                tx.commit().map_err(backend)?;
                Ok(created)
            })
        })
        .await
    }

    async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError> {
        let name = name.to_owned();
        let now = SystemTime::now();
        let found: Option<Robot> = self.blocking(move |s| s.get_json(ROBOTS, &name)).await?;
        Ok(found.filter(|r| !r.is_expired_at(now)))
    }

    async fn delete_robot(&self, name: &str) -> Result<bool, BackendError> {
        let name = name.to_owned();
        self.blocking(move |s| s.remove(ROBOTS, &name)).await
    }

    async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
        let now = SystemTime::now();
        self.blocking(move |s| {
            s.read(|db| {
                let tx = db.begin_read().map_err(backend)?;
                let t = tx.open_table(ROBOTS).map_err(backend)?;
                let mut out = Vec::new();
                for entry in t.iter().map_err(backend)? {
                    let (_, v) = entry.map_err(backend)?;
                    if let Ok(r) = serde_json::from_slice::<Robot>(v.value())
                        && !r.is_expired_at(now)
                    {
                        out.push(r);
                    }
                }
                Ok(out)
            })
        })
        .await
    }
}

impl RedbStore {
    /// Removes the refresh tokens for which `remove` says so (`None`: unreadable); returns
    /// how many.
    fn remove_refresh_where(
        &self,
        remove: impl Fn(Option<&RefreshRecord>) -> bool,
    ) -> Result<usize, BackendError> {
        self.write(|db| {
            let tx = db.begin_write().map_err(backend)?;
            let mut removed = 0;
            tx.open_table(REFRESH)
                .map_err(backend)?
                .retain(|_, v| {
                    let gone = remove(serde_json::from_slice::<RefreshRecord>(v).ok().as_ref());
                    removed += usize::from(gone);
                    !gone
                })
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(removed)
        })
    }
}

/// Revoking by account scans the table (an administrator's rare operation); the sweeper of
/// the server calls [`RefreshTokenStore::sweep_expired_tokens`] for this table.
#[async_trait]
impl RefreshTokenStore for RedbStore {
    async fn insert_token(&self, record: RefreshRecord) -> Result<(), BackendError> {
        let value = encode(&record)?;
        self.blocking(move |s| s.put_json(REFRESH, &record.id, &value))
            .await
    }

    async fn get_token(&self, id: &str) -> Result<Option<RefreshRecord>, BackendError> {
        let id = id.to_owned();
        let now = SystemTime::now();
        let found: Option<RefreshRecord> = self.blocking(move |s| s.get_json(REFRESH, &id)).await?;
        Ok(found.filter(|r| !r.is_expired_at(now)))
    }

    async fn update_token(&self, record: RefreshRecord) -> Result<bool, BackendError> {
        let value = encode(&record)?;
        self.blocking(move |s| {
            s.write(|db| {
                let tx = db.begin_write().map_err(backend)?;
                let updated = {
                    let mut t = tx.open_table(REFRESH).map_err(backend)?;
                    let live = t
                        .get(record.id.as_str())
                        .map_err(backend)?
                        .and_then(|v| serde_json::from_slice::<RefreshRecord>(v.value()).ok())
                        .is_some_and(|r| !r.is_expired_at(SystemTime::now()));
                    if live {
                        t.insert(record.id.as_str(), value.as_slice())
                            .map_err(backend)?;
                    }
                    live
                };
                tx.commit().map_err(backend)?;
                Ok(updated)
            })
        })
        .await
    }

    async fn delete_token(&self, id: &str) -> Result<bool, BackendError> {
        let id = id.to_owned();
        self.blocking(move |s| s.remove(REFRESH, &id)).await
    }

    async fn delete_account_tokens(&self, account: &str) -> Result<usize, BackendError> {
        let account = account.to_owned();
        self.blocking(move |s| s.remove_refresh_where(|r| r.is_some_and(|r| r.account == account)))
            .await
    }

    async fn list_tokens(&self, account: Option<&str>) -> Result<Vec<RefreshRecord>, BackendError> {
        let account = account.map(str::to_owned);
        let now = SystemTime::now();
        self.blocking(move |s| {
            s.read(|db| {
                let tx = db.begin_read().map_err(backend)?;
                let t = tx.open_table(REFRESH).map_err(backend)?;
                let mut out = Vec::new();
                for entry in t.iter().map_err(backend)? {
                    let (_, v) = entry.map_err(backend)?;
                    if let Ok(r) = serde_json::from_slice::<RefreshRecord>(v.value())
                        && !r.is_expired_at(now)
                        && account.as_deref().is_none_or(|a| r.account == a)
                    {
                        out.push(r);
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    /// Removes expired (and unreadable) refresh tokens only.
    async fn sweep_expired_tokens(&self, now: SystemTime) -> Result<usize, BackendError> {
        self.blocking(move |s| s.remove_refresh_where(|r| r.is_none_or(|r| r.is_expired_at(now))))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docker_token_core::Labels;

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
        let dir = test_support::workdir();
        let path = dir.path().join("sub/creds.redb");
        let store = RedbStore::open(&path).unwrap();
        store.put("alice", record("alice", 3600)).await.unwrap();
        store.put("old", record("old", -10)).await.unwrap();
        assert_eq!(store.get("alice").await.unwrap().unwrap().account, "alice");
        assert!(
            store.get("old").await.unwrap().is_none(),
            "expired is not returned"
        );
        // a second open of the same path (a reload) sees the same data
        let again = RedbStore::open(&path).unwrap();
        assert!(again.get("alice").await.unwrap().is_some());
        // concurrent writers and readers
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.put(&format!("u{i}"), record(&format!("u{i}"), 60))
                    .await?;
                s.get(&format!("u{i}")).await.map(|_| ())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(store.get("u15").await.unwrap().is_some());
        // robots live in the same file
        let (robot, secret) = Robot::generate(
            "ci",
            Labels::new(),
            SystemTime::now() + Duration::from_secs(60),
        )
        .unwrap();
        assert!(store.create_robot(robot.clone()).await.unwrap());
        assert!(!again.create_robot(robot).await.unwrap(), "unique names");
        assert!(
            again
                .get_robot("ci")
                .await
                .unwrap()
                .unwrap()
                .verify_secret(&secret)
        );
        assert_eq!(store.list_robots().await.unwrap().len(), 1);
        assert_eq!(store.sweep_expired(SystemTime::now()).await.unwrap(), 1);
        assert!(store.delete("alice").await.unwrap());
        assert!(!store.delete("alice").await.unwrap());
        assert!(store.delete_robot("ci").await.unwrap());
        assert!(store.list_robots().await.unwrap().is_empty());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "only the owner may read the store");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn waits_for_another_holder_of_the_file() {
        let dir = test_support::workdir();
        let path = dir.path().join("s.redb");
        let store = RedbStore::open(&path).unwrap();
        // another "process" (a separate open file description) holds the file for a moment
        let held = Database::create(&path).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        // succeeds once the holder lets go, instead of failing with "already open"
        store.put("bob", record("bob", 60)).await.unwrap();
        release.join().unwrap();
        assert!(store.get("bob").await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn refresh_tokens_keep_the_contract_beside_the_other_tables() {
        let dir = test_support::workdir();
        let path = dir.path().join("store.redb");
        let store = RedbStore::open(&path).unwrap();
        test_support::refresh_store::exercise(&store).await;
        store.put("alice", record("alice", 60)).await.unwrap();
        let policy = docker_token_core::refresh::RefreshPolicy::default();
        let r = RefreshRecord::new(
            "id1",
            "alice",
            "reg",
            "docker",
            "static",
            &policy,
            SystemTime::now(),
        );
        store.insert_token(r.clone()).await.unwrap();
        // another handle (a reload, or the tokens command) sees the same data
        let again = RedbStore::open(&path).unwrap();
        assert_eq!(again.get_token("id1").await.unwrap(), Some(r));
        assert!(
            CredentialStore::get(&again, "alice")
                .await
                .unwrap()
                .is_some()
        );
    }
}
