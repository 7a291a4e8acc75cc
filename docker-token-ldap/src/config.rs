//! The `ldap_auth` configuration: docker_auth's keys plus pooling, failover, timeouts, a
//! cache and group search.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use docker_token_core::config::deserialize_duration;
use docker_token_core::{ConfigError, Password};
use serde::Deserialize;

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
