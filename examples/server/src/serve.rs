//! `serve`: build the service from a loaded configuration and run the HTTP(S) server until
//! SIGTERM/SIGINT, finishing in-flight requests. SIGHUP re-reads the configuration file.
//! With `server.metrics`, a Prometheus recorder is installed and `/metrics` is served.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use docker_token_axum::{ClientIpConfig, OidcLoginHandle, ServiceHandle, TokenRouter};
use docker_token_core::{
    AuthenticatorChain, AuthorizerChain, FailedLoginLimiter, TokenService, display_chain,
};
use http::{HeaderName, HeaderValue};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::cli::ServeArgs;
use crate::config::{FileConfig, LoadError, Loaded, ServerConfig, SharedStore, parse_net};
use crate::{listen, quickstart};

/// Counter: configuration reloads, by `result` (`ok`, `failed`).
const RELOADS_TOTAL: &str = "docker_token_reloads_total";

/// Histogram buckets (seconds) of the `*_duration_seconds` metrics: 100 µs to 10 s.
const DURATION_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Builds the token service (keys, authenticators, authorizers) from a loaded config. Each
/// [`Loaded`] has its own backends, with fresh credential caches (new keys, no entries).
pub(crate) fn build_service(loaded: &Loaded) -> Result<TokenService, LoadError> {
    build_service_after(loaded, None)
}

/// [`build_service`] for a reload: the failed-login limiter of the `running` service is kept
/// (with its counts) when `rate_limit` did not change, so a reload does not reset guessing.
fn build_service_after(
    loaded: &Loaded,
    running: Option<&TokenService>,
) -> Result<TokenService, LoadError> {
    let issuer = loaded
        .file
        .token
        .build_issuer()
        .map_err(|e| LoadError(format!("{}: token: {}", loaded.origin, display_chain(&e))))?;
    let mut authn = AuthenticatorChain::new();
    for (_, backend) in &loaded.backends {
        authn.push(backend.clone());
    }
    let mut authz = AuthorizerChain::new();
    if let Some(acl) = &loaded.acl {
        authz.push(Arc::new(acl.clone()));
    }
    let mut builder = TokenService::builder(issuer)
        .authenticators(authn)
        .authorizers(authz)
        .reuse_window(loaded.file.token.reuse_window())
        .expiration_by_action(loaded.file.token.expiration_by_action.clone());
    if let Some(refresh) = &loaded.refresh {
        builder = builder.refresh_tokens(refresh.clone());
    }
    let limits = loaded.file.rate_limit.unwrap_or_default();
    if limits.enabled {
        let limiter = match running.and_then(TokenService::failed_login_limiter) {
            Some(l) if *l.config() == limits => l.clone(),
            _ => FailedLoginLimiter::new(limits)
                .map_err(|e| LoadError(format!("{}: rate_limit: {e}", loaded.origin)))?,
        };
        builder = builder.failed_login_limiter(limiter);
    }
    Ok(builder.build())
}

/// Installs the Prometheus recorder (once per process) and a task that drains histogram
/// samples every 5 s even when nobody scrapes.
fn install_metrics() -> Result<PrometheusHandle, LoadError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            &DURATION_BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| LoadError(format!("server.metrics: {e}")))?;
    docker_token_axum::metrics::describe();
    metrics::describe_counter!(RELOADS_TOTAL, "Configuration reloads (result=ok|failed).");
    // register the reload series at 0 so that a scrape shows them before the first SIGHUP
    metrics::counter!(RELOADS_TOTAL, "result" => "ok").increment(0);
    metrics::counter!(RELOADS_TOTAL, "result" => "failed").increment(0);
    let h = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            h.run_upkeep();
        }
    });
    Ok(handle)
}

/// The `GET <path>` route that renders the metrics.
fn metrics_route(path: &str, handle: PrometheusHandle) -> Router {
    Router::new().route(
        path,
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

fn router(
    loaded: &Loaded,
    service: ServiceHandle,
    login: OidcLoginHandle,
    metrics: Option<&PrometheusHandle>,
) -> Result<Router, LoadError> {
    let server = &loaded.file.server;
    let mut client_ip = ClientIpConfig::peer();
    if let Some(h) = &server.real_ip_header {
        let name = HeaderName::try_from(h.as_str())
            .map_err(|e| LoadError(format!("server.real_ip_header: {e}")))?;
        client_ip = ClientIpConfig::from_header(name, server.real_ip_pos);
        if let Some(list) = &server.real_ip_trusted_proxies {
            let nets = list
                .iter()
                .map(|s| parse_net(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(LoadError)?;
            client_ip = client_ip.trust(nets);
        }
    }
    let mut r = TokenRouter::with_handle(service)
        .client_ip(client_ip)
        .jwks_max_age(loaded.file.token.jwks_max_age)
        .body_read_timeout(server.header_read_timeout.map_or(
            crate::listen::DEFAULT_HEADER_READ_TIMEOUT,
            Duration::from_secs,
        ));
    if let Some(p) = &server.path_prefix {
        r = r.prefix(p.clone());
    }
    let mut app = r.build();
    if let (Some(m), Some(handle)) = (server.metrics(), metrics)
        && m.addr.is_none()
    {
        let prefix = server.path_prefix.as_deref().unwrap_or("");
        let path = format!("{}{}", prefix.trim_end_matches('/'), m.path);
        app = app.merge(metrics_route(&path, handle.clone()));
    }
    // the OIDC login routes follow the handle, so a reload can add, change or remove them
    app = app.merge(docker_token_axum::oidc_login_routes(login));
    if server.hsts {
        app = app.layer(axum::middleware::map_response(
            |mut res: axum::response::Response| async move {
                res.headers_mut().insert(
                    http::header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=63072000; includeSubDomains"),
                );
                res
            },
        ));
    }
    Ok(app)
}

pub(crate) fn main(args: ServeArgs) -> ExitCode {
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
    let code = match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            crate::logging::flush();
            eprintln!("docker-token-server: {e}");
            ExitCode::from(1)
        }
    };
    crate::logging::flush();
    code
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .event_format(crate::logfmt::LineFormat::default());
    let _ = match crate::logging::BatchedStderr::new(ansi) {
        Some(w) => builder.with_writer(w).try_init(),
        None => builder
            .with_writer(crate::logging::OneLineStderr { ansi })
            .try_init(),
    };
}

async fn run(args: ServeArgs) -> Result<(), LoadError> {
    let (loaded, quick) = match &args.config {
        Some(path) => {
            let origin = path.display().to_string();
            (FileConfig::read(path)?.load(&origin)?, None)
        }
        None => {
            let q = quickstart::prepare(&args.data_dir, &args.addr)?;
            let loaded =
                FileConfig::parse(&q.yaml, "embedded default")?.load("embedded default")?;
            (loaded, Some(q))
        }
    };
    let server = &loaded.file.server;
    let metrics = match server.metrics() {
        Some(_) => Some(install_metrics()?),
        None => None,
    };
    let handle = ServiceHandle::new(build_service(&loaded)?);
    let mut sweeper = Sweeper::default();
    sweeper.follow(loaded.oidc_store.as_ref().filter(|s| s.1));
    if loaded.oidc_store.is_none()
        && let Some(store) = loaded.store.as_ref().filter(|s| s.needs_sweeping)
    {
        // robots (and refresh tokens) of the embedded store; Redis expires its own
        drop(crate::store::spawn_sweeper(
            store.credentials.clone(),
            Duration::from_secs(300),
        ));
    }
    if let Some(refresh) = &loaded.refresh {
        drop(crate::store::spawn_refresh_sweeper(
            refresh.store.clone(),
            Duration::from_secs(300),
        ));
    }
    if let Some(path) = &server.admin_socket {
        crate::admin::spawn(path, handle.clone())?;
    }
    let login = OidcLoginHandle::new(loaded.oidc_login.clone());
    let app = router(&loaded, handle.clone(), login.clone(), metrics.as_ref())?;
    if let (Some(m), Some(handle)) = (server.metrics(), &metrics)
        && let Some(addr) = &m.addr
    {
        serve_metrics(addr, &m.path, handle.clone()).await?;
    }
    tokio::spawn(reload_on_sighup(
        args.config.clone(),
        Reloadable {
            service: handle,
            login,
            sweeper,
        },
        server.clone(),
    ));
    if server.net.as_deref() == Some("unix") {
        return serve_unix(&server.addr, app).await;
    }
    let std_listener = std::net::TcpListener::bind(&server.addr).map_err(|e| {
        LoadError(format!(
            "server.addr: cannot listen on {}: {e}",
            server.addr
        ))
    })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| LoadError(e.to_string()))?;
    let local = std_listener
        .local_addr()
        .map_err(|e| LoadError(e.to_string()))?;
    let tls = server
        .certificate
        .as_deref()
        .zip(server.key.as_deref())
        .map(|(cert, key)| listen::tls_acceptor(cert, key))
        .transpose()
        .map_err(LoadError)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(q) = &quick {
        quickstart::print_banner(q, local, &loaded);
    }
    // A line tests and scripts wait for.
    println!("docker-token-server listening on {scheme}://{local}");
    tracing::info!(addr = %local, tls = tls.is_some(), "listening");
    let fd_limit = listen::raise_fd_limit();
    let limits = listen::ConnLimits {
        header_read_timeout: server
            .header_read_timeout
            .map_or(listen::DEFAULT_HEADER_READ_TIMEOUT, Duration::from_secs),
        max_connections: server
            .max_connections
            .unwrap_or_else(|| listen::default_max_connections(fd_limit)),
    };
    tracing::debug!(?fd_limit, ?limits, "connection limits");
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on a non-loopback address: put TLS in front, or set server.certificate/key"
        );
    }
    let listener =
        tokio::net::TcpListener::from_std(std_listener).map_err(|e| LoadError(e.to_string()))?;
    listen::serve(listener, app, limits, tls, shutdown_signal()).await;
    Ok(())
}

/// Starts the separate metrics listener (`server.metrics.addr`).
async fn serve_metrics(addr: &str, path: &str, handle: PrometheusHandle) -> Result<(), LoadError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| LoadError(format!("server.metrics.addr: cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| LoadError(e.to_string()))?;
    // A line tests and scripts wait for.
    println!("docker-token-server metrics on http://{local}{path}");
    tracing::info!(addr = %local, path, "serving metrics");
    let app = metrics_route(path, handle);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
        {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

/// The sweeper of the OIDC credential store: one task, replaced when a reload brings
/// another store (a store shared with the running configuration keeps its task).
#[derive(Default)]
struct Sweeper(Option<(SharedStore, tokio::task::JoinHandle<()>)>);

impl Sweeper {
    fn follow(&mut self, store: Option<&SharedStore>) {
        let same = match (&self.0, store) {
            (Some((running, _)), Some(new)) => {
                std::ptr::addr_eq(Arc::as_ptr(&running.0), Arc::as_ptr(&new.0))
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some((_, task)) = self.0.take() {
            task.abort();
        }
        self.0 = store.map(|s| {
            let task = crate::store::spawn_sweeper(s.0.clone(), Duration::from_secs(300));
            (s.clone(), task)
        });
    }
}

/// What a reload replaces.
struct Reloadable {
    service: ServiceHandle,
    login: OidcLoginHandle,
    sweeper: Sweeper,
}

async fn serve_unix(path: &str, app: Router) -> Result<(), LoadError> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| LoadError(format!("server.addr: cannot bind {path}: {e}")))?;
    println!("docker-token-server listening on unix:{path}");
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| LoadError(format!("server error: {e}")))
}

/// On every SIGHUP: re-read and validate the configuration file, build a new service (with
/// fresh caches and backend connections) and a new OIDC login, and swap them in for new
/// requests. An invalid file keeps the running service and logs why. `server:` changes need
/// a restart.
async fn reload_on_sighup(path: Option<PathBuf>, mut running: Reloadable, server: ServerConfig) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: configuration reload disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let Some(path) = &path else {
            tracing::warn!("SIGHUP: running the embedded default, there is no file to reload");
            continue;
        };
        match reload(path, &server, running.service.current()).await {
            Ok((service, login, store)) => {
                running.sweeper.follow(store.as_ref().filter(|s| s.1));
                drop(running.service.replace(service));
                drop(running.login.replace(login));
                metrics::counter!(RELOADS_TOTAL, "result" => "ok").increment(1);
                tracing::info!(config = %path.display(), "configuration reloaded");
            }
            Err(e) => {
                metrics::counter!(RELOADS_TOTAL, "result" => "failed").increment(1);
                tracing::error!(
                    config = %path.display(),
                    error = %e,
                    "configuration reload failed; still serving the previous configuration"
                );
            }
        }
    }
}

/// A reloaded service, OIDC login and its credential store.
type Reloaded = (
    TokenService,
    Option<docker_token_oidc::OidcLogin>,
    Option<SharedStore>,
);

async fn reload(
    path: &Path,
    server: &ServerConfig,
    service: TokenService,
) -> Result<Reloaded, LoadError> {
    let path = path.to_owned();
    let server = server.clone();
    // file I/O and key parsing: off the async workers
    tokio::task::spawn_blocking(move || {
        let origin = path.display().to_string();
        let loaded = FileConfig::read(&path)?.load(&origin)?;
        if loaded.file.server != server {
            tracing::warn!("server: section changed; it takes effect after a restart");
        }
        let service = build_service_after(&loaded, Some(&service))?;
        Ok((service, loaded.oidc_login, loaded.oidc_store))
    })
    .await
    .map_err(|e| LoadError(format!("reload task failed: {e}")))?
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
    tracing::info!("shutting down: finishing in-flight requests");
}
