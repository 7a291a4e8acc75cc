//! [`SecretKeyer`]: cache keys for secrets.

use std::fmt;

use aws_lc_rs::hmac;

use crate::error::ConfigError;

/// The length of a [`SecretKeyer::tag`].
pub const TAG_LEN: usize = 32;

/// Turns secrets (a password, an access token) into cache keys: HMAC-SHA256 over
/// length-prefixed fields under a key drawn from the system RNG when the keyer is created.
///
/// The key never leaves the process, so stored tags alone (a log, a core file of another
/// process, a later run) cannot be attacked offline, and a tag says nothing about the
/// secret without the key. The length prefixes keep `("ab", "c")` and `("a", "bc")` apart.
/// `Debug` shows nothing of the key. The workspace's caches of secrets (the credential cache,
/// the OIDC token check cache) key their entries with one.
///
/// ```
/// use docker_token_core::cache::SecretKeyer;
///
/// let keyer = SecretKeyer::new()?;
/// let tag = keyer.tag(&[b"alice", b"password"]);
/// assert_eq!(tag, keyer.tag(&[b"alice", b"password"]));
/// assert_ne!(tag, keyer.tag(&[b"alicep", b"assword"]));
/// assert_ne!(tag, SecretKeyer::new()?.tag(&[b"alice", b"password"]), "a new key each time");
/// # Ok::<(), docker_token_core::ConfigError>(())
/// ```
pub struct SecretKeyer {
    key: hmac::Key,
}

impl SecretKeyer {
    /// A keyer with a fresh random key. Fails only if the system RNG does.
    pub fn new() -> Result<Self, ConfigError> {
        let mut secret = [0_u8; TAG_LEN];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| ConfigError::new("cannot draw a cache key from the system RNG"))?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        zeroize::Zeroize::zeroize(&mut secret);
        Ok(Self { key })
    }

    /// The tag of `fields`, in order.
    #[must_use]
    pub fn tag(&self, fields: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for field in fields {
            // 4-byte lengths: 12 bytes less to hash than 8-byte ones, so that credentials of
            // up to 43 bytes in all (authenticator name, user, password) take one SHA-256
            // block instead of 31; no field reaches 4 GiB (requests are limited far below)
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            ctx.update(&len.to_be_bytes());
            ctx.update(field);
        }
        let mut out = [0_u8; TAG_LEN];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

impl fmt::Debug for SecretKeyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyer(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_every_field_their_bounds_and_the_key() {
        let a = SecretKeyer::new().unwrap();
        let b = SecretKeyer::new().unwrap();
        let t = |k: &SecretKeyer, u: &str, s: &str| k.tag(&[u.as_bytes(), s.as_bytes()]);
        assert_eq!(t(&a, "alice", "tok"), t(&a, "alice", "tok"));
        assert_ne!(t(&a, "alice", "tok"), t(&a, "bob", "tok"));
        assert_ne!(t(&a, "alice", "tok"), t(&a, "alice", "tok2"));
        // the length prefixes keep ("ab","c") and ("a","bc") apart
        assert_ne!(t(&a, "ab", "c"), t(&a, "a", "bc"));
        assert_ne!(t(&a, "alice", "tok"), t(&b, "alice", "tok"));
        assert_ne!(t(&a, "alice", "tok"), [0_u8; TAG_LEN]);
        assert_eq!(format!("{a:?}"), "SecretKeyer(***)");
    }
}
