//! [`KeySet`]: the active signing key plus verify-only keys; JWKS and verification.

use jsonwebtoken::{TokenData, Validation};

use super::pem::parse_certificate;
use super::public::PublicKeyInfo;
use super::{KeyError, KidStyle, SigningKey, VerifyingKey};

/// Leeway on `exp`/`nbf` when verifying, as the registry applies (protocol.md §3.5).
const VERIFY_LEEWAY_SECS: u64 = 60;

/// The active [`SigningKey`] plus public keys that are still trusted for verification
/// (e.g. the previous key during a rotation).
#[derive(Clone, Debug)]
pub struct KeySet {
    active: SigningKey,
    verify_only: Vec<VerifyingKey>,
}

impl KeySet {
    /// A set with only the active key.
    #[must_use]
    pub fn new(active: SigningKey) -> Self {
        Self {
            active,
            verify_only: Vec::new(),
        }
    }

    /// Adds a verify-only key. A key already in the set (same public key) is ignored.
    #[must_use]
    pub fn with_verify_only(mut self, key: VerifyingKey) -> Self {
        let known = self
            .keys()
            .any(|k| k.public.material == key.public.material);
        if !known {
            self.verify_only.push(key);
        }
        self
    }

    /// The key new tokens are signed with.
    #[must_use]
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The verify-only keys, in the order they were added.
    #[must_use]
    pub fn verify_only(&self) -> &[VerifyingKey] {
        &self.verify_only
    }

    /// Every public key, the active one first.
    fn keys(&self) -> impl Iterator<Item = &VerifyingKey> {
        std::iter::once(self.active.verifying_key()).chain(&self.verify_only)
    }

    /// The JWKS document `{"keys":[…]}`, active key first, each `kid` the RFC 7638
    /// thumbprint (what registry 3.x computes for its `rootcertbundle` keys).
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        self.jwks_with_kid_style(KidStyle::Rfc7638)
    }

    /// The JWKS document with `kid`s in the given style. A registry 3.x `jwks` file trusts
    /// each key under its literal `kid`, so this one matches tokens minted with `style`.
    #[must_use]
    pub fn jwks_with_kid_style(&self, style: KidStyle) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys()
            .map(|k| k.public.jwk(k.algorithm, style))
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Verifies a compact JWS against the set, the way a registry does: the key is the one
    /// whose public key is the `x5c` leaf's (if `x5c` is present — the chain itself is not
    /// validated, only keys of this set are trusted), otherwise the one whose libtrust or
    /// RFC 7638 id equals `kid`. Then signature, `iss`, `aud` (string or array), `exp` and
    /// `nbf` (60 s leeway) are checked. Returns the header and the claims.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<TokenData<serde_json::Value>, KeyError> {
        let header = jsonwebtoken::decode_header(token).map_err(KeyError::Verification)?;
        let key = match header.x5c_der().map_err(KeyError::Verification)? {
            Some(chain) => {
                let leaf = chain.first().ok_or(KeyError::UnknownKey)?;
                let cert = parse_certificate(leaf)?;
                let public = PublicKeyInfo::from_spki_der(cert.public_key().raw)?;
                self.keys().find(|k| k.public.material == public.material)
            }
            None => header.kid.as_deref().and_then(|kid| {
                self.keys()
                    .find(|k| k.libtrust_kid() == kid || k.rfc7638_kid() == kid)
            }),
        }
        .ok_or(KeyError::UnknownKey)?;

        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.public.material.allowed_algorithms();
        validation.leeway = VERIFY_LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode(token, &key.decoding, &validation).map_err(KeyError::Verification)
    }
}
