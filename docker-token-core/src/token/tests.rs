//! Tests of token minting: round trips through jsonwebtoken and our verifier, the exact
//! wire format.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::*;
use crate::keys::tests::generated;
use crate::keys::{Algorithm, SigningKey};
use crate::verify::{TokenVerifier, VerifyError};

const ISSUER: &str = "docker-token test";
const SERVICE: &str = "registry service:5000";

fn issuer(alg: Algorithm) -> TokenIssuer {
    let key = generated(alg).key.clone().with_algorithm(alg).unwrap();
    TokenIssuer::new(ISSUER, Duration::from_secs(300), KeySet::new(key))
}

fn pull_push() -> Vec<AccessEntry> {
    vec![AccessEntry::new(
        "repository",
        "demo/hello",
        ["pull", "push"],
    )]
}

/// The decoded header and claims JSON text of a compact JWS, and the raw signature.
fn segments(token: &str) -> (String, String, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert!(!token.contains('='), "no padding");
    let text = |s: &str| String::from_utf8(URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (
        text(parts[0]),
        text(parts[1]),
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
}

/// A verifier for `ISSUER`/`SERVICE` trusting the issuer's keys.
fn verifier(issuer: &TokenIssuer) -> TokenVerifier {
    TokenVerifier::builder(ISSUER, SERVICE)
        .key_set(issuer.keys())
        .build()
        .unwrap()
}

/// Decodes with an independent implementation (jsonwebtoken), with the key from our JWK.
fn decode_with_jsonwebtoken(
    issuer: &TokenIssuer,
    token: &str,
    audience: &str,
) -> jsonwebtoken::TokenData<serde_json::Value> {
    let key = issuer.keys().active();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(key.algorithm().to_jsonwebtoken());
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode(token, &decoding, &validation).unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn round_trip_through_jsonwebtoken() {
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        let issuer = issuer(alg);
        // EC keys sign from the header's precomputed hash state
        assert_eq!(
            issuer.header_digest.is_some(),
            matches!(alg, Algorithm::ES256 | Algorithm::ES384)
        );
        let issued = issuer.issue("alice", SERVICE, &pull_push()).unwrap();
        let data = decode_with_jsonwebtoken(&issuer, &issued.token, SERVICE);
        assert_eq!(data.header.alg, alg.to_jsonwebtoken());
        let ours = verifier(&issuer).verify(&issued.token).unwrap();
        assert_eq!(ours.algorithm(), alg);
        assert_eq!(ours.jti(), Some(issued.jti.as_str()));
        assert!(ours.allows("repository", "demo/hello", "push"));
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.claims["jti"], issued.jti.as_str());
        assert_eq!(
            data.claims["access"],
            serde_json::json!([{"type": "repository", "name": "demo/hello", "actions": ["pull", "push"]}])
        );
    }
}

#[test]
fn verification_rejects_wrong_audience_issuer_and_tampering() {
    let issuer = issuer(Algorithm::ES256);
    let token = issuer.issue("alice", SERVICE, &[]).unwrap().token;
    let keys = verifier(&issuer);
    let other_service = TokenVerifier::builder(ISSUER, "other")
        .key_set(issuer.keys())
        .build()
        .unwrap();
    assert_eq!(
        other_service.verify(&token),
        Err(VerifyError::WrongAudience)
    );
    let other_issuer = TokenVerifier::builder("other", SERVICE)
        .key_set(issuer.keys())
        .build()
        .unwrap();
    assert_eq!(other_issuer.verify(&token), Err(VerifyError::WrongIssuer));

    let (header, claims, _) = segments(&token);
    let forged_claims = claims.replace("alice", "admin");
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_claims),
        parts[2]
    );
    assert_eq!(keys.verify(&forged), Err(VerifyError::BadSignature));

    // Signed by a key outside the set (named by kid, no x5c) → unknown key.
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger").unwrap();
    let bare = SigningKey::from_pem(stranger.key_pem.expose().as_bytes(), None).unwrap();
    let other = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(bare));
    let foreign = other.issue("alice", SERVICE, &[]).unwrap().token;
    assert_eq!(keys.verify(&foreign), Err(VerifyError::UnknownKey));
    // …and with an x5c leaf of an unknown key.
    let other = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(stranger.key));
    let foreign = other.issue("alice", SERVICE, &[]).unwrap().token;
    assert_eq!(keys.verify(&foreign), Err(VerifyError::UnknownKey));
    assert!(header.starts_with('{'));
}

#[test]
fn rotation_keeps_old_tokens_valid() {
    let old = issuer(Algorithm::RS256);
    let old_token = old.issue("bob", SERVICE, &[]).unwrap().token;
    let old_public = old.keys().active().verifying_key().clone();
    let rotated = KeySet::new(generated(Algorithm::ES256).key.clone()).with_verify_only(old_public);
    let new = TokenIssuer::new(ISSUER, Duration::from_secs(300), rotated);
    let verifier = verifier(&new);
    assert!(verifier.verify(&old_token).is_ok());
    let new_token = new.issue("bob", SERVICE, &[]).unwrap().token;
    assert!(verifier.verify(&new_token).is_ok());
    assert_eq!(new.keys().jwks()["keys"].as_array().map(Vec::len), Some(2));
}

#[test]
fn claims_have_the_registry_shape() {
    let issuer = issuer(Algorithm::ES256);
    let before = now_secs();
    let issued = issuer.issue("", SERVICE, &[]).unwrap();
    let after = now_secs();
    let (_, claims, _) = segments(&issued.token);

    // Exact field order and types in the raw JSON.
    assert!(
        claims.starts_with(&format!(
            r#"{{"iss":"{ISSUER}","sub":"","aud":"{SERVICE}","exp":"#
        )),
        "{claims}"
    );
    assert!(claims.ends_with(r#","access":[]}"#), "{claims}");
    let v: serde_json::Value = serde_json::from_str(&claims).unwrap();
    assert!(
        v["aud"].is_string(),
        "aud must be a string for registry 2.8"
    );
    for name in ["exp", "nbf", "iat"] {
        assert!(v[name].is_u64(), "{name} must be an integer: {claims}");
    }
    let (exp, nbf, iat) = (
        v["exp"].as_u64().unwrap(),
        v["nbf"].as_u64().unwrap(),
        v["iat"].as_u64().unwrap(),
    );
    assert!((before..=after).contains(&iat));
    assert_eq!(exp - iat, 300);
    assert_eq!(iat - nbf, NOT_BEFORE_SKEW.as_secs());
    assert_eq!(issued.expires_in, exp - iat);
    assert_eq!(issued.issued_at, UNIX_EPOCH + Duration::from_secs(iat));

    let response = TokenResponse::from(issued.clone());
    assert_eq!(response.token, issued.token);
    assert_eq!(response.access_token, issued.token);
    assert_eq!(response.expires_in, 300);
    assert_eq!(response.issued_at, response::rfc3339(issued.issued_at));
}

#[test]
fn jti_is_random_and_long_enough() {
    let issuer = issuer(Algorithm::ES256);
    let mut seen = HashSet::new();
    for _ in 0..500 {
        let issued = issuer.issue("alice", SERVICE, &[]).unwrap();
        assert!(issued.jti.len() >= 22, "{}", issued.jti);
        assert!(
            issued
                .jti
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&issued.jti).unwrap().len(), 16);
        assert!(seen.insert(issued.jti), "jti repeated");
    }
}

#[test]
fn header_carries_kid_and_x5c() {
    for style in [KidStyle::Libtrust, KidStyle::Rfc7638] {
        let issuer = issuer(Algorithm::ES256).with_kid_style(style);
        assert_eq!(issuer.kid_style(), style);
        let key = issuer.keys().active();
        let (header, _, signature) = segments(&issuer.issue("a", SERVICE, &[]).unwrap().token);
        assert!(
            header.starts_with(r#"{"typ":"JWT","alg":"ES256","kid":""#),
            "{header}"
        );
        let v: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(v["kid"], key.kid(style));
        let x5c = v["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 1);
        let der = STANDARD.decode(x5c[0].as_str().unwrap()).unwrap();
        assert_eq!(der, key.certificate_chain_der()[0]);
        assert_eq!(signature.len(), 64, "raw r||s");
    }

    // A key without certificate: kid only.
    let bare = SigningKey::from_pem(
        generated(Algorithm::ES256).key_pem.expose().as_bytes(),
        None,
    )
    .unwrap();
    let issuer = TokenIssuer::new(ISSUER, Duration::from_secs(60), KeySet::new(bare));
    let token = issuer.issue("a", SERVICE, &[]).unwrap().token;
    let (header, _, _) = segments(&token);
    let v: serde_json::Value = serde_json::from_str(&header).unwrap();
    assert!(v.get("x5c").is_none(), "{header}");
    assert_eq!(v["kid"], issuer.keys().active().libtrust_kid());
    assert!(verifier(&issuer).verify(&token).is_ok());
}

#[test]
fn signature_covers_the_emitted_segments() {
    let issuer = issuer(Algorithm::ES256);
    let token = issuer.issue("alice", SERVICE, &pull_push()).unwrap().token;
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let jwk = issuer.keys().active().public_jwk();
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signing_input.as_bytes(), &signature)
        .unwrap();
}

#[test]
fn access_entries_from_scopes_drop_the_class() {
    let scope = crate::Scope::new("repository", "plugins/x", ["pull"]).with_class("plugin");
    let entry = AccessEntry::from(&scope);
    assert_eq!(entry, AccessEntry::new("repository", "plugins/x", ["pull"]));
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "repository", "name": "plugins/x", "actions": ["pull"]})
    );
    // Claims from other issuers may carry `class`; it is ignored when reading.
    let read: AccessEntry = serde_json::from_str(
        r#"{"type":"repository","class":"plugin","name":"n","actions":["*"]}"#,
    )
    .unwrap();
    assert_eq!(read.actions, ["*"]);
}

#[test]
fn strings_are_json_escaped() {
    let issuer = issuer(Algorithm::ES256);
    let access = [AccessEntry::new("repository", "a\"b\\c", ["pull"])];
    let token = issuer
        .issue("us\"er\n", "svc \u{e9}", &access)
        .unwrap()
        .token;
    let data = decode_with_jsonwebtoken(&issuer, &token, "svc \u{e9}");
    assert_eq!(data.claims["sub"], "us\"er\n");
    assert_eq!(data.claims["access"][0]["name"], "a\"b\\c");
    let ours = TokenVerifier::builder(ISSUER, "svc \u{e9}")
        .key_set(issuer.keys())
        .build()
        .unwrap()
        .verify(&token)
        .unwrap();
    assert_eq!(ours.subject(), "us\"er\n");
    assert!(ours.allows("repository", "a\"b\\c", "pull"));
}

#[test]
fn zero_expiration_is_raised_to_one_second() {
    let key = generated(Algorithm::ES256).key.clone();
    let issuer = TokenIssuer::new(ISSUER, Duration::from_millis(400), KeySet::new(key));
    assert_eq!(issuer.expiration(), Duration::from_secs(1));
    assert_eq!(issuer.issue("a", SERVICE, &[]).unwrap().expires_in, 1);
    assert_eq!(issuer.issuer(), ISSUER);
}

#[test]
fn debug_does_not_print_tokens() {
    let issuer = issuer(Algorithm::ES256);
    let issued = issuer.issue("alice", SERVICE, &[]).unwrap();
    let signature = issued.token.rsplit('.').next().unwrap().to_owned();
    for text in [
        format!("{issued:?}"),
        format!("{:?}", TokenResponse::from(issued)),
        format!("{issuer:?}"),
    ] {
        assert!(!text.contains(&signature), "{text}");
    }
}

/// Issuing cost: the pre-parsed signer versus `jsonwebtoken::encode` with an
/// `EncodingKey` built once. Run with
/// `cargo test --release -p docker-token-core --lib -- --ignored --nocapture issue_speed`.
#[test]
#[ignore = "timing, run by hand in release mode"]
fn issue_speed() {
    const N: u32 = 2000;
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let ours = issuer(alg);
        let access = pull_push();
        let time = |f: &mut dyn FnMut()| {
            for _ in 0..N / 10 {
                f();
            }
            let start = Instant::now();
            for _ in 0..N {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(N)
        };
        let pre_parsed = time(&mut || {
            std::hint::black_box(ours.issue("alice", SERVICE, &access).unwrap());
        });

        let pem = generated(alg).key_pem.expose().as_bytes();
        let encoding = if alg.is_rsa() {
            jsonwebtoken::EncodingKey::from_rsa_pem(pem).unwrap()
        } else {
            jsonwebtoken::EncodingKey::from_ec_pem(pem).unwrap()
        };
        let key = ours.keys().active();
        let mut header = jsonwebtoken::Header::new(alg.to_jsonwebtoken());
        header.kid = Some(key.libtrust_kid().to_owned());
        header.x5c = Some(
            key.certificate_chain_der()
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect(),
        );
        let baseline = time(&mut || {
            let now = now_secs();
            let claims = serde_json::json!({
                "iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                "iat": now, "jti": "0123456789abcdefghijkl", "access": &access,
            });
            std::hint::black_box(jsonwebtoken::encode(&header, &claims, &encoding).unwrap());
        });
        println!(
            "{alg}: pre-parsed issue {pre_parsed:.1} µs/token, jsonwebtoken::encode {baseline:.1} µs/token"
        );
    }
}
