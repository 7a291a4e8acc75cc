//! The token request model, built from GET query pairs or OAuth2 POST form pairs
//! (protocol.md §4.1, §4.2).
//!
//! An HTTP adapter hands over the raw query string (GET) or the raw form body (POST), the
//! `Authorization` header and the client's address; [`TokenRequest::from_query`] and
//! [`TokenRequest::from_form`] decode and check them and nothing else: whether the
//! credentials are good and what may be granted is the token service's business.
//!
//! Where this deliberately differs from docker_auth (docker_auth.md §2.4, §4):
//!
//! - an `account` that differs from the user in the credentials is rejected for the POST
//!   password grant too (docker_auth let `username=a&password=P&account=b` log in as `b`);
//! - an `account` without credentials is ignored: the request stays anonymous (docker_auth
//!   tried to log `account` in with an empty password);
//! - POST requests need a `grant_type`; `refresh_token` is parsed (docker_auth silently
//!   turned a refresh request into an anonymous one);
//! - an empty first `scope` value does not discard the others, and runs of spaces are fine;
//! - an `Authorization` header that is not Basic is an error, not silently anonymous.
//!
//! ```
//! use docker_token_core::request::{Credentials, TokenRequest};
//! use http::HeaderValue;
//!
//! // skopeo copy --dest-creds alice:secret …  (Basic YWxpY2U6c2VjcmV0 = alice:secret)
//! let auth = HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0");
//! let req = TokenRequest::from_query(
//!     "account=alice&scope=repository%3Ademo%2Fhello%3Apull%2Cpush&service=test-registry",
//!     Some(&auth),
//!     None,
//! )
//! .unwrap();
//! assert_eq!(req.service, "test-registry");
//! assert_eq!(req.scopes[0].to_string(), "repository:demo/hello:pull,push");
//! assert_eq!(req.login().account, "alice");
//! assert_eq!(req.login().password.expose(), "secret");
//! assert!(!format!("{req:?}").contains("secret"));
//! ```

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderValue;
use zeroize::Zeroizing;

use crate::authn::LoginAttempt;
use crate::error::Error;
use crate::scope::{Scope, clip, parse_scopes};
use crate::secret::Password;

/// Standard base64, padded or not: clients differ and padding carries no meaning here.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How much of an unsupported `grant_type` an error repeats (in characters).
const ERROR_VALUE_CHARS: usize = 64;

/// Who the client says it is.
///
/// `Debug` never shows the password (see [`Password`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: an anonymous request.
    Anonymous,
    /// A user name and a password, from `Authorization: Basic` or from the `username` and
    /// `password` fields of a POST password grant. The user name may be empty (containerd
    /// sends an empty user name with an identity token as the password); it is kept as is.
    Basic {
        /// The user name, verbatim.
        username: String,
        /// The password (or identity token), verbatim.
        password: Password,
    },
}

impl Credentials {
    /// Decodes an `Authorization: Basic base64(user:password)` header value. The scheme is
    /// matched case-insensitively, padding is optional, and the user name ends at the first
    /// `:` (the password may contain more).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for another scheme or malformed credentials. The message
    /// never repeats the header.
    pub fn from_authorization(value: &HeaderValue) -> Result<Self, Error> {
        let invalid = |what: &str| Error::InvalidRequest(format!("authorization header: {what}"));
        let text = value
            .to_str()
            .map_err(|_| invalid("not visible ASCII"))?
            .trim();
        let (scheme, encoded) = text
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((text, ""));
        // The "scheme" of a header without a space may be a bare token: never echo it.
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid(
                "unsupported authorization scheme (only Basic is accepted)",
            ));
        }
        let encoded = encoded.trim();
        if encoded.is_empty() {
            return Err(invalid("Basic credentials are empty"));
        }
        let decoded = Zeroizing::new(
            BASIC_BASE64
                .decode(encoded)
                .map_err(|_| invalid("Basic credentials are not valid base64"))?,
        );
        let decoded = std::str::from_utf8(&decoded)
            .map_err(|_| invalid("Basic credentials are not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("Basic credentials have no ':' after the user name"))?;
        if username.chars().any(char::is_control) {
            return Err(invalid("the user name contains control characters"));
        }
        Ok(Self::Basic {
            username: username.to_owned(),
            password: Password::new(password),
        })
    }

    /// The user name, or `None` when anonymous.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Basic { username, .. } => Some(username),
        }
    }

    /// Whether there are no credentials.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous)
    }
}

/// How the token is asked for.
///
/// `Debug` never shows the refresh token (see [`Password`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantType {
    /// A GET request (the docker token protocol): credentials, if any, from Basic auth.
    Get,
    /// A POST `grant_type=password`: credentials from Basic auth or the form.
    Password,
    /// A POST `grant_type=refresh_token`.
    RefreshToken {
        /// The refresh token (for docker, the stored identity token).
        refresh_token: Password,
    },
}

/// One token request, decoded and checked for shape (not for authenticity).
///
/// `Debug` never shows a password or refresh token. Built by [`TokenRequest::from_query`]
/// and [`TokenRequest::from_form`]; fields may be added in minor releases.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequest {
    /// The `service` parameter, verbatim after form-decoding (`my+service` is `my service`);
    /// `""` when absent.
    pub service: String,
    /// The requested scopes from every `scope` value, merged per resource
    /// ([`parse_scopes`]). Empty for a login.
    pub scopes: Vec<Scope>,
    /// The account the token is for: the user name in the credentials, `None` when the
    /// request is anonymous (an `account` parameter without credentials is ignored).
    pub account: Option<String>,
    /// The free-form `client_id` (`docker`, `containerd-client`, `containers/image`, …).
    pub client_id: Option<String>,
    /// Whether a refresh token is asked for: `offline_token=true` (GET) or
    /// `access_type=offline` (POST).
    pub offline_token: bool,
    /// The credentials.
    pub credentials: Credentials,
    /// The client's IP address, when the adapter knows it.
    pub client_ip: Option<IpAddr>,
    /// How the token is asked for.
    pub grant: GrantType,
}

impl TokenRequest {
    /// Builds a request from a GET query string (without the leading `?`; one is tolerated)
    /// and the `Authorization` header.
    ///
    /// Recognised parameters: `service`, `scope` (repeatable, space-separated lists too),
    /// `account`, `client_id`, `offline_token` (`true` or `1`, any case). Others are ignored;
    /// in particular credentials in the query string are never used.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for a bad `Authorization` header or a singular parameter
    /// given twice with different values, [`Error::AccountMismatch`] when `account` is not the
    /// user in the credentials, [`Error::InvalidScope`] for a malformed scope.
    pub fn from_query(
        query: &str,
        authorization: Option<&HeaderValue>,
        client_ip: Option<IpAddr>,
    ) -> Result<Self, Error> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let params = Params::parse(query.as_bytes(), Source::Query)?;
        let credentials = match authorization {
            Some(value) => Credentials::from_authorization(value)?,
            None => Credentials::Anonymous,
        };
        let offline_token = params
            .offline_token
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        Self::build(
            params,
            credentials,
            GrantType::Get,
            offline_token,
            client_ip,
        )
    }

    /// Builds a request from an OAuth2 POST form body (`application/x-www-form-urlencoded`)
    /// and the `Authorization` header.
    ///
    /// Recognised fields: `grant_type` (`password` or `refresh_token`, required), `service`,
    /// `scope` (repeatable, space-separated lists too), `account`, `client_id`,
    /// `access_type` (`offline`, any case), `username` and `password` (password grant),
    /// `refresh_token` (refresh grant). Others are ignored.
    ///
    /// For the password grant, an `Authorization: Basic` header takes precedence over the
    /// `username`/`password` fields; when both are given they must agree. For the refresh
    /// grant, credentials come only from the header (usually there are none).
    ///
    /// A recognised field whose value is not UTF-8 after percent-decoding is an error (also
    /// in GET queries); `service`, `account`, `client_id` and `username` must not contain
    /// control characters.
    ///
    /// # Errors
    ///
    /// As [`from_query`](Self::from_query), plus [`Error::UnsupportedGrantType`] for a
    /// missing (`""`) or unknown `grant_type` and [`Error::InvalidRequest`] when the grant's
    /// own fields are missing.
    pub fn from_form(
        body: &[u8],
        authorization: Option<&HeaderValue>,
        client_ip: Option<IpAddr>,
    ) -> Result<Self, Error> {
        let mut params = Params::parse(body, Source::Form)?;
        let header = authorization
            .map(Credentials::from_authorization)
            .transpose()?;
        let (grant, credentials) = match params.grant_type.as_deref().unwrap_or_default() {
            "password" => {
                let credentials = password_grant_credentials(
                    header,
                    params.username.take(),
                    params.password.take(),
                )?;
                (GrantType::Password, credentials)
            }
            "refresh_token" => {
                let refresh_token = params
                    .refresh_token
                    .take()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        Error::InvalidRequest(
                            "the refresh_token grant requires a refresh_token field".to_owned(),
                        )
                    })?;
                let credentials = header.unwrap_or(Credentials::Anonymous);
                (GrantType::RefreshToken { refresh_token }, credentials)
            }
            other => return Err(Error::UnsupportedGrantType(clip(other, ERROR_VALUE_CHARS))),
        };
        let offline_token = params
            .access_type
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("offline"));
        Self::build(params, credentials, grant, offline_token, client_ip)
    }

    /// The login attempt for the authenticators: the user name and password (both `""` when
    /// anonymous), the client IP and the service.
    #[must_use]
    pub fn login(&self) -> LoginAttempt {
        let mut login = match &self.credentials {
            Credentials::Anonymous => LoginAttempt::anonymous(),
            Credentials::Basic { username, password } => {
                LoginAttempt::new(username.clone(), password.clone())
            }
        };
        login.client_ip = self.client_ip;
        login.service.clone_from(&self.service);
        login
    }

    /// The parts GET and POST share: account check and scopes.
    fn build(
        params: Params,
        credentials: Credentials,
        grant: GrantType,
        offline_token: bool,
        client_ip: Option<IpAddr>,
    ) -> Result<Self, Error> {
        let account = match credentials.username() {
            // Anonymous: an account parameter alone proves nothing and is ignored.
            None => None,
            Some(user) => match params.account.as_deref() {
                Some(account) if !account.is_empty() && account != user => {
                    return Err(Error::AccountMismatch);
                }
                _ => Some(user.to_owned()),
            },
        };
        let scopes = parse_scopes(&params.scope)?;
        Ok(Self {
            service: params.service.unwrap_or_default(),
            scopes,
            account,
            client_id: params.client_id,
            offline_token,
            credentials,
            client_ip,
            grant,
        })
    }
}

/// The credentials of a password grant: the Basic header wins, the form fields must agree
/// with it, and without a header both form fields are needed.
fn password_grant_credentials(
    header: Option<Credentials>,
    username: Option<String>,
    password: Option<Password>,
) -> Result<Credentials, Error> {
    match (header, username, password) {
        (Some(Credentials::Basic { username, password }), form_user, form_password) => {
            if form_user.is_some_and(|u| u != username) {
                return Err(Error::AccountMismatch);
            }
            // Both values come from the same client, so a plain comparison leaks nothing.
            if form_password.is_some_and(|p| p != password) {
                return Err(Error::InvalidRequest(
                    "the password field does not match the Authorization header".to_owned(),
                ));
            }
            Ok(Credentials::Basic { username, password })
        }
        (None | Some(Credentials::Anonymous), Some(username), Some(password)) => {
            Ok(Credentials::Basic { username, password })
        }
        (None | Some(Credentials::Anonymous), None, None) => Err(Error::InvalidRequest(
            "the password grant requires credentials (username and password fields or Basic auth)"
                .to_owned(),
        )),
        (None | Some(Credentials::Anonymous), _, _) => Err(Error::InvalidRequest(
            "the password grant requires both the username and the password field".to_owned(),
        )),
    }
}

/// Where the pairs come from; each accepts its own parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Query,
    Form,
}

/// The recognised parameters, each singular one at most once.
#[derive(Debug, Default)]
struct Params {
    scope: Vec<String>,
    service: Option<String>,
    account: Option<String>,
    client_id: Option<String>,
    offline_token: Option<String>,
    access_type: Option<String>,
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<Password>,
    refresh_token: Option<Password>,
}

impl Params {
    fn parse(input: &[u8], source: Source) -> Result<Self, Error> {
        let mut p = Self::default();
        for pair in input.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
            let (key, raw_value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (
                    pair.get(..i).unwrap_or_default(),
                    pair.get(i + 1..).unwrap_or_default(),
                ),
                None => (pair, &b""[..]),
            };
            // A key that is not UTF-8 cannot be one we use.
            let Some(key) = percent_decode(key) else {
                continue;
            };
            let key = key.as_ref();
            let recognised = matches!(
                (source, key),
                (_, "scope" | "service" | "account" | "client_id")
                    | (Source::Query, "offline_token")
                    | (
                        Source::Form,
                        "access_type" | "grant_type" | "username" | "password" | "refresh_token"
                    )
            );
            if !recognised {
                // Clients send extra parameters; they carry nothing we use.
                continue;
            }
            let value = percent_decode(raw_value)
                .ok_or_else(|| {
                    Error::InvalidRequest(format!("parameter {key} is not valid UTF-8"))
                })?
                .into_owned();
            // Names end up in tokens, ACL matches and log lines: no control characters.
            if matches!(key, "service" | "account" | "client_id" | "username")
                && value.chars().any(char::is_control)
            {
                return Err(Error::InvalidRequest(format!(
                    "parameter {key} contains control characters"
                )));
            }
            match key {
                "scope" => p.scope.push(value),
                "service" => set_once(&mut p.service, "service", value)?,
                "account" => set_once(&mut p.account, "account", value)?,
                "client_id" => set_once(&mut p.client_id, "client_id", value)?,
                "offline_token" => set_once(&mut p.offline_token, "offline_token", value)?,
                "access_type" => set_once(&mut p.access_type, "access_type", value)?,
                "grant_type" => set_once(&mut p.grant_type, "grant_type", value)?,
                "username" => set_once(&mut p.username, "username", value)?,
                "password" => set_once(&mut p.password, "password", Password::new(value))?,
                "refresh_token" => {
                    set_once(&mut p.refresh_token, "refresh_token", Password::new(value))?;
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte,
/// a `%` not followed by two hex digits stays literal (as browsers and `form_urlencoded`
/// do). `None` when the bytes are not UTF-8: such values are refused instead of being
/// decoded lossily, which would let different inputs name the same account or service.
fn percent_decode(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        // nothing to decode (most keys and many values): no copy
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    fn hex(b: Option<&u8>) -> Option<u8> {
        let b = *b?;
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Stores a singular parameter; a repeat with the same value is harmless, a repeat with
/// another value is ambiguous and rejected (the message names the parameter, not the values).
fn set_once<T: PartialEq>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), Error> {
    match slot {
        Some(existing) if *existing != value => Err(Error::InvalidRequest(format!(
            "parameter {name} is given more than once with different values"
        ))),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
