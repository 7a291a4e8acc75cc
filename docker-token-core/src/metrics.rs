//! Metric names, recorded through the [`metrics`](https://docs.rs/metrics) facade when the
//! `metrics` feature is on (otherwise nothing is recorded and the calls compile away).
//!
//! The library never installs a recorder: the binary picks an exporter (the server uses
//! `metrics-exporter-prometheus`). Label values are always from a fixed set or from the
//! configuration (backend names), never from the client: no account, scope or service
//! becomes a label, so the number of series stays bounded whatever clients send.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`AUTHN_TOTAL`] | counter | `backend`, `result` (`authenticated`, `rejected`, `not_applicable`, `error`) | answers of each authenticator of the chain |
//! | [`AUTHN_DURATION`] | histogram (s) | `backend` | time per authenticator call: LDAP search+bind, IdP introspection/JWKS, credential store lookup, bcrypt (cache hits included) |
//! | [`CREDENTIAL_CACHE_TOTAL`] | counter | `backend`, `result` (`hit`, `miss`) | [`CachedAuthenticator`](crate::CachedAuthenticator) lookups |
//! | [`REUSE_WINDOW_TOTAL`] | counter | `result` (`hit`, `miss`) | token reuse window lookups |
//! | [`RATE_LIMITED_TOTAL`] | counter | `limit` (`account_ip`, `ip`) | attempts refused by the failed-login limiter |
//! | [`FAILED_LOGINS_TOTAL`] | counter | — | failed authentications counted by the limiter |
//!
//! **Install the recorder before the first request.** To keep recording off the hot path,
//! the handles of each series are resolved from the recorder on first use and then kept
//! for the life of the process, so values recorded before a recorder is installed, and
//! after it is replaced, go to the recorder that was current at first use.

/// Counter: authenticator answers, by `backend` and `result`.
pub const AUTHN_TOTAL: &str = "docker_token_authn_total";
/// Histogram (seconds): authenticator call duration, by `backend`.
pub const AUTHN_DURATION: &str = "docker_token_authn_duration_seconds";
/// Counter: credential-cache lookups, by `backend` and `result` (`hit`, `miss`).
pub const CREDENTIAL_CACHE_TOTAL: &str = "docker_token_credential_cache_total";
/// Counter: reuse-window lookups, by `result` (`hit`, `miss`).
pub const REUSE_WINDOW_TOTAL: &str = "docker_token_reuse_window_total";
/// Counter: attempts refused by the failed-login limiter, by `limit`.
pub const RATE_LIMITED_TOTAL: &str = "docker_token_rate_limited_total";
/// Counter: failed authentications counted by the failed-login limiter.
pub const FAILED_LOGINS_TOTAL: &str = "docker_token_failed_logins_total";

/// Registers the descriptions (`# HELP` lines) of this crate's metrics with the installed
/// recorder. Call it once after installing one.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        AUTHN_TOTAL,
        "Answers of each authenticator (backend, result)."
    );
    describe_histogram!(
        AUTHN_DURATION,
        Unit::Seconds,
        "Time per authenticator call (LDAP, IdP, store, bcrypt; cache hits included)."
    );
    describe_counter!(
        CREDENTIAL_CACHE_TOTAL,
        "Credential cache lookups (backend, result=hit|miss)."
    );
    describe_counter!(
        REUSE_WINDOW_TOTAL,
        "Token reuse window lookups (result=hit|miss)."
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Token requests refused by the failed-login limiter (limit=account_ip|ip)."
    );
    describe_counter!(
        FAILED_LOGINS_TOTAL,
        "Failed authentications counted by the failed-login limiter."
    );
}

#[cfg(feature = "metrics")]
mod imp {
    //! Handles are resolved once (per backend name, or per fixed label set) and kept: a
    //! recorded value is then an atomic add, not a key built, hashed and looked up per call
    //! (which cost about 5 % of a token request's CPU time).

    use std::sync::{OnceLock, PoisonError, RwLock};
    use std::time::Duration;

    use ::metrics::{Counter, Histogram, counter, histogram};

    const AUTHN_RESULTS: [&str; 4] = ["authenticated", "rejected", "not_applicable", "error"];
    /// Backend names are configuration, but a library user could make them up at run time:
    /// beyond this many, handles are looked up per call instead of kept.
    const MAX_BACKENDS: usize = 64;

    /// The series of one backend.
    struct Backend {
        authn: [Counter; 4],
        duration: Histogram,
        cache: [Counter; 2],
    }

    impl Backend {
        fn new(name: &str) -> Self {
            Self {
                authn: AUTHN_RESULTS.map(|r| {
                    counter!(super::AUTHN_TOTAL, "backend" => name.to_owned(), "result" => r)
                }),
                duration: histogram!(super::AUTHN_DURATION, "backend" => name.to_owned()),
                cache: ["hit", "miss"].map(|r| {
                    counter!(super::CREDENTIAL_CACHE_TOTAL, "backend" => name.to_owned(), "result" => r)
                }),
            }
        }
    }

    static BACKENDS: RwLock<Vec<(Box<str>, &'static Backend)>> = RwLock::new(Vec::new());

    /// The kept handles of `name`, created on first use (bounded by [`MAX_BACKENDS`]).
    fn backend(name: &str) -> Option<&'static Backend> {
        let find = |v: &[(Box<str>, &'static Backend)]| {
            v.iter().find(|(n, _)| **n == *name).map(|(_, b)| *b)
        };
        if let Some(b) = find(&BACKENDS.read().unwrap_or_else(PoisonError::into_inner)) {
            return Some(b);
        }
        let mut all = BACKENDS.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = find(&all) {
            return Some(b);
        }
        if all.len() >= MAX_BACKENDS {
            return None;
        }
        // leaked on purpose: at most MAX_BACKENDS, alive as long as the recorder
        let b: &'static Backend = Box::leak(Box::new(Backend::new(name)));
        all.push((name.into(), b));
        Some(b)
    }

    pub(crate) fn authn(name: &str, result: &'static str, elapsed: Duration) {
        let i = AUTHN_RESULTS
            .iter()
            .position(|r| *r == result)
            .unwrap_or(AUTHN_RESULTS.len() - 1);
        match backend(name) {
            Some(b) => {
                b.authn[i].increment(1);
                b.duration.record(elapsed.as_secs_f64());
            }
            None => {
                let n = name.to_owned();
                counter!(super::AUTHN_TOTAL, "backend" => n.clone(), "result" => AUTHN_RESULTS[i])
                    .increment(1);
                histogram!(super::AUTHN_DURATION, "backend" => n).record(elapsed.as_secs_f64());
            }
        }
    }

    pub(crate) fn cache(name: &str, hit: bool) {
        let i = usize::from(!hit);
        match backend(name) {
            Some(b) => b.cache[i].increment(1),
            None => counter!(super::CREDENTIAL_CACHE_TOTAL, "backend" => name.to_owned(), "result" => ["hit", "miss"][i])
                .increment(1),
        }
    }

    pub(crate) fn reuse(hit: bool) {
        static HANDLES: OnceLock<[Counter; 2]> = OnceLock::new();
        HANDLES.get_or_init(|| {
            ["hit", "miss"].map(|r| counter!(super::REUSE_WINDOW_TOTAL, "result" => r))
        })[usize::from(!hit)]
        .increment(1);
    }

    pub(crate) fn rate_limited(limit: &'static str) {
        ::metrics::counter!(super::RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
    }

    pub(crate) fn failed_login() {
        static HANDLE: OnceLock<Counter> = OnceLock::new();
        HANDLE
            .get_or_init(|| counter!(super::FAILED_LOGINS_TOTAL))
            .increment(1);
    }

    /// A start time for [`authn`].
    pub(crate) fn start() -> Option<std::time::Instant> {
        Some(std::time::Instant::now())
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use std::time::Duration;

    #[inline(always)]
    pub(crate) fn authn(_: &str, _: &'static str, _: Duration) {}
    #[inline(always)]
    pub(crate) fn cache(_: &str, _: bool) {}
    #[inline(always)]
    pub(crate) fn reuse(_: bool) {}
    #[inline(always)]
    pub(crate) fn rate_limited(_: &'static str) {}
    #[inline(always)]
    pub(crate) fn failed_login() {}
    #[inline(always)]
    pub(crate) fn start() -> Option<std::time::Instant> {
        None
    }
}

pub(crate) use imp::{authn, cache, failed_login, rate_limited, reuse, start};
