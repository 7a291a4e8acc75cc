//! Where browser logins (OIDC, OAuth) keep the docker passwords they hand out: the
//! [`CredentialStore`] trait, the [`StoredCredential`] record, and an
//! [`InMemoryCredentialStore`] for single-process servers and tests.
//!
//! After a browser login the server generates a random docker password, shows it once, and
//! stores only its bcrypt hash, with the user's labels and (optionally) the IdP refresh token
//! used to re-check the user later. The trait is async and object-safe so that a networked
//! store (Redis, a database) fits behind it and several replicas can share it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::BackendError;
use crate::identity::Labels;
use crate::secret::Password;

/// Seconds since the Unix epoch (0 for times before it).
#[must_use]
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One stored login. Times are Unix seconds, so the serialized form is stable JSON.
///
/// The serialized form contains the refresh token in clear (a networked store must be able to
/// give it back): protect the store accordingly. `Debug` redacts it and the password hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredCredential {
    /// The docker user name this credential logs in.
    pub account: String,
    /// The bcrypt hash of the generated docker password (never the password itself).
    pub password_hash: String,
    /// Labels for the ACL (e.g. the IdP's groups at login time).
    #[serde(default)]
    pub labels: Labels,
    /// When the record was created.
    pub created_at: u64,
    /// After this the record is useless: [`CredentialStore::get`] no longer returns it and
    /// [`CredentialStore::sweep_expired`] removes it.
    pub expires_at: u64,
    /// When the user must be re-checked with the IdP (docker_auth's `valid_until`: the upstream
    /// access token's expiry). `None`: never.
    #[serde(default)]
    pub revalidate_after: Option<u64>,
    /// The IdP's subject (`sub`), to make sure a refresh still names the same user.
    #[serde(default)]
    pub subject: Option<String>,
    /// The IdP refresh token, if one was issued.
    #[serde(default, serialize_with = "serialize_secret")]
    pub refresh_token: Option<Password>,
}

impl StoredCredential {
    /// A record for `account` with the bcrypt `password_hash`, created now and expiring at
    /// `expires_at`; no labels, no refresh token.
    pub fn new(
        account: impl Into<String>,
        password_hash: impl Into<String>,
        expires_at: SystemTime,
    ) -> Self {
        Self {
            account: account.into(),
            password_hash: password_hash.into(),
            labels: Labels::new(),
            created_at: unix_seconds(SystemTime::now()),
            expires_at: unix_seconds(expires_at),
            revalidate_after: None,
            subject: None,
            refresh_token: None,
        }
    }

    /// Sets the labels, builder style.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Sets the refresh token, builder style.
    #[must_use]
    pub fn with_refresh_token(mut self, token: Password) -> Self {
        self.refresh_token = Some(token);
        self
    }

    /// Sets the IdP subject, builder style.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets when the user must be re-checked with the IdP, builder style.
    #[must_use]
    pub fn with_revalidate_after(mut self, at: SystemTime) -> Self {
        self.revalidate_after = Some(unix_seconds(at));
        self
    }

    /// Whether the record is expired at `now` (`expires_at <= now`).
    #[must_use]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at <= unix_seconds(now)
    }

    /// Whether the user must be re-checked with the IdP at `now`.
    #[must_use]
    pub fn needs_revalidation_at(&self, now: SystemTime) -> bool {
        self.revalidate_after
            .is_some_and(|t| t <= unix_seconds(now))
    }

    /// Checks a docker password against the stored bcrypt hash (in constant time; false for
    /// a malformed hash and for passwords over 72 bytes, see
    /// [`verify_bcrypt`](crate::static_users::verify_bcrypt)).
    #[must_use]
    pub fn verify_password(&self, candidate: &Password) -> bool {
        crate::static_users::verify_bcrypt(candidate.expose(), &self.password_hash)
    }
}

impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("account", &self.account)
            .field("password_hash", &"***")
            .field("labels", &self.labels)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revalidate_after", &self.revalidate_after)
            .field("subject", &self.subject)
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

fn serialize_secret<S: Serializer>(v: &Option<Password>, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(Password::expose).serialize(s)
}

/// Storage for [`StoredCredential`]s by key (the browser login uses the docker user name).
///
/// Implementations must be safe to share between tasks; a networked store answers
/// [`BackendError::unavailable`] when it cannot be reached. `get` must not return a record
/// that [is expired](StoredCredential::is_expired_at), even if it was not swept yet.
///
/// # Example: a minimal implementation
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::{Duration, SystemTime};
///
/// use async_trait::async_trait;
/// use docker_token_core::{BackendError, CredentialStore, StoredCredential};
///
/// #[derive(Default)]
/// struct MyStore(Mutex<HashMap<String, StoredCredential>>);
///
/// #[async_trait]
/// impl CredentialStore for MyStore {
///     async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
///         self.0.lock().unwrap().insert(key.to_owned(), credential);
///         Ok(())
///     }
///     async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
///         let now = SystemTime::now();
///         Ok(self.0.lock().unwrap().get(key).filter(|c| !c.is_expired_at(now)).cloned())
///     }
///     async fn delete(&self, key: &str) -> Result<bool, BackendError> {
///         Ok(self.0.lock().unwrap().remove(key).is_some())
///     }
///     async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError> {
///         let mut map = self.0.lock().unwrap();
///         let before = map.len();
///         map.retain(|_, c| !c.is_expired_at(now));
///         Ok(before - map.len())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MyStore::default();
/// let hash = bcrypt::hash("generated-password", 4).unwrap();
/// let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
/// store.put("alice", StoredCredential::new("alice", hash, in_an_hour)).await.unwrap();
/// let found = store.get("alice").await.unwrap().unwrap();
/// assert!(found.verify_password(&"generated-password".into()));
/// assert!(store.delete("alice").await.unwrap());
/// assert!(store.get("alice").await.unwrap().is_none());
/// # });
/// ```
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Stores (or replaces) the credential under `key`.
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError>;

    /// The credential under `key`, unless absent or expired.
    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError>;

    /// Removes the credential under `key`; says whether there was one.
    async fn delete(&self, key: &str) -> Result<bool, BackendError>;

    /// Removes every credential expired at `now`; returns how many. Stores with their own
    /// expiry (Redis TTLs) may return 0.
    async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError>;
}

#[async_trait]
impl<T: CredentialStore + ?Sized> CredentialStore for Arc<T> {
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
        (**self).put(key, credential).await
    }
    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
        (**self).get(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        (**self).delete(key).await
    }
    async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError> {
        (**self).sweep_expired(now).await
    }
}

#[async_trait]
impl<T: CredentialStore + ?Sized> CredentialStore for Box<T> {
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
        (**self).put(key, credential).await
    }
    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
        (**self).get(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        (**self).delete(key).await
    }
    async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError> {
        (**self).sweep_expired(now).await
    }
}

/// A [`CredentialStore`] in process memory: fast, lost on restart, not shared between
/// replicas (use a networked store for several replicas).
#[derive(Default)]
pub struct InMemoryCredentialStore {
    entries: RwLock<HashMap<String, StoredCredential>>,
}

impl fmt::Debug for InMemoryCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCredentialStore")
            .field("entries", &self.len())
            .finish()
    }
}

impl InMemoryCredentialStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records are held, expired ones included until swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    /// Whether no records are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl CredentialStore for InMemoryCredentialStore {
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.insert(key.to_owned(), credential);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
        let now = SystemTime::now();
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        Ok(entries.get(key).filter(|c| !c.is_expired_at(now)).cloned())
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        Ok(entries.remove(key).is_some())
    }

    async fn sweep_expired(&self, now: SystemTime) -> Result<usize, BackendError> {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let before = entries.len();
        entries.retain(|_, c| !c.is_expired_at(now));
        Ok(before - entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hash(pw: &str) -> String {
        bcrypt::hash(pw, 4).unwrap()
    }

    fn in_secs(s: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(s)
    }

    #[tokio::test]
    async fn put_get_replace_delete() {
        let store = InMemoryCredentialStore::new();
        assert!(store.get("alice").await.unwrap().is_none());
        let labels = Labels::from([("groups".to_owned(), vec!["dev".to_owned()])]);
        store
            .put(
                "alice",
                StoredCredential::new("alice", hash("pw-1"), in_secs(60))
                    .with_labels(labels.clone()),
            )
            .await
            .unwrap();
        let got = store.get("alice").await.unwrap().unwrap();
        assert_eq!(got.labels, labels);
        assert!(got.verify_password(&"pw-1".into()));
        assert!(!got.verify_password(&"pw-2".into()));

        store
            .put(
                "alice",
                StoredCredential::new("alice", hash("pw-2"), in_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(store.len(), 1);
        assert!(
            store
                .get("alice")
                .await
                .unwrap()
                .unwrap()
                .verify_password(&"pw-2".into())
        );

        assert!(store.delete("alice").await.unwrap());
        assert!(!store.delete("alice").await.unwrap());
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn expired_records_are_hidden_then_swept() {
        let store = InMemoryCredentialStore::new();
        let past = SystemTime::now() - Duration::from_secs(5);
        store
            .put("old", StoredCredential::new("old", hash("x"), past))
            .await
            .unwrap();
        store
            .put("new", StoredCredential::new("new", hash("y"), in_secs(60)))
            .await
            .unwrap();
        assert!(
            store.get("old").await.unwrap().is_none(),
            "expired records are not returned"
        );
        assert_eq!(store.len(), 2);
        assert_eq!(store.sweep_expired(SystemTime::now()).await.unwrap(), 1);
        assert_eq!(store.len(), 1);
        assert_eq!(store.sweep_expired(in_secs(120)).await.unwrap(), 1);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn usable_as_dyn_through_arc_and_box() {
        let shared: Arc<dyn CredentialStore> = Arc::new(InMemoryCredentialStore::new());
        let boxed: Box<dyn CredentialStore> = Box::new(shared.clone());
        boxed
            .put("bob", StoredCredential::new("bob", hash("z"), in_secs(60)))
            .await
            .unwrap();
        assert_eq!(shared.get("bob").await.unwrap().unwrap().account, "bob");
        assert_eq!(boxed.sweep_expired(SystemTime::now()).await.unwrap(), 0);
        assert!(shared.delete("bob").await.unwrap());
    }

    #[test]
    fn serde_round_trip_keeps_the_refresh_token_and_debug_hides_it() {
        let c = StoredCredential::new("carol", hash("pw"), in_secs(60))
            .with_refresh_token(Password::new("refresh-secret-123"))
            .with_subject("sub-9")
            .with_revalidate_after(in_secs(30));
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains("\"refresh_token\":\"refresh-secret-123\""),
            "{json}"
        );
        let back: StoredCredential = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("refresh-secret-123") && !debug.contains("$2"),
            "{debug}"
        );
        // optional fields may be missing in older records
        let minimal: StoredCredential = serde_json::from_str(
            r#"{"account":"d","password_hash":"h","created_at":1,"expires_at":2}"#,
        )
        .unwrap();
        assert!(minimal.refresh_token.is_none() && minimal.labels.is_empty());
        assert!(minimal.is_expired_at(SystemTime::now()));
        assert!(
            !minimal.verify_password(&"h".into()),
            "a malformed hash never verifies"
        );
    }

    #[test]
    fn revalidation_time() {
        let c = StoredCredential::new("e", "h", in_secs(600)).with_revalidate_after(in_secs(60));
        assert!(!c.needs_revalidation_at(SystemTime::now()));
        assert!(c.needs_revalidation_at(in_secs(61)));
        assert!(
            !StoredCredential::new("e", "h", in_secs(600)).needs_revalidation_at(in_secs(10_000))
        );
    }
}
