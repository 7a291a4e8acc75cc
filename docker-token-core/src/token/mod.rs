//! Token minting: claims, the compact JWS, and the token endpoint's JSON response.
//!
//! A token passes registry 2.x and 3.x alike (protocol.md §3.1):
//!
//! * header `{"typ":"JWT","alg":…,"kid":…,"x5c":[…]}` — `x5c` (standard base64 DER, leaf
//!   first) whenever the key has a certificate, `kid` in the configured [`KidStyle`];
//! * claims `iss`, `sub`, `aud` (a JSON **string**), `exp`, `nbf`, `iat` (integers), `jti`
//!   (128 random bits, base64url) and `access` (always present, `[]` when empty);
//! * base64url segments without padding; ES* signatures as raw `r||s`.
//!
//! The header never changes for an issuer, so it is encoded once; each token costs one
//! claims serialization into a pre-sized buffer, one signature and a few base64 passes.

mod response;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

pub use response::{TokenResponse, rfc3339};

use crate::keys::{KeyError, KeySet, KidStyle, PrefixDigest};
use crate::scope::Scope;

/// How far `nbf` is set before `iat`, so verifiers whose clock is slightly behind (and
/// that apply no leeway of their own) accept the token at once. docker_auth uses 10 s too.
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(10);

/// Random bytes in a `jti` (128 bits → 22 base64url characters).
const JTI_BYTES: usize = 16;

/// One entry of the `access` claim: actions granted on one resource.
///
/// The scope's class (`repository(plugin)`) is dropped: registries ignore it, and a
/// `type` with the class glued on would not match (protocol.md §3.6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AccessEntry {
    /// The resource type: `repository`, `registry`, ….
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The resource name, e.g. `library/alpine`.
    pub name: String,
    /// The granted actions, e.g. `["pull", "push"]`.
    pub actions: Vec<String>,
}

impl AccessEntry {
    /// An entry from its parts.
    pub fn new(
        resource_type: impl Into<String>,
        name: impl Into<String>,
        actions: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            name: name.into(),
            actions: actions.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&Scope> for AccessEntry {
    /// The entry granting exactly the scope's actions (its class dropped).
    fn from(scope: &Scope) -> Self {
        Self::new(
            scope.resource_type(),
            scope.name(),
            scope.actions().iter().cloned(),
        )
    }
}

/// A freshly minted token. `Debug` redacts the token itself.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti` claim (for audit logs).
    pub jti: String,
    /// Its `iat` claim, as a time (whole seconds).
    pub issued_at: SystemTime,
    /// Its lifetime in seconds: `exp - iat`.
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"***")
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Mints tokens: one issuer name, one lifetime, one [`KeySet`] whose active key signs.
#[derive(Clone)]
pub struct TokenIssuer {
    issuer: String,
    expiration: Duration,
    keys: KeySet,
    kid_style: KidStyle,
    /// `b64url(header JSON)`, fixed for a key and kid style.
    header_b64: String,
    /// The active key's hash state after `header_b64 "."` (EC keys).
    header_digest: Option<PrefixDigest>,
}

/// The hash state of the signing input's fixed part, `b64(header) "."`.
fn header_digest(keys: &KeySet, header_b64: &str) -> Option<PrefixDigest> {
    let mut prefix = Vec::with_capacity(header_b64.len() + 1);
    prefix.extend_from_slice(header_b64.as_bytes());
    prefix.push(b'.');
    keys.active().prefix_digest(&prefix)
}

impl TokenIssuer {
    /// An issuer with the libtrust `kid` style (see [`Self::with_kid_style`]).
    ///
    /// `expiration` is truncated to whole seconds and raised to at least one second (an
    /// `expires_in` of 0 would mean "never expires" to containerd). Clients assume 60 s
    /// when told less, so lifetimes under a minute only cause needless 401s.
    pub fn new(issuer: impl Into<String>, expiration: Duration, keys: KeySet) -> Self {
        let expiration = Duration::from_secs(expiration.as_secs().max(1));
        let kid_style = KidStyle::default();
        let header_b64 = encode_header(&keys, kid_style);
        let header_digest = header_digest(&keys, &header_b64);
        Self {
            issuer: issuer.into(),
            expiration,
            keys,
            kid_style,
            header_b64,
            header_digest,
        }
    }

    /// Chooses the `kid` format: libtrust for registry 2.x (default) or RFC 7638 for 3.x.
    /// Tokens from keys with a certificate also carry `x5c`, which both accept.
    #[must_use]
    pub fn with_kid_style(mut self, kid_style: KidStyle) -> Self {
        self.kid_style = kid_style;
        self.header_b64 = encode_header(&self.keys, kid_style);
        self.header_digest = header_digest(&self.keys, &self.header_b64);
        self
    }

    /// The `iss` claim.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys; the active one signs.
    #[must_use]
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The token lifetime (whole seconds, at least one).
    #[must_use]
    pub fn expiration(&self) -> Duration {
        self.expiration
    }

    /// The `kid` format.
    #[must_use]
    pub fn kid_style(&self) -> KidStyle {
        self.kid_style
    }

    /// Mints a token for `subject` (empty for anonymous) and `audience` (the registry's
    /// `service`), granting `access` (possibly empty). `iat` is now, `nbf` is
    /// [`NOT_BEFORE_SKEW`] earlier, `exp` is now plus the expiration.
    pub fn issue(
        &self,
        subject: &str,
        audience: &str,
        access: &[AccessEntry],
    ) -> Result<IssuedToken, KeyError> {
        self.issue_with_lifetime(subject, audience, access, self.expiration)
    }

    /// As [`issue`](Self::issue), with `exp - iat` = `lifetime` (whole seconds, at least one)
    /// instead of the issuer's expiration: for per-rule and per-action lifetimes.
    pub fn issue_with_lifetime(
        &self,
        subject: &str,
        audience: &str,
        access: &[AccessEntry],
        lifetime: Duration,
    ) -> Result<IssuedToken, KeyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let expires_in = lifetime.as_secs().max(1);
        let jti = new_jti()?;
        let claims = Claims {
            iss: &self.issuer,
            sub: subject,
            aud: audience,
            exp: now.saturating_add(expires_in),
            nbf: now.saturating_sub(NOT_BEFORE_SKEW.as_secs()),
            iat: now,
            jti: &jti,
            access,
        };
        let mut claims_json = Vec::with_capacity(claims.size_hint());
        serde_json::to_writer(&mut claims_json, &claims).map_err(KeyError::Serialization)?;

        let key = self.keys.active();
        let capacity = self.header_b64.len()
            + 2
            + base64_len(claims_json.len())
            + base64_len(key.signature_len());
        let mut token = String::with_capacity(capacity);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims_json, &mut token);
        let signature = match &self.header_digest {
            Some(state) => {
                let claims_b64 = token.get(self.header_b64.len() + 1..).unwrap_or_default();
                key.sign_after(state, claims_b64.as_bytes())?
            }
            None => key.sign(token.as_bytes())?,
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);

        Ok(IssuedToken {
            token,
            jti,
            issued_at: UNIX_EPOCH + Duration::from_secs(now),
            expires_in,
        })
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("expiration", &self.expiration)
            .field("kid_style", &self.kid_style)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The claim set, serialized in this field order.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: &'a str,
    access: &'a [AccessEntry],
}

impl Claims<'_> {
    /// An upper-bound guess of the JSON length (escapes aside), to allocate once.
    fn size_hint(&self) -> usize {
        let access: usize = self
            .access
            .iter()
            .map(|a| {
                36 + a.resource_type.len()
                    + a.name.len()
                    + a.actions.iter().map(|x| x.len() + 3).sum::<usize>()
            })
            .sum();
        112 + self.iss.len() + self.sub.len() + self.aud.len() + self.jti.len() + access
    }
}

/// `b64url({"typ":"JWT","alg":…,"kid":…[,"x5c":[…]]})`. Every value is from a JSON-safe
/// alphabet (JOSE names, base32/base64url kids, standard base64), so no escaping is needed.
fn encode_header(keys: &KeySet, kid_style: KidStyle) -> String {
    let key = keys.active();
    let chain = key.certificate_chain_der();
    let mut json = String::with_capacity(
        64 + key.kid(kid_style).len()
            + chain.iter().map(|c| base64_len(c.len()) + 3).sum::<usize>(),
    );
    json.push_str(r#"{"typ":"JWT","alg":""#);
    json.push_str(key.algorithm().as_str());
    json.push_str(r#"","kid":""#);
    json.push_str(key.kid(kid_style));
    json.push('"');
    if !chain.is_empty() {
        json.push_str(r#","x5c":["#);
        for (i, cert) in chain.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('"');
            STANDARD.encode_string(cert, &mut json);
            json.push('"');
        }
        json.push(']');
    }
    json.push('}');
    URL_SAFE_NO_PAD.encode(json)
}

/// A fresh `jti`: 128 bits from the system CSPRNG, base64url.
fn new_jti() -> Result<String, KeyError> {
    random_secret(JTI_BYTES)
}

/// `bytes` random bytes from the system CSPRNG, base64url-encoded without padding: for
/// generated passwords and other secrets (16 bytes = 128 bits → 22 characters).
pub fn random_secret(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| KeyError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Length of unpadded base64 for `n` bytes (rounded up to the padded length).
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}
