//! docker_auth's YAML configuration format (the sections this server supports), with strict
//! validation: unknown keys are errors that name the file, line and key, and sections we do
//! not support yet are named instead of silently ignored.

use std::path::{Path, PathBuf};

use docker_token_core::acl::{Acl, AclEntry};
use docker_token_core::cache::CacheConfig;
use docker_token_core::config::{RefreshConfig, TokenConfig};
use docker_token_core::rate_limit::RateLimitConfig;
use docker_token_core::refresh::{InMemoryRefreshTokenStore, RefreshTokenStore, RefreshTokens};
use docker_token_core::static_users::UsersConfig;
use docker_token_core::{Authenticator, CachedAuthenticator, StaticUsers};
use docker_token_ldap::{LdapAuthenticator, LdapConfig};
use docker_token_oidc::{OidcLogin, OidcLoginConfig, OidcTokenAuthenticator, OidcTokenConfig};
use docker_token_store::robots::RobotAuthenticator;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::store::{StoreConfig, Stores};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// `server:` — where and how to listen.
    pub(crate) server: ServerConfig,
    /// `token:` — issuer, lifetime, keys.
    pub(crate) token: TokenConfig,
    /// `users:` — static users (bcrypt).
    #[serde(default)]
    pub(crate) users: Option<UsersConfig>,
    /// Our addition: an htpasswd file (bcrypt lines only) merged into the static users.
    #[serde(default)]
    pub(crate) htpasswd_file: Option<PathBuf>,
    /// Our addition: how long successful static-user (`users`, `htpasswd_file`) logins are
    /// remembered; default `{ttl: 60, max_entries: 10000}`, `ttl: 0` turns it off. LDAP has
    /// its own `ldap_auth.cache_ttl`.
    #[serde(default)]
    pub(crate) credential_cache: Option<CacheConfig>,
    /// Our addition: failed-login rate limiting, on by default (see the README);
    /// `rate_limit: {enabled: false}` turns it off.
    #[serde(default)]
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// `acl:` — the static ACL.
    #[serde(default)]
    pub(crate) acl: Option<Vec<AclEntry>>,
    /// `ldap_auth:` — an LDAP directory (docker_auth's keys plus ours).
    #[serde(default)]
    pub(crate) ldap_auth: Option<LdapConfig>,
    /// `oidc_auth:` — the OIDC browser login (docker_auth's keys plus ours).
    #[serde(default)]
    pub(crate) oidc_auth: Option<OidcAuthSection>,
    /// `oidc_token_auth:` — our addition: IdP access tokens as docker passwords.
    #[serde(default)]
    pub(crate) oidc_token_auth: Option<OidcTokenConfig>,
    /// `store:` — ours: robot accounts and (unless `oidc_auth` names its own token DB) the
    /// browser-login credentials; an embedded redb file or Redis (replicas).
    #[serde(default)]
    pub(crate) store: Option<StoreConfig>,
    /// The order of the top-level sections in the file (filled after parsing).
    #[serde(skip)]
    pub(crate) section_order: Vec<String>,

    // docker_auth sections this server does not implement yet: accepted by the parser so
    // that the error can name them.
    #[serde(default)]
    google_auth: Option<IgnoredAny>,
    #[serde(default)]
    github_auth: Option<IgnoredAny>,
    #[serde(default)]
    gitlab_auth: Option<IgnoredAny>,
    #[serde(default)]
    mongo_auth: Option<IgnoredAny>,
    #[serde(default)]
    xorm_auth: Option<IgnoredAny>,
    #[serde(default)]
    ext_auth: Option<IgnoredAny>,
    #[serde(default)]
    plugin_authn: Option<IgnoredAny>,
    #[serde(default)]
    acl_mongo: Option<IgnoredAny>,
    #[serde(default)]
    acl_xorm: Option<IgnoredAny>,
    #[serde(default)]
    ext_authz: Option<IgnoredAny>,
    #[serde(default)]
    plugin_authz: Option<IgnoredAny>,
    #[serde(default)]
    casbin_authz: Option<IgnoredAny>,
}

/// `oidc_auth:`: the library's browser-login keys plus docker_auth's token-DB keys, which
/// only choose the server's credential store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OidcAuthSection {
    /// Everything the login itself needs.
    #[serde(flatten)]
    pub(crate) login: OidcLoginConfig,
    /// docker_auth's `level_token_db`: the persistent store.
    #[serde(default)]
    pub(crate) level_token_db: Option<LevelTokenDb>,
    /// docker_auth's older `token_db` (a path): the same as `level_token_db.path`.
    #[serde(default)]
    pub(crate) token_db: Option<PathBuf>,
    /// docker_auth's `redis_token_db` (`redis_options: {addr, password, db}`): the
    /// credentials are kept in that Redis.
    #[serde(default)]
    pub(crate) redis_token_db: Option<serde_json::Value>,
    /// docker_auth's `gcs_token_db` (not supported yet; named in the error).
    #[serde(default)]
    pub(crate) gcs_token_db: Option<IgnoredAny>,
}

/// docker_auth's `level_token_db:` — where the persistent credential store lives.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LevelTokenDb {
    /// The database file (docker_auth: a LevelDB directory; here a redb file).
    pub(crate) path: PathBuf,
}

/// `server:`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// `host:port` to listen on (`127.0.0.1:0` picks a free port and prints it).
    pub(crate) addr: String,
    /// `tcp` (default) or `unix` (then `addr` is a socket path).
    #[serde(default)]
    pub(crate) net: Option<String>,
    /// A prefix for every route; must start with `/`.
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    /// TLS certificate chain (PEM); with `key`, the server speaks HTTPS.
    #[serde(default)]
    pub(crate) certificate: Option<PathBuf>,
    /// TLS private key (PEM).
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
    /// Add `Strict-Transport-Security: max-age=63072000; includeSubDomains`.
    #[serde(default)]
    pub(crate) hsts: bool,
    /// Take the client address from this header (only from trusted proxies).
    #[serde(default)]
    pub(crate) real_ip_header: Option<String>,
    /// Which entry of the header's comma-separated list; negative counts from the end.
    #[serde(default)]
    pub(crate) real_ip_pos: isize,
    /// Our addition: peers allowed to set `real_ip_header` (CIDRs; default loopback).
    #[serde(default)]
    pub(crate) real_ip_trusted_proxies: Option<Vec<String>>,
    /// Our addition: Prometheus metrics (`{enabled: true, path: /metrics, addr: …}`).
    #[serde(default)]
    pub(crate) metrics: Option<MetricsConfig>,
    /// Our addition: a Unix socket (created readable by the server's user only) on which
    /// the running server answers the `tokens` administration commands.
    #[serde(default)]
    pub(crate) admin_socket: Option<PathBuf>,
    /// Our addition: seconds a connection may take to send a request head (also how long an
    /// idle keep-alive connection stays open); default 10. Plain HTTP only.
    #[serde(default)]
    pub(crate) header_read_timeout: Option<u64>,
    /// Our addition: the most simultaneous client connections; default the open-file limit
    /// minus a reserve. Plain HTTP only.
    #[serde(default)]
    pub(crate) max_connections: Option<usize>,

    #[serde(default)]
    tls_min_version: Option<IgnoredAny>,
    #[serde(default)]
    tls_curve_preferences: Option<IgnoredAny>,
    #[serde(default)]
    tls_cipher_suites: Option<IgnoredAny>,
    #[serde(default)]
    letsencrypt: Option<IgnoredAny>,
}

/// `server.metrics:` — the Prometheus text endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Whether metrics are recorded and served (default `true` once the section is there).
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// The path (default `/metrics`; under `path_prefix` when served on the main listener).
    #[serde(default = "default_metrics_path")]
    pub(crate) path: String,
    /// A separate plain-HTTP listener (`host:port`, e.g. `127.0.0.1:9100`) for the metrics
    /// only; without it they are served on the main listener.
    #[serde(default)]
    pub(crate) addr: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

impl ServerConfig {
    /// The metrics configuration when metrics are on.
    pub(crate) fn metrics(&self) -> Option<&MetricsConfig> {
        self.metrics.as_ref().filter(|m| m.enabled)
    }
}

/// A configuration that cannot be used; the text says where and why.
#[derive(Debug)]
pub(crate) struct LoadError(pub(crate) String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// The authentication backends: each with the file section it came from, in the order the
/// chain asks them. A new kind of backend is one more entry here (see [`FileConfig::load`]),
/// nothing else.
pub(crate) type Backends = Vec<(&'static str, std::sync::Arc<dyn Authenticator>)>;

/// Everything built from a valid file, ready to serve.
pub(crate) struct Loaded {
    /// Where the configuration came from (a path, or "embedded default").
    pub(crate) origin: String,
    /// The parsed file.
    pub(crate) file: FileConfig,
    /// The authenticators by section, in chain order. Each load builds new ones (with fresh
    /// credential caches).
    pub(crate) backends: Backends,
    /// The compiled ACL, if any.
    pub(crate) acl: Option<Acl>,
    /// The OIDC browser login (`oidc_auth`), whose routes the server mounts.
    pub(crate) oidc_login: Option<OidcLogin>,
    /// Its credential store, swept by the server when it is an embedded file.
    pub(crate) oidc_store: Option<SharedStore>,
    /// The refresh-token store and policy (`token.refresh`).
    pub(crate) refresh: Option<RefreshTokens>,
    /// The `store:` section's stores.
    pub(crate) store: Option<Stores>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&str, &str)> = self.backends.iter().map(|(s, a)| (*s, a.name())).collect();
        f.debug_struct("Loaded")
            .field("origin", &self.origin)
            .field("file", &self.file)
            .field("backends", &names)
            .field("acl", &self.acl)
            .field("oidc_login", &self.oidc_login)
            .field("oidc_store", &self.oidc_store)
            .field("refresh", &self.refresh)
            .field("store", &self.store)
            .finish()
    }
}

/// The store named by `token.refresh.path` (a redb file), else the top-level `store:` (redb
/// or Redis), else process memory. The last is kept once per process, so that a
/// configuration reload keeps the issued tokens.
pub(crate) fn refresh_tokens(
    c: &RefreshConfig,
    top: Option<&Stores>,
) -> Result<RefreshTokens, String> {
    let store: std::sync::Arc<dyn RefreshTokenStore> = match (&c.path, top) {
        (Some(p), _) => std::sync::Arc::new(
            docker_token_store::RedbStore::open(p).map_err(|e| format!("path: {e}"))?,
        ),
        (None, Some(top)) => top.refresh.clone(),
        (None, None) => {
            static MEMORY: std::sync::OnceLock<std::sync::Arc<InMemoryRefreshTokenStore>> =
                std::sync::OnceLock::new();
            MEMORY.get_or_init(Default::default).clone()
        }
    };
    Ok(RefreshTokens::new(store, c.policy()))
}

/// A credential store shared by the login and the sweeper; `.1`: it needs sweeping.
#[derive(Clone)]
pub(crate) struct SharedStore(
    pub(crate) std::sync::Arc<dyn docker_token_core::CredentialStore>,
    pub(crate) bool,
);

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

impl FileConfig {
    /// Parses YAML text; `origin` names the file in errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Self, LoadError> {
        let mut cfg: Self =
            serde_saphyr::from_str(text).map_err(|e| LoadError(format!("{origin}: {e}")))?;
        cfg.section_order = serde_saphyr::from_str::<TopKeys>(text)
            .map(|k| k.0)
            .unwrap_or_default();
        cfg.check_unsupported(origin)?;
        cfg.fill_defaults();
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub(crate) fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn check_unsupported(&self, origin: &str) -> Result<(), LoadError> {
        let sections = [
            ("google_auth", self.google_auth.is_some()),
            ("github_auth", self.github_auth.is_some()),
            ("gitlab_auth", self.gitlab_auth.is_some()),
            ("mongo_auth", self.mongo_auth.is_some()),
            ("xorm_auth", self.xorm_auth.is_some()),
            ("ext_auth", self.ext_auth.is_some()),
            ("plugin_authn", self.plugin_authn.is_some()),
            ("acl_mongo", self.acl_mongo.is_some()),
            ("acl_xorm", self.acl_xorm.is_some()),
            ("ext_authz", self.ext_authz.is_some()),
            ("plugin_authz", self.plugin_authz.is_some()),
            ("casbin_authz", self.casbin_authz.is_some()),
            (
                "server.tls_min_version",
                self.server.tls_min_version.is_some(),
            ),
            (
                "server.tls_curve_preferences",
                self.server.tls_curve_preferences.is_some(),
            ),
            (
                "server.tls_cipher_suites",
                self.server.tls_cipher_suites.is_some(),
            ),
            ("server.letsencrypt", self.server.letsencrypt.is_some()),
        ];
        let unsupported: Vec<&str> = sections
            .iter()
            .filter(|(_, set)| *set)
            .map(|(n, _)| *n)
            .collect();
        if unsupported.is_empty() {
            Ok(())
        } else {
            Err(LoadError(format!(
                "{origin}: docker_auth section(s) not supported by docker-token yet: {} \
                 (supported: server, token, users, htpasswd_file, credential_cache, rate_limit, ldap_auth, oidc_auth, oidc_token_auth, acl, store)",
                unsupported.join(", ")
            )))
        }
    }

    /// docker_auth: the token key pair defaults to the server's TLS pair.
    fn fill_defaults(&mut self) {
        if self.token.key.is_none() && self.token.certificate.is_none() {
            self.token.key.clone_from(&self.server.key);
            self.token.certificate.clone_from(&self.server.certificate);
        }
    }

    /// Validates everything that does not need the network and builds the static backends.
    pub(crate) fn load(self, origin: &str) -> Result<Loaded, LoadError> {
        let err = |e: &dyn std::fmt::Display| LoadError(format!("{origin}: {e}"));
        self.token.validate().map_err(|e| err(&e))?;
        if let Some(prefix) = &self.server.path_prefix
            && !prefix.is_empty()
            && !prefix.starts_with('/')
        {
            return Err(err(&"server.path_prefix: must start with '/'"));
        }
        match self.server.net.as_deref() {
            None | Some("tcp" | "unix") => {}
            Some(other) => {
                return Err(err(&format!(
                    "server.net: {other:?} is neither \"tcp\" nor \"unix\""
                )));
            }
        }
        if self.server.header_read_timeout == Some(0) || self.server.max_connections == Some(0) {
            return Err(err(
                &"server: header_read_timeout and max_connections must be at least 1",
            ));
        }
        if self.server.certificate.is_some() != self.server.key.is_some() {
            return Err(err(&"server: certificate and key must be set together"));
        }
        if let Some(h) = &self.server.real_ip_header
            && http::HeaderName::try_from(h.as_str()).is_err()
        {
            return Err(err(&format!(
                "server.real_ip_header: {h:?} is not a valid header name"
            )));
        }
        for (i, p) in self
            .server
            .real_ip_trusted_proxies
            .iter()
            .flatten()
            .enumerate()
        {
            parse_net(p).map_err(|e| err(&format!("server.real_ip_trusted_proxies[{i}]: {e}")))?;
        }
        self.credential_cache
            .unwrap_or_default()
            .validate()
            .map_err(|e| err(&e.at("credential_cache")))?;
        self.rate_limit
            .unwrap_or_default()
            .validate()
            .map_err(|e| err(&e.at("rate_limit")))?;
        if let Some(m) = &self.server.metrics {
            if !m.path.starts_with('/') {
                return Err(err(&"server.metrics.path: must start with '/'"));
            }
            let taken = [
                "/auth",
                "/auth/token",
                "/healthz",
                "/readyz",
                "/.well-known/jwks.json",
            ];
            if m.addr.is_none() && taken.contains(&m.path.trim_end_matches('/')) {
                return Err(err(&format!(
                    "server.metrics.path: {} is a route of the token server",
                    m.path
                )));
            }
            if let Some(addr) = &m.addr
                && addr.parse::<std::net::SocketAddr>().is_err()
            {
                return Err(err(&format!(
                    "server.metrics.addr: {addr:?} is not an IP:port address"
                )));
            }
        }
        let mut users = match &self.users {
            Some(u) => Some(StaticUsers::from_config(u).map_err(|e| err(&e))?),
            None => None,
        };
        if let Some(path) = &self.htpasswd_file {
            let extra = StaticUsers::from_htpasswd_file(path)
                .map_err(|e| err(&format!("htpasswd_file: {e}")))?;
            match &mut users {
                Some(u) => u
                    .extend(extra)
                    .map_err(|e| err(&format!("htpasswd_file: {e}")))?,
                None => users = Some(extra),
            }
        }
        let store = match &self.store {
            Some(s) => Some(s.build().map_err(|e| err(&format!("store.{e}")))?),
            None => None,
        };
        // The registry of backends: one entry per configured section. The chain then runs
        // in the order the sections appear in the file (docker_auth used a fixed order);
        // `users` and `htpasswd_file` form one static backend.
        let mut backends: Backends = Vec::new();
        if let Some(s) = &store {
            // never cached: a revoked or expired robot is refused from the next request on
            backends.push((
                "store",
                std::sync::Arc::new(RobotAuthenticator::new(s.robots.clone())),
            ));
        }
        if let Some(users) = users {
            let cache = self.credential_cache.unwrap_or_default();
            let users: std::sync::Arc<dyn Authenticator> = if cache.is_enabled() {
                std::sync::Arc::new(
                    CachedAuthenticator::new(users, cache)
                        .map_err(|e| err(&format!("credential_cache: {e}")))?,
                )
            } else {
                std::sync::Arc::new(users)
            };
            backends.push(("users", users));
        }
        if let Some(c) = &self.ldap_auth {
            let ldap =
                LdapAuthenticator::from_config(c).map_err(|e| err(&format!("ldap_auth: {e}")))?;
            backends.push(("ldap_auth", std::sync::Arc::new(ldap)));
        }
        let (oidc_login, oidc_store) = match &self.oidc_auth {
            Some(c) => {
                let (s, sweep) = crate::store::oidc_store(c, store.as_ref())
                    .map_err(|e| err(&format!("oidc_auth: {e}")))?;
                let store = SharedStore(s, sweep);
                let shared = c.redis_token_db.is_some()
                    || (c.level_token_db.is_none()
                        && c.token_db.is_none()
                        && store_is_shared(self.store.as_ref()));
                if shared && c.login.cookie_key_file.is_none() {
                    tracing::warn!(
                        "oidc_auth uses a shared (Redis) store but has no cookie_key_file: a browser login started on one replica cannot finish on another"
                    );
                }
                let prefix = self.server.path_prefix.as_deref().unwrap_or("");
                let start = format!("{}/oidc_auth", prefix.trim_end_matches('/'));
                let login =
                    OidcLogin::new(&c.login, store.0.clone(), start).map_err(|e| err(&e))?;
                backends.push(("oidc_auth", std::sync::Arc::new(login.authenticator())));
                (Some(login), Some(store))
            }
            None => (None, None),
        };
        if let Some(c) = &self.oidc_token_auth {
            let oidc = OidcTokenAuthenticator::from_config(c)
                .map_err(|e| err(&format!("oidc_token_auth: {e}")))?
                .with_name("oidc_token_auth");
            backends.push(("oidc_token_auth", std::sync::Arc::new(oidc)));
        }
        // Robots (`robot$NAME`) first: the prefix is theirs. Then file order; sections the
        // order does not name keep the order above (the sort is stable).
        let position = |section: &str| match section {
            "store" => Some(0),
            _ => self
                .section_order
                .iter()
                .position(|s| s == section || (section == "users" && s == "htpasswd_file"))
                .map(|p| p + 1),
        };
        backends.sort_by_key(|(section, _)| position(section).unwrap_or(usize::MAX));
        if backends.is_empty() {
            return Err(err(
                &"no authentication backend configured: add `users:` (an empty map denies everyone), `htpasswd_file:`, `ldap_auth:`, `oidc_auth:`, `oidc_token_auth:` or `store:` (robot accounts)",
            ));
        }
        let acl = match &self.acl {
            Some(entries) => Some(Acl::new(entries.clone()).map_err(|e| err(&e))?),
            None => None,
        };
        if acl.is_none() {
            return Err(err(
                &"no authorization backend configured: add `acl:` (`acl: []` denies everything)",
            ));
        }
        let refresh = match &self.token.refresh {
            Some(c) => Some(
                refresh_tokens(c, store.as_ref())
                    .map_err(|e| err(&format!("token.refresh.{e}")))?,
            ),
            None => None,
        };
        Ok(Loaded {
            origin: origin.to_owned(),
            file: self,
            backends,
            acl,
            oidc_login,
            oidc_store,
            refresh,
            store,
        })
    }
}

fn store_is_shared(s: Option<&StoreConfig>) -> bool {
    s.is_some_and(|s| s.redis.is_some())
}

/// The top-level keys of a YAML mapping, in document order.
struct TopKeys(Vec<String>);

impl<'de> Deserialize<'de> for TopKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(TopKeys(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Parses an IP or CIDR (a bare IP is a /32 or /128).
pub(crate) fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
}
