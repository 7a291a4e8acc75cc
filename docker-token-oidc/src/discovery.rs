//! Lazy OpenID Connect discovery: the endpoints are read on first use (or by an explicit
//! `discover()`), a failure is retried by a later request, and a failure is remembered for a
//! second so that a down IdP does not queue every request behind a timeout.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use docker_token_core::{BackendError, BackendErrorKind};
use oauth2::IntrospectionUrl;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::check_url;
use crate::http::{HttpClient, HttpError};
use crate::introspection::Introspector;
use crate::jwks::JwksCache;

/// After a failed discovery, further attempts fail at once for this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What discovery yields: how to check opaque tokens and where the keys are.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) introspector: Introspector,
    /// `None` when JWT access tokens are not verified locally (no `audiences`).
    pub(crate) jwks: Option<JwksCache>,
}

/// A discovery document: it names the issuer it speaks for.
pub(crate) trait DiscoveryDocument: DeserializeOwned {
    /// Its `issuer` member.
    fn issuer(&self) -> &str;
}

/// Why a discovery document could not be used.
#[derive(Debug)]
pub(crate) enum DocumentError {
    /// Reading or decoding `url` failed.
    Read { url: String, source: HttpError },
    /// The document names another issuer than the configured one.
    IssuerMismatch { found: String },
}

/// Reads `<issuer>/.well-known/openid-configuration` and checks that it names exactly
/// `issuer` (both the access-token authenticator and the browser login use it).
pub(crate) async fn fetch_document<T: DiscoveryDocument>(
    http: &HttpClient,
    issuer: &str,
) -> Result<T, DocumentError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document: T = match http.get_json(&url).await {
        Ok(d) => d,
        Err(source) => return Err(DocumentError::Read { url, source }),
    };
    if document.issuer() != issuer {
        return Err(DocumentError::IssuerMismatch {
            found: document.issuer().to_owned(),
        });
    }
    Ok(document)
}

/// The parts of `/.well-known/openid-configuration` we use.
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

impl DiscoveryDocument for Metadata {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Everything needed to build [`Endpoints`], from the configuration.
#[derive(Debug)]
pub(crate) struct DiscoverySettings {
    pub(crate) backend: String,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) secret: Option<docker_token_core::Password>,
    pub(crate) client_auth: crate::config::ClientAuth,
    pub(crate) introspection_override: Option<String>,
    pub(crate) jwks_override: Option<String>,
    pub(crate) want_jwks: bool,
    pub(crate) jwks_min_refresh: Duration,
    pub(crate) jwks_max_age: Duration,
}

/// The lazily discovered endpoints.
#[derive(Debug)]
pub(crate) struct Discovery {
    settings: DiscoverySettings,
    done: RwLock<Option<Arc<Endpoints>>>,
    in_flight: tokio::sync::Mutex<()>,
    last_failure: Mutex<Option<(Instant, BackendErrorKind, String)>>,
}

impl Discovery {
    pub(crate) fn new(settings: DiscoverySettings) -> Self {
        Self {
            settings,
            done: RwLock::new(None),
            in_flight: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<Endpoints>> {
        self.done.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The endpoints, discovering them if needed.
    pub(crate) async fn endpoints(
        &self,
        http: &HttpClient,
    ) -> Result<Arc<Endpoints>, BackendError> {
        if let Some(e) = self.current() {
            return Ok(e);
        }
        let _one_at_a_time = self.in_flight.lock().await;
        if let Some(e) = self.current() {
            return Ok(e);
        }
        let last_failure = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, kind, msg)) = last_failure
            && at.elapsed() < RETRY_AFTER
        {
            return Err(BackendError::new(kind, &self.settings.backend, msg));
        }
        match self.discover(http).await {
            Ok(endpoints) => {
                let endpoints = Arc::new(endpoints);
                *self.done.write().unwrap_or_else(|p| p.into_inner()) = Some(endpoints.clone());
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(backend = %self.settings.backend, issuer = %self.settings.issuer, "OIDC endpoints discovered");
                Ok(endpoints)
            }
            Err(e) => {
                tracing::warn!(backend = %self.settings.backend, issuer = %self.settings.issuer, error = %docker_token_core::display_chain(&e), "OIDC discovery failed");
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((
                    Instant::now(),
                    e.kind(),
                    docker_token_core::display_chain(&e),
                ));
                Err(e)
            }
        }
    }

    async fn discover(&self, http: &HttpClient) -> Result<Endpoints, BackendError> {
        let s = &self.settings;
        let need_introspection = s.secret.is_some() && s.introspection_override.is_none();
        let need_jwks = s.want_jwks && s.jwks_override.is_none();
        let metadata = if need_introspection || need_jwks {
            Some(self.fetch_metadata(http).await?)
        } else {
            None
        };
        let misconfigured = |m: String| BackendError::misconfigured(&s.backend, m);

        let introspection = match (&s.secret, &s.introspection_override, &metadata) {
            (None, _, _) => None,
            (Some(_), Some(url), _) => Some(url.clone()),
            (Some(_), None, Some(m)) => m.introspection_endpoint.clone(),
            (Some(_), None, None) => None,
        };
        if s.secret.is_some() && introspection.is_none() {
            tracing::warn!(backend = %s.backend, "the IdP announces no introspection_endpoint; opaque access tokens cannot be checked");
        }
        let introspection = match introspection {
            Some(u) => {
                check_url(&u, false)
                    .map_err(|e| misconfigured(format!("introspection_endpoint: {e}")))?;
                Some(
                    IntrospectionUrl::new(u)
                        .map_err(|e| misconfigured(format!("introspection_endpoint: {e}")))?,
                )
            }
            None => None,
        };

        let jwks = if s.want_jwks {
            let uri = s
                .jwks_override
                .clone()
                .or_else(|| metadata.as_ref().and_then(|m| m.jwks_uri.clone()))
                .ok_or_else(|| {
                    misconfigured(
                        "the IdP announces no jwks_uri; JWT access tokens cannot be verified"
                            .to_owned(),
                    )
                })?;
            check_url(&uri, false).map_err(|e| misconfigured(format!("jwks_uri: {e}")))?;
            Some(JwksCache::new(uri, s.jwks_min_refresh, s.jwks_max_age))
        } else {
            None
        };
        Ok(Endpoints {
            introspector: Introspector::new(
                &s.client_id,
                s.secret.as_ref(),
                s.client_auth,
                introspection,
            ),
            jwks,
        })
    }

    async fn fetch_metadata(&self, http: &HttpClient) -> Result<Metadata, BackendError> {
        let s = &self.settings;
        fetch_document(http, &s.issuer).await.map_err(|e| match e {
            DocumentError::Read { url, source } => {
                let msg = format!("cannot read {url}");
                if source.is_unavailable() {
                    BackendError::unavailable(&s.backend, msg).with_source(source)
                } else {
                    BackendError::misconfigured(&s.backend, msg).with_source(source)
                }
            }
            DocumentError::IssuerMismatch { found } => BackendError::misconfigured(
                &s.backend,
                format!(
                    "the discovery document names the issuer {found:?}, but the configured issuer is {:?} \
                     (they must be identical, including any trailing slash)",
                    s.issuer
                ),
            ),
        })
    }
}
