//! [`TtlCache`]: the one bounded cache of the workspace.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a value computed by [`TtlCache::get_or_try_insert_with`] is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Until this long from now (a zero duration is the same as [`Keep::Not`]).
    For(Duration),
    /// Until it is evicted or removed.
    Forever,
    /// Not at all: the caller gets the value, the cache stays as it was, and the next caller
    /// waiting for the same key computes again.
    Not,
}

/// A bounded, concurrent map whose entries each carry their own expiry: the one cache of the
/// workspace (credential cache, token reuse window, compiled ACL regexes, OIDC check results).
///
/// * **Bounded:** at most about `max_entries` entries (the bound is split over a few
///   shards, each rounded up). When full, [quick_cache](https://docs.rs/quick_cache)'s
///   eviction (S3-FIFO-like: entries seen once leave first) picks the victim in O(1), so a
///   scan of new keys cannot flush the entries in steady use.
/// * **Per-entry expiry:** each insert says how long its entry lives, or that it lives until
///   evicted; an expired entry is never returned and is dropped when met.
/// * **Negative entries:** a value is whatever the caller stores, so a failure (a rejected
///   token, a regex that does not compile) is cached like a success, with its own lifetime.
/// * **Coalesced misses:** [`get_or_try_insert_with`](Self::get_or_try_insert_with) runs one
///   computation per key at a time; concurrent callers for *that* key wait for its result,
///   callers for other keys do not wait.
///
/// A hit clones the value: store an `Arc` when that is more than a few words.
///
/// ```
/// use std::time::Duration;
/// use docker_token_core::cache::{Keep, TtlCache};
///
/// let cache: TtlCache<String, u32> = TtlCache::new(100);
/// cache.insert("a".to_owned(), 1, Duration::from_secs(60));
/// cache.insert("gone".to_owned(), 2, Duration::ZERO); // expires at once: not stored
/// cache.insert_unexpiring("kept".to_owned(), 3);
/// assert_eq!(cache.get("a"), Some(1));
/// assert_eq!(cache.get("gone"), None);
/// assert_eq!(cache.get("kept"), Some(3));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let v = cache
///     .get_or_try_insert_with("b", || async { Ok::<_, ()>((7, Keep::For(Duration::from_secs(5)))) })
///     .await;
/// assert_eq!(v, Ok(7));
/// assert_eq!(cache.get("b"), Some(7));
/// # });
/// ```
pub struct TtlCache<K, V> {
    inner: quick_cache::sync::Cache<K, Slot<V>>,
    max_entries: usize,
}

#[derive(Clone)]
struct Slot<V> {
    value: V,
    /// `None`: does not expire.
    expires: Option<Instant>,
}

impl<V> Slot<V> {
    fn is_fresh(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

impl<K, V> fmt::Debug for TtlCache<K, V>
where
    K: Eq + Hash,
    V: Clone,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlCache")
            .field("len", &self.len())
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl<K, V> TtlCache<K, V>
where
    K: Eq + Hash,
    V: Clone,
{
    /// An empty cache holding at most about `max_entries` entries (`0` holds nothing).
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        Self {
            // quick_cache wants a capacity of at least 1; `max_entries == 0` is checked on insert
            inner: quick_cache::sync::Cache::new(max_entries.max(1)),
            max_entries,
        }
    }

    /// The bound given to [`new`](Self::new).
    #[must_use]
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The value for `key`, if there is one and it has not expired.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.inner.get(key)?;
        match slot.expires {
            None => Some(slot.value),
            Some(_) => self.fresh(key, slot, Instant::now()),
        }
    }

    /// The value for `key` if it is still live at `now` (an expired one is dropped).
    pub fn get_at<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.inner.get(key)?;
        self.fresh(key, slot, now)
    }

    fn fresh<Q>(&self, key: &Q, slot: Slot<V>, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if slot.is_fresh(now) {
            return Some(slot.value);
        }
        self.inner.remove_if(key, |s| !s.is_fresh(now));
        None
    }

    /// Stores `value` for `ttl` from now, replacing any entry for `key` (a zero `ttl` stores
    /// nothing and leaves any entry as it is).
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        self.insert_at(key, value, ttl, Instant::now());
    }

    /// Stores `value` until `now + ttl` (a zero `ttl` stores nothing).
    pub fn insert_at(&self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        // a lifetime too long for `Instant` is no expiry
        self.put(key, value, now.checked_add(ttl));
    }

    /// Stores `value` without an expiry: it leaves only when evicted or removed.
    pub fn insert_unexpiring(&self, key: K, value: V) {
        self.put(key, value, None);
    }

    fn put(&self, key: K, value: V, expires: Option<Instant>) {
        if self.max_entries > 0 {
            self.inner.insert(key, Slot { value, expires });
        }
    }

    /// Removes the entry for `key`, returning its value if it had not expired.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (_, slot) = self.inner.remove(key)?;
        slot.is_fresh(Instant::now()).then_some(slot.value)
    }

    /// The live value for `key`, or the one `compute` produces, computed **once** for
    /// concurrent callers with an equal key: while one computes, the others for that key wait
    /// and then get its value (callers for other keys never wait). `compute` returns the value
    /// and how long to [`Keep`] it; with [`Keep::Not`], or on an error, nothing is stored and
    /// the next waiter computes in turn. An error goes to its own caller only. If the
    /// computing caller is cancelled, the next waiter computes.
    pub async fn get_or_try_insert_with<Q, E, F, Fut>(&self, key: &Q, compute: F) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Keep), E>>,
    {
        let mut guard = None;
        // At most two rounds: an expired entry is dropped once; then either a fresh entry
        // (inserted by a concurrent caller meanwhile) is taken or this caller computes.
        for _ in 0..2 {
            match self.inner.get_value_or_guard_async(key).await {
                Ok(slot) => {
                    let now = Instant::now();
                    if slot.is_fresh(now) {
                        return Ok(slot.value);
                    }
                    self.inner.remove_if(key, |s| !s.is_fresh(now));
                }
                Err(g) => {
                    guard = Some(g);
                    break;
                }
            }
        }
        let (value, keep) = compute().await?;
        let expires = match keep {
            Keep::For(ttl) if !ttl.is_zero() => Some(Instant::now().checked_add(ttl)),
            Keep::Forever => Some(None),
            Keep::For(_) | Keep::Not => None,
        };
        if let (Some(expires), true) = (expires, self.max_entries > 0) {
            let slot = Slot {
                value: value.clone(),
                expires,
            };
            match guard {
                // `Err` only when the placeholder was removed meanwhile (a `remove` or an
                // `insert` of the key): the newer state wins
                Some(g) => drop(g.insert(slot)),
                None => self.inner.insert(key.to_owned(), slot),
            }
        }
        Ok(value)
    }

    /// How many entries are held (expired ones count until they are met or evicted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.inner.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn entries_expire_one_by_one() {
        let c: TtlCache<u32, &str> = TtlCache::new(10);
        let now = Instant::now();
        c.insert_at(1, "short", Duration::from_secs(1), now);
        c.insert_at(2, "long", Duration::from_secs(10), now);
        c.insert_unexpiring(3, "forever");
        c.insert_at(4, "never stored", Duration::ZERO, now);
        let later = now + Duration::from_secs(5);
        assert_eq!(c.get_at(&1, later), None);
        assert_eq!(c.get_at(&2, later), Some("long"));
        assert_eq!(
            c.get_at(&3, later + Duration::from_secs(1_000_000)),
            Some("forever")
        );
        assert_eq!(c.get_at(&4, now), None);
        assert_eq!(c.len(), 2, "the expired entry was dropped when met");
        assert_eq!(c.remove(&2), Some("long"));
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&3), Some("forever"));
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn a_scan_of_distinct_keys_stays_bounded_and_keeps_the_entries_in_use() {
        let c: TtlCache<String, u32> = TtlCache::new(100);
        for hot in 0..10 {
            c.insert(format!("hot{hot}"), hot, Duration::from_secs(60));
        }
        for i in 0..20_000 {
            if i % 10 == 0 {
                for hot in 0..10 {
                    assert_eq!(
                        c.get(&format!("hot{hot}")),
                        Some(hot),
                        "hot {hot} lost at {i}"
                    );
                }
            }
            c.insert(format!("scan{i}"), i, Duration::from_secs(60));
            assert!(c.len() <= 100, "len {} after {i}", c.len());
        }
        assert_eq!(c.get("scan19999"), Some(19_999), "the newest entry is held");
        let zero: TtlCache<u32, u32> = TtlCache::new(0);
        zero.insert(1, 1, Duration::from_secs(1));
        zero.insert_unexpiring(2, 2);
        assert!(zero.is_empty());
        assert_eq!(
            format!("{zero:?}"),
            "TtlCache { len: 0, max_entries: 0, .. }"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_for_one_key_are_computed_once() {
        let c: Arc<TtlCache<String, usize>> = Arc::new(TtlCache::new(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (c, calls) = (c.clone(), calls.clone());
                tokio::spawn(async move {
                    c.get_or_try_insert_with("k", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>((42, Keep::For(Duration::from_secs(60))))
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(42));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.get("k"), Some(42));
    }

    #[tokio::test]
    async fn only_equal_keys_wait_for_each_other() {
        let c: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(10));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let c = c.clone();
            tokio::spawn(async move {
                c.get_or_try_insert_with("slow", || async {
                    wait.await.ok();
                    Ok::<_, ()>((1, Keep::Forever))
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        // another key completes while "slow" is still being computed
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            c.get_or_try_insert_with("other", || async { Ok::<_, ()>((2, Keep::Forever)) }),
        )
        .await;
        assert_eq!(other, Ok(Ok(2)));
        assert!(!slow.is_finished());
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), Ok(1));
        assert_eq!(c.get("slow"), Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_not_kept_and_errors_are_computed_again_by_the_next_caller() {
        let c: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (c, calls) = (c.clone(), calls.clone());
                tokio::spawn(async move {
                    c.get_or_try_insert_with("k", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        if i % 2 == 0 {
                            Err("down")
                        } else {
                            Ok((7, Keep::Not))
                        }
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r, if i % 2 == 0 { Err("down") } else { Ok(7) });
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4, "nothing was stored");
        assert!(c.is_empty());
        let v = c
            .get_or_try_insert_with("k", || async {
                Ok::<_, ()>((8, Keep::For(Duration::ZERO)))
            })
            .await;
        assert_eq!(v, Ok(8));
        assert!(c.is_empty(), "a zero lifetime is not kept");
    }

    #[tokio::test]
    async fn an_expired_entry_is_computed_again() {
        let c: TtlCache<String, u32> = TtlCache::new(10);
        c.insert_at(
            "k".to_owned(),
            5,
            Duration::from_millis(1),
            Instant::now() - Duration::from_secs(1),
        );
        let v = c
            .get_or_try_insert_with("k", || async {
                Ok::<_, ()>((6, Keep::For(Duration::from_secs(9))))
            })
            .await;
        assert_eq!(v, Ok(6));
        assert_eq!(c.get("k"), Some(6));
        let v = c
            .get_or_try_insert_with("k", || async { Ok::<_, ()>((0, Keep::Forever)) })
            .await;
        assert_eq!(v, Ok(6), "a live entry is a hit");
    }

    #[tokio::test]
    async fn a_cancelled_computation_lets_the_next_caller_compute() {
        let c: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(10));
        let stuck = {
            let c = c.clone();
            tokio::spawn(async move {
                c.get_or_try_insert_with("k", std::future::pending::<Result<(u32, Keep), ()>>)
                    .await
            })
        };
        tokio::task::yield_now().await;
        stuck.abort();
        assert!(stuck.await.unwrap_err().is_cancelled());
        let v = tokio::time::timeout(
            Duration::from_secs(5),
            c.get_or_try_insert_with("k", || async { Ok::<_, ()>((3, Keep::Forever)) }),
        )
        .await;
        assert_eq!(v, Ok(Ok(3)));
    }
}
