//! The YAML configuration. Two modes:
//!
//! * **separate token server** — `auth:` names the token server (`realm`, `service`,
//!   `issuer`) and where its keys come from: `jwks_url` (re-read every `jwks_refresh`
//!   seconds, so a key rotation is picked up), `jwks_file`, or `rootcertbundle` (the
//!   registry's PEM bundle);
//! * **single process** — add docker_auth's `token:`, `users:` and `acl:` sections (the same
//!   format as docker-token-server's) and the registry serves the token endpoint itself at
//!   `/auth` and verifies with the keys of its own `token:` section.
//!
//! ```yaml
//! registry:
//!   addr: "127.0.0.1:5000"
//! auth:
//!   realm: "http://127.0.0.1:5001/auth"
//!   service: "my-registry"
//!   issuer: "my-issuer"
//!   jwks_url: "http://127.0.0.1:5001/.well-known/jwks.json"
//! ```
//!
//! Unknown keys are errors.

use std::path::{Path, PathBuf};

use docker_token_core::acl::AclEntry;
use docker_token_core::config::TokenConfig;
use docker_token_core::static_users::UsersConfig;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// `registry:` — where to listen, limits.
    pub(crate) registry: RegistrySection,
    /// `auth:` — how tokens are checked.
    pub(crate) auth: AuthSection,
    /// `token:` — single-process mode: the embedded token service's keys and lifetime.
    #[serde(default)]
    pub(crate) token: Option<TokenConfig>,
    /// `users:` — single-process mode: static users (bcrypt).
    #[serde(default)]
    pub(crate) users: Option<UsersConfig>,
    /// `acl:` — single-process mode: the ACL.
    #[serde(default)]
    pub(crate) acl: Option<Vec<AclEntry>>,
}

/// `registry:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistrySection {
    /// `host:port` (`127.0.0.1:0` picks a free port and prints it).
    pub(crate) addr: String,
    /// The largest blob accepted, in bytes (default 256 MiB). Everything is kept in memory.
    #[serde(default = "default_max_blob_bytes")]
    pub(crate) max_blob_bytes: usize,
}

fn default_max_blob_bytes() -> usize {
    256 << 20
}

/// `auth:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSection {
    /// The token endpoint URL put into challenges. Single-process mode: defaults to
    /// `http://<listen address>/auth`.
    #[serde(default)]
    pub(crate) realm: Option<String>,
    /// The service name: the challenge's `service` and the tokens' required `aud`.
    pub(crate) service: String,
    /// The required `iss`. Single-process mode: defaults to `token.issuer`.
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    /// The token server's JWKS endpoint.
    #[serde(default)]
    pub(crate) jwks_url: Option<String>,
    /// A JWKS document on disk.
    #[serde(default)]
    pub(crate) jwks_file: Option<PathBuf>,
    /// A PEM bundle of the signing certificates (the registry's `rootcertbundle`).
    #[serde(default)]
    pub(crate) rootcertbundle: Option<PathBuf>,
    /// Seconds between re-reads of `jwks_url` (default 60; sooner when the response's
    /// `Cache-Control: max-age` is shorter).
    #[serde(default = "default_jwks_refresh")]
    pub(crate) jwks_refresh: u64,
}

fn default_jwks_refresh() -> u64 {
    60
}

/// Where the verifier's keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// The embedded token service's own keys.
    Embedded,
    /// A JWKS URL, re-read periodically.
    JwksUrl(String),
    /// A JWKS file.
    JwksFile(PathBuf),
    /// A PEM certificate bundle.
    Bundle(PathBuf),
}

impl Config {
    /// Reads and validates a file.
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let config: Self =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config
            .key_source()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Whether the token service runs in this process.
    pub(crate) fn embedded(&self) -> bool {
        self.token.is_some()
    }

    /// The one key source the file names.
    pub(crate) fn key_source(&self) -> Result<KeySource, String> {
        let a = &self.auth;
        let mut sources = Vec::new();
        if let Some(u) = &a.jwks_url {
            sources.push(KeySource::JwksUrl(u.clone()));
        }
        if let Some(f) = &a.jwks_file {
            sources.push(KeySource::JwksFile(f.clone()));
        }
        if let Some(b) = &a.rootcertbundle {
            sources.push(KeySource::Bundle(b.clone()));
        }
        if self.embedded() {
            if !sources.is_empty() {
                return Err(
                    "auth: with a token: section the registry verifies with its own keys; remove jwks_url, jwks_file and rootcertbundle".to_owned(),
                );
            }
            if self.users.is_none() || self.acl.is_none() {
                return Err(
                    "single-process mode needs users: and acl: next to token: (`acl: []` denies everything)".to_owned(),
                );
            }
            return Ok(KeySource::Embedded);
        }
        if self.users.is_some() || self.acl.is_some() {
            return Err("users: and acl: need a token: section (single-process mode)".to_owned());
        }
        if a.realm.is_none() || a.issuer.is_none() {
            return Err(
                "auth: realm and issuer are required with a separate token server".to_owned(),
            );
        }
        if a.jwks_refresh == 0 {
            return Err("auth.jwks_refresh: must be at least 1 second".to_owned());
        }
        match sources.len() {
            1 => Ok(sources.remove(0)),
            0 => Err(
                "auth: name the token server's keys: jwks_url, jwks_file or rootcertbundle"
                    .to_owned(),
            ),
            _ => Err("auth: set only one of jwks_url, jwks_file and rootcertbundle".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, String> {
        let c: Config = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        c.key_source()?;
        Ok(c)
    }

    #[test]
    fn modes_and_mistakes() {
        let base = "registry: {addr: '127.0.0.1:0'}\n";
        let ok = parse(&format!(
            "{base}auth: {{realm: 'http://a/auth', service: s, issuer: i, jwks_url: 'http://a/jwks'}}\n"
        ))
        .unwrap();
        assert!(matches!(ok.key_source(), Ok(KeySource::JwksUrl(_))));
        let e = parse(&format!(
            "{base}auth: {{realm: r, service: s, issuer: i}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("jwks_url"), "{e}");
        let e = parse(&format!(
            "{base}auth: {{realm: r, service: s, issuer: i, jwks_file: f, rootcertbundle: b}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("only one"), "{e}");
        let e = parse(&format!("{base}auth: {{service: s, jwks_file: f}}\n")).unwrap_err();
        assert!(e.contains("realm and issuer"), "{e}");
        let e = parse(&format!("{base}auth: {{service: s, realms: x}}\n")).unwrap_err();
        assert!(e.contains("realms"), "{e}");
        let e = parse(&format!(
            "{base}auth: {{service: s}}\ntoken: {{issuer: i, expiration: 60}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("users: and acl:"), "{e}");
        let ok = parse(&format!(
            "{base}auth: {{service: s}}\ntoken: {{issuer: i, expiration: 60}}\nusers: {{}}\nacl: []\n"
        ))
        .unwrap();
        assert!(matches!(ok.key_source(), Ok(KeySource::Embedded)));
    }
}
