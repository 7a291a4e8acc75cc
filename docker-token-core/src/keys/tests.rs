//! Tests of SigningKey, VerifyingKey and KeySet with keys generated at run time.

use std::path::PathBuf;
use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer as _, EcPrivateKeyRfc5915Der};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_2048_8192_SHA256,
    UnparsedPublicKey,
};
use x509_parser::asn1_rs::{Any, FromDer as _, OctetString, Sequence};

use super::*;

/// One generated key per algorithm and test binary (RSA generation is slow).
pub(crate) fn generated(alg: Algorithm) -> &'static GeneratedKey {
    static ES256: OnceLock<GeneratedKey> = OnceLock::new();
    static ES384: OnceLock<GeneratedKey> = OnceLock::new();
    static RSA: OnceLock<GeneratedKey> = OnceLock::new();
    let cell = match alg {
        Algorithm::ES256 => &ES256,
        Algorithm::ES384 => &ES384,
        _ => &RSA,
    };
    cell.get_or_init(|| SigningKey::generate(alg, "docker-token test").unwrap())
}

fn pem(tag: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(tag, der.to_vec()))
}

fn pkcs8_der(key: &GeneratedKey) -> Vec<u8> {
    ::pem::parse(key.key_pem.expose()).unwrap().into_contents()
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (for RSA: PKCS#1 DER).
fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
    let (_, info) = Sequence::from_der(der).unwrap();
    let (rest, _version) = Any::from_der(&info.content).unwrap();
    let (rest, _algorithm) = Any::from_der(rest).unwrap();
    let (_, key) = OctetString::from_der(rest).unwrap();
    key.as_cow().to_vec()
}

#[test]
fn generated_keys_have_a_matching_ten_year_certificate() {
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::RS256] {
        let generated = generated(alg);
        let key = &generated.key;
        assert_eq!(key.algorithm(), alg);
        assert!(
            generated
                .key_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert_eq!(key.certificate_chain_der().len(), 1);

        let cert = pem::parse_certificate(&key.certificate_chain_der()[0]).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "docker-token test");
        assert!(cert.validity().is_valid());
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        let ten_years = 3653 * 86_400;
        assert!(
            (ten_years..=ten_years + 2 * 3600).contains(&lifetime),
            "{lifetime}"
        );
        assert!(!cert.is_ca());

        // Reloading the stored PEM gives the same key.
        let reloaded = SigningKey::from_pem(
            generated.key_pem.expose().as_bytes(),
            Some(generated.certificate_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(reloaded.libtrust_kid(), key.libtrust_kid());
        assert_eq!(reloaded.rfc7638_kid(), key.rfc7638_kid());
        assert_eq!(
            reloaded.certificate_chain_der(),
            key.certificate_chain_der()
        );
    }
}

#[test]
fn kid_styles_and_jwk() {
    let key = &generated(Algorithm::ES256).key;
    assert_eq!(key.kid(KidStyle::Libtrust), key.libtrust_kid());
    assert_eq!(key.kid(KidStyle::Rfc7638), key.rfc7638_kid());
    assert_eq!(key.libtrust_kid(), kid::libtrust(key.public_key_spki_der()));
    assert_eq!(key.rfc7638_kid().len(), 43);
    let jwk = key.public_jwk();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], key.rfc7638_kid());
    assert!(jwk.get("d").is_none(), "no private member");

    let rsa = &generated(Algorithm::RS256).key;
    let jwk = rsa.public_jwk();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["e"].as_str()),
        (Some("RSA"), Some("RS256"), Some("AQAB"))
    );
    assert_eq!(
        rsa.clone()
            .with_algorithm(Algorithm::RS512)
            .unwrap()
            .public_jwk()["alg"],
        "RS512"
    );
}

#[test]
fn sec1_and_pkcs1_keys_load_like_pkcs8() {
    // SEC1 `EC PRIVATE KEY`, converted from the PKCS#8 key by aws-lc.
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let generated = generated(alg);
        let curve = if alg == Algorithm::ES256 {
            &ECDSA_P256_SHA256_FIXED_SIGNING
        } else {
            &ECDSA_P384_SHA384_FIXED_SIGNING
        };
        let pair = EcdsaKeyPair::from_pkcs8(curve, &pkcs8_der(generated)).unwrap();
        let sec1: EcPrivateKeyRfc5915Der<'_> = pair.private_key().as_der().unwrap();
        let key =
            SigningKey::from_pem(pem("EC PRIVATE KEY", sec1.as_ref()).as_bytes(), None).unwrap();
        assert_eq!(key.algorithm(), alg);
        assert_eq!(key.libtrust_kid(), generated.key.libtrust_kid());
        assert!(key.certificate_chain_der().is_empty());
    }
    // PKCS#1 `RSA PRIVATE KEY`: the inner key of the PKCS#8 document.
    let generated = generated(Algorithm::RS256);
    let pkcs1 = pkcs8_inner(&pkcs8_der(generated));
    let key = SigningKey::from_pem(pem("RSA PRIVATE KEY", &pkcs1).as_bytes(), None).unwrap();
    assert_eq!(key.algorithm(), Algorithm::RS256);
    assert_eq!(key.rfc7638_kid(), generated.key.rfc7638_kid());
}

#[test]
fn key_and_certificate_in_one_file() {
    let generated = generated(Algorithm::ES256);
    let combined = format!(
        "# comment lines around blocks are ignored\n{}{}",
        generated.certificate_pem,
        generated.key_pem.expose()
    );
    let key = SigningKey::from_pem(combined.as_bytes(), None).unwrap();
    assert_eq!(
        key.certificate_chain_der(),
        generated.key.certificate_chain_der()
    );
    // A separate chain wins over certificates in the key file.
    let other = SigningKey::generate(Algorithm::ES256, "other").unwrap();
    let err = SigningKey::from_pem(combined.as_bytes(), Some(other.certificate_pem.as_bytes()));
    assert!(
        matches!(err, Err(KeyError::CertificateMismatch(_))),
        "{err:?}"
    );
}

#[test]
fn certificate_of_another_key_is_rejected() {
    let a = generated(Algorithm::ES256);
    let b = SigningKey::generate(Algorithm::ES256, "b").unwrap();
    let err = SigningKey::from_pem(
        a.key_pem.expose().as_bytes(),
        Some(b.certificate_pem.as_bytes()),
    )
    .unwrap_err();
    assert!(matches!(err, KeyError::CertificateMismatch(m) if m.contains("does not match")));
    // An RSA certificate for an EC key, too.
    let rsa = generated(Algorithm::RS256);
    let err = SigningKey::from_pem(
        a.key_pem.expose().as_bytes(),
        Some(rsa.certificate_pem.as_bytes()),
    );
    assert!(matches!(err, Err(KeyError::CertificateMismatch(_))));
}

/// A CA and a leaf for `leaf_key` signed by it, as PEM.
fn ca_and_leaf(leaf_key: &GeneratedKey) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf_rcgen = rcgen::KeyPair::from_pem(leaf_key.key_pem.expose()).unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "token signer");
    let leaf = leaf_params.signed_by(&leaf_rcgen, &issuer).unwrap();
    (ca.pem(), leaf.pem())
}

#[test]
fn chains_must_be_leaf_first_and_linked() {
    let generated = generated(Algorithm::ES256);
    let key_pem = generated.key_pem.expose().as_bytes();
    let (ca, leaf) = ca_and_leaf(generated);

    let key = SigningKey::from_pem(key_pem, Some(format!("{leaf}{ca}").as_bytes())).unwrap();
    assert_eq!(key.certificate_chain_der().len(), 2);
    let leaf_der = ::pem::parse(&leaf).unwrap().into_contents();
    assert_eq!(key.certificate_chain_der()[0], leaf_der);

    let err = SigningKey::from_pem(key_pem, Some(format!("{ca}{leaf}").as_bytes())).unwrap_err();
    assert!(
        matches!(&err, KeyError::BadCertificate(m) if m.contains("leaf first")),
        "{err}"
    );

    // Leaf followed by a certificate that did not issue it.
    let unrelated = SigningKey::generate(Algorithm::ES256, "unrelated").unwrap();
    let chain = format!("{leaf}{}", unrelated.certificate_pem);
    let err = SigningKey::from_pem(key_pem, Some(chain.as_bytes())).unwrap_err();
    assert!(matches!(err, KeyError::BadCertificate(_)), "{err}");
}

#[test]
fn algorithm_must_fit_the_key() {
    let p384 = generated(Algorithm::ES384).key.clone();
    let err = p384.clone().with_algorithm(Algorithm::ES256).unwrap_err();
    assert_eq!(
        err.to_string(),
        "algorithm ES256 cannot be used with an EC P-384 key"
    );
    assert!(p384.clone().with_algorithm(Algorithm::RS256).is_err());
    assert_eq!(
        p384.with_algorithm(Algorithm::ES384).unwrap().algorithm(),
        Algorithm::ES384
    );

    let rsa = generated(Algorithm::RS256).key.clone();
    assert!(matches!(
        rsa.clone().with_algorithm(Algorithm::ES256),
        Err(KeyError::AlgorithmMismatch { .. })
    ));
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        assert_eq!(rsa.clone().with_algorithm(alg).unwrap().algorithm(), alg);
    }
}

#[test]
fn unsupported_key_types_are_named() {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let err = SigningKey::from_pem(pem("PRIVATE KEY", ed.as_ref()).as_bytes(), None).unwrap_err();
    assert!(
        matches!(&err, KeyError::UnsupportedKey { key, .. } if key == "Ed25519"),
        "{err}"
    );
    assert!(err.to_string().contains("registry 2.8"), "{err}");

    let p521 = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).unwrap();
    let pkcs8 = p521.to_pkcs8v1().unwrap();
    let err =
        SigningKey::from_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(), None).unwrap_err();
    assert!(
        matches!(&err, KeyError::UnsupportedKey { key, .. } if key == "EC P-521"),
        "{err}"
    );
    let sec1 = p521.private_key().as_der().unwrap();
    let err =
        SigningKey::from_pem(pem("EC PRIVATE KEY", sec1.as_ref()).as_bytes(), None).unwrap_err();
    assert!(
        matches!(&err, KeyError::UnsupportedKey { key, .. } if key == "EC P-521"),
        "{err}"
    );
}

#[test]
fn malformed_inputs_give_specific_errors() {
    let no_key = SigningKey::from_pem(generated(Algorithm::ES256).certificate_pem.as_bytes(), None);
    assert!(matches!(no_key, Err(KeyError::NoPrivateKey)));
    assert!(matches!(
        SigningKey::from_pem(b"not pem at all", None),
        Err(KeyError::NoPrivateKey)
    ));

    let key_pem = generated(Algorithm::ES256).key_pem.expose();
    let two = format!("{key_pem}{key_pem}");
    assert!(matches!(
        SigningKey::from_pem(two.as_bytes(), None),
        Err(KeyError::MultiplePrivateKeys)
    ));

    let encrypted = pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]);
    assert!(matches!(
        SigningKey::from_pem(encrypted.as_bytes(), None),
        Err(KeyError::EncryptedKey)
    ));
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMAA=\n-----END RSA PRIVATE KEY-----\n";
    assert!(matches!(
        SigningKey::from_pem(legacy.as_bytes(), None),
        Err(KeyError::EncryptedKey)
    ));

    let garbage = pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00");
    let err = SigningKey::from_pem(garbage.as_bytes(), None).unwrap_err();
    assert!(matches!(err, KeyError::InvalidKey { .. }), "{err}");
    let garbage = pem("EC PRIVATE KEY", b"garbage");
    assert!(matches!(
        SigningKey::from_pem(garbage.as_bytes(), None),
        Err(KeyError::InvalidKey { .. })
    ));

    let bad_cert = pem("CERTIFICATE", b"garbage");
    let err = SigningKey::from_pem(key_pem.as_bytes(), Some(bad_cert.as_bytes())).unwrap_err();
    assert!(matches!(err, KeyError::BadCertificate(_)), "{err}");
    let err = SigningKey::from_pem(key_pem.as_bytes(), Some(b"")).unwrap_err();
    assert!(matches!(err, KeyError::BadCertificate(_)), "{err}");
    assert!(matches!(
        VerifyingKey::from_pem(key_pem.as_bytes()),
        Err(KeyError::NoPublicKey)
    ));
}

#[test]
fn debug_and_errors_do_not_leak_key_material() {
    let generated = generated(Algorithm::ES256);
    let body: Vec<&str> = generated
        .key_pem
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for text in [format!("{:?}", generated.key), format!("{generated:?}")] {
        assert!(text.contains(generated.key.libtrust_kid()), "{text}");
        for line in &body {
            assert!(!text.contains(line), "{text}");
        }
    }
    // Rejected keys are not echoed in messages.
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA==";
    let input = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n");
    let err = SigningKey::from_pem(input.as_bytes(), None).unwrap_err();
    assert!(!crate::display_chain(&err).contains(secret));
    assert!(!format!("{err:?}").contains(secret));
}

struct TempDir(PathBuf);
impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "docker-token-keys-{}",
            kid::libtrust(&rand_bytes())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

#[test]
fn from_files_names_the_file_at_fault() {
    let generated = generated(Algorithm::ES256);
    let dir = TempDir::new();
    let (key_path, cert_path, bad_path) = (
        dir.0.join("key.pem"),
        dir.0.join("cert.pem"),
        dir.0.join("bad.pem"),
    );
    std::fs::write(&key_path, generated.key_pem.expose()).unwrap();
    std::fs::write(&cert_path, &generated.certificate_pem).unwrap();
    std::fs::write(&bad_path, "nothing here").unwrap();

    let key = SigningKey::from_files(&key_path, Some(&cert_path)).unwrap();
    assert_eq!(key.rfc7638_kid(), generated.key.rfc7638_kid());
    assert_eq!(
        VerifyingKey::from_file(&cert_path).unwrap().rfc7638_kid(),
        key.rfc7638_kid()
    );

    let missing = dir.0.join("missing.pem");
    let err = SigningKey::from_files(&missing, None).unwrap_err();
    assert!(matches!(&err, KeyError::Read { path, .. } if *path == missing));
    assert!(err.to_string().contains("missing.pem"));

    let err = SigningKey::from_files(&bad_path, None).unwrap_err();
    assert!(
        matches!(&err, KeyError::InFile { path, source } if *path == bad_path && matches!(**source, KeyError::NoPrivateKey))
    );
    let err = SigningKey::from_files(&key_path, Some(&bad_path)).unwrap_err();
    assert!(
        crate::display_chain(&err).contains("bad.pem: bad certificate"),
        "{}",
        crate::display_chain(&err)
    );
}

#[test]
fn signatures_verify_with_aws_lc() {
    let es = &generated(Algorithm::ES256).key;
    let sig = es.sign(b"header.claims").unwrap();
    assert_eq!(sig.len(), 64, "raw r||s, not DER");
    assert_eq!(es.signature_len(), 64);
    let spki = VerifyingKey::from_spki_der(es.public_key_spki_der()).unwrap();
    let jwk = spki.public_jwk();
    let point = [
        vec![4u8],
        base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwk["x"].as_str().unwrap(),
        )
        .unwrap(),
        base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwk["y"].as_str().unwrap(),
        )
        .unwrap(),
    ]
    .concat();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(b"header.claims", &sig)
        .unwrap();

    let rsa = &generated(Algorithm::RS256).key;
    let sig = rsa.sign(b"header.claims").unwrap();
    assert_eq!(sig.len(), 256);
    assert_eq!(rsa.signature_len(), 256);
    let cert = pem::parse_certificate(&rsa.certificate_chain_der()[0]).unwrap();
    let pkcs1 = cert.public_key().subject_public_key.data.to_vec();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &pkcs1)
        .verify(b"header.claims", &sig)
        .unwrap();
    assert!(
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &pkcs1)
            .verify(b"tampered", &sig)
            .is_err()
    );
}

#[test]
fn key_set_jwks_lists_active_first_without_duplicates() {
    let active = generated(Algorithm::ES256).key.clone();
    let old = generated(Algorithm::RS256);
    let old_verifying = VerifyingKey::from_pem(old.certificate_pem.as_bytes()).unwrap();
    assert_eq!(
        old_verifying.algorithm(),
        None,
        "RSA certificates do not say which RS*"
    );
    let set = KeySet::new(active.clone())
        .with_verify_only(old_verifying.clone())
        .with_verify_only(old_verifying.with_algorithm(Algorithm::RS256).unwrap())
        .with_verify_only(active.verifying_key().clone());
    assert_eq!(set.verify_only().len(), 1);
    let jwks = set.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], active.rfc7638_kid());
    assert_eq!(keys[1]["kid"], old.key.rfc7638_kid());
    assert!(keys[1].get("alg").is_none());
    let libtrust = set.jwks_with_kid_style(KidStyle::Libtrust);
    assert_eq!(libtrust["keys"][0]["kid"], active.libtrust_kid());
    // jsonwebtoken reads the document.
    let parsed: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    assert!(parsed.find(active.rfc7638_kid()).is_some());
}

#[test]
fn verifying_key_from_public_key_pem_and_certificate_agree() {
    let key = &generated(Algorithm::ES384).key;
    let spki_pem = pem("PUBLIC KEY", key.public_key_spki_der());
    let from_spki = VerifyingKey::from_pem(spki_pem.as_bytes()).unwrap();
    let from_cert =
        VerifyingKey::from_pem(generated(Algorithm::ES384).certificate_pem.as_bytes()).unwrap();
    assert_eq!(from_spki.libtrust_kid(), key.libtrust_kid());
    assert_eq!(from_cert.rfc7638_kid(), key.rfc7638_kid());
    assert_eq!(from_spki.algorithm(), Some(Algorithm::ES384));
    assert!(from_spki.certificate_chain_der().is_empty());
    assert_eq!(
        from_cert.certificate_chain_der(),
        key.certificate_chain_der()
    );
    assert!(format!("{from_cert:?}").contains("EC P-384"));
}
