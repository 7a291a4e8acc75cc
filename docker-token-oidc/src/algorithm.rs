//! [`JwtAlgorithm`]: the JWS algorithms accepted for tokens signed by the IdP.

use serde::{Deserialize, Serialize};

/// A JWS algorithm accepted for tokens signed by the IdP (JWT access tokens, id tokens).
///
/// Only asymmetric algorithms are listed: tokens are verified with the provider's public
/// JWKS, so a shared-secret algorithm (`HS256`, …) can never be configured.
///
/// ```
/// use docker_token_oidc::JwtAlgorithm;
///
/// let algs: Vec<JwtAlgorithm> = serde_json::from_str(r#"["RS256", "ES256"]"#).unwrap();
/// assert_eq!(algs, [JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
/// assert!(serde_json::from_str::<JwtAlgorithm>(r#""HS256""#).is_err());
/// assert!(JwtAlgorithm::defaults().contains(&JwtAlgorithm::EdDSA));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// Every algorithm: the default of `algorithms` and of the browser login's id tokens.
    #[must_use]
    pub fn defaults() -> Vec<Self> {
        use JwtAlgorithm::*;
        vec![
            RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ]
    }

    /// The same algorithm as `jsonwebtoken` names it.
    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
        }
    }
}
