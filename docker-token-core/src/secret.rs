//! A password-like secret that never reaches logs.

use std::fmt;
use zeroize::Zeroize;

/// A secret string (a password, a token) that redacts itself in `Debug` and `Display`
/// and is wiped from memory when dropped.
///
/// ```
/// use docker_token_core::Password;
/// let p = Password::new("hunter2");
/// assert_eq!(format!("{p:?}"), "Password(***)");
/// assert_eq!(p.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Call sites that use this are the places to audit.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl<'de> serde::Deserialize<'de> for Password {
    /// A plain string (the configuration's secrets, e.g. `client_secret`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(Self)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_secret() {
        let p = Password::new("s3cr3t-value");
        assert!(!format!("{p:?}").contains("s3cr3t"));
        assert!(!format!("{p}").contains("s3cr3t"));
        assert!(!p.is_empty());
        assert!(Password::default().is_empty());
        let p: Password = serde_json::from_str(r#""s3cr3t-value""#).unwrap();
        assert_eq!(p.expose(), "s3cr3t-value");
    }
}
