//! The `oidc_token:` configuration section ([`OidcTokenConfig`]) and its validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_token_core::config::{deserialize_duration, read_secret_file};
use docker_token_core::{ConfigError, Password};
use serde::Deserialize;

use crate::JwtAlgorithm;

/// How the authenticator authenticates itself to the introspection endpoint (RFC 7662 §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the URL-encoded client id and secret (RFC 6749 §2.3.1). The default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Configuration of an [`OidcTokenAuthenticator`](crate::OidcTokenAuthenticator): IdP access
/// tokens used as docker passwords (`docker login -u alice -p <access token>`).
///
/// Unknown keys are rejected. Durations are seconds or strings with a unit (`"500ms"`,
/// `"30s"`, `"5m"`, `"1h"`; see [`deserialize_duration`]). Build one with
/// [`OidcTokenConfig::new`] and set the other fields, or deserialize it.
///
/// ```
/// use docker_token_oidc::OidcTokenConfig;
///
/// let config: OidcTokenConfig = serde_json::from_value(serde_json::json!({
///     "issuer": "https://idp.example.org",
///     "client_id": "registry",
///     "client_secret_file": "/run/secrets/registry-client-secret",
///     "user_claim": "preferred_username",
///     "label_claims": ["groups"],
///     "audiences": ["https://registry.example.org"],
///     "cache_ttl": "2m"
/// }))
/// .unwrap();
/// assert_eq!(config.cache_ttl.as_secs(), 120);
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcTokenConfig {
    /// The issuer URL; `<issuer>/.well-known/openid-configuration` is read for `jwks_uri` and
    /// `introspection_endpoint`, and it must equal the `iss` of the tokens. `https://`, or
    /// `http://` for loopback hosts only.
    pub issuer: String,
    /// The client id used to call the introspection endpoint.
    pub client_id: String,
    /// The client secret. Prefer `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<Password>,
    /// A file holding the client secret (trailing whitespace is ignored).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Overrides the discovered introspection endpoint.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// Overrides the discovered JWKS URL.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim that must equal the docker user name (`preferred_username`, `email`, `sub`, …).
    pub user_claim: String,
    /// Claims tried, in order, when `user_claim` is absent from a token (e.g. `[username, sub]`).
    /// Empty by default: only `user_claim` counts.
    #[serde(default)]
    pub user_claim_fallbacks: Vec<String>,
    /// Claims copied into the identity's labels under the same name; a string claim gives one
    /// value, an array of strings gives several. docker_auth spells it `labels_claims`.
    #[serde(default, alias = "labels_claims")]
    pub label_claims: Vec<String>,
    /// Accepted `aud` values. JWT access tokens are verified locally (JWKS) only when this is
    /// set; an introspection answer that carries an `aud` must then name one of them, too.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// How to authenticate to the introspection endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// JWS algorithms accepted for JWT access tokens (asymmetric only; default: all of
    /// [`JwtAlgorithm`]).
    #[serde(default = "JwtAlgorithm::defaults")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Timeout of each HTTP request to the IdP (default 5 s).
    #[serde(default = "secs::<5>", deserialize_with = "deserialize_duration")]
    pub http_timeout: Duration,
    /// How long a successful check is reused, at most (never beyond the token's `exp`). A
    /// revoked token keeps working for up to this long. Default 60 s; 0 disables it.
    #[serde(default = "secs::<60>", deserialize_with = "deserialize_duration")]
    pub cache_ttl: Duration,
    /// How long a failed check is reused (default 10 s; 0 disables it).
    #[serde(default = "secs::<10>", deserialize_with = "deserialize_duration")]
    pub negative_cache_ttl: Duration,
    /// The most cached results kept (default 10 000).
    #[serde(default = "default_max_cache_entries")]
    pub max_cache_entries: usize,
    /// Allowed clock difference for `exp`/`nbf` of JWT access tokens (default 30 s).
    #[serde(default = "secs::<30>", deserialize_with = "deserialize_duration")]
    pub clock_skew: Duration,
    /// The least time between two JWKS downloads caused by an unknown `kid` (default 30 s).
    #[serde(default = "secs::<30>", deserialize_with = "deserialize_duration")]
    pub jwks_min_refresh_interval: Duration,
    /// How long a downloaded JWKS is used before it is fetched again (default 1 h).
    #[serde(default = "secs::<3600>", deserialize_with = "deserialize_duration")]
    pub jwks_max_age: Duration,
    /// Passwords shorter than this are not sent to the IdP (they cannot be its tokens), so
    /// that short static passwords never leave the server. Default 16.
    #[serde(default = "default_min_token_length")]
    pub min_token_length: usize,
}

fn default_max_cache_entries() -> usize {
    10_000
}
fn default_min_token_length() -> usize {
    16
}

impl OidcTokenConfig {
    /// A configuration with the given issuer, client and user claim, and defaults otherwise.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<Password>,
        user_claim: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            client_secret_file: None,
            introspection_endpoint: None,
            jwks_uri: None,
            user_claim: user_claim.into(),
            user_claim_fallbacks: Vec::new(),
            label_claims: Vec::new(),
            audiences: Vec::new(),
            client_auth: ClientAuth::default(),
            algorithms: JwtAlgorithm::defaults(),
            http_timeout: secs::<5>(),
            cache_ttl: secs::<60>(),
            negative_cache_ttl: secs::<10>(),
            max_cache_entries: default_max_cache_entries(),
            clock_skew: secs::<30>(),
            jwks_min_refresh_interval: secs::<30>(),
            jwks_max_age: secs::<3600>(),
            min_token_length: default_min_token_length(),
        }
    }

    /// Checks what serde cannot. Errors name the key (`oidc_token.issuer: …`), never a secret.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let keys = self.client_keys();
        keys.validate(self.audiences.is_empty().then_some(
            "a client secret (client_secret or client_secret_file) is required to call the \
             introspection endpoint; without one, set `audiences` to accept JWT access tokens \
             only",
        ))?;
        for (key, url) in [
            ("introspection_endpoint", &self.introspection_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ] {
            if let Some(u) = url {
                check_url(u, false).map_err(|e| keys.error(key, e))?;
            }
        }
        if self.algorithms.is_empty() {
            return Err(keys.error("algorithms", ConfigError::new("must not be empty")));
        }
        keys.positive([("http_timeout", self.http_timeout)])
    }

    fn client_keys(&self) -> ClientKeys<'_> {
        ClientKeys {
            section: "oidc_token",
            issuer: &self.issuer,
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref(),
            client_secret_file: self.client_secret_file.as_deref(),
            user_claim: &self.user_claim,
        }
    }

    /// The client secret from `client_secret` or `client_secret_file`.
    pub(crate) fn load_secret(&self) -> Result<Option<Password>, ConfigError> {
        self.client_keys().load_secret()
    }
}

/// The default of a duration key, `N` seconds: `#[serde(default = "secs::<N>")]`.
pub(crate) const fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

/// The keys both sections (`oidc_token`, `oidc_auth`) have for our client at the IdP, and
/// the checks they share. Errors name `<section>.<key>`, never a secret.
pub(crate) struct ClientKeys<'a> {
    pub(crate) section: &'static str,
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: Option<&'a Password>,
    pub(crate) client_secret_file: Option<&'a Path>,
    pub(crate) user_claim: &'a str,
}

impl ClientKeys<'_> {
    /// `e`, located at `<section>.<key>`.
    pub(crate) fn error(&self, key: &str, e: ConfigError) -> ConfigError {
        e.at(key.to_owned()).at(self.section)
    }

    /// The issuer is an IdP URL, `client_id` and `user_claim` are not blank, and at most one
    /// of `client_secret` and `client_secret_file` is set. With `missing_secret`, one of them
    /// must be set, and that is the message when neither is.
    pub(crate) fn validate(&self, missing_secret: Option<&str>) -> Result<(), ConfigError> {
        check_url(self.issuer, true).map_err(|e| self.error("issuer", e))?;
        if self.client_id.trim().is_empty() {
            return Err(self.error("client_id", ConfigError::new("must not be empty")));
        }
        match (self.client_secret, self.client_secret_file, missing_secret) {
            (Some(_), Some(_), _) => {
                return Err(self.error(
                    "client_secret",
                    ConfigError::new("set client_secret or client_secret_file, not both"),
                ));
            }
            (None, None, Some(message)) => {
                return Err(self.error("client_secret", ConfigError::new(message)));
            }
            _ => {}
        }
        if self.user_claim.trim().is_empty() {
            return Err(self.error("user_claim", ConfigError::new("must not be empty")));
        }
        Ok(())
    }

    /// Each of `durations` (key, value) is positive.
    pub(crate) fn positive<const N: usize>(
        &self,
        durations: [(&str, Duration); N],
    ) -> Result<(), ConfigError> {
        match durations.into_iter().find(|(_, d)| d.is_zero()) {
            Some((key, _)) => Err(self.error(key, ConfigError::new("must be positive"))),
            None => Ok(()),
        }
    }

    /// The client secret: `client_secret`, or the content of `client_secret_file`, or none.
    pub(crate) fn load_secret(&self) -> Result<Option<Password>, ConfigError> {
        match (self.client_secret, self.client_secret_file) {
            (Some(s), _) => Ok(Some(s.clone())),
            (None, Some(path)) => read_secret_file(path)
                .map(Some)
                .map_err(|e| self.error("client_secret_file", e)),
            (None, None) => Ok(None),
        }
    }
}

/// Whether `host` is a loopback name or address (plain `http://` is allowed only there).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses an IdP URL: `https`, or `http` to a loopback host; no fragment (and no query for
/// the issuer).
pub(crate) fn check_url(raw: &str, is_issuer: bool) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| ConfigError::new(format!("{raw:?} is not a URL")).with_source(e))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(ConfigError::new(format!(
                "{raw:?}: plain http is allowed for loopback hosts only; use https"
            )));
        }
        other => {
            return Err(ConfigError::new(format!(
                "{raw:?}: unsupported scheme {other:?}"
            )));
        }
    }
    if host.is_empty() {
        return Err(ConfigError::new(format!("{raw:?} has no host")));
    }
    if url.fragment().is_some() || (is_issuer && url.query().is_some()) {
        return Err(ConfigError::new(format!(
            "{raw:?} must not have a {}",
            if url.fragment().is_some() {
                "fragment"
            } else {
                "query"
            }
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<OidcTokenConfig, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://idp.example.org",
            "client_id": "registry",
            "client_secret": "s3cret-value",
            "user_claim": "sub"
        })
    }

    #[test]
    fn defaults_and_docker_auth_spelling() {
        let mut v = minimal();
        v["labels_claims"] = serde_json::json!(["groups"]);
        let c = parse(v).unwrap();
        c.validate().unwrap();
        assert_eq!(c.label_claims, ["groups"]);
        assert_eq!(c.client_auth, ClientAuth::ClientSecretBasic);
        assert_eq!(c.http_timeout, Duration::from_secs(5));
        assert!(c.algorithms.contains(&JwtAlgorithm::RS256));
        assert_eq!(c.algorithms, JwtAlgorithm::defaults());
        // shared-secret algorithms cannot be verified with a JWKS: not even parsed
        let mut v = minimal();
        v["algorithms"] = serde_json::json!(["HS256"]);
        assert!(
            parse(v)
                .unwrap_err()
                .to_string()
                .contains("unknown variant")
        );
    }

    #[test]
    fn new_has_the_defaults_of_deserialization() {
        let built = OidcTokenConfig::new(
            "https://idp.example.org",
            "registry",
            Some(Password::new("s3cret-value")),
            "sub",
        );
        let parsed = parse(minimal()).unwrap();
        assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let mut v = minimal();
        v["user_claims"] = serde_json::json!("email");
        let err = parse(v).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `user_claims`"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_in_debug() {
        let c = parse(minimal()).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret-value"), "{d}");
        assert!(d.contains("client_secret: Some(Password(***))"), "{d}");
    }

    #[test]
    fn validation_errors_name_the_key() {
        let cases = [
            (
                "issuer",
                serde_json::json!("http://idp.example.org"),
                "oidc_token.issuer",
            ),
            (
                "issuer",
                serde_json::json!("https://idp/?x=1"),
                "oidc_token.issuer",
            ),
            ("client_id", serde_json::json!(" "), "oidc_token.client_id"),
            (
                "client_secret_file",
                serde_json::json!("/x"),
                "oidc_token.client_secret",
            ),
            ("algorithms", serde_json::json!([]), "oidc_token.algorithms"),
            (
                "http_timeout",
                serde_json::json!(0),
                "oidc_token.http_timeout",
            ),
            (
                "introspection_endpoint",
                serde_json::json!("ftp://x"),
                "oidc_token.introspection_endpoint",
            ),
        ];
        for (key, value, location) in cases {
            let mut v = minimal();
            v[key] = value.clone();
            let err = parse(v).unwrap().validate().unwrap_err();
            assert_eq!(err.location(), location, "{key}={value}: {err}");
            assert!(!err.to_string().contains("s3cret-value"));
        }
    }

    #[test]
    fn loopback_http_is_allowed() {
        for issuer in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            let mut v = minimal();
            v["issuer"] = serde_json::json!(issuer);
            parse(v).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn secret_is_required_unless_jwt_only() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("client_secret");
        assert!(parse(v.clone()).unwrap().validate().is_err());
        v["audiences"] = serde_json::json!(["urn:registry"]);
        parse(v).unwrap().validate().unwrap();
    }

    #[test]
    fn secret_file_is_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("dt-oidc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("client_secret");
        v["client_secret_file"] = serde_json::json!(file);
        let c = parse(v.clone()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.load_secret().unwrap().unwrap().expose(), "from-file");
        std::fs::write(&file, "\n").unwrap();
        assert!(
            c.load_secret()
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        v["client_secret_file"] = serde_json::json!(dir.join("missing"));
        let err = parse(v).unwrap().load_secret().unwrap_err();
        assert_eq!(err.location(), "oidc_token.client_secret_file");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn durations() {
        let mut v = minimal();
        v["cache_ttl"] = serde_json::json!("1500ms");
        v["http_timeout"] = serde_json::json!(30);
        v["jwks_max_age"] = serde_json::json!("2h");
        let c = parse(v).unwrap();
        assert_eq!(c.cache_ttl, Duration::from_millis(1500));
        assert_eq!(c.http_timeout, Duration::from_secs(30));
        assert_eq!(c.jwks_max_age, Duration::from_secs(7200));
        let mut v = minimal();
        v["cache_ttl"] = serde_json::json!("5x");
        assert!(
            parse(v)
                .unwrap_err()
                .to_string()
                .contains("invalid duration")
        );
    }
}
