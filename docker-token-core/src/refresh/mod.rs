//! Refresh tokens (protocol.md §4, §8.17): the [`RefreshTokenStore`] trait, the
//! [`RefreshRecord`] it keeps, the [`RefreshPolicy`] (idle and absolute lifetime, rotation)
//! and an [`InMemoryRefreshTokenStore`] for single-process servers and tests.
//!
//! A refresh token is an opaque string of 256 bits from the system CSPRNG (43 base64url
//! characters). The server never stores it: the store key is its [id](refresh_token_id), a
//! SHA-256 hash, so whoever reads the store (a backup, a Redis replica) cannot use what they
//! read. A record binds the token to the account and the service (and, when
//! [`RefreshPolicy::bind_client_id`] is on, the `client_id`) it was issued to, and says which authenticator accepted the password, so that the refresh grant
//! can re-check that user (labels re-read) with the same backend.
//!
//! Every record carries its own expiry ([`RefreshRecord::expires_at`]: the idle deadline,
//! capped by the absolute one), so a networked store can let items expire by themselves
//! (a Redis TTL) and needs no sweeper.
//!
//! Why tokens are not rotated by default: the docker CLI saves the refresh token it got at
//! `docker login` as its `identitytoken` and sends that one with every later pull and push;
//! it never writes a newer `refresh_token` back, so a rotating server would break every
//! docker client after its first use. Turn [`RefreshPolicy::rotate`] on only for clients that keep the
//! newest token (containerd, your own).

mod memory;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

pub use memory::InMemoryRefreshTokenStore;

use crate::credential_store::unix_seconds;
use crate::error::BackendError;
use crate::keys::KeyError;
use crate::secret::Password;

/// Random bytes in a refresh token: 256 bits (43 base64url characters).
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// The longest refresh token the grant accepts (ours are 43 characters); anything longer is
/// refused before it is hashed.
pub const MAX_REFRESH_TOKEN_LEN: usize = 256;

/// Bytes of the SHA-256 digest kept in an id (128 bits, 22 base64url characters): enough that
/// nobody can find another token with the same id.
const ID_BYTES: usize = 16;

/// A new refresh token: [`REFRESH_TOKEN_BYTES`] from the system CSPRNG, base64url.
///
/// # Errors
///
/// [`KeyError::Random`] when the system random source fails.
pub fn new_refresh_token() -> Result<Password, KeyError> {
    crate::token::random_secret(REFRESH_TOKEN_BYTES).map(Password::new)
}

/// The id under which a refresh token is stored: base64url of the first 128 bits of its
/// SHA-256 digest. It is safe to print (`tokens list`) and to use as a key; the token
/// cannot be recovered from it.
///
/// ```
/// use docker_token_core::refresh::refresh_token_id;
/// let id = refresh_token_id("some-refresh-token");
/// assert_eq!(id.len(), 22);
/// assert_eq!(id, refresh_token_id("some-refresh-token"));
/// assert_ne!(id, refresh_token_id("some-refresh-tokem"));
/// ```
#[must_use]
pub fn refresh_token_id(token: &str) -> String {
    let d = digest(&SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..ID_BYTES])
}

/// A fixed-length, key-safe stand-in for an account name (base64url of its SHA-256 digest),
/// for stores that index records by account: a networked store must not build key names from
/// client values (a user name can hold any character, and key names show up in monitoring).
///
/// ```
/// use docker_token_core::refresh::account_key;
/// assert_eq!(account_key("alice").len(), 43);
/// assert_ne!(account_key("alice"), account_key("Alice"));
/// ```
#[must_use]
pub fn account_key(account: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, account.as_bytes()).as_ref())
}

/// How long refresh tokens live and whether they rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshPolicy {
    /// A token unused for this long expires (default 7 days). Each use starts it again.
    pub idle: Duration,
    /// A token expires this long after it was issued, used or not (default 90 days).
    pub absolute: Duration,
    /// Whether each refresh grant replaces the token with a new one (default off: docker
    /// keeps the first refresh token it got, see the [module docs](self)).
    pub rotate: bool,
    /// Whether a token is refused to a `client_id` other than the one it was issued to
    /// (default off). `client_id` is self-declared, so this keeps tokens apart rather than
    /// proving anything, and real clients share docker's identity token under other ids:
    /// dockerd with the containerd image store sends `containerd-client`, the docker CLI's
    /// own registry client (`docker manifest`) `registry-client`, and podman/skopeo reading
    /// docker's config `containers/image` — all with the token `docker login` got as
    /// `docker`. Turn it on only where every client keeps its own token.
    pub bind_client_id: bool,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(7 * 86_400),
            absolute: Duration::from_secs(90 * 86_400),
            rotate: false,
            bind_client_id: false,
        }
    }
}

impl RefreshPolicy {
    /// A policy with these lifetimes, without rotation.
    #[must_use]
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            idle,
            absolute,
            ..Self::default()
        }
    }

    /// Turns rotation on or off, builder style.
    #[must_use]
    pub fn with_rotation(mut self, rotate: bool) -> Self {
        self.rotate = rotate;
        self
    }

    /// Turns the `client_id` binding on or off, builder style.
    #[must_use]
    pub fn with_client_binding(mut self, bind: bool) -> Self {
        self.bind_client_id = bind;
        self
    }
}

/// One issued refresh token, without the token itself. Times are Unix seconds.
///
/// `account`, `service` and `client_id` are client-chosen text: escape them when printing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The store key: [`refresh_token_id`] of the token.
    pub id: String,
    /// The account it was issued to (as the authenticator spelled it).
    pub account: String,
    /// The service (`aud`) it was issued for; a refresh for another service is refused.
    pub service: String,
    /// The `client_id` it was issued to (`""` when none was sent); with
    /// [`RefreshPolicy::bind_client_id`], a refresh from another client is refused.
    pub client_id: String,
    /// The authenticator that accepted the password; the refresh grant re-checks the user
    /// with the same one.
    pub authenticator: String,
    /// When it was issued.
    pub created_at: u64,
    /// When it was last used (issued counts as a use).
    pub last_used_at: u64,
    /// The absolute deadline: `created_at` plus [`RefreshPolicy::absolute`].
    pub absolute_expires_at: u64,
    /// When it expires unless used again: the idle deadline, never after
    /// `absolute_expires_at`. A store must not return the record from this moment on.
    pub expires_at: u64,
}

impl RefreshRecord {
    /// A record for the token with id `id`, issued now under `policy`.
    pub fn new(
        id: impl Into<String>,
        account: impl Into<String>,
        service: impl Into<String>,
        client_id: impl Into<String>,
        authenticator: impl Into<String>,
        policy: &RefreshPolicy,
        now: SystemTime,
    ) -> Self {
        let now_s = unix_seconds(now);
        let absolute_expires_at = now_s.saturating_add(policy.absolute.as_secs());
        Self {
            id: id.into(),
            account: account.into(),
            service: service.into(),
            client_id: client_id.into(),
            authenticator: authenticator.into(),
            created_at: now_s,
            last_used_at: now_s,
            absolute_expires_at,
            expires_at: now_s
                .saturating_add(policy.idle.as_secs())
                .min(absolute_expires_at),
        }
    }

    /// Whether the record is expired at `now` (`expires_at <= now`).
    #[must_use]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at <= unix_seconds(now)
    }

    /// The record after a use at `now`: `last_used_at` is now and the idle deadline starts
    /// again (still capped by the absolute one).
    #[must_use]
    pub fn used_at(&self, now: SystemTime, policy: &RefreshPolicy) -> Self {
        let now_s = unix_seconds(now);
        Self {
            last_used_at: now_s,
            expires_at: now_s
                .saturating_add(policy.idle.as_secs())
                .min(self.absolute_expires_at),
            ..self.clone()
        }
    }

    /// Seconds until it expires at `now` (0 when expired): the TTL a networked store sets.
    #[must_use]
    pub fn ttl_at(&self, now: SystemTime) -> u64 {
        self.expires_at.saturating_sub(unix_seconds(now))
    }
}

/// Where refresh tokens are kept: in memory, an embedded database, or a networked store
/// (Redis) shared by replicas.
///
/// Records are keyed by [`RefreshRecord::id`] (a hash, never the token). Implementations
/// must be safe to share between tasks, must not return a record whose
/// [`expires_at`](RefreshRecord::expires_at) has passed (a networked store sets a TTL of
/// [`ttl_at`](RefreshRecord::ttl_at) instead of sweeping), and answer
/// [`BackendError::unavailable`] when they cannot be reached (the token endpoint then
/// answers 503, never 401). A store that indexes by account should name its index keys
/// with [`account_key`], not with the account itself.
///
/// # Example: a minimal implementation
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::SystemTime;
///
/// use async_trait::async_trait;
/// use docker_token_core::BackendError;
/// use docker_token_core::refresh::{RefreshPolicy, RefreshRecord, RefreshTokenStore, refresh_token_id};
///
/// #[derive(Default)]
/// struct MyStore(Mutex<HashMap<String, RefreshRecord>>);
///
/// impl MyStore {
///     fn live(&self) -> Vec<RefreshRecord> {
///         let now = SystemTime::now();
///         self.0.lock().unwrap().values().filter(|r| !r.is_expired_at(now)).cloned().collect()
///     }
/// }
///
/// #[async_trait]
/// impl RefreshTokenStore for MyStore {
///     async fn insert_token(&self, record: RefreshRecord) -> Result<(), BackendError> {
///         self.0.lock().unwrap().insert(record.id.clone(), record);
///         Ok(())
///     }
///     async fn get_token(&self, id: &str) -> Result<Option<RefreshRecord>, BackendError> {
///         Ok(self.live().into_iter().find(|r| r.id == id))
///     }
///     async fn update_token(&self, record: RefreshRecord) -> Result<bool, BackendError> {
///         let mut map = self.0.lock().unwrap();
///         match map.get_mut(&record.id) {
///             Some(r) if !r.is_expired_at(SystemTime::now()) => { *r = record; Ok(true) }
///             _ => Ok(false),
///         }
///     }
///     async fn delete_token(&self, id: &str) -> Result<bool, BackendError> {
///         Ok(self.0.lock().unwrap().remove(id).is_some())
///     }
///     async fn delete_account_tokens(&self, account: &str) -> Result<usize, BackendError> {
///         let mut map = self.0.lock().unwrap();
///         let before = map.len();
///         map.retain(|_, r| r.account != account);
///         Ok(before - map.len())
///     }
///     async fn list_tokens(&self, account: Option<&str>) -> Result<Vec<RefreshRecord>, BackendError> {
///         Ok(self.live().into_iter().filter(|r| account.is_none_or(|a| r.account == a)).collect())
///     }
///     async fn sweep_expired_tokens(&self, now: SystemTime) -> Result<usize, BackendError> {
///         let mut map = self.0.lock().unwrap();
///         let before = map.len();
///         map.retain(|_, r| !r.is_expired_at(now));
///         Ok(before - map.len())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MyStore::default();
/// let id = refresh_token_id("the-token");
/// let policy = RefreshPolicy::default();
/// let record = RefreshRecord::new(&id, "alice", "registry", "docker", "static", &policy, SystemTime::now());
/// store.insert_token(record).await.unwrap();
/// assert_eq!(store.get_token(&id).await.unwrap().unwrap().account, "alice");
/// assert_eq!(store.delete_account_tokens("alice").await.unwrap(), 1);
/// assert!(store.get_token(&id).await.unwrap().is_none());
/// # });
/// ```
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores a new record under `record.id`, expiring at `record.expires_at`.
    async fn insert_token(&self, record: RefreshRecord) -> Result<(), BackendError>;

    /// The record with this id, unless absent or expired.
    async fn get_token(&self, id: &str) -> Result<Option<RefreshRecord>, BackendError>;

    /// Replaces an existing record after a use (new `last_used_at` and `expires_at`, so a
    /// networked store sets the TTL again). Returns `false` and stores nothing when the
    /// record is gone, so that a revocation racing a refresh wins.
    async fn update_token(&self, record: RefreshRecord) -> Result<bool, BackendError>;

    /// Removes one record; says whether it existed. Of two concurrent deletes of the same
    /// record exactly one may return `true` (rotation relies on it).
    async fn delete_token(&self, id: &str) -> Result<bool, BackendError>;

    /// Removes every record of `account` (exact match); returns how many.
    async fn delete_account_tokens(&self, account: &str) -> Result<usize, BackendError>;

    /// The unexpired records of `account`, or of everyone with `None`, in any order.
    async fn list_tokens(&self, account: Option<&str>) -> Result<Vec<RefreshRecord>, BackendError>;

    /// Removes every record expired at `now`; returns how many. Stores with their own expiry
    /// (Redis TTLs) may return 0.
    async fn sweep_expired_tokens(&self, now: SystemTime) -> Result<usize, BackendError>;
}

macro_rules! forward_refresh_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: RefreshTokenStore + ?Sized> RefreshTokenStore for $ty {
            async fn insert_token(&self, record: RefreshRecord) -> Result<(), BackendError> {
                (**self).insert_token(record).await
            }
            async fn get_token(&self, id: &str) -> Result<Option<RefreshRecord>, BackendError> {
                (**self).get_token(id).await
            }
            async fn update_token(&self, record: RefreshRecord) -> Result<bool, BackendError> {
                (**self).update_token(record).await
            }
            async fn delete_token(&self, id: &str) -> Result<bool, BackendError> {
                (**self).delete_token(id).await
            }
            async fn delete_account_tokens(&self, account: &str) -> Result<usize, BackendError> {
                (**self).delete_account_tokens(account).await
            }
            async fn list_tokens(
                &self,
                account: Option<&str>,
            ) -> Result<Vec<RefreshRecord>, BackendError> {
                (**self).list_tokens(account).await
            }
            async fn sweep_expired_tokens(&self, now: SystemTime) -> Result<usize, BackendError> {
                (**self).sweep_expired_tokens(now).await
            }
        }
    };
}

forward_refresh_store!(Arc<T>);
forward_refresh_store!(Box<T>);

/// A shared store plus the policy: what a [`TokenService`](crate::TokenService) needs to
/// hand out and accept refresh tokens.
#[derive(Clone)]
pub struct RefreshTokens {
    /// Where the records live.
    pub store: Arc<dyn RefreshTokenStore>,
    /// Lifetimes and rotation.
    pub policy: RefreshPolicy,
}

impl RefreshTokens {
    /// Refresh tokens kept in `store` under `policy`.
    pub fn new(store: Arc<dyn RefreshTokenStore>, policy: RefreshPolicy) -> Self {
        Self { store, policy }
    }
}

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokens")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
