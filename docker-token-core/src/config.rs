//! Configuration structs with docker_auth's YAML key names. The file format itself is the
//! server's business; these only need `serde`. Unknown keys are rejected everywhere
//! (docker_auth silently ignored them, which turned typos into match-all ACL rules).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{ConfigError, Error};
use crate::keys::{Algorithm, KeyError, KeySet, KidStyle, SigningKey, VerifyingKey};
use crate::token::TokenIssuer;

/// docker_auth's `token:` section, plus our additions (`kid_style`, `algorithm`,
/// `verify_certificates`, `jwks_max_age`, `reuse_window`).
///
/// Key rotation: `key`/`certificate` is the one active signing key; `verify_certificates`
/// lists keys that are only trusted for verification (the next key before it becomes
/// active, the previous one until its last tokens expire). All of them are published in
/// the JWKS document.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The `iss` claim; must equal the registry's `auth.token.issuer`.
    pub issuer: String,
    /// Token lifetime in seconds (> 0).
    pub expiration: u64,
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
    /// How long clients may cache the JWKS document, in seconds (`Cache-Control: public,
    /// max-age=N`; default 300). Publish a new key at least this long before it signs.
    #[serde(default = "default_jwks_max_age")]
    pub jwks_max_age: u64,
    /// Opt-in token reuse window in seconds (0, the default, is off): an identical grant asked
    /// for again within it gets the same token, while that token keeps two thirds of its
    /// lifetime. At most a third of `expiration`.
    #[serde(default)]
    pub reuse_window: u64,
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
    /// Refuse a token to another `client_id` than the one it was issued to (default `true`).
    #[serde(default = "default_true")]
    pub bind_client_id: bool,
    /// An embedded database file for the tokens (the server's business); absent: process
    /// memory, lost on restart.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

fn default_true() -> bool {
    true
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

/// Parses a duration: whole seconds (`300`), or a whole number with a unit `ms`, `s`, `m`,
/// `h` or `d` (`"1500ms"`, `"30s"`, `"15m"`, `"1h"`, `"7d"`).
///
/// ```
/// use std::time::Duration;
/// use docker_token_core::config::parse_duration;
/// assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
/// assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
/// assert_eq!(parse_duration("1.5h"), None);
/// ```
#[must_use]
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let secs = |factor: u64| n.checked_mul(factor).map(Duration::from_secs);
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl RawDuration {
    fn into_duration<E: serde::de::Error>(self) -> Result<Duration, E> {
        match self {
            Self::Seconds(s) => Ok(Duration::from_secs(s)),
            Self::Text(t) => parse_duration(&t).ok_or_else(|| {
                E::custom(format!(
                    "invalid duration {t:?} (use seconds, or a whole number with ms, s, m, h or d)"
                ))
            }),
        }
    }
}

/// Serde helper for [`parse_duration`]'s forms (`deserialize_with`).
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    RawDuration::deserialize(d)?.into_duration()
}

/// Serde helper for an optional duration (`deserialize_with`, with `default`).
pub fn deserialize_optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<RawDuration>::deserialize(d)?
        .map(RawDuration::into_duration)
        .transpose()
}

fn deserialize_duration_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Duration>, D::Error> {
    BTreeMap::<String, RawDuration>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.into_duration()?)))
        .collect()
}

fn default_jwks_max_age() -> u64 {
    DEFAULT_JWKS_MAX_AGE_SECS
}

/// The default of [`TokenConfig::jwks_max_age`]: five minutes.
pub const DEFAULT_JWKS_MAX_AGE_SECS: u64 = 300;

impl TokenConfig {
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
        if self.expiration == 0 {
            return Err(ConfigError::new("must be a positive number of seconds")
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
                self.expiration / 3
            ))
            .at("reuse_window")
            .at("token"));
        }
        Ok(())
    }

    /// The reuse window (zero when off).
    #[must_use]
    pub fn reuse_window(&self) -> Duration {
        Duration::from_secs(self.reuse_window)
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
        Ok(TokenIssuer::new(
            self.issuer.clone(),
            Duration::from_secs(self.expiration),
            keys,
        )
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
            "token.expiration: must be a positive number of seconds"
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
            r#"{"issuer":"x","expiration":300,"refresh":{"idle":"7 weeks"}}"#,
            r#"{"issuer":"x","expiration":300,"refresh":{"rotation":true}}"#,
            r#"{"issuer":"x","expiration":300,"expiration_by_action":{"push":"-1"}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
