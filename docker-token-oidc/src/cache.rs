//! A bounded cache of check results, keyed by an HMAC of (user, token) under a per-process
//! random key: the raw token is never stored, and the keys are useless outside this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use docker_token_core::AuthnOutcome;

/// The cache key: HMAC-SHA256(random key, len(user) ‖ user ‖ token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

#[derive(Debug)]
struct Entry {
    outcome: AuthnOutcome,
    expires: Instant,
}

/// Outcomes by [`CacheKey`], each with its own expiry, at most `max_entries` of them.
#[derive(Debug)]
pub(crate) struct ResultCache {
    key: hmac::Key,
    max_entries: usize,
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

impl ResultCache {
    /// An empty cache with a fresh random key. `max_entries == 0` disables it.
    pub(crate) fn new(max_entries: usize) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut secret = [0_u8; 32];
        SystemRandom::new().fill(&mut secret)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        Ok(Self {
            key,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The key for this user and token.
    pub(crate) fn key_for(&self, account: &str, token: &str) -> CacheKey {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(account.len() as u64).to_be_bytes());
        ctx.update(account.as_bytes());
        ctx.update(token.as_bytes());
        let tag = ctx.sign();
        let mut out = [0_u8; 32];
        out.copy_from_slice(tag.as_ref());
        CacheKey(out)
    }

    /// The cached outcome, if any and not expired.
    pub(crate) fn get(&self, key: &CacheKey, now: Instant) -> Option<AuthnOutcome> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some(e) if e.expires > now => Some(e.outcome.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores an outcome for `ttl` (nothing for a zero `ttl`). When full, expired entries go
    /// first, then the tenth of the entries that expire soonest.
    pub(crate) fn put(&self, key: CacheKey, outcome: AuthnOutcome, ttl: Duration, now: Instant) {
        if ttl.is_zero() || self.max_entries == 0 {
            return;
        }
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.max_entries {
                let mut expiries: Vec<Instant> = entries.values().map(|e| e.expires).collect();
                let cut = (self.max_entries / 10).max(1).min(expiries.len() - 1);
                let (_, threshold, _) = expiries.select_nth_unstable(cut);
                let threshold = *threshold;
                entries.retain(|_, e| e.expires > threshold);
            }
        }
        entries.insert(key, Entry { outcome, expires });
    }

    /// How many entries are held (expired ones included until they are swept).
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_user_token_and_process_key() {
        let a = ResultCache::new(10).unwrap();
        let b = ResultCache::new(10).unwrap();
        assert_eq!(a.key_for("alice", "tok"), a.key_for("alice", "tok"));
        assert_ne!(a.key_for("alice", "tok"), a.key_for("bob", "tok"));
        assert_ne!(a.key_for("alice", "tok"), a.key_for("alice", "tok2"));
        // the length prefix keeps ("ab","c") and ("a","bc") apart
        assert_ne!(a.key_for("ab", "c"), a.key_for("a", "bc"));
        assert_ne!(a.key_for("alice", "tok"), b.key_for("alice", "tok"));
    }

    #[test]
    fn entries_expire() {
        let c = ResultCache::new(10).unwrap();
        let now = Instant::now();
        let k = c.key_for("alice", "tok");
        c.put(k, AuthnOutcome::Rejected, Duration::from_secs(5), now);
        assert_eq!(c.get(&k, now), Some(AuthnOutcome::Rejected));
        assert_eq!(c.get(&k, now + Duration::from_secs(5)), None);
        assert_eq!(c.len(), 0, "an expired entry is removed when read");
        c.put(k, AuthnOutcome::Rejected, Duration::ZERO, now);
        assert_eq!(c.get(&k, now), None);
    }

    #[test]
    fn bounded_and_evicts_soonest_expiring() {
        let c = ResultCache::new(20).unwrap();
        let now = Instant::now();
        for i in 0..100_u64 {
            let k = c.key_for("u", &i.to_string());
            c.put(
                k,
                AuthnOutcome::NotApplicable,
                Duration::from_secs(100 + i),
                now,
            );
            assert!(c.len() <= 20, "len {} after {i}", c.len());
        }
        // the latest (longest-lived) entry is there, the first ones were evicted
        assert!(c.get(&c.key_for("u", "99"), now).is_some());
        assert!(c.get(&c.key_for("u", "0"), now).is_none());
    }

    #[test]
    fn zero_capacity_disables() {
        let c = ResultCache::new(0).unwrap();
        let k = c.key_for("a", "b");
        c.put(
            k,
            AuthnOutcome::Rejected,
            Duration::from_secs(5),
            Instant::now(),
        );
        assert_eq!(c.len(), 0);
    }
}
