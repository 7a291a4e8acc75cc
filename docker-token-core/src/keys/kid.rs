//! Key ids: the libtrust fingerprint (registry 2.x) and the RFC 7638 thumbprint (3.x).
//!
//! protocol.md §3.3 has the exact algorithms; both are computed once per key.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use data_encoding::BASE32_NOPAD;

use super::material::KeyMaterial;

/// How many bytes of the SHA-256 digest libtrust keeps (240 bits → 48 base32 characters).
const LIBTRUST_DIGEST_BYTES: usize = 30;

/// The libtrust fingerprint of a DER SubjectPublicKeyInfo: SHA-256, first 30 bytes,
/// RFC 4648 base32 upper case without padding, `:` after every 4 characters.
pub(crate) fn libtrust(spki_der: &[u8]) -> String {
    let hash = digest(&SHA256, spki_der);
    let truncated: Vec<u8> = hash
        .as_ref()
        .iter()
        .take(LIBTRUST_DIGEST_BYTES)
        .copied()
        .collect();
    let encoded = BASE32_NOPAD.encode(&truncated);
    let mut kid = String::with_capacity(encoded.len() + encoded.len() / 4);
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            kid.push(':');
        }
        kid.push(c);
    }
    kid
}

/// The RFC 7638 JWK SHA-256 thumbprint, base64url without padding. EC coordinates are
/// hashed at their fixed width (what [`KeyMaterial`] stores); RSA integers minimal.
pub(crate) fn rfc7638(material: &KeyMaterial) -> String {
    let canonical = match material {
        KeyMaterial::Ec { curve, x, y } => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            curve.jwk_name(),
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        ),
        KeyMaterial::Rsa { n, e } => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(e),
            URL_SAFE_NO_PAD.encode(n)
        ),
    };
    URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};

    use super::*;
    use crate::keys::VerifyingKey;
    use crate::keys::material::Curve;

    fn b64url(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).expect("test vector is base64url")
    }

    /// The example key of distribution's `docs/spec/auth/jwt.md` (public half only). The
    /// document's own header shows the kid; the value was also re-derived with the openssl
    /// pipeline of protocol.md §3.3.
    const SPEC_X: &str = "m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q";
    const SPEC_Y: &str = "dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc";
    const SPEC_KID: &str = "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6";

    #[test]
    fn libtrust_kid_of_the_spec_example_key() {
        // SPKI built by aws-lc from the raw point, independently of our parser.
        let mut point = vec![4u8];
        point.extend(b64url(SPEC_X));
        point.extend(b64url(SPEC_Y));
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).unwrap();
        let spki = parsed.as_der().unwrap();
        assert_eq!(libtrust(spki.as_ref()), SPEC_KID);

        // …and through the public API, from the PEM openssl prints for that point.
        let pem = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEm7zUpx3b+zmVE5cymSs64POG9Qcy\n\
            EpJaYCD82+549/R1TduLPyxn/wY8H6h2bxbHPeU0OvXFwBBA9Bo5yvV+Zw==\n\
            -----END PUBLIC KEY-----\n";
        let key = VerifyingKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.libtrust_kid(), SPEC_KID);
        assert_eq!(key.libtrust_kid().len(), 59);
    }

    /// Public keys generated with `openssl genpkey`; each kid computed by hand with
    /// `openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | head -c 30 |
    /// base32 | tr -d '=\n' | sed 's/..../&:/g; s/:$//'`.
    const OPENSSL_FIXTURES: [(&str, &str); 3] = [
        (
            "-----BEGIN PUBLIC KEY-----\n\
             MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeH3hx14dGcxL+fd0e4y77Mu3Uyk3\n\
             F2Z1knvKYz5ER24lAoV7OZEh16f4B/ruS7G/J/igiQLCAr+MapLGe9KVrA==\n\
             -----END PUBLIC KEY-----\n",
            "MFZ4:27IM:CF4L:7VSV:2JGL:W677:W4LU:FSYV:PSDW:4UUO:3IUJ:765W",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\n\
             MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE9YbvhpQpmE4fQ7bqcneaKVnnIDClQjxi\n\
             sYy63CsbU3e3h2iZLZ9xmTLdymhVDfL2aNoD40SuHgGIQGYx+Noj1vFIpPSsJwcl\n\
             BwKBzATuPSxTbZkK6xiIA8zYksspUnb/\n\
             -----END PUBLIC KEY-----\n",
            "2CHH:7FIX:RE6Q:NFLB:4JOU:KY33:CWUL:57XG:FX4P:ZMUI:SQOB:VHLQ",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\n\
             MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3sTC63AhLGatwnHuTG1t\n\
             o1FITyX+2i+E1JX98Rt5i7A48W/TniCLApg8VwrBOCpUWIy/wwsQzmrbQkMuRa9T\n\
             CXt54NX0dyYkj0yrAjR+jGyDR3Z3rFSPQ/iAMXU8XeodqL9Twn1JYqSUCiNe4Fji\n\
             yyGqmbjnUGovIG8rlhokv79G7wXkwmoCpQVPrBRJ/E8kwpJ2VwPobTUAV/3eSB5+\n\
             cV8E2zQdE2ezcRWpqwFsGJt87huLtBWOgYUxlR+CaHEbSjVg5UQnzYeZs267pmKS\n\
             SVy38Bs4glixfe2aBm3kZXsMSH0g2sd4vbPRVYcD/cbhg0Mqba36g5nDkF4gkVGe\n\
             vwIDAQAB\n\
             -----END PUBLIC KEY-----\n",
            "DI6Z:BAAC:MSTG:CBLL:KQKF:UUF2:3B5X:ZZA4:75PO:3Y46:5XNB:CWTW",
        ),
    ];

    #[test]
    fn libtrust_kid_matches_the_openssl_pipeline() {
        for (pem, kid) in OPENSSL_FIXTURES {
            let key = VerifyingKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.libtrust_kid(), kid);
        }
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfc_example() {
        // RFC 7638 §3.1.
        let n = b64url(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        );
        let material = KeyMaterial::Rsa {
            n,
            e: b64url("AQAB"),
        };
        assert_eq!(
            rfc7638(&material),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc7638_agrees_with_jsonwebtoken_for_openssl_keys() {
        for (pem, _) in OPENSSL_FIXTURES {
            let key = VerifyingKey::from_pem(pem.as_bytes()).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).unwrap();
            let theirs = jwk
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap();
            assert_eq!(key.rfc7638_kid(), theirs);
            assert_eq!(key.public_jwk()["kid"], theirs.as_str());
        }
    }

    #[test]
    fn ec_thumbprint_keeps_leading_zero_bytes() {
        // Search for a P-256 key whose x or y starts with 0x00 (about 1 key in 64).
        let found = (0..20_000).find_map(|_| {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .unwrap();
            let spki = aws_lc_rs::signature::KeyPair::public_key(&pair)
                .as_der()
                .unwrap();
            let key = VerifyingKey::from_spki_der(spki.as_ref()).unwrap();
            match key.material() {
                KeyMaterial::Ec { x, y, .. } if x.first() == Some(&0) || y.first() == Some(&0) => {
                    Some((key.material().clone(), key))
                }
                _ => None,
            }
        });
        let (material, key) = found.expect("a key with a leading zero coordinate byte");
        let KeyMaterial::Ec { curve, x, y } = &material else {
            unreachable!()
        };
        assert_eq!(*curve, Curve::P256);
        assert_eq!(
            (x.len(), y.len()),
            (32, 32),
            "coordinates are kept at fixed width"
        );

        // Independent computation of both variants.
        let thumb = |x: &[u8], y: &[u8]| {
            let json = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(x),
                URL_SAFE_NO_PAD.encode(y)
            );
            URL_SAFE_NO_PAD.encode(digest(&SHA256, json.as_bytes()))
        };
        let strip = |v: &[u8]| {
            v.iter()
                .skip_while(|b| **b == 0)
                .copied()
                .collect::<Vec<u8>>()
        };
        let fixed = thumb(x, y);
        let minimal = thumb(&strip(x), &strip(y));
        assert_eq!(key.rfc7638_kid(), fixed);
        assert_ne!(
            fixed, minimal,
            "distribution's minimal-width quirk gives another id"
        );
    }
}
