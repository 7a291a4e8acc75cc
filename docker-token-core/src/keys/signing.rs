//! [`SigningKey`]: a private key parsed once, signing many tokens.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _,
    RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
};
use x509_parser::asn1_rs::{Any, Sequence};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::AlgorithmIdentifier;

use super::pem::{self, Blocks, Chain, PrivateKeyDer};
use super::public::{
    OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION, P521_REASON, PublicKeyInfo, unsupported_oid,
};
use super::{Algorithm, KeyError, KidStyle, VerifyingKey};

/// A hash state after a fixed prefix (see [`SigningKey::prefix_digest`]).
#[derive(Clone)]
pub(crate) struct PrefixDigest(digest::Context);

impl fmt::Debug for PrefixDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrefixDigest")
    }
}

/// The parsed private key. aws-lc keeps it in its own memory and wipes it when freed.
enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A parsed private key ready to sign, with its certificate chain and key ids.
///
/// Parsing happens once; [`SigningKey::sign`] reuses the parsed key. Cloning is cheap
/// (the private key is shared). `Debug` shows the key type and ids, never key material.
#[derive(Clone)]
pub struct SigningKey {
    signer: Arc<Signer>,
    algorithm: Algorithm,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// Parses a private key from PEM: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or
    /// `RSA PRIVATE KEY` (PKCS#1). The certificate chain (leaf first) comes from
    /// `certificate_chain_pem` if given, otherwise from `CERTIFICATE` blocks in `key_pem`
    /// (a combined file); without any, tokens carry no `x5c`. The leaf certificate must
    /// hold this key's public key.
    ///
    /// The algorithm is ES256/ES384 for EC keys (by curve) and RS256 for RSA keys; see
    /// [`Self::with_algorithm`].
    pub fn from_pem(
        key_pem: &[u8],
        certificate_chain_pem: Option<&[u8]>,
    ) -> Result<Self, KeyError> {
        let key_blocks = Blocks::parse(key_pem)?;
        let (signer, public) = load_private(&key_blocks)?;
        let chain = match certificate_chain_pem {
            Some(pem) => Some(required_chain(&Blocks::parse(pem)?)?),
            None => key_blocks.certificate_chain()?,
        };
        let chain = attach_chain(&public, chain)?;
        Self::assemble(signer, public, chain)
    }

    /// Loads [`Self::from_pem`] from files; errors name the file at fault.
    pub fn from_files(key: &Path, certificate: Option<&Path>) -> Result<Self, KeyError> {
        let key_bytes = pem::read_file(key)?;
        let key_blocks = Blocks::parse(&key_bytes).map_err(|e| e.in_file(key))?;
        let (signer, public) = load_private(&key_blocks).map_err(|e| e.in_file(key))?;
        let (chain, chain_file) = match certificate {
            Some(path) => {
                let bytes = pem::read_file(path)?;
                let chain = Blocks::parse(&bytes)
                    .and_then(|b| required_chain(&b))
                    .map_err(|e| e.in_file(path))?;
                (Some(chain), path)
            }
            None => (
                key_blocks.certificate_chain().map_err(|e| e.in_file(key))?,
                key,
            ),
        };
        let chain = attach_chain(&public, chain).map_err(|e| e.in_file(chain_file))?;
        Self::assemble(signer, public, chain)
    }

    fn assemble(
        signer: Signer,
        public: PublicKeyInfo,
        chain: Vec<Vec<u8>>,
    ) -> Result<Self, KeyError> {
        let algorithm = public.material.default_algorithm();
        let verifying = VerifyingKey::new(public, chain)?;
        let verifying = VerifyingKey {
            algorithm: Some(algorithm),
            ..verifying
        };
        Ok(Self {
            signer: Arc::new(signer),
            algorithm,
            verifying,
        })
    }

    /// Chooses the signing algorithm: RS256 (default), RS384 or RS512 for RSA keys; EC
    /// keys sign with the algorithm of their curve only (ES256 ⇔ P-256, ES384 ⇔ P-384),
    /// anything else is an error — registries reject a mismatch.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Result<Self, KeyError> {
        self.verifying = self.verifying.with_algorithm(algorithm)?;
        self.algorithm = algorithm;
        Ok(self)
    }

    /// The signing algorithm (the `alg` header).
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key id in the given style.
    #[must_use]
    pub fn kid(&self, style: KidStyle) -> &str {
        self.verifying.kid(style)
    }

    /// The libtrust fingerprint (registry 2.x `kid`).
    #[must_use]
    pub fn libtrust_kid(&self) -> &str {
        self.verifying.libtrust_kid()
    }

    /// The RFC 7638 thumbprint (registry 3.x `kid`).
    #[must_use]
    pub fn rfc7638_kid(&self) -> &str {
        self.verifying.rfc7638_kid()
    }

    /// The certificate chain (DER, leaf first); empty without certificate.
    #[must_use]
    pub fn certificate_chain_der(&self) -> &[Vec<u8>] {
        self.verifying.certificate_chain_der()
    }

    /// The canonical DER SubjectPublicKeyInfo of the public key.
    #[must_use]
    pub fn public_key_spki_der(&self) -> &[u8] {
        self.verifying.public_key_spki_der()
    }

    /// The public JWK: `kid` = RFC 7638 thumbprint, `use: sig`, `alg`.
    #[must_use]
    pub fn public_jwk(&self) -> serde_json::Value {
        self.verifying.public_jwk()
    }

    /// The public half, to verify what this key signs.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The length of a signature in bytes (64/96 for ES256/ES384, the modulus length for RSA).
    pub(crate) fn signature_len(&self) -> usize {
        match &*self.signer {
            // r||s is as long as the uncompressed point 04||x||y without its tag byte.
            Signer::Ec(pair) => pair.public_key().as_ref().len().saturating_sub(1),
            Signer::Rsa(pair) => pair.public_modulus_len(),
        }
    }

    /// The hash state after `prefix` (the token header, the same for every token this key
    /// signs), for [`sign_after`](Self::sign_after); `None` for RSA keys, whose signature
    /// costs a thousand times the hashing.
    pub(crate) fn prefix_digest(&self, prefix: &[u8]) -> Option<PrefixDigest> {
        let Signer::Ec(_) = &*self.signer else {
            return None;
        };
        let algorithm = match self.algorithm {
            Algorithm::ES384 => &digest::SHA384,
            _ => &digest::SHA256,
        };
        let mut state = digest::Context::new(algorithm);
        state.update(prefix);
        Some(PrefixDigest(state))
    }

    /// Signs `prefix || rest` where `prefix` is what `state` has hashed: the same signature
    /// as [`sign`](Self::sign) of the whole input, without hashing the prefix again (an
    /// `x5c` header is about 1 KiB, a fifth of an ES256 signature's time).
    pub(crate) fn sign_after(
        &self,
        state: &PrefixDigest,
        rest: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let Signer::Ec(pair) = &*self.signer else {
            return Err(KeyError::Signing);
        };
        let mut state = state.0.clone();
        state.update(rest);
        pair.sign_digest(&state.finish())
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError::Signing)
    }

    /// Signs a JWS signing input (`b64(header) "." b64(claims)`). ES* signatures are the
    /// raw fixed-width `r||s` JWS wants; RS* signatures are PKCS#1 v1.5.
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &*self.signer {
            Signer::Ec(pair) => pair
                .sign(&rng, signing_input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Signer::Rsa(pair) => {
                let padding = match self.algorithm {
                    Algorithm::RS384 => &RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &RSA_PKCS1_SHA512,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, signing_input, &mut signature)
                    .map_err(|_| KeyError::Signing)?;
                Ok(signature)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &self.verifying.public.material.describe())
            .field("algorithm", &self.algorithm)
            .field("libtrust_kid", &self.libtrust_kid())
            .field("rfc7638_kid", &self.rfc7638_kid())
            .field("certificates", &self.certificate_chain_der().len())
            .finish_non_exhaustive()
    }
}

/// Parses the private key of `blocks` and derives its public key.
fn load_private(blocks: &Blocks) -> Result<(Signer, PublicKeyInfo), KeyError> {
    let signer = match blocks.private_key()? {
        PrivateKeyDer::Pkcs8(der) => pkcs8(der)?,
        PrivateKeyDer::Sec1(der) => sec1(der)?,
        PrivateKeyDer::Pkcs1(der) => {
            Signer::Rsa(RsaKeyPair::from_der(der).map_err(|e| KeyError::invalid("RSA", e))?)
        }
    };
    let spki = match &signer {
        Signer::Ec(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
        Signer::Rsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
    }
    .map_err(|e| KeyError::invalid("public", e))?;
    let public = PublicKeyInfo::from_spki_der(&spki)?;
    Ok((signer, public))
}

/// PKCS#8: dispatch on the algorithm OID so unsupported types get a precise error.
fn pkcs8(der: &[u8]) -> Result<Signer, KeyError> {
    let (algorithm, parameter) = pkcs8_algorithm(der)
        .ok_or_else(|| KeyError::invalid("PKCS#8", "malformed PrivateKeyInfo"))?;
    match algorithm.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = match parameter.as_deref() {
                Some("1.2.840.10045.3.1.7") => &ECDSA_P256_SHA256_FIXED_SIGNING,
                Some("1.3.132.0.34") => &ECDSA_P384_SHA384_FIXED_SIGNING,
                Some("1.3.132.0.35") => {
                    return Err(KeyError::UnsupportedKey {
                        key: "EC P-521".to_owned(),
                        reason: P521_REASON,
                    });
                }
                other => {
                    return Err(KeyError::UnsupportedKey {
                        key: format!("EC curve {}", other.unwrap_or("(unnamed)")),
                        reason: "only P-256 and P-384 are supported",
                    });
                }
            };
            EcdsaKeyPair::from_pkcs8(curve, der)
                .map(Signer::Ec)
                .map_err(|e| KeyError::invalid("EC", e))
        }
        OID_RSA_ENCRYPTION => RsaKeyPair::from_pkcs8(der)
            .map(Signer::Rsa)
            .map_err(|e| KeyError::invalid("RSA", e)),
        other => Err(unsupported_oid(other)),
    }
}

/// The algorithm OID and its OID parameter (the curve for EC) of a PKCS#8 key.
fn pkcs8_algorithm(der: &[u8]) -> Option<(String, Option<String>)> {
    let (_, info) = Sequence::from_der(der).ok()?;
    let (rest, _version) = Any::from_der(&info.content).ok()?;
    let (_, algorithm) = AlgorithmIdentifier::from_der(rest).ok()?;
    let parameter = algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    Some((algorithm.algorithm.to_id_string(), parameter))
}

/// SEC1 `EC PRIVATE KEY`: try the supported curves, then name P-521 if it is one.
fn sec1(der: &[u8]) -> Result<Signer, KeyError> {
    let supported: [&'static EcdsaSigningAlgorithm; 2] = [
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &ECDSA_P384_SHA384_FIXED_SIGNING,
    ];
    if let Some(pair) = supported
        .into_iter()
        .find_map(|alg| EcdsaKeyPair::from_private_key_der(alg, der).ok())
    {
        return Ok(Signer::Ec(pair));
    }
    if EcdsaKeyPair::from_private_key_der(&ECDSA_P521_SHA512_FIXED_SIGNING, der).is_ok() {
        return Err(KeyError::UnsupportedKey {
            key: "EC P-521".to_owned(),
            reason: P521_REASON,
        });
    }
    Err(KeyError::invalid(
        "EC",
        "malformed, or not on curve P-256 or P-384",
    ))
}

fn required_chain(blocks: &Blocks) -> Result<Chain, KeyError> {
    blocks
        .certificate_chain()?
        .ok_or_else(|| KeyError::BadCertificate("no CERTIFICATE block found".to_owned()))
}

/// Checks that the chain's leaf holds `public` and returns the chain's DER.
fn attach_chain(public: &PublicKeyInfo, chain: Option<Chain>) -> Result<Vec<Vec<u8>>, KeyError> {
    let Some(chain) = chain else {
        return Ok(Vec::new());
    };
    let holds_key = |spki: &[u8]| {
        PublicKeyInfo::from_spki_der(spki).is_ok_and(|info| info.material == public.material)
    };
    if holds_key(&chain.leaf_spki) {
        return Ok(chain.der);
    }
    if chain.spkis.iter().skip(1).any(|spki| holds_key(spki)) {
        return Err(KeyError::CertificateMismatch(
            "the certificate chain must start with the certificate of the signing key (leaf first)",
        ));
    }
    Err(KeyError::CertificateMismatch(
        "the certificate does not match the private key",
    ))
}
