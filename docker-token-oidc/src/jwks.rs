//! The IdP's signing keys: downloaded on first use, again when older than `max_age`, and on
//! demand (an unknown `kid`) at most once per `min_refresh` interval.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use serde::Deserialize;

use crate::http::{HttpClient, HttpError};

/// The asymmetric signature keys of one download. Keys that cannot be used (other key types,
/// `use: enc`, unparseable entries) are skipped, not fatal.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    pub(crate) keys: Vec<Jwk>,
}

impl Keys {
    /// Parses a JWKS document, keeping the signature keys that parse.
    pub(crate) fn from_value(doc: &serde_json::Value) -> Self {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let Ok(doc) = Doc::deserialize(doc) else {
            return Self::default();
        };
        let keys = doc
            .keys
            .into_iter()
            .filter_map(|k| match serde_json::from_value::<Jwk>(k) {
                Ok(jwk) => Some(jwk),
                Err(e) => {
                    tracing::debug!(error = %e, "skipping a JWKS key this server cannot use");
                    None
                }
            })
            .filter(|k| {
                !matches!(k.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature)
                    && matches!(
                        k.algorithm,
                        AlgorithmParameters::RSA(_)
                            | AlgorithmParameters::EllipticCurve(_)
                            | AlgorithmParameters::OctetKeyPair(_)
                    )
            })
            .collect();
        Self { keys }
    }
}

#[derive(Debug)]
struct Fetched {
    keys: Arc<Keys>,
    at: Instant,
}

/// A cached JWKS with rate-limited refreshes.
#[derive(Debug)]
pub(crate) struct JwksCache {
    uri: String,
    min_refresh: Duration,
    max_age: Duration,
    current: RwLock<Option<Fetched>>,
    refresh: tokio::sync::Mutex<()>,
}

impl JwksCache {
    pub(crate) fn new(uri: String, min_refresh: Duration, max_age: Duration) -> Self {
        Self {
            uri,
            min_refresh,
            max_age,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn snapshot(&self) -> Option<(Arc<Keys>, Instant)> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|f| (f.keys.clone(), f.at))
    }

    /// The current keys; downloads them when there are none yet or they are older than
    /// `max_age` (a failed re-download keeps the old keys, with a warning).
    pub(crate) async fn keys(&self, http: &HttpClient) -> Result<Arc<Keys>, HttpError> {
        match self.snapshot() {
            Some((keys, at)) if at.elapsed() < self.max_age => Ok(keys),
            Some((keys, _)) => match self.download(http, None).await {
                Ok(fresh) => Ok(fresh),
                Err(e) => {
                    tracing::warn!(uri = %self.uri, error = %e, "could not refresh the JWKS; using the previous keys");
                    Ok(keys)
                }
            },
            None => self.download(http, None).await,
        }
    }

    /// Downloads the keys again because a token named a key we don't have — unless the last
    /// download is more recent than `min_refresh`. Returns `None` when rate-limited.
    pub(crate) async fn refresh_for_unknown_key(
        &self,
        http: &HttpClient,
    ) -> Result<Option<Arc<Keys>>, HttpError> {
        let Some((_, at)) = self.snapshot() else {
            return self.download(http, None).await.map(Some);
        };
        if at.elapsed() < self.min_refresh {
            return Ok(None);
        }
        self.download(http, Some(at)).await.map(Some)
    }

    /// One download at a time; a caller that waited for another's download uses its result.
    async fn download(
        &self,
        http: &HttpClient,
        seen: Option<Instant>,
    ) -> Result<Arc<Keys>, HttpError> {
        let _one_at_a_time = self.refresh.lock().await;
        if let Some((keys, at)) = self.snapshot() {
            let newer_than_seen = seen.is_some_and(|s| at > s);
            if newer_than_seen || (seen.is_none() && at.elapsed() < self.max_age) {
                return Ok(keys);
            }
        }
        let doc: serde_json::Value = http.get_json(&self.uri).await?;
        let keys = Arc::new(Keys::from_value(&doc));
        tracing::debug!(uri = %self.uri, keys = keys.keys.len(), "downloaded the JWKS");
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Some(Fetched {
            keys: keys.clone(),
            at: Instant::now(),
        });
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_and_encryption_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "use": "sig", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "weird", "kid": "w"},
            "not an object"
        ]});
        let keys = Keys::from_value(&doc);
        let kids: Vec<_> = keys
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect();
        assert_eq!(kids, ["a"]);
        assert!(
            Keys::from_value(&serde_json::json!({"nope": 1}))
                .keys
                .is_empty()
        );
    }
}
