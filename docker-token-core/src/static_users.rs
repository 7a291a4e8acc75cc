//! Static users: docker_auth's `users:` map (bcrypt hashes and labels) and htpasswd files.
//!
//! ```yaml
//! users:
//!   admin:
//!     password: "$2y$05$…"         # htpasswd -nB admin, or docker-token-server hash-password
//!     labels: {group: [admins]}
//!   "": {}                          # the anonymous user: lets requests without credentials through
//! ```
//!
//! Differences from docker_auth, on purpose: a named user without a password is a
//! configuration error (docker_auth accepted *any* password for it), and the anonymous entry
//! may not have one. Unknown users cost a bcrypt verification too (see
//! [`Authenticator::equalize_timing`]), so response times do not reveal which users exist.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::Deserialize;

use crate::authn::{Authenticator, AuthnOutcome, LoginAttempt, LookupOutcome};
use crate::error::{BackendError, ConfigError};
use crate::identity::{Identity, Labels};

/// One entry of the `users:` map. Build one from [`Default`] and set the fields, or
/// deserialize it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UserConfig {
    /// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`). Required for every user except `""`.
    pub password: Option<String>,
    /// Labels for ACL matching.
    #[serde(default)]
    pub labels: Labels,
}

/// docker_auth's `users:` section: user name → entry.
pub type UsersConfig = BTreeMap<String, UserConfig>;

#[derive(Clone)]
struct User {
    /// `None` only for the anonymous user.
    hash: Option<String>,
    labels: Labels,
}

/// The static-users authenticator.
#[derive(Clone)]
pub struct StaticUsers {
    users: HashMap<String, User>,
    /// A hash of the most common cost among the users, verified when nobody matched.
    dummy_hash: String,
    /// bcrypt verifications done so far (real and dummy), shared between clones.
    verifications: Arc<AtomicU64>,
}

impl std::fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("StaticUsers")
            .field("users", &names)
            .finish_non_exhaustive()
    }
}

impl Default for StaticUsers {
    fn default() -> Self {
        Self::build(HashMap::new())
    }
}

impl StaticUsers {
    /// Builds the backend from docker_auth's `users:` map, validating every entry.
    pub fn from_config(config: &UsersConfig) -> Result<Self, ConfigError> {
        let mut users = HashMap::with_capacity(config.len());
        for (name, entry) in config {
            let at = |e: ConfigError| e.at(format!("{name:?}")).at("users");
            let hash = match (&entry.password, name.is_empty()) {
                (None, true) => None,
                (Some(_), true) => {
                    return Err(at(ConfigError::new(
                        "the anonymous user \"\" must not have a password",
                    )));
                }
                (None, false) => {
                    return Err(at(ConfigError::new(
                        "a password (bcrypt hash) is required; docker_auth accepted any password for such a user, this server does not",
                    )));
                }
                (Some(h), false) => Some(check_hash(h).map_err(at)?.to_owned()),
            };
            users.insert(
                name.clone(),
                User {
                    hash,
                    labels: entry.labels.clone(),
                },
            );
        }
        Ok(Self::build(users))
    }

    /// Parses an htpasswd file's contents (`user:$2y$…` per line; `#` comments and blank
    /// lines ignored). Only bcrypt lines are accepted; any other scheme is an error that names
    /// the line (never its hash).
    pub fn from_htpasswd(contents: &str) -> Result<Self, ConfigError> {
        let mut users = HashMap::new();
        for (i, line) in contents.lines().enumerate() {
            let at = |e: ConfigError| e.at(format!("line {}", i + 1));
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(at(ConfigError::new("expected user:hash")));
            };
            if user.is_empty() {
                return Err(at(ConfigError::new("empty user name")));
            }
            let hash = check_hash(hash.trim()).map_err(|e| {
                at(ConfigError::new(format!(
                    "user {user:?}: {} (create entries with `htpasswd -B` or `docker-token-server hash-password`)",
                    e.message()
                )))
            })?;
            if users
                .insert(
                    user.to_owned(),
                    User {
                        hash: Some(hash.to_owned()),
                        labels: Labels::new(),
                    },
                )
                .is_some()
            {
                return Err(at(ConfigError::new(format!("user {user:?} appears twice"))));
            }
        }
        Ok(Self::build(users))
    }

    /// Reads and parses an htpasswd file; errors name the file and line.
    pub fn from_htpasswd_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read htpasswd file {}", path.display())).with_source(e)
        })?;
        Self::from_htpasswd(&text).map_err(|e| e.at(path.display().to_string()))
    }

    /// Adds the users of `other`; a user defined in both is an error.
    pub fn extend(&mut self, other: Self) -> Result<(), ConfigError> {
        for (name, user) in other.users {
            if self.users.contains_key(&name) {
                return Err(ConfigError::new(format!("user {name:?} is defined twice")));
            }
            self.users.insert(name, user);
        }
        // the dummy hash only has to be recomputed when the typical cost changed
        let cost = typical_cost(self.users.values().filter_map(|u| u.hash.as_deref()));
        let current = self
            .dummy_hash
            .parse::<bcrypt::HashParts>()
            .map(|p| p.get_cost());
        if current.ok() != Some(cost) {
            self.dummy_hash = dummy_hash(cost);
        }
        Ok(())
    }

    /// How many users (including the anonymous entry) are defined.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is defined.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// How many bcrypt verifications this backend has run (real ones and the dummy ones for
    /// unknown users). Useful as a metric: each costs milliseconds of CPU.
    #[must_use]
    pub fn bcrypt_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn build(users: HashMap<String, User>) -> Self {
        let cost = typical_cost(users.values().filter_map(|u| u.hash.as_deref()));
        Self {
            users,
            dummy_hash: dummy_hash(cost),
            verifications: Arc::default(),
        }
    }

    async fn verify(&self, password: &crate::Password, hash: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let password = password.clone();
        let hash = hash.to_owned();
        blocking(move || verify(password.expose(), &hash)).await
    }
}

/// Checks that `hash` is a bcrypt hash we can verify.
fn check_hash(hash: &str) -> Result<&str, ConfigError> {
    let ok_prefix = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    if !ok_prefix {
        let scheme = if hash.starts_with("$apr1$") {
            "an Apache MD5 ($apr1$) hash"
        } else if hash.starts_with("{SHA}") {
            "a SHA-1 ({SHA}) hash"
        } else if hash.starts_with('$') {
            "not a bcrypt hash"
        } else {
            "a crypt(3) or plain-text password"
        };
        return Err(ConfigError::new(format!(
            "{scheme}; only bcrypt ($2a$, $2b$, $2y$) is accepted"
        )));
    }
    hash.parse::<bcrypt::HashParts>()
        .map_err(|_| ConfigError::new("malformed bcrypt hash"))?;
    Ok(hash)
}

/// The hash verified for unknown users. A fixed, public salt: this hash only burns time, it
/// protects nothing. Empty if hashing fails (then no timing is equalized).
fn dummy_hash(cost: u32) -> String {
    bcrypt::hash_with_salt("docker-token timing equalizer", cost, [7u8; 16])
        .map(|h| h.format_for_version(bcrypt::Version::TwoB))
        .unwrap_or_default()
}

fn typical_cost<'a>(hashes: impl Iterator<Item = &'a str>) -> u32 {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for h in hashes {
        if let Ok(parts) = h.parse::<bcrypt::HashParts>() {
            *counts.entry(parts.get_cost()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(cost, n)| (n, cost))
        .map_or(bcrypt::DEFAULT_COST, |(c, _)| c)
}

/// Runs a CPU-heavy closure off the async executor when inside a Tokio runtime.
pub(crate) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        },
        Err(_) => f(),
    }
}

fn verify(password: &str, hash: &str) -> bool {
    verify_bcrypt(password, hash)
}

/// The longest password (in bytes) bcrypt looks at: it ignores everything after byte 72.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// Checks `password` against a bcrypt `hash`, in constant time; `false` for a malformed hash.
///
/// Passwords longer than [`BCRYPT_MAX_PASSWORD_BYTES`] are **rejected** instead of being
/// truncated as bcrypt (and `htpasswd -B`) do: otherwise every password that shares the
/// first 72 bytes with the real one would log in. A hash made (by another tool) from a longer
/// password therefore only accepts its first 72 bytes — the password bcrypt actually
/// hashed. `docker-token-server hash-password` refuses such passwords.
///
/// ```
/// use docker_token_core::static_users::verify_bcrypt;
///
/// let long = "x".repeat(72);
/// let hash = bcrypt::hash(&long, 4).unwrap();
/// assert!(verify_bcrypt(&long, &hash));
/// assert!(!verify_bcrypt(&format!("{long}suffix"), &hash), "no truncation");
/// assert!(!verify_bcrypt("x", "not a hash"));
/// ```
#[must_use]
pub fn verify_bcrypt(password: &str, hash: &str) -> bool {
    if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
        return false;
    }
    // bcrypt's own comparison is constant-time; an error (malformed hash) is a mismatch.
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[async_trait]
impl Authenticator for StaticUsers {
    fn name(&self) -> &str {
        "static"
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        let Some(user) = self.users.get(&login.account) else {
            return Ok(AuthnOutcome::NotApplicable);
        };
        let Some(hash) = &user.hash else {
            // The anonymous entry: only for requests without a password.
            return Ok(if login.password.is_empty() {
                AuthnOutcome::Authenticated(Identity::anonymous().with_labels(user.labels.clone()))
            } else {
                AuthnOutcome::NotApplicable
            });
        };
        if self.verify(&login.password, hash).await {
            Ok(AuthnOutcome::Authenticated(
                Identity::new(login.account.clone()).with_labels(user.labels.clone()),
            ))
        } else {
            Ok(AuthnOutcome::Rejected)
        }
    }

    async fn equalize_timing(&self, login: &LoginAttempt) {
        if login.is_anonymous() || self.dummy_hash.is_empty() {
            return;
        }
        let _ = self.verify(&login.password, &self.dummy_hash).await;
    }

    /// A user with a password is found with its configured labels; the anonymous entry and
    /// unknown names are not found.
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        Ok(match self.users.get(account) {
            Some(user) if user.hash.is_some() => {
                LookupOutcome::Found(Identity::new(account).with_labels(user.labels.clone()))
            }
            _ => LookupOutcome::NotFound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pw: &str) -> String {
        bcrypt::hash(pw, 4).unwrap()
    }

    type UserSpec<'a> = (&'a str, Option<String>, &'a [(&'a str, &'a [&'a str])]);

    fn users(yaml_like: &[UserSpec<'_>]) -> Result<StaticUsers, ConfigError> {
        let mut cfg = UsersConfig::new();
        for (name, pw, labels) in yaml_like {
            let labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect();
            cfg.insert(
                (*name).to_owned(),
                UserConfig {
                    password: pw.clone(),
                    labels,
                },
            );
        }
        StaticUsers::from_config(&cfg)
    }

    #[tokio::test]
    async fn good_bad_unknown_and_labels() {
        let u = users(&[("alice", Some(hash("secret")), &[("group", &["dev", "ops"])])]).unwrap();
        let out = u
            .authenticate(&LoginAttempt::new("alice", "secret"))
            .await
            .unwrap();
        let AuthnOutcome::Authenticated(id) = out else {
            panic!("expected success, got {out:?}")
        };
        assert_eq!(id.account, "alice");
        assert_eq!(id.labels["group"], vec!["dev", "ops"]);
        assert_eq!(
            u.authenticate(&LoginAttempt::new("alice", "wrong"))
                .await
                .unwrap(),
            AuthnOutcome::Rejected
        );
        assert_eq!(
            u.authenticate(&LoginAttempt::new("alice", ""))
                .await
                .unwrap(),
            AuthnOutcome::Rejected
        );
        assert_eq!(
            u.authenticate(&LoginAttempt::new("bob", "secret"))
                .await
                .unwrap(),
            AuthnOutcome::NotApplicable
        );
    }

    #[tokio::test]
    async fn all_bcrypt_prefixes_verify() {
        let base = bcrypt::hash_with_salt("pw", 4, [1u8; 16]).unwrap();
        for (v, prefix) in [
            (bcrypt::Version::TwoA, "$2a$"),
            (bcrypt::Version::TwoB, "$2b$"),
            (bcrypt::Version::TwoY, "$2y$"),
        ] {
            let h = base.format_for_version(v);
            assert!(h.starts_with(prefix));
            let u = users(&[("u", Some(h), &[])]).unwrap();
            assert!(matches!(
                u.authenticate(&LoginAttempt::new("u", "pw")).await.unwrap(),
                AuthnOutcome::Authenticated(_)
            ));
        }
    }

    /// bcrypt ignores bytes after the 72nd; a password that only shares them must not log in.
    #[tokio::test]
    async fn passwords_over_72_bytes_are_rejected_not_truncated() {
        let exact = "p".repeat(BCRYPT_MAX_PASSWORD_BYTES);
        let u = users(&[("long", Some(hash(&exact)), &[])]).unwrap();
        assert!(matches!(
            u.authenticate(&LoginAttempt::new("long", exact.as_str()))
                .await
                .unwrap(),
            AuthnOutcome::Authenticated(_)
        ));
        for extra in ["x", "p", &"q".repeat(1000)] {
            assert_eq!(
                u.authenticate(&LoginAttempt::new("long", format!("{exact}{extra}")))
                    .await
                    .unwrap(),
                AuthnOutcome::Rejected,
                "a password sharing the first 72 bytes must not log in"
            );
        }
        // a hash another tool made from a longer password accepts exactly what bcrypt hashed
        let made_long = bcrypt::hash(format!("{exact}tail"), 4).unwrap();
        assert!(verify_bcrypt(&exact, &made_long));
        assert!(!verify_bcrypt(&format!("{exact}tail"), &made_long));
    }

    #[tokio::test]
    async fn anonymous_entry() {
        let u = users(&[("", None, &[("public", &["yes"])])]).unwrap();
        let out = u.authenticate(&LoginAttempt::anonymous()).await.unwrap();
        let AuthnOutcome::Authenticated(id) = out else {
            panic!("{out:?}")
        };
        assert!(id.is_anonymous());
        assert_eq!(id.labels["public"], vec!["yes"]);
        // an empty user name with a password is not the anonymous user
        assert_eq!(
            u.authenticate(&LoginAttempt::new("", "token"))
                .await
                .unwrap(),
            AuthnOutcome::NotApplicable
        );
        // without the "" entry anonymous is unknown
        let none = users(&[("alice", Some(hash("x")), &[])]).unwrap();
        assert_eq!(
            none.authenticate(&LoginAttempt::anonymous()).await.unwrap(),
            AuthnOutcome::NotApplicable
        );
    }

    #[test]
    fn config_errors_name_the_user() {
        let e = users(&[("alice", None, &[])]).unwrap_err();
        assert!(
            e.to_string().starts_with("users.\"alice\": a password"),
            "{e}"
        );
        let e = users(&[("", Some(hash("x")), &[])]).unwrap_err();
        assert!(e.to_string().contains("anonymous"), "{e}");
        let e = users(&[("bob", Some("$apr1$abc$def".to_owned()), &[])]).unwrap_err();
        assert!(
            e.to_string().contains("users.\"bob\"") && e.to_string().contains("apr1"),
            "{e}"
        );
        let e = users(&[("bob", Some("$2y$05$tooshort".to_owned()), &[])]).unwrap_err();
        assert!(e.to_string().contains("malformed bcrypt"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<UserConfig>(r#"{"pasword":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `pasword`"), "{err}");
    }

    #[tokio::test]
    async fn htpasswd_file() {
        let text = format!("# comment\n\nalice:{}\r\nbob:{}\n", hash("a"), hash("b"));
        let u = StaticUsers::from_htpasswd(&text).unwrap();
        assert_eq!(u.len(), 2);
        assert!(matches!(
            u.authenticate(&LoginAttempt::new("bob", "b"))
                .await
                .unwrap(),
            AuthnOutcome::Authenticated(_)
        ));
        assert_eq!(
            u.authenticate(&LoginAttempt::new("bob", "a"))
                .await
                .unwrap(),
            AuthnOutcome::Rejected
        );

        let bad = format!(
            "alice:{}\ncarol:$apr1$xyz$0123456789abcdefghijkl\n",
            hash("a")
        );
        let e = StaticUsers::from_htpasswd(&bad).unwrap_err().to_string();
        assert!(e.starts_with("line 2: user \"carol\""), "{e}");
        assert!(
            !e.contains("0123456789abcdef"),
            "the hash must not be echoed: {e}"
        );
        let e = StaticUsers::from_htpasswd("carol:{SHA}abcdef=\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SHA-1"), "{e}");
        let e = StaticUsers::from_htpasswd("noseparator\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 1: expected user:hash");
    }

    #[test]
    fn extend_keeps_the_dummy_hash_at_the_typical_cost() {
        let cost = |u: &StaticUsers| {
            u.dummy_hash
                .parse::<bcrypt::HashParts>()
                .unwrap()
                .get_cost()
        };
        let mut a = StaticUsers::from_htpasswd(&format!("x:{}\n", hash("1"))).unwrap();
        assert_eq!(cost(&a), 4);
        // one more cost-4 user: unchanged
        a.extend(StaticUsers::from_htpasswd(&format!("y:{}\n", hash("2"))).unwrap())
            .unwrap();
        assert_eq!(cost(&a), 4);
        // three cost-5 users outnumber them: the dummy follows
        let five = (1..=3)
            .map(|i| format!("z{i}:{}\n", bcrypt::hash("p", 5).unwrap()))
            .collect::<String>();
        a.extend(StaticUsers::from_htpasswd(&five).unwrap())
            .unwrap();
        assert_eq!(cost(&a), 5);
    }

    #[test]
    fn extend_rejects_duplicates() {
        let mut a = StaticUsers::from_htpasswd(&format!("x:{}\n", hash("1"))).unwrap();
        let b = StaticUsers::from_htpasswd(&format!("y:{}\n", hash("2"))).unwrap();
        a.extend(b).unwrap();
        assert_eq!(a.len(), 2);
        let c = StaticUsers::from_htpasswd(&format!("x:{}\n", hash("3"))).unwrap();
        assert!(
            a.extend(c)
                .unwrap_err()
                .to_string()
                .contains("\"x\" is defined twice")
        );
    }

    #[test]
    fn dummy_hash_uses_the_typical_cost() {
        let u = users(&[
            ("a", Some(bcrypt::hash("x", 5).unwrap()), &[]),
            ("b", Some(bcrypt::hash("y", 5).unwrap()), &[]),
        ])
        .unwrap();
        assert_eq!(
            u.dummy_hash
                .parse::<bcrypt::HashParts>()
                .unwrap()
                .get_cost(),
            5
        );
    }

    /// Unknown users must cost about as much as wrong passwords: the chain runs a dummy
    /// bcrypt of the same cost. Counted, not timed (tests never assert timings; the benches
    /// measure the cost).
    #[tokio::test]
    async fn unknown_user_costs_a_bcrypt_anonymous_does_not() {
        let u = users(&[("alice", Some(bcrypt::hash("pw", 6).unwrap()), &[])]).unwrap();
        let counter = u.clone();
        let chain = crate::AuthenticatorChain::new().with(u);
        assert_eq!(
            chain
                .authenticate(&LoginAttempt::new("alice", "bad"))
                .await
                .unwrap(),
            AuthnOutcome::Rejected
        );
        assert_eq!(counter.bcrypt_verifications(), 1);
        assert_eq!(
            chain
                .authenticate(&LoginAttempt::new("nobody", "bad"))
                .await
                .unwrap(),
            AuthnOutcome::NotApplicable
        );
        assert_eq!(
            counter.bcrypt_verifications(),
            2,
            "an unknown user must cost one bcrypt"
        );
        assert_eq!(
            counter
                .dummy_hash
                .parse::<bcrypt::HashParts>()
                .unwrap()
                .get_cost(),
            6
        );
        let _ = chain
            .authenticate(&LoginAttempt::anonymous())
            .await
            .unwrap();
        assert_eq!(
            counter.bcrypt_verifications(),
            2,
            "anonymous must not run bcrypt"
        );
    }
}
