//! The resource-server half: protect your own registry's `/v2/` routes with tokens from a
//! docker-token server (or any docker_auth-compatible one).
//!
//! [`RequireScope`] is a tower layer. For every request under `/v2` it
//!
//! 1. parses the path with the distribution route table ([`RegistryRoute`]; names may
//!    contain `/`) — a path that matches no route is answered 404 without a challenge, as
//!    distribution does;
//! 2. computes the access the request needs ([`RegistryRoute::required_access`]: `pull`,
//!    `pull`+`push`, `delete`, `registry:catalog:*`, plus `pull` on the `from` repository
//!    of a cross-repository mount);
//! 3. verifies the `Authorization: Bearer` token and checks every needed record;
//! 4. answers `401` exactly as registry 2.8 does when the token is missing, invalid
//!    (`error="invalid_token"`) or insufficient (`error="insufficient_scope"`): the
//!    `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge, the JSON body
//!    `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[…]}]}`
//!    and `Docker-Distribution-Api-Version: registry/2.0`;
//! 5. otherwise passes the request on with an [`Authorized`] extension (the parsed route and
//!    the verified token) that handlers take as an extractor.
//!
//! Paths outside `/v2` pass through untouched, so token routes or health checks can share
//! the router.
//!
//! The README's section on this, whose example is compiled here:
//!
#![doc = include_str!("protecting.md")]

mod route;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use docker_token_core::verify::{Challenge, ChallengeError};
pub use docker_token_core::verify::{TokenVerifier, VerifiedToken};
pub use route::{
    AccessRecord, MAX_NAME_LEN, RegistryRoute, RouteError, is_digest, is_repository_name, is_tag,
};

/// The `Docker-Distribution-Api-Version` header every registry response carries.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
/// Its value.
pub const API_VERSION: &str = "registry/2.0";

/// A shared, replaceable [`TokenVerifier`], e.g. refreshed from a JWKS URL while serving.
///
/// Each request takes the verifier the handle holds when it arrives; [`replace`](Self::replace)
/// affects later requests only.
#[derive(Clone, Debug)]
pub struct VerifierHandle {
    current: Arc<RwLock<Arc<TokenVerifier>>>,
}

impl VerifierHandle {
    /// A handle holding `verifier`.
    #[must_use]
    pub fn new(verifier: TokenVerifier) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(verifier))),
        }
    }

    /// The verifier new requests use now.
    #[must_use]
    pub fn current(&self) -> Arc<TokenVerifier> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `verifier` the one new requests use.
    pub fn replace(&self, verifier: TokenVerifier) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(verifier);
    }
}

impl From<TokenVerifier> for VerifierHandle {
    fn from(verifier: TokenVerifier) -> Self {
        Self::new(verifier)
    }
}

/// The tower layer that guards a registry's `/v2/` routes (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct RequireScope {
    config: Arc<GuardConfig>,
}

#[derive(Debug)]
struct GuardConfig {
    verifier: VerifierHandle,
    realm: String,
    service: String,
}

impl RequireScope {
    /// Guards with `verifier`; `realm` (the token endpoint's URL) and `service` go into the
    /// challenge, as a registry's `auth.token.realm` and `auth.token.service`.
    #[must_use]
    pub fn new(
        verifier: impl Into<VerifierHandle>,
        realm: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        Self {
            config: Arc::new(GuardConfig {
                verifier: verifier.into(),
                realm: realm.into(),
                service: service.into(),
            }),
        }
    }
}

impl<S> tower::Layer<S> for RequireScope {
    type Service = RequireScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`RequireScope`] wraps around the registry's routes.
#[derive(Clone, Debug)]
pub struct RequireScopeService<S> {
    inner: S,
    config: Arc<GuardConfig>,
}

impl<S> tower::Service<Request> for RequireScopeService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.config.check(&request) {
            Ok(None) => {}
            Ok(Some(authorized)) => {
                request.extensions_mut().insert(authorized);
            }
            Err(response) => return Box::pin(std::future::ready(Ok(*response))),
        }
        // the clone is the one that was not polled ready; call the ready one
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(request))
    }
}

/// What [`RequireScope`] hands to handlers: the parsed route and the verified token.
///
/// Take it as an extractor in handlers behind the layer (it is a request extension); a
/// handler that is not behind the layer gets a 500, since that is a wiring bug.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Authorized {
    /// The route the request addresses.
    pub route: RegistryRoute,
    /// The verified token (subject, granted access).
    pub token: Arc<VerifiedToken>,
}

impl<S: Send + Sync> FromRequestParts<S> for Authorized {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handler is not behind RequireScope",
        ))
    }
}

impl GuardConfig {
    /// `Ok(None)`: not a registry path, pass through. `Ok(Some)`: authorized.
    fn check(&self, request: &Request) -> Result<Option<Authorized>, Box<Response>> {
        let Some(route) = RegistryRoute::parse(request.uri().path()) else {
            return Ok(None);
        };
        let route = match route {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, method = %request.method(), "no registry route");
                let code = match e {
                    RouteError::NameInvalid => "NAME_INVALID",
                    _ => "NOT_FOUND",
                };
                return Err(Box::new(registry_error(
                    StatusCode::NOT_FOUND,
                    code,
                    &e.to_string(),
                )));
            }
        };
        let from = request.uri().query().and_then(first_from);
        if let Some(from) = from.as_deref()
            && !from.is_empty()
            && !is_repository_name(from)
        {
            tracing::info!("refused: invalid repository name in `from`");
            return Err(Box::new(registry_error(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name in from",
            )));
        }
        let needed = route.required_access(request.method(), from.as_deref());
        let refuse = |why: Option<ChallengeError>| Err(Box::new(self.unauthorized(&needed, why)));
        let Some(raw) = bearer_token(request.headers()) else {
            return refuse(None);
        };
        let verifier = self.verifier.current();
        let token = match verifier.verify(raw) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(error = %e, method = %request.method(), repository = route.repository().unwrap_or(""), "refused: invalid token");
                return refuse(Some(e.challenge_error()));
            }
        };
        if let Some(missing) = needed
            .iter()
            .find(|r| !token.allows(r.resource_type, &r.name, r.action))
        {
            tracing::info!(
                method = %request.method(),
                resource = %format_args!("{}:{}", missing.resource_type, missing.name),
                action = missing.action,
                "refused: insufficient scope"
            );
            return refuse(Some(ChallengeError::InsufficientScope));
        }
        Ok(Some(Authorized {
            route,
            token: Arc::new(token),
        }))
    }

    /// The 401: `error` is `None` when no usable Bearer token was sent.
    fn unauthorized(&self, needed: &[AccessRecord], error: Option<ChallengeError>) -> Response {
        // the registry orders the scope's resources and actions randomly (Go map
        // iteration); the builder keeps the route table's order
        let mut challenge = needed
            .iter()
            .fold(Challenge::new(&self.realm, &self.service), |c, r| {
                c.with_access(r.resource_type, &r.name, r.action)
            });
        if let Some(e) = error {
            challenge = challenge.with_error(e);
        }
        let mut headers = registry_headers();
        if let Ok(v) = HeaderValue::from_str(&challenge.header_value()) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        let detail = (!needed.is_empty()).then(|| {
            needed
                .iter()
                .map(|r| Detail {
                    resource_type: r.resource_type,
                    class: "",
                    name: &r.name,
                    action: r.action,
                })
                .collect()
        });
        let body = UnauthorizedBody {
            errors: [UnauthorizedEntry {
                code: "UNAUTHORIZED",
                message: "authentication required",
                detail,
            }],
        };
        (StatusCode::UNAUTHORIZED, headers, json_line(&body)).into_response()
    }
}

/// The token of `Authorization: Bearer <token>`, split as registry 2.8 does: exactly two
/// parts separated by single spaces, scheme case-insensitive.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let mut parts = value.split(' ');
    let (scheme, token) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && scheme.eq_ignore_ascii_case("bearer")).then_some(token)
}

/// The first `from` query parameter (distribution reads `r.FormValue("from")`).
fn first_from(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "from")
        .map(|(_, v)| v.into_owned())
}

/// `Content-Type: application/json; charset=utf-8` and the API version, as distribution sends
/// with its errors.
fn registry_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    headers
}

/// A docker-style error response `{"errors":[{"code":…,"message":…}]}` (plus the newline
/// distribution writes) with distribution's `Content-Type` and API-version headers.
#[must_use]
pub fn registry_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = PlainBody {
        errors: [PlainEntry { code, message }],
    };
    (status, registry_headers(), json_line(&body)).into_response()
}

/// JSON plus the newline Go's `json.Encoder` writes.
fn json_line(value: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

#[derive(Serialize)]
struct UnauthorizedBody<'a> {
    errors: [UnauthorizedEntry<'a>; 1],
}

#[derive(Serialize)]
struct UnauthorizedEntry<'a> {
    code: &'a str,
    message: &'a str,
    /// `null` on `/v2/`, as distribution sends it.
    detail: Option<Vec<Detail<'a>>>,
}

/// distribution's `auth.Access`, serialised with Go's field names.
#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "Type")]
    resource_type: &'a str,
    #[serde(rename = "Class")]
    class: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Action")]
    action: &'a str,
}

#[derive(Serialize)]
struct PlainBody<'a> {
    errors: [PlainEntry<'a>; 1],
}

#[derive(Serialize)]
struct PlainEntry<'a> {
    code: &'a str,
    message: &'a str,
}

#[cfg(test)]
mod tests;
