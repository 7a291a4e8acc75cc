//! Talking to the provider for the browser login: lazy discovery of the authorization, token,
//! userinfo and JWKS endpoints; the code and refresh-token exchanges (oauth2); id-token
//! verification (jsonwebtoken, JWKS) and userinfo.

use std::sync::Arc;

use docker_token_core::{BackendError, Password};
use oauth2::basic::{BasicErrorResponseType, BasicTokenIntrospectionResponse, BasicTokenType};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    StandardErrorResponse, StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::check_url;
use crate::discovery::{RETRY_AFTER, fetch_document};
use crate::http::{HttpClient, HttpError, OAuthClient};
use crate::jwks::JwksCache;
use crate::jwt::{JwtError, JwtRules};
use crate::single_flight::{Backoff, SingleFlight};

/// The `id_token` member of a token response.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type LoginClient =
    OAuthClient<TokenResponse, BasicTokenIntrospectionResponse, EndpointNotSet, EndpointSet>;

/// The discovery document's members we use.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginMetadata {
    pub(crate) authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// What discovery yields for the browser login: its endpoints plus the JWKS cache.
#[derive(Debug)]
pub(crate) struct LoginEndpoints {
    pub(crate) metadata: LoginMetadata,
    jwks: JwksCache,
}

/// Why talking to the provider failed.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    /// The provider is down, slow, or answered 5xx.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the grant (expired/used code, revoked refresh token, PKCE mismatch).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    /// The answer is unusable (no id token, invalid signature, wrong issuer or audience).
    #[error("invalid answer from the identity provider: {0}")]
    Invalid(String),
    /// Our own configuration is wrong (client secret refused, bad endpoints).
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

impl ProviderError {
    /// As a core backend error, for the authenticator.
    pub(crate) fn into_backend(self, backend: &str) -> BackendError {
        match self {
            Self::Unavailable(m) => BackendError::unavailable(backend, m),
            Self::Misconfigured(m) => BackendError::misconfigured(backend, m),
            other => BackendError::unavailable(backend, other.to_string()),
        }
    }
}

/// Tokens and verified claims from one exchange.
#[derive(Debug)]
pub(crate) struct Exchanged {
    pub(crate) claims: Map<String, Value>,
    pub(crate) refresh_token: Option<Password>,
}

/// The provider side of the login.
#[derive(Debug)]
pub(crate) struct LoginProvider {
    pub(crate) http: HttpClient,
    issuer: String,
    client_id: String,
    secret: Password,
    redirect_url: String,
    rules: JwtRules,
    use_userinfo: bool,
    endpoints: SingleFlight<LoginEndpoints>,
    backoff: Backoff<ProviderError>,
}

impl LoginProvider {
    pub(crate) fn new(
        http: HttpClient,
        issuer: String,
        client_id: String,
        secret: Password,
        redirect_url: String,
        clock_skew: std::time::Duration,
        use_userinfo: bool,
    ) -> Self {
        let rules = JwtRules {
            issuer: issuer.clone(),
            audiences: vec![client_id.clone()],
            algorithms: crate::JwtAlgorithm::defaults()
                .into_iter()
                .map(crate::JwtAlgorithm::to_jsonwebtoken)
                .collect(),
            clock_skew,
        };
        Self {
            http,
            issuer,
            client_id,
            secret,
            redirect_url,
            rules,
            use_userinfo,
            endpoints: SingleFlight::default(),
            backoff: Backoff::new(RETRY_AFTER),
        }
    }

    /// The endpoints, discovered on first use (one discovery at a time; a failure is
    /// answered again for [`RETRY_AFTER`], then retried).
    pub(crate) async fn endpoints(&self) -> Result<Arc<LoginEndpoints>, ProviderError> {
        self.endpoints
            .get_or_try_init(|| self.backoff.run(|| self.discover()))
            .await
    }

    async fn discover(&self) -> Result<LoginEndpoints, ProviderError> {
        let metadata: LoginMetadata =
            fetch_document(&self.http, &self.issuer)
                .await
                .map_err(|e| {
                    let message = docker_token_core::display_chain(&e);
                    if e.is_unavailable() {
                        ProviderError::Unavailable(message)
                    } else {
                        ProviderError::Misconfigured(message)
                    }
                })?;
        for (name, u) in [
            (
                "authorization_endpoint",
                Some(&metadata.authorization_endpoint),
            ),
            ("token_endpoint", Some(&metadata.token_endpoint)),
            ("jwks_uri", Some(&metadata.jwks_uri)),
            ("userinfo_endpoint", metadata.userinfo_endpoint.as_ref()),
        ] {
            if let Some(u) = u {
                check_url(u, false)
                    .map_err(|e| ProviderError::Misconfigured(format!("{name}: {e}")))?;
            }
        }
        let jwks = JwksCache::new(
            metadata.jwks_uri.clone(),
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(3600),
        );
        tracing::info!(issuer = %self.issuer, "OIDC login endpoints discovered");
        Ok(LoginEndpoints { metadata, jwks })
    }

    fn client(&self, endpoints: &LoginEndpoints) -> Result<LoginClient, ProviderError> {
        let token_url = TokenUrl::new(endpoints.metadata.token_endpoint.clone())
            .map_err(|e| ProviderError::Misconfigured(format!("token_endpoint: {e}")))?;
        let redirect = RedirectUrl::new(self.redirect_url.clone())
            .map_err(|e| ProviderError::Misconfigured(format!("redirect_url: {e}")))?;
        Ok(oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.secret.expose().to_owned()))
            .set_auth_type(AuthType::BasicAuth)
            .set_token_uri(token_url)
            .set_redirect_uri(redirect))
    }

    /// Exchanges an authorization code (with the PKCE verifier) and verifies the id token,
    /// including its `nonce`.
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Exchanged, ProviderError> {
        let endpoints = self.endpoints().await?;
        let answer = self
            .client(&endpoints)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        self.claims_of(&endpoints, &answer, Some(nonce)).await
    }

    /// Uses a refresh token; returns fresh claims (id token or userinfo) and the new refresh
    /// token (the old one when the provider does not rotate).
    pub(crate) async fn refresh(
        &self,
        refresh_token: &Password,
    ) -> Result<Exchanged, ProviderError> {
        let endpoints = self.endpoints().await?;
        let answer = self
            .client(&endpoints)?
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let mut out = self.claims_of(&endpoints, &answer, None).await?;
        if out.refresh_token.is_none() {
            out.refresh_token = Some(refresh_token.clone());
        }
        Ok(out)
    }

    async fn claims_of(
        &self,
        endpoints: &LoginEndpoints,
        answer: &TokenResponse,
        nonce: Option<&str>,
    ) -> Result<Exchanged, ProviderError> {
        let refresh_token = answer
            .refresh_token()
            .map(|t| Password::new(t.secret().clone()));
        let id_claims = match &answer.extra_fields().id_token {
            Some(t) => Some(self.verify_id_token(endpoints, t, nonce).await?),
            None if nonce.is_some() => {
                return Err(ProviderError::Invalid(
                    "the token response has no id_token (is `openid` among the scopes?)".to_owned(),
                ));
            }
            None => None,
        };
        let claims = match (id_claims, self.use_userinfo) {
            (Some(id), false) => id,
            (id, _) => {
                let info = self
                    .userinfo(endpoints, answer.access_token().secret())
                    .await?;
                if let Some(id) = &id
                    && id.get("sub") != info.get("sub")
                {
                    return Err(ProviderError::Invalid(
                        "userinfo names another subject than the id token".to_owned(),
                    ));
                }
                info
            }
        };
        Ok(Exchanged {
            claims,
            refresh_token,
        })
    }

    async fn verify_id_token(
        &self,
        endpoints: &LoginEndpoints,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let claims = self
            .rules
            .verify(token, &endpoints.jwks, &self.http)
            .await
            .map_err(|e| match e {
                JwtError::Invalid(m) => ProviderError::Invalid(format!("id token: {m}")),
                JwtError::Keys(e) => ProviderError::Unavailable(e.to_string()),
            })?;
        if let Some(want) = nonce {
            let got = claims.get("nonce").and_then(Value::as_str);
            let same = got.is_some_and(|g| {
                aws_lc_rs::constant_time::verify_slices_are_equal(g.as_bytes(), want.as_bytes())
                    .is_ok()
            });
            if !same {
                return Err(ProviderError::Invalid(
                    "id token: nonce mismatch".to_owned(),
                ));
            }
        }
        Ok(claims)
    }

    async fn userinfo(
        &self,
        endpoints: &LoginEndpoints,
        access_token: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let Some(url) = &endpoints.metadata.userinfo_endpoint else {
            return Err(ProviderError::Misconfigured(
                "the provider announces no userinfo_endpoint".to_owned(),
            ));
        };
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .body(Vec::new())
            .map_err(|e| ProviderError::Misconfigured(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| unavailable(&e))?;
        if response.status() != http::StatusCode::OK {
            let e = HttpError::Status(response.status());
            return Err(if e.is_unavailable() {
                ProviderError::Unavailable(format!("userinfo: {e}"))
            } else {
                ProviderError::Refused(format!("userinfo: {e}"))
            });
        }
        serde_json::from_slice(response.body())
            .map_err(|e| ProviderError::Invalid(format!("userinfo: {e}")))
    }
}

fn unavailable(e: &HttpError) -> ProviderError {
    ProviderError::Unavailable(e.to_string())
}

fn token_error(
    e: RequestTokenError<HttpError, StandardErrorResponse<BasicErrorResponseType>>,
) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                ProviderError::Misconfigured(format!("the provider refused our client: {r}"))
            }
            _ => ProviderError::Refused(r.to_string()),
        },
        RequestTokenError::Request(HttpError::Status(s))
            if s == http::StatusCode::UNAUTHORIZED || s == http::StatusCode::FORBIDDEN =>
        {
            ProviderError::Misconfigured(format!(
                "the token endpoint answered {s}: is the client secret right?"
            ))
        }
        RequestTokenError::Request(e) => unavailable(&e),
        RequestTokenError::Parse(e, _) => ProviderError::Invalid(format!("token response: {e}")),
        RequestTokenError::Other(m) => ProviderError::Invalid(m),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_failed_discovery_is_answered_again_without_a_request() {
        let issuer = format!("http://127.0.0.1:{}", test_support::free_port());
        let mut provider = LoginProvider::new(
            HttpClient::new(Duration::from_secs(5)).unwrap(),
            issuer,
            "registry-ui".to_owned(),
            Password::new("secret"),
            "http://127.0.0.1:1/oidc_auth".to_owned(),
            Duration::from_secs(30),
            false,
        );
        // a window no test run outlasts, so that the second call surely falls into it
        provider.backoff = Backoff::new(Duration::from_secs(3600));
        let first = provider.endpoints().await.unwrap_err();
        assert!(matches!(first, ProviderError::Unavailable(_)), "{first}");
        assert_eq!(provider.http.requests(), 1);
        let second = provider.endpoints().await.unwrap_err();
        assert_eq!(second.to_string(), first.to_string());
        assert_eq!(provider.http.requests(), 1, "no second request");
        // once the window is over, discovery is tried again
        provider.backoff = Backoff::new(Duration::ZERO);
        assert!(provider.endpoints().await.is_err());
        assert_eq!(provider.http.requests(), 2);
    }
}
