//! The crate's error type and its mapping to HTTP.
//!
//! Four classes stay distinct all the way to the status code: the request is bad (400),
//! the credentials are wrong (401), a backend is unreachable (503), and everything that is
//! our (or the operator's) fault (500). Messages never contain secrets.

use std::error::Error as StdError;
use std::fmt;

use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::keys::KeyError;
use crate::scope::ScopeError;

/// A boxed error used as a `source`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while answering a token request or loading configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `scope` parameter is malformed (400).
    #[error("invalid scope")]
    InvalidScope(#[from] ScopeError),
    /// The request is malformed in another way (400). The text says what is wrong.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The `account` parameter names someone other than the user in the credentials (400).
    #[error("the account parameter does not match the user name in the credentials")]
    AccountMismatch,
    /// An OAuth2 `grant_type` this server does not implement (400).
    #[error("unsupported grant_type {0:?}")]
    UnsupportedGrantType(String),
    /// Authentication failed: unknown user, wrong password, or anonymous access not allowed (401).
    #[error("authentication failed")]
    Unauthorized,
    /// Too many failed logins for this account from this client address, or from this
    /// address (429 with `Retry-After`). The credentials were not checked.
    #[error("too many failed login attempts; retry after {} s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// When the client may try again.
        retry_after: std::time::Duration,
    },
    /// A refresh token that cannot be used: unknown, expired, revoked, malformed, issued for
    /// another service or client, or its user is gone (401, OAuth2's `invalid_grant`). The
    /// text says which, without repeating the token.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// A backend failed: unavailable (503) or misconfigured/broken (500).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Configuration could not be loaded or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A signing key or certificate could not be loaded or used.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl Error {
    /// The HTTP status this error is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidScope(_)
            | Self::InvalidRequest(_)
            | Self::AccountMismatch
            | Self::UnsupportedGrantType(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidGrant(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Backend(e) if e.kind() == BackendErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Backend(_) | Self::Config(_) | Self::Key(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The docker-style error code (`{"errors":[{"code": …}]}`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidScope(_) | Self::InvalidRequest(_) | Self::AccountMismatch => {
                "INVALID_REQUEST"
            }
            Self::UnsupportedGrantType(_) => "UNSUPPORTED",
            Self::Unauthorized | Self::InvalidGrant(_) => "UNAUTHORIZED",
            Self::RateLimited { .. } => "TOOMANYREQUESTS",
            Self::Backend(e) if e.kind() == BackendErrorKind::Unavailable => "UNAVAILABLE",
            Self::Backend(_) | Self::Config(_) | Self::Key(_) => "UNKNOWN",
        }
    }

    /// The message shown to the client. Client errors get the full chain ("invalid scope:
    /// scope \"x\": …"); server errors get a generic text, their detail goes to the log.
    #[must_use]
    pub fn public_message(&self) -> String {
        match self.status() {
            s if s.is_client_error() => display_chain(self),
            StatusCode::SERVICE_UNAVAILABLE => self.to_string(),
            _ => "internal server error".to_owned(),
        }
    }

    /// The full response: status, headers (`WWW-Authenticate: Basic realm="…"` on 401) and a
    /// docker-style JSON body `{"errors":[{"code":…,"message":…}]}`. A refused refresh token
    /// also carries OAuth2's fields (RFC 6749 §5.2), which docker's and containerd's parsers
    /// ignore: `{"errors":[…],"error":"invalid_grant","error_description":…}`.
    #[must_use]
    pub fn to_http(&self, realm: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let status = self.status();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Self::RateLimited { retry_after } = self {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(*retry_after)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            let value = format!("Basic realm=\"{}\"", quote_escape(realm));
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        let message = self.public_message();
        let body = match self {
            Self::InvalidGrant(_) => serde_json::json!({
                "errors": [{ "code": self.code(), "message": message }],
                "error": "invalid_grant",
                "error_description": message,
            }),
            _ => serde_json::json!({
                "errors": [{ "code": self.code(), "message": message }]
            }),
        };
        (status, headers, body.to_string().into_bytes())
    }
}

/// Whole seconds for `Retry-After`, rounded up (at least 1).
fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// Formats an error and all its sources as `a: b: c`.
#[must_use]
pub fn display_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

fn quote_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// What kind of failure a backend reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The backend cannot be reached or timed out (LDAP down, IdP unreachable). Answered 503.
    Unavailable,
    /// The backend is reachable but its configuration does not work (e.g. an LDAP search
    /// returned several entries, a service-account bind was refused). Answered 500.
    Misconfigured,
    /// Any other failure. Answered 500.
    Internal,
}

/// An error from an authentication or authorization backend. It is *not* a "wrong
/// password": that is an outcome ([`AuthnOutcome::Rejected`](crate::AuthnOutcome::Rejected)).
#[derive(Debug)]
pub struct BackendError {
    kind: BackendErrorKind,
    backend: String,
    message: String,
    source: Option<BoxError>,
}

impl BackendError {
    /// A backend that cannot be reached right now (answered 503).
    pub fn unavailable(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Unavailable, backend, message)
    }

    /// A backend whose configuration does not work (answered 500).
    pub fn misconfigured(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Misconfigured, backend, message)
    }

    /// Any other backend failure (answered 500).
    pub fn internal(backend: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Internal, backend, message)
    }

    /// An error of the given kind.
    pub fn new(
        kind: BackendErrorKind,
        backend: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            backend: backend.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error. It must not carry secrets in its `Display`.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    #[must_use]
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The name of the backend that failed.
    #[must_use]
    pub fn backend(&self) -> &str {
        &self.backend
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            BackendErrorKind::Unavailable => {
                write!(
                    f,
                    "backend {} is unavailable: {}",
                    self.backend, self.message
                )
            }
            _ => write!(f, "backend {}: {}", self.backend, self.message),
        }
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A configuration that cannot be used. The message names where (`acl[3].match.ip`) and
/// what is wrong; it never repeats a secret.
#[derive(Debug)]
pub struct ConfigError {
    path: Vec<String>,
    message: String,
    source: Option<BoxError>,
}

impl ConfigError {
    /// A new error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            path: Vec::new(),
            message: message.into(),
            source: None,
        }
    }

    /// Prefixes the location, outermost last: `e.at("match").at("acl[3]")` prints
    /// `acl[3].match: …`.
    #[must_use]
    pub fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The location, e.g. `acl[3].match.ip` (empty when unknown).
    #[must_use]
    pub fn location(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            if !out.is_empty() && !seg.starts_with('[') {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }

    /// The message without the location.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location();
        if loc.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{loc}: {}", self.message)
        }
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_stay_distinct() {
        assert_eq!(Error::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Error::AccountMismatch.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            Error::from(BackendError::unavailable("ldap", "connect timed out")).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Error::from(BackendError::misconfigured("ldap", "2 entries")).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn unauthorized_response_has_basic_challenge_and_docker_body() {
        let (status, headers, body) = Error::Unauthorized.to_http("my \"realm\"");
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"my \\\"realm\\\"\""
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(v["errors"][0]["message"], "authentication failed");
    }

    #[test]
    fn rate_limited_is_429_with_retry_after_in_whole_seconds() {
        let e = Error::RateLimited {
            retry_after: std::time::Duration::from_millis(5_200),
        };
        let (status, headers, body) = e.to_http("r");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "6");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
        assert_eq!(
            v["errors"][0]["message"],
            "too many failed login attempts; retry after 6 s"
        );
    }

    #[test]
    fn invalid_grant_is_401_with_the_oauth2_error_field() {
        let (status, headers, body) =
            Error::InvalidGrant("the refresh token is unknown, expired or revoked").to_http("r");
        assert_eq!(status, 401);
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(
            v["errors"][0]["message"],
            "invalid_grant: the refresh token is unknown, expired or revoked"
        );
        assert_eq!(v["error"], "invalid_grant");
    }

    #[test]
    fn server_errors_hide_details() {
        let e = Error::from(BackendError::internal("x", "db password=hunter2 rejected"));
        assert_eq!(e.public_message(), "internal server error");
    }

    #[test]
    fn config_error_location() {
        let e = ConfigError::new("bad CIDR")
            .at("ip")
            .at("match")
            .at("[3]")
            .at("acl");
        assert_eq!(e.to_string(), "acl[3].match.ip: bad CIDR");
    }
}
