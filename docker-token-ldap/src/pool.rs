//! Connections: failover across servers, timeouts, and bounded pools of reusable connections.
//!
//! A [`Pool`] holds at most `size` connections (idle + checked out); a checkout waits for a
//! free slot. A connection goes back to the pool only when the caller says it is clean
//! ([`Pooled::release`]); dropping it instead closes it, which is what every error path does.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docker_token_core::{BackendError, Password};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use rustls::ClientConfig;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::Server;

pub(crate) const BACKEND: &str = "ldap";

/// How long a server that failed to connect is tried only after the others.
const PENALTY: Duration = Duration::from_secs(10);

/// Whether an error means the connection itself is gone (so a retry on a new one may work).
pub(crate) fn is_connection_lost(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::EndOfStream
    )
}

/// Maps a transport-level error to the backend error the server answers with.
pub(crate) fn transport_error(what: &str, e: &LdapError) -> BackendError {
    // tokio-rustls reports handshake failures as io::Error wrapping the rustls::Error
    let tls = match e {
        LdapError::Rustls { source } => Some(source),
        LdapError::Io { source } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match (e, tls) {
        (_, Some(rustls::Error::InvalidCertificate(c))) => BackendError::misconfigured(
            BACKEND,
            format!("{what}: the server's TLS certificate was rejected: {c:?}"),
        ),
        (LdapError::Timeout { .. }, _) => {
            BackendError::unavailable(BACKEND, format!("{what}: timed out"))
        }
        (e, _) => BackendError::unavailable(BACKEND, format!("{what}: {e}")),
    }
}

/// Opens connections, trying the servers in order of preference.
pub(crate) struct Connector {
    servers: Vec<Server>,
    tls: Option<Arc<ClientConfig>>,
    connect_timeout: Duration,
    pub(crate) op_timeout: Duration,
    failed_at: Mutex<Vec<Option<Instant>>>,
    open: Arc<AtomicUsize>,
    opened: AtomicU64,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("servers", &self.servers)
            .field("connect_timeout", &self.connect_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connector {
    pub(crate) fn new(
        servers: Vec<Server>,
        tls: Option<Arc<ClientConfig>>,
        connect_timeout: Duration,
        op_timeout: Duration,
    ) -> Self {
        let failed_at = Mutex::new(vec![None; servers.len()]);
        Self {
            servers,
            tls,
            connect_timeout,
            op_timeout,
            failed_at,
            open: Arc::default(),
            opened: AtomicU64::new(0),
        }
    }

    /// Connections currently open (their driver tasks are running).
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections opened since start.
    pub(crate) fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let failed = self
            .failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut order: Vec<usize> = (0..self.servers.len()).collect();
        // healthy servers first, in configured order; recently failed ones last
        order.sort_by_key(|&i| {
            failed
                .get(i)
                .copied()
                .flatten()
                .is_some_and(|t| now.duration_since(t) < PENALTY)
        });
        order
    }

    fn mark(&self, index: usize, failed: bool) {
        let mut f = self
            .failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = f.get_mut(index) {
            *slot = failed.then(Instant::now);
        }
    }

    /// Opens a connection to the first server that answers, binding as `bind` if given.
    pub(crate) async fn connect(
        &self,
        bind: Option<(&str, &Password)>,
    ) -> Result<Ldap, BackendError> {
        let mut errors = Vec::new();
        let mut all_tls_rejections = true;
        for i in self.order() {
            let Some(server) = self.servers.get(i) else {
                continue;
            };
            match self.connect_one(server, bind).await {
                Ok(ldap) => {
                    self.mark(i, false);
                    return Ok(ldap);
                }
                Err(ConnectError::Bind(e)) => return Err(e),
                Err(ConnectError::Transport(e)) => {
                    tracing::warn!(server = %server.url, error = %e, "LDAP server failed; trying the next one");
                    self.mark(i, true);
                    all_tls_rejections &=
                        e.kind() == docker_token_core::BackendErrorKind::Misconfigured;
                    errors.push(format!("{}: {e}", server.url));
                }
            }
        }
        let msg = format!("no LDAP server could be reached ({})", errors.join("; "));
        Err(if all_tls_rejections && !errors.is_empty() {
            BackendError::misconfigured(BACKEND, msg)
        } else {
            BackendError::unavailable(BACKEND, msg)
        })
    }

    async fn connect_one(
        &self,
        server: &Server,
        bind: Option<(&str, &Password)>,
    ) -> Result<Ldap, ConnectError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(server.starttls);
        if let (true, Some(cfg)) = (server.tls, &self.tls) {
            settings = settings.set_config(cfg.clone());
        }
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let connected = tokio::time::timeout_at(
            deadline,
            LdapConnAsync::with_settings(settings, &server.url),
        )
        .await;
        let (conn, mut ldap) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(ConnectError::Transport(transport_error("connect", &e))),
            Err(_) => {
                return Err(ConnectError::Transport(BackendError::unavailable(
                    BACKEND,
                    "connect: timed out",
                )));
            }
        };
        self.open.fetch_add(1, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(self.open.clone());
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        if let Some((dn, password)) = bind {
            let remaining = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(1));
            match ldap
                .with_timeout(remaining)
                .simple_bind(dn, password.expose())
                .await
            {
                Ok(r) if r.rc == 0 => {}
                Ok(r) => {
                    return Err(ConnectError::Bind(BackendError::misconfigured(
                        BACKEND,
                        format!(
                            "the service account bind as {dn:?} was refused (result code {})",
                            r.rc
                        ),
                    )));
                }
                Err(e) => return Err(ConnectError::Transport(transport_error("service bind", &e))),
            }
        }
        Ok(ldap)
    }
}

enum ConnectError {
    /// The server could not be reached: try the next one.
    Transport(BackendError),
    /// The server answered but refused the service account: the same elsewhere, stop.
    Bind(BackendError),
}

/// A bounded pool of connections, optionally bound as the service account.
pub(crate) struct Pool {
    connector: Arc<Connector>,
    bind: Option<(String, Password)>,
    idle: Mutex<Vec<Ldap>>,
    slots: Semaphore,
    size: usize,
    wait: Duration,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("bind_dn", &self.bind.as_ref().map(|(dn, _)| dn))
            .field("size", &self.size)
            .field("idle", &self.idle_count())
            .finish_non_exhaustive()
    }
}

/// A checked-out connection. Dropped without [`release`](Self::release), it is closed.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    ldap: Ldap,
    /// Whether the connection was just opened (so a failure is not a stale-connection artefact).
    pub(crate) fresh: bool,
    _slot: SemaphorePermit<'a>,
}

impl Pooled<'_> {
    /// The connection, with the operation timeout set for the next operation.
    pub(crate) fn op(&mut self) -> &mut Ldap {
        self.ldap.with_timeout(self.pool.connector.op_timeout)
    }

    /// Returns the connection to the pool for reuse.
    pub(crate) fn release(self) {
        let Self {
            pool,
            ldap,
            _slot: slot,
            ..
        } = self;
        pool.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ldap);
        drop(slot); // the slot frees only after the connection is back
    }
}

impl Pool {
    pub(crate) fn new(
        connector: Arc<Connector>,
        bind: Option<(String, Password)>,
        size: usize,
        wait: Duration,
    ) -> Self {
        let size = size.max(1);
        Self {
            connector,
            bind,
            idle: Mutex::default(),
            slots: Semaphore::new(size),
            size,
            wait,
        }
    }

    fn take_idle(&self) -> Option<Ldap> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    /// Idle connections held.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The most connections this pool holds.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Runs `op` on a checked-out connection; when a reused connection turns out to be dead
    /// (the server restarted or closed it), once more on a new one. Returns the connection
    /// with the result: the caller decides whether it goes back ([`Pooled::release`]).
    /// `what` names the operation in errors.
    ///
    /// `op` takes the connection and hands it back with its result rather than borrowing it:
    /// an async closure over `&mut Pooled` would be the natural shape, but rustc cannot yet
    /// prove such a closure's future `Send` inside the `#[async_trait]` methods that call this
    /// ("implementation of `AsyncFnMut` is not general enough").
    pub(crate) async fn retrying<'a, T, F, Fut>(
        &'a self,
        what: &str,
        mut op: F,
    ) -> Result<(Pooled<'a>, T), BackendError>
    where
        F: FnMut(Pooled<'a>) -> Fut,
        Fut: Future<Output = (Pooled<'a>, Result<T, LdapError>)>,
    {
        for attempt in 0..2 {
            let (conn, result) = op(self.checkout().await?).await;
            match result {
                Ok(value) => return Ok((conn, value)),
                Err(e) if attempt == 0 && !conn.fresh && is_connection_lost(&e) => {
                    tracing::debug!(error = %e, "pooled LDAP connection was dead; retrying on a new one");
                }
                Err(e) => return Err(transport_error(what, &e)),
            }
        }
        Err(BackendError::unavailable(
            BACKEND,
            format!("{what}: connection lost twice"),
        ))
    }

    /// Takes an idle connection or opens one, waiting at most `wait` for a free slot.
    pub(crate) async fn checkout(&self) -> Result<Pooled<'_>, BackendError> {
        self.checkout_inner(true).await
    }

    /// Opens a new connection in a free slot, ignoring idle ones; the caller should drop it
    /// rather than [`release`](Pooled::release) it (the `fresh` user-bind strategy).
    pub(crate) async fn checkout_new(&self) -> Result<Pooled<'_>, BackendError> {
        self.checkout_inner(false).await
    }

    async fn checkout_inner(&self, reuse: bool) -> Result<Pooled<'_>, BackendError> {
        let slot = match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(BackendError::internal(BACKEND, "connection pool closed")),
            Err(_) => {
                return Err(BackendError::unavailable(
                    BACKEND,
                    "timed out waiting for a free LDAP connection",
                ));
            }
        };
        while let Some(mut ldap) = reuse.then(|| self.take_idle()).flatten() {
            if !ldap.is_closed() {
                return Ok(Pooled {
                    pool: self,
                    ldap,
                    fresh: false,
                    _slot: slot,
                });
            }
            // the server closed it: drop it and look again
        }
        let bind = self.bind.as_ref().map(|(dn, pw)| (dn.as_str(), pw));
        let ldap = self.connector.connect(bind).await?;
        Ok(Pooled {
            pool: self,
            ldap,
            fresh: true,
            _slot: slot,
        })
    }
}
