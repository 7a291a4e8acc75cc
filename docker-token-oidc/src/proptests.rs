//! Property tests for what this crate reads from the network: JWTs offered as passwords, JWKS
//! documents and claim sets. No input may panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::claims::ClaimRules;
use crate::jwks::Keys;
use crate::jwt::parse_unverified;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, biased towards the member names JWKS and JWT readers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "kty", "kid", "alg", "use", "n", "e", "x", "y", "crv", "keys", "iss", "sub", "aud",
            "exp", "nbf", "groups", "x5c", "key_ops",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "RSA", "EC", "OKP", "oct", "sig", "enc", "P-256", "Ed25519", "RS256", "AQAB", ""
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS-shaped string: header and payload are JSON (or bytes), signature bytes.
fn jwt_shaped() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            any::<Vec<u8>>()
        ],
        prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            any::<Vec<u8>>()
        ],
        any::<Vec<u8>>(),
    )
        .prop_map(|(h, p, s)| format!("{}.{}.{}", b64(&h), b64(&p), b64(&s)))
}

/// RFC 7515 appendix A.3's P-256 public key.
fn p256_key() -> DecodingKey {
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    }))
    .unwrap();
    DecodingKey::from_jwk(&jwk).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unverified_reader_never_panics(text in any::<String>(), shaped in jwt_shaped()) {
        let _ = parse_unverified(&text);
        let _ = parse_unverified(&shaped);
        let _ = jsonwebtoken::decode_header(&text);
        let _ = jsonwebtoken::decode_header(&shaped);
    }

    #[test]
    fn unverified_reader_finds_the_issuer(iss in ".{0,40}", extra in json_value(), sig in any::<Vec<u8>>()) {
        let header = json!({"alg": "RS256", "kid": "k", "x": extra});
        let payload = json!({"iss": iss, "sub": "alice", "x": extra});
        let token = format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes()),
            b64(&sig)
        );
        let parsed = parse_unverified(&token);
        prop_assert_eq!(parsed.and_then(|j| j.issuer), Some(iss));
    }

    #[test]
    fn jwks_reader_never_panics(doc in json_value(), keys in prop::collection::vec(json_value(), 0..4)) {
        let _ = Keys::from_value(&doc);
        let parsed = Keys::from_value(&json!({ "keys": keys }));
        for jwk in &parsed.keys {
            let _ = DecodingKey::from_jwk(jwk);
        }
    }

    #[test]
    fn verification_of_garbage_never_panics(token in jwt_shaped(), alg in prop::sample::select(vec![Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA])) {
        let key = p256_key();
        let mut v = Validation::new(alg);
        v.set_audience(&["urn:test"]);
        prop_assert!(jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &v).is_err());
    }

    #[test]
    fn claim_rules_never_panic(claims in prop::collection::btree_map(".{0,8}", json_value(), 0..6), account in ".{0,8}") {
        let rules = ClaimRules {
            user_claim: "sub".to_owned(),
            user_claim_fallbacks: vec!["preferred_username".to_owned()],
            label_claims: vec!["groups".to_owned(), "x".to_owned()],
        };
        let map: Map<String, Value> = claims.into_iter().collect();
        let _ = rules.verdict(&map, &account);
        let _ = rules.labels(&map);
    }
}
