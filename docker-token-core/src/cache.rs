//! A credential-verification cache that wraps any [`Authenticator`].
//!
//! bcrypt is slow on purpose (≈2 ms at cost 5, ≈60 ms at cost 10), and clients ask for a
//! token before every pull and push: a Kubernetes node pulling ten images sends the same
//! credentials ten times within a second. [`CachedAuthenticator`] remembers a *successful*
//! verification for a short time so that the repeats cost a MAC instead of a bcrypt.
//!
//! What is stored, per account: an HMAC-SHA256 tag of (authenticator name, account,
//! password) under a key drawn from the system RNG when the cache is created, the
//! [`Identity`] (account and labels) the backend returned, and an expiry time. The password
//! itself is never stored. A lookup recomputes the tag and compares it in constant time, so
//! a wrong password is never a hit. The key never leaves the process: a copy of the entries
//! alone (a log, a core file of another process, a later run) cannot be attacked offline.
//! A full dump of the *running* process holds the key too; the TTL and the size bound are
//! what limit that exposure, which is why the default TTL is short.
//!
//! Only successes are cached. A failed attempt (wrong password) for an account drops its
//! entry, so that an account whose password was just changed needs the new one at once;
//! the old password keeps working for at most the TTL *only* if nobody tries a wrong one.
//! `NotApplicable` answers and backend errors are never cached. Anonymous attempts are
//! passed through (they carry no password to verify). Concurrent misses for one account
//! are not coalesced: each verifies on its own, and the last success is kept.
//!
//! A new cache (a new [`CachedAuthenticator`]) has a new key and no entries; the server
//! builds a new one on every configuration reload.

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::hmac;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::authn::{Authenticator, AuthnOutcome, LoginAttempt, LookupOutcome};
use crate::error::{BackendError, ConfigError};
use crate::identity::Identity;

/// The default time a successful verification is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The default bound on the number of cached accounts.
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
    /// The most accounts remembered at once (> 0).
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

struct Entry {
    tag: [u8; TAG_LEN],
    identity: Identity,
    expires: Instant,
}

const TAG_LEN: usize = 32;

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
    key: hmac::Key,
    ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<String, Entry>>,
}

impl<A: Authenticator> fmt::Debug for CachedAuthenticator<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedAuthenticator")
            .field("inner", &self.inner.name())
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<A: Authenticator> CachedAuthenticator<A> {
    /// Wraps `inner` with a fresh cache (a new random key, no entries). A `ttl` of 0 makes
    /// every call go to `inner`. Fails if the configuration is invalid or the system RNG
    /// cannot produce a key.
    pub fn new(inner: A, config: CacheConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut key = [0u8; TAG_LEN];
        aws_lc_rs::rand::fill(&mut key)
            .map_err(|_| ConfigError::new("cannot draw a cache key from the system RNG"))?;
        let key_obj = hmac::Key::new(hmac::HMAC_SHA256, &key);
        zeroize::Zeroize::zeroize(&mut key);
        Ok(Self {
            inner,
            key: key_obj,
            ttl: config.ttl(),
            max_entries: config.max_entries,
            entries: RwLock::default(),
        })
    }

    /// The wrapped authenticator.
    #[must_use]
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The number of accounts held (expired entries count until they are swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.write().clear();
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        // A panic while the lock was held cannot leave a half-written entry: inserts and
        // removals are single `HashMap` calls.
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// HMAC-SHA256 over length-prefixed fields, so that no two different triples share an
    /// input.
    fn tag(&self, login: &LoginAttempt) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for field in [
            self.inner.name().as_bytes(),
            login.account.as_bytes(),
            login.password.expose().as_bytes(),
        ] {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field);
        }
        let mut out = [0u8; TAG_LEN];
        let tag = ctx.sign();
        let bytes = tag.as_ref();
        let n = bytes.len().min(TAG_LEN);
        out[..n].copy_from_slice(&bytes[..n]);
        out
    }

    fn lookup(&self, account: &str, tag: &[u8; TAG_LEN], now: Instant) -> Option<Identity> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(account)?;
        let fresh = entry.expires > now;
        let same = bool::from(entry.tag.ct_eq(tag));
        (fresh && same).then(|| entry.identity.clone())
    }

    fn insert(&self, account: &str, tag: [u8; TAG_LEN], identity: Identity, now: Instant) {
        let mut entries = self.write();
        if entries.len() >= self.max_entries && !entries.contains_key(account) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.max_entries {
                // Full of live entries: drop the one closest to expiry (an O(n) scan, only
                // when the bound is reached with nothing expired).
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            account.to_owned(),
            Entry {
                tag,
                identity,
                expires: now + self.ttl,
            },
        );
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
        if let Some(identity) = self.lookup(&login.account, &tag, Instant::now()) {
            crate::metrics::cache(self.inner.name(), true);
            return Ok(AuthnOutcome::Authenticated(identity));
        }
        crate::metrics::cache(self.inner.name(), false);
        let outcome = self.inner.authenticate(login).await?;
        match &outcome {
            AuthnOutcome::Authenticated(identity) => {
                self.insert(&login.account, tag, identity.clone(), Instant::now());
            }
            AuthnOutcome::Rejected => {
                self.write().remove(&login.account);
            }
            AuthnOutcome::NotApplicable => {}
        }
        Ok(outcome)
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
