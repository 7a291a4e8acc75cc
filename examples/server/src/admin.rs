//! Administration commands (`tokens list`, `tokens revoke`) and the Unix socket on which the
//! running server answers them (`server.admin_socket`).
//!
//! With `server.admin_socket` the `tokens` commands go through the running server (the only
//! way to reach tokens kept in its memory); without it they open the embedded redb file
//! directly, which works beside a running server too (the file is opened per operation).
//! The protocol is one JSON request line, one JSON answer line. Who may connect is decided
//! by the socket file's permissions (owner only).

use std::path::Path;
use std::sync::Arc;

use docker_token_axum::ServiceHandle;
use docker_token_core::display_chain;
use docker_token_core::refresh::{RefreshRecord, RefreshTokenStore};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::config::{FileConfig, LoadError};

/// The longest request line the socket reads.
const MAX_REQUEST: u64 = 64 * 1024;

/// One administration command.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Request {
    /// The live refresh tokens, of one account or all.
    ListTokens {
        #[serde(default)]
        account: Option<String>,
    },
    /// Revoke one refresh token by id, or every one of an account.
    RevokeTokens {
        #[serde(default)]
        account: Option<String>,
        #[serde(default)]
        id: Option<String>,
    },
}

/// The answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Response {
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// For `list_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tokens: Option<Vec<RefreshRecord>>,
    /// For `revoke_tokens`: how many were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked: Option<usize>,
}

impl Response {
    fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            ..Self::default()
        }
    }
}

/// Runs a command against a refresh-token store (the server's, or one the CLI opened).
pub(crate) async fn execute(store: Option<&dyn RefreshTokenStore>, request: Request) -> Response {
    let Some(store) = store else {
        return Response::error("refresh tokens are not enabled (token.refresh)");
    };
    let result = match request {
        Request::ListTokens { account } => {
            store
                .list_tokens(account.as_deref())
                .await
                .map(|mut tokens| {
                    tokens.sort_by(|a, b| {
                        (&a.account, a.created_at).cmp(&(&b.account, b.created_at))
                    });
                    Response {
                        tokens: Some(tokens),
                        ..Response::default()
                    }
                })
        }
        Request::RevokeTokens { account, id } => {
            let revoked = match (account, id) {
                (Some(account), None) => store.delete_account_tokens(&account).await,
                (None, Some(id)) => store.delete_token(&id).await.map(usize::from),
                _ => return Response::error("give exactly one of --account and --id"),
            };
            revoked.map(|n| {
                tracing::info!(revoked = n, "refresh tokens revoked by an administrator");
                Response {
                    revoked: Some(n),
                    ..Response::default()
                }
            })
        }
    };
    result.unwrap_or_else(|e| Response::error(display_chain(&e)))
}

/// Listens on `path` (replacing a stale socket, permissions 0600) and answers commands with
/// the refresh-token store of the service the handle holds at that moment.
pub(crate) fn spawn(path: &Path, handle: ServiceHandle) -> Result<(), LoadError> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| {
        LoadError(format!(
            "server.admin_socket: cannot bind {}: {e}",
            path.display()
        ))
    })?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            LoadError(format!(
                "server.admin_socket: cannot restrict {}: {e}",
                path.display()
            ))
        })?;
    }
    tracing::info!(path = %path.display(), "admin socket listening");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &handle).await {
                            tracing::warn!(error = %e, "admin socket: connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn answer(stream: UnixStream, handle: &ServiceHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read)
        .take(MAX_REQUEST)
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let service = handle.current();
            let store = service.refresh_tokens().map(|r| r.store.clone());
            execute(store.as_deref(), request).await
        }
        Err(e) => Response::error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends one command to a running server's admin socket.
pub(crate) async fn send(path: &Path, request: &Request) -> Result<Response, String> {
    let stream = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "cannot reach the server's admin socket {}: {e} (is the server running?)",
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    out.push(b'\n');
    write.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(read)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad answer from the server: {e}"))
}

/// The store for the `tokens` commands when there is no admin socket: the redb file,
/// opened directly.
pub(crate) fn open_store(file: &FileConfig) -> Result<Arc<dyn RefreshTokenStore>, String> {
    let Some(c) = &file.token.refresh else {
        return Err("refresh tokens are not enabled (token.refresh)".to_owned());
    };
    let Some(path) = &c.path else {
        // the top-level store (redb or Redis) holds them
        if let Some(store) = &file.store {
            return store
                .build()
                .map(|s| s.refresh)
                .map_err(|e| format!("store.{e}"));
        }
        return Err(
            "token.refresh has no path and there is no store: section: the tokens live in the server's memory; set server.admin_socket to manage them while it runs"
                .to_owned(),
        );
    };
    match docker_token_store::RedbStore::open(path) {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) => Err(format!("token.refresh.path: {e}")),
    }
}
