//! Tests of the verifier: every rejection the registry makes, key selection, key sources,
//! the challenge's quoting, and a property test against `TokenIssuer`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::keys::tests::generated;
use crate::keys::{KidStyle, SigningKey};
use crate::token::TokenIssuer;

const ISSUER: &str = "test-issuer";
const SERVICE: &str = "test-registry";

fn now() -> i64 {
    unix_seconds(SystemTime::now())
}

fn key(alg: Algorithm) -> SigningKey {
    generated(alg).key.clone().with_algorithm(alg).unwrap()
}

fn verifier_for(keys: &KeySet) -> TokenVerifier {
    TokenVerifier::builder(ISSUER, SERVICE)
        .key_set(keys)
        .build()
        .unwrap()
}

fn verifier(alg: Algorithm) -> TokenVerifier {
    verifier_for(&KeySet::new(key(alg)))
}

/// Claims the registry accepts, valid now, granting pull on demo/hello.
fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
        "iat": now, "jti": "j1",
        "access": [{"type": "repository", "name": "demo/hello", "actions": ["pull"]}],
    })
}

fn header(key: &SigningKey) -> Value {
    json!({"typ": "JWT", "alg": key.algorithm().as_str(), "kid": key.libtrust_kid()})
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A compact JWS with exactly this header and these claims, signed by `key`.
fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", encode(header), encode(claims));
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Asserts the error and that its message does not contain the token or its parts.
fn rejects(verifier: &TokenVerifier, token: &str, expected: &VerifyError) {
    let error = verifier.verify(token).unwrap_err();
    assert_eq!(&error, expected, "{token}");
    let text = format!("{error} {error:?}");
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "{text}");
    }
    assert_eq!(error.challenge_error(), ChallengeError::InvalidToken);
}

#[test]
fn a_valid_token_verifies_with_typed_claims() {
    let key = key(Algorithm::ES256);
    let token = sign(&key, &header(&key), &claims());
    let verified = verifier(Algorithm::ES256).verify(&token).unwrap();
    assert_eq!(verified.subject(), "alice");
    assert_eq!(verified.issuer(), ISSUER);
    assert_eq!(verified.audience(), [SERVICE]);
    assert_eq!(verified.jti(), Some("j1"));
    assert_eq!(verified.algorithm(), Algorithm::ES256);
    assert_eq!(verified.key_id(), key.rfc7638_kid());
    assert!(verified.expires_at() > SystemTime::now());
    assert!(verified.not_before().unwrap() < SystemTime::now());
    assert!(verified.issued_at().is_some());
    assert!(verified.allows("repository", "demo/hello", "pull"));
}

#[test]
fn rejects_a_wrong_signature() {
    let key = key(Algorithm::ES256);
    let token = sign(&key, &header(&key), &claims());
    let (input, _) = token.rsplit_once('.').unwrap();
    let verifier = verifier(Algorithm::ES256);
    // Claims changed after signing.
    let mut forged = claims();
    forged["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        encode(&header(&key)),
        encode(&forged),
        token.rsplit('.').next().unwrap()
    );
    rejects(&verifier, &tampered, &VerifyError::BadSignature);
    // Another key's signature under this key's kid.
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger")
        .unwrap()
        .key;
    let signature = stranger.sign(input.as_bytes()).unwrap();
    let swapped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    rejects(&verifier, &swapped, &VerifyError::BadSignature);
    // Truncated and empty signatures.
    rejects(
        &verifier,
        &format!("{input}.AAAA"),
        &VerifyError::BadSignature,
    );
    rejects(&verifier, &format!("{input}."), &VerifyError::BadSignature);
}

#[test]
fn rejects_an_unknown_kid_and_a_missing_one() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let mut h = header(&key);
    h["kid"] = json!("AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL");
    rejects(
        &verifier,
        &sign(&key, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    let h = json!({"alg": "ES256"});
    rejects(
        &verifier,
        &sign(&key, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    // A token signed by a key outside the set, with its own (correct) kid.
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger")
        .unwrap()
        .key;
    let token = sign(&stranger, &header(&stranger), &claims());
    rejects(&verifier, &token, &VerifyError::UnknownKey);
}

#[test]
fn accepts_both_kid_styles() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    for kid in [key.libtrust_kid(), key.rfc7638_kid()] {
        let h = json!({"alg": "ES256", "kid": kid});
        assert!(verifier.verify(&sign(&key, &h, &claims())).is_ok());
    }
}

#[test]
fn rejects_alg_none() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    for alg in ["none", "None", "NONE", ""] {
        let h = json!({"alg": alg, "kid": key.libtrust_kid()});
        let token = format!("{}.{}.", encode(&h), encode(&claims()));
        let expected = VerifyError::UnsupportedAlgorithm(alg.to_owned());
        rejects(&verifier, &token, &expected);
        // …also with a signature attached.
        let signed = sign(&key, &h, &claims());
        rejects(&verifier, &signed, &expected);
    }
}

#[test]
fn rejects_hs256_with_the_public_key_as_secret() {
    use aws_lc_rs::hmac;
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let key = key(alg);
        let verifier = verifier(alg);
        let public = key.verifying_key();
        let spki_pem = ::pem::encode(&::pem::Pem::new(
            "PUBLIC KEY",
            public.public_key_spki_der().to_vec(),
        ));
        let jwk = public.public_jwk().to_string();
        let secrets: [&[u8]; 3] = [
            spki_pem.as_bytes(),
            public.public_key_spki_der(),
            jwk.as_bytes(),
        ];
        for (name, hmac_alg) in [
            ("HS256", hmac::HMAC_SHA256),
            ("HS384", hmac::HMAC_SHA384),
            ("HS512", hmac::HMAC_SHA512),
        ] {
            for secret in secrets {
                let h = json!({"alg": name, "kid": key.libtrust_kid()});
                let input = format!("{}.{}", encode(&h), encode(&claims()));
                let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), input.as_bytes());
                let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
                rejects(
                    &verifier,
                    &token,
                    &VerifyError::UnsupportedAlgorithm(name.to_owned()),
                );
            }
        }
    }
}

#[test]
fn rejects_other_algorithms_and_honours_the_allow_list() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    for alg in ["PS256", "EdDSA", "ES512", "es256", "RS1"] {
        let h = json!({"alg": alg, "kid": key.libtrust_kid()});
        rejects(
            &verifier,
            &sign(&key, &h, &claims()),
            &VerifyError::UnsupportedAlgorithm(alg.to_owned()),
        );
    }
    // Hostile alg values are not echoed.
    let h = json!({"alg": "<script>alert(1)</script>", "kid": key.libtrust_kid()});
    let error = verifier.verify(&sign(&key, &h, &claims())).unwrap_err();
    assert!(!error.to_string().contains("script"), "{error}");

    let rsa_only = TokenVerifier::builder(ISSUER, SERVICE)
        .key_set(&KeySet::new(key.clone()))
        .algorithms([Algorithm::RS256])
        .build()
        .unwrap();
    assert_eq!(rsa_only.algorithms(), [Algorithm::RS256]);
    rejects(
        &rsa_only,
        &sign(&key, &header(&key), &claims()),
        &VerifyError::AlgorithmNotAllowed(Algorithm::ES256),
    );
    assert!(matches!(
        TokenVerifier::builder(ISSUER, SERVICE)
            .key_set(&KeySet::new(key))
            .algorithms([])
            .build(),
        Err(KeyError::NoAlgorithm)
    ));
}

#[test]
fn rejects_an_algorithm_that_does_not_fit_the_key() {
    // ES384 header on a P-256 key (protocol.md §9: registry 2.8 rejects it too).
    let es256 = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let h = json!({"alg": "ES384", "kid": es256.libtrust_kid()});
    rejects(
        &verifier,
        &sign(&es256, &h, &claims()),
        &VerifyError::AlgorithmMismatch(Algorithm::ES384),
    );
    // RS256 header naming an EC key.
    let h = json!({"alg": "RS256", "kid": es256.libtrust_kid()});
    rejects(
        &verifier,
        &sign(&es256, &h, &claims()),
        &VerifyError::AlgorithmMismatch(Algorithm::RS256),
    );
    // An RSA key verifies RS256, RS384 and RS512, each with its own hash.
    let rsa = generated(Algorithm::RS256).key.clone();
    let verifier = verifier_for(&KeySet::new(rsa.clone()));
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        let signer = rsa.clone().with_algorithm(alg).unwrap();
        assert!(
            verifier
                .verify(&sign(&signer, &header(&signer), &claims()))
                .is_ok()
        );
        // The same signature under another RS* name does not verify.
        let other = if alg == Algorithm::RS256 {
            "RS512"
        } else {
            "RS256"
        };
        let h = json!({"alg": other, "kid": rsa.libtrust_kid()});
        let input = format!("{}.{}", encode(&h), encode(&claims()));
        let signature = signer.sign(input.as_bytes()).unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        rejects(&verifier, &token, &VerifyError::BadSignature);
    }
}

#[test]
fn rejects_expired_and_not_yet_valid_tokens_with_the_registry_leeway() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    assert_eq!(verifier.leeway(), Duration::from_secs(60));
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        sign(&key, &header(&key), &c)
    };
    let now = now();
    // protocol.md §9: exp = now-30 ✔, now-90 ✘; nbf = now+30 ✔, now+90 ✘.
    assert!(verifier.verify(&with("exp", json!(now - 30))).is_ok());
    rejects(
        &verifier,
        &with("exp", json!(now - 90)),
        &VerifyError::Expired,
    );
    let mut c = claims();
    c["nbf"] = json!(now + 30);
    c["iat"] = json!(now + 30);
    assert!(verifier.verify(&sign(&key, &header(&key), &c)).is_ok());
    let mut c = claims();
    c["nbf"] = json!(now + 90);
    rejects(
        &verifier,
        &sign(&key, &header(&key), &c),
        &VerifyError::NotYetValid,
    );
    rejects(
        &verifier,
        &with("iat", json!(now + 90)),
        &VerifyError::IssuedInFuture,
    );
    // Missing exp (the registry reads 0 = 1970), fractional and string times.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    rejects(
        &verifier,
        &sign(&key, &header(&key), &c),
        &VerifyError::MalformedClaims("`exp` is missing"),
    );
    for bad in [json!(1.5), json!("1795320116"), json!(now as f64 + 0.5)] {
        let error = verifier.verify(&with("exp", bad)).unwrap_err();
        assert!(
            matches!(error, VerifyError::MalformedClaims(_)),
            "{error:?}"
        );
    }
    // Absent nbf and iat are fine; extreme values do not panic.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("nbf");
    c.as_object_mut().unwrap().remove("iat");
    assert!(verifier.verify(&sign(&key, &header(&key), &c)).is_ok());
    assert!(verifier.verify(&with("exp", json!(i64::MAX))).is_ok());
    rejects(
        &verifier,
        &with("exp", json!(i64::MIN)),
        &VerifyError::Expired,
    );
    rejects(
        &verifier,
        &with("nbf", json!(i64::MAX)),
        &VerifyError::NotYetValid,
    );

    // verify_at and a custom leeway, relative to the token's own times.
    let c = claims();
    let (exp, nbf) = (c["exp"].as_i64().unwrap(), c["nbf"].as_i64().unwrap());
    let token = sign(&key, &header(&key), &c);
    let strict = TokenVerifier::builder(ISSUER, SERVICE)
        .key_set(&KeySet::new(key.clone()))
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs());
    assert!(strict.verify_at(&token, at(exp)).is_ok());
    assert_eq!(
        strict.verify_at(&token, at(exp + 1)),
        Err(VerifyError::Expired)
    );
    assert!(verifier.verify_at(&token, at(exp + 60)).is_ok());
    assert_eq!(
        verifier.verify_at(&token, at(exp + 61)),
        Err(VerifyError::Expired)
    );
    assert_eq!(
        strict.verify_at(&token, at(nbf - 1)),
        Err(VerifyError::NotYetValid)
    );
    assert!(verifier.verify_at(&token, at(nbf - 50)).is_ok()); // iat = nbf + 10
}

#[test]
fn rejects_a_wrong_issuer_or_audience_and_accepts_an_audience_array() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        sign(&key, &header(&key), &c)
    };
    rejects(
        &verifier,
        &with("iss", json!("other")),
        &VerifyError::WrongIssuer,
    );
    rejects(
        &verifier,
        &with("iss", Value::Null),
        &VerifyError::WrongIssuer,
    );
    rejects(
        &verifier,
        &with("iss", json!("test-issuer ")),
        &VerifyError::WrongIssuer,
    );
    rejects(
        &verifier,
        &with("aud", json!("other")),
        &VerifyError::WrongAudience,
    );
    rejects(
        &verifier,
        &with("aud", json!("Test-Registry")),
        &VerifyError::WrongAudience,
    );
    rejects(
        &verifier,
        &with("aud", json!([])),
        &VerifyError::WrongAudience,
    );
    rejects(
        &verifier,
        &with("aud", json!(["a", "b"])),
        &VerifyError::WrongAudience,
    );
    rejects(
        &verifier,
        &with("aud", Value::Null),
        &VerifyError::WrongAudience,
    );
    let verified = verifier
        .verify(&with("aud", json!(["a", SERVICE])))
        .unwrap();
    assert_eq!(verified.audience(), ["a", SERVICE]);
    let error = verifier.verify(&with("aud", json!(7))).unwrap_err();
    assert!(
        matches!(error, VerifyError::MalformedClaims(_)),
        "{error:?}"
    );
}

#[test]
fn a_token_for_another_repository_allows_nothing_there() {
    let key = key(Algorithm::ES256);
    let token = sign(&key, &header(&key), &claims());
    let verified = verifier(Algorithm::ES256).verify(&token).unwrap();
    assert!(verified.allows("repository", "demo/hello", "pull"));
    assert!(!verified.allows("repository", "demo/other", "pull"));
    assert!(!verified.allows("repository", "demo/hello", "push"));
    assert!(!verified.allows("repository", "Demo/hello", "pull"));
    assert!(!verified.allows("repository", "library/demo/hello", "pull"));
    assert!(!verified.allows("registry", "demo/hello", "pull"));
    assert!(!verified.allows("repository", "demo/hello", "*"));
}

#[test]
fn rejects_a_malformed_access_claim() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    for access in [
        json!("repository:demo/hello:pull"),
        json!({"type": "repository", "name": "demo/hello", "actions": ["pull"]}),
        json!([{"type": "repository", "name": "demo/hello", "actions": "pull"}]),
        json!([{"type": "repository", "name": "demo/hello", "actions": [1]}]),
        json!([{"name": "demo/hello", "actions": ["pull"]}]),
        json!([{"type": "repository", "actions": ["pull"]}]),
        json!([{"type": 1, "name": "demo/hello", "actions": ["pull"]}]),
        json!(["pull"]),
        json!(7),
    ] {
        let mut c = claims();
        c["access"] = access.clone();
        rejects(
            &verifier,
            &sign(&key, &header(&key), &c),
            &VerifyError::MalformedAccess,
        );
    }
    // Absent, null and empty access are valid and grant nothing (login tokens).
    for access in [None, Some(Value::Null), Some(json!([]))] {
        let mut c = claims();
        match access {
            None => {
                c.as_object_mut().unwrap().remove("access");
            }
            Some(v) => c["access"] = v,
        }
        let verified = verifier.verify(&sign(&key, &header(&key), &c)).unwrap();
        assert!(verified.access().is_empty());
    }
}

#[test]
fn access_matching_is_the_registrys() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let mut c = claims();
    c["access"] = json!([
        {"type": "repository", "class": "plugin", "name": "a", "actions": ["pull"]},
        {"type": "repository", "name": "a", "actions": ["push", "pull"]},
        {"type": "repository", "name": "b", "actions": ["*"]},
        {"type": "repository(plugin)", "name": "c", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
        {"type": "repository", "name": "d", "extra": true},
    ]);
    let verified = verifier.verify(&sign(&key, &header(&key), &c)).unwrap();
    let access = verified.access();
    assert_eq!(access.actions("repository", "a"), ["pull", "push"]);
    assert!(access.allows("repository", "a", "push"));
    assert!(!access.allows("repository", "a", "delete"));
    assert!(access.allows("repository", "b", "delete"));
    assert!(access.allows("repository", "b", "*"));
    assert!(!access.allows("repository", "c", "pull"));
    assert!(access.allows("repository(plugin)", "c", "pull"));
    assert!(access.allows("registry", "catalog", "*"));
    assert!(!access.allows("repository", "d", "pull"));
    assert_eq!(access.entries().len(), 5);
    assert!(!access.is_empty());
    let scope = crate::Scope::parse("repository(plugin):a:pull,push").unwrap();
    assert!(access.allows_scope(&scope));
    let scope = crate::Scope::parse("repository:a:pull,delete").unwrap();
    assert!(!access.allows_scope(&scope));
    // The catalog needs a literal `*`.
    let catalog = Access::new([AccessEntry::new("registry", "catalog", ["pull", "search"])]);
    assert!(!catalog.allows("registry", "catalog", "*"));
}

#[test]
fn selects_the_key_by_x5c_first() {
    let signer = key(Algorithm::ES256);
    let chain: Vec<String> = signer
        .certificate_chain_der()
        .iter()
        .map(|c| STANDARD.encode(c))
        .collect();
    assert!(!chain.is_empty());
    let verifier = verifier(Algorithm::ES256);
    // x5c with a bogus kid: x5c wins (protocol.md §9).
    let h = json!({"alg": "ES256", "kid": "bogus", "x5c": chain});
    assert!(verifier.verify(&sign(&signer, &h, &claims())).is_ok());
    // x5c alone.
    let h = json!({"alg": "ES256", "x5c": chain});
    assert!(verifier.verify(&sign(&signer, &h, &claims())).is_ok());
    // x5c naming an untrusted certificate: no fallback to a good kid.
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger")
        .unwrap()
        .key;
    let other_chain: Vec<String> = stranger
        .certificate_chain_der()
        .iter()
        .map(|c| STANDARD.encode(c))
        .collect();
    let h = json!({"alg": "ES256", "kid": signer.libtrust_kid(), "x5c": other_chain});
    rejects(
        &verifier,
        &sign(&signer, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    // An empty x5c, and garbage in it.
    let h = json!({"alg": "ES256", "kid": signer.libtrust_kid(), "x5c": []});
    rejects(
        &verifier,
        &sign(&signer, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    let h = json!({"alg": "ES256", "x5c": ["bm90IGEgY2VydA=="]});
    rejects(
        &verifier,
        &sign(&signer, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    let h = json!({"alg": "ES256", "x5c": ["%%%"]});
    let error = verifier.verify(&sign(&signer, &h, &claims())).unwrap_err();
    assert!(matches!(error, VerifyError::Malformed(_)), "{error:?}");
}

#[test]
fn jwk_headers_must_hold_a_trusted_key() {
    // protocol.md §9: jwk (root key, no kid member) ✔, with libtrust kid ✔.
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let mut jwk = key.public_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let h = json!({"alg": "ES256", "jwk": jwk});
    assert!(verifier.verify(&sign(&key, &h, &claims())).is_ok());
    jwk["kid"] = json!(key.libtrust_kid());
    let h = json!({"alg": "ES256", "jwk": jwk});
    assert!(verifier.verify(&sign(&key, &h, &claims())).is_ok());
    // a kid member of another (or no) trusted key
    jwk["kid"] = json!("someone-else");
    let h = json!({"alg": "ES256", "jwk": jwk});
    rejects(
        &verifier,
        &sign(&key, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    // an untrusted key embedded, even with a trusted key's kid member
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger")
        .unwrap()
        .key;
    let mut jwk = stranger.public_jwk();
    jwk["kid"] = json!(key.libtrust_kid());
    let h = json!({"alg": "ES256", "jwk": jwk, "kid": key.libtrust_kid()});
    rejects(
        &verifier,
        &sign(&stranger, &h, &claims()),
        &VerifyError::UnknownKey,
    );
    // a symmetric key in the header is never a trusted key
    let h = json!({"alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
    rejects(
        &verifier,
        &sign(&key, &h, &claims()),
        &VerifyError::UnknownKey,
    );
}

#[test]
fn a_reissued_certificate_for_a_trusted_key_is_accepted_and_its_validity_checked() {
    let signer = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let pkcs8 = ::pem::parse(generated(Algorithm::ES256).key_pem.expose())
        .unwrap()
        .into_contents();
    let rcgen_key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["reissued".to_owned()]).unwrap();
    let issue = |params: &rcgen::CertificateParams| {
        let der = params.self_signed(&rcgen_key).unwrap().der().to_vec();
        json!({"alg": "ES256", "x5c": [STANDARD.encode(der)]})
    };
    assert!(
        verifier
            .verify(&sign(&signer, &issue(&params), &claims()))
            .is_ok()
    );
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    rejects(
        &verifier,
        &sign(&signer, &issue(&params), &claims()),
        &VerifyError::CertificateNotValid,
    );
}

#[test]
fn rejects_malformed_tokens() {
    let key = key(Algorithm::ES256);
    let verifier = verifier(Algorithm::ES256);
    let good = sign(&key, &header(&key), &claims());
    let (h, rest) = good.split_once('.').unwrap();
    let (c, s) = rest.split_once('.').unwrap();
    for token in [
        String::new(),
        "a".to_owned(),
        format!("{h}.{c}"),
        format!("{h}.{c}.{s}.x"),
        format!("{h}.{c}.{s}."),
        format!("!{h}.{c}.{s}"),
        format!("{}.{c}.{s}", URL_SAFE_NO_PAD.encode("[1,2]")),
        format!("{}.{c}.{s}", URL_SAFE_NO_PAD.encode("{\"alg\":7}")),
        format!(
            "{}.{c}.{s}",
            URL_SAFE_NO_PAD.encode("{\"alg\":\"ES256\",\"alg\":\"ES256\"}")
        ),
        "x".repeat(MAX_TOKEN_LEN + 1),
    ] {
        let error = verifier.verify(&token).unwrap_err();
        assert!(
            matches!(error, VerifyError::Malformed(_)),
            "{error:?} for {token:.40}"
        );
    }
    // crit is refused.
    let mut hd = header(&key);
    hd["crit"] = json!(["exp"]);
    let error = verifier.verify(&sign(&key, &hd, &claims())).unwrap_err();
    assert!(matches!(error, VerifyError::Malformed(_)), "{error:?}");
    // Claims that are an array, or not JSON, after a good signature.
    for body in ["[1]", "nope", "{\"iss\":1}"] {
        let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(body));
        let sig = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap());
        let error = verifier.verify(&format!("{input}.{sig}")).unwrap_err();
        assert!(
            matches!(error, VerifyError::MalformedClaims(_)),
            "{error:?}"
        );
    }
    // Padding is tolerated (the registry's decoder does), the signature input stays exact.
    let padded_sig = STANDARD.encode(key.sign(format!("{h}.{c}").as_bytes()).unwrap());
    let padded_sig = padded_sig.replace('+', "-").replace('/', "_");
    assert!(verifier.verify(&format!("{h}.{c}.{padded_sig}")).is_ok());
}

#[test]
fn keys_from_jwks_and_certificate_bundles() {
    let es = key(Algorithm::ES256);
    let rsa = key(Algorithm::RS256);
    let set = KeySet::new(es.clone()).with_verify_only(rsa.verifying_key().clone());
    let es_token = sign(&es, &header(&es), &claims());
    let rsa_token = sign(&rsa, &header(&rsa), &claims());

    // Our JWKS (RFC 7638 kids); tokens carry libtrust kids and still verify.
    let jwks = set.jwks().to_string();
    let from_jwks = TokenVerifier::builder(ISSUER, SERVICE)
        .jwks(jwks.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(from_jwks.keys().count(), 2);
    assert!(from_jwks.verify(&es_token).is_ok());
    assert!(from_jwks.verify(&rsa_token).is_ok());

    // A JWKS kid is trusted literally (registry 3.x `jwks:`).
    let mut doc: Value = serde_json::from_str(&jwks).unwrap();
    doc["keys"][0]["kid"] = json!("my-key-2026");
    let v = TokenVerifier::builder(ISSUER, SERVICE)
        .jwks_json(&doc)
        .unwrap()
        .build()
        .unwrap();
    let h = json!({"alg": "ES256", "kid": "my-key-2026"});
    assert!(v.verify(&sign(&es, &h, &claims())).is_ok());

    // Unsupported keys are skipped, `use: enc` too; nothing usable is an error.
    let doc = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        set.jwks()["keys"][1].clone(),
    ]});
    let v = TokenVerifier::builder(ISSUER, SERVICE)
        .jwks_json(&doc)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(v.keys().count(), 1);
    assert!(v.verify(&rsa_token).is_ok());
    rejects(&v, &es_token, &VerifyError::UnknownKey);
    // …and a token naming the skipped `oct` key's kid is not verified with it.
    let h = json!({"alg": "HS256", "kid": "hmac"});
    rejects(
        &v,
        &sign(&es, &h, &claims()),
        &VerifyError::UnsupportedAlgorithm("HS256".to_owned()),
    );
    let mut enc = set.jwks()["keys"][0].clone();
    enc["use"] = json!("enc");
    for bad in [
        json!({"keys": []}),
        json!({"keys": [enc]}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}),
        json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
        json!([]),
        json!({"key": []}),
    ] {
        let error = TokenVerifier::builder(ISSUER, SERVICE)
            .jwks_json(&bad)
            .unwrap_err();
        assert!(matches!(error, KeyError::Jwks(_)), "{error:?} for {bad}");
    }
    assert!(matches!(
        TokenVerifier::builder(ISSUER, SERVICE).jwks(b"not json"),
        Err(KeyError::Jwks(_))
    ));
    // The same kid on two different keys.
    let mut doc = set.jwks();
    doc["keys"][0]["kid"] = json!("same");
    doc["keys"][1]["kid"] = json!("same");
    assert!(matches!(
        TokenVerifier::builder(ISSUER, SERVICE).jwks_json(&doc).unwrap().build(),
        Err(KeyError::KeyIdConflict(k)) if k == "same"
    ));

    // A rootcertbundle with both certificates (and a stray private key block, ignored).
    let bundle = format!(
        "{}{}{}",
        generated(Algorithm::ES256).certificate_pem,
        generated(Algorithm::RS256).key_pem.expose(),
        generated(Algorithm::RS256).certificate_pem,
    );
    let from_bundle = TokenVerifier::builder(ISSUER, SERVICE)
        .certificate_bundle_pem(bundle.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(from_bundle.keys().count(), 2);
    assert!(from_bundle.verify(&es_token).is_ok());
    assert!(from_bundle.verify(&rsa_token).is_ok());
    let x5c_token = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(es.clone()))
        .with_kid_style(KidStyle::Rfc7638)
        .issue("a", SERVICE, &[])
        .unwrap()
        .token;
    assert!(from_bundle.verify(&x5c_token).is_ok());
    assert!(
        TokenVerifier::builder(ISSUER, SERVICE)
            .certificate_bundle_pem(generated(Algorithm::ES256).key_pem.expose().as_bytes())
            .is_err()
    );

    // Keys given twice are one key; no key at all is an error.
    let twice = TokenVerifier::builder(ISSUER, SERVICE)
        .key_set(&set)
        .jwks(jwks.as_bytes())
        .unwrap()
        .certificate_bundle_pem(bundle.as_bytes())
        .unwrap()
        .key(es.verifying_key().clone())
        .build()
        .unwrap();
    assert_eq!(twice.keys().count(), 2);
    assert!(matches!(
        TokenVerifier::builder(ISSUER, SERVICE).build(),
        Err(KeyError::NoTrustedKey)
    ));
    let text = format!("{twice:?}");
    assert!(text.contains("keys: 2"), "{text}");
}

#[test]
fn jwk_with_short_go_style_coordinates_is_padded() {
    // A P-256 key whose x starts with 0x00, written with the leading zero dropped.
    let key = (0..5000)
        .map(|_| SigningKey::generate(Algorithm::ES256, "zero").unwrap().key)
        .find(|k| {
            let jwk = k.public_jwk();
            URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap()[0] == 0
        });
    let Some(key) = key else {
        return; // ≈ 1 key in 256 has it; 5000 tries miss with probability < 1e-8
    };
    let mut jwk = key.public_jwk();
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    jwk["x"] = json!(URL_SAFE_NO_PAD.encode(&x[1..]));
    let from_jwk = VerifyingKey::from_jwk(&jwk).unwrap();
    assert_eq!(from_jwk.rfc7638_kid(), key.rfc7638_kid());
}

#[test]
fn challenge_quotes_like_go() {
    let plain = Challenge::new("http://127.0.0.1:5001/token", "test-registry");
    assert_eq!(
        plain.to_string(),
        r#"Bearer realm="http://127.0.0.1:5001/token",service="test-registry""#
    );
    assert_eq!(plain.scope_param(), None);
    assert_eq!(plain.error(), None);
    // The examples of protocol.md §2.1.
    let c = plain
        .clone()
        .with_access("repository", "foo", "pull")
        .with_access("repository", "foo", "push")
        .with_access("repository", "bar", "pull")
        .with_error(ChallengeError::InsufficientScope);
    assert_eq!(
        c.header_value(),
        r#"Bearer realm="http://127.0.0.1:5001/token",service="test-registry",scope="repository:foo:pull,push repository:bar:pull",error="insufficient_scope""#
    );
    let c = plain
        .clone()
        .with_scope(&crate::Scope::parse("registry:catalog:*").unwrap())
        .with_error(ChallengeError::InvalidToken);
    assert!(
        c.to_string()
            .ends_with(r#",scope="registry:catalog:*",error="invalid_token""#)
    );
    let c = plain.with_access("repository", "myhost:5000/foo", "pull");
    assert!(
        c.to_string()
            .ends_with(r#",scope="repository:myhost:5000/foo:pull""#)
    );

    // Go's strconv.Quote, character classes (expected values printed by Go).
    let q = |s: &str| {
        let mut out = String::new();
        challenge::go_quote(s, &mut out);
        out
    };
    assert_eq!(q("my service"), r#""my service""#);
    assert_eq!(q(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(q("\u{7}\u{8}\u{c}\n\r\t\u{b}"), r#""\a\b\f\n\r\t\v""#);
    assert_eq!(q("\u{0}\u{1b}\u{7f}"), r#""\x00\x1b\x7f""#);
    assert_eq!(q("é日本\u{1F600}"), "\"é日本\u{1F600}\"");
    assert_eq!(
        q("\u{85}\u{a0}\u{ad}\u{200b}\u{2028}\u{feff}"),
        r#""\u0085\u00a0\u00ad\u200b\u2028\ufeff""#
    );
    assert_eq!(
        q("\u{e000}\u{10fffd}\u{fffe}"),
        r#""\ue000\U0010fffd\ufffe""#
    );
    assert_eq!(ChallengeError::InvalidToken.to_string(), "invalid_token");
}

fn arb_action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pull".to_owned()),
        Just("push".to_owned()),
        Just("delete".to_owned()),
        Just("*".to_owned()),
        "[a-z]{1,6}",
    ]
}

fn arb_entry() -> impl Strategy<Value = AccessEntry> {
    (
        prop_oneof![
            Just("repository".to_owned()),
            Just("registry".to_owned()),
            "[a-z]{1,8}"
        ],
        "[a-z0-9]{1,6}(/[a-z0-9._-]{1,6}){0,2}",
        proptest::collection::vec(arb_action(), 0..4),
    )
        .prop_map(|(t, n, a)| AccessEntry::new(t, n, a))
}

/// What the grants allow, computed naively from the granted entries.
fn granted(grants: &[AccessEntry], t: &str, n: &str, a: &str) -> bool {
    grants.iter().any(|g| {
        g.resource_type == t && g.name == n && g.actions.iter().any(|x| x == a || x == "*")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A token minted by `TokenIssuer` for random grants verifies and allows exactly the
    /// granted (type, name, action) triples.
    #[test]
    fn minted_tokens_verify_and_allow_exactly_the_grants(
        grants in proptest::collection::vec(arb_entry(), 0..5),
        probes in proptest::collection::vec(
            ("[a-z]{1,8}", "[a-z0-9]{1,6}(/[a-z0-9._-]{1,6}){0,2}", arb_action()), 0..8),
        subject in "[a-zA-Z0-9 \"\\\\é]{0,12}",
        alg in prop_oneof![Just(Algorithm::ES256), Just(Algorithm::ES384), Just(Algorithm::RS256)],
        kid_style in prop_oneof![Just(KidStyle::Libtrust), Just(KidStyle::Rfc7638)],
    ) {
        let issuer = TokenIssuer::new(ISSUER, Duration::from_secs(300), KeySet::new(key(alg)))
            .with_kid_style(kid_style);
        let token = issuer.issue(&subject, SERVICE, &grants).unwrap().token;
        let verified = verifier_for(issuer.keys()).verify(&token).unwrap();
        prop_assert_eq!(verified.subject(), subject.as_str());
        // Every granted triple is allowed…
        for g in &grants {
            for a in &g.actions {
                prop_assert!(verified.allows(&g.resource_type, &g.name, a));
            }
        }
        // …and every probe (random, or a variation of a grant) exactly when granted.
        let mut probes = probes;
        for g in &grants {
            for a in ["pull", "push", "delete", "*"] {
                probes.push((g.resource_type.clone(), g.name.clone(), a.to_owned()));
                probes.push((g.resource_type.clone(), format!("{}x", g.name), a.to_owned()));
            }
        }
        for (t, n, a) in &probes {
            prop_assert_eq!(verified.allows(t, n, a), granted(&grants, t, n, a), "{} {} {}", t, n, a);
        }
    }
}

/// A CA (`is_ca`) certificate and key, and a leaf for `leaf_key` (PKCS#8 PEM) signed by it.
fn ca_and_leaf(is_ca: bool, leaf_key: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    if is_ca {
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf_rcgen = rcgen::KeyPair::from_pem(leaf_key).unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "token signer");
    let leaf = leaf_params.signed_by(&leaf_rcgen, &issuer).unwrap();
    (ca.pem(), leaf.pem())
}

#[test]
fn x5c_leaves_issued_by_a_trusted_ca_are_accepted() {
    // protocol.md §9: x5c [leaf signed by bundled CA] and [leaf, CA] → 200.
    let fresh = SigningKey::generate(Algorithm::ES256, "leaf").unwrap();
    let key_pem = fresh.key_pem.expose();
    let (ca, leaf) = ca_and_leaf(true, key_pem);
    let verifier = TokenVerifier::builder(ISSUER, SERVICE)
        .certificate_bundle_pem(ca.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    for chain in [format!("{leaf}{ca}"), leaf] {
        let signer = SigningKey::from_pem(key_pem.as_bytes(), Some(chain.as_bytes())).unwrap();
        let issuer = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(signer.clone()));
        let token = issuer.issue("alice", SERVICE, &[]).unwrap().token;
        let verified = verifier.verify(&token).unwrap();
        assert_eq!(verified.key_id(), signer.rfc7638_kid());
        // …but the leaf's kid alone is unknown (only the CA is in the bundle, §9).
        let kid_only = sign(&signer, &header(&signer), &claims());
        rejects(&verifier, &kid_only, &VerifyError::UnknownKey);
        // A tampered token still fails on the signature.
        let (input, _) = token.rsplit_once('.').unwrap();
        let other = SigningKey::generate(Algorithm::ES256, "x").unwrap().key;
        let forged = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(other.sign(input.as_bytes()).unwrap())
        );
        rejects(&verifier, &forged, &VerifyError::BadSignature);
    }
    // An issuer without CA:TRUE in the bundle does not make its leaves trusted.
    let (not_ca, leaf) = ca_and_leaf(false, key_pem);
    let verifier = TokenVerifier::builder(ISSUER, SERVICE)
        .certificate_bundle_pem(not_ca.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let signer = SigningKey::from_pem(key_pem.as_bytes(), Some(leaf.as_bytes())).unwrap();
    let token = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(signer))
        .issue("alice", SERVICE, &[])
        .unwrap()
        .token;
    rejects(&verifier, &token, &VerifyError::UnknownKey);
    // A leaf from another CA with the same name does not chain either.
    let (_, foreign_leaf) = ca_and_leaf(true, key_pem);
    let verifier = TokenVerifier::builder(ISSUER, SERVICE)
        .certificate_bundle_pem(ca.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let signer = SigningKey::from_pem(key_pem.as_bytes(), Some(foreign_leaf.as_bytes())).unwrap();
    let token = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(signer))
        .issue("alice", SERVICE, &[])
        .unwrap()
        .token;
    rejects(&verifier, &token, &VerifyError::UnknownKey);
}
