//! The accept loop, plain or TLS (`server.certificate`/`key`): HTTP/1.1 and HTTP/2 like
//! `axum::serve`, plus what it lacks against slow and idle clients. Both paths share every
//! limit below; over TLS the handshake must also finish within the header read timeout.
//!
//! - **Header read timeout** (`server.header_read_timeout`, default 10 s): a connection must
//!   deliver a complete request head within it — the first request (this also bounds a client
//!   that connects and sends nothing, or sends a few bytes and stalls) and, on HTTP/1.1
//!   keep-alive, every next one (an idle keep-alive connection is closed after it).
//! - **Request heads** are limited to 64 KiB (431 above; hyper's default is ~400 KiB).
//! - **Connection limit** (`server.max_connections`, default: the open-file limit minus a
//!   reserve): at the limit, new connections wait in the kernel's backlog instead of the
//!   accept loop failing with "too many open files"; the header timeout frees the slots that
//!   idle clients hold.
//! - At start the soft open-file limit is raised to the hard limit (as Go programs such as
//!   docker_auth do), so thousands of idle connections cost memory, not service.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

/// The default `server.header_read_timeout`.
pub(crate) const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept free for everything but client connections (key files, LDAP and
/// IdP connections, the credential store).
const FD_RESERVE: u64 = 64;
/// The largest request head (request line and headers) read; larger ones are answered 431.
/// hyper's default is about 400 KiB per connection; a token request needs a few KiB (an IdP
/// access token as a Basic password being the largest part).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a graceful shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Limits against slow and idle clients.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Raises the soft open-file limit to the hard one and returns the resulting soft limit
/// (`None` when it cannot be read).
pub(crate) fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum)
        && cur < max
    {
        limit.current = Some(max);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The default connection limit for an open-file limit.
pub(crate) fn default_max_connections(fd_limit: Option<u64>) -> usize {
    match fd_limit {
        // unlimited: still bound what a flood of connections can cost
        None => 65_536,
        Some(n) => usize::try_from(n.saturating_sub(FD_RESERVE).max(16)).unwrap_or(65_536),
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` completes, then
/// finishes in-flight requests (at most [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_full = false;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        if slots.available_permits() == 0 && !warned_full {
            warned_full = true;
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until others close"
            );
        } else if slots.available_permits() > limits.max_connections / 2 {
            warned_full = false;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            builder: builder.clone(),
            app: app.clone(),
            peer,
            timeout: limits.header_read_timeout,
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            // the slot is held until the connection ends, TLS handshake included
            let _permit = permit;
            match tls {
                None => conn.run(stream).await,
                Some(acceptor) => {
                    // a client that connects and never finishes the handshake gets the same
                    // time as one that never sends a request head
                    match tokio::time::timeout(conn.timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => conn.run(stream).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("in-flight requests did not finish in time; exiting");
        }
    }
}

/// One accepted connection, served over a plain or TLS stream.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    peer: SocketAddr,
    timeout: Duration,
    watcher: Watcher,
}

impl Conn {
    async fn run<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            app,
            peer,
            timeout,
            watcher,
        } = self;
        let first_request = Arc::new(Notify::new());
        let service = {
            let first_request = first_request.clone();
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                first_request.notify_one();
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                async move { tower::Service::call(&mut app, req.map(Body::new)).await }
            })
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let mut conn = std::pin::pin!(watcher.watch(conn));
        // The first request head must arrive in time (hyper's own timeout only starts once it
        // knows the protocol, i.e. after the first bytes).
        tokio::select! {
            _ = conn.as_mut() => return,
            () = first_request.notified() => {}
            () = tokio::time::sleep(timeout) => {
                tracing::debug!(%peer, "closing a connection that sent no request in time");
                return;
            }
        }
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// The TLS acceptor for `server.certificate` and `server.key` (PEM; the certificate file may
/// hold the chain), offering HTTP/2 and HTTP/1.1.
pub(crate) fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.certificate {}: no certificate in the file",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("server.key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.certificate/key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
