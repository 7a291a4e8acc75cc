//! Public keys: parsing a SubjectPublicKeyInfo, key ids, the JWK, and [`VerifyingKey`].

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::material::{Curve, KeyMaterial, SignatureVerifier, ec_material, rsa_material};
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

    pub(crate) fn new(material: KeyMaterial, spki_der: Vec<u8>) -> Self {
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

/// A public key trusted for verification only (e.g. the previous signing key during a
/// rotation), with its optional certificate chain.
#[derive(Clone)]
pub struct VerifyingKey {
    pub(crate) public: PublicKeyInfo,
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) chain: Vec<Vec<u8>>,
    /// The key parsed once for signature checks.
    pub(crate) verifier: SignatureVerifier,
}

impl VerifyingKey {
    /// Reads a key from PEM: one or more `CERTIFICATE` blocks (a chain, leaf first) or a
    /// `PUBLIC KEY` block. Other blocks, including private keys, are ignored.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let blocks = pem::Blocks::parse(pem)?;
        if let Some(chain) = blocks.certificate_chain()? {
            let info = PublicKeyInfo::from_spki_der(&chain.leaf_spki)?;
            return Self::new(info, chain.der);
        }
        match blocks.public_key() {
            Some(spki) => Self::new(PublicKeyInfo::from_spki_der(spki)?, Vec::new()),
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
        Self::new(PublicKeyInfo::from_spki_der(der)?, Vec::new())
    }

    /// Reads every `CERTIFICATE` block of a PEM bundle as a key of its own, the way the
    /// registry reads its `rootcertbundle`: the certificates need not form a chain, other
    /// blocks are ignored, and a certificate whose key is unsupported (Ed25519, P-521, …)
    /// is an error (registry 2.8 refuses to start with one), and so is a bundle without
    /// any certificate ([`KeyError::NoPublicKey`]). Each key keeps its certificate as a
    /// one-element chain.
    pub fn bundle_from_pem(pem: &[u8]) -> Result<Vec<Self>, KeyError> {
        let blocks = pem::Blocks::parse(pem)?;
        let mut keys = Vec::new();
        for der in blocks.certificates() {
            let cert = pem::parse_certificate(der)?;
            let info = PublicKeyInfo::from_spki_der(cert.public_key().raw)?;
            keys.push(Self::new(info, vec![der.to_vec()])?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoPublicKey);
        }
        Ok(keys)
    }

    /// Reads [`Self::bundle_from_pem`] from a file (e.g. the registry's `rootcertbundle`).
    pub fn bundle_from_file(path: &Path) -> Result<Vec<Self>, KeyError> {
        let bytes = pem::read_file(path)?;
        Self::bundle_from_pem(&bytes).map_err(|e| e.in_file(path))
    }

    /// Reads a public key from a JWK (RFC 7517): `"kty":"EC"` with `crv` `P-256` or `P-384`
    /// and `x`/`y`, or `"kty":"RSA"` with `n`/`e` (base64url; a shorter EC coordinate, as
    /// Go's minimal encoding produces, is zero-padded). An `alg` member must fit the key and
    /// becomes [`Self::algorithm`]. `kid`, `use` and `x5c` are not interpreted here.
    ///
    /// Symmetric (`oct`), `OKP` (Ed25519) and P-521 keys are [`KeyError::UnsupportedKey`].
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::invalid("JWK", reason);
        let members = jwk
            .as_object()
            .ok_or_else(|| bad("not a JSON object".to_owned()))?;
        let text = |name: &str| {
            members
                .get(name)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad(format!("missing string member `{name}`")))
        };
        let bytes = |name: &str| {
            super::BASE64URL_LENIENT
                .decode(text(name)?)
                .map_err(|_| bad(format!("member `{name}` is not base64url")))
        };
        let info = match text("kty")? {
            "EC" => {
                let curve = match text("crv")? {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    "P-521" => {
                        return Err(KeyError::UnsupportedKey {
                            key: "EC P-521".to_owned(),
                            reason: P521_REASON,
                        });
                    }
                    _ => {
                        return Err(KeyError::UnsupportedKey {
                            key: "EC (JWK)".to_owned(),
                            reason: "only the curves P-256 and P-384 are supported",
                        });
                    }
                };
                let len = curve.coordinate_len();
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                for name in ["x", "y"] {
                    let coordinate = bytes(name)?;
                    let padding = len.checked_sub(coordinate.len()).ok_or_else(|| {
                        bad(format!(
                            "coordinate `{name}` is too long for {}",
                            curve.jwk_name()
                        ))
                    })?;
                    point.resize(point.len() + padding, 0);
                    point.extend_from_slice(&coordinate);
                }
                let (material, spki) = ec_material(curve, &point)?;
                PublicKeyInfo::new(material, spki)
            }
            "RSA" => {
                let (material, spki) = rsa_material(&bytes("n")?, &bytes("e")?)?;
                PublicKeyInfo::new(material, spki)
            }
            "OKP" => {
                return Err(KeyError::UnsupportedKey {
                    key: "OKP (Ed25519/Ed448)".to_owned(),
                    reason: ED25519_REASON,
                });
            }
            "oct" => {
                return Err(KeyError::UnsupportedKey {
                    key: "oct (a shared secret)".to_owned(),
                    reason: "registry tokens are verified with public keys only",
                });
            }
            _ => {
                return Err(KeyError::UnsupportedKey {
                    key: "JWK".to_owned(),
                    reason: "only `kty` EC and RSA are supported",
                });
            }
        };
        let key = Self::new(info, Vec::new())?;
        match members.get("alg") {
            None => Ok(key),
            Some(alg) => {
                let alg = alg.as_str().and_then(Algorithm::from_jose).ok_or(
                    KeyError::UnsupportedKey {
                        key: "JWK".to_owned(),
                        reason: "`alg` must be ES256, ES384, RS256, RS384 or RS512",
                    },
                )?;
                key.with_algorithm(alg)
            }
        }
    }

    pub(crate) fn new(public: PublicKeyInfo, chain: Vec<Vec<u8>>) -> Result<Self, KeyError> {
        let algorithm = match public.material {
            KeyMaterial::Ec { curve, .. } => Some(curve.algorithm()),
            KeyMaterial::Rsa { .. } => None,
        };
        let verifier = SignatureVerifier::new(&public.material)?;
        Ok(Self {
            public,
            algorithm,
            chain,
            verifier,
        })
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
