//! The HTTP client used to talk to the IdP: reqwest 0.13 without redirects, with timeouts and a
//! response size limit, counting its requests; plus the `oauth2::AsyncHttpClient` adapter
//! (oauth2's own reqwest feature pins reqwest 0.12).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse};
use oauth2::{EndpointNotSet, StandardRevocableToken};
use serde::de::DeserializeOwned;

/// An `oauth2` client with the standard error and revocation types, answering
/// `TokenResponse` at the token endpoint and `Introspected` at the introspection endpoint;
/// `HasIntrospectionUrl` and `HasTokenUrl` say which of the two is set (the others are not).
pub(crate) type OAuthClient<TokenResponse, Introspected, HasIntrospectionUrl, HasTokenUrl> =
    oauth2::Client<
        BasicErrorResponse,
        TokenResponse,
        Introspected,
        StandardRevocableToken,
        BasicRevocationErrorResponse,
        EndpointNotSet,
        EndpointNotSet,
        HasIntrospectionUrl,
        EndpointNotSet,
        HasTokenUrl,
    >;

/// Responses larger than this are refused (discovery documents and JWKS are a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Why an HTTP exchange with the IdP failed. Its `Display` never contains a secret: request
/// bodies and headers are not part of it, and URLs are the IdP's endpoints.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// Connecting, sending or receiving failed, or timed out.
    #[error("{0}")]
    Transport(#[source] reqwest::Error),
    /// The IdP answered with a server error (5xx), or another unexpected status.
    #[error("HTTP status {0}")]
    Status(StatusCode),
    /// The response was larger than the limit.
    #[error("response larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The response was not the JSON expected.
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The request could not be built.
    #[error("invalid request: {0}")]
    Request(String),
}

impl HttpError {
    /// Whether this means "the IdP cannot be used right now" (503) rather than a bad answer.
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status(s) => s.is_server_error() || *s == StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge | Self::Json(_) | Self::Request(_) => false,
        }
    }
}

/// A reqwest client with redirects off, timeouts, and a request counter.
#[derive(Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    requests: AtomicU64,
}

impl HttpClient {
    /// A client whose requests time out after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("docker-token-oidc/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            requests: AtomicU64::new(0),
        })
    }

    /// How many requests were sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends a request and reads the whole (size-limited) response. Any status is returned.
    pub(crate) async fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|e| HttpError::Request(e.without_url().to_string()))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(HttpError::Transport)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpError::Transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// GETs `url` and parses a 200 response as JSON.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, HttpError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let response = self.execute(request).await?;
        if response.status() != StatusCode::OK {
            return Err(HttpError::Status(response.status()));
        }
        serde_json::from_slice(response.body()).map_err(HttpError::Json)
    }
}

/// oauth2's HTTP client trait over reqwest 0.13. Server errors (5xx, 429) and 401/403 become
/// transport errors (`RequestTokenError::Request`), so that they are told apart from OAuth
/// error answers even when the IdP sends no JSON body with them.
impl<'c> oauth2::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.execute(request).await?;
            let status = response.status();
            let err = HttpError::Status(status);
            if err.is_unavailable()
                || status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN
            {
                return Err(err);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_classification() {
        assert!(HttpError::Status(StatusCode::BAD_GATEWAY).is_unavailable());
        assert!(HttpError::Status(StatusCode::TOO_MANY_REQUESTS).is_unavailable());
        assert!(!HttpError::Status(StatusCode::UNAUTHORIZED).is_unavailable());
        assert!(!HttpError::TooLarge.is_unavailable());
    }

    #[tokio::test]
    async fn connection_refused_is_unavailable_and_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = HttpClient::new(Duration::from_secs(2)).unwrap();
        let err = client
            .get_json::<serde_json::Value>(&format!("http://127.0.0.1:{port}/x"))
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert_eq!(client.requests(), 1);
    }
}
