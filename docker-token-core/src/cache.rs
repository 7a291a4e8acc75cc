//! A credential-verification cache that wraps any [`Authenticator`].
//!
//! bcrypt is slow on purpose (≈2 ms at cost 5, ≈60 ms at cost 10), and clients ask for a
//! token before every pull and push: a Kubernetes node pulling ten images sends the same
//! credentials ten times within a second. [`CachedAuthenticator`] remembers a *successful*
//! verification for a short time so that the repeats cost a MAC instead of a bcrypt.
//!
//! What is stored, per successful login: an HMAC-SHA256 tag of (authenticator name,
//! account, password) from a [`SecretKeyer`] (a key drawn from the system RNG when the cache
//! is created) as the entry's key, the [`Identity`] (account and labels) the backend
//! returned, and an expiry time. The password itself is never stored. A lookup recomputes
//! the tag, so a wrong password is never a hit. The key never leaves the process: a copy of
//! the entries alone (a log, a core file of another process, a later run) cannot be attacked
//! offline. A full dump of the *running* process holds the key too; the TTL and the size
//! bound are what limit that exposure, which is why the default TTL is short.
//!
//! Only successes are cached. A failed attempt (wrong password) for an account drops its
//! entry, so that an account whose password was just changed needs the new one at once;
//! the old password keeps working for at most the TTL *only* if nobody tries a wrong one
//! (or, with more than `max_entries` accounts in use, if the account's entry was evicted from
//! the per-account index first). A success with a new password replaces the account's entry.
//! `NotApplicable` answers and backend errors are never cached. Anonymous attempts are
//! passed through (they carry no password to verify).
//!
//! Concurrent misses for the *same* (account, password) are coalesced: the first verifies
//! and the others wait for its result, so a burst of parallel pulls costs one bcrypt.
//! Attempts with another password (or for another account) never wait for it, so a flood of
//! wrong passwords cannot hold up a user's good logins.
//!
//! The entries live in [`TtlCache`]s, the workspace's one bounded cache (public, with
//! [`SecretKeyer`], for other backends' caches).
//!
//! A new cache (a new [`CachedAuthenticator`]) has a new key and no entries; the server
//! builds a new one on every configuration reload.

mod keyer;
mod ttl;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

pub use keyer::{SecretKeyer, TAG_LEN};
pub use ttl::{Keep, TtlCache};

use crate::authn::{Authenticator, AuthnOutcome, LoginAttempt, LookupOutcome};
use crate::error::{BackendError, ConfigError};
use crate::identity::Identity;

/// The default time a successful verification is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The default bound on the number of cached logins.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// How long successes are remembered and how many. In YAML (the server's
/// `credential_cache:`): `{ttl: 60, max_entries: 10000}`; `ttl: 0` turns caching off.
/// Build one from [`Default`] (or [`CacheConfig::disabled`]) and set the fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How long a success is remembered (0 = no cache); seconds or a string such as `"2m"`
    /// ([`deserialize_duration`](crate::config::deserialize_duration)).
    #[serde(
        default = "default_ttl",
        deserialize_with = "crate::config::deserialize_duration"
    )]
    pub ttl: Duration,
    /// About the most logins remembered at once (> 0).
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

fn default_ttl() -> Duration {
    DEFAULT_TTL
}

fn default_max_entries() -> usize {
    DEFAULT_MAX_ENTRIES
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl CacheConfig {
    /// No caching (`ttl: 0`).
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            ttl: Duration::ZERO,
            ..Self::default()
        }
    }

    /// Whether this configuration caches anything.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The TTL.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Checks the values (`max_entries > 0`, a TTL of at most a day).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries == 0 {
            return Err(
                ConfigError::new("must be at least 1 (use ttl: 0 to turn the cache off)")
                    .at("max_entries"),
            );
        }
        if self.ttl > Duration::from_secs(86_400) {
            return Err(ConfigError::new(
                "at most 86400 seconds: a cached password outlives a password change by up to this long",
            )
            .at("ttl"));
        }
        Ok(())
    }
}

/// An [`Authenticator`] that remembers the successes of another one. See the
/// [module documentation](self) for what is stored and why it is safe.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use docker_token_core::cache::{CacheConfig, CachedAuthenticator};
/// use docker_token_core::static_users::UsersConfig;
/// use docker_token_core::{Authenticator, AuthnOutcome, LoginAttempt, StaticUsers};
///
/// let users: UsersConfig = serde_json::from_value(serde_json::json!({
///     "alice": {"password": bcrypt::hash("pw", 4).unwrap()}
/// })).unwrap();
/// let cached = CachedAuthenticator::new(StaticUsers::from_config(&users)?, CacheConfig::default())?;
/// let login = LoginAttempt::new("alice", "pw");
/// assert!(matches!(cached.authenticate(&login).await?, AuthnOutcome::Authenticated(_))); // bcrypt
/// assert!(matches!(cached.authenticate(&login).await?, AuthnOutcome::Authenticated(_))); // cached
/// assert_eq!(cached.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct CachedAuthenticator<A> {
    inner: A,
    keyer: SecretKeyer,
    ttl: Duration,
    /// Successes by the tag of (authenticator name, account, password).
    entries: TtlCache<[u8; TAG_LEN], Arc<Identity>>,
    /// The tag of each account's latest success, so that a failed attempt or a success with
    /// another password can drop it.
    latest: TtlCache<String, [u8; TAG_LEN]>,
}

impl<A: Authenticator> fmt::Debug for CachedAuthenticator<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedAuthenticator")
            .field("inner", &self.inner.name())
            .field("ttl", &self.ttl)
            .field("max_entries", &self.entries.max_entries())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Why a verification produced nothing to cache.
enum NotCached {
    Outcome(AuthnOutcome),
    Error(BackendError),
}

impl<A: Authenticator> CachedAuthenticator<A> {
    /// Wraps `inner` with a fresh cache (a new random key, no entries). A `ttl` of 0 makes
    /// every call go to `inner`. Fails if the configuration is invalid or the system RNG
    /// cannot produce a key.
    pub fn new(inner: A, config: CacheConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner,
            keyer: SecretKeyer::new()?,
            ttl: config.ttl(),
            entries: TtlCache::new(config.max_entries),
            latest: TtlCache::new(config.max_entries),
        })
    }

    /// The wrapped authenticator.
    #[must_use]
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The number of successes held (expired entries count until they are met or evicted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.clear();
        self.latest.clear();
    }

    /// The tag of (authenticator name, account, password).
    fn tag(&self, login: &LoginAttempt) -> [u8; TAG_LEN] {
        self.keyer.tag(&[
            self.inner.name().as_bytes(),
            login.account.as_bytes(),
            login.password.expose().as_bytes(),
        ])
    }

    /// Records `tag` as the account's latest success, dropping the entry of an earlier one
    /// with another password.
    fn remember(&self, account: &str, tag: [u8; TAG_LEN]) {
        if let Some(previous) = self.latest.get(account)
            && previous != tag
        {
            self.entries.remove(&previous);
        }
        self.latest.insert(account.to_owned(), tag, self.ttl);
    }

    /// Drops the account's entry after a failed attempt.
    fn forget(&self, account: &str) {
        if let Some(tag) = self.latest.remove(account) {
            self.entries.remove(&tag);
        }
    }
}

#[async_trait]
impl<A: Authenticator> Authenticator for CachedAuthenticator<A> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        if self.ttl.is_zero() || login.is_anonymous() {
            return self.inner.authenticate(login).await;
        }
        let tag = self.tag(login);
        if let Some(identity) = self.entries.get(&tag) {
            crate::metrics::cache(self.inner.name(), true);
            return Ok(AuthnOutcome::Authenticated(Identity::clone(&identity)));
        }
        crate::metrics::cache(self.inner.name(), false);
        // Concurrent misses with the same tag wait for the first verification; attempts
        // with other passwords never wait for it. Only successes are kept.
        let verified = self
            .entries
            .get_or_try_insert_with(&tag, || async {
                match self.inner.authenticate(login).await {
                    Ok(AuthnOutcome::Authenticated(identity)) => {
                        self.remember(&login.account, tag);
                        Ok((Arc::new(identity), Keep::For(self.ttl)))
                    }
                    Ok(other) => Err(NotCached::Outcome(other)),
                    Err(e) => Err(NotCached::Error(e)),
                }
            })
            .await;
        match verified {
            Ok(identity) => Ok(AuthnOutcome::Authenticated(Arc::unwrap_or_clone(identity))),
            Err(NotCached::Outcome(AuthnOutcome::Rejected)) => {
                self.forget(&login.account);
                Ok(AuthnOutcome::Rejected)
            }
            Err(NotCached::Outcome(outcome)) => Ok(outcome),
            Err(NotCached::Error(e)) => Err(e),
        }
    }

    async fn equalize_timing(&self, login: &LoginAttempt) {
        self.inner.equalize_timing(login).await;
    }

    async fn ready(&self) -> Result<(), BackendError> {
        self.inner.ready().await
    }

    /// Never cached: the refresh grant must see the backend's current answer.
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        self.inner.lookup_account(account).await
    }
}

#[cfg(test)]
mod tests;
