//! The OIDC browser-login routes (feature `oidc`): thin wrappers over
//! [`docker_token_oidc::OidcLogin`]'s framework-free handlers.
//!
//! | route | what |
//! |---|---|
//! | `GET <start>` (e.g. `/oidc_auth`) | redirect to the provider (or the callback, when it carries `code`/`state`/`error`) |
//! | `GET <callback>` (the path of `redirect_url`) | the callback: shows the docker password once |
//! | `POST <start>/sign_out` | deletes the stored password (HTTP Basic: docker user and password) |
//!
//! [`oidc_login_router`] mounts one fixed login; [`oidc_login_routes`] follows an
//! [`OidcLoginHandle`], so that a configuration reload can replace the login (its provider,
//! client, claims and even its paths) while the server runs.

use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use docker_token_oidc::OidcLogin;
use http::{HeaderValue, Method, StatusCode, header};

/// A replaceable OIDC browser login (or none), shared by the routes of
/// [`oidc_login_routes`] and the code that reloads the configuration.
///
/// ```
/// use docker_token_axum::{OidcLoginHandle, oidc_login_routes};
///
/// let handle = OidcLoginHandle::new(None); // no login configured yet: the routes answer 404
/// let routes = oidc_login_routes(handle.clone());
/// // later, on SIGHUP, with a login built from the new configuration:
/// // handle.replace(Some(login));
/// # let _ = routes;
/// ```
#[derive(Clone, Debug, Default)]
pub struct OidcLoginHandle {
    current: Arc<RwLock<Option<OidcLogin>>>,
}

impl OidcLoginHandle {
    /// A handle holding `login`.
    #[must_use]
    pub fn new(login: Option<OidcLogin>) -> Self {
        Self {
            current: Arc::new(RwLock::new(login)),
        }
    }

    /// The login new requests use.
    #[must_use]
    pub fn current(&self) -> Option<OidcLogin> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `login` the one new requests use; returns the previous one.
    pub fn replace(&self, login: Option<OidcLogin>) -> Option<OidcLogin> {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, login)
    }
}

/// The login routes of whatever login `handle` holds when a request arrives. They are
/// matched per request against the login's start, callback and sign-out paths, so a reload
/// that changes `redirect_url` or adds `oidc_auth` takes effect at once. Merge the result
/// into the token router; it answers every path the other routes do not know (404 unless it
/// is one of the login's paths, 405 for a wrong method).
pub fn oidc_login_routes(handle: OidcLoginHandle) -> Router {
    Router::new().fallback(dispatch).with_state(handle)
}

async fn dispatch(State(handle): State<OidcLoginHandle>, request: Request) -> Response {
    let Some(login) = handle.current() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = request.uri().path();
    let get_like = request.method() == Method::GET || request.method() == Method::HEAD;
    if path == login.start_path() {
        if !get_like {
            return method_not_allowed("GET,HEAD");
        }
        return start(State(login), request).await;
    }
    if path == login.callback_path() {
        if !get_like {
            return method_not_allowed("GET,HEAD");
        }
        return callback(State(login), request).await;
    }
    if path == login.sign_out_path() {
        if request.method() != Method::POST {
            return method_not_allowed("POST");
        }
        return sign_out(State(login), request).await;
    }
    StatusCode::NOT_FOUND.into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static(allow))],
    )
        .into_response()
}

/// The login routes for `login` (paths as the login reports them; include the server prefix
/// in `start_path` and `redirect_url`). Merge the result into the token router.
pub fn oidc_login_router(login: OidcLogin) -> Router {
    let mut router = Router::new()
        .route(login.start_path(), get(start))
        .route(&login.sign_out_path(), post(sign_out));
    if login.callback_path() != login.start_path() {
        router = router.route(login.callback_path(), get(callback));
    }
    router.with_state(login)
}

async fn start(State(login): State<OidcLogin>, request: Request) -> Response {
    let query = request.uri().query();
    if OidcLogin::is_callback_query(query) {
        return login
            .callback(query, request.headers())
            .await
            .into_response();
    }
    login.start().await.into_response()
}

async fn callback(State(login): State<OidcLogin>, request: Request) -> Response {
    login
        .callback(request.uri().query(), request.headers())
        .await
        .into_response()
}

async fn sign_out(State(login): State<OidcLogin>, request: Request) -> Response {
    login.sign_out(request.headers()).await.into_response()
}
