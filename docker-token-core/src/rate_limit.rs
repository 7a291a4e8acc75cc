//! Failed-login rate limiting: a GCRA (leaky bucket) per (account, client IP) and per client
//! IP that counts only *failed* authentications.
//!
//! Password guessing is slowed down without touching good clients: fifty parallel pulls with
//! correct credentials never consume anything, so they are never limited (the failure mode
//! of Keycloak's brute-force lockout under `docker compose pull`). Once a key has used its
//! burst, the next attempt is answered `429 Too Many Requests` with `Retry-After` *before* any
//! authenticator runs, so a guess made while limited learns nothing (not even whether the
//! password was right) and costs no bcrypt.
//!
//! The rules, per key (an (account, IP) pair, and an IP):
//!
//! - a failure (wrong password, unknown user) uses one unit; `burst` units are available at
//!   once and they come back at `failures_per_minute`;
//! - an attempt is limited while no unit is left, for the time `Retry-After` says;
//! - a success clears the (account, IP) key (a typo followed by the right password leaves no
//!   trace) but not the IP key;
//! - anonymous attempts (no credentials) never count: they guess nothing.
//!
//! Memory is bounded: keys are keyed 64-bit hashes (the account is hostile input and is never
//! stored), each table holds at most `max_entries` keys, fully recovered keys are dropped
//! first, and when a table is full of live keys the least-limited eighth is forgotten.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use docker_token_core::rate_limit::{FailedLoginLimiter, RateLimitConfig};
//!
//! let limiter = FailedLoginLimiter::new(RateLimitConfig {
//!     failures_per_minute: 6,
//!     burst: 3,
//!     ..RateLimitConfig::default()
//! })?;
//! let ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
//! for _ in 0..3 {
//!     assert!(limiter.check("alice", ip).is_ok());
//!     limiter.record_failure("alice", ip);
//! }
//! let limited = limiter.check("alice", ip).unwrap_err();
//! assert!(limited.retry_after.as_secs() <= 10);
//! assert!(limiter.check("bob", ip).is_ok(), "other accounts are not limited");
//! # Ok::<(), docker_token_core::ConfigError>(())
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::ConfigError;

/// Default sustained failures per minute per (account, client IP).
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 6;
/// Default burst of failures per (account, client IP).
pub const DEFAULT_BURST: u32 = 10;
/// Default sustained failures per minute per client IP (all accounts together).
pub const DEFAULT_IP_FAILURES_PER_MINUTE: u32 = 60;
/// Default burst of failures per client IP.
pub const DEFAULT_IP_BURST: u32 = 100;
/// Default bound on the keys each table holds.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

const SHARDS: usize = 16;

/// The limits. In YAML (the server's `rate_limit:`): `{failures_per_minute: 6, burst: 10,
/// ip_failures_per_minute: 60, ip_burst: 100, max_entries: 100000}`; `enabled: false` turns
/// limiting off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Whether failed logins are limited at all (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Failures per minute per (account, client IP) once the burst is used (> 0).
    #[serde(default = "default_failures_per_minute")]
    pub failures_per_minute: u32,
    /// Failures per (account, client IP) allowed at once (> 0).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Failures per minute per client IP, all accounts together (0 = no per-IP limit).
    #[serde(default = "default_ip_failures_per_minute")]
    pub ip_failures_per_minute: u32,
    /// Failures per client IP allowed at once (> 0 unless the per-IP limit is off).
    #[serde(default = "default_ip_burst")]
    pub ip_burst: u32,
    /// The most keys each table (pairs, IPs) holds (≥ 16).
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

fn yes() -> bool {
    true
}
fn default_failures_per_minute() -> u32 {
    DEFAULT_FAILURES_PER_MINUTE
}
fn default_burst() -> u32 {
    DEFAULT_BURST
}
fn default_ip_failures_per_minute() -> u32 {
    DEFAULT_IP_FAILURES_PER_MINUTE
}
fn default_ip_burst() -> u32 {
    DEFAULT_IP_BURST
}
fn default_max_entries() -> usize {
    DEFAULT_MAX_ENTRIES
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failures_per_minute: DEFAULT_FAILURES_PER_MINUTE,
            burst: DEFAULT_BURST,
            ip_failures_per_minute: DEFAULT_IP_FAILURES_PER_MINUTE,
            ip_burst: DEFAULT_IP_BURST,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl RateLimitConfig {
    /// No limiting (`enabled: false`).
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.failures_per_minute == 0 {
            return Err(ConfigError::new(
                "must be at least 1 (use enabled: false to turn limiting off)",
            )
            .at("failures_per_minute"));
        }
        if self.burst == 0 {
            return Err(ConfigError::new("must be at least 1").at("burst"));
        }
        if self.ip_failures_per_minute > 0 && self.ip_burst == 0 {
            return Err(ConfigError::new("must be at least 1").at("ip_burst"));
        }
        if self.max_entries < SHARDS {
            return Err(ConfigError::new(format!("must be at least {SHARDS}")).at("max_entries"));
        }
        Ok(())
    }
}

/// Which limit refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// The (account, client IP) pair used its failures.
    AccountIp,
    /// The client IP used its failures (over all accounts).
    Ip,
}

impl LimitKind {
    /// A short name for logs and metric labels (`account_ip`, `ip`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountIp => "account_ip",
            Self::Ip => "ip",
        }
    }
}

/// An attempt refused by the limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// When the next attempt is allowed (rounded up to whole seconds in `Retry-After`).
    pub retry_after: Duration,
    /// Which limit refused it.
    pub kind: LimitKind,
}

/// The failed-login limiter. Cheap to clone (an `Arc` inside); clones share their state, so
/// a configuration reload can keep the counts. See the [module documentation](self).
#[derive(Clone)]
pub struct FailedLoginLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    config: RateLimitConfig,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
    pairs: Table,
    ips: Option<Table>,
}

impl std::fmt::Debug for FailedLoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailedLoginLimiter")
            .field("config", &self.inner.config)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl FailedLoginLimiter {
    /// A limiter with empty tables. Fails if the configuration is invalid.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let per_shard = (config.max_entries / SHARDS).max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                hasher: std::collections::hash_map::RandomState::new(),
                epoch: Instant::now(),
                pairs: Table::new(config.failures_per_minute, config.burst, per_shard),
                ips: (config.ip_failures_per_minute > 0)
                    .then(|| Table::new(config.ip_failures_per_minute, config.ip_burst, per_shard)),
            }),
        })
    }

    /// The configuration it was built with.
    #[must_use]
    pub fn config(&self) -> &RateLimitConfig {
        &self.inner.config
    }

    /// Whether an attempt by `account` from `ip` may be authenticated now. Does not count
    /// anything.
    pub fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<(), Limited> {
        let now = self.now();
        if let Some(ips) = &self.inner.ips
            && let Some(ip) = ip
            && let Some(wait) = ips.wait(self.ip_key(ip), now)
        {
            return Err(Limited {
                retry_after: Duration::from_nanos(wait),
                kind: LimitKind::Ip,
            });
        }
        match self.inner.pairs.wait(self.pair_key(account, ip), now) {
            Some(wait) => Err(Limited {
                retry_after: Duration::from_nanos(wait),
                kind: LimitKind::AccountIp,
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication of `account` from `ip`.
    pub fn record_failure(&self, account: &str, ip: Option<IpAddr>) {
        let now = self.now();
        self.inner.pairs.consume(self.pair_key(account, ip), now);
        if let Some(ips) = &self.inner.ips
            && let Some(ip) = ip
        {
            ips.consume(self.ip_key(ip), now);
        }
    }

    /// Forgets the failures of `account` from `ip` after a successful login (the IP's count
    /// stays).
    pub fn record_success(&self, account: &str, ip: Option<IpAddr>) {
        self.inner.pairs.remove(self.pair_key(account, ip));
    }

    /// The number of keys held (pairs and IPs), including recovered ones not yet swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.pairs.len() + self.inner.ips.as_ref().map_or(0, Table::len)
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A keyed hash of the pair: the account is length-prefixed so that no two pairs share
    /// an input.
    fn pair_key(&self, account: &str, ip: Option<IpAddr>) -> u64 {
        let mut h = self.inner.hasher.build_hasher();
        h.write_u8(1);
        h.write_usize(account.len());
        h.write(account.as_bytes());
        write_ip(&mut h, ip);
        h.finish()
    }

    fn ip_key(&self, ip: IpAddr) -> u64 {
        let mut h = self.inner.hasher.build_hasher();
        h.write_u8(2);
        write_ip(&mut h, Some(ip));
        h.finish()
    }
}

fn write_ip(h: &mut impl Hasher, ip: Option<IpAddr>) {
    let (bytes, len) = ip_bytes(ip);
    h.write(bytes.get(..len).unwrap_or_default());
}

/// `ip` for a key: a tag byte (0 none, 4 or 6) and the octets; the bytes and how many of
/// them count.
pub(crate) fn ip_bytes(ip: Option<IpAddr>) -> ([u8; 17], usize) {
    let mut out = [0u8; 17];
    let (tag, octets): (u8, &[u8]) = match &ip {
        None => (0, &[]),
        Some(IpAddr::V4(v4)) => (4, &v4.octets()),
        Some(IpAddr::V6(v6)) => (6, &v6.octets()),
    };
    out[0] = tag;
    for (o, b) in out.iter_mut().skip(1).zip(octets) {
        *o = *b;
    }
    (out, 1 + octets.len())
}

/// The keys are already keyed SipHash outputs: hashing them again buys nothing.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, u64, BuildHasherDefault<PassThrough>>;

/// One GCRA table: key → theoretical arrival time (ns since the limiter's epoch).
struct Table {
    /// Nanoseconds per unit (60 s / rate).
    interval: u64,
    /// How far the TAT may run ahead of now before attempts are refused: (burst − 1) units.
    tolerance: u64,
    max_per_shard: usize,
    shards: [Mutex<Shard>; SHARDS],
}

impl Table {
    fn new(per_minute: u32, burst: u32, max_per_shard: usize) -> Self {
        let interval = 60_000_000_000 / u64::from(per_minute.max(1));
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1) - 1)),
            max_per_shard,
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        // the top bits pick the shard; a panic under the lock cannot leave a torn entry
        let i = (key >> 60) as usize % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `None` if a failure now would be allowed, else the nanoseconds until it would be.
    fn wait(&self, key: u64, now: u64) -> Option<u64> {
        let tat = *self.shard(key).get(&key)?;
        let allowed_at = tat.saturating_sub(self.tolerance);
        (allowed_at > now).then(|| allowed_at - now)
    }

    fn consume(&self, key: u64, now: u64) {
        let mut shard = self.shard(key);
        if shard.len() >= self.max_per_shard && !shard.contains_key(&key) {
            make_room(&mut shard, now, self.max_per_shard);
        }
        let tat = shard.entry(key).or_insert(now);
        *tat = (*tat).max(now).saturating_add(self.interval);
    }

    fn remove(&self, key: u64) {
        self.shard(key).remove(&key);
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// Drops recovered keys (TAT in the past: the same as no key); if the shard is still full,
/// drops the eighth with the earliest TAT (the least limited), so a flood costs O(1)
/// amortised per insert.
fn make_room(shard: &mut Shard, now: u64, max: usize) {
    shard.retain(|_, tat| *tat > now);
    if shard.len() < max {
        return;
    }
    let mut tats: Vec<u64> = shard.values().copied().collect();
    let cut = (tats.len() / 8).max(1);
    let (_, threshold, _) = tats.select_nth_unstable(cut - 1);
    let threshold = *threshold;
    shard.retain(|_, tat| *tat > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)))
    }

    fn limiter(per_minute: u32, burst: u32) -> FailedLoginLimiter {
        FailedLoginLimiter::new(RateLimitConfig {
            failures_per_minute: per_minute,
            burst,
            ..RateLimitConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn burst_then_limited_with_a_retry_after_of_one_interval() {
        let l = limiter(6, 10);
        for i in 0..10 {
            assert!(l.check("alice", ip(1)).is_ok(), "attempt {i}");
            l.record_failure("alice", ip(1));
        }
        let e = l.check("alice", ip(1)).unwrap_err();
        assert_eq!(e.kind, LimitKind::AccountIp);
        assert!(
            e.retry_after > Duration::from_secs(9) && e.retry_after <= Duration::from_secs(10),
            "{:?}",
            e.retry_after
        );
        // another IP, another account: not limited
        assert!(l.check("alice", ip(2)).is_ok());
        assert!(l.check("bob", ip(1)).is_ok());
        assert!(l.check("alice", None).is_ok());
    }

    #[test]
    fn successes_never_count_and_clear_the_pair() {
        let l = limiter(6, 3);
        for _ in 0..2 {
            l.record_failure("alice", ip(1));
        }
        l.record_success("alice", ip(1));
        for _ in 0..3 {
            assert!(l.check("alice", ip(1)).is_ok());
            l.record_failure("alice", ip(1));
        }
        assert!(l.check("alice", ip(1)).is_err());
    }

    #[test]
    fn the_ip_limit_spans_accounts() {
        let l = FailedLoginLimiter::new(RateLimitConfig {
            ip_failures_per_minute: 60,
            ip_burst: 5,
            ..RateLimitConfig::default()
        })
        .unwrap();
        for i in 0..5 {
            let account = format!("user{i}");
            assert!(l.check(&account, ip(9)).is_ok());
            l.record_failure(&account, ip(9));
        }
        let e = l.check("someone-else", ip(9)).unwrap_err();
        assert_eq!(e.kind, LimitKind::Ip);
        assert!(e.retry_after <= Duration::from_secs(1));
        assert!(l.check("someone-else", ip(10)).is_ok());
    }

    #[test]
    fn units_come_back_at_the_configured_rate() {
        let l = limiter(6, 2);
        let key = l.pair_key("alice", ip(1));
        let t = &l.inner.pairs;
        t.consume(key, 0);
        t.consume(key, 0);
        assert_eq!(t.wait(key, 0), Some(10_000_000_000));
        assert_eq!(t.wait(key, 10_000_000_000), None);
        t.consume(key, 10_000_000_000);
        assert!(t.wait(key, 10_000_000_000).is_some());
    }

    #[test]
    fn a_flood_of_distinct_accounts_stays_within_max_entries() {
        let l = FailedLoginLimiter::new(RateLimitConfig {
            max_entries: 10_000,
            ..RateLimitConfig::default()
        })
        .unwrap();
        for i in 0..100_000u32 {
            let account = format!("guess-{i}");
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            l.record_failure(&account, Some(addr));
        }
        assert!(l.inner.pairs.len() <= 10_000, "{}", l.inner.pairs.len());
        assert!(
            l.inner.ips.as_ref().unwrap().len() <= 10_000,
            "{}",
            l.inner.ips.as_ref().unwrap().len()
        );
        assert!(l.len() > 1_000, "it still remembers the recent ones");
        // the most recent attacker is still limited after its burst
        for _ in 0..10 {
            l.record_failure("last", ip(200));
        }
        assert!(l.check("last", ip(200)).is_err());
    }

    #[test]
    fn config_validation() {
        assert!(RateLimitConfig::default().validate().is_ok());
        assert!(RateLimitConfig::disabled().validate().is_ok());
        let bad = RateLimitConfig {
            burst: 0,
            ..RateLimitConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "burst: must be at least 1"
        );
        let bad: Result<RateLimitConfig, _> =
            serde_json::from_value(serde_json::json!({"burst": 3, "bogus": 1}));
        assert!(bad.is_err());
        let ok: RateLimitConfig = serde_json::from_value(serde_json::json!({"burst": 3})).unwrap();
        assert_eq!(ok.failures_per_minute, DEFAULT_FAILURES_PER_MINUTE);
        assert!(ok.enabled);
    }
}
