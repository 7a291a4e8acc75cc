//! The IdP's signing keys: downloaded on first use, again when older than `max_age`, and on
//! demand (an unknown `kid`) at most once per `min_refresh` interval; one download at a time
//! ([`SingleFlight`]).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use serde::Deserialize;

use crate::http::{HttpClient, HttpError};
use crate::single_flight::SingleFlight;

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

/// A cached JWKS with rate-limited refreshes.
#[derive(Debug)]
pub(crate) struct JwksCache {
    uri: String,
    min_refresh: Duration,
    max_age: Duration,
    keys: SingleFlight<Keys>,
}

impl JwksCache {
    pub(crate) fn new(uri: String, min_refresh: Duration, max_age: Duration) -> Self {
        Self {
            uri,
            min_refresh,
            max_age,
            keys: SingleFlight::default(),
        }
    }

    /// The current keys; downloads them when there are none yet or they are older than
    /// `max_age` (a failed re-download keeps the old keys, with a warning).
    pub(crate) async fn keys(&self, http: &HttpClient) -> Result<Arc<Keys>, HttpError> {
        let max_age = self.max_age;
        let loaded = self
            .keys
            .get_or_load(|_, at| at.elapsed() >= max_age, || self.download(http))
            .await;
        match (loaded, self.keys.get()) {
            (Ok(keys), _) => Ok(keys),
            (Err(e), Some((old, _))) => {
                tracing::warn!(uri = %self.uri, error = %e, "could not refresh the JWKS; using the previous keys");
                Ok(old)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// The keys to try after `tried` had none for a token's `kid` (or none whose signature
    /// verifies): downloaded again, unless `tried` is younger than `min_refresh` (then
    /// `tried` is returned) or another caller's download replaced it meanwhile (then that
    /// download's keys are returned).
    pub(crate) async fn refresh_for_unknown_key(
        &self,
        http: &HttpClient,
        tried: &Arc<Keys>,
    ) -> Result<Arc<Keys>, HttpError> {
        let min_refresh = self.min_refresh;
        self.keys
            .get_or_load(
                |current, at| Arc::ptr_eq(current, tried) && at.elapsed() >= min_refresh,
                || self.download(http),
            )
            .await
    }

    async fn download(&self, http: &HttpClient) -> Result<Keys, HttpError> {
        let doc: serde_json::Value = http.get_json(&self.uri).await?;
        let keys = Keys::from_value(&doc);
        tracing::debug!(uri = %self.uri, keys = keys.keys.len(), "downloaded the JWKS");
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use test_support::oidc::{PROVIDER_KID, Provider};

    use super::*;

    /// Runs `n` callers of `refresh_for_unknown_key(tried)` at once.
    async fn refresh_concurrently(
        cache: &Arc<JwksCache>,
        http: &Arc<HttpClient>,
        tried: &Arc<Keys>,
        n: usize,
    ) -> Vec<Arc<Keys>> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (cache, http, tried) = (cache.clone(), http.clone(), tried.clone());
                tokio::spawn(async move { cache.refresh_for_unknown_key(&http, &tried).await })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for task in tasks {
            out.push(task.await.unwrap().unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_kid_reloads_once_for_many_concurrent_callers() {
        let provider = Provider::start();
        let downloads = || provider.request_count("GET", "/jwks");
        let http = Arc::new(HttpClient::new(Duration::from_secs(5)).unwrap());
        let uri = format!("{}/jwks", provider.issuer);
        let cache = Arc::new(JwksCache::new(
            uri.clone(),
            Duration::ZERO,
            Duration::from_secs(3600),
        ));
        let first = cache.keys(&http).await.unwrap();
        assert_eq!(first.keys[0].common.key_id.as_deref(), Some(PROVIDER_KID));
        assert!(Arc::ptr_eq(&first, &cache.keys(&http).await.unwrap()));
        assert_eq!(downloads(), 1);

        // 16 callers found no key for a token in `first`: one download serves them all
        let fresh = refresh_concurrently(&cache, &http, &first, 16).await;
        assert_eq!(downloads(), 2, "{}", provider.output());
        assert!(!Arc::ptr_eq(&fresh[0], &first));
        assert!(fresh.iter().all(|k| Arc::ptr_eq(k, &fresh[0])));

        // a caller that still holds `first` gets the newer keys without a download
        let later = cache.refresh_for_unknown_key(&http, &first).await.unwrap();
        assert!(Arc::ptr_eq(&later, &fresh[0]));
        assert_eq!(downloads(), 2);

        // within `min_refresh` of the last download the tried keys come back, no download
        let limited = Arc::new(JwksCache::new(
            uri,
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        ));
        let keys = limited.keys(&http).await.unwrap();
        let again = refresh_concurrently(&limited, &http, &keys, 4).await;
        assert!(again.iter().all(|k| Arc::ptr_eq(k, &keys)));
        assert_eq!(downloads(), 3);
    }

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
