//! The login-in-progress cookie: state, nonce and PKCE verifier, signed with HMAC-SHA256 under
//! a per-process random key or a configured one shared by replicas (`cookie_key_file`), plus
//! the set of states already used in this process (single use).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docker_token_core::credential_store::unix_seconds;
use serde::{Deserialize, Serialize};

/// The cookie's name.
pub(crate) const COOKIE_NAME: &str = "docker_token_oidc_login";

/// The most remembered used states (older ones expire with their cookies anyway).
const MAX_USED: usize = 100_000;

/// What a login in progress must remember.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    /// Unix seconds after which the login is void.
    pub(crate) expires: u64,
}

/// Why a callback's cookie is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CookieError {
    BadSignature,
    Expired,
}

/// Signs and checks cookies; remembers used states.
pub(crate) struct CookieSigner {
    key: hmac::Key,
    used: Mutex<HashMap<String, u64>>,
}

impl CookieSigner {
    pub(crate) fn new() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut raw = [0u8; 32];
        SystemRandom::new().fill(&mut raw)?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &raw),
            used: Mutex::new(HashMap::new()),
        })
    }

    /// A signer with a configured key (shared by replicas).
    pub(crate) fn with_key(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// `payload.signature`, both base64url.
    pub(crate) fn seal(&self, pending: &PendingLogin) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(pending).unwrap_or_default());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks the signature and expiry of a cookie value.
    pub(crate) fn open(&self, value: &str, now: SystemTime) -> Result<PendingLogin, CookieError> {
        let (payload, tag) = value.split_once('.').ok_or(CookieError::BadSignature)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CookieError::BadSignature)?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).map_err(|_| CookieError::BadSignature)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CookieError::BadSignature)?;
        let pending: PendingLogin =
            serde_json::from_slice(&bytes).map_err(|_| CookieError::BadSignature)?;
        if pending.expires <= unix_seconds(now) {
            return Err(CookieError::Expired);
        }
        Ok(pending)
    }

    /// Marks `state` used; false when it was used before (a replayed callback).
    pub(crate) fn consume(&self, state: &str, expires: u64, now: SystemTime) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = unix_seconds(now);
        if used.len() >= MAX_USED {
            used.retain(|_, exp| *exp > now);
        }
        if used.contains_key(state) {
            return false;
        }
        used.insert(state.to_owned(), expires);
        true
    }
}

/// The `Set-Cookie` value carrying a login in progress.
pub(crate) fn set_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value removing it.
pub(crate) fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

/// Our cookie's value from `Cookie:` headers.
pub(crate) fn find_cookie<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(expires: u64) -> PendingLogin {
        PendingLogin {
            state: "st".to_owned(),
            nonce: "no".to_owned(),
            verifier: "ve".to_owned(),
            expires,
        }
    }

    #[test]
    fn seal_open_and_tamper() {
        let s = CookieSigner::new().unwrap();
        let now = SystemTime::now();
        let sealed = s.seal(&pending(unix_seconds(now) + 60));
        let back = s.open(&sealed, now).unwrap();
        assert_eq!((back.state.as_str(), back.nonce.as_str()), ("st", "no"));
        // another process (key) cannot open it
        let other = CookieSigner::new().unwrap();
        assert_eq!(
            other.open(&sealed, now).err(),
            Some(CookieError::BadSignature)
        );
        // replicas sharing a configured key open each other's cookies
        let key = [7u8; 32];
        let (a, b) = (CookieSigner::with_key(&key), CookieSigner::with_key(&key));
        let sealed = a.seal(&pending(unix_seconds(now) + 60));
        assert_eq!(b.open(&sealed, now).unwrap().state, "st");
        assert!(
            CookieSigner::with_key(&[8u8; 32])
                .open(&sealed, now)
                .is_err()
        );
        // a changed payload fails
        let forged = s
            .seal(&pending(unix_seconds(now) + 60))
            .replacen('e', "f", 1);
        assert!(s.open(&forged, now).is_err());
        assert!(s.open("garbage", now).is_err());
        let old = s.seal(&pending(unix_seconds(now)));
        assert_eq!(s.open(&old, now).err(), Some(CookieError::Expired));
    }

    #[test]
    fn states_are_single_use_and_cookies_are_found() {
        let s = CookieSigner::new().unwrap();
        let now = SystemTime::now();
        assert!(s.consume("a", unix_seconds(now) + 60, now));
        assert!(!s.consume("a", unix_seconds(now) + 60, now));
        assert!(s.consume("b", unix_seconds(now) + 60, now));
        let header = format!("x=1; {COOKIE_NAME}=abc.def; y=2");
        assert_eq!(find_cookie([header.as_str()]), Some("abc.def"));
        assert_eq!(find_cookie(["x=1"]), None);
        let c = set_cookie("v", Duration::from_secs(600), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
