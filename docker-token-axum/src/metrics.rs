//! Token-endpoint metrics, recorded through the [`metrics`](https://docs.rs/metrics) facade
//! when the `metrics` feature is on (the binary installs the exporter and serves it).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`REQUESTS_TOTAL`] | counter | `outcome` (see [`Outcome`]) | token requests answered |
//! | [`REQUEST_DURATION`] | histogram (s) | `outcome` | time from routing to the response |
//!
//! The `outcome` is one of a fixed set; nothing the client sends becomes a label. The core
//! crate's metrics (authenticators, caches, rate limiting) are listed in
//! [`docker_token_core::metrics`].

use docker_token_core::Error;
use docker_token_core::request::TokenRequest;
use docker_token_core::token::AccessEntry;

/// Counter: token requests, by `outcome`.
pub const REQUESTS_TOTAL: &str = "docker_token_requests_total";
/// Histogram (seconds): token request duration, by `outcome`.
pub const REQUEST_DURATION: &str = "docker_token_request_duration_seconds";

/// How a token request ended (the `outcome` label and the span field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// 200: every requested action of every scope granted (or no scope asked: a login).
    Granted,
    /// 200: some requested actions granted, some not.
    Partial,
    /// 200: scopes asked and nothing granted (an empty `access` list in the token).
    Denied,
    /// 401: bad credentials, or anonymous access not allowed.
    Unauthorized,
    /// 400 / 413: a malformed request.
    BadRequest,
    /// 429: failed-login rate limiting.
    RateLimited,
    /// 503: a backend is unreachable.
    Unavailable,
    /// 500: everything else.
    Error,
}

impl Outcome {
    /// The label value: `granted`, `partial`, `denied`, `unauthorized`, `bad_request`,
    /// `rate_limited`, `unavailable` or `error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Partial => "partial",
            Self::Denied => "denied",
            Self::Unauthorized => "unauthorized",
            Self::BadRequest => "bad_request",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
        }
    }

    /// The outcome of an error answer.
    #[must_use]
    pub fn from_error(e: &Error) -> Self {
        match e.status().as_u16() {
            400 | 413 => Self::BadRequest,
            401 => Self::Unauthorized,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            _ => Self::Error,
        }
    }

    /// The outcome of a token: compares what each scope asked for with what it got
    /// (`access` is in the order of `request.scopes`, one entry per scope).
    #[must_use]
    pub fn granted(request: &TokenRequest, access: &[AccessEntry]) -> Self {
        let mut any = false;
        let mut all = true;
        for (asked, got) in request.scopes.iter().zip(access) {
            any |= !got.actions.is_empty();
            all &= got.actions.len() >= asked.actions().len();
        }
        match (all, any) {
            (true, _) => Self::Granted,
            (false, true) => Self::Partial,
            (false, false) => Self::Denied,
        }
    }
}

/// Registers the descriptions (`# HELP` lines) of the adapter's and the core's metrics with
/// the installed recorder.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    ::metrics::describe_counter!(REQUESTS_TOTAL, "Token requests answered, by outcome.");
    ::metrics::describe_histogram!(
        REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "Token request duration, by outcome."
    );
    docker_token_core::metrics::describe();
}

#[cfg(feature = "metrics")]
pub(crate) fn start() -> Option<std::time::Instant> {
    Some(std::time::Instant::now())
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn start() -> Option<std::time::Instant> {
    None
}

/// Every outcome, in the order of the handle array below.
#[cfg(feature = "metrics")]
const OUTCOMES: [Outcome; 8] = [
    Outcome::Granted,
    Outcome::Partial,
    Outcome::Denied,
    Outcome::Unauthorized,
    Outcome::BadRequest,
    Outcome::RateLimited,
    Outcome::Unavailable,
    Outcome::Error,
];

/// Records one answered request. The handles are resolved from the recorder once (see
/// `docker_token_core::metrics`: install the recorder before the first request).
#[cfg(feature = "metrics")]
pub(crate) fn token_request(outcome: Outcome, started: Option<std::time::Instant>) {
    use std::sync::OnceLock;

    use ::metrics::{Counter, Histogram};
    static HANDLES: OnceLock<[(Counter, Histogram); 8]> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        OUTCOMES.map(|o| {
            (
                ::metrics::counter!(REQUESTS_TOTAL, "outcome" => o.as_str()),
                ::metrics::histogram!(REQUEST_DURATION, "outcome" => o.as_str()),
            )
        })
    });
    let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(7);
    let (counter, histogram) = &handles[i];
    counter.increment(1);
    if let Some(t) = started {
        histogram.record(t.elapsed().as_secs_f64());
    }
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn token_request(_: Outcome, _: Option<std::time::Instant>) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(scopes: &str, granted: &[&[&str]]) -> Outcome {
        let req = TokenRequest::from_query(&format!("service=r&{scopes}"), None, None).unwrap();
        let access: Vec<AccessEntry> = req
            .scopes
            .iter()
            .zip(granted)
            .map(|(s, g)| {
                AccessEntry::new(
                    s.resource_type(),
                    s.name(),
                    g.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>(),
                )
            })
            .collect();
        Outcome::granted(&req, &access)
    }

    #[test]
    fn grant_outcomes() {
        assert_eq!(outcome("", &[]), Outcome::Granted);
        assert_eq!(
            outcome("scope=repository:a:pull,push", &[&["pull", "push"]]),
            Outcome::Granted
        );
        assert_eq!(
            outcome("scope=repository:a:pull,push", &[&["pull"]]),
            Outcome::Partial
        );
        assert_eq!(
            outcome(
                "scope=repository:a:pull&scope=repository:b:pull",
                &[&["pull"], &[]]
            ),
            Outcome::Partial
        );
        assert_eq!(outcome("scope=repository:a:pull", &[&[]]), Outcome::Denied);
    }

    #[test]
    fn error_outcomes() {
        assert_eq!(
            Outcome::from_error(&Error::Unauthorized),
            Outcome::Unauthorized
        );
        assert_eq!(
            Outcome::from_error(&Error::RateLimited {
                retry_after: std::time::Duration::from_secs(1)
            }),
            Outcome::RateLimited
        );
        assert_eq!(
            Outcome::from_error(&Error::InvalidRequest("x".to_owned())),
            Outcome::BadRequest
        );
    }
}
