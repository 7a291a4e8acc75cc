use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::identity::Labels;

/// One account whose password can change, counting the verifications that reach it.
struct Backend {
    account: &'static str,
    password: Mutex<String>,
    calls: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl Backend {
    fn new(account: &'static str, password: &str) -> Arc<Self> {
        Arc::new(Self {
            account,
            password: Mutex::new(password.to_owned()),
            calls: AtomicUsize::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn set_password(&self, password: &str) {
        *self.password.lock().unwrap() = password.to_owned();
    }
}

#[async_trait]
impl Authenticator for Backend {
    fn name(&self) -> &str {
        "test"
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::unavailable("test", "down"));
        }
        if login.account.is_empty() {
            return Ok(AuthnOutcome::Authenticated(Identity::anonymous()));
        }
        if login.account != self.account {
            return Ok(AuthnOutcome::NotApplicable);
        }
        if login.password.expose() == self.password.lock().unwrap().as_str() {
            let labels = Labels::from([("group".to_owned(), vec!["dev".to_owned()])]);
            Ok(AuthnOutcome::Authenticated(
                Identity::new(self.account).with_labels(labels),
            ))
        } else {
            Ok(AuthnOutcome::Rejected)
        }
    }
}

fn cached(
    backend: &Arc<Backend>,
    ttl_ms: u64,
    max_entries: usize,
) -> CachedAuthenticator<Arc<Backend>> {
    let mut c = CachedAuthenticator::new(backend.clone(), CacheConfig::default()).unwrap();
    c.ttl = Duration::from_millis(ttl_ms);
    c.max_entries = max_entries;
    c
}

async fn outcome(c: &CachedAuthenticator<Arc<Backend>>, account: &str, pw: &str) -> AuthnOutcome {
    c.authenticate(&LoginAttempt::new(account, pw))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_success_is_cached_with_its_labels() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 60_000, 10);
    let first = outcome(&c, "alice", "pw").await;
    let second = outcome(&c, "alice", "pw").await;
    assert_eq!(b.calls(), 1, "the second call must be a cache hit");
    assert_eq!(first, second);
    let AuthnOutcome::Authenticated(id) = second else {
        panic!("expected success, got {second:?}");
    };
    assert_eq!(id.account, "alice");
    assert_eq!(id.labels["group"], vec!["dev".to_owned()]);
    assert_eq!(c.len(), 1);
}

#[tokio::test]
async fn failures_and_unknown_users_are_not_cached() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 60_000, 10);
    for _ in 0..3 {
        assert_eq!(outcome(&c, "alice", "wrong").await, AuthnOutcome::Rejected);
        assert_eq!(outcome(&c, "bob", "pw").await, AuthnOutcome::NotApplicable);
    }
    assert_eq!(b.calls(), 6, "every failure reaches the backend");
    assert!(c.is_empty());
    b.down.store(true, Ordering::SeqCst);
    assert!(
        c.authenticate(&LoginAttempt::new("alice", "pw"))
            .await
            .is_err()
    );
    assert!(c.is_empty(), "errors are not cached");
}

#[tokio::test]
async fn a_wrong_password_is_never_a_hit() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 60_000, 10);
    assert!(matches!(
        outcome(&c, "alice", "pw").await,
        AuthnOutcome::Authenticated(_)
    ));
    for wrong in ["pw2", "", "PW", "p", "pw\0"] {
        assert_eq!(
            outcome(&c, "alice", wrong).await,
            AuthnOutcome::Rejected,
            "{wrong:?}"
        );
    }
    assert_eq!(b.calls(), 6);
    // a failure dropped the entry: the good password is verified again, then cached
    assert!(matches!(
        outcome(&c, "alice", "pw").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert_eq!(b.calls(), 7);
}

#[tokio::test]
async fn a_changed_password_stops_working_within_the_ttl() {
    let b = Backend::new("alice", "old");
    let c = cached(&b, 40, 10);
    assert!(matches!(
        outcome(&c, "alice", "old").await,
        AuthnOutcome::Authenticated(_)
    ));
    b.set_password("new");
    // within the TTL the old password may still be a hit (the documented trade-off)
    assert!(matches!(
        outcome(&c, "alice", "old").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert_eq!(b.calls(), 1);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(outcome(&c, "alice", "old").await, AuthnOutcome::Rejected);
    assert!(matches!(
        outcome(&c, "alice", "new").await,
        AuthnOutcome::Authenticated(_)
    ));
    assert_eq!(b.calls(), 3);
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 30, 10);
    outcome(&c, "alice", "pw").await;
    outcome(&c, "alice", "pw").await;
    assert_eq!(b.calls(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    outcome(&c, "alice", "pw").await;
    assert_eq!(b.calls(), 2, "an expired entry is a miss");
}

#[test]
fn the_size_is_bounded_and_the_oldest_entry_goes_first() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 60_000, 3);
    let start = Instant::now();
    for i in 0..10u64 {
        let login = LoginAttempt::new(format!("u{i}"), "pw");
        let tag = c.tag(&login);
        c.insert(
            &login.account,
            tag,
            Identity::new(login.account.clone()),
            start + Duration::from_millis(i),
        );
        assert!(c.len() <= 3, "len {} after {i}", c.len());
    }
    let hit = |i: u32| {
        let login = LoginAttempt::new(format!("u{i}"), "pw");
        c.lookup(&login.account, &c.tag(&login), start).is_some()
    };
    assert!(hit(9) && hit(8) && hit(7));
    assert!(!hit(0) && !hit(6), "older entries were evicted");
}

#[test]
fn expired_entries_are_swept_before_live_ones_are_evicted() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 10, 2);
    let t0 = Instant::now();
    let put = |name: &str, at: Instant| {
        let login = LoginAttempt::new(name, "pw");
        c.insert(name, c.tag(&login), Identity::new(name), at);
    };
    put("a", t0);
    put("b", t0 + Duration::from_millis(100));
    put("c", t0 + Duration::from_millis(100));
    assert_eq!(c.len(), 2);
    let login = LoginAttempt::new("b", "pw");
    assert!(
        c.lookup("b", &c.tag(&login), t0 + Duration::from_millis(105))
            .is_some()
    );
}

#[tokio::test]
async fn anonymous_and_disabled_pass_through() {
    let b = Backend::new("alice", "pw");
    let c = cached(&b, 60_000, 10);
    c.authenticate(&LoginAttempt::anonymous()).await.unwrap();
    c.authenticate(&LoginAttempt::anonymous()).await.unwrap();
    assert_eq!(b.calls(), 2);
    assert!(c.is_empty());

    let off = CachedAuthenticator::new(b.clone(), CacheConfig::disabled()).unwrap();
    assert!(!CacheConfig::disabled().is_enabled());
    outcome_of(&off).await;
    outcome_of(&off).await;
    assert_eq!(b.calls(), 4);
    assert!(off.is_empty());
}

async fn outcome_of(c: &CachedAuthenticator<Arc<Backend>>) {
    let out = c
        .authenticate(&LoginAttempt::new("alice", "pw"))
        .await
        .unwrap();
    assert!(matches!(out, AuthnOutcome::Authenticated(_)));
}

#[test]
fn every_cache_draws_its_own_key() {
    let b = Backend::new("alice", "pw");
    let login = LoginAttempt::new("alice", "pw");
    let tags: Vec<[u8; TAG_LEN]> = (0..3).map(|_| cached(&b, 1, 1).tag(&login)).collect();
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[1], tags[2]);
    assert_ne!(tags[0], [0u8; TAG_LEN]);
    // the same cache is deterministic, and each field matters
    let c = cached(&b, 1, 1);
    assert_eq!(c.tag(&login), c.tag(&login));
    assert_ne!(c.tag(&login), c.tag(&LoginAttempt::new("alicep", "w")));
    assert_ne!(c.tag(&login), c.tag(&LoginAttempt::new("alice", "pw ")));
}

#[tokio::test]
async fn debug_shows_neither_passwords_nor_tags() {
    let b = Backend::new("alice", "hunter2-secret");
    let c = cached(&b, 60_000, 10);
    outcome(&c, "alice", "hunter2-secret").await;
    let dbg = format!("{c:?}");
    assert!(dbg.contains("len: 1"), "{dbg}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    let tag = c.tag(&LoginAttempt::new("alice", "hunter2-secret"));
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dbg.contains(&hex[..8]), "{dbg}");
    assert!(!dbg.to_lowercase().contains("key"), "{dbg}");
}

#[test]
fn config_defaults_and_validation() {
    let c: CacheConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, CacheConfig::default());
    assert_eq!(c.ttl(), DEFAULT_TTL);
    assert!(c.is_enabled());
    let c: CacheConfig = serde_json::from_str(r#"{"ttl": 5, "max_entries": 7}"#).unwrap();
    assert_eq!((c.ttl, c.max_entries), (Duration::from_secs(5), 7));
    let c: CacheConfig = serde_json::from_str(r#"{"ttl": "2m"}"#).unwrap();
    assert_eq!(c.ttl, Duration::from_secs(120));
    assert!(serde_json::from_str::<CacheConfig>(r#"{"tll": 5}"#).is_err());
    let zero = CacheConfig {
        max_entries: 0,
        ..CacheConfig::default()
    };
    assert!(
        zero.validate()
            .unwrap_err()
            .to_string()
            .contains("max_entries")
    );
    let long = CacheConfig {
        ttl: Duration::from_secs(100_000),
        ..CacheConfig::default()
    };
    assert!(long.validate().is_err());
    assert!(CachedAuthenticator::new(Backend::new("a", "b"), zero).is_err());
}
