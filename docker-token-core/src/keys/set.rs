//! [`KeySet`]: the active signing key plus verify-only keys, and their JWKS document.

use super::{KidStyle, SigningKey, VerifyingKey};

/// The active [`SigningKey`] plus public keys that are still trusted for verification
/// (e.g. the previous key during a rotation). To verify tokens against the set, build a
/// [`TokenVerifier`](crate::verify::TokenVerifier) with
/// [`key_set`](crate::verify::TokenVerifierBuilder::key_set).
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
    pub(crate) fn keys(&self) -> impl Iterator<Item = &VerifyingKey> {
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
}
