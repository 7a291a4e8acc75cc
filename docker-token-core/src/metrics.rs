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
    use std::time::Duration;

    pub(crate) fn authn(backend: &str, result: &'static str, elapsed: Duration) {
        let backend = backend.to_owned();
        ::metrics::counter!(super::AUTHN_TOTAL, "backend" => backend.clone(), "result" => result)
            .increment(1);
        ::metrics::histogram!(super::AUTHN_DURATION, "backend" => backend)
            .record(elapsed.as_secs_f64());
    }

    pub(crate) fn cache(backend: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        ::metrics::counter!(super::CREDENTIAL_CACHE_TOTAL, "backend" => backend.to_owned(), "result" => result)
            .increment(1);
    }

    pub(crate) fn reuse(hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        ::metrics::counter!(super::REUSE_WINDOW_TOTAL, "result" => result).increment(1);
    }

    pub(crate) fn rate_limited(limit: &'static str) {
        ::metrics::counter!(super::RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
    }

    pub(crate) fn failed_login() {
        ::metrics::counter!(super::FAILED_LOGINS_TOTAL).increment(1);
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
