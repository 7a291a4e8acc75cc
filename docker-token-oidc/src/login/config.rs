//! The `oidc_auth:` configuration section ([`OidcLoginConfig`]): docker_auth's keys plus ours.

use std::path::PathBuf;
use std::time::Duration;

use docker_token_core::config::{deserialize_duration, read_secret_file};
use docker_token_core::{ConfigError, Password};
use serde::Deserialize;

use crate::config::{ClientKeys, check_url, secs};

/// Configuration of the browser login ([`OidcLogin`](crate::OidcLogin)): docker_auth's
/// `oidc_auth` section.
///
/// Where the generated passwords are kept is not configured here: [`OidcLogin::new`]
/// takes any [`CredentialStore`](docker_token_core::CredentialStore) (the server reads
/// docker_auth's `*_token_db` keys for that). Durations are seconds or strings such as
/// `"30d"` ([`deserialize_duration`]). Build one with [`OidcLoginConfig::new`] and set the
/// other fields, or deserialize it.
///
/// [`OidcLogin::new`]: crate::OidcLogin::new
///
/// ```
/// use docker_token_oidc::OidcLoginConfig;
///
/// let config: OidcLoginConfig = serde_json::from_value(serde_json::json!({
///     "issuer": "https://idp.example.org/realms/main",
///     "redirect_url": "https://auth.example.org/oidc_auth/callback",
///     "client_id": "docker-registry",
///     "client_secret_file": "/run/secrets/oidc",
///     "user_claim": "preferred_username",
///     "labels_claims": ["groups"],
///     "registry_url": "registry.example.org",
/// }))
/// .unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.label_claims, ["groups"]);
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcLoginConfig {
    /// The issuer; `<issuer>/.well-known/openid-configuration` names the endpoints.
    pub issuer: String,
    /// Where the provider sends the browser back (registered at the provider); its path is
    /// served as the callback (e.g. `https://auth.example.org/oidc_auth/callback`, or
    /// docker_auth's `…/oidc_auth`).
    pub redirect_url: String,
    /// The client id at the provider; also the required `aud` of id tokens.
    pub client_id: String,
    /// The client secret. Prefer `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<Password>,
    /// A file holding the client secret (trailing whitespace ignored).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Requested scopes (default `openid profile email`); `openid` is added if missing. With
    /// `offline_access`, the provider is asked for a refresh token (`prompt=consent`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim that names the docker user (default `email`, as in docker_auth).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claims copied into labels; docker_auth spells it `labels_claims`.
    #[serde(default, alias = "labels_claims")]
    pub label_claims: Vec<String>,
    /// Read the user and label claims from the userinfo endpoint instead of the id token.
    #[serde(default)]
    pub use_userinfo: bool,
    /// The registry host shown in the `docker login` command on the result page.
    #[serde(default)]
    pub registry_url: Option<String>,
    /// How long a generated docker password is valid (default 30 days).
    #[serde(default = "secs::<{ 30 * 24 * 3600 }>", alias = "token_lifetime")]
    #[serde(deserialize_with = "deserialize_duration")]
    pub password_lifetime: Duration,
    /// After this long, a docker password is re-checked with the provider's refresh token;
    /// without one, the user must log in again (default 1 h).
    #[serde(default = "secs::<3600>", deserialize_with = "deserialize_duration")]
    pub revalidate_after: Duration,
    /// How long a started browser login may take (default 10 min).
    #[serde(default = "secs::<600>", deserialize_with = "deserialize_duration")]
    pub login_timeout: Duration,
    /// Timeout of each request to the provider (default 10 s).
    #[serde(default = "secs::<10>", deserialize_with = "deserialize_duration")]
    pub http_timeout: Duration,
    /// Allowed clock difference for id-token `exp` (default 30 s).
    #[serde(default = "secs::<30>", deserialize_with = "deserialize_duration")]
    pub clock_skew: Duration,
    /// bcrypt cost of the stored password hashes (default 8: the passwords are 128-bit
    /// random, so the hash only has to be one-way, not slow).
    #[serde(default = "default_bcrypt_cost")]
    pub bcrypt_cost: u32,
    /// A file holding the key (at least 32 bytes, e.g. `openssl rand -base64 48`) that signs
    /// the login-in-progress cookie. Without it each process draws its own key, so a login
    /// started on one replica cannot finish on another: replicas behind one load balancer
    /// must share this file (a mounted secret).
    #[serde(default)]
    pub cookie_key_file: Option<PathBuf>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}
fn default_user_claim() -> String {
    "email".to_owned()
}
fn default_bcrypt_cost() -> u32 {
    8
}

impl OidcLoginConfig {
    /// A configuration for the client `client_id` at `issuer`, called back at
    /// `redirect_url`, with no secret yet (set [`client_secret`](Self::client_secret) or
    /// [`client_secret_file`](Self::client_secret_file)) and defaults otherwise.
    #[must_use]
    pub fn new(
        issuer: impl Into<String>,
        redirect_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            redirect_url: redirect_url.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_secret_file: None,
            scopes: default_scopes(),
            user_claim: default_user_claim(),
            label_claims: Vec::new(),
            use_userinfo: false,
            registry_url: None,
            password_lifetime: secs::<{ 30 * 24 * 3600 }>(),
            revalidate_after: secs::<3600>(),
            login_timeout: secs::<600>(),
            http_timeout: secs::<10>(),
            clock_skew: secs::<30>(),
            bcrypt_cost: default_bcrypt_cost(),
            cookie_key_file: None,
        }
    }

    /// Checks what serde cannot. Errors name the key (`oidc_auth.redirect_url: …`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let keys = self.client_keys();
        keys.validate(Some(
            "a client secret (client_secret or client_secret_file) is required",
        ))?;
        let redirect =
            check_url(&self.redirect_url, false).map_err(|e| keys.error("redirect_url", e))?;
        if redirect.query().is_some() {
            return Err(keys.error("redirect_url", ConfigError::new("must not have a query")));
        }
        keys.positive([
            ("password_lifetime", self.password_lifetime),
            ("revalidate_after", self.revalidate_after),
            ("login_timeout", self.login_timeout),
            ("http_timeout", self.http_timeout),
        ])?;
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(keys.error("bcrypt_cost", ConfigError::new("must be between 4 and 31")));
        }
        Ok(())
    }

    fn client_keys(&self) -> ClientKeys<'_> {
        ClientKeys {
            section: "oidc_auth",
            issuer: &self.issuer,
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref(),
            client_secret_file: self.client_secret_file.as_deref(),
            user_claim: &self.user_claim,
        }
    }

    /// The path of the callback (from `redirect_url`).
    pub(crate) fn callback_path(&self) -> String {
        reqwest::Url::parse(&self.redirect_url)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| "/oidc_auth".to_owned())
    }

    /// Whether cookies must carry `Secure` (the callback is https).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.redirect_url.starts_with("https://")
    }

    /// The scopes to request, `openid` first.
    pub(crate) fn effective_scopes(&self) -> Vec<String> {
        let mut out = vec!["openid".to_owned()];
        out.extend(self.scopes.iter().filter(|s| *s != "openid").cloned());
        out
    }

    /// The cookie key from `cookie_key_file` (`None` without one).
    pub(crate) fn load_cookie_key(&self) -> Result<Option<Password>, ConfigError> {
        let Some(path) = &self.cookie_key_file else {
            return Ok(None);
        };
        let fail = |m: String| ConfigError::new(m).at("cookie_key_file").at("oidc_auth");
        let key = read_secret_file(path).map_err(|e| e.at("cookie_key_file").at("oidc_auth"))?;
        if key.expose().len() < 32 {
            return Err(fail(format!(
                "{} holds fewer than 32 bytes (use e.g. `openssl rand -base64 48`)",
                path.display()
            )));
        }
        Ok(Some(key))
    }

    /// The client secret from `client_secret` or `client_secret_file`.
    pub(crate) fn load_secret(&self) -> Result<Password, ConfigError> {
        let keys = self.client_keys();
        keys.load_secret()?.ok_or_else(|| {
            keys.error(
                "client_secret",
                ConfigError::new("a client secret is required"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://idp.example.org",
            "redirect_url": "https://auth.example.org/oidc_auth",
            "client_id": "registry",
            "client_secret": "s3cret-value",
        })
    }

    #[test]
    fn defaults_and_docker_auth_keys() {
        let mut v = minimal();
        v["labels_claims"] = serde_json::json!(["groups"]);
        v["password_lifetime"] = serde_json::json!("7d");
        let c: OidcLoginConfig = serde_json::from_value(v).unwrap();
        c.validate().unwrap();
        assert_eq!(c.label_claims, ["groups"]);
        assert_eq!(c.user_claim, "email");
        assert_eq!(c.callback_path(), "/oidc_auth");
        assert!(c.secure_cookies());
        assert_eq!(c.effective_scopes(), ["openid", "profile", "email"]);
        assert_eq!(c.password_lifetime, Duration::from_secs(7 * 24 * 3600));
        // the server's store keys are not ours
        let mut v = minimal();
        v["level_token_db"] = serde_json::json!({"path": "/var/lib/x.db"});
        assert!(serde_json::from_value::<OidcLoginConfig>(v).is_err());
        let mut built = OidcLoginConfig::new(
            "https://idp.example.org",
            "https://auth.example.org/oidc_auth",
            "registry",
        );
        assert!(built.validate().is_err(), "no secret yet");
        built.client_secret = Some(Password::new("s"));
        built.validate().unwrap();
        let d = format!(
            "{:?}",
            serde_json::from_value::<OidcLoginConfig>(minimal()).unwrap()
        );
        assert!(!d.contains("s3cret-value"), "{d}");
    }

    #[test]
    fn new_has_the_defaults_of_deserialization() {
        let mut built = OidcLoginConfig::new(
            "https://idp.example.org",
            "https://auth.example.org/oidc_auth",
            "registry",
        );
        built.client_secret = Some(Password::new("s3cret-value"));
        let parsed: OidcLoginConfig = serde_json::from_value(minimal()).unwrap();
        assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
        assert_eq!(
            parsed.password_lifetime,
            Duration::from_secs(30 * 24 * 3600)
        );
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            (
                "redirect_url",
                serde_json::json!("http://auth.example.org/cb"),
                "oidc_auth.redirect_url",
            ),
            (
                "redirect_url",
                serde_json::json!("https://a/cb?x=1"),
                "oidc_auth.redirect_url",
            ),
            ("issuer", serde_json::json!("ftp://idp"), "oidc_auth.issuer"),
            ("client_id", serde_json::json!(""), "oidc_auth.client_id"),
            (
                "client_secret",
                serde_json::Value::Null,
                "oidc_auth.client_secret",
            ),
            (
                "revalidate_after",
                serde_json::json!(0),
                "oidc_auth.revalidate_after",
            ),
            ("bcrypt_cost", serde_json::json!(3), "oidc_auth.bcrypt_cost"),
        ];
        for (key, value, location) in cases {
            let mut v = minimal();
            v[key] = value.clone();
            let err = serde_json::from_value::<OidcLoginConfig>(v)
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(err.location(), location, "{key}={value}: {err}");
        }
        let mut v = minimal();
        v["label_claim"] = serde_json::json!(["x"]);
        assert!(serde_json::from_value::<OidcLoginConfig>(v).is_err());
    }
}
