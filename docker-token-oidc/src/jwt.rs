//! JWT access tokens: recognising them, and verifying them against the IdP's JWKS.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::http::{HttpClient, HttpError};
use crate::jwks::{JwksCache, Keys};

/// A password that has the shape of a JWS: three base64url segments, a JSON header with
/// `alg`, and a JSON object payload. Nothing here is verified.
#[derive(Debug)]
pub(crate) struct UnverifiedJwt {
    /// The payload's `iss`, if it is a string.
    pub(crate) issuer: Option<String>,
}

/// Recognises a JWS in compact form without verifying it.
pub(crate) fn parse_unverified(token: &str) -> Option<UnverifiedJwt> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() || payload.is_empty() {
        return None;
    }
    if !signature
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let header: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if !header.get("alg").is_some_and(Value::is_string) {
        return None;
    }
    let payload: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(UnverifiedJwt {
        issuer: payload
            .get("iss")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Why a JWT was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtError {
    /// The token is invalid (bad signature, expired, wrong audience, unknown key, …).
    #[error("{0}")]
    Invalid(String),
    /// The keys could not be downloaded.
    #[error("cannot download the JWKS: {0}")]
    Keys(#[source] HttpError),
}

/// What a JWT access token must satisfy.
#[derive(Debug)]
pub(crate) struct JwtRules {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) clock_skew: Duration,
}

impl JwtRules {
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&self.audiences);
        v.required_spec_claims = ["exp", "iss", "aud"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<HashSet<_>>();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = self.clock_skew.as_secs();
        v
    }

    /// Verifies `token` and returns its claims. An unknown `kid` (or a bad signature) causes
    /// one rate-limited JWKS refresh and a second try (with the same keys when rate-limited).
    pub(crate) async fn verify(
        &self,
        token: &str,
        jwks: &JwksCache,
        http: &HttpClient,
    ) -> Result<Map<String, Value>, JwtError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtError::Invalid(format!("header: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(JwtError::Invalid(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let keys = jwks.keys(http).await.map_err(JwtError::Keys)?;
        match self.verify_with(token, &header, &keys) {
            Err(Attempt::NoKey | Attempt::BadSignature) => {
                let fresh = jwks
                    .refresh_for_unknown_key(http, &keys)
                    .await
                    .map_err(JwtError::Keys)?;
                self.verify_with(token, &header, &fresh)
                    .map_err(Attempt::into_error)
            }
            other => other.map_err(Attempt::into_error),
        }
    }

    fn verify_with(
        &self,
        token: &str,
        header: &Header,
        keys: &Keys,
    ) -> Result<Map<String, Value>, Attempt> {
        let candidates: Vec<&Jwk> = keys
            .keys
            .iter()
            .filter(|k| match (&header.kid, &k.common.key_id) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .filter(|k| key_allows(k, header.alg))
            .collect();
        if candidates.is_empty() {
            return Err(Attempt::NoKey);
        }
        let validation = self.validation(header.alg);
        let mut last = Attempt::NoKey;
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => last = Attempt::BadSignature,
                Err(e) => return Err(Attempt::Invalid(e.to_string())),
            }
        }
        Err(last)
    }
}

/// The result of one verification attempt with one key set.
#[derive(Debug)]
enum Attempt {
    NoKey,
    BadSignature,
    Invalid(String),
}

impl Attempt {
    fn into_error(self) -> JwtError {
        JwtError::Invalid(match self {
            Self::NoKey => "no key in the JWKS matches the token's kid and algorithm".to_owned(),
            Self::BadSignature => "signature does not verify".to_owned(),
            Self::Invalid(e) => e,
        })
    }
}

/// Whether a JWK may verify `alg`: its own `alg`, if given, must be the same, and its key
/// type must fit the algorithm family.
fn key_allows(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg.to_string() != format!("{alg:?}")
    {
        return false;
    }
    matches!(
        (&jwk.algorithm, alg),
        (
            P::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn recognises_jws_shape_only() {
        let h = b64(&serde_json::json!({"alg": "RS256", "kid": "k"}));
        let p = b64(&serde_json::json!({"iss": "https://idp", "sub": "a"}));
        let jwt = parse_unverified(&format!("{h}.{p}.c2ln")).unwrap();
        assert_eq!(jwt.issuer.as_deref(), Some("https://idp"));
        assert!(parse_unverified(&format!("{h}.{p}")).is_none());
        assert!(parse_unverified(&format!("{h}.{p}.sig.x")).is_none());
        assert!(parse_unverified(&format!("{h}.{p}.s+g")).is_none());
        assert!(parse_unverified("a.b.c").is_none());
        assert!(parse_unverified("L9DrZoeYIV2mUTMjjBximhtmUGiZaqjF6TfYkS6v_R9").is_none());
        let no_alg = b64(&serde_json::json!({"typ": "JWT"}));
        assert!(parse_unverified(&format!("{no_alg}.{p}.c2ln")).is_none());
        let not_object = b64(&serde_json::json!(["x"]));
        assert!(parse_unverified(&format!("{h}.{not_object}.c2ln")).is_none());
        let no_iss = b64(&serde_json::json!({"sub": "a"}));
        assert!(
            parse_unverified(&format!("{h}.{no_iss}."))
                .unwrap()
                .issuer
                .is_none()
        );
    }

    #[test]
    fn key_family_and_alg_must_fit() {
        let rsa: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "alg": "RS256", "n": "AQAB", "e": "AQAB"
        }))
        .unwrap();
        assert!(key_allows(&rsa, Algorithm::RS256));
        assert!(
            !key_allows(&rsa, Algorithm::PS256),
            "the key's own alg wins"
        );
        assert!(!key_allows(&rsa, Algorithm::ES256));
        let ec: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"
        }))
        .unwrap();
        assert!(key_allows(&ec, Algorithm::ES256));
        assert!(!key_allows(&ec, Algorithm::RS256));
    }
}
