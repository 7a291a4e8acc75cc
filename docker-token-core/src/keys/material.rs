//! [`KeyMaterial`]: the public numbers of a key, normalised, and the curves we support.
//!
//! Both key ids ([`super::kid`]) and the public-key types ([`super::public`]) build on
//! this module; it depends on neither.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
};

use super::{Algorithm, KeyError};

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The EC curves we sign and verify with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

impl Curve {
    pub(crate) fn jwk_name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    pub(crate) fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    pub(crate) fn algorithm(self) -> Algorithm {
        match self {
            Self::P256 => Algorithm::ES256,
            Self::P384 => Algorithm::ES384,
        }
    }
}

/// The public numbers of a key, normalised: EC coordinates at their fixed width, RSA
/// integers without leading zero bytes. Two keys are the same key iff these are equal.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum KeyMaterial {
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl KeyMaterial {
    /// `"an EC P-256 key"` and the like, for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Ec {
                curve: Curve::P256, ..
            } => "an EC P-256 key",
            Self::Ec {
                curve: Curve::P384, ..
            } => "an EC P-384 key",
            Self::Rsa { .. } => "an RSA key",
        }
    }

    /// The algorithm used when none is chosen: fixed by the curve for EC, RS256 for RSA.
    pub(crate) fn default_algorithm(&self) -> Algorithm {
        match self {
            Self::Ec { curve, .. } => curve.algorithm(),
            Self::Rsa { .. } => Algorithm::RS256,
        }
    }

    /// Whether `algorithm` can be used with this key.
    pub(crate) fn check_algorithm(&self, algorithm: Algorithm) -> Result<(), KeyError> {
        let fits = match self {
            Self::Ec { curve, .. } => curve.algorithm() == algorithm,
            Self::Rsa { .. } => algorithm.is_rsa(),
        };
        if fits {
            Ok(())
        } else {
            Err(KeyError::AlgorithmMismatch {
                algorithm,
                key: self.describe(),
            })
        }
    }
}

/// Validates an uncompressed EC point (on the curve) and returns the material and the
/// canonical SPKI.
pub(crate) fn ec_material(curve: Curve, point: &[u8]) -> Result<(KeyMaterial, Vec<u8>), KeyError> {
    let len = curve.coordinate_len();
    let (x, y) = match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * len => xy.split_at(len),
        _ => {
            return Err(KeyError::invalid(
                "EC",
                "the public point is not in uncompressed form",
            ));
        }
    };
    let verification = match curve {
        Curve::P256 => &ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &ECDSA_P384_SHA384_FIXED,
    };
    let parsed =
        ParsedPublicKey::new(verification, point).map_err(|e| KeyError::invalid("EC", e))?;
    let spki = parsed.as_der().map_err(|e| KeyError::invalid("EC", e))?;
    let material = KeyMaterial::Ec {
        curve,
        x: x.to_vec(),
        y: y.to_vec(),
    };
    Ok((material, spki.as_ref().to_vec()))
}

pub(crate) fn rsa_material(
    modulus: &[u8],
    exponent: &[u8],
) -> Result<(KeyMaterial, Vec<u8>), KeyError> {
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    let (n, e) = (strip(modulus), strip(exponent));
    let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err(KeyError::invalid(
            "RSA",
            format!("{bits}-bit modulus; at least 2048 bits are required"),
        ));
    }
    let spki = PublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .as_der()
    .map_err(|e| KeyError::invalid("RSA", e))?;
    Ok((KeyMaterial::Rsa { n, e }, spki.as_ref().to_vec()))
}

/// A public key parsed once by aws-lc for each algorithm it may verify, so that checking a
/// token's signature never re-parses the key.
#[derive(Clone)]
pub(crate) enum SignatureVerifier {
    /// An EC key verifies only its curve's algorithm.
    Ec {
        algorithm: Algorithm,
        key: ParsedPublicKey,
    },
    /// An RSA key verifies RS256, RS384 and RS512.
    Rsa {
        rs256: ParsedPublicKey,
        rs384: ParsedPublicKey,
        rs512: ParsedPublicKey,
    },
}

/// Why [`SignatureVerifier::verify`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignatureFailure {
    /// The algorithm cannot be used with this key (e.g. ES384 with a P-256 key).
    AlgorithmMismatch,
    /// The signature does not verify.
    Invalid,
}

impl SignatureVerifier {
    /// Parses `material` for aws-lc.
    pub(crate) fn new(material: &KeyMaterial) -> Result<Self, KeyError> {
        match material {
            KeyMaterial::Ec { curve, x, y } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                let verification = match curve {
                    Curve::P256 => &ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &ECDSA_P384_SHA384_FIXED,
                };
                let key = ParsedPublicKey::new(verification, &point)
                    .map_err(|e| KeyError::invalid("EC", e))?;
                Ok(Self::Ec {
                    algorithm: curve.algorithm(),
                    key,
                })
            }
            KeyMaterial::Rsa { n, e } => {
                let components = PublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                };
                let parse = |params| {
                    components
                        .to_parsed_public_key(params)
                        .map_err(|e| KeyError::invalid("RSA", e))
                };
                Ok(Self::Rsa {
                    rs256: parse(&RSA_PKCS1_2048_8192_SHA256)?,
                    rs384: parse(&RSA_PKCS1_2048_8192_SHA384)?,
                    rs512: parse(&RSA_PKCS1_2048_8192_SHA512)?,
                })
            }
        }
    }

    /// Checks a JWS signature (`r||s` for ES*, PKCS#1 v1.5 for RS*) over `message`.
    pub(crate) fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureFailure> {
        let key = match (self, algorithm) {
            (
                Self::Ec {
                    algorithm: own,
                    key,
                },
                alg,
            ) if *own == alg => key,
            (Self::Rsa { rs256, .. }, Algorithm::RS256) => rs256,
            (Self::Rsa { rs384, .. }, Algorithm::RS384) => rs384,
            (Self::Rsa { rs512, .. }, Algorithm::RS512) => rs512,
            _ => return Err(SignatureFailure::AlgorithmMismatch),
        };
        key.verify_sig(message, signature)
            .map_err(|_| SignatureFailure::Invalid)
    }
}
