//! The OIDC browser-login routes (feature `oidc`): thin wrappers over
//! [`docker_token_oidc::OidcLogin`]'s framework-free handlers.
//!
//! | route | what |
//! |---|---|
//! | `GET <start>` (e.g. `/oidc_auth`) | redirect to the provider (or the callback, when it carries `code`/`state`/`error`) |
//! | `GET <callback>` (the path of `redirect_url`) | the callback: shows the docker password once |
//! | `POST <start>/sign_out` | deletes the stored password (HTTP Basic: docker user and password) |

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use docker_token_oidc::OidcLogin;

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
