//! # docker-token-redis
//!
//! [`RedisStore`]: the state that several docker-token replicas must share, in Redis —
//! browser-login credentials ([`CredentialStore`]), robot accounts ([`RobotStore`]) and
//! refresh tokens ([`RefreshTokenStore`]).
//!
//! - **Every record expires by itself**: it is written with `SET … EXAT <its expiry>` (a
//!   refresh token's idle deadline, set again at each use), so
//!   Redis drops it when it stops being valid and nothing needs a sweeper.
//! - **Keys are `key_prefix` + kind + a SHA-256**, never a client's value (a user name can
//!   hold anything): `docker-token:cred:<hex>`, `docker-token:robot:<hex>`,
//!   `docker-token:refresh:<hex>`.
//! - **Redis down** → every operation answers [`BackendError::unavailable`] (the server
//!   answers 503) within about the connection timeout, with one error log line when it goes
//!   down and one info line when it is back; the connection is re-established in the
//!   background (redis-rs's `ConnectionManager`), without a restart.
//!
//! ```no_run
//! use docker_token_redis::{RedisConfig, RedisStore};
//!
//! let config: RedisConfig = serde_json::from_value(serde_json::json!({
//!     "url": "redis://redis.internal:6379/0",
//!     "key_prefix": "docker-token:",
//! }))
//! .unwrap();
//! let store = RedisStore::new(&config).unwrap(); // no network yet: connects on first use
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lc_rs::digest;
use docker_token_core::credential_store::unix_seconds;
use docker_token_core::refresh::{RefreshRecord, RefreshTokenStore};
use docker_token_core::{BackendError, ConfigError, CredentialStore, StoredCredential};
use docker_token_store::robots::{Robot, RobotStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;

const BACKEND: &str = "store.redis";

/// The default `key_prefix`.
pub const DEFAULT_PREFIX: &str = "docker-token:";

/// How long connecting and each command may take before the operation fails (503).
const TIMEOUT: Duration = Duration::from_secs(2);

/// `store.redis:` in the server's configuration.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS. A password here
    /// is never logged.
    pub url: String,
    /// Prepended to every key (default `docker-token:`), so that several deployments can
    /// share one Redis.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// TLS settings for a `rediss://` URL (default: the system's roots, no client
    /// certificate).
    #[serde(default)]
    pub tls: Option<RedisTlsConfig>,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisConfig {
    /// A configuration for `url` with the default prefix and no TLS settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: default_prefix(),
            tls: None,
        }
    }

    /// Sets the key prefix, builder style.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the TLS settings, builder style.
    #[must_use]
    pub fn with_tls(mut self, tls: RedisTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// docker_auth's `redis_token_db: {redis_options: {addr, password, db}}` (single server;
    /// `redis_cluster_options` is refused).
    pub fn from_docker_auth(value: &serde_json::Value) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Options {
            addr: String,
            #[serde(default)]
            password: Option<String>,
            #[serde(default)]
            db: u32,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TokenDb {
            #[serde(default)]
            redis_options: Option<Options>,
            #[serde(default)]
            redis_cluster_options: Option<serde_json::Value>,
            #[serde(default)]
            token_hash_cost: Option<u32>,
        }
        let db: TokenDb = serde_json::from_value(value.clone())
            .map_err(|e| ConfigError::new(e.to_string()).at("redis_token_db"))?;
        if db.redis_cluster_options.is_some() {
            return Err(ConfigError::new(
                "Redis Cluster is not supported; use redis_options or store.redis",
            )
            .at("redis_token_db"));
        }
        let _ = db.token_hash_cost; // our passwords are random; bcrypt_cost sets the cost
        let Some(o) = db.redis_options else {
            return Err(ConfigError::new("redis_options is required").at("redis_token_db"));
        };
        let auth = o
            .password
            .filter(|p| !p.is_empty())
            .map(|p| format!(":{}@", percent_encode(&p)))
            .unwrap_or_default();
        Ok(Self::new(format!("redis://{auth}{}/{}", o.addr, o.db)))
    }

    /// Checks what serde cannot (no network). Errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client().map(|_| ())
    }

    fn client(&self) -> Result<redis::Client, ConfigError> {
        let at = |m: String, key: &str| ConfigError::new(m).at(key.to_owned());
        if self.key_prefix.chars().any(char::is_control) {
            return Err(at(
                "must not contain control characters".to_owned(),
                "key_prefix",
            ));
        }
        let info: redis::ConnectionInfo =
            redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).map_err(|e| {
                at(
                    format!(
                        "{}: {}",
                        redact_url(&self.url),
                        e.detail().unwrap_or("invalid")
                    ),
                    "url",
                )
            })?;
        let is_tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        match &self.tls {
            None => redis::Client::open(info).map_err(|e| at(e.to_string(), "url")),
            Some(_) if !is_tls => Err(at("TLS settings need a rediss:// url".to_owned(), "tls")),
            Some(tls) => {
                let read = |p: &PathBuf, key: &str| {
                    std::fs::read(p)
                        .map_err(|e| at(format!("cannot read {}: {e}", p.display()), key).at("tls"))
                };
                let root_cert = tls
                    .ca_file
                    .as_ref()
                    .map(|p| read(p, "ca_file"))
                    .transpose()?;
                let client_tls = match (&tls.cert_file, &tls.key_file) {
                    (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                        client_cert: read(c, "cert_file")?,
                        client_key: read(k, "key_file")?,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(at(
                            "cert_file and key_file go together".to_owned(),
                            "cert_file",
                        )
                        .at("tls"));
                    }
                };
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls,
                        root_cert,
                    },
                )
                .map_err(|e| at(e.to_string(), "tls"))
            }
        }
    }
}

/// `store.redis.tls:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisTlsConfig {
    /// CA certificate(s) (PEM) that sign the server's certificate, instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for mutual TLS; with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl RedisTlsConfig {
    /// Trust `ca_file` for the server's certificate.
    #[must_use]
    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The URL without its user information (for logs and errors).
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => "<invalid url>".to_owned(),
    }
}

/// The kinds of record, each under its own key part.
#[derive(Clone, Copy)]
enum Kind {
    Credential,
    Robot,
    Refresh,
}

impl Kind {
    fn part(self) -> &'static str {
        match self {
            Self::Credential => "cred",
            Self::Robot => "robot",
            Self::Refresh => "refresh",
        }
    }
}

/// Credentials and robots in Redis; cheap to clone (one shared connection).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Built on first use (it needs a running Tokio runtime).
    manager: OnceLock<ConnectionManager>,
    prefix: String,
    /// `host:port` (no credentials), for logs.
    addr: String,
    down: AtomicBool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.inner.addr)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config`. Validates it and reads the TLS files, without connecting: the
    /// connection is made on first use (and re-made whenever it is lost).
    pub fn new(config: &RedisConfig) -> Result<Self, ConfigError> {
        let client = config.client()?;
        let addr = client.get_connection_info().addr().to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager: OnceLock::new(),
                prefix: config.key_prefix.clone(),
                addr,
                down: AtomicBool::new(false),
            }),
        })
    }

    /// The Redis key of a record: prefix, kind, and the SHA-256 of `id` in hex.
    #[must_use]
    pub fn key_for_credential(&self, id: &str) -> String {
        self.key(Kind::Credential, id)
    }

    /// The Redis key of a robot's record.
    #[must_use]
    pub fn key_for_robot(&self, name: &str) -> String {
        self.key(Kind::Robot, name)
    }

    /// The Redis key of a refresh token's record (by its id, itself a hash of the token).
    #[must_use]
    pub fn key_for_refresh_token(&self, id: &str) -> String {
        self.key(Kind::Refresh, id)
    }

    fn key(&self, kind: Kind, id: &str) -> String {
        let d = digest::digest(&digest::SHA256, id.as_bytes());
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{}:{hex}", self.inner.prefix, kind.part())
    }

    fn manager(&self) -> Result<ConnectionManager, BackendError> {
        if let Some(m) = self.inner.manager.get() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let m = ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config)
            .map_err(|e| BackendError::misconfigured(BACKEND, e.to_string()))?;
        Ok(self.inner.manager.get_or_init(|| m).clone())
    }

    /// Runs one command, turning failures into [`BackendError`]s and logging when Redis goes
    /// away and comes back.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackendError> {
        let mut conn = self.manager()?;
        match cmd.query_async::<T>(&mut conn).await {
            Ok(v) => {
                if self.inner.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(addr = %self.inner.addr, "Redis store reachable again");
                }
                Ok(v)
            }
            Err(e) => {
                let kind = e.kind();
                let err = if kind == redis::ErrorKind::AuthenticationFailed {
                    BackendError::misconfigured(BACKEND, format!("Redis refused the login: {e}"))
                } else {
                    BackendError::unavailable(BACKEND, format!("Redis: {e}"))
                };
                if !self.inner.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        addr = %self.inner.addr,
                        error = %e,
                        "Redis store unavailable: logins that need it are answered 503 until it is back"
                    );
                }
                Err(err)
            }
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, BackendError> {
        let raw: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key)).await?;
        Ok(raw.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// `SET key value EXAT expires_at [NX|XX]`; a record already expired is deleted instead.
    /// Returns whether it was written.
    async fn set_until(
        &self,
        key: &str,
        value: &[u8],
        expires_at: u64,
        when: Write,
    ) -> Result<bool, BackendError> {
        if expires_at <= unix_seconds(SystemTime::now()) {
            let _: i64 = self.run(redis::cmd("DEL").arg(key)).await?;
            return Ok(false);
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EXAT").arg(expires_at);
        match when {
            Write::Always => {}
            Write::IfAbsent => {
                cmd.arg("NX");
            }
            Write::IfPresent => {
                cmd.arg("XX");
            }
        }
        let reply: Option<String> = self.run(&cmd).await?;
        Ok(reply.is_some())
    }

    /// Every readable record of `kind`, with its key: `SCAN … MATCH` (bounded), then `MGET`.
    /// Linear in the records of that kind: for listings and revocations by account, not for
    /// the request path.
    async fn scan_json<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
    ) -> Result<Vec<(String, T)>, BackendError> {
        let pattern = format!("{}{}:*", glob_escape(&self.inner.prefix), kind.part());
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let (next, keys): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            if !keys.is_empty() {
                let values: Vec<Option<Vec<u8>>> = self.run(redis::cmd("MGET").arg(&keys)).await?;
                out.extend(keys.into_iter().zip(values).filter_map(|(k, v)| {
                    v.and_then(|v| serde_json::from_slice::<T>(&v).ok())
                        .map(|t| (k, t))
                }));
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(out)
    }

    async fn del(&self, key: &str) -> Result<bool, BackendError> {
        let n: i64 = self.run(redis::cmd("DEL").arg(key)).await?;
        Ok(n > 0)
    }

    /// `PING`: whether Redis answers.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// When `SET` writes.
#[derive(Clone, Copy)]
enum Write {
    Always,
    IfAbsent,
    IfPresent,
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(v).map_err(|e| BackendError::internal(BACKEND, e.to_string()))
}

/// Escapes glob characters for `SCAN … MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "*?[]\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl CredentialStore for RedisStore {
    async fn put(&self, key: &str, credential: StoredCredential) -> Result<(), BackendError> {
        let value = encode(&credential)?;
        self.set_until(
            &self.key(Kind::Credential, key),
            &value,
            credential.expires_at,
            Write::Always,
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredCredential>, BackendError> {
        let now = SystemTime::now();
        let found: Option<StoredCredential> =
            self.get_json(&self.key(Kind::Credential, key)).await?;
        Ok(found.filter(|c| !c.is_expired_at(now)))
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        self.del(&self.key(Kind::Credential, key)).await
    }

    /// Redis expires records by itself: nothing to do.
    async fn sweep_expired(&self, _now: SystemTime) -> Result<usize, BackendError> {
        Ok(0)
    }
}

#[async_trait]
impl RobotStore for RedisStore {
    async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError> {
        let value = encode(&robot)?;
        self.set_until(
            &self.key(Kind::Robot, &robot.name),
            &value,
            robot.expires_at,
            Write::IfAbsent,
        )
        .await
    }

    async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError> {
        let now = SystemTime::now();
        let found: Option<Robot> = self.get_json(&self.key(Kind::Robot, name)).await?;
        Ok(found.filter(|r| !r.is_expired_at(now) && r.name == name))
    }

    async fn delete_robot(&self, name: &str) -> Result<bool, BackendError> {
        self.del(&self.key(Kind::Robot, name)).await
    }

    /// `SCAN` over the robot keys (bounded), then `MGET`.
    async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
        let now = SystemTime::now();
        let mut out: Vec<Robot> = self
            .scan_json::<Robot>(Kind::Robot)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| !r.is_expired_at(now))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    async fn ready(&self) -> Result<(), BackendError> {
        self.ping().await
    }
}

#[async_trait]
impl RefreshTokenStore for RedisStore {
    async fn insert_token(&self, record: RefreshRecord) -> Result<(), BackendError> {
        let value = encode(&record)?;
        let key = self.key(Kind::Refresh, &record.id);
        self.set_until(&key, &value, record.expires_at, Write::Always)
            .await
            .map(|_| ())
    }

    async fn get_token(&self, id: &str) -> Result<Option<RefreshRecord>, BackendError> {
        let now = SystemTime::now();
        let found: Option<RefreshRecord> = self.get_json(&self.key(Kind::Refresh, id)).await?;
        Ok(found.filter(|r| !r.is_expired_at(now) && r.id == id))
    }

    /// `SET … XX`: never re-creates a revoked record.
    async fn update_token(&self, record: RefreshRecord) -> Result<bool, BackendError> {
        let value = encode(&record)?;
        let key = self.key(Kind::Refresh, &record.id);
        self.set_until(&key, &value, record.expires_at, Write::IfPresent)
            .await
    }

    async fn delete_token(&self, id: &str) -> Result<bool, BackendError> {
        self.del(&self.key(Kind::Refresh, id)).await
    }

    /// A scan of the refresh-token keys (an administrative operation).
    async fn delete_account_tokens(&self, account: &str) -> Result<usize, BackendError> {
        let mut removed = 0;
        for (key, r) in self.scan_json::<RefreshRecord>(Kind::Refresh).await? {
            if r.account == account && self.del(&key).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A scan of the refresh-token keys (an administrative operation).
    async fn list_tokens(&self, account: Option<&str>) -> Result<Vec<RefreshRecord>, BackendError> {
        let now = SystemTime::now();
        Ok(self
            .scan_json::<RefreshRecord>(Kind::Refresh)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| !r.is_expired_at(now) && account.is_none_or(|a| r.account == a))
            .collect())
    }

    /// Redis expires records by itself: nothing to do.
    async fn sweep_expired_tokens(&self, _now: SystemTime) -> Result<usize, BackendError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_and_redaction() {
        let c: RedisConfig =
            serde_json::from_value(serde_json::json!({"url": "redis://:s3cret@127.0.0.1:6379/2"}))
                .unwrap();
        assert_eq!(c.key_prefix, DEFAULT_PREFIX);
        c.validate().unwrap();
        let d = format!("{c:?}");
        assert!(
            !d.contains("s3cret") && d.contains("127.0.0.1:6379/2"),
            "{d}"
        );
        assert!(
            serde_json::from_value::<RedisConfig>(serde_json::json!({"url": "x", "bogus": 1}))
                .is_err()
        );
        let bad = RedisConfig::new("http://:pw@h/0");
        let e = bad.validate().unwrap_err();
        assert!(
            e.to_string().starts_with("url") && !e.to_string().contains("pw"),
            "{e}"
        );
        let e = RedisConfig::new("redis://h:6379")
            .with_tls(RedisTlsConfig::default())
            .validate()
            .unwrap_err();
        assert_eq!(e.location(), "tls");
        let e = RedisConfig::new("rediss://h:6379")
            .with_tls(RedisTlsConfig::default().with_ca_file("/nonexistent/ca.pem"))
            .validate()
            .unwrap_err();
        assert_eq!(e.location(), "tls.ca_file");
        let e = RedisConfig::new("redis://h")
            .with_key_prefix("a\nb")
            .validate()
            .unwrap_err();
        assert_eq!(e.location(), "key_prefix");
    }

    #[test]
    fn docker_auth_redis_options() {
        let c = RedisConfig::from_docker_auth(&serde_json::json!({
            "redis_options": {"addr": "redis:6379", "password": "p@ss word", "db": 3},
            "token_hash_cost": 10,
        }))
        .unwrap();
        assert_eq!(c.url, "redis://:p%40ss%20word@redis:6379/3");
        c.validate().unwrap();
        assert!(
            RedisConfig::from_docker_auth(&serde_json::json!({"redis_cluster_options": {}}))
                .is_err()
        );
        assert!(RedisConfig::from_docker_auth(&serde_json::json!({})).is_err());
    }

    #[test]
    fn keys_are_prefixed_hashes() {
        let s = RedisStore::new(&RedisConfig::new("redis://127.0.0.1:1").with_key_prefix("p:"))
            .unwrap();
        let k = s.key_for_credential("alice\r\n*");
        assert!(
            k.starts_with("p:cred:") && k.len() == "p:cred:".len() + 64,
            "{k}"
        );
        assert!(!k.contains("alice"));
        assert_ne!(s.key_for_robot("ci"), s.key_for_credential("ci"));
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
