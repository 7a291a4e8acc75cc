//! An opt-in *token reuse window*: an identical grant (same account, service and granted
//! access) asked for again within a few seconds gets the token issued the first time, as long
//! as that token still has most (two thirds) of its lifetime left. It turns bursts of
//! identical requests (parallel pulls, `docker compose pull`) into one signature, which
//! matters with RSA keys (≈2 ms per RSA-4096 signature).
//!
//! The trade-off: one `jti` then stands for several token requests, so audit logs must not
//! assume a `jti` is one request (the audit event says `reused = true`). Authentication and
//! authorization still run on every request; only the signature is saved. Off by default.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::TtlCache;
use crate::token::{AccessEntry, IssuedToken};

/// The most grants remembered at once (the cache's eviction picks what goes; a burst whose
/// token was evicted simply signs again).
const MAX_ENTRIES: usize = 10_000;

/// Remembers recently issued tokens by grant, each for the window.
pub(crate) struct ReuseWindow {
    window: Duration,
    entries: TtlCache<String, Arc<IssuedToken>>,
}

impl std::fmt::Debug for ReuseWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReuseWindow")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The grant a token stands for: account, audience, lifetime and the granted access, in
/// order.
pub(crate) fn grant_key(
    account: &str,
    audience: &str,
    lifetime: Duration,
    access: &[AccessEntry],
) -> String {
    let mut key = String::with_capacity(64 + account.len() + audience.len());
    for part in [account, audience] {
        key.push_str(part);
        key.push('\0');
    }
    key.push_str(&lifetime.as_secs().to_string());
    key.push('\0');
    for a in access {
        key.push_str(&a.resource_type);
        key.push('\0');
        key.push_str(&a.name);
        key.push('\0');
        key.push_str(&a.actions.join(","));
        key.push('\0');
    }
    key
}

impl ReuseWindow {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            entries: TtlCache::new(MAX_ENTRIES),
        }
    }

    /// A token issued for `key` within the window that still has two thirds of its lifetime,
    /// with `expires_in` lowered to what is really left.
    pub(crate) fn get(&self, key: &str) -> Option<IssuedToken> {
        let token = self.entries.get(key)?;
        let lifetime = token.expires_in;
        // what is really left of `exp - now`, rounded down: never claim more (protocol.md §8)
        let exp = token.issued_at + Duration::from_secs(lifetime);
        let left = exp
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_secs());
        if left.saturating_mul(3) < lifetime.saturating_mul(2) {
            self.entries.remove(key);
            return None;
        }
        let mut token = IssuedToken::clone(&token);
        token.expires_in = left;
        Some(token)
    }

    /// Remembers a freshly issued token for the window.
    pub(crate) fn put(&self, key: String, token: &IssuedToken) {
        self.entries
            .insert(key, Arc::new(token.clone()), self.window);
    }
}
