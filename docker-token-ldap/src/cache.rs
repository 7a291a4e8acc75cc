//! A short-lived, bounded cache of successful authentications.
//!
//! The key is the account; the entry holds an HMAC-SHA256 of `account NUL password` under a
//! key drawn at random when the process starts, so the cache never holds the password nor
//! anything that can be checked offline after a restart. Lookups compare the HMAC in constant
//! time. Only successes are stored; a wrong password for an account drops its entry.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use docker_token_core::{Identity, Password};
use subtle::ConstantTimeEq;

struct Entry {
    tag: Vec<u8>,
    identity: Identity,
    expires: Instant,
}

/// Successful authentications for `ttl`, at most `capacity` of them.
pub(crate) struct AuthCache {
    key: hmac::Key,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl AuthCache {
    /// A cache with a fresh random key. Fails only if the system RNG does.
    pub(crate) fn new(
        ttl: Duration,
        capacity: usize,
    ) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())?;
        Ok(Self {
            key,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::default(),
        })
    }

    fn tag(&self, account: &str, password: &Password) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(account.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.expose().as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // a panic while holding the lock cannot leave a half-written entry behind
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The identity of a cached success for exactly this account and password.
    pub(crate) fn get(&self, account: &str, password: &Password) -> Option<Identity> {
        let tag = self.tag(account, password);
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.get(account)?;
        if entry.expires <= now {
            entries.remove(account);
            return None;
        }
        if bool::from(entry.tag.ct_eq(&tag)) {
            Some(entry.identity.clone())
        } else {
            None
        }
    }

    /// Remembers a success.
    pub(crate) fn insert(&self, account: &str, password: &Password, identity: Identity) {
        let tag = self.tag(account, password);
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(account) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
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

    /// Forgets an account (after a failed attempt).
    pub(crate) fn remove(&self, account: &str) {
        self.lock().remove(account);
    }

    /// How many entries are held (expired ones included until touched).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Identity {
        Identity::new("alice").with_labels(docker_token_core::Labels::from([(
            "group".to_owned(),
            vec![v.to_owned()],
        )]))
    }

    #[test]
    fn hit_only_with_the_same_password() {
        let c = AuthCache::new(Duration::from_secs(60), 10).unwrap();
        c.insert("alice", &Password::new("pw"), labels("dev"));
        assert_eq!(c.get("alice", &Password::new("pw")), Some(labels("dev")));
        assert_eq!(c.get("alice", &Password::new("pw2")), None);
        assert_eq!(c.get("alice", &Password::new("")), None);
        assert_eq!(c.get("bob", &Password::new("pw")), None);
        // the account is part of the MAC: "a"+"b\0c" vs "a\0b"+"c" cannot collide
        c.insert("a\0b", &Password::new("c"), labels("x"));
        assert_eq!(c.get("a", &Password::new("b\0c")), None);
        c.remove("alice");
        assert_eq!(c.get("alice", &Password::new("pw")), None);
    }

    #[test]
    fn never_stores_the_password() {
        let c = AuthCache::new(Duration::from_secs(60), 10).unwrap();
        c.insert("alice", &Password::new("hunter2-secret"), labels("dev"));
        let entries = c.lock();
        let tag = &entries["alice"].tag;
        assert_eq!(tag.len(), 32);
        assert!(!tag.windows(7).any(|w| w == b"hunter2"));
        drop(entries);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn expires_and_stays_bounded() {
        let c = AuthCache::new(Duration::from_millis(30), 3).unwrap();
        for i in 0..10 {
            c.insert(&format!("u{i}"), &Password::new("pw"), labels("g"));
            std::thread::sleep(Duration::from_millis(1));
            assert!(c.len() <= 3);
        }
        assert!(c.get("u9", &Password::new("pw")).is_some());
        assert!(
            c.get("u0", &Password::new("pw")).is_none(),
            "oldest entries are evicted"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get("u9", &Password::new("pw")).is_none(), "expired");
    }

    #[test]
    fn two_caches_use_different_keys() {
        let a = AuthCache::new(Duration::from_secs(1), 1).unwrap();
        let b = AuthCache::new(Duration::from_secs(1), 1).unwrap();
        assert_ne!(
            a.tag("x", &Password::new("y")),
            b.tag("x", &Password::new("y"))
        );
    }
}
