//! `x5c` chains that end at a trusted certificate authority (protocol.md §3.2): the leaf
//! is signed by a CA certificate of the bundle, directly or through intermediates sent in
//! `x5c`, as the registry's `x509.Verify` against its `rootcertbundle` accepts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};

use super::VerifyError;
use crate::keys::pem::parse_certificate;

/// Longest path searched: leaf, up to three intermediates, the anchor.
const MAX_DEPTH: usize = 4;
/// At most this many `x5c` entries are decoded.
const MAX_X5C: usize = 8;

/// Decodes `x5c` (standard base64 DER, leaf first); `Malformed` if an entry is not base64.
pub(super) fn decode_x5c(x5c: &[String]) -> Result<Vec<Vec<u8>>, VerifyError> {
    x5c.iter()
        .take(MAX_X5C)
        .map(|c| {
            STANDARD
                .decode(c)
                .map_err(|_| VerifyError::Malformed("an x5c entry is not base64"))
        })
        .collect()
}

/// Checks that `chain[0]` (the leaf) leads to one of `anchors` (trusted CA certificates,
/// DER) through the other `chain` entries: every link's signature verifies with its
/// issuer's key, every issuer is a CA (basicConstraints CA:TRUE), every certificate on
/// the path is inside its validity period at `now` (Unix seconds). SHA-1 signatures are
/// refused (Go's x509 does too).
pub(super) fn verify_path(
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: i64,
) -> Result<(), VerifyError> {
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|der| parse_certificate(der))
        .collect::<Result<_, _>>()
        .map_err(|_| VerifyError::UnknownKey)?;
    let Some(leaf) = parsed.first() else {
        return Err(VerifyError::UnknownKey);
    };
    if !valid_at(leaf, now) {
        return Err(VerifyError::CertificateNotValid);
    }
    let anchors: Vec<X509Certificate<'_>> = anchors
        .iter()
        .filter_map(|der| parse_certificate(der).ok())
        .filter(|c| c.is_ca())
        .collect();
    let mut current = leaf;
    for _ in 0..MAX_DEPTH {
        if anchors.iter().any(|a| issued_by(current, a, now)) {
            return Ok(());
        }
        match parsed[1..]
            .iter()
            .find(|i| i.is_ca() && issued_by(current, i, now))
        {
            Some(intermediate) => current = intermediate,
            None => break,
        }
    }
    Err(VerifyError::UnknownKey)
}

/// Whether `issuer` (valid at `now`) signed `cert`.
fn issued_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>, now: i64) -> bool {
    let algorithm = &cert.signature_algorithm.algorithm;
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && valid_at(issuer, now)
        && *algorithm != OID_PKCS1_SHA1WITHRSA
        && *algorithm != OID_SHA1_WITH_RSA
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn valid_at(cert: &X509Certificate<'_>, now: i64) -> bool {
    let validity = cert.validity();
    (validity.not_before.timestamp()..=validity.not_after.timestamp()).contains(&now)
}
