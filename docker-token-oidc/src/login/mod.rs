//! The browser login ([`OidcLogin`]): authorization code flow with PKCE (S256), `state` and
//! `nonce`; a generated docker password shown once and kept as a bcrypt hash in a
//! [`CredentialStore`]; and [`OidcLoginAuthenticator`], which accepts those passwords.
//!
//! The handlers are framework-free: they take the request's query and headers and return an
//! [`http::Response<String>`]; `docker-token-axum` (feature `oidc`) mounts them.

mod authenticator;
mod config;
mod cookie;
mod page;
mod provider;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use docker_token_core::credential_store::unix_seconds;
use docker_token_core::{ConfigError, CredentialStore, OneLine, StoredCredential};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

pub use authenticator::OidcLoginAuthenticator;
pub use config::OidcLoginConfig;

use crate::claims::ClaimRules;
use crate::http::HttpClient;
use cookie::{CookieError, CookieSigner, PendingLogin};
use provider::{LoginProvider, ProviderError};

/// Bytes of randomness in a generated docker password (192 bits).
const PASSWORD_BYTES: usize = 24;

/// The browser login of one provider. Cheap to clone (shared state).
///
/// One docker password per user: a new login replaces the user's previous password.
#[derive(Clone)]
pub struct OidcLogin {
    inner: Arc<Inner>,
}

struct Inner {
    config: OidcLoginConfig,
    provider: LoginProvider,
    store: Arc<dyn CredentialStore>,
    signer: CookieSigner,
    rules: ClaimRules,
    start_path: String,
    callback_path: String,
    dummy_hash: String,
}

impl fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLogin")
            .field("issuer", &self.inner.config.issuer)
            .field("client_id", &self.inner.config.client_id)
            .field("start_path", &self.inner.start_path)
            .field("callback_path", &self.inner.callback_path)
            .finish_non_exhaustive()
    }
}

fn error_page(status: StatusCode, why: &str, message: &str, start: &str) -> Response<String> {
    tracing::warn!(reason = why, "OIDC login callback rejected: {message}");
    page::error(status, message, start)
}

impl OidcLogin {
    /// Builds the login without any network call. `start_path` is where the login starts
    /// (e.g. `/oidc_auth`, under the server's prefix); the callback path comes from
    /// `redirect_url`.
    pub fn new(
        config: &OidcLoginConfig,
        store: Arc<dyn CredentialStore>,
        start_path: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let secret = config.load_secret()?;
        let fail = |m: &str| ConfigError::new(m.to_owned()).at("oidc_auth");
        let http = HttpClient::new(config.http_timeout)
            .map_err(|_| fail("cannot build the HTTP client"))?;
        let signer = match config.load_cookie_key()? {
            Some(key) => CookieSigner::with_key(key.expose().as_bytes()),
            None => CookieSigner::new().map_err(|_| fail("the system RNG failed"))?,
        };
        let dummy_hash = bcrypt::hash("not a password", config.bcrypt_cost)
            .map_err(|_| fail("bcrypt failed"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                provider: LoginProvider::new(
                    http,
                    config.issuer.clone(),
                    config.client_id.clone(),
                    secret,
                    config.redirect_url.clone(),
                    config.clock_skew,
                    config.use_userinfo,
                ),
                store,
                signer,
                rules: ClaimRules {
                    user_claim: config.user_claim.clone(),
                    user_claim_fallbacks: Vec::new(),
                    label_claims: config.label_claims.clone(),
                },
                start_path: start_path.into(),
                callback_path: config.callback_path(),
                dummy_hash,
                config: config.clone(),
            }),
        })
    }

    /// Where the login starts (`GET`).
    #[must_use]
    pub fn start_path(&self) -> &str {
        &self.inner.start_path
    }

    /// The callback path (from `redirect_url`); may equal [`start_path`](Self::start_path),
    /// as in docker_auth (`/oidc_auth?code=…`).
    #[must_use]
    pub fn callback_path(&self) -> &str {
        &self.inner.callback_path
    }

    /// The sign-out path (`POST`, HTTP Basic with the docker user and password).
    #[must_use]
    pub fn sign_out_path(&self) -> String {
        format!("{}/sign_out", self.inner.start_path.trim_end_matches('/'))
    }

    /// The authenticator that accepts the generated passwords.
    #[must_use]
    pub fn authenticator(&self) -> OidcLoginAuthenticator {
        OidcLoginAuthenticator::new(self.inner.clone())
    }

    /// Whether a request to the start path is the provider's callback (it carries `code`,
    /// `state` or `error`), for servers whose callback path is the start path.
    #[must_use]
    pub fn is_callback_query(query: Option<&str>) -> bool {
        query.is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes())
                .any(|(k, _)| k == "code" || k == "state" || k == "error")
        })
    }

    /// `GET <start_path>`: redirects to the provider with `state`, `nonce` and a PKCE S256
    /// challenge, and sets the signed login cookie.
    pub async fn start(&self) -> Response<String> {
        let inner = &self.inner;
        let endpoints = match inner.provider.endpoints().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "OIDC login cannot start");
                return page::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Login unavailable",
                    "The identity provider cannot be reached; try again later.",
                );
            }
        };
        let (Ok(state), Ok(nonce), Ok(verifier)) = (
            docker_token_core::token::random_secret(16),
            docker_token_core::token::random_secret(16),
            docker_token_core::token::random_secret(32),
        ) else {
            return page::message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "RNG failure");
        };
        let challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        let Ok(mut url) = reqwest::Url::parse(&endpoints.metadata.authorization_endpoint) else {
            return page::message(
                StatusCode::BAD_GATEWAY,
                "Error",
                "bad authorization endpoint",
            );
        };
        let scopes = inner.config.effective_scopes();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &inner.config.client_id)
                .append_pair("redirect_uri", &inner.config.redirect_url)
                .append_pair("scope", &scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if scopes.iter().any(|s| s == "offline_access") {
                q.append_pair("prompt", "consent");
            }
        }
        let pending = PendingLogin {
            state,
            nonce,
            verifier,
            expires: unix_seconds(SystemTime::now() + inner.config.login_timeout),
        };
        let mut r = page::redirect(url.as_str());
        let cookie = cookie::set_cookie(
            &inner.signer.seal(&pending),
            inner.config.login_timeout,
            inner.config.secure_cookies(),
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }

    /// `GET <callback_path>?code=…&state=…`: checks the cookie, the state (single use), the
    /// code exchange (with the PKCE verifier) and the id token (signature, `iss`, `aud`,
    /// `exp`, `nonce`); then shows a new docker password once.
    pub async fn callback(&self, query: Option<&str>, headers: &HeaderMap) -> Response<String> {
        let mut r = self.callback_inner(query, headers).await;
        let clear = cookie::clear_cookie(self.inner.config.secure_cookies());
        if let Ok(v) = HeaderValue::from_str(&clear) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }

    async fn callback_inner(&self, query: Option<&str>, headers: &HeaderMap) -> Response<String> {
        let inner = &self.inner;
        let start = inner.start_path.as_str();
        let bad = StatusCode::BAD_REQUEST;
        let param = |name: &str| {
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(err) = param("error") {
            let desc = param("error_description").unwrap_or_default();
            return error_page(
                bad,
                "provider_error",
                &format!("The identity provider refused the login: {err} {desc}"),
                start,
            );
        }
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(raw) = cookie::find_cookie(cookies) else {
            return error_page(
                bad,
                "missing_cookie",
                "No login in progress in this browser (the login cookie with the PKCE verifier is missing or expired).",
                start,
            );
        };
        let now = SystemTime::now();
        let pending = match inner.signer.open(raw, now) {
            Ok(p) => p,
            Err(CookieError::Expired) => {
                return error_page(bad, "expired", "The login took too long.", start);
            }
            Err(_) => {
                return error_page(bad, "bad_cookie", "The login cookie is invalid.", start);
            }
        };
        let state = param("state").unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            state.as_bytes(),
            pending.state.as_bytes(),
        )
        .is_err()
        {
            return error_page(
                bad,
                "state_mismatch",
                "State mismatch: this answer does not belong to the login started in this browser.",
                start,
            );
        }
        if let Some(iss) = param("iss")
            && iss != inner.config.issuer
        {
            return error_page(
                bad,
                "issuer_mismatch",
                "The answer comes from another identity provider.",
                start,
            );
        }
        if !inner.signer.consume(&pending.state, pending.expires, now) {
            return error_page(bad, "replay", "This login answer was already used.", start);
        }
        let Some(code) = param("code") else {
            return error_page(
                bad,
                "no_code",
                "The answer carries no authorization code.",
                start,
            );
        };
        let exchanged = match inner
            .provider
            .exchange_code(&code, &pending.verifier, &pending.nonce)
            .await
        {
            Ok(x) => x,
            Err(e) => {
                let status = match e {
                    ProviderError::Unavailable(_) | ProviderError::Misconfigured(_) => {
                        StatusCode::BAD_GATEWAY
                    }
                    _ => bad,
                };
                let why = if e.to_string().contains("nonce") {
                    "nonce_mismatch"
                } else {
                    "exchange"
                };
                return error_page(status, why, &format!("Login failed: {e}"), start);
            }
        };
        let Some(user) = inner.rules.user(&exchanged.claims).map(str::to_owned) else {
            return error_page(
                bad,
                "no_user_claim",
                &format!(
                    "The identity provider did not send the `{}` claim.",
                    inner.config.user_claim
                ),
                start,
            );
        };
        let labels = inner.rules.labels(&exchanged.claims);
        let Ok(password) = docker_token_core::token::random_secret(PASSWORD_BYTES) else {
            return page::message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "RNG failure");
        };
        let cost = inner.config.bcrypt_cost;
        let pw = password.clone();
        let Ok(Ok(hash)) = tokio::task::spawn_blocking(move || bcrypt::hash(pw, cost)).await else {
            return page::message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "hashing failed");
        };
        let mut record = StoredCredential::new(&user, hash, now + inner.config.password_lifetime)
            .with_labels(labels)
            .with_revalidate_after(now + inner.config.revalidate_after);
        if let Some(sub) = exchanged.claims.get("sub").and_then(|v| v.as_str()) {
            record = record.with_subject(sub);
        }
        if let Some(rt) = exchanged.refresh_token {
            record = record.with_refresh_token(rt);
        }
        if let Err(e) = inner.store.put(&user, record).await {
            tracing::error!(error = %docker_token_core::display_chain(&e), "cannot store the docker password");
            return page::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Login failed",
                "The credential store is unavailable; try again later.",
            );
        }
        tracing::info!(account = %OneLine(&user), "OIDC login: docker password issued");
        page::password(
            &user,
            &password,
            inner.config.registry_url.as_deref(),
            inner.config.password_lifetime.as_secs() / 86_400,
            &self.sign_out_path(),
        )
    }

    /// `POST <start_path>/sign_out` with HTTP Basic (docker user and generated password):
    /// deletes the stored credential.
    pub async fn sign_out(&self, headers: &HeaderMap) -> Response<String> {
        let unauthorized = || {
            let mut r = page::message(
                StatusCode::UNAUTHORIZED,
                "Sign out",
                "Send the docker user name and password with HTTP Basic authentication.",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"docker-token sign-out\""),
            );
            r
        };
        let Some((user, password)) = basic_credentials(headers) else {
            return unauthorized();
        };
        let store = &self.inner.store;
        let record = match store.get(&user).await {
            Ok(Some(r)) => r,
            Ok(None) => return unauthorized(),
            Err(e) => {
                tracing::warn!(error = %docker_token_core::display_chain(&e), "sign-out: store unavailable");
                return page::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign out",
                    "The credential store is unavailable.",
                );
            }
        };
        let pw = docker_token_core::Password::new(password);
        let ok = tokio::task::spawn_blocking(move || record.verify_password(&pw))
            .await
            .unwrap_or(false);
        if !ok {
            tracing::info!(account = %OneLine(&user), "OIDC sign-out refused: wrong password");
            return unauthorized();
        }
        match store.delete(&user).await {
            Ok(_) => {
                tracing::info!(account = %OneLine(&user), "OIDC sign-out: docker password deleted");
                page::message(
                    StatusCode::OK,
                    "Signed out",
                    "The docker password no longer works.",
                )
            }
            Err(e) => {
                tracing::warn!(error = %docker_token_core::display_chain(&e), "sign-out: store unavailable");
                page::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign out",
                    "The credential store is unavailable.",
                )
            }
        }
    }
}

/// `Authorization: Basic` user and password.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_callback_detection() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cHc6eA=="),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".to_owned(), "pw:x".to_owned()))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
        assert!(OidcLogin::is_callback_query(Some("code=a&state=b")));
        assert!(OidcLogin::is_callback_query(Some("error=access_denied")));
        assert!(!OidcLogin::is_callback_query(Some("x=1")));
        assert!(!OidcLogin::is_callback_query(None));
    }
}
