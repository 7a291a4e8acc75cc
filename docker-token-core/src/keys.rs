//! Signing keys, key ids (libtrust and RFC 7638), certificate chains and the JWKS document.
//!
//! IMPLEMENTATION PENDING (helper C). The signatures below are the contract.

use std::path::Path;

/// A JWS signing algorithm that registries accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (the default).
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
}

/// How the `kid` header is computed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KidStyle {
    /// The libtrust fingerprint registry 2.x looks up.
    #[default]
    Libtrust,
    /// The RFC 7638 JWK thumbprint (registry 3.x), with fixed-width EC coordinates.
    Rfc7638,
}

/// A key or certificate that cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Placeholder.
    #[error("{0}")]
    Invalid(String),
}

/// A parsed private key ready to sign, with its certificate chain and key ids.
#[derive(Debug)]
pub struct SigningKey {
    _private: (),
}

impl SigningKey {
    /// Loads a key (and optional certificate chain) from PEM files.
    pub fn from_files(_key: &Path, _certificate: Option<&Path>) -> Result<Self, KeyError> {
        Err(KeyError::Invalid("pending".to_owned()))
    }
}
