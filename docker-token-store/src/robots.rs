//! Robot accounts: long-lived, revocable credentials for CI systems.
//!
//! A robot is named `robot$NAME` in `docker login`; it has labels (for the ACL, like a user's)
//! and an expiry. Its secret is 256 random bits, shown once when it is created; the store
//! keeps only its SHA-256 (a slow hash adds nothing to a secret of that strength, and lets
//! every token request check it without a cache). Revoking deletes the record, so the next
//! token request with the secret fails.
//!
//! The [`RobotStore`] trait holds the records (in memory, in the embedded redb file with the
//! `redb` feature, or in Redis with `docker-token-redis`); [`RobotAuthenticator`] is the
//! [`Authenticator`] that accepts them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use aws_lc_rs::digest;
use docker_token_core::credential_store::unix_seconds;
use docker_token_core::{
    Authenticator, AuthnOutcome, BackendError, Identity, Labels, LoginAttempt, Password,
};
use serde::{Deserialize, Serialize};

/// The prefix of robot account names in `docker login` (`robot$ci`), as in Harbor.
pub const ROBOT_PREFIX: &str = "robot$";

/// The longest robot name (without the prefix).
pub const MAX_NAME_LEN: usize = 64;

/// Bytes of randomness in a generated robot secret (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Why a robot name, label or record is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotError(String);

impl fmt::Display for RobotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RobotError {}

/// Checks a robot name (without `robot$`): 1–64 characters of `a-z`, `0-9`, `.`, `_` and `-`,
/// starting with a letter or digit. The message never repeats the (possibly hostile) input.
pub fn validate_name(name: &str) -> Result<(), RobotError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > MAX_NAME_LEN || !first_ok || !name.chars().all(ok_char) {
        return Err(RobotError(format!(
            "a robot name is 1-{MAX_NAME_LEN} characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// The robot name in a docker account name (`robot$ci` → `ci`), if it is one.
#[must_use]
pub fn name_of_account(account: &str) -> Option<&str> {
    account.strip_prefix(ROBOT_PREFIX)
}

/// Checks labels given to a robot: keys of `A-Za-z0-9._-` (1–64), values of printable
/// characters (1–256), at most 32 values in all.
pub fn validate_labels(labels: &Labels) -> Result<(), RobotError> {
    let key_ok = |k: &str| {
        !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    let value_ok = |v: &str| !v.is_empty() && v.len() <= 256 && !v.chars().any(char::is_control);
    let mut count = 0;
    for (k, values) in labels {
        if !key_ok(k) {
            return Err(RobotError(
                "a label key is 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'".to_owned(),
            ));
        }
        for v in values {
            count += 1;
            if !value_ok(v) {
                return Err(RobotError(format!(
                    "label {k}: a value is 1-256 printable characters"
                )));
            }
        }
    }
    if count > 32 {
        return Err(RobotError("at most 32 label values".to_owned()));
    }
    Ok(())
}

/// Parses `key=value` label arguments (repeated keys collect several values).
pub fn parse_labels<S: AsRef<str>>(args: &[S]) -> Result<Labels, RobotError> {
    let mut labels: Labels = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.as_ref().split_once('=') else {
            return Err(RobotError("a label is key=value".to_owned()));
        };
        labels.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    validate_labels(&labels)?;
    Ok(labels)
}

fn hash_secret(secret: &str) -> String {
    let d = digest::digest(&digest::SHA256, secret.as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One robot account. Times are Unix seconds. `Debug` hides the secret's hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Robot {
    /// The name, without `robot$`.
    pub name: String,
    /// `sha256:<hex>` of the secret (never the secret).
    pub secret_hash: String,
    /// Labels for the ACL.
    #[serde(default)]
    pub labels: Labels,
    /// When it was created.
    pub created_at: u64,
    /// When it stops working (and a store with its own expiry drops it).
    pub expires_at: u64,
}

impl fmt::Debug for Robot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Robot")
            .field("name", &self.name)
            .field("secret_hash", &"***")
            .field("labels", &self.labels)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Robot {
    /// A new robot with a fresh secret (256 bits from the system RNG), returned once beside
    /// the record. The name and labels are validated; `expires_at` must be in the future.
    pub fn generate(
        name: &str,
        labels: Labels,
        expires_at: SystemTime,
    ) -> Result<(Self, Password), RobotError> {
        validate_name(name)?;
        validate_labels(&labels)?;
        let now = SystemTime::now();
        if expires_at <= now {
            return Err(RobotError("the expiry must be in the future".to_owned()));
        }
        let secret = docker_token_core::token::random_secret(SECRET_BYTES)
            .map_err(|_| RobotError("the system RNG failed".to_owned()))?;
        let robot = Self {
            name: name.to_owned(),
            secret_hash: hash_secret(&secret),
            labels,
            created_at: unix_seconds(now),
            expires_at: unix_seconds(expires_at),
        };
        Ok((robot, Password::new(secret)))
    }

    /// The docker account name, `robot$NAME`.
    #[must_use]
    pub fn account(&self) -> String {
        format!("{ROBOT_PREFIX}{}", self.name)
    }

    /// Whether it is expired at `now`.
    #[must_use]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at <= unix_seconds(now)
    }

    /// Checks a secret against the stored hash, in constant time.
    #[must_use]
    pub fn verify_secret(&self, candidate: &Password) -> bool {
        use subtle::ConstantTimeEq as _;
        let h = hash_secret(candidate.expose());
        h.as_bytes().ct_eq(self.secret_hash.as_bytes()).into()
    }
}

/// Storage for [`Robot`]s by name. Implementations are shared between tasks; a networked
/// store answers [`BackendError::unavailable`] when it cannot be reached. `get_robot` and
/// `list_robots` never return an expired robot.
///
/// # Example: a minimal implementation
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::{Duration, SystemTime};
///
/// use async_trait::async_trait;
/// use docker_token_core::BackendError;
/// use docker_token_store::robots::{Robot, RobotStore};
///
/// #[derive(Default)]
/// struct MyRobots(Mutex<HashMap<String, Robot>>);
///
/// #[async_trait]
/// impl RobotStore for MyRobots {
///     async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError> {
///         let mut map = self.0.lock().unwrap();
///         if map.get(&robot.name).is_some_and(|r| !r.is_expired_at(SystemTime::now())) {
///             return Ok(false);
///         }
///         map.insert(robot.name.clone(), robot);
///         Ok(true)
///     }
///     async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError> {
///         let now = SystemTime::now();
///         Ok(self.0.lock().unwrap().get(name).filter(|r| !r.is_expired_at(now)).cloned())
///     }
///     async fn delete_robot(&self, name: &str) -> Result<bool, BackendError> {
///         Ok(self.0.lock().unwrap().remove(name).is_some())
///     }
///     async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
///         let now = SystemTime::now();
///         Ok(self.0.lock().unwrap().values().filter(|r| !r.is_expired_at(now)).cloned().collect())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MyRobots::default();
/// let in_a_day = SystemTime::now() + Duration::from_secs(86_400);
/// let (robot, secret) = Robot::generate("ci", Default::default(), in_a_day).unwrap();
/// assert!(store.create_robot(robot).await.unwrap());
/// assert!(store.get_robot("ci").await.unwrap().unwrap().verify_secret(&secret));
/// assert!(store.delete_robot("ci").await.unwrap());
/// # });
/// ```
#[async_trait]
pub trait RobotStore: Send + Sync {
    /// Stores a new robot; `false` (and nothing changed) when an unexpired robot of that name
    /// exists.
    async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError>;

    /// The robot named `name`, unless absent or expired.
    async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError>;

    /// Removes the robot named `name`; says whether there was one.
    async fn delete_robot(&self, name: &str) -> Result<bool, BackendError>;

    /// Every unexpired robot, in any order.
    async fn list_robots(&self) -> Result<Vec<Robot>, BackendError>;

    /// Whether the store can be reached (for readiness probes). The default says yes.
    async fn ready(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

#[async_trait]
impl<T: RobotStore + ?Sized> RobotStore for Arc<T> {
    async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError> {
        (**self).create_robot(robot).await
    }
    async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError> {
        (**self).get_robot(name).await
    }
    async fn delete_robot(&self, name: &str) -> Result<bool, BackendError> {
        (**self).delete_robot(name).await
    }
    async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
        (**self).list_robots().await
    }
    async fn ready(&self) -> Result<(), BackendError> {
        (**self).ready().await
    }
}

#[async_trait]
impl<T: RobotStore + ?Sized> RobotStore for Box<T> {
    async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError> {
        (**self).create_robot(robot).await
    }
    async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError> {
        (**self).get_robot(name).await
    }
    async fn delete_robot(&self, name: &str) -> Result<bool, BackendError> {
        (**self).delete_robot(name).await
    }
    async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
        (**self).list_robots().await
    }
    async fn ready(&self) -> Result<(), BackendError> {
        (**self).ready().await
    }
}

/// Robots in process memory (tests, single-process servers).
#[derive(Default)]
pub struct InMemoryRobotStore {
    robots: RwLock<BTreeMap<String, Robot>>,
}

impl fmt::Debug for InMemoryRobotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.robots.read().map_or(0, |r| r.len());
        f.debug_struct("InMemoryRobotStore")
            .field("robots", &n)
            .finish()
    }
}

impl InMemoryRobotStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RobotStore for InMemoryRobotStore {
    async fn create_robot(&self, robot: Robot) -> Result<bool, BackendError> {
        let mut map = self.robots.write().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
        if map.get(&robot.name).is_some_and(|r| !r.is_expired_at(now)) {
            return Ok(false);
        }
        map.insert(robot.name.clone(), robot);
        Ok(true)
    }

    async fn get_robot(&self, name: &str) -> Result<Option<Robot>, BackendError> {
        let now = SystemTime::now();
        let map = self.robots.read().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(name).filter(|r| !r.is_expired_at(now)).cloned())
    }

    async fn delete_robot(&self, name: &str) -> Result<bool, BackendError> {
        let mut map = self.robots.write().unwrap_or_else(|p| p.into_inner());
        Ok(map.remove(name).is_some())
    }

    async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
        let now = SystemTime::now();
        let map = self.robots.read().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .values()
            .filter(|r| !r.is_expired_at(now))
            .cloned()
            .collect())
    }
}

/// Accepts robot accounts (`robot$NAME` + secret) from a [`RobotStore`].
///
/// | the login …                                      | outcome |
/// |--------------------------------------------------|---------|
/// | not `robot$…`, or anonymous                      | `NotApplicable` |
/// | `robot$` + an invalid name, or an unknown robot  | `NotApplicable` (the chain ends in 401) |
/// | an expired robot (until the store drops it)      | `Rejected` |
/// | a wrong secret                                   | `Rejected` |
/// | the right secret                                 | `Authenticated` with the robot's labels |
/// | the store unavailable                            | `Err` (503) |
///
/// The store is read on every attempt (no cache), so a revoked or expired robot is refused
/// from the next token request on.
#[derive(Clone)]
pub struct RobotAuthenticator {
    store: Arc<dyn RobotStore>,
}

impl fmt::Debug for RobotAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotAuthenticator").finish_non_exhaustive()
    }
}

impl RobotAuthenticator {
    /// The authenticator's name in logs and metrics.
    pub const NAME: &'static str = "robots";

    /// Accepts the robots of `store`.
    #[must_use]
    pub fn new(store: Arc<dyn RobotStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Authenticator for RobotAuthenticator {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        let Some(name) = name_of_account(&login.account) else {
            return Ok(AuthnOutcome::NotApplicable);
        };
        if login.password.is_empty() || validate_name(name).is_err() {
            return Ok(AuthnOutcome::NotApplicable);
        }
        let Some(robot) = self.store.get_robot(name).await? else {
            return Ok(AuthnOutcome::NotApplicable);
        };
        if !robot.verify_secret(&login.password) {
            tracing::info!(robot = %robot.name, "robot login with a wrong secret");
            return Ok(AuthnOutcome::Rejected);
        }
        if robot.is_expired_at(SystemTime::now()) {
            tracing::info!(robot = %robot.name, "robot login after its expiry");
            return Ok(AuthnOutcome::Rejected);
        }
        Ok(AuthnOutcome::Authenticated(
            Identity::new(login.account.clone()).with_labels(robot.labels),
        ))
    }

    async fn ready(&self) -> Result<(), BackendError> {
        self.store.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn in_secs(s: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(s)
    }

    #[test]
    fn names_and_labels_are_validated() {
        for ok in ["ci", "a", "team-ci.build_1", &"x".repeat(64)] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "-ci",
            "CI",
            "ci/x",
            "ci$",
            "c i",
            "ci\n",
            "é",
            "../etc",
            &"x".repeat(65),
        ] {
            let e = validate_name(bad).unwrap_err();
            assert!(
                bad.is_empty() || !e.to_string().contains(bad),
                "the error must not echo the input: {e}"
            );
        }
        let l = parse_labels(&["team=ci", "team=ops", "env=prod"]).unwrap();
        assert_eq!(l["team"], ["ci", "ops"]);
        assert!(parse_labels(&["noequals"]).is_err());
        assert!(parse_labels(&["=v"]).is_err());
        assert!(parse_labels(&["k="]).is_err());
        assert!(parse_labels(&["k=a\u{7}b"]).is_err());
        assert!(parse_labels(&["k y=v"]).is_err());
        let many: Vec<String> = (0..33).map(|i| format!("k=v{i}")).collect();
        assert!(parse_labels(&many).is_err());
    }

    #[test]
    fn generated_secrets_are_long_random_and_hashed() {
        let (r1, s1) = Robot::generate("ci", Labels::new(), in_secs(60)).unwrap();
        let (r2, s2) = Robot::generate("ci", Labels::new(), in_secs(60)).unwrap();
        assert!(s1.expose().len() >= 43, "256 bits in base64url");
        assert_ne!(s1.expose(), s2.expose());
        assert_ne!(r1.secret_hash, r2.secret_hash);
        assert!(!r1.secret_hash.contains(s1.expose()));
        assert!(r1.verify_secret(&s1));
        assert!(!r1.verify_secret(&s2));
        assert!(!r1.verify_secret(&Password::new("")));
        assert_eq!(r1.account(), "robot$ci");
        let d = format!("{r1:?}");
        assert!(!d.contains(&r1.secret_hash), "{d}");
        assert!(Robot::generate("ci", Labels::new(), SystemTime::now()).is_err());
        assert!(Robot::generate("Bad Name", Labels::new(), in_secs(60)).is_err());
    }

    #[tokio::test]
    async fn authenticator_outcomes() {
        let store = Arc::new(InMemoryRobotStore::new());
        let labels = parse_labels(&["team=ci"]).unwrap();
        let (robot, secret) = Robot::generate("ci", labels.clone(), in_secs(60)).unwrap();
        assert!(store.create_robot(robot.clone()).await.unwrap());
        assert!(
            !store.create_robot(robot).await.unwrap(),
            "names are unique"
        );
        let a = RobotAuthenticator::new(store.clone());
        let login = |u: &str, p: &str| LoginAttempt::new(u, p);
        assert_eq!(
            a.authenticate(&login("robot$ci", secret.expose()))
                .await
                .unwrap(),
            AuthnOutcome::Authenticated(Identity::new("robot$ci").with_labels(labels))
        );
        assert_eq!(
            a.authenticate(&login("robot$ci", "wrong")).await.unwrap(),
            AuthnOutcome::Rejected
        );
        for other in ["ci", "robot$", "robot$nobody", "robot$../x", ""] {
            assert_eq!(
                a.authenticate(&login(other, secret.expose()))
                    .await
                    .unwrap(),
                AuthnOutcome::NotApplicable,
                "{other}"
            );
        }
        assert_eq!(store.list_robots().await.unwrap().len(), 1);
        assert!(store.delete_robot("ci").await.unwrap());
        assert_eq!(
            a.authenticate(&login("robot$ci", secret.expose()))
                .await
                .unwrap(),
            AuthnOutcome::NotApplicable,
            "revoked"
        );
        // an expired record that a store still returns is rejected
        let (mut old, old_secret) = Robot::generate("old", Labels::new(), in_secs(60)).unwrap();
        old.expires_at = unix_seconds(SystemTime::now()) - 1;
        struct Stale(Robot);
        #[async_trait]
        impl RobotStore for Stale {
            async fn create_robot(&self, _: Robot) -> Result<bool, BackendError> {
                Ok(false)
            }
            async fn get_robot(&self, _: &str) -> Result<Option<Robot>, BackendError> {
                Ok(Some(self.0.clone()))
            }
            async fn delete_robot(&self, _: &str) -> Result<bool, BackendError> {
                Ok(false)
            }
            async fn list_robots(&self) -> Result<Vec<Robot>, BackendError> {
                Ok(vec![])
            }
        }
        let stale = RobotAuthenticator::new(Arc::new(Stale(old)));
        assert_eq!(
            stale
                .authenticate(&login("robot$old", old_secret.expose()))
                .await
                .unwrap(),
            AuthnOutcome::Rejected
        );
    }
}
