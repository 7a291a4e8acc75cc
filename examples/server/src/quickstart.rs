//! The embedded default: `docker-token-server serve` with no configuration.
//!
//! A data directory keeps a generated ES256 key and certificate and the admin's bcrypt hash
//! across restarts; the admin password is printed once, when it is created.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use docker_token_core::Password;
use docker_token_core::keys::{Algorithm, SigningKey};

use crate::config::{LoadError, Loaded};

/// What `prepare` made or found.
#[derive(Debug)]
pub(crate) struct Quickstart {
    pub(crate) yaml: String,
    pub(crate) dir: PathBuf,
    pub(crate) new_password: Option<Password>,
    pub(crate) issuer: String,
}

const ISSUER: &str = "docker-token";
const ADMIN: &str = "admin";

/// Writes a file readable only by its owner.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)
}

pub(crate) fn prepare(dir: &Path, addr: &str) -> Result<Quickstart, LoadError> {
    let io = |what: &str, e: std::io::Error| {
        LoadError(format!("data directory {}: {what}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", e))?;
    let dir = dir.canonicalize().map_err(|e| io("cannot resolve", e))?;
    let key = dir.join("token.key");
    let cert = dir.join("token.crt");
    if !key.exists() || !cert.exists() {
        let g = SigningKey::generate(Algorithm::ES256, ISSUER)
            .map_err(|e| LoadError(format!("cannot generate a signing key: {e}")))?;
        let _ = std::fs::remove_file(&key);
        write_private(&key, g.key_pem.expose().as_bytes())
            .map_err(|e| io("cannot write token.key", e))?;
        std::fs::write(&cert, g.certificate_pem.as_bytes())
            .map_err(|e| io("cannot write token.crt", e))?;
    }
    let htpasswd = dir.join("users.htpasswd");
    let mut new_password = None;
    if !htpasswd.exists() {
        let password = Password::new(
            docker_token_core::token::random_secret(18)
                .map_err(|e| LoadError(format!("cannot generate a password: {e}")))?,
        );
        let hash = bcrypt::hash(password.expose(), 10)
            .map_err(|e| LoadError(format!("cannot hash: {e}")))?;
        write_private(&htpasswd, format!("{ADMIN}:{hash}\n").as_bytes())
            .map_err(|e| io("cannot write users.htpasswd", e))?;
        new_password = Some(password);
    }
    let q = |p: &Path| serde_json::Value::String(p.display().to_string()).to_string();
    let yaml = format!(
        "server:\n  addr: {addr}\ntoken:\n  issuer: {ISSUER}\n  expiration: 900\n  certificate: {cert}\n  key: {key}\n\
         htpasswd_file: {htpasswd}\nacl:\n  - match: {{account: {ADMIN}}}\n    actions: [\"*\"]\n    comment: the admin may do anything\n",
        addr = serde_json::Value::String(addr.to_owned()),
        cert = q(&cert),
        key = q(&key),
        htpasswd = q(&htpasswd),
    );
    Ok(Quickstart {
        yaml,
        dir,
        new_password,
        issuer: ISSUER.to_owned(),
    })
}

pub(crate) fn print_banner(q: &Quickstart, local: SocketAddr, _loaded: &Loaded) {
    let host = if local.ip().is_unspecified() {
        "<this-host>".to_owned()
    } else {
        local.ip().to_string()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "docker-token-server: embedded default, data in {}",
        q.dir.display()
    );
    match &q.new_password {
        Some(p) => {
            let _ = writeln!(
                out,
                "  user {ADMIN}, password {} (shown once; keep it)",
                p.expose()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  user {ADMIN}: password printed at first start; delete {} to make a new one",
                q.dir.join("users.htpasswd").display()
            );
        }
    }
    let _ = writeln!(out, "\nPaste into the registry's config.yml:\n");
    let _ = writeln!(out, "auth:\n  token:");
    let _ = writeln!(out, "    realm: http://{host}:{}/auth", local.port());
    let _ = writeln!(out, "    service: docker-registry");
    let _ = writeln!(out, "    issuer: {}", q.issuer);
    let _ = writeln!(
        out,
        "    rootcertbundle: {}\n",
        q.dir.join("token.crt").display()
    );
}
