//! [`VerifyError`]: why a token was rejected.

use crate::keys::Algorithm;

use super::ChallengeError;

/// Why [`TokenVerifier::verify`](super::TokenVerifier::verify) rejected a token.
///
/// Every variant means the registry's `error="invalid_token"` (see
/// [`Self::challenge_error`]). `Display` never contains the token, and names no value taken
/// from it except a short, printable `alg`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS: not three base64url segments, too long, or a header that is not
    /// a JSON object with a string `alg`.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The `alg` header names an algorithm no registry token may use (`none`, `HS256`,
    /// `PS256`, `EdDSA`, …). The value is kept only if it is short and alphanumeric.
    #[error("unsupported token algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A supported algorithm that the verifier's allow-list excludes.
    #[error("token algorithm {0} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    /// The header names no trusted key: unknown `kid`, an `x5c` leaf whose key is not
    /// trusted, or neither `kid` nor `x5c`.
    #[error("the token is not signed by a trusted key")]
    UnknownKey,
    /// The algorithm does not fit the key (e.g. ES384 with a P-256 key, RS256 with an EC key).
    #[error("token algorithm {0} does not fit the signing key")]
    AlgorithmMismatch(Algorithm),
    /// The signature does not verify with the selected key.
    #[error("the token signature does not verify")]
    BadSignature,
    /// The `x5c` leaf certificate is outside its validity period (the registry checks it).
    #[error("the token's signing certificate is outside its validity period")]
    CertificateNotValid,
    /// The claim set is not a JSON object with the registry's types (string `iss`/`sub`/
    /// `jti`, string or string-array `aud`, integer `exp`/`nbf`/`iat`), or lacks `exp`.
    #[error("malformed token claims: {0}")]
    MalformedClaims(&'static str),
    /// `iss` is missing or not the expected issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` is missing or does not contain the expected service.
    #[error("the token is meant for another service")]
    WrongAudience,
    /// `exp` (plus the leeway) is in the past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (minus the leeway) is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` (minus the leeway) is in the future.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `access` is not a list of `{"type","name","actions":[…]}` objects.
    #[error("malformed access claim")]
    MalformedAccess,
}

impl VerifyError {
    /// The challenge `error` parameter for this rejection: always
    /// [`ChallengeError::InvalidToken`], as registry 2.8 answers.
    #[must_use]
    pub fn challenge_error(&self) -> ChallengeError {
        ChallengeError::InvalidToken
    }

    /// An [`Self::UnsupportedAlgorithm`] that keeps `alg` only if it is at most 16
    /// alphanumeric characters (the token is hostile input).
    pub(crate) fn unsupported_algorithm(alg: &str) -> Self {
        let printable = alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric());
        Self::UnsupportedAlgorithm(if printable {
            alg.to_owned()
        } else {
            "(unprintable)".to_owned()
        })
    }
}
