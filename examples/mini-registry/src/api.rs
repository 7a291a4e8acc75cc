//! The OCI distribution API over the [`Store`]. Every handler runs behind
//! [`RequireScope`], which has already parsed the route and checked the token; the handler
//! gets both as [`Authorized`].

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use docker_token_axum::resource::{
    API_VERSION, API_VERSION_HEADER, Authorized, RegistryRoute, RequireScope, is_digest,
    is_repository_name, registry_error,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::store::{Store, StoreError};

/// Manifests are small; distribution limits them to 4 MiB as well.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The default and maximum page size of `_catalog` and `tags/list`.
const MAX_PAGE: usize = 1000;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The registry's routes (`/v2`, `/v2/`, `/v2/…`) behind `guard`.
pub(crate) fn router(store: Arc<Store>, guard: RequireScope) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(store)
        .layer(guard)
        .layer(axum::middleware::map_response(api_version))
}

async fn api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    response
}

/// An error answer with distribution's code (small, so `Result<_, ApiError>` stays cheap).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    /// The upload's size, for `Range` on `RANGE_INVALID`.
    range: Option<usize>,
}

fn error(status: StatusCode, code: &'static str, message: &'static str) -> ApiError {
    ApiError {
        status,
        code,
        message,
        range: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = registry_error(self.status, self.code, self.message);
        if let Some(size) = self.range {
            set(&mut r, header::RANGE, &range(size));
        }
        r
    }
}

fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::UploadUnknown => error(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        ),
        StoreError::DigestInvalid(why) => error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", why),
        StoreError::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            "the blob is larger than this registry accepts",
        ),
        StoreError::RangeInvalid { size } => ApiError {
            range: Some(*size),
            ..error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_INVALID",
                "the chunk does not continue the upload",
            )
        },
        StoreError::ManifestInvalid(why) => error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", why),
        StoreError::ManifestBlobUnknown(_) => error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            "a blob or manifest the manifest references is not in the repository",
        ),
    }
}

/// Inserts a header whose value we built (digests, validated names, numbers).
fn set(response: &mut Response, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// distribution's `Range` of an upload of `size` bytes: `0-<last offset>` (`0-0` when empty).
fn range(size: usize) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// One query parameter (the first occurrence).
fn query_param(request: &Request, key: &str) -> Option<String> {
    form_urlencoded::parse(request.uri().query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Reads the body up to `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            "the request body is too large or could not be read",
        )
    })
}

async fn dispatch(State(store): State<Arc<Store>>, auth: Authorized, request: Request) -> Response {
    let method = request.method().clone();
    let result = match (&auth.route, &method) {
        (RegistryRoute::Base, &Method::GET | &Method::HEAD) => Ok(json(StatusCode::OK, "{}")),
        (RegistryRoute::Catalog, &Method::GET | &Method::HEAD) => Ok(catalog(&store, &request)),
        (RegistryRoute::Tags { name }, &Method::GET | &Method::HEAD) => {
            Ok(tags(&store, name, &request))
        }
        (RegistryRoute::Manifest { name, reference }, m) => {
            manifest(&store, name, reference, m, request).await
        }
        (RegistryRoute::Blob { name, digest }, m) => Ok(blob(&store, name, digest, m)),
        (RegistryRoute::Upload { name, id: None }, &Method::POST) => {
            start_upload(&store, name, request).await
        }
        (RegistryRoute::Upload { name, id: Some(id) }, m) => {
            upload(&store, name, id, m, request).await
        }
        (RegistryRoute::Referrers { name, digest }, &Method::GET) => {
            Ok(referrers(&store, name, digest, &request))
        }
        _ => Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the operation is unsupported",
        )),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::info!(
        method = %method,
        repository = auth.route.repository().unwrap_or(""),
        subject = auth.token.subject(),
        status = response.status().as_u16(),
        "request"
    );
    response
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = (status, body.into()).into_response();
    set(&mut r, header::CONTENT_TYPE, "application/json");
    r
}

/// `n` (page size) and `last` (resume after) of a paginated list.
fn page(request: &Request) -> (usize, Option<String>) {
    let n = query_param(request, "n")
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(MAX_PAGE, |n| n.min(MAX_PAGE));
    (n, query_param(request, "last"))
}

/// Adds `Link: <path?n=…&last=…>; rel="next"` when a page is full.
fn next_link(response: &mut Response, path: &str, items: &[String], n: usize) {
    if let (true, Some(last)) = (n > 0 && items.len() == n, items.last()) {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("last", last)
            .append_pair("n", &n.to_string())
            .finish();
        set(
            response,
            header::LINK,
            &format!("<{path}?{q}>; rel=\"next\""),
        );
    }
}

fn catalog(store: &Store, request: &Request) -> Response {
    let (n, last) = page(request);
    let repos = store.catalog(last.as_deref(), n);
    let body = serde_json::json!({ "repositories": repos });
    let mut r = json(StatusCode::OK, body.to_string());
    next_link(&mut r, "/v2/_catalog", &repos, n);
    r
}

fn tags(store: &Store, name: &str, request: &Request) -> Response {
    let (n, last) = page(request);
    let Some(tags) = store.tags(name, last.as_deref(), n) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .into_response();
    };
    let body = serde_json::json!({ "name": name, "tags": tags });
    let mut r = json(StatusCode::OK, body.to_string());
    next_link(&mut r, &format!("/v2/{name}/tags/list"), &tags, n);
    r
}

/// A body answer with an explicit `Content-Length`; for `HEAD` the body is left out.
fn content(method: &Method, content_type: &str, digest: &str, body: Bytes) -> Response {
    let len = body.len().to_string();
    let mut r = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    set(&mut r, header::CONTENT_TYPE, content_type);
    set(&mut r, header::CONTENT_LENGTH, &len);
    set(&mut r, "docker-content-digest", digest);
    r
}

/// `201 Created` with `Location` and `Docker-Content-Digest`.
fn created(location: &str, digest: &str) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    set(&mut r, header::LOCATION, location);
    set(&mut r, "docker-content-digest", digest);
    r
}

async fn manifest(
    store: &Store,
    name: &str,
    reference: &str,
    method: &Method,
    request: Request,
) -> Result<Response, ApiError> {
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown to registry",
        )
    };
    match *method {
        Method::GET | Method::HEAD => {
            let (digest, m) = store.manifest(name, reference).ok_or_else(unknown)?;
            Ok(content(method, &m.media_type, &digest, m.body))
        }
        Method::PUT => {
            let media_type = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 256)
                .unwrap_or(OCI_MANIFEST)
                .to_owned();
            let body = read_body(request.into_body(), MAX_MANIFEST_BYTES).await?;
            let (digest, m) = store
                .put_manifest(name, reference, &media_type, body)
                .map_err(|e| store_error(&e))?;
            let mut r = created(&format!("/v2/{name}/manifests/{digest}"), &digest);
            if let Some(subject) = m.subject.as_deref().filter(|s| is_digest(s)) {
                set(&mut r, "oci-subject", subject);
            }
            Ok(r)
        }
        Method::DELETE => {
            if store.delete_manifest(name, reference) {
                Ok(StatusCode::ACCEPTED.into_response())
            } else {
                Err(unknown())
            }
        }
        _ => Err(unsupported()),
    }
}

fn unsupported() -> ApiError {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the operation is unsupported",
    )
}

fn blob(store: &Store, name: &str, digest: &str, method: &Method) -> Response {
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        )
    };
    match *method {
        Method::GET | Method::HEAD => match store.blob(name, digest) {
            Some(data) => content(method, "application/octet-stream", digest, data),
            None => unknown().into_response(),
        },
        Method::DELETE => {
            if store.delete_blob(name, digest) {
                StatusCode::ACCEPTED.into_response()
            } else {
                unknown().into_response()
            }
        }
        _ => unsupported().into_response(),
    }
}

/// `202 Accepted` for an open upload session.
fn upload_accepted(name: &str, id: &str, size: usize, status: StatusCode) -> Response {
    let mut r = status.into_response();
    set(
        &mut r,
        header::LOCATION,
        &format!("/v2/{name}/blobs/uploads/{id}"),
    );
    set(&mut r, header::RANGE, &range(size));
    set(&mut r, "docker-upload-uuid", id);
    set(&mut r, header::CONTENT_LENGTH, "0");
    r
}

/// The `digest` query parameter, checked against the grammar.
fn digest_param(request: &Request) -> Result<Option<String>, ApiError> {
    match query_param(request, "digest") {
        None => Ok(None),
        Some(d) if is_digest(&d) => Ok(Some(d)),
        Some(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "the digest parameter is not a digest",
        )),
    }
}

/// `POST /v2/<name>/blobs/uploads/`: a cross-repository mount (`?mount=&from=`), a
/// monolithic upload (`?digest=` with the blob as body) or a new session.
async fn start_upload(store: &Store, name: &str, request: Request) -> Result<Response, ApiError> {
    let mount = query_param(&request, "mount").filter(|d| is_digest(d));
    // RequireScope checked `from` against the grammar and required pull on it
    let from = query_param(&request, "from").filter(|f| is_repository_name(f));
    if let (Some(digest), Some(from)) = (&mount, &from)
        && store.mount(name, from, digest)
    {
        return Ok(created(&format!("/v2/{name}/blobs/{digest}"), digest));
    }
    if let Some(digest) = digest_param(&request)? {
        let body = read_body(request.into_body(), store.max_blob_bytes()).await?;
        store
            .put_blob(name, &digest, body)
            .map_err(|e| store_error(&e))?;
        return Ok(created(&format!("/v2/{name}/blobs/{digest}"), &digest));
    }
    let id = store.start_upload(name);
    Ok(upload_accepted(name, &id, 0, StatusCode::ACCEPTED))
}

/// The start offset of `Content-Range: <start>-<end>` (absent → `None`).
fn content_range_start(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_INVALID",
            "invalid Content-Range",
        )
    };
    let text = v.to_str().map_err(|_| bad())?;
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let (start, _end) = text.split_once('-').ok_or_else(bad)?;
    start.parse::<usize>().map(Some).map_err(|_| bad())
}

/// An open session: `PATCH` (a chunk), `PUT ?digest=` (finish), `GET` (status), `DELETE`.
async fn upload(
    store: &Store,
    name: &str,
    id: &str,
    method: &Method,
    request: Request,
) -> Result<Response, ApiError> {
    match *method {
        Method::PATCH => {
            let start = content_range_start(request.headers())?;
            let size = store.upload_size(name, id).map_err(|e| store_error(&e))?;
            let room = store.max_blob_bytes().saturating_sub(size);
            let chunk = read_body(request.into_body(), room).await?;
            let size = store
                .append(name, id, start, &chunk)
                .map_err(|e| store_error(&e))?;
            Ok(upload_accepted(name, id, size, StatusCode::ACCEPTED))
        }
        Method::PUT => {
            let Some(digest) = digest_param(&request)? else {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "the digest parameter is required",
                ));
            };
            store.upload_size(name, id).map_err(|e| store_error(&e))?;
            let chunk = read_body(request.into_body(), store.max_blob_bytes()).await?;
            store
                .finish(name, id, &digest, &chunk)
                .map_err(|e| store_error(&e))?;
            Ok(created(&format!("/v2/{name}/blobs/{digest}"), &digest))
        }
        Method::GET => {
            let size = store.upload_size(name, id).map_err(|e| store_error(&e))?;
            Ok(upload_accepted(name, id, size, StatusCode::NO_CONTENT))
        }
        Method::DELETE => {
            store.cancel(name, id).map_err(|e| store_error(&e))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(unsupported()),
    }
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`: an image index of the manifests
/// whose `subject` is that digest.
fn referrers(store: &Store, name: &str, digest: &str, request: &Request) -> Response {
    let filter = query_param(request, "artifactType");
    let manifests: Vec<serde_json::Value> = store
        .referrers(name, digest)
        .into_iter()
        .filter(|(_, m)| {
            filter
                .as_deref()
                .is_none_or(|f| m.artifact_type.as_deref() == Some(f))
        })
        .map(|(d, m)| {
            let mut desc = serde_json::json!({
                "mediaType": m.media_type,
                "digest": d,
                "size": m.body.len(),
            });
            if let Some(t) = m.artifact_type {
                desc["artifactType"] = t.into();
            }
            if let Some(a) = m.annotations {
                desc["annotations"] = a;
            }
            desc
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    set(&mut r, header::CONTENT_TYPE, OCI_INDEX);
    if filter.is_some() {
        set(&mut r, "oci-filters-applied", "artifactType");
    }
    r
}
