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
    let config = CacheConfig {
        ttl: Duration::from_millis(ttl_ms),
        max_entries,
    };
    CachedAuthenticator::new(backend.clone(), config).unwrap()
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

#[tokio::test]
async fn a_scan_of_distinct_accounts_stays_bounded_and_keeps_the_logins_in_use() {
    let b = Arc::new(AnyUser::default());
    let config = CacheConfig {
        ttl: Duration::from_secs(60),
        max_entries: 64,
    };
    let c = CachedAuthenticator::new(b.clone(), config).unwrap();
    let login = |name: &str| LoginAttempt::new(name, "pw");
    for i in 0..5_000 {
        if i % 8 == 0 {
            // an account in steady use stays cached
            c.authenticate(&login("steady")).await.unwrap();
        }
        c.authenticate(&login(&format!("u{i}"))).await.unwrap();
        assert!(c.len() <= 64, "len {} after {i}", c.len());
        assert!(c.latest.len() <= 64, "index {} after {i}", c.latest.len());
    }
    assert_eq!(
        b.calls.load(Ordering::SeqCst),
        5_001,
        "one verification per scanned account, one for the steady one"
    );
}

#[tokio::test]
async fn a_new_password_replaces_the_old_ones_entry() {
    let b = Backend::new("alice", "old");
    let c = cached(&b, 60_000, 10);
    outcome(&c, "alice", "old").await;
    b.set_password("new");
    outcome(&c, "alice", "new").await;
    assert_eq!(c.len(), 1, "the old password's entry went");
    assert_eq!(outcome(&c, "alice", "old").await, AuthnOutcome::Rejected);
    assert_eq!(b.calls(), 3);
}

/// Accepts every account whose password is "pw", counting calls. With gates, a good login
/// waits for `good` and a wrong one for `wrong` before answering.
#[derive(Default)]
struct AnyUser {
    calls: AtomicUsize,
    good_calls: AtomicUsize,
    gates: Option<(tokio::sync::Semaphore, tokio::sync::Semaphore)>,
}

#[async_trait]
impl Authenticator for AnyUser {
    fn name(&self) -> &str {
        "any"
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let good = login.password.expose() == "pw";
        if good {
            self.good_calls.fetch_add(1, Ordering::SeqCst);
        }
        if let Some((good_gate, wrong_gate)) = &self.gates {
            let gate = if good { good_gate } else { wrong_gate };
            drop(gate.acquire().await.unwrap());
        }
        Ok(if good {
            AuthnOutcome::Authenticated(Identity::new(login.account.clone()))
        } else {
            AuthnOutcome::Rejected
        })
    }
}

#[tokio::test]
async fn concurrent_identical_logins_verify_once_and_wrong_passwords_do_not_hold_them_up() {
    use tokio::sync::Semaphore;
    let b = Arc::new(AnyUser {
        gates: Some((Semaphore::new(0), Semaphore::new(0))),
        ..AnyUser::default()
    });
    let c = Arc::new(CachedAuthenticator::new(b.clone(), CacheConfig::default()).unwrap());
    let spawn = |pw: String| {
        let c = c.clone();
        tokio::spawn(async move { c.authenticate(&LoginAttempt::new("alice", pw)).await })
    };
    // a flood of wrong passwords, all stuck in the backend, some of them identical
    let wrong: Vec<_> = (0..20).map(|i| spawn(format!("w{}", i % 10))).collect();
    // then a burst of identical good logins
    let good: Vec<_> = (0..10).map(|_| spawn("pw".to_owned())).collect();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        b.good_calls.load(Ordering::SeqCst),
        1,
        "one verification for the burst"
    );
    assert_eq!(
        b.calls.load(Ordering::SeqCst),
        11,
        "each distinct wrong password is verified in parallel, identical ones wait"
    );
    b.gates.as_ref().unwrap().0.add_permits(100);
    for t in good {
        let out = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("good logins do not wait for wrong passwords")
            .unwrap()
            .unwrap();
        assert!(matches!(out, AuthnOutcome::Authenticated(ref id) if id.account == "alice"));
    }
    assert_eq!(b.good_calls.load(Ordering::SeqCst), 1);
    assert!(
        wrong.iter().all(|t| !t.is_finished()),
        "the wrong ones are still stuck"
    );
    b.gates.as_ref().unwrap().1.add_permits(100);
    for t in wrong {
        assert_eq!(t.await.unwrap().unwrap(), AuthnOutcome::Rejected);
    }
    assert_eq!(
        b.calls.load(Ordering::SeqCst),
        21,
        "identical wrong passwords are not cached"
    );
    assert!(c.is_empty(), "a wrong password dropped alice's entry");
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
