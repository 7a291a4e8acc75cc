//! Signing keys, key ids (libtrust and RFC 7638), certificate chains and the JWKS document.
//!
//! * [`SigningKey`] — a private key parsed once (PKCS#8, SEC1 or PKCS#1 PEM) with its
//!   optional certificate chain; signs JWS inputs with aws-lc-rs.
//! * [`VerifyingKey`] — a public key (from a certificate or a `PUBLIC KEY` PEM) that is
//!   trusted for verification only, e.g. the previous key during a rotation.
//! * [`KeySet`] — the active signing key plus verify-only keys; renders the JWKS document
//!   and verifies tokens.
//!
//! Only ECDSA P-256/P-384 and RSA (2048–8192 bits) keys are accepted: they are the only
//! ones every registry generation and every client understands (protocol.md §3.4).
//!
//! # Key ids
//!
//! Registry 2.x looks the `kid` header up by its **libtrust fingerprint** (SHA-256 of the
//! DER SubjectPublicKeyInfo, first 30 bytes, base32, `:` every four characters); registry
//! 3.x by the **RFC 7638 JWK thumbprint**. [`KidStyle`] picks one; the `x5c` header, sent
//! whenever the key has a certificate, works with both.
//!
//! Our RFC 7638 thumbprints use fixed-width EC coordinates as RFC 7518 requires.
//! distribution 3.x computes them from Go's `big.Int.Bytes()`, which drops a leading zero
//! byte, so for about one EC key in 128 its thumbprint differs from ours. Such a token is
//! still accepted through `x5c`, or through a `jwks` file whose `kid` is ours.

mod error;
#[cfg(any(test, feature = "generate"))]
mod generate;
mod kid;
pub(crate) mod material;
pub(crate) mod pem;
pub(crate) mod public;
mod set;
mod signing;
pub(crate) use signing::PrefixDigest;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

pub use error::KeyError;
#[cfg(any(test, feature = "generate"))]
#[cfg_attr(docsrs, doc(cfg(feature = "generate")))]
pub use generate::GeneratedKey;
pub use public::VerifyingKey;
pub use set::KeySet;
pub use signing::SigningKey;

/// base64url that decodes with or without `=` padding (Go's decoders in the registry
/// tolerate it) and encodes without.
pub(crate) const BASE64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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

impl Algorithm {
    /// The JOSE name, as written in the `alg` header: `"ES256"`, `"RS256"`, ….
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
        }
    }

    /// Whether this is an RSA algorithm (`RS*`).
    #[must_use]
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::RS256 | Self::RS384 | Self::RS512)
    }

    /// The algorithm named by a JOSE `alg` value; `None` for every other name (`none`,
    /// `HS256`, `PS256`, `EdDSA`, `ES512`, …).
    pub(crate) fn from_jose(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::ES256),
            "ES384" => Some(Self::ES384),
            "RS256" => Some(Self::RS256),
            "RS384" => Some(Self::RS384),
            "RS512" => Some(Self::RS512),
            _ => None,
        }
    }

    /// Every algorithm, in declaration order.
    pub(crate) const ALL: [Self; 5] = [
        Self::ES256,
        Self::ES384,
        Self::RS256,
        Self::RS384,
        Self::RS512,
    ];

    /// The same algorithm as `jsonwebtoken` names it.
    #[cfg(test)]
    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::RS384 => jsonwebtoken::Algorithm::RS384,
            Self::RS512 => jsonwebtoken::Algorithm::RS512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
