//! An LDAP [`Authenticator`] for docker-token: search+bind or direct bind, RFC-correct
//! escaping, labels from attributes and group searches, pooled connections, failover,
//! timeouts, and an optional short cache of successful logins.
//!
//! # Configuration
//!
//! [`LdapConfig`] reads docker_auth's `ldap_auth` section unchanged and adds a few keys:
//!
//! ```yaml
//! ldap_auth:
//!   # docker_auth keys
//!   addr: ldap.example.com:636          # or `urls` (ours), tried in order with failover:
//!   # urls: [ldaps://ldap1.example.com, ldaps://ldap2.example.com]
//!   tls: always                         # none | starttls | always (default: always on port 636)
//!   ca_certificate: /etc/docker-token/ldap-ca.pem
//!   insecure_tls_skip_verify: false
//!   bind_dn: cn=readonly,dc=example,dc=org
//!   bind_password_file: /run/secrets/ldap-readonly   # or bind_password_env: LDAP_PASSWORD (ours)
//!   base: ou=people,dc=example,dc=org
//!   filter: (&(objectClass=inetOrgPerson)(uid=${account}))
//!   labels:
//!     group: {attribute: memberOf, parse_cn: true, lower_case: true}
//!   # ours
//!   group_search:                       # for servers without memberOf
//!     base: ou=groups,dc=example,dc=org
//!     filter: (&(objectClass=groupOfNames)(member=${dn}))
//!     attribute: cn
//!     label: group
//!   connect_timeout: 5                  # seconds (TCP + TLS + service bind)
//!   operation_timeout: 5                # seconds per LDAP operation
//!   pool_size: 8                        # per pool (service searches, user binds)
//!   user_bind: pooled                   # pooled | rebind | fresh
//!   cache_ttl: 30                       # seconds; 0 (default) disables the cache
//!   cache_size: 1024
//! ```
//!
//! # Outcomes
//!
//! | situation | result |
//! |---|---|
//! | empty user name | `NotApplicable` (the chain continues) |
//! | empty password | `Rejected`, before any LDAP traffic (servers may treat it as an anonymous bind) |
//! | no entry matches the filter | `NotApplicable` |
//! | several entries match | `Err`, misconfigured (500) |
//! | wrong password (49), account locked/disabled (19, 48, 53) | `Rejected` |
//! | server unreachable, timeout, busy | `Err`, unavailable (503) |
//! | service account refused, bad base, TLS certificate rejected | `Err`, misconfigured (500) |
//!
//! In direct-bind mode (`initial_bind_as_user`) the server answers 49 for unknown users and
//! wrong passwords alike, so an unknown user is `Rejected` there and does not fall through.
//!
//! # Connections
//!
//! Searches run on a bounded pool of connections bound as the service account. User binds
//! run, by default (`user_bind: pooled`), on a second bounded pool whose connections are used
//! for nothing but binds: one round trip per login. `rebind` binds the user on a service
//! connection and binds it back as the service account (two round trips; a connection that
//! cannot be re-bound is closed); `fresh` opens a new connection per login like docker_auth.
//! Dead pooled connections (a restarted server) are detected and replaced transparently.
//!
//! Measured against the test slapd (2 cores, debug build of this crate; 2000 logins as bursts
//! of 200 concurrent requests, 3/4 good and 1/4 wrong passwords, `pool_size: 4`, the
//! `measure_user_bind_strategies` test): `pooled` ≈ 6 700–8 000 logins/s (8 connections in
//! total), `rebind` ≈ 4 500–5 200/s (4 connections, one extra round trip per login), `fresh`
//! ≈ 3 500/s over plain LDAP and ≈ 1 100/s over LDAPS (a connection and, with TLS, a
//! handshake per login). All three pass the same correctness test.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod escape;
mod labels;
mod pool;
mod search;
mod tls;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use docker_token_core::{
    Authenticator, AuthnOutcome, BackendError, CachedAuthenticator, ConfigError, Identity,
    LoginAttempt, LookupOutcome, OneLine, Password,
};
use ldap3::Scope;

pub use config::{GroupSearch, LabelMapping, LdapConfig, TlsMode, UserBind};

use crate::config::{Mode, Settings};
use crate::escape::{dn_value, expand, filter_value};
use crate::labels::{LabelMapper, add_groups};
use crate::pool::{BACKEND, Connector, Pool, Pooled, transport_error};
use crate::search::{Entry, bind_outcome, search, search_checked};

/// Counters for tests, metrics and capacity planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// LDAP connections open right now (both pools and in-flight fresh ones).
    pub open_connections: usize,
    /// Connections opened since start.
    pub opened_total: u64,
    /// The configured size of each pool.
    pub pool_size: usize,
    /// Idle service connections.
    pub idle_service: usize,
    /// Idle user-bind connections.
    pub idle_bind: usize,
    /// Entries in the success cache.
    pub cached: usize,
}

/// The LDAP authenticator. Build it with [`LdapAuthenticator::from_config`]; it connects
/// lazily, so it can be built while the directory is down ([`Authenticator::ready`] tells).
/// With `cache_ttl`, successes are remembered by core's [`CachedAuthenticator`] (an HMAC of
/// the account and password under a per-process key; the identity keeps the directory's
/// spelling of the account).
pub struct LdapAuthenticator {
    core: Arc<LdapCore>,
    cached: Option<CachedAuthenticator<Arc<LdapCore>>>,
}

impl fmt::Debug for LdapAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapAuthenticator")
            .field("core", &self.core)
            .field(
                "cached",
                &self.cached.as_ref().map(CachedAuthenticator::len),
            )
            .finish()
    }
}

impl LdapAuthenticator {
    /// Validates `config` and builds the authenticator. No connection is made here.
    /// Reads the service password (`bind_password_file` or `bind_password_env`) and the CA
    /// file.
    pub fn from_config(config: &LdapConfig) -> Result<Self, ConfigError> {
        let mut settings = Settings::try_from(config)?;
        let cache = settings.cache.take();
        let core = Arc::new(LdapCore::new(settings));
        let cached = match cache {
            Some(cache) => {
                Some(CachedAuthenticator::new(core.clone(), cache).map_err(|e| e.at("cache_ttl"))?)
            }
            None => None,
        };
        Ok(Self { core, cached })
    }

    /// Connection and cache counters.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.core
            .stats(self.cached.as_ref().map_or(0, CachedAuthenticator::len))
    }
}

#[async_trait]
impl Authenticator for LdapAuthenticator {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        match &self.cached {
            Some(c) => c.authenticate(login).await,
            None => self.core.authenticate(login).await,
        }
    }

    async fn ready(&self) -> Result<(), BackendError> {
        self.core.ready().await
    }

    /// Never cached: a search with the service connection every time.
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        self.core.lookup_account(account).await
    }
}

/// The uncached authenticator.
struct LdapCore {
    mode: Mode,
    connector: Arc<Connector>,
    service: Pool,
    binds: Pool,
    service_bind: Option<(String, Password)>,
    user_bind: UserBind,
    mapper: LabelMapper,
    attrs: Vec<String>,
    group_search: Option<GroupSearch>,
    account_attribute: Option<String>,
}

impl fmt::Debug for LdapCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapCore")
            .field("connector", &self.connector)
            .field("service", &self.service)
            .field("binds", &self.binds)
            .field("user_bind", &self.user_bind)
            .finish_non_exhaustive()
    }
}

/// The group filter for a user: `${dn}` and `${account}`, both RFC 4515-escaped.
fn group_filter(gs: &GroupSearch, dn: &str, account: &str) -> String {
    expand(
        &gs.filter,
        &[
            ("dn", &filter_value(dn)),
            ("account", &filter_value(account)),
        ],
    )
}

impl LdapCore {
    /// Builds the authenticator from a validated configuration (no connection is made yet).
    fn new(s: Settings) -> Self {
        let wait = s.connect_timeout + s.op_timeout;
        let connector = Arc::new(Connector::new(
            s.servers,
            s.tls,
            s.connect_timeout,
            s.op_timeout,
        ));
        Self {
            service: Pool::new(connector.clone(), s.service_bind.clone(), s.pool_size, wait),
            binds: Pool::new(connector.clone(), None, s.pool_size, wait),
            connector,
            mode: s.mode,
            service_bind: s.service_bind,
            user_bind: s.user_bind,
            mapper: s.mapper,
            attrs: s.attrs,
            group_search: s.group_search,
            account_attribute: s.account_attribute,
        }
    }

    fn stats(&self, cached: usize) -> PoolStats {
        PoolStats {
            open_connections: self.connector.open_connections(),
            opened_total: self.connector.opened_total(),
            pool_size: self.service.size(),
            idle_service: self.service.idle_count(),
            idle_bind: self.binds.idle_count(),
            cached,
        }
    }

    /// Finds the one entry for `account` (search+bind mode).
    async fn find_user(
        &self,
        base: &str,
        filter: &str,
        account: &str,
    ) -> Result<Option<Entry>, BackendError> {
        let filter = expand(filter, &[("account", &filter_value(account))]);
        let mut entries =
            search(&self.service, "user search", base, &filter, &self.attrs, 2).await?;
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.pop()),
            n => Err(BackendError::misconfigured(
                BACKEND,
                format!(
                    "the filter matched {n} or more entries for account {account:?}; it must match exactly one"
                ),
            )),
        }
    }

    /// Binds as `dn` with the user's password; `Ok(false)` for wrong credentials.
    async fn bind_user(&self, dn: &str, password: &Password) -> Result<bool, BackendError> {
        match self.user_bind {
            UserBind::Pooled => {
                let (conn, rc) = bind_on(&self.binds, dn, password).await?;
                conn.release();
                bind_outcome(rc)
            }
            UserBind::Rebind => {
                let (mut conn, rc) = bind_on(&self.service, dn, password).await?;
                // whatever happened, the connection is now the user's or anonymous:
                // it goes back only once it is the service account's again
                let (svc_dn, svc_pw) = self
                    .service_bind
                    .as_ref()
                    .map_or(("", ""), |(d, p)| (d.as_str(), p.expose()));
                match conn.op().simple_bind(svc_dn, svc_pw).await {
                    Ok(r) if r.rc == 0 => conn.release(),
                    _ => drop(conn),
                }
                bind_outcome(rc)
            }
            UserBind::Fresh => {
                // a new connection per login, but still within the bind pool's slots
                let mut conn = self.binds.checkout_new().await?;
                let r = conn.op().simple_bind(dn, password.expose()).await;
                let _ = conn.op().unbind().await;
                drop(conn);
                match r {
                    Ok(r) => bind_outcome(r.rc),
                    Err(e) => Err(transport_error("user bind", &e)),
                }
            }
        }
    }

    async fn search_bind(
        &self,
        base: &str,
        filter: &str,
        login: &LoginAttempt,
    ) -> Result<AuthnOutcome, BackendError> {
        let account = &login.account;
        let Some((dn, attrs)) = self.find_user(base, filter, account).await? else {
            tracing::debug!(account = %OneLine(account), "LDAP: no such user");
            return Ok(AuthnOutcome::NotApplicable);
        };
        if !self.bind_user(&dn, &login.password).await? {
            tracing::info!(account = %OneLine(account), dn = %OneLine(&dn), "LDAP: wrong password");
            return Ok(AuthnOutcome::Rejected);
        }
        Ok(AuthnOutcome::Authenticated(
            self.identity_of(&dn, &attrs, account).await?,
        ))
    }

    /// The identity of a found entry: labels from its attributes and (with `group_search`)
    /// its groups, read with the service connection; the directory's spelling of the account.
    async fn identity_of(
        &self,
        dn: &str,
        attrs: &labels::Attrs,
        account: &str,
    ) -> Result<Identity, BackendError> {
        let mut labels = self.mapper.labels(attrs);
        if let Some(gs) = &self.group_search {
            let filter = group_filter(gs, dn, account);
            let group_attrs = std::slice::from_ref(&gs.attribute);
            let groups = search(
                &self.service,
                "group search",
                &gs.base,
                &filter,
                group_attrs,
                0,
            )
            .await?;
            add_groups(&mut labels, gs, &groups);
        }
        let account = self.canonical_account(attrs, account);
        Ok(Identity::new(account).with_labels(labels))
    }

    /// The account name as the directory spells it. LDAP matches names case-insensitively
    /// and ignores surrounding spaces, so `ALICE` or ` alice` bind as `alice`; reporting the
    /// typed spelling would let it slip past ACL rules written for `alice`. The value of the
    /// account attribute (`account_attribute`, or the attribute of `(attr=${account})` in the
    /// filter) that equals the typed name under those rules wins; without one, the typed
    /// name is kept.
    fn canonical_account(&self, attrs: &labels::Attrs, typed: &str) -> String {
        let Some(attr) = &self.account_attribute else {
            return typed.to_owned();
        };
        let wanted = typed.trim().to_lowercase();
        attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(attr))
            .flat_map(|(_, values)| values.iter())
            .find(|v| v.trim().to_lowercase() == wanted)
            .cloned()
            .unwrap_or_else(|| typed.to_owned())
    }

    async fn direct_bind(
        &self,
        template: &str,
        base: &str,
        filter: &str,
        login: &LoginAttempt,
    ) -> Result<AuthnOutcome, BackendError> {
        let account = &login.account;
        let dn = expand(template, &[("account", &dn_value(account))]);
        let (mut conn, rc) = bind_on(&self.binds, &dn, &login.password).await?;
        if !bind_outcome(rc)? {
            conn.release();
            tracing::info!(account = %OneLine(account), "LDAP: direct bind refused");
            return Ok(AuthnOutcome::Rejected);
        }
        // read the user's entry as the user: by filter, or the bound entry itself
        let (search_base, scope, search_filter, limit) = if filter.is_empty() {
            (dn.clone(), Scope::Base, "(objectClass=*)".to_owned(), 1)
        } else {
            (
                base.to_owned(),
                Scope::Subtree,
                expand(filter, &[("account", &filter_value(account))]),
                2,
            )
        };
        let mut entries = search_checked(
            &mut conn,
            "user search",
            &search_base,
            scope,
            &search_filter,
            &self.attrs,
            limit,
        )
        .await?;
        let (entry_dn, attrs) = match entries.len() {
            0 => {
                conn.release();
                return Ok(AuthnOutcome::NotApplicable);
            }
            1 => entries.pop().unwrap_or_default(),
            n => {
                return Err(BackendError::misconfigured(
                    BACKEND,
                    format!("the filter matched {n} or more entries for account {account:?}"),
                ));
            }
        };
        let mut labels = self.mapper.labels(&attrs);
        if let Some(gs) = &self.group_search {
            let gfilter = group_filter(gs, &entry_dn, account);
            let groups = search_checked(
                &mut conn,
                "group search",
                &gs.base,
                Scope::Subtree,
                &gfilter,
                std::slice::from_ref(&gs.attribute),
                0,
            )
            .await?;
            add_groups(&mut labels, gs, &groups);
        }
        conn.release();
        let account = self.canonical_account(&attrs, account);
        Ok(AuthnOutcome::Authenticated(
            Identity::new(account).with_labels(labels),
        ))
    }
}

/// Binds a connection from `pool` as `dn` ([`Pool::retrying`]); returns the connection and
/// the bind's result code.
async fn bind_on<'a>(
    pool: &'a Pool,
    dn: &str,
    password: &Password,
) -> Result<(Pooled<'a>, u32), BackendError> {
    pool.retrying("user bind", |mut conn| async move {
        let rc = conn.op().simple_bind(dn, password.expose()).await;
        (conn, rc.map(|r| r.rc))
    })
    .await
}

#[async_trait]
impl Authenticator for LdapCore {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        if login.account.is_empty() {
            return Ok(AuthnOutcome::NotApplicable);
        }
        if login.password.is_empty() {
            // never send it: an empty password is an anonymous bind that may succeed
            return Ok(AuthnOutcome::Rejected);
        }
        match &self.mode {
            Mode::SearchBind { base, filter } => self.search_bind(base, filter, login).await,
            Mode::DirectBind {
                template,
                base,
                filter,
            } => self.direct_bind(template, base, filter, login).await,
        }
    }

    /// Search+bind mode searches for the account with the service connection (current
    /// labels and groups); direct-bind mode cannot look anyone up without a password.
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        let Mode::SearchBind { base, filter } = &self.mode else {
            return Ok(LookupOutcome::Unsupported);
        };
        if account.is_empty() {
            return Ok(LookupOutcome::NotFound);
        }
        match self.find_user(base, filter, account).await? {
            Some((dn, attrs)) => Ok(LookupOutcome::Found(
                self.identity_of(&dn, &attrs, account).await?,
            )),
            None => Ok(LookupOutcome::NotFound),
        }
    }

    async fn ready(&self) -> Result<(), BackendError> {
        let pool = match self.mode {
            Mode::SearchBind { .. } => &self.service,
            Mode::DirectBind { .. } => &self.binds,
        };
        search::ping(pool).await
    }
}

#[cfg(test)]
mod tests;
