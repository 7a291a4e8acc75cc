//! The `ldap_auth` configuration: docker_auth's keys plus pooling, failover, timeouts, a
//! cache and group search.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use docker_token_core::config::deserialize_duration;
use docker_token_core::{CacheConfig, ConfigError, Password};
use serde::Deserialize;

use crate::escape::{Dn, expand};
use crate::labels::LabelMapper;

/// How to secure the connection (docker_auth's `tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain LDAP (docker_auth also accepts `""`).
    #[serde(alias = "")]
    None,
    /// Plain LDAP upgraded with the StartTLS extended operation before anything else is sent.
    Starttls,
    /// TLS from the first byte (LDAPS). The default for port 636.
    Always,
}

/// How the user's own bind is performed (see the crate docs for the measurement behind the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserBind {
    /// A second bounded pool of connections used only for user binds; each bind replaces the
    /// previous one's identity, and nothing else is ever sent on them. The default.
    #[default]
    Pooled,
    /// Bind as the user on a service connection, then bind it back as the service account
    /// before it returns to the pool (a connection that cannot be re-bound is discarded).
    Rebind,
    /// A fresh connection per user bind, closed afterwards (docker_auth's behaviour).
    Fresh,
}

/// One attribute → label mapping (docker_auth's `labels.<name>`). Build one with
/// [`LabelMapping::new`] and set the other fields, or deserialize it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LabelMapping {
    /// The attribute to read from the user's entry (`memberOf`, `mail`, …).
    pub attribute: String,
    /// Take only the `CN` of DN values (`cn=dev,ou=groups,…` → `dev`); values that are not
    /// DNs with a CN are dropped.
    #[serde(default)]
    pub parse_cn: bool,
    /// Lower-case the values.
    #[serde(default)]
    pub lower_case: bool,
    /// Keep only DN values inside this subtree (compared after DN normalisation). Ours.
    #[serde(default)]
    pub under: Option<String>,
}

/// A search for the user's groups, for servers without `memberOf` (ours). Build one with
/// [`GroupSearch::new`] and set the other fields, or deserialize it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GroupSearch {
    /// Where to search (subtree).
    pub base: String,
    /// The filter; `${dn}` is the user's DN and `${account}` the login name, both
    /// RFC 4515-escaped. E.g. `(&(objectClass=groupOfNames)(member=${dn}))` or
    /// `(&(objectClass=posixGroup)(memberUid=${account}))`.
    pub filter: String,
    /// The group attribute that becomes the label value (default `cn`).
    #[serde(default = "default_group_attribute")]
    pub attribute: String,
    /// The label the values are added to (default `groups`); merged with attribute labels.
    #[serde(default = "default_group_label")]
    pub label: String,
    /// Lower-case the values.
    #[serde(default)]
    pub lower_case: bool,
}

impl LabelMapping {
    /// A mapping of `attribute`, values taken as they are.
    #[must_use]
    pub fn new(attribute: impl Into<String>) -> Self {
        Self {
            attribute: attribute.into(),
            ..Self::default()
        }
    }
}

impl GroupSearch {
    /// A search under `base` with `filter`, the values of `cn` going to the label `groups`.
    #[must_use]
    pub fn new(base: impl Into<String>, filter: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            filter: filter.into(),
            attribute: default_group_attribute(),
            label: default_group_label(),
            lower_case: false,
        }
    }
}

fn default_group_attribute() -> String {
    "cn".to_owned()
}
fn default_group_label() -> String {
    "groups".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_pool_size() -> usize {
    8
}
fn default_cache_size() -> usize {
    1024
}

/// docker_auth's `ldap_auth` section, plus our additions. Unknown keys are an error.
///
/// Either `addr` (docker_auth: `host:port`, with `tls`) or `urls` (ours: `ldap://` /
/// `ldaps://` URLs tried in order, with failover) names the servers.
/// The config holds no secret (only where to read the bind password), so `Debug` is derived.
/// Durations are seconds (`5`, `0.5`, as docker_auth) or strings such as `"500ms"`
/// ([`deserialize_duration`]). Build one from [`Default`] and set the fields, or deserialize it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LdapConfig {
    /// `host:port` of the server (docker_auth).
    #[serde(default)]
    pub addr: Option<String>,
    /// Server URLs in order of preference (`ldap://h:389`, `ldaps://h:636`); ours.
    #[serde(default)]
    pub urls: Vec<String>,
    /// `none` (or `""`), `starttls` or `always`. Defaults to `always` for port 636, else `none`.
    /// With `urls`, `ldaps://` means `always`, and `starttls` upgrades `ldap://` URLs.
    #[serde(default)]
    pub tls: Option<TlsMode>,
    /// Accept any server certificate. Logged as a warning; never use it in production.
    #[serde(default)]
    pub insecure_tls_skip_verify: bool,
    /// A PEM file of CA certificates to trust instead of the system store.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// The service account's DN (search+bind), or the user DN template containing
    /// `${account}` when `initial_bind_as_user` is set.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file holding the service account's password (trimmed).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// The name of an environment variable holding the service account's password; ours.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// The search base for users.
    #[serde(default)]
    pub base: String,
    /// The user filter, with `${account}` (RFC 4515-escaped), e.g. `(uid=${account})`.
    #[serde(default)]
    pub filter: String,
    /// Labels from attributes of the user's entry.
    #[serde(default)]
    pub labels: BTreeMap<String, LabelMapping>,
    /// Bind directly as `bind_dn` with `${account}` (RFC 4514-escaped) and the user's
    /// password, without a service account.
    #[serde(default)]
    pub initial_bind_as_user: bool,
    /// Time to establish a connection (TCP + TLS + service bind). Default 5 s, at most 1 h.
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub connect_timeout: Duration,
    /// Time for one LDAP operation. Default 5 s, at most 1 h.
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub operation_timeout: Duration,
    /// The most connections held per pool (service and user-bind). Default 8.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How user binds are performed. Default `pooled`.
    #[serde(default)]
    pub user_bind: UserBind,
    /// How long a successful authentication is remembered (0, the default, disables the
    /// cache; at most 1 h). Uses core's `CachedAuthenticator`.
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub cache_ttl: Duration,
    /// The most cached authentications. Default 1024.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Optional group search.
    #[serde(default)]
    pub group_search: Option<GroupSearch>,
    /// The attribute holding the account name as the directory spells it (ours). LDAP
    /// matches names case-insensitively, so `ALICE` binds as `alice`; the identity then uses
    /// this attribute's matching value so ACL rules written for `alice` apply. Defaults to the
    /// attribute of the filter's `(attr=${account})` term.
    #[serde(default)]
    pub account_attribute: Option<String>,
}

/// A server to connect to, resolved from `addr`/`urls` and `tls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Server {
    /// The URL handed to ldap3 (`ldap://` or `ldaps://`).
    pub(crate) url: String,
    /// Whether to run StartTLS on a plain connection.
    pub(crate) starttls: bool,
    /// Whether any TLS is used.
    pub(crate) tls: bool,
}

fn seconds(value: Duration, key: &str) -> Result<Duration, ConfigError> {
    if value.is_zero() || value > Duration::from_secs(3600) {
        return Err(ConfigError::new("must be more than 0 and at most 3600 seconds").at(key));
    }
    Ok(value)
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            addr: None,
            urls: Vec::new(),
            tls: None,
            insecure_tls_skip_verify: false,
            ca_certificate: None,
            bind_dn: None,
            bind_password_file: None,
            bind_password_env: None,
            base: String::new(),
            filter: String::new(),
            labels: BTreeMap::new(),
            initial_bind_as_user: false,
            connect_timeout: default_timeout(),
            operation_timeout: default_timeout(),
            pool_size: default_pool_size(),
            user_bind: UserBind::default(),
            cache_ttl: Duration::ZERO,
            cache_size: default_cache_size(),
            group_search: None,
            account_attribute: None,
        }
    }
}

impl LdapConfig {
    pub(crate) fn connect_timeout(&self) -> Result<Duration, ConfigError> {
        seconds(self.connect_timeout, "connect_timeout")
    }

    pub(crate) fn operation_timeout(&self) -> Result<Duration, ConfigError> {
        seconds(self.operation_timeout, "operation_timeout")
    }

    pub(crate) fn cache_ttl(&self) -> Result<Option<Duration>, ConfigError> {
        if self.cache_ttl.is_zero() {
            return Ok(None);
        }
        seconds(self.cache_ttl, "cache_ttl").map(Some)
    }

    /// The servers in order of preference.
    pub(crate) fn servers(&self) -> Result<Vec<Server>, ConfigError> {
        let mut out = Vec::new();
        match (&self.addr, self.urls.is_empty()) {
            (Some(_), false) => {
                return Err(ConfigError::new("set either addr or urls, not both").at("urls"));
            }
            (None, true) => {
                return Err(ConfigError::new("no LDAP server: set addr or urls").at("addr"));
            }
            (Some(addr), true) => {
                let port = addr.rsplit_once(':').map(|(_, p)| p);
                let Some(port) = port.filter(|p| p.parse::<u16>().is_ok()) else {
                    return Err(ConfigError::new(format!("{addr:?} is not host:port")).at("addr"));
                };
                let mode = self.tls.unwrap_or(if port == "636" {
                    TlsMode::Always
                } else {
                    TlsMode::None
                });
                let scheme = if mode == TlsMode::Always {
                    "ldaps"
                } else {
                    "ldap"
                };
                out.push(Server {
                    url: format!("{scheme}://{addr}"),
                    starttls: mode == TlsMode::Starttls,
                    tls: mode != TlsMode::None,
                });
            }
            (None, false) => {
                for (i, url) in self.urls.iter().enumerate() {
                    let at = || format!("urls[{i}]");
                    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
                        ConfigError::new(format!("{url:?} is not an LDAP URL")).at(at())
                    })?;
                    let host = rest.trim_end_matches('/');
                    if host.is_empty() || host.contains(['/', '?', '@']) {
                        return Err(ConfigError::new(format!(
                            "{url:?}: expected ldap[s]://host[:port]"
                        ))
                        .at(at()));
                    }
                    let server = match (scheme.to_ascii_lowercase().as_str(), self.tls) {
                        ("ldaps", None | Some(TlsMode::Always)) => Server {
                            url: format!("ldaps://{host}"),
                            starttls: false,
                            tls: true,
                        },
                        ("ldap", None | Some(TlsMode::None)) => Server {
                            url: format!("ldap://{host}"),
                            starttls: false,
                            tls: false,
                        },
                        ("ldap", Some(TlsMode::Starttls)) => Server {
                            url: format!("ldap://{host}"),
                            starttls: true,
                            tls: true,
                        },
                        ("ldap" | "ldaps", Some(mode)) => {
                            return Err(ConfigError::new(format!(
                                "{url:?} contradicts tls: {mode:?}"
                            ))
                            .at(at()));
                        }
                        _ => {
                            return Err(ConfigError::new(format!(
                                "{url:?}: the scheme must be ldap or ldaps"
                            ))
                            .at(at()));
                        }
                    };
                    out.push(server);
                }
            }
        }
        Ok(out)
    }

    /// The service account's password, from `bind_password_file` (trimmed) or `bind_password_env`.
    pub(crate) fn bind_password(&self) -> Result<Option<Password>, ConfigError> {
        match (&self.bind_password_file, &self.bind_password_env) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "set either bind_password_file or bind_password_env, not both",
            )
            .at("bind_password_env")),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!("cannot read {}", path.display()))
                        .with_source(e)
                        .at("bind_password_file")
                })?;
                Ok(Some(Password::new(text.trim())))
            }
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) => Ok(Some(Password::new(v.trim()))),
                Err(_) => Err(ConfigError::new(format!(
                    "the environment variable {var:?} is not set (or not UTF-8)"
                ))
                .at("bind_password_env")),
            },
            (None, None) => Ok(None),
        }
    }
}

/// How a login is checked.
#[derive(Debug)]
pub(crate) enum Mode {
    SearchBind {
        base: String,
        filter: String,
    },
    DirectBind {
        template: String,
        base: String,
        filter: String,
    },
}

/// An [`LdapConfig`] that passed validation, with its files read: everything the
/// authenticator is built from.
pub(crate) struct Settings {
    pub(crate) mode: Mode,
    pub(crate) servers: Vec<Server>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) pool_size: usize,
    /// The service account (search+bind mode with a `bind_dn`).
    pub(crate) service_bind: Option<(String, Password)>,
    pub(crate) user_bind: UserBind,
    pub(crate) mapper: LabelMapper,
    /// The attributes to read from the user's entry.
    pub(crate) attrs: Vec<String>,
    pub(crate) group_search: Option<GroupSearch>,
    pub(crate) account_attribute: Option<String>,
    /// The success cache, when `cache_ttl` is set.
    pub(crate) cache: Option<CacheConfig>,
}

impl TryFrom<&LdapConfig> for Settings {
    type Error = ConfigError;

    /// Validates `config`; reads the service password (`bind_password_file` or
    /// `bind_password_env`) and the CA file. Errors name the key.
    fn try_from(config: &LdapConfig) -> Result<Self, ConfigError> {
        let servers = config.servers()?;
        let connect_timeout = config.connect_timeout()?;
        let op_timeout = config.operation_timeout()?;
        if !(1..=1024).contains(&config.pool_size) {
            return Err(ConfigError::new("must be between 1 and 1024").at("pool_size"));
        }
        let password = config.bind_password()?;
        let mode = config.mode(password.is_some())?;
        if let Some(gs) = &config.group_search {
            check_dn(&gs.base, "group_search.base")?;
            check_filter(&gs.filter, "group_search.filter", &PLACEHOLDERS)?;
            if gs.label.is_empty() {
                return Err(ConfigError::new("must not be empty").at("group_search.label"));
            }
        }
        let mapper = LabelMapper::new(&config.labels)?;
        let mut attrs = mapper.attributes();
        let account_attribute = config
            .account_attribute
            .clone()
            .or_else(|| account_attribute_of(&config.filter));
        if let Some(a) = &account_attribute
            && !attrs.iter().any(|x| x.eq_ignore_ascii_case(a))
        {
            attrs.push(a.clone());
        }
        if attrs.is_empty() {
            attrs.push("1.1".to_owned()); // RFC 4511: no attributes
        }
        let tls = if servers.iter().any(|s| s.tls) {
            Some(crate::tls::client_config(
                config.ca_certificate.as_deref(),
                config.insecure_tls_skip_verify,
            )?)
        } else {
            None
        };
        let service_bind = match (&mode, &config.bind_dn, password) {
            (Mode::SearchBind { .. }, Some(dn), Some(pw)) => Some((dn.clone(), pw)),
            _ => None,
        };
        let cache = config.cache_ttl()?.map(|ttl| {
            let mut cache = CacheConfig::default();
            cache.ttl = ttl;
            cache.max_entries = config.cache_size;
            cache
        });
        Ok(Self {
            mode,
            servers,
            tls,
            connect_timeout,
            op_timeout,
            pool_size: config.pool_size,
            service_bind,
            user_bind: config.user_bind,
            mapper,
            attrs,
            group_search: config.group_search.clone(),
            account_attribute,
            cache,
        })
    }
}

/// Example values of the placeholders, to check templates and filters at load time.
const PLACEHOLDERS: [(&str, &str); 2] = [("account", "x"), ("dn", "cn=x")];

impl LdapConfig {
    /// The login mode, checked: direct bind (`initial_bind_as_user`) or search+bind.
    fn mode(&self, has_password: bool) -> Result<Mode, ConfigError> {
        if self.initial_bind_as_user {
            let Some(template) = self.bind_dn.clone().filter(|t| t.contains("${account}")) else {
                return Err(ConfigError::new(
                    "with initial_bind_as_user, bind_dn must contain ${account}",
                )
                .at("bind_dn"));
            };
            if has_password {
                return Err(ConfigError::new(
                    "initial_bind_as_user binds as the user: remove the bind password",
                )
                .at("bind_password_file"));
            }
            if self.user_bind == UserBind::Rebind {
                return Err(ConfigError::new(
                    "rebind needs a service account, which direct bind has not",
                )
                .at("user_bind"));
            }
            check_dn(&expand(&template, &PLACEHOLDERS[..1]), "bind_dn")?;
            if !self.filter.is_empty() {
                check_filter(&self.filter, "filter", &PLACEHOLDERS[..1])?;
                check_dn(&self.base, "base")?;
            }
            return Ok(Mode::DirectBind {
                template,
                base: self.base.clone(),
                filter: self.filter.clone(),
            });
        }
        if self.base.trim().is_empty() {
            return Err(ConfigError::new("the user search base must be set").at("base"));
        }
        check_dn(&self.base, "base")?;
        if !self.filter.contains("${account}") {
            return Err(ConfigError::new("the filter must contain ${account}").at("filter"));
        }
        check_filter(&self.filter, "filter", &PLACEHOLDERS[..1])?;
        match (&self.bind_dn, has_password) {
            (Some(dn), false) => {
                return Err(ConfigError::new(format!(
                    "bind_dn {dn:?} needs bind_password_file or bind_password_env"
                ))
                .at("bind_dn"));
            }
            (Some(dn), true) => check_dn(dn, "bind_dn")?,
            (None, true) => {
                return Err(ConfigError::new("a bind password without bind_dn").at("bind_dn"));
            }
            (None, false) => {}
        }
        Ok(Mode::SearchBind {
            base: self.base.clone(),
            filter: self.filter.clone(),
        })
    }
}

/// The attribute compared with the login name in a filter such as
/// `(&(objectClass=person)(uid=${account}))`: the one `(attr=${account})` term, if exactly one.
pub(crate) fn account_attribute_of(filter: &str) -> Option<String> {
    let mut found = None;
    for (i, _) in filter.match_indices("=${account})") {
        let start = filter[..i].rfind('(')? + 1;
        let attr = &filter[start..i];
        if attr.is_empty()
            || !attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
        {
            return None;
        }
        if found.replace(attr.to_owned()).is_some() {
            return None;
        }
    }
    found
}

fn check_filter(filter: &str, at: &str, vars: &[(&str, &str)]) -> Result<(), ConfigError> {
    let example = expand(filter, vars);
    if example.contains("${") {
        return Err(
            ConfigError::new(format!("{filter:?} has an unknown ${{…}} placeholder"))
                .at(at.to_owned()),
        );
    }
    ldap3::parse_filter(&example).map(|_| ()).map_err(|()| {
        ConfigError::new(format!("{filter:?} is not a valid LDAP filter")).at(at.to_owned())
    })
}

fn check_dn(dn: &str, at: &str) -> Result<(), ConfigError> {
    Dn::parse(dn)
        .map(|_| ())
        .map_err(|e| ConfigError::new(e.to_string()).at(at.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> LdapConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn docker_auth_keys_are_accepted_and_unknown_keys_are_not() {
        let c = cfg(
            r#"{"addr":"ldap.example.com:636","tls":"","insecure_tls_skip_verify":false,
            "ca_certificate":"/ca.pem","bind_dn":"cn=ro","bind_password_file":"/pw","base":"o=x",
            "filter":"(uid=${account})","labels":{"group":{"attribute":"memberOf","parse_cn":true,"lower_case":true}},
            "initial_bind_as_user":false}"#,
        );
        assert_eq!(c.tls, Some(TlsMode::None));
        assert!(c.labels["group"].parse_cn);
        assert_eq!(c.pool_size, 8);
        assert!(serde_json::from_str::<LdapConfig>(r#"{"addr":"h:1","bogus":1}"#).is_err());
        assert!(serde_json::from_str::<LdapConfig>(r#"{"addr":"h:1","tls":"sometimes"}"#).is_err());
    }

    #[test]
    fn tls_defaults_follow_the_port_and_scheme() {
        let s = cfg(r#"{"addr":"h:636"}"#).servers().unwrap();
        assert_eq!(s[0].url, "ldaps://h:636");
        let s = cfg(r#"{"addr":"h:389"}"#).servers().unwrap();
        assert_eq!((s[0].url.as_str(), s[0].tls), ("ldap://h:389", false));
        let s = cfg(r#"{"addr":"h:389","tls":"starttls"}"#)
            .servers()
            .unwrap();
        assert!(s[0].starttls);
        let s = cfg(r#"{"urls":["ldap://a:1/","ldaps://b:2"],"tls":null}"#)
            .servers()
            .unwrap();
        assert_eq!(s.len(), 2);
        assert!(!s[0].tls && s[1].tls);
        assert!(
            cfg(r#"{"urls":["ldaps://b:2"],"tls":"starttls"}"#)
                .servers()
                .is_err()
        );
        assert!(cfg(r#"{"urls":["http://b:2"]}"#).servers().is_err());
        assert!(cfg(r#"{"addr":"h"}"#).servers().is_err());
        assert!(
            cfg(r#"{"addr":"h:1","urls":["ldap://h:1"]}"#)
                .servers()
                .is_err()
        );
        assert!(cfg("{}").servers().is_err());
    }

    #[test]
    fn timeouts_are_validated() {
        let mut c = cfg(r#"{"addr":"h:1","connect_timeout":0.25}"#);
        assert_eq!(c.connect_timeout().unwrap(), Duration::from_millis(250));
        c.operation_timeout = Duration::ZERO;
        assert!(c.operation_timeout().is_err());
        c.cache_ttl = Duration::from_secs(7200);
        assert!(c.cache_ttl().is_err());
        c.cache_ttl = Duration::ZERO;
        assert_eq!(c.cache_ttl().unwrap(), None);
        let c = cfg(r#"{"addr":"h:1","operation_timeout":"1500ms","cache_ttl":"2m"}"#);
        assert_eq!(c.operation_timeout().unwrap(), Duration::from_millis(1500));
        assert_eq!(c.cache_ttl().unwrap(), Some(Duration::from_secs(120)));
        assert!(serde_json::from_str::<LdapConfig>(r#"{"connect_timeout":-1}"#).is_err());
    }

    #[test]
    fn bind_password_from_env_and_file_is_trimmed_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("dt-ldap-pw-{}", std::process::id()));
        std::fs::write(&dir, "  s3cret-from-file \n").unwrap();
        let mut c = cfg(r#"{"addr":"h:1"}"#);
        c.bind_password_file = Some(dir.clone());
        assert_eq!(
            c.bind_password().unwrap().unwrap().expose(),
            "s3cret-from-file"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        c.bind_password_env = Some("DT_LDAP_TEST_SURELY_UNSET".to_owned());
        assert!(c.bind_password().is_err());
        c.bind_password_file = None;
        let e = c.bind_password().unwrap_err();
        assert!(e.to_string().contains("DT_LDAP_TEST_SURELY_UNSET"));
        let _ = std::fs::remove_file(dir);
    }
}
