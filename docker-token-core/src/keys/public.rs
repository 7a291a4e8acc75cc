//! Public keys: parsing a SubjectPublicKeyInfo, key ids, the JWK, and [`VerifyingKey`].

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{Algorithm, KeyError, KidStyle, kid, pem};

pub(crate) const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
pub(crate) const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub(crate) const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub(crate) const OID_ED25519: &str = "1.3.101.112";
pub(crate) const OID_ED448: &str = "1.3.101.113";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

pub(crate) const ED25519_REASON: &str = "registry 2.8 rejects EdDSA tokens and refuses to start \
     with an Ed25519 certificate in its root bundle; use an EC P-256 (ES256) or RSA key";
pub(crate) const P521_REASON: &str = "ES512 tokens cannot be decoded by some clients (oci-client), \
     which then never cache them; use an EC P-256 (ES256) or RSA key";
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

    fn coordinate_len(self) -> usize {
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

    /// The algorithms a token signed by this key may carry.
    pub(crate) fn allowed_algorithms(&self) -> Vec<jsonwebtoken::Algorithm> {
        match self {
            Self::Ec { curve, .. } => vec![curve.algorithm().to_jsonwebtoken()],
            Self::Rsa { .. } => vec![
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::Algorithm::RS384,
                jsonwebtoken::Algorithm::RS512,
            ],
        }
    }
}

/// A parsed public key with its canonical SPKI DER and both key ids, computed once.
#[derive(Clone)]
pub(crate) struct PublicKeyInfo {
    pub(crate) material: KeyMaterial,
    pub(crate) spki_der: Vec<u8>,
    pub(crate) libtrust_kid: String,
    pub(crate) rfc7638_kid: String,
}

impl PublicKeyInfo {
    /// Parses a DER SubjectPublicKeyInfo. Only EC P-256/P-384 and RSA ≥ 2048 bits pass;
    /// the SPKI is re-encoded canonically (what Go's `x509.MarshalPKIXPublicKey` prints),
    /// so the libtrust kid does not depend on how the input was encoded.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::invalid("public", reason);
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|_| bad("malformed SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(bad("trailing data after SubjectPublicKeyInfo"));
        }
        let oid = spki.algorithm.algorithm.to_id_string();
        let (material, canonical) = match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve_oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .ok_or_else(|| bad("EC key without a named curve"))?;
                let curve = curve_from_oid(&curve_oid)?;
                ec_material(curve, &spki.subject_public_key.data)?
            }
            OID_RSA_ENCRYPTION => {
                let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                    return Err(bad("malformed RSA public key"));
                };
                rsa_material(rsa.modulus, rsa.exponent)?
            }
            other => return Err(unsupported_oid(other)),
        };
        Ok(Self::new(material, canonical))
    }

    fn new(material: KeyMaterial, spki_der: Vec<u8>) -> Self {
        let libtrust_kid = kid::libtrust(&spki_der);
        let rfc7638_kid = kid::rfc7638(&material);
        Self {
            material,
            spki_der,
            libtrust_kid,
            rfc7638_kid,
        }
    }

    pub(crate) fn kid(&self, style: KidStyle) -> &str {
        match style {
            KidStyle::Libtrust => &self.libtrust_kid,
            KidStyle::Rfc7638 => &self.rfc7638_kid,
        }
    }

    /// The public JWK: key members, `kid` (in `kid_style`), `use: sig` and `alg` if known.
    pub(crate) fn jwk(
        &self,
        algorithm: Option<Algorithm>,
        kid_style: KidStyle,
    ) -> serde_json::Value {
        let mut jwk = match &self.material {
            KeyMaterial::Ec { curve, x, y } => serde_json::json!({
                "kty": "EC",
                "crv": curve.jwk_name(),
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }),
            KeyMaterial::Rsa { n, e } => serde_json::json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
        };
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".to_owned(), self.kid(kid_style).into());
            members.insert("use".to_owned(), "sig".into());
            if let Some(alg) = algorithm {
                members.insert("alg".to_owned(), alg.as_str().into());
            }
        }
        jwk
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        match &self.material {
            KeyMaterial::Ec { x, y, .. } => {
                // jsonwebtoken's EC verifier takes the uncompressed point.
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                DecodingKey::from_ec_der(&point)
            }
            KeyMaterial::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
        }
    }
}

fn curve_from_oid(oid: &str) -> Result<Curve, KeyError> {
    match oid {
        OID_P256 => Ok(Curve::P256),
        OID_P384 => Ok(Curve::P384),
        OID_P521 => Err(KeyError::UnsupportedKey {
            key: "EC P-521".to_owned(),
            reason: P521_REASON,
        }),
        other => Err(KeyError::UnsupportedKey {
            key: format!("EC curve {other}"),
            reason: "only P-256 and P-384 are supported",
        }),
    }
}

pub(crate) fn unsupported_oid(oid: &str) -> KeyError {
    match oid {
        OID_ED25519 => KeyError::UnsupportedKey {
            key: "Ed25519".to_owned(),
            reason: ED25519_REASON,
        },
        OID_ED448 => KeyError::UnsupportedKey {
            key: "Ed448".to_owned(),
            reason: "no registry accepts Ed448 tokens; use an EC P-256 (ES256) or RSA key",
        },
        OID_RSA_PSS => KeyError::UnsupportedKey {
            key: "RSASSA-PSS".to_owned(),
            reason: "registry 2.8 rejects PS* tokens; use a plain rsaEncryption RSA key",
        },
        other => KeyError::UnsupportedKey {
            key: format!("algorithm {other}"),
            reason: "only EC P-256/P-384 and RSA keys are supported",
        },
    }
}

/// Validates an uncompressed EC point (on the curve) and returns the material and the
/// canonical SPKI.
fn ec_material(curve: Curve, point: &[u8]) -> Result<(KeyMaterial, Vec<u8>), KeyError> {
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

fn rsa_material(modulus: &[u8], exponent: &[u8]) -> Result<(KeyMaterial, Vec<u8>), KeyError> {
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

/// A public key trusted for verification only (e.g. the previous signing key during a
/// rotation), with its optional certificate chain.
#[derive(Clone)]
pub struct VerifyingKey {
    pub(crate) public: PublicKeyInfo,
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) decoding: DecodingKey,
}

impl VerifyingKey {
    /// Reads a key from PEM: one or more `CERTIFICATE` blocks (a chain, leaf first) or a
    /// `PUBLIC KEY` block. Other blocks, including private keys, are ignored.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let blocks = pem::Blocks::parse(pem)?;
        if let Some(chain) = blocks.certificate_chain()? {
            let info = PublicKeyInfo::from_spki_der(&chain.leaf_spki)?;
            return Ok(Self::new(info, chain.der));
        }
        match blocks.public_key() {
            Some(spki) => Ok(Self::new(PublicKeyInfo::from_spki_der(spki)?, Vec::new())),
            None => Err(KeyError::NoPublicKey),
        }
    }

    /// Reads [`Self::from_pem`] from a file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = pem::read_file(path)?;
        Self::from_pem(&bytes).map_err(|e| e.in_file(path))
    }

    /// Builds a key from a DER SubjectPublicKeyInfo (no certificate).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::new(PublicKeyInfo::from_spki_der(der)?, Vec::new()))
    }

    pub(crate) fn new(public: PublicKeyInfo, chain: Vec<Vec<u8>>) -> Self {
        let algorithm = match public.material {
            KeyMaterial::Ec { curve, .. } => Some(curve.algorithm()),
            KeyMaterial::Rsa { .. } => None,
        };
        let decoding = public.decoding_key();
        Self {
            public,
            algorithm,
            chain,
            decoding,
        }
    }

    /// Declares the algorithm the key signs with, published as the JWK's `alg`. EC keys
    /// already know theirs (a different one is an error); RSA keys have none until set.
    /// Verification accepts RS256/384/512 for RSA keys either way.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Result<Self, KeyError> {
        self.public.material.check_algorithm(algorithm)?;
        self.algorithm = Some(algorithm);
        Ok(self)
    }

    /// The declared algorithm, if any (always known for EC keys).
    #[must_use]
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
    }

    /// The key id in the given style.
    #[must_use]
    pub fn kid(&self, style: KidStyle) -> &str {
        self.public.kid(style)
    }

    /// The libtrust fingerprint (registry 2.x `kid`).
    #[must_use]
    pub fn libtrust_kid(&self) -> &str {
        &self.public.libtrust_kid
    }

    /// The RFC 7638 thumbprint (registry 3.x `kid`).
    #[must_use]
    pub fn rfc7638_kid(&self) -> &str {
        &self.public.rfc7638_kid
    }

    /// The certificate chain (DER, leaf first); empty when loaded from a bare public key.
    #[must_use]
    pub fn certificate_chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The canonical DER SubjectPublicKeyInfo.
    #[must_use]
    pub fn public_key_spki_der(&self) -> &[u8] {
        &self.public.spki_der
    }

    /// The public JWK with `kid` = RFC 7638 thumbprint, `use: sig` and `alg` if known.
    #[must_use]
    pub fn public_jwk(&self) -> serde_json::Value {
        self.public.jwk(self.algorithm, KidStyle::Rfc7638)
    }

    #[cfg(test)]
    pub(crate) fn material(&self) -> &KeyMaterial {
        &self.public.material
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("key", &self.public.material.describe())
            .field("algorithm", &self.algorithm)
            .field("libtrust_kid", &self.public.libtrust_kid)
            .field("rfc7638_kid", &self.public.rfc7638_kid)
            .field("certificates", &self.chain.len())
            .finish()
    }
}
