//! [`InMemoryRefreshTokenStore`]: refresh tokens in process memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{RefreshRecord, RefreshTokenStore};
use crate::error::BackendError;

/// A [`RefreshTokenStore`] in process memory: fast, lost on restart (every docker client
/// then has to `docker login` again), not shared between replicas. Expired records are
/// hidden at once and dropped by [`sweep_expired_tokens`](RefreshTokenStore::sweep_expired_tokens).
#[derive(Default)]
pub struct InMemoryRefreshTokenStore {
    records: RwLock<HashMap<String, RefreshRecord>>,
}

impl fmt::Debug for InMemoryRefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRefreshTokenStore")
            .field("records", &self.len())
            .finish()
    }
}

impl InMemoryRefreshTokenStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records are held, expired ones included until swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no records are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, RefreshRecord>> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, RefreshRecord>> {
        self.records.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl RefreshTokenStore for InMemoryRefreshTokenStore {
    async fn insert_token(&self, record: RefreshRecord) -> Result<(), BackendError> {
        self.write().insert(record.id.clone(), record);
        Ok(())
    }

    async fn get_token(&self, id: &str) -> Result<Option<RefreshRecord>, BackendError> {
        let now = SystemTime::now();
        Ok(self
            .read()
            .get(id)
            .filter(|r| !r.is_expired_at(now))
            .cloned())
    }

    async fn update_token(&self, record: RefreshRecord) -> Result<bool, BackendError> {
        let now = SystemTime::now();
        let mut records = self.write();
        match records.get_mut(&record.id) {
            Some(r) if !r.is_expired_at(now) => {
                *r = record;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_token(&self, id: &str) -> Result<bool, BackendError> {
        Ok(self.write().remove(id).is_some())
    }

    async fn delete_account_tokens(&self, account: &str) -> Result<usize, BackendError> {
        let mut records = self.write();
        let before = records.len();
        records.retain(|_, r| r.account != account);
        Ok(before - records.len())
    }

    async fn list_tokens(&self, account: Option<&str>) -> Result<Vec<RefreshRecord>, BackendError> {
        let now = SystemTime::now();
        Ok(self
            .read()
            .values()
            .filter(|r| !r.is_expired_at(now) && account.is_none_or(|a| r.account == a))
            .cloned()
            .collect())
    }

    async fn sweep_expired_tokens(&self, now: SystemTime) -> Result<usize, BackendError> {
        let mut records = self.write();
        let before = records.len();
        records.retain(|_, r| !r.is_expired_at(now));
        Ok(before - records.len())
    }
}
