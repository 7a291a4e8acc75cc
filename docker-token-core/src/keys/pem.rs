//! Reading PEM files: private key blocks, certificate chains, public keys.

use std::path::Path;

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use zeroize::{Zeroize as _, Zeroizing};

use super::KeyError;

/// Reads a whole file; the buffer is wiped when dropped (it may hold a private key).
pub(crate) fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The DER of a private key, by its PEM label.
#[derive(Clone, Copy)]
pub(crate) enum PrivateKeyDer<'a> {
    /// `PRIVATE KEY`: PKCS#8 `PrivateKeyInfo`.
    Pkcs8(&'a [u8]),
    /// `EC PRIVATE KEY`: SEC1 / RFC 5915 `ECPrivateKey`.
    Sec1(&'a [u8]),
    /// `RSA PRIVATE KEY`: PKCS#1 `RSAPrivateKey`.
    Pkcs1(&'a [u8]),
}

/// A certificate chain as found in PEM order (leaf first), with each certificate's SPKI.
pub(crate) struct Chain {
    pub(crate) der: Vec<Vec<u8>>,
    pub(crate) spkis: Vec<Vec<u8>>,
    pub(crate) leaf_spki: Vec<u8>,
}

/// The blocks of one PEM input. Private key contents are wiped on drop.
pub(crate) struct Blocks(Vec<::pem::Pem>);

impl Blocks {
    pub(crate) fn parse(input: &[u8]) -> Result<Self, KeyError> {
        ::pem::parse_many(input)
            .map(Self)
            .map_err(|e| KeyError::Pem(Box::new(e)))
    }

    /// The single private key. Encrypted keys (PKCS#8 or legacy `Proc-Type`) are refused.
    pub(crate) fn private_key(&self) -> Result<PrivateKeyDer<'_>, KeyError> {
        let mut found = None;
        for block in &self.0 {
            let der = block.contents();
            let key = match block.tag() {
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::EncryptedKey),
                _ if block.tag().ends_with("PRIVATE KEY")
                    && block
                        .headers()
                        .get("Proc-Type")
                        .is_some_and(|v| v.contains("ENCRYPTED")) =>
                {
                    return Err(KeyError::EncryptedKey);
                }
                "PRIVATE KEY" => PrivateKeyDer::Pkcs8(der),
                "EC PRIVATE KEY" => PrivateKeyDer::Sec1(der),
                "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(der),
                _ => continue,
            };
            if found.replace(key).is_some() {
                return Err(KeyError::MultiplePrivateKeys);
            }
        }
        found.ok_or(KeyError::NoPrivateKey)
    }

    /// The first `PUBLIC KEY` block (DER SubjectPublicKeyInfo).
    pub(crate) fn public_key(&self) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|b| b.tag() == "PUBLIC KEY")
            .map(::pem::Pem::contents)
    }

    /// The DER of every `CERTIFICATE` block, in order, unchecked.
    pub(crate) fn certificates(&self) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(::pem::Pem::contents)
    }

    /// All `CERTIFICATE` blocks in order, parsed and checked to form a chain (each one
    /// issued by the next, compared by name). `None` if there are none.
    pub(crate) fn certificate_chain(&self) -> Result<Option<Chain>, KeyError> {
        let der: Vec<Vec<u8>> = self
            .0
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.contents().to_vec())
            .collect();
        if der.is_empty() {
            return Ok(None);
        }
        let certs = der
            .iter()
            .map(|d| parse_certificate(d))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, pair) in certs.windows(2).enumerate() {
            if let [child, parent] = pair
                && child.issuer().as_raw() != parent.subject().as_raw()
            {
                return Err(KeyError::BadCertificate(format!(
                    "certificate {} of the chain was not issued by certificate {}; \
                     list the chain leaf first, then each issuer",
                    i + 1,
                    i + 2
                )));
            }
        }
        let spkis: Vec<Vec<u8>> = certs.iter().map(|c| c.public_key().raw.to_vec()).collect();
        let Some(leaf) = certs.first() else {
            return Ok(None);
        };
        if !leaf.validity().is_valid() {
            tracing::warn!(
                subject = %leaf.subject(),
                not_before = %leaf.validity().not_before,
                not_after = %leaf.validity().not_after,
                "the leaf certificate is outside its validity period: registries that verify \
                 the x5c chain will reject tokens signed with this key (kid lookups still work)"
            );
        }
        let leaf_spki = leaf.public_key().raw.to_vec();
        drop(certs);
        Ok(Some(Chain {
            der,
            spkis,
            leaf_spki,
        }))
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for block in std::mem::take(&mut self.0) {
            if block.tag().contains("PRIVATE KEY") {
                block.into_contents().zeroize();
            }
        }
    }
}

/// Parses one DER certificate, refusing trailing bytes.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, KeyError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(KeyError::BadCertificate(
            "trailing data after the certificate".to_owned(),
        )),
        Err(e) => Err(KeyError::BadCertificate(e.to_string())),
    }
}
