//! Lazy OpenID Connect discovery: the endpoints are read on first use (or by an explicit
//! `discover()`), a failure is retried by a later request, and a failure is remembered for a
//! second so that a down IdP does not queue every request behind a timeout.

use std::sync::Arc;
use std::time::Duration;

use docker_token_core::{BackendError, BackendErrorKind};
use oauth2::IntrospectionUrl;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::check_url;
use crate::http::{HttpClient, HttpError};
use crate::introspection::Introspector;
use crate::jwks::JwksCache;
use crate::single_flight::{Backoff, SingleFlight};

/// After a failed discovery, further attempts fail at once for this long (both the
/// access-token authenticator's and the browser login's).
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What discovery yields for the access-token authenticator: how to check opaque tokens and
/// where the keys are.
#[derive(Debug)]
pub(crate) struct TokenEndpoints {
    pub(crate) introspector: Introspector,
    /// `None` when JWT access tokens are not verified locally (no `audiences`).
    pub(crate) jwks: Option<JwksCache>,
}

/// Why a discovery document could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DocumentError {
    /// Reading or decoding `url` failed.
    #[error("cannot read {url}")]
    Read {
        url: String,
        #[source]
        source: HttpError,
    },
    /// The document names another issuer than the configured one.
    #[error(
        "the discovery document names the issuer {found:?}, but the configured issuer is \
         {configured:?} (they must be identical, including any trailing slash)"
    )]
    IssuerMismatch { found: String, configured: String },
}

impl DocumentError {
    /// Whether the provider cannot be used right now (rather than being misconfigured).
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.is_unavailable())
    }
}

/// Reads `<issuer>/.well-known/openid-configuration`, checks that its `issuer` member is
/// exactly `issuer`, and decodes the members `T` names (both the access-token authenticator
/// and the browser login use it).
pub(crate) async fn fetch_document<T: DeserializeOwned>(
    http: &HttpClient,
    issuer: &str,
) -> Result<T, DocumentError> {
    /// The member every discovery document has.
    #[derive(Deserialize)]
    struct Issuer {
        issuer: String,
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let read = |source| DocumentError::Read {
        url: url.clone(),
        source,
    };
    let document: serde_json::Value = http.get_json(&url).await.map_err(read)?;
    let found = Issuer::deserialize(&document)
        .map_err(|e| read(HttpError::Json(e)))?
        .issuer;
    if found != issuer {
        return Err(DocumentError::IssuerMismatch {
            found,
            configured: issuer.to_owned(),
        });
    }
    T::deserialize(document).map_err(|e| read(HttpError::Json(e)))
}

/// The parts of `/.well-known/openid-configuration` we use.
#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

/// Everything needed to build [`TokenEndpoints`], from the configuration.
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

/// A failed discovery, kept by the back-off and answered again while it lasts.
#[derive(Clone, Debug)]
struct Failure {
    kind: BackendErrorKind,
    message: String,
    source: Option<Arc<HttpError>>,
}

impl Failure {
    fn misconfigured(message: String) -> Self {
        Self {
            kind: BackendErrorKind::Misconfigured,
            message,
            source: None,
        }
    }

    fn into_backend_error(self, backend: &str) -> BackendError {
        let e = BackendError::new(self.kind, backend, self.message);
        match self.source {
            Some(source) => e.with_source(source),
            None => e,
        }
    }
}

/// The lazily discovered endpoints.
#[derive(Debug)]
pub(crate) struct Discovery {
    settings: DiscoverySettings,
    endpoints: SingleFlight<TokenEndpoints>,
    backoff: Backoff<Failure>,
}

impl Discovery {
    pub(crate) fn new(settings: DiscoverySettings) -> Self {
        Self {
            settings,
            endpoints: SingleFlight::default(),
            backoff: Backoff::new(RETRY_AFTER),
        }
    }

    /// The endpoints, discovering them if needed (one discovery at a time; a failure is
    /// answered again for [`RETRY_AFTER`], then retried).
    pub(crate) async fn endpoints(
        &self,
        http: &HttpClient,
    ) -> Result<Arc<TokenEndpoints>, BackendError> {
        let s = &self.settings;
        self.endpoints
            .get_or_try_init(|| {
                self.backoff.run(|| async {
                    let result = self.discover(http).await;
                    match &result {
                        Ok(_) => {
                            tracing::info!(backend = %s.backend, issuer = %s.issuer, "OIDC endpoints discovered");
                        }
                        Err(e) => {
                            let error = docker_token_core::display_chain(
                                &e.clone().into_backend_error(&s.backend),
                            );
                            tracing::warn!(backend = %s.backend, issuer = %s.issuer, %error, "OIDC discovery failed");
                        }
                    }
                    result
                })
            })
            .await
            .map_err(|e| e.into_backend_error(&s.backend))
    }

    async fn discover(&self, http: &HttpClient) -> Result<TokenEndpoints, Failure> {
        let s = &self.settings;
        let need_introspection = s.secret.is_some() && s.introspection_override.is_none();
        let need_jwks = s.want_jwks && s.jwks_override.is_none();
        let metadata = if need_introspection || need_jwks {
            Some(self.fetch_metadata(http).await?)
        } else {
            None
        };
        let misconfigured = Failure::misconfigured;

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
        Ok(TokenEndpoints {
            introspector: Introspector::new(
                &s.client_id,
                s.secret.as_ref(),
                s.client_auth,
                introspection,
            ),
            jwks,
        })
    }

    async fn fetch_metadata(&self, http: &HttpClient) -> Result<Metadata, Failure> {
        fetch_document(http, &self.settings.issuer)
            .await
            .map_err(|e| {
                let kind = if e.is_unavailable() {
                    BackendErrorKind::Unavailable
                } else {
                    BackendErrorKind::Misconfigured
                };
                match e {
                    DocumentError::Read { url, source } => Failure {
                        kind,
                        message: format!("cannot read {url}"),
                        source: Some(Arc::new(source)),
                    },
                    mismatch @ DocumentError::IssuerMismatch { .. } => Failure {
                        kind,
                        message: mismatch.to_string(),
                        source: None,
                    },
                }
            })
    }
}
