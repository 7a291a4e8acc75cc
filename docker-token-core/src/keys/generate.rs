//! Generating a key and a self-signed certificate (for the quickstart).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyUsagePurpose};
use zeroize::{Zeroize as _, Zeroizing};

use super::{Algorithm, KeyError, SigningKey};
use crate::Password;

/// How long a generated certificate is valid: ten years (3653 days).
const VALIDITY: Duration = Duration::from_secs(3653 * 24 * 60 * 60);
/// How far back `notBefore` is set, to tolerate clocks running behind.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// A freshly generated key: the parsed key plus the PEM to store.
pub struct GeneratedKey {
    /// The key, ready to sign.
    pub key: SigningKey,
    /// The private key as PKCS#8 PEM (`PRIVATE KEY`). Store it with restrictive permissions.
    pub key_pem: Password,
    /// The self-signed certificate as PEM; put it in the registry's `rootcertbundle`.
    pub certificate_pem: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key", &self.key)
            .field("key_pem", &self.key_pem)
            .field("certificate_pem", &self.certificate_pem)
            .finish()
    }
}

impl SigningKey {
    /// Generates a key for `alg` (EC P-256/P-384, or RSA 2048 bits for RS*) and a
    /// self-signed certificate for it with subject `CN=<common_name>`, valid for ten years
    /// from one hour ago, key usage digitalSignature, not a CA.
    pub fn generate(alg: Algorithm, common_name: &str) -> Result<GeneratedKey, KeyError> {
        let failed = |e: &dyn fmt::Display| KeyError::Generation(e.to_string());
        let pkcs8: Zeroizing<Vec<u8>> = Zeroizing::new(match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let curve = if alg == Algorithm::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = EcdsaKeyPair::generate(curve).map_err(|e| failed(&e))?;
                pair.to_pkcs8v1().map_err(|e| failed(&e))?.as_ref().to_vec()
            }
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| failed(&e))?;
                pair.as_der().map_err(|e| failed(&e))?.as_ref().to_vec()
            }
        });
        let rcgen_key = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| failed(&e))?;

        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + now.saturating_sub(BACKDATE);
        params.not_after = epoch + now.saturating_add(VALIDITY);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let certificate = params.self_signed(&rcgen_key).map_err(|e| failed(&e))?;
        let certificate_pem = certificate.pem();

        let block = ::pem::Pem::new("PRIVATE KEY", pkcs8.to_vec());
        let key_pem = Password::new(::pem::encode(&block));
        block.into_contents().zeroize();
        let key = Self::from_pem(
            key_pem.expose().as_bytes(),
            Some(certificate_pem.as_bytes()),
        )?
        .with_algorithm(alg)?;
        Ok(GeneratedKey {
            key,
            key_pem,
            certificate_pem,
        })
    }
}
