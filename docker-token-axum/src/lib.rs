//! A thin [axum](https://docs.rs/axum) adapter over [`docker_token_core::TokenService`].
//!
//! It turns HTTP into a [`TokenRequest`] and a token (or a typed error) back into HTTP;
//! nothing about users, ACLs or keys lives here.
//!
//! | route (under the optional prefix) | what |
//! |---|---|
//! | `GET`/`POST /auth` and `/auth/token` | the token endpoint (query, or OAuth2 form; chunked bodies fine) |
//! | `GET /.well-known/jwks.json` | the signing keys as a JWKS document (registry 3.x `jwks:`) |
//! | `GET /healthz` | liveness: the process answers |
//! | `GET /readyz` | readiness: every backend is reachable (503 otherwise) |
//!
//! With the `oidc` feature, `oidc_login_router` adds the OIDC browser login (the OIDC routes).
//!
//! ```no_run
//! # async fn demo(service: docker_token_core::TokenService) -> std::io::Result<()> {
//! use docker_token_axum::{TokenRouter, serve_with_connect_info};
//!
//! let app = TokenRouter::new(service).build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5001").await?;
//! axum::serve(listener, serve_with_connect_info(app)).await
//! # }
//! ```

mod client_ip;
mod handle;
pub mod metrics;
#[cfg(feature = "oidc")]
mod oidc;
pub mod resource;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use docker_token_core::request::TokenRequest;
use docker_token_core::{Error, TokenService};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tracing::{Instrument, field};

pub use client_ip::{ClientIpConfig, ClientIpError};
pub use handle::ServiceHandle;
pub use metrics::Outcome;
#[cfg(feature = "oidc")]
pub use oidc::{OidcLoginHandle, oidc_login_router, oidc_login_routes};

/// The default token path, as in docker_auth.
pub const DEFAULT_TOKEN_PATH: &str = "/auth";
/// The default request-body limit for OAuth2 POSTs (real bodies are a few hundred bytes).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The default limit on the query string length.
pub const DEFAULT_QUERY_LIMIT: usize = 16 * 1024;
/// How long clients may cache `/.well-known/jwks.json` by default (`Cache-Control:
/// public, max-age=300`). A new key must be published (as verify-only) at least this long
/// before it starts signing.
pub const DEFAULT_JWKS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);
/// The default time a client may take to send a POST body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the token server's [`Router`].
#[derive(Debug, Clone)]
pub struct TokenRouter {
    service: ServiceHandle,
    prefix: String,
    token_path: String,
    client_ip: ClientIpConfig,
    body_limit: usize,
    query_limit: usize,
    jwks_cache_control: HeaderValue,
    body_timeout: Duration,
}

/// What every handler needs; axum clones the state for each request, so it is one `Arc`.
#[derive(Clone, Debug)]
struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

#[derive(Debug)]
struct AppStateInner {
    service: ServiceHandle,
    client_ip: ClientIpConfig,
    body_limit: usize,
    query_limit: usize,
    jwks_cache_control: HeaderValue,
    body_timeout: Duration,
}

impl TokenRouter {
    /// Routes for `service` with the defaults (`/auth`, peer address as client IP).
    #[must_use]
    pub fn new(service: TokenService) -> Self {
        Self::with_handle(ServiceHandle::new(service))
    }

    /// Routes for a replaceable service: every request uses the service the handle holds
    /// when the request arrives, so [`ServiceHandle::replace`] (a configuration reload)
    /// takes effect for new requests while in-flight ones finish with the old service.
    #[must_use]
    pub fn with_handle(service: ServiceHandle) -> Self {
        Self {
            service,
            prefix: String::new(),
            token_path: DEFAULT_TOKEN_PATH.to_owned(),
            client_ip: ClientIpConfig::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            query_limit: DEFAULT_QUERY_LIMIT,
            jwks_cache_control: jwks_cache_control(DEFAULT_JWKS_MAX_AGE),
            body_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }

    /// The handle through which the service can be replaced while serving.
    #[must_use]
    pub fn handle(&self) -> ServiceHandle {
        self.service.clone()
    }

    /// A prefix for every route (docker_auth's `server.path_prefix`, e.g. `/docker`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// The token path (default `/auth`); `<path>/token` is served too.
    #[must_use]
    pub fn token_path(mut self, path: impl Into<String>) -> Self {
        self.token_path = path.into();
        self
    }

    /// How the client IP is determined (peer address, or a header from trusted proxies).
    #[must_use]
    pub fn client_ip(mut self, config: ClientIpConfig) -> Self {
        self.client_ip = config;
        self
    }

    /// The maximum POST body size in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long clients may cache the JWKS document (`Cache-Control: public, max-age=N`,
    /// whole seconds; default [`DEFAULT_JWKS_MAX_AGE`]).
    #[must_use]
    pub fn jwks_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.jwks_cache_control = jwks_cache_control(max_age);
        self
    }

    /// How long a client may take to send a POST body before it is answered 408 (default
    /// [`DEFAULT_BODY_READ_TIMEOUT`]).
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Builds the router. Serve it with [`serve_with_connect_info`] so that the peer
    /// address is known.
    pub fn build(self) -> Router {
        let state = AppState(Arc::new(AppStateInner {
            service: self.service,
            client_ip: self.client_ip,
            body_limit: self.body_limit,
            query_limit: self.query_limit,
            jwks_cache_control: self.jwks_cache_control,
            body_timeout: self.body_timeout,
        }));
        let token: MethodRouter<AppState> = get(token_endpoint).post(token_endpoint);
        let p = &self.prefix;
        let tp = self.token_path.trim_end_matches('/');
        Router::new()
            .route(&format!("{p}{tp}"), token.clone())
            .route(&format!("{p}{tp}/token"), token)
            .route(&format!("{p}/.well-known/jwks.json"), get(jwks))
            .route(&format!("{p}/healthz"), get(healthz))
            .route(&format!("{p}/readyz"), get(readyz))
            .layer(DefaultBodyLimit::max(state.body_limit))
            .with_state(state)
    }
}

/// Wraps a router so that handlers see the peer address (`ConnectInfo<SocketAddr>`).
pub fn serve_with_connect_info(
    router: Router,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    router.into_make_service_with_connect_info::<SocketAddr>()
}

async fn token_endpoint(State(state): State<AppState>, request: Request) -> Response {
    let span = tracing::debug_span!(
        "token",
        method = %request.method(),
        client_ip = field::Empty,
        account = field::Empty,
        service = field::Empty,
        scopes = field::Empty,
        outcome = field::Empty,
        jti = field::Empty,
    );
    let started = metrics::start();
    let (response, outcome) = handle_token(state, request).instrument(span.clone()).await;
    span.record("outcome", outcome.as_str());
    metrics::token_request(outcome, started);
    response
}

async fn handle_token(state: AppState, request: Request) -> (Response, Outcome) {
    let span = tracing::Span::current();
    let service = state.service.current();
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client_ip = match state.client_ip.resolve(peer, &parts.headers) {
        Ok(ip) => ip,
        Err(e) => {
            tracing::warn!(error = %e, "cannot determine the client address");
            return (
                error_response(&service, &Error::InvalidRequest(e.to_string())),
                Outcome::BadRequest,
            );
        }
    };
    if let Some(ip) = client_ip {
        span.record("client_ip", field::display(ip));
    }
    let authorization = parts.headers.get(header::AUTHORIZATION);
    let parsed = if parts.method == Method::POST {
        match read_body(body, state.body_limit, state.body_timeout).await {
            Ok(bytes) => TokenRequest::from_form(&bytes, authorization, client_ip),
            Err(resp) => return (resp, Outcome::BadRequest),
        }
    } else {
        let query = parts.uri.query().unwrap_or("");
        if query.len() > state.query_limit {
            return (
                error_response(
                    &service,
                    &Error::InvalidRequest("query string too long".to_owned()),
                ),
                Outcome::BadRequest,
            );
        }
        TokenRequest::from_query(query, authorization, client_ip)
    };
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %docker_token_core::display_chain(&e), "bad token request");
            return (error_response(&service, &e), Outcome::from_error(&e));
        }
    };
    span.record("service", request.service.as_str());
    span.record("scopes", field::display(ScopeList(&request)));
    match service.issue(&request).await {
        Ok(issued) => {
            span.record("account", issued.account.as_str());
            span.record("jti", issued.jti.as_str());
            let body = issued.response.to_json();
            (
                json_response(StatusCode::OK, body),
                Outcome::granted(&request, &issued.access),
            )
        }
        Err(e) => {
            span.record("account", request.credentials.username().unwrap_or(""));
            (error_response(&service, &e), Outcome::from_error(&e))
        }
    }
}

struct ScopeList<'a>(&'a TokenRequest);

impl std::fmt::Display for ScopeList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Response> {
    let (status, message) = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
    {
        Ok(Ok(bytes)) => return Ok(bytes),
        Ok(Err(e))
            if std::error::Error::source(&e)
                .is_some_and(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>) =>
        {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {limit} bytes"),
            )
        }
        Ok(Err(_)) => (
            StatusCode::BAD_REQUEST,
            "request body is malformed (bad chunked encoding) or incomplete".to_owned(),
        ),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!("request body not received within {timeout:?}"),
        ),
    };
    tracing::info!(status = status.as_u16(), "{message}");
    let (_, headers, body) = Error::InvalidRequest(message).to_http("");
    Err((status, headers, body).into_response())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    (status, headers, body).into_response()
}

fn error_response(service: &TokenService, error: &Error) -> Response {
    let (status, mut headers, body) = service.error_response(error);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (status, headers, body).into_response()
}

/// The active and verify-only public keys; cacheable, unlike the token responses.
async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = json_response(
        StatusCode::OK,
        state.service.current().jwks().to_string().into_bytes(),
    );
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, state.jwks_cache_control.clone());
    headers.remove(header::PRAGMA);
    response
}

fn jwks_cache_control(max_age: std::time::Duration) -> HeaderValue {
    HeaderValue::try_from(format!("public, max-age={}", max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let service = state.service.current();
    match service.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %docker_token_core::display_chain(&e), "not ready");
            let e = Error::from(e);
            error_response(&service, &e)
        }
    }
}
