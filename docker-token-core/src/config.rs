//! Configuration structs with docker_auth's YAML key names. The file format itself is the
//! server's business; these only need `serde`. Unknown keys are rejected everywhere
//! (docker_auth silently ignored them, which turned typos into match-all ACL rules).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
}
