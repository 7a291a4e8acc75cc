//! Configuration structs with docker_auth's YAML key names. The file format itself is the
//! server's business; these only need `serde`. Unknown keys are rejected everywhere
//! (docker_auth silently ignored them, which turned typos into match-all ACL rules).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{ConfigError, Error};
use crate::keys::{Algorithm, KeyError, KeySet, KidStyle, SigningKey, VerifyingKey};
use crate::secret::Password;
use crate::token::TokenIssuer;

/// Deserializes a [`Duration`] the one way every docker-token configuration spells it: a
/// number of seconds (an integer, as docker_auth writes `expiration: 900`, or a decimal,
/// as its LDAP timeouts), or a [humantime](https://docs.rs/humantime) string such as
/// `"500ms"`, `"30s"`, `"5m"`, `"1h 30m"` or `"7days"`. A string of digits alone is seconds.
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Section {
///     #[serde(deserialize_with = "docker_token_core::config::deserialize_duration")]
///     timeout: Duration,
/// }
/// let parse = |v| {
///     serde_json::from_value::<Section>(serde_json::json!({ "timeout": v })).map(|s| s.timeout)
/// };
/// assert_eq!(parse(serde_json::json!(900)).unwrap(), Duration::from_secs(900));
/// assert_eq!(parse(serde_json::json!(0.25)).unwrap(), Duration::from_millis(250));
/// assert_eq!(parse(serde_json::json!("1h 30m")).unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse(serde_json::json!("1500ms")).unwrap(), Duration::from_millis(1500));
/// assert!(parse(serde_json::json!(-1)).is_err());
/// assert!(parse(serde_json::json!("5 parsecs")).is_err());
/// ```
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds, or a string such as \"30s\", \"5m\" or \"1h\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("invalid duration {v}: must not be negative")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(v).map_err(|_| {
            E::custom(format!(
                "invalid duration {v}: must be a non-negative number of seconds"
            ))
        })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        let t = v.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("invalid duration {v:?}: too large")));
        }
        humantime::parse_duration(t).map_err(|e| {
            E::custom(format!(
                "invalid duration {v:?} ({e}); use seconds, or a number with a unit: ms, s, m, h, d"
            ))
        })
    }
}

/// Reads a secret (a client secret, a bind password) from a file: trailing whitespace and
/// line ends are dropped, and an empty secret is an error. Errors name the file, never its
/// content; callers add the key with [`ConfigError::at`].
///
/// ```
/// let path = std::env::temp_dir().join(format!("dt-secret-doc-{}", std::process::id()));
/// std::fs::write(&path, "s3cret\n").unwrap();
/// let secret = docker_token_core::config::read_secret_file(&path).unwrap();
/// assert_eq!(secret.expose(), "s3cret");
/// std::fs::remove_file(&path).unwrap();
/// assert!(docker_token_core::config::read_secret_file(&path).is_err());
/// ```
pub fn read_secret_file(path: &Path) -> Result<Password, ConfigError> {
    let raw =
        Password::new(std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read {}", path.display())).with_source(e)
        })?);
    let secret = Password::new(raw.expose().trim_end());
    if secret.is_empty() {
        return Err(ConfigError::new(format!("{} is empty", path.display())));
    }
    Ok(secret)
}

/// docker_auth's `token:` section, plus our additions (`kid_style`, `algorithm`,
/// `verify_certificates`, `jwks_max_age`, `reuse_window`).
///
/// Key rotation: `key`/`certificate` is the one active signing key; `verify_certificates`
/// lists keys that are only trusted for verification (the next key before it becomes
/// active, the previous one until its last tokens expire). All of them are published in
/// the JWKS document.
///
/// Build one with [`TokenConfig::new`] and set the other fields, or deserialize it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenConfig {
    /// The `iss` claim; must equal the registry's `auth.token.issuer`.
    pub issuer: String,
    /// Token lifetime (> 0; seconds, or a string such as `"15m"`, see
    /// [`deserialize_duration`]).
    #[serde(deserialize_with = "deserialize_duration")]
    pub expiration: Duration,
    /// PEM certificate (chain, leaf first) of the signing key; goes into `x5c` and the
    /// registry's `rootcertbundle`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// docker_auth's switch: `true` selects the RFC 7638 `kid` (registry 3.x).
    #[serde(default)]
    pub disable_legacy_key_id: bool,
    /// Our spelling of the same choice: `libtrust` (registry 2.x, default) or `rfc7638`.
    #[serde(default)]
    pub kid_style: Option<KidStyle>,
    /// For RSA keys: `RS256` (default), `RS384` or `RS512`. EC keys imply their algorithm.
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Verify-only keys, published in the JWKS during a rotation: PEM files with one or
    /// more `CERTIFICATE` blocks (each certificate is a key of its own, as in a registry
    /// `rootcertbundle`) or a `PUBLIC KEY` block.
    #[serde(default)]
    pub verify_certificates: Vec<PathBuf>,
    /// How long clients may cache the JWKS document (`Cache-Control: public, max-age=N`;
    /// default 300 s). Publish a new key at least this long before it signs.
    #[serde(
        default = "default_jwks_max_age",
        deserialize_with = "deserialize_duration"
    )]
    pub jwks_max_age: Duration,
    /// Opt-in token reuse window (0, the default, is off): an identical grant asked for again
    /// within it gets the same token, while that token keeps two thirds of its lifetime. At
    /// most a third of `expiration`.
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub reuse_window: Duration,
    /// Our addition: token lifetimes per granted action, e.g. `{push: 3600}` (seconds, or a
    /// number with a unit: `1h`). A token lives as long as the shortest lifetime set for
    /// what it grants (these and the ACL rules' `expiration`), or `expiration` when nothing
    /// it grants sets one.
    #[serde(default, deserialize_with = "deserialize_duration_map")]
    pub expiration_by_action: BTreeMap<String, Duration>,
    /// Our addition: refresh tokens (`offline_token=true`, `access_type=offline`). Absent:
    /// none are issued and the refresh grant is answered 400.
    #[serde(default)]
    pub refresh: Option<RefreshConfig>,
}

/// `token.refresh:` — refresh-token lifetimes, rotation and where they are kept.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RefreshConfig {
    /// A refresh token unused for this long expires (default `7d`).
    #[serde(
        default = "default_refresh_idle",
        deserialize_with = "deserialize_duration"
    )]
    pub idle: Duration,
    /// A refresh token expires this long after it was issued (default `90d`).
    #[serde(
        default = "default_refresh_absolute",
        deserialize_with = "deserialize_duration"
    )]
    pub absolute: Duration,
    /// Replace the refresh token at every use (default `false`: the docker CLI keeps the
    /// first one it got, so rotation breaks it).
    #[serde(default)]
    pub rotate: bool,
    /// Refuse a token to another `client_id` than the one it was issued to (default `false`:
    /// dockerd, `docker manifest` and podman use docker's identity token under other ids).
    #[serde(default)]
    pub bind_client_id: bool,
    /// An embedded database file for the tokens (the server's business); absent: process
    /// memory, lost on restart.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

fn default_refresh_idle() -> Duration {
    crate::refresh::RefreshPolicy::default().idle
}

fn default_refresh_absolute() -> Duration {
    crate::refresh::RefreshPolicy::default().absolute
}

impl RefreshConfig {
    /// The policy these settings describe.
    #[must_use]
    pub fn policy(&self) -> crate::refresh::RefreshPolicy {
        crate::refresh::RefreshPolicy::new(self.idle, self.absolute)
            .with_rotation(self.rotate)
            .with_client_binding(self.bind_client_id)
    }

    /// Checks the lifetimes: both at least a minute, idle not longer than absolute.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at = |e: ConfigError| e.at("refresh").at("token");
        for (name, d) in [("idle", self.idle), ("absolute", self.absolute)] {
            if d < Duration::from_secs(60) {
                return Err(at(ConfigError::new("must be at least 60 s").at(name)));
            }
        }
        if self.idle > self.absolute {
            return Err(at(ConfigError::new(
                "idle must not be longer than absolute",
            )));
        }
        Ok(())
    }
}

/// A [`Duration`] read by [`deserialize_duration`], for containers of durations.
struct SerdeDuration(Duration);

impl<'de> Deserialize<'de> for SerdeDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_duration(d).map(Self)
    }
}

/// [`deserialize_duration`] for an optional duration (`deserialize_with`, with `default`).
pub fn deserialize_optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    Ok(Option::<SerdeDuration>::deserialize(d)?.map(|v| v.0))
}

fn deserialize_duration_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Duration>, D::Error> {
    Ok(BTreeMap::<String, SerdeDuration>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

fn default_jwks_max_age() -> Duration {
    DEFAULT_JWKS_MAX_AGE
}

/// The default of [`TokenConfig::jwks_max_age`]: five minutes.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);

impl TokenConfig {
    /// A configuration with the given issuer and lifetime, no key files yet (set
    /// [`key`](Self::key) and [`certificate`](Self::certificate)), and defaults otherwise.
    #[must_use]
    pub fn new(issuer: impl Into<String>, expiration: Duration) -> Self {
        Self {
            issuer: issuer.into(),
            expiration,
            certificate: None,
            key: None,
            disable_legacy_key_id: false,
            kid_style: None,
            algorithm: None,
            verify_certificates: Vec::new(),
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            reuse_window: Duration::ZERO,
            expiration_by_action: BTreeMap::new(),
            refresh: None,
        }
    }

    /// The effective `kid` style.
    pub fn kid_style(&self) -> Result<KidStyle, ConfigError> {
        match (self.kid_style, self.disable_legacy_key_id) {
            (Some(KidStyle::Libtrust), true) => Err(ConfigError::new(
                "kid_style: libtrust contradicts disable_legacy_key_id: true",
            )
            .at("token")),
            (Some(style), _) => Ok(style),
            (None, true) => Ok(KidStyle::Rfc7638),
            (None, false) => Ok(KidStyle::Libtrust),
        }
    }

    /// Checks values that serde cannot (`expiration > 0`, a non-empty issuer).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::new("must not be empty")
                .at("issuer")
                .at("token"));
        }
        if self.expiration.as_secs() == 0 {
            return Err(ConfigError::new("must be at least one second")
                .at("expiration")
                .at("token"));
        }
        self.kid_style()?;
        for (action, lifetime) in &self.expiration_by_action {
            if lifetime.as_secs() == 0 {
                return Err(ConfigError::new("must be at least 1 s")
                    .at(action.as_str())
                    .at("expiration_by_action")
                    .at("token"));
            }
        }
        if let Some(r) = &self.refresh {
            r.validate()?;
        }
        if self.reuse_window > self.expiration / 3 {
            return Err(ConfigError::new(format!(
                "must be at most a third of token.expiration ({} s): a reused token must keep most of its lifetime",
                (self.expiration / 3).as_secs()
            ))
            .at("reuse_window")
            .at("token"));
        }
        Ok(())
    }

    /// The reuse window (zero when off).
    #[must_use]
    pub fn reuse_window(&self) -> Duration {
        self.reuse_window
    }

    /// Loads the keys and builds the issuer. `key` is required here; servers that default it
    /// (docker_auth falls back to the TLS pair) fill it in first.
    pub fn build_issuer(&self) -> Result<TokenIssuer, Error> {
        self.validate()?;
        let key_path = self.key.as_deref().ok_or_else(|| {
            ConfigError::new("a signing key is required (token.key, or server.key as a fallback)")
                .at("token")
        })?;
        let mut key = SigningKey::from_files(key_path, self.certificate.as_deref())?;
        if let Some(alg) = self.algorithm {
            key = key.with_algorithm(alg)?;
        }
        let mut keys = KeySet::new(key);
        for path in &self.verify_certificates {
            let verify_only = match VerifyingKey::bundle_from_file(path) {
                Ok(bundle) => bundle,
                // no CERTIFICATE block: maybe a PUBLIC KEY file
                Err(KeyError::InFile { source, .. })
                    if matches!(*source, KeyError::NoPublicKey) =>
                {
                    vec![VerifyingKey::from_file(path)?]
                }
                Err(e) => return Err(e.into()),
            };
            for key in verify_only {
                keys = keys.with_verify_only(key);
            }
        }
        Ok(TokenIssuer::new(self.issuer.clone(), self.expiration, keys)
            .with_kid_style(self.kid_style()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TokenConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn docker_auth_names_and_unknown_keys() {
        let c = parse(
            r#"{"issuer":"Acme auth","expiration":900,"certificate":"/c.pem","key":"/k.pem"}"#,
        )
        .unwrap();
        assert_eq!(c.issuer, "Acme auth");
        assert_eq!(c.kid_style().unwrap(), KidStyle::Libtrust);
        c.validate().unwrap();
        let err = parse(r#"{"issuer":"x","expiration":900,"expires":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `expires`"), "{err}");
    }

    #[test]
    fn kid_style_choices() {
        let c = parse(r#"{"issuer":"x","expiration":1,"disable_legacy_key_id":true}"#).unwrap();
        assert_eq!(c.kid_style().unwrap(), KidStyle::Rfc7638);
        let c = parse(r#"{"issuer":"x","expiration":1,"kid_style":"rfc7638"}"#).unwrap();
        assert_eq!(c.kid_style().unwrap(), KidStyle::Rfc7638);
        let c = parse(
            r#"{"issuer":"x","expiration":1,"kid_style":"libtrust","disable_legacy_key_id":true}"#,
        )
        .unwrap();
        assert!(c.kid_style().is_err());
    }

    #[test]
    fn validation() {
        let c = parse(r#"{"issuer":"x","expiration":0}"#).unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "token.expiration: must be at least one second"
        );
        let c = parse(r#"{"issuer":" ","expiration":5}"#).unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "token.issuer: must not be empty"
        );
        let c = parse(r#"{"issuer":"x","expiration":5}"#).unwrap();
        assert!(
            c.build_issuer()
                .unwrap_err()
                .to_string()
                .contains("signing key is required")
        );
        let c = parse(r#"{"issuer":"x","expiration":300,"reuse_window":101}"#).unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("token.reuse_window: must be at most a third")
        );
        let c = parse(r#"{"issuer":"x","expiration":300,"reuse_window":100}"#).unwrap();
        c.validate().unwrap();
        assert_eq!(c.reuse_window(), Duration::from_secs(100));
        let c = parse(r#"{"issuer":"x","expiration":"5m","reuse_window":"100s"}"#).unwrap();
        assert_eq!(c.expiration, Duration::from_secs(300));
        c.validate().unwrap();
        let c = TokenConfig::new("x", Duration::from_millis(500));
        assert!(c.validate().is_err());
    }

    #[test]
    fn per_action_lifetimes_and_refresh_settings() {
        let c = parse(
            r#"{"issuer":"x","expiration":300,"expiration_by_action":{"push":3600,"delete":"2m"},
                "refresh":{"idle":"7d","absolute":"90d"}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.expiration_by_action["push"], Duration::from_secs(3600));
        assert_eq!(c.expiration_by_action["delete"], Duration::from_secs(120));
        let r = c.refresh.as_ref().unwrap();
        assert_eq!(r.policy().idle, Duration::from_secs(7 * 86_400));
        assert!(!r.policy().rotate && r.path.is_none());
        let defaults = parse(r#"{"issuer":"x","expiration":300,"refresh":{}}"#).unwrap();
        assert_eq!(
            defaults.refresh.unwrap().policy(),
            crate::refresh::RefreshPolicy::default()
        );
        for (json, want) in [
            (
                r#"{"issuer":"x","expiration":300,"expiration_by_action":{"push":0}}"#,
                "token.expiration_by_action.push: must be at least 1 s",
            ),
            (
                r#"{"issuer":"x","expiration":300,"refresh":{"idle":"30d","absolute":"7d"}}"#,
                "token.refresh: idle must not be longer than absolute",
            ),
            (
                r#"{"issuer":"x","expiration":300,"refresh":{"idle":"10s"}}"#,
                "token.refresh.idle: must be at least 60 s",
            ),
        ] {
            assert_eq!(
                parse(json).unwrap().validate().unwrap_err().to_string(),
                want
            );
        }
        for bad in [
            r#"{"issuer":"x","expiration":300,"refresh":{"idle":"7 parsecs"}}"#,
            r#"{"issuer":"x","expiration":300,"refresh":{"rotation":true}}"#,
            r#"{"issuer":"x","expiration":300,"expiration_by_action":{"push":"-1"}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
