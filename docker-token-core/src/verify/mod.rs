//! The resource-server side: verifying registry tokens and answering with the registry's
//! challenge.
//!
//! * [`TokenVerifier`] — checks a token the way registry 2.8 and 3.x do (key selection by
//!   `x5c` leaf or `kid`, signature with an algorithm allow-list, `iss`, `aud`, `exp`,
//!   `nbf`, `iat` with leeway) and returns a [`VerifiedToken`] with typed claims. Keys come
//!   from our own [`KeySet`], a JWKS document, or a PEM certificate bundle (the registry's
//!   `rootcertbundle`), and are parsed once when the verifier is built.
//! * [`Access`] — the granted access and the registry's matching rule (`*` grants every
//!   action).
//! * [`Challenge`] — the exact `WWW-Authenticate: Bearer realm=…,service=…,scope=…,error=…`
//!   value for a 401.
//!
//! No HTTP framework and no I/O at verification time; see `docker-token-axum` for an axum
//! layer built on these.

mod access;
mod chain;
mod challenge;
mod error;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub use access::Access;
pub use challenge::{Challenge, ChallengeError};
pub use error::VerifyError;

use crate::keys::material::SignatureFailure;
use crate::keys::pem::parse_certificate;
use crate::keys::public::PublicKeyInfo;
use crate::keys::{Algorithm, BASE64URL_LENIENT, KeyError, KeySet, VerifyingKey};
use crate::token::AccessEntry;

/// The leeway the registry applies to `exp` and `nbf` (protocol.md §3.5).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Tokens longer than this are rejected before any decoding (64 KiB; an `x5c` chain of
/// two RSA-4096 certificates is about 4 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// A trusted key, with what is needed to select it by `x5c` without parsing certificates.
#[derive(Clone)]
struct TrustedKey {
    key: VerifyingKey,
    /// Validity of the key's own certificate, in Unix seconds, if it has one.
    certificate_validity: Option<(i64, i64)>,
}

struct Inner {
    issuer: String,
    service: String,
    leeway: i64,
    algorithms: Vec<Algorithm>,
    keys: Vec<TrustedKey>,
    /// libtrust fingerprint, RFC 7638 thumbprint and JWKS `kid` → index into `keys`.
    by_kid: HashMap<String, usize>,
    /// Standard base64 of a trusted key's certificate (the `x5c` leaf as sent) → index.
    by_certificate: HashMap<String, usize>,
    /// The trusted keys' certificates (DER): the CA certificates among them are the
    /// anchors of `x5c` chains whose leaf key is not trusted itself.
    anchors: Vec<Vec<u8>>,
}

/// Verifies registry tokens: synchronous, no I/O, keys parsed once at build time.
///
/// Built with [`TokenVerifier::builder`] from the expected issuer (the registry's
/// `auth.token.issuer`), the expected audience (its `service`) and the trusted keys.
/// Cloning is cheap (the keys are shared).
///
/// What [`Self::verify`] checks, in this order:
///
/// 1. the token is a compact JWS of at most [`MAX_TOKEN_LEN`] bytes;
/// 2. `alg` is ES256, ES384, RS256, RS384 or RS512 **and** in the allow-list — `none`,
///    `HS*` (no "public key as HMAC secret"), `PS*`, `EdDSA` are always rejected;
/// 3. the key: with an `x5c` header, the key of its leaf certificate must be a trusted
///    key, or the leaf must chain (through the other `x5c` entries) to a CA certificate
///    among the trusted ones, every certificate inside its validity period; otherwise
///    a `jwk` header must hold a trusted key (and a `kid` member in it must be that key's
///    id); otherwise `kid` must be the libtrust fingerprint, the RFC 7638 thumbprint or
///    the JWKS `kid` of a trusted key (protocol.md §3.2). A `crit` header is refused;
/// 4. the signature, with the key parsed once, for an algorithm that fits it (ES256 ⇔
///    P-256, ES384 ⇔ P-384, RS* ⇔ RSA);
/// 5. `iss` equals the issuer, `aud` (a string or an array of strings) contains the
///    service, `exp` is present and `now ≤ exp + leeway`, `nbf` (if present) `≤ now +
///    leeway`, `iat` (if present) `≤ now + leeway`; times are integers;
/// 6. `access` (absent or `null` means none) is a list of `{"type","name","actions"}`.
///
/// A token whose `x5c` leaf is a trusted key costs a hash lookup and one signature check;
/// a leaf issued by a trusted CA costs certificate parsing and signature checks per
/// request (the registry does the same).
///
/// ```
/// use std::time::Duration;
/// use docker_token_core::keys::{Algorithm, KeySet, SigningKey};
/// use docker_token_core::token::{AccessEntry, TokenIssuer};
/// use docker_token_core::verify::TokenVerifier;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let generated = SigningKey::generate(Algorithm::ES256, "token signer")?;
/// let issuer = TokenIssuer::new("auth", Duration::from_secs(300), KeySet::new(generated.key));
/// let token = issuer
///     .issue("alice", "my-registry", &[AccessEntry::new("repository", "alice/app", ["pull"])])?
///     .token;
///
/// // In the registry: built once, at start-up (here from the issuer's keys; also from a
/// // JWKS document or the rootcertbundle PEM).
/// let verifier = TokenVerifier::builder("auth", "my-registry")
///     .key_set(issuer.keys())
///     .build()?;
///
/// let verified = verifier.verify(&token)?;
/// assert_eq!(verified.subject(), "alice");
/// assert!(verified.allows("repository", "alice/app", "pull"));
/// assert!(!verified.allows("repository", "alice/app", "push"));
/// assert!(!verified.allows("repository", "bob/app", "pull"));
///
/// // A token for another service is rejected.
/// let other = TokenVerifier::builder("auth", "other-registry").key_set(issuer.keys()).build()?;
/// assert!(other.verify(&token).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

impl TokenVerifier {
    /// Starts a verifier for tokens from `issuer` (`iss`) meant for `service` (`aud`).
    pub fn builder(issuer: impl Into<String>, service: impl Into<String>) -> TokenVerifierBuilder {
        TokenVerifierBuilder {
            issuer: issuer.into(),
            service: service.into(),
            leeway: DEFAULT_LEEWAY,
            algorithms: Algorithm::ALL.to_vec(),
            keys: Vec::new(),
        }
    }

    /// The expected `iss`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The expected audience (the registry's `service`).
    #[must_use]
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The leeway applied to `exp`, `nbf` and `iat`.
    #[must_use]
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway.unsigned_abs())
    }

    /// The accepted algorithms.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.algorithms
    }

    /// The trusted keys (one per distinct public key).
    pub fn keys(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.inner.keys.iter().map(|k| &k.key)
    }

    /// Verifies `token` (the compact JWS after `Bearer `) at the current time.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        self.verify_at(token, SystemTime::now())
    }

    /// Verifies `token` as of `now` (for tests and replays).
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<VerifiedToken, VerifyError> {
        let inner = &*self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed("longer than 64 KiB"));
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(VerifyError::Malformed("not three dot-separated segments"));
        };
        let now = unix_seconds(now);

        let header_json = BASE64URL_LENIENT
            .decode(header_b64)
            .map_err(|_| VerifyError::Malformed("the header is not base64url"))?;
        let header: Header = json_object(&header_json).ok_or(VerifyError::Malformed(
            "the header is not a JWS header object",
        ))?;
        if header.crit.is_some() {
            return Err(VerifyError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        let algorithm = Algorithm::from_jose(&header.alg)
            .ok_or_else(|| VerifyError::unsupported_algorithm(&header.alg))?;
        if !inner.algorithms.contains(&algorithm) {
            return Err(VerifyError::AlgorithmNotAllowed(algorithm));
        }
        let key = self.select_key(&header, now)?;

        let signature = BASE64URL_LENIENT
            .decode(signature_b64)
            .map_err(|_| VerifyError::Malformed("the signature is not base64url"))?;
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        key.verifier
            .verify(algorithm, signing_input.as_bytes(), &signature)
            .map_err(|failure| match failure {
                SignatureFailure::AlgorithmMismatch => VerifyError::AlgorithmMismatch(algorithm),
                SignatureFailure::Invalid => VerifyError::BadSignature,
            })?;

        let claims_json = BASE64URL_LENIENT
            .decode(claims_b64)
            .map_err(|_| VerifyError::Malformed("the claims are not base64url"))?;
        let claims: Claims = json_object(&claims_json).ok_or(VerifyError::MalformedClaims(
            "not an object with the registry's claim types",
        ))?;
        self.check_claims(claims, now, algorithm, &key)
    }

    /// The key the header names (protocol.md §3.2: `x5c` first, then `kid`): a trusted
    /// key, or the leaf key of an `x5c` chain that ends at a trusted CA certificate.
    fn select_key(&self, header: &Header, now: i64) -> Result<Cow<'_, VerifyingKey>, VerifyError> {
        let inner = &*self.inner;
        let Some(x5c) = &header.x5c else {
            if let Some(jwk) = &header.jwk {
                return self.select_by_jwk(jwk).map(Cow::Borrowed);
            }
            return header
                .kid
                .as_deref()
                .and_then(|kid| inner.by_kid.get(kid))
                .map(|&i| Cow::Borrowed(&inner.keys[i].key))
                .ok_or(VerifyError::UnknownKey);
        };
        let leaf = x5c.first().ok_or(VerifyError::UnknownKey)?;
        // The common case: the certificate of a trusted key, byte for byte.
        if let Some(&i) = inner.by_certificate.get(leaf.as_str()) {
            let trusted = &inner.keys[i];
            if let Some((not_before, not_after)) = trusted.certificate_validity
                && !(not_before..=not_after).contains(&now)
            {
                return Err(VerifyError::CertificateNotValid);
            }
            return Ok(Cow::Borrowed(&trusted.key));
        }
        let chain = chain::decode_x5c(x5c)?;
        let cert = parse_certificate(&chain[0]).map_err(|_| VerifyError::UnknownKey)?;
        let (not_before, not_after) = validity_of(&cert);
        let public = PublicKeyInfo::from_spki_der(cert.public_key().raw)
            .map_err(|_| VerifyError::UnknownKey)?;
        // Another certificate (e.g. re-issued) for a trusted key.
        if let Some(trusted) = inner
            .keys
            .iter()
            .find(|k| k.key.public.material == public.material)
        {
            if !(not_before..=not_after).contains(&now) {
                return Err(VerifyError::CertificateNotValid);
            }
            return Ok(Cow::Borrowed(&trusted.key));
        }
        // A leaf issued by a trusted CA: its key is parsed for this token only.
        chain::verify_path(&chain, &inner.anchors, now)?;
        VerifyingKey::new(public, Vec::new())
            .map(Cow::Owned)
            .map_err(|_| VerifyError::UnknownKey)
    }

    /// A `jwk` header (without `x5c`): the embedded key must be a trusted key, and a `kid`
    /// member in it must be one of that key's ids. (Registry 2.8 trusts the key's libtrust
    /// fingerprint, 3.x the `kid` member; this accepts what both agree on.)
    fn select_by_jwk(&self, jwk: &serde_json::Value) -> Result<&VerifyingKey, VerifyError> {
        let inner = &*self.inner;
        let embedded = VerifyingKey::from_jwk(jwk).map_err(|_| VerifyError::UnknownKey)?;
        let index = inner
            .keys
            .iter()
            .position(|k| k.key.public.material == embedded.public.material)
            .ok_or(VerifyError::UnknownKey)?;
        match jwk.get("kid") {
            None => {}
            Some(serde_json::Value::String(kid)) if inner.by_kid.get(kid) == Some(&index) => {}
            Some(_) => return Err(VerifyError::UnknownKey),
        }
        Ok(&inner.keys[index].key)
    }

    fn check_claims(
        &self,
        claims: Claims,
        now: i64,
        algorithm: Algorithm,
        key: &VerifyingKey,
    ) -> Result<VerifiedToken, VerifyError> {
        let inner = &*self.inner;
        let issuer = claims.iss.ok_or(VerifyError::WrongIssuer)?;
        if issuer != inner.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        let audience = match claims.aud {
            Some(Audience::One(aud)) => vec![aud],
            Some(Audience::Many(list)) => list,
            None => Vec::new(),
        };
        if !audience.contains(&inner.service) {
            return Err(VerifyError::WrongAudience);
        }
        let exp = claims
            .exp
            .ok_or(VerifyError::MalformedClaims("`exp` is missing"))?;
        if now > exp.saturating_add(inner.leeway) {
            return Err(VerifyError::Expired);
        }
        if let Some(nbf) = claims.nbf
            && now < nbf.saturating_sub(inner.leeway)
        {
            return Err(VerifyError::NotYetValid);
        }
        if let Some(iat) = claims.iat
            && now < iat.saturating_sub(inner.leeway)
        {
            return Err(VerifyError::IssuedInFuture);
        }
        let access = match claims.access {
            None | Some(serde_json::Value::Null) => Access::default(),
            Some(value) => Access::new(
                serde_json::from_value::<Vec<RawAccessEntry>>(value)
                    .map_err(|_| VerifyError::MalformedAccess)?
                    .into_iter()
                    .map(|e| AccessEntry {
                        resource_type: e.resource_type,
                        name: e.name,
                        actions: e.actions.unwrap_or_default(),
                    }),
            ),
        };
        Ok(VerifiedToken {
            subject: claims.sub.unwrap_or_default(),
            issuer,
            audience,
            expires_at: system_time(exp),
            not_before: claims.nbf.map(system_time),
            issued_at: claims.iat.map(system_time),
            jti: claims.jti,
            access,
            algorithm,
            key_id: key.rfc7638_kid().to_owned(),
        })
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.inner.issuer)
            .field("service", &self.inner.service)
            .field("leeway", &self.leeway())
            .field("algorithms", &self.inner.algorithms)
            .field("keys", &self.inner.keys.len())
            .finish()
    }
}

/// Collects the trusted keys and options of a [`TokenVerifier`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TokenVerifierBuilder {
    issuer: String,
    service: String,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    /// Keys with the extra `kid`s they are trusted under (from a JWKS).
    keys: Vec<(VerifyingKey, Vec<String>)>,
}

impl TokenVerifierBuilder {
    /// Trusts one key (under its libtrust and RFC 7638 ids, and its certificate).
    pub fn key(mut self, key: VerifyingKey) -> Self {
        self.add(key, None);
        self
    }

    /// Trusts every key of `set`: the active signing key and the verify-only keys.
    pub fn key_set(mut self, set: &KeySet) -> Self {
        for key in set.keys() {
            self.add(key.clone(), None);
        }
        self
    }

    /// Trusts the keys of a JWKS document (`{"keys":[…]}`, e.g. our
    /// `/.well-known/jwks.json` or a registry 3.x `jwks` file), each also under its
    /// literal `kid`. Keys with `use` other than `sig` and keys of unsupported types
    /// (`oct`, `OKP`, P-521) are skipped with a warning; a malformed key, or a document
    /// without any usable key, is an error.
    pub fn jwks(self, document: &[u8]) -> Result<Self, KeyError> {
        let value: serde_json::Value = serde_json::from_slice(document)
            .map_err(|e| KeyError::Jwks(format!("not JSON: {e}")))?;
        self.jwks_json(&value)
    }

    /// [`Self::jwks`] for an already parsed document.
    pub fn jwks_json(mut self, document: &serde_json::Value) -> Result<Self, KeyError> {
        let keys = document
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| KeyError::Jwks("expected an object with a `keys` array".to_owned()))?;
        let mut usable = 0;
        for (index, jwk) in keys.iter().enumerate() {
            if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
                tracing::warn!(index, "JWKS key skipped: its `use` is not `sig`");
                continue;
            }
            match VerifyingKey::from_jwk(jwk) {
                Ok(key) => {
                    let kid = match jwk.get("kid") {
                        None => None,
                        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
                        Some(_) => {
                            return Err(KeyError::Jwks(format!(
                                "key {index}: `kid` is not a string"
                            )));
                        }
                    };
                    self.add(key, kid);
                    usable += 1;
                }
                Err(error @ KeyError::UnsupportedKey { .. }) => {
                    tracing::warn!(index, %error, "JWKS key skipped");
                }
                Err(error) => return Err(KeyError::Jwks(format!("key {index}: {error}"))),
            }
        }
        if usable == 0 {
            return Err(KeyError::Jwks(
                "no usable key (EC P-256/P-384 or RSA, for signatures)".to_owned(),
            ));
        }
        Ok(self)
    }

    /// Trusts the key of every certificate in a PEM bundle, like the registry's
    /// `rootcertbundle` (see [`VerifyingKey::bundle_from_pem`]).
    pub fn certificate_bundle_pem(mut self, pem: &[u8]) -> Result<Self, KeyError> {
        for key in VerifyingKey::bundle_from_pem(pem)? {
            self.add(key, None);
        }
        Ok(self)
    }

    /// [`Self::certificate_bundle_pem`] from a file; errors name it.
    pub fn certificate_bundle_file(mut self, path: &Path) -> Result<Self, KeyError> {
        for key in VerifyingKey::bundle_from_file(path)? {
            self.add(key, None);
        }
        Ok(self)
    }

    /// The leeway on `exp`, `nbf` and `iat` (default [`DEFAULT_LEEWAY`], 60 s, as the
    /// registry; whole seconds).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts only these algorithms (default: ES256, ES384, RS256, RS384, RS512).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Builds the verifier. Errors: no trusted key ([`KeyError::NoTrustedKey`]), an empty
    /// algorithm allow-list ([`KeyError::NoAlgorithm`]), or two different keys sharing a `kid`
    /// ([`KeyError::KeyIdConflict`]).
    pub fn build(self) -> Result<TokenVerifier, KeyError> {
        if self.keys.is_empty() {
            return Err(KeyError::NoTrustedKey);
        }
        if self.algorithms.is_empty() {
            return Err(KeyError::NoAlgorithm);
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        let mut by_kid = HashMap::new();
        let mut by_certificate = HashMap::new();
        let mut anchors = Vec::new();
        for (index, (key, kids)) in self.keys.into_iter().enumerate() {
            let ids = [key.libtrust_kid().to_owned(), key.rfc7638_kid().to_owned()];
            for kid in ids.into_iter().chain(kids) {
                if let Some(previous) = by_kid.insert(kid.clone(), index)
                    && previous != index
                {
                    return Err(KeyError::KeyIdConflict(kid));
                }
            }
            let certificate_validity = match key.certificate_chain_der().first() {
                Some(der) => {
                    let cert = parse_certificate(der)?;
                    by_certificate.insert(STANDARD.encode(der), index);
                    anchors.push(der.clone());
                    Some(validity_of(&cert))
                }
                None => None,
            };
            keys.push(TrustedKey {
                key,
                certificate_validity,
            });
        }
        let mut algorithms = self.algorithms;
        algorithms.dedup();
        Ok(TokenVerifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                service: self.service,
                leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                algorithms,
                keys,
                by_kid,
                by_certificate,
                anchors,
            }),
        })
    }

    /// Adds a key, merging it with an earlier one holding the same public key.
    fn add(&mut self, key: VerifyingKey, kid: Option<String>) {
        match self
            .keys
            .iter_mut()
            .find(|(k, _)| k.public.material == key.public.material)
        {
            Some((existing, kids)) => {
                if existing.chain.is_empty() && !key.chain.is_empty() {
                    *existing = key;
                }
                kids.extend(kid);
            }
            None => self.keys.push((key, kid.into_iter().collect())),
        }
    }
}

/// A token that passed [`TokenVerifier::verify`]: its claims, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    subject: String,
    issuer: String,
    audience: Vec<String>,
    expires_at: SystemTime,
    not_before: Option<SystemTime>,
    issued_at: Option<SystemTime>,
    jti: Option<String>,
    access: Access,
    algorithm: Algorithm,
    key_id: String,
}

impl VerifiedToken {
    /// `sub`: the account name (empty for anonymous tokens).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `iss`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `aud`, as a list (one element when the token has a string).
    #[must_use]
    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    /// `exp`.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// `nbf`, if present.
    #[must_use]
    pub fn not_before(&self) -> Option<SystemTime> {
        self.not_before
    }

    /// `iat`, if present.
    #[must_use]
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// `jti`, if present.
    #[must_use]
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// The granted access.
    #[must_use]
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Whether `action` on (`resource_type`, `name`) is granted; see [`Access::allows`].
    #[must_use]
    pub fn allows(&self, resource_type: &str, name: &str, action: &str) -> bool {
        self.access.allows(resource_type, name, action)
    }

    /// The signature algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The RFC 7638 thumbprint of the key that verified the signature (to see which key
    /// of a rotation clients still use).
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// The JWS header members we read; others are ignored (`typ` is not checked, as in the
/// registry).
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
    #[serde(default)]
    jwk: Option<serde_json::Value>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The claim set with the registry's types; unknown claims are ignored.
#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    access: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// One `access` entry as the registry decodes it; `class` and unknown members are ignored.
#[derive(serde::Deserialize)]
struct RawAccessEntry {
    #[serde(rename = "type")]
    resource_type: String,
    name: String,
    #[serde(default)]
    actions: Option<Vec<String>>,
}

/// Decodes a JSON object (serde would also take an array for a struct).
fn json_object<T: serde::de::DeserializeOwned>(json: &[u8]) -> Option<T> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(json).ok()
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// A claim time as a `SystemTime`, clamped to the representable range.
fn system_time(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    let time = if seconds >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    time.unwrap_or(UNIX_EPOCH)
}

fn validity_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> (i64, i64) {
    let validity = cert.validity();
    (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    )
}
