//! [`SingleFlight`]: the one lazily loaded value holder of this crate (the discovered endpoints
//! of the access-token authenticator and of the browser login, and the JWKS), and
//! [`Backoff`], which remembers a failed load for a while.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A value loaded on first use, and loaded again when a caller finds it stale; one load at a
/// time. It behaves like `tokio::sync::OnceCell::get_or_try_init` plus refreshing: callers
/// that arrive while a load runs wait for it and use its result instead of loading again. A
/// failed (or cancelled) load stores nothing, so a later call tries again.
#[derive(Debug)]
pub(crate) struct SingleFlight<T> {
    /// The value and when it was loaded. Read without waiting; written only by a load.
    current: RwLock<Option<(Arc<T>, Instant)>>,
    /// Held while a load runs.
    flight: tokio::sync::Mutex<()>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            current: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> SingleFlight<T> {
    /// The current value and when it was loaded, if any load succeeded yet.
    pub(crate) fn get(&self) -> Option<(Arc<T>, Instant)> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The value, loading it with `load` if there is none yet.
    pub(crate) async fn get_or_try_init<E, Fut>(
        &self,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_load(|_, _| false, load).await
    }

    /// The current value, unless there is none or `stale(value, loaded_at)` says to load it
    /// again: then `load` runs, in one caller at a time. A caller that waited for another's
    /// load asks `stale` again about what that load stored, and uses it when it is fresh.
    pub(crate) async fn get_or_load<E, Fut>(
        &self,
        stale: impl Fn(&Arc<T>, Instant) -> bool,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let fresh = || {
            self.get()
                .filter(|(value, at)| !stale(value, *at))
                .map(|(value, _)| value)
        };
        if let Some(value) = fresh() {
            return Ok(value);
        }
        let _one_at_a_time = self.flight.lock().await;
        if let Some(value) = fresh() {
            return Ok(value);
        }
        let value = Arc::new(load().await?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Some((value.clone(), Instant::now()));
        Ok(value)
    }
}

/// Remembers a failure for `retry_after`, so that while a peer is down every request fails at
/// once with the same error instead of queueing behind its timeout.
#[derive(Debug)]
pub(crate) struct Backoff<E> {
    retry_after: Duration,
    last_failure: Mutex<Option<(Instant, E)>>,
}

impl<E: Clone> Backoff<E> {
    /// A back-off that repeats a failure for `retry_after`.
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self {
            retry_after,
            last_failure: Mutex::new(None),
        }
    }

    fn last_failure(&self) -> MutexGuard<'_, Option<(Instant, E)>> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `attempt`, unless the last failure is younger than `retry_after`: then that
    /// failure is returned again. Remembers a failure, forgets it after a success.
    pub(crate) async fn run<T, Fut>(&self, attempt: impl FnOnce() -> Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let recent = self
            .last_failure()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.retry_after)
            .map(|(_, e)| e.clone());
        if let Some(e) = recent {
            return Err(e);
        }
        let result = attempt().await;
        *self.last_failure() = result.as_ref().err().map(|e| (Instant::now(), e.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Starts `n` callers of `call` at once and returns what each got.
    async fn concurrently<R, Fut>(n: usize, call: impl Fn() -> Fut) -> Vec<R>
    where
        R: Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(call())).collect();
        let mut out = Vec::with_capacity(n);
        for task in tasks {
            out.push(task.await.expect("the task panicked"));
        }
        out
    }

    /// A load that counts its runs, takes a moment (so that the other callers queue up
    /// behind it) and yields `value`.
    async fn counted_load(loads: Arc<AtomicUsize>, value: usize) -> Result<usize, &'static str> {
        loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(value)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_load() {
        let holder: Arc<SingleFlight<usize>> = Arc::default();
        let loads = Arc::new(AtomicUsize::new(0));
        let got = concurrently(16, || {
            let (holder, loads) = (holder.clone(), loads.clone());
            async move {
                holder
                    .get_or_try_init(|| counted_load(loads, 7))
                    .await
                    .map(|v| *v)
            }
        })
        .await;
        assert_eq!(got, vec![Ok(7); 16]);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // loaded once: never again
        let again = holder
            .get_or_try_init(|| counted_load(loads.clone(), 8))
            .await;
        assert_eq!(again.map(|v| *v), Ok(7));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_load_stores_nothing_and_is_retried() {
        let holder: SingleFlight<usize> = SingleFlight::default();
        let first = holder.get_or_try_init(|| async { Err("down") }).await;
        assert_eq!(first, Err("down"));
        assert!(holder.get().is_none(), "a failure stores nothing");
        let second = holder.get_or_try_init(|| async { Ok::<_, ()>(3) }).await;
        assert_eq!(second.map(|v| *v), Ok(3));
        assert_eq!(holder.get().map(|(v, _)| *v), Some(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_value_is_reloaded_once_for_many_callers() {
        let holder: Arc<SingleFlight<usize>> = Arc::default();
        let loads = Arc::new(AtomicUsize::new(0));
        holder
            .get_or_try_init(|| counted_load(loads.clone(), 1))
            .await
            .unwrap();
        // the JWKS `max_age` rule: whatever was loaded before `cutoff` is stale
        let cutoff = Instant::now();
        let got = concurrently(16, || {
            let (holder, loads) = (holder.clone(), loads.clone());
            async move {
                holder
                    .get_or_load(|_, at| at <= cutoff, || counted_load(loads, 2))
                    .await
                    .map(|v| *v)
            }
        })
        .await;
        assert_eq!(got, vec![Ok(2); 16]);
        assert_eq!(loads.load(Ordering::SeqCst), 2, "one load, one reload");
        // the JWKS unknown-`kid` rule: stale when it is the value the caller already tried
        let tried = holder.get().unwrap().0;
        let got = concurrently(16, || {
            let (holder, loads, tried) = (holder.clone(), loads.clone(), tried.clone());
            async move {
                holder
                    .get_or_load(|v, _| Arc::ptr_eq(v, &tried), || counted_load(loads, 3))
                    .await
                    .map(|v| *v)
            }
        })
        .await;
        assert_eq!(got, vec![Ok(3); 16]);
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn backoff_repeats_a_recent_failure_and_retries_after_it() {
        let calls = AtomicUsize::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>("down")
        };
        let long: Backoff<&str> = Backoff::new(Duration::from_secs(3600));
        assert_eq!(long.run(failing).await, Err("down"));
        assert_eq!(long.run(failing).await, Err("down"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the second call failed at once, without an attempt"
        );

        let short: Backoff<&str> = Backoff::new(Duration::from_millis(50));
        assert_eq!(short.run(failing).await, Err("down"));
        assert_eq!(
            short.run(|| async { Ok(1) }).await,
            Err("down"),
            "backed off"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            short.run(|| async { Ok(1) }).await,
            Ok(1),
            "retried after it"
        );
        assert_eq!(
            short.run(failing).await,
            Err("down"),
            "a success is forgotten"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
