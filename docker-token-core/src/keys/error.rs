//! [`KeyError`]: why a key or certificate cannot be loaded or used.

use std::path::PathBuf;

use super::Algorithm;

/// A key, certificate or JWKS document that cannot be loaded or used.
///
/// Messages name files, key types and algorithms, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key or certificate file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is unusable; the source says why.
    #[error("{}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<Self>,
    },
    /// The input is not well-formed PEM.
    #[error("malformed PEM")]
    Pem(#[source] crate::BoxError),
    /// The PEM input holds no private key block.
    #[error(
        "no private key found (expected a PEM block PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
    )]
    NoPrivateKey,
    /// The PEM input holds more than one private key block.
    #[error("more than one private key found; keep exactly one key per file")]
    MultiplePrivateKeys,
    /// The private key is password-protected.
    #[error(
        "encrypted private keys are not supported; store it decrypted with restrictive file permissions"
    )]
    EncryptedKey,
    /// The PEM input holds neither a certificate nor a public key.
    #[error("no certificate or public key found (expected a PEM block CERTIFICATE or PUBLIC KEY)")]
    NoPublicKey,
    /// The key is malformed, inconsistent, or too small/large (the text comes from the crypto
    /// library, e.g. `TooSmall`).
    #[error("invalid {kind} key: {reason}")]
    InvalidKey {
        /// The key format or type (`PKCS#8`, `EC`, `RSA`, …).
        kind: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A well-formed key of a type tokens cannot be signed with.
    #[error("unsupported key type {key}: {reason}")]
    UnsupportedKey {
        /// The key type, e.g. `Ed25519` or `EC P-521`.
        key: String,
        /// Why it is not supported.
        reason: &'static str,
    },
    /// The requested algorithm does not fit the key (ES256 needs P-256, ES384 P-384, RS* RSA).
    #[error("algorithm {algorithm} cannot be used with {key}")]
    AlgorithmMismatch {
        /// The requested algorithm.
        algorithm: Algorithm,
        /// The key, e.g. `an EC P-384 key`.
        key: &'static str,
    },
    /// The first certificate of the chain is not the certificate of the private key.
    #[error("{0}")]
    CertificateMismatch(&'static str),
    /// A certificate is malformed or the chain is inconsistent.
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// The crypto library failed to sign.
    #[error("signing failed")]
    Signing,
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The token claims could not be serialized.
    #[error("cannot serialize the token claims")]
    Serialization(#[source] serde_json::Error),
    /// The crypto library failed to generate a key or certificate.
    #[error("key generation failed: {0}")]
    Generation(String),
    /// A JWKS document is not `{"keys":[…]}` or a key in it is malformed.
    #[error("bad JWKS document: {0}")]
    Jwks(String),
    /// A verifier was built without any trusted key.
    #[error("no trusted key: add a key, a key set, a JWKS document or a certificate bundle")]
    NoTrustedKey,
    /// A verifier was built with an empty algorithm allow-list.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithm,
    /// Two different trusted keys claim the same `kid`.
    #[error("two different keys use the key id {0:?}")]
    KeyIdConflict(String),
}

impl KeyError {
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            e @ (Self::Read { .. } | Self::InFile { .. }) => e,
            e => Self::InFile {
                path: path.to_owned(),
                source: Box::new(e),
            },
        }
    }

    pub(crate) fn invalid(kind: &'static str, reason: impl ToString) -> Self {
        Self::InvalidKey {
            kind,
            reason: reason.to_string(),
        }
    }
}
