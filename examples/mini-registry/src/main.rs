//! `docker-token-mini-registry`: a small OCI distribution registry (blobs, manifests, tags,
//! catalog, referrers; monolithic and chunked uploads, cross-repository mounts, deletes)
//! kept in memory and protected by docker-token-axum's [`RequireScope`] layer.
//!
//! It is an example of the resource-server side, kept readable — not a storage product:
//! everything is lost on exit. See `config.rs` for the two modes (a separate token server,
//! or the token service in the same process).
//!
//! ```text
//! docker-token-mini-registry --config registry.yml
//! ```

mod api;
mod config;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use docker_token_axum::resource::{RequireScope, TokenVerifier, VerifierHandle};
use docker_token_axum::{TokenRouter, serve_with_connect_info};
use docker_token_core::acl::Acl;
use docker_token_core::{
    AuthenticatorChain, AuthorizerChain, StaticUsers, TokenService, display_chain,
};

use crate::config::{Config, KeySource};
use crate::store::Store;

/// A small OCI registry protected by docker-token's RequireScope layer.
#[derive(Debug, Parser)]
#[command(name = "docker-token-mini-registry", version, about)]
struct Args {
    /// The YAML configuration (see the crate docs for the keys).
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("docker-token-mini-registry: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(args: Args) -> Result<(), String> {
    let config = Config::read(&args.config)?;
    let listener = tokio::net::TcpListener::bind(&config.registry.addr)
        .await
        .map_err(|e| {
            format!(
                "registry.addr: cannot listen on {}: {e}",
                config.registry.addr
            )
        })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let service = config.auth.service.clone();

    let mut token_routes = None;
    let (verifier, realm) = match config.key_source()? {
        KeySource::Embedded => {
            let tokens = embedded_service(&config)?;
            let issuer = tokens.issuer();
            let verifier = TokenVerifier::builder(issuer.issuer(), &service)
                .key_set(issuer.keys())
                .build()
                .map_err(|e| format!("token: {}", display_chain(&e)))?;
            token_routes = Some(TokenRouter::new(tokens).build());
            let realm = config
                .auth
                .realm
                .clone()
                .unwrap_or_else(|| format!("http://{local}/auth"));
            (VerifierHandle::new(verifier), realm)
        }
        source => {
            let issuer = config.auth.issuer.clone().unwrap_or_default();
            let verifier = load_verifier(&source, &issuer, &service).await?;
            let handle = VerifierHandle::new(verifier);
            if let KeySource::JwksUrl(url) = source {
                let every = Duration::from_secs(config.auth.jwks_refresh);
                tokio::spawn(refresh_jwks(
                    url,
                    issuer,
                    service.clone(),
                    every,
                    handle.clone(),
                ));
            }
            (handle, config.auth.realm.clone().unwrap_or_default())
        }
    };

    let store = Arc::new(Store::new(config.registry.max_blob_bytes));
    let mut app = api::router(store, RequireScope::new(verifier, realm.clone(), service));
    if let Some(tokens) = token_routes {
        app = app.merge(tokens);
    }
    // A line tests and scripts wait for.
    println!("docker-token-mini-registry listening on http://{local}");
    tracing::info!(addr = %local, realm = %realm, "listening");
    if !local.ip().is_loopback() {
        tracing::warn!("serving plain HTTP on a non-loopback address: put TLS in front");
    }
    axum::serve(listener, serve_with_connect_info(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// Single-process mode: the token service from `token:`, `users:` and `acl:`.
fn embedded_service(config: &Config) -> Result<TokenService, String> {
    let token = config.token.as_ref().ok_or("token: missing")?;
    let issuer = token
        .build_issuer()
        .map_err(|e| format!("token: {}", display_chain(&e)))?;
    let users = StaticUsers::from_config(config.users.as_ref().ok_or("users: missing")?)
        .map_err(|e| format!("users: {e}"))?;
    let acl = Acl::new(config.acl.clone().unwrap_or_default()).map_err(|e| format!("acl: {e}"))?;
    let mut authn = AuthenticatorChain::new();
    authn.push(Arc::new(users));
    let mut authz = AuthorizerChain::new();
    authz.push(Arc::new(acl));
    Ok(TokenService::builder(issuer)
        .authenticators(authn)
        .authorizers(authz)
        .build())
}

/// Builds the verifier from a JWKS URL (a few attempts, so the token server may start at the
/// same time), a JWKS file or a certificate bundle.
async fn load_verifier(
    source: &KeySource,
    issuer: &str,
    service: &str,
) -> Result<TokenVerifier, String> {
    let builder = TokenVerifier::builder(issuer, service);
    let built = match source {
        KeySource::JwksUrl(url) => {
            let mut attempt = 0;
            loop {
                match fetch_jwks(url, issuer, service).await {
                    Ok((v, _)) => return Ok(v),
                    Err(e) if attempt >= 9 => return Err(format!("auth.jwks_url: {e}")),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the JWKS yet; retrying");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        KeySource::JwksFile(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("auth.jwks_file: {}: {e}", path.display()))?;
            builder.jwks(&bytes).and_then(|b| b.build())
        }
        KeySource::Bundle(path) => builder
            .certificate_bundle_file(path)
            .and_then(|b| b.build()),
        KeySource::Embedded => return Err("embedded keys are not loaded here".to_owned()),
    };
    built.map_err(|e| format!("auth: {}", display_chain(&e)))
}

/// The verifier from the JWKS at `url`, and the document's `Cache-Control: max-age`.
async fn fetch_jwks(
    url: &str,
    issuer: &str,
    service: &str,
) -> Result<(TokenVerifier, Option<Duration>), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: status {}", response.status()));
    }
    let max_age = response
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let verifier = TokenVerifier::builder(issuer, service)
        .jwks(&body)
        .and_then(|b| b.build())
        .map_err(|e| format!("{url}: {}", display_chain(&e)))?;
    Ok((verifier, max_age))
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().parse().ok().map(Duration::from_secs))?
    })
}

/// Re-reads the JWKS every `every` — sooner if the server's `Cache-Control: max-age` says so
/// (at most once a second); a failure keeps the keys we have.
async fn refresh_jwks(
    url: String,
    issuer: String,
    service: String,
    every: Duration,
    handle: VerifierHandle,
) {
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        match fetch_jwks(&url, &issuer, &service).await {
            Ok((v, max_age)) => {
                tracing::debug!("JWKS refreshed");
                handle.replace(v);
                if let Some(age) = max_age {
                    wait = every.min(age).max(Duration::from_secs(1));
                }
            }
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age = 5"), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=x"), None);
    }
}
