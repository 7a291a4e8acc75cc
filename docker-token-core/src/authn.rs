//! Authentication: the [`Authenticator`] trait, its outcome, and the ordered [`AuthenticatorChain`].

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::BackendError;
use crate::identity::Identity;
use crate::secret::Password;

/// What an authenticator is asked to check: a user name and a password (both empty for an
/// anonymous request), plus context some backends use.
#[derive(Clone, Debug)]
pub struct LoginAttempt {
    /// The user name from the Basic credentials or the OAuth2 `username` field; `""` when anonymous.
    pub account: String,
    /// The password; empty when anonymous.
    pub password: Password,
    /// The client's IP address, when known.
    pub client_ip: Option<IpAddr>,
    /// The `service` the token is for.
    pub service: String,
}

impl LoginAttempt {
    /// A login attempt without client IP and service.
    pub fn new(account: impl Into<String>, password: impl Into<Password>) -> Self {
        Self {
            account: account.into(),
            password: password.into(),
            client_ip: None,
            service: String::new(),
        }
    }

    /// The anonymous attempt (empty user name and password).
    #[must_use]
    pub fn anonymous() -> Self {
        Self::new("", "")
    }

    /// Whether this attempt carries no credentials.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        self.account.is_empty() && self.password.is_empty()
    }
}

/// The answer of one authenticator.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthnOutcome {
    /// The credentials are good; this is who it is. The chain stops here.
    Authenticated(Identity),
    /// This backend knows the user and the credentials are wrong. The chain stops here (401).
    Rejected,
    /// This backend does not know the user: ask the next one.
    NotApplicable,
}

/// The answer of [`Authenticator::lookup_account`]: does the backend know this account now,
/// and with which labels?
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupOutcome {
    /// The backend knows the account now; this is who it is, with its current labels.
    Found(Identity),
    /// The backend does not know the account (any more).
    NotFound,
    /// The backend cannot look accounts up without their password (the default).
    Unsupported,
}

/// A source of identities: static users, LDAP, an IdP, or your own.
///
/// Return [`AuthnOutcome::NotApplicable`] for users you don't know, so that a chain can ask
/// the next backend; [`AuthnOutcome::Rejected`] for a wrong password of a user you do know; and
/// `Err` only when you could not decide (the backend is down or misconfigured), which the
/// server answers with 503/500 instead of 401.
///
/// # Example
///
/// ```
/// use async_trait::async_trait;
/// use docker_token_core::{Authenticator, AuthnOutcome, BackendError, Identity, LoginAttempt};
///
/// /// One user, `robot`, whose password is `s3cret`.
/// struct OneRobot;
///
/// #[async_trait]
/// impl Authenticator for OneRobot {
///     fn name(&self) -> &str {
///         "one-robot"
///     }
///
///     async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
///         if login.account != "robot" {
///             return Ok(AuthnOutcome::NotApplicable);
///         }
///         // real backends compare secrets in constant time (bcrypt does)
///         if login.password.expose() == "s3cret" {
///             Ok(AuthnOutcome::Authenticated(Identity::new("robot")))
///         } else {
///             Ok(AuthnOutcome::Rejected)
///         }
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let outcome = OneRobot.authenticate(&LoginAttempt::new("robot", "s3cret")).await.unwrap();
/// assert_eq!(outcome, AuthnOutcome::Authenticated(Identity::new("robot")));
/// assert_eq!(OneRobot.authenticate(&LoginAttempt::new("bob", "x")).await.unwrap(), AuthnOutcome::NotApplicable);
/// # });
/// ```
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// A short, stable name for logs, metrics and cache keys (`static`, `ldap`, …).
    fn name(&self) -> &str;

    /// Checks one login attempt.
    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError>;

    /// Called on every member of a chain in which no authenticator recognised the user, so
    /// that backends with a slow verification (bcrypt) can spend comparable time and an
    /// unknown user costs about as much as a wrong password. The default does nothing.
    ///
    /// Implementations should do nothing for anonymous attempts, which are cheap by design.
    async fn equalize_timing(&self, login: &LoginAttempt) {
        let _ = login;
    }

    /// Whether the backend can currently serve requests (for readiness probes). The default
    /// is always ready.
    async fn ready(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Looks an account up without its password, for the refresh-token grant: a refresh
    /// token may only be exchanged while the backend that accepted the password still knows
    /// the user, and the new token is authorized with the user's *current* labels.
    ///
    /// Never use a cache here. The default answers [`LookupOutcome::Unsupported`], which
    /// makes the token service refuse refresh grants for this backend's users (they must
    /// log in with their password again).
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        let _ = account;
        Ok(LookupOutcome::Unsupported)
    }
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        (**self).authenticate(login).await
    }
    async fn equalize_timing(&self, login: &LoginAttempt) {
        (**self).equalize_timing(login).await;
    }
    async fn ready(&self) -> Result<(), BackendError> {
        (**self).ready().await
    }
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        (**self).lookup_account(account).await
    }
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        (**self).authenticate(login).await
    }
    async fn equalize_timing(&self, login: &LoginAttempt) {
        (**self).equalize_timing(login).await;
    }
    async fn ready(&self) -> Result<(), BackendError> {
        (**self).ready().await
    }
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        (**self).lookup_account(account).await
    }
}

/// Authenticators asked in the configured order (docker_auth's rule): `NotApplicable` asks the
/// next one; `Authenticated` and `Rejected` end the chain; an error ends it too. When nobody
/// recognised the user, the chain answers `NotApplicable` after letting every member
/// [equalize timing](Authenticator::equalize_timing).
#[derive(Clone, Default)]
pub struct AuthenticatorChain {
    members: Vec<Arc<dyn Authenticator>>,
}

impl std::fmt::Debug for AuthenticatorChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.members.iter().map(|m| m.name()))
            .finish()
    }
}

impl AuthenticatorChain {
    /// An empty chain (it authenticates nobody).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an authenticator, builder style.
    #[must_use]
    pub fn with(mut self, authenticator: impl Authenticator + 'static) -> Self {
        self.members.push(Arc::new(authenticator));
        self
    }

    /// Appends a shared authenticator.
    pub fn push(&mut self, authenticator: Arc<dyn Authenticator>) {
        self.members.push(authenticator);
    }

    /// The members, in order.
    #[must_use]
    pub fn members(&self) -> &[Arc<dyn Authenticator>] {
        &self.members
    }

    /// Runs the chain and also says which member decided.
    pub async fn authenticate_with_source(
        &self,
        login: &LoginAttempt,
    ) -> Result<(AuthnOutcome, Option<&str>), BackendError> {
        for m in &self.members {
            let started = crate::metrics::start();
            let outcome = m.authenticate(login).await;
            let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
            let result = match &outcome {
                Ok(AuthnOutcome::Authenticated(_)) => "authenticated",
                Ok(AuthnOutcome::Rejected) => "rejected",
                Ok(AuthnOutcome::NotApplicable) => "not_applicable",
                Err(_) => "error",
            };
            crate::metrics::authn(m.name(), result, elapsed);
            match outcome? {
                AuthnOutcome::NotApplicable => {}
                decided => return Ok((decided, Some(m.name()))),
            }
        }
        for m in &self.members {
            m.equalize_timing(login).await;
        }
        Ok((AuthnOutcome::NotApplicable, None))
    }

    /// Looks an account up in the configured order, like a login: the first member that
    /// finds it decides (and is named). When none does, the answer is
    /// [`LookupOutcome::Unsupported`] (naming the first such member) if some member cannot
    /// look accounts up, since that one might have known the user, else
    /// [`LookupOutcome::NotFound`].
    pub async fn lookup_with_source(
        &self,
        account: &str,
    ) -> Result<(LookupOutcome, Option<&str>), BackendError> {
        let mut unsupported = None;
        for m in &self.members {
            match m.lookup_account(account).await? {
                found @ LookupOutcome::Found(_) => return Ok((found, Some(m.name()))),
                LookupOutcome::Unsupported => {
                    unsupported.get_or_insert(m.name());
                }
                LookupOutcome::NotFound => {}
            }
        }
        Ok(match unsupported {
            Some(name) => (LookupOutcome::Unsupported, Some(name)),
            None => (LookupOutcome::NotFound, None),
        })
    }
}

#[async_trait]
impl Authenticator for AuthenticatorChain {
    fn name(&self) -> &str {
        "chain"
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        Ok(self.authenticate_with_source(login).await?.0)
    }

    async fn equalize_timing(&self, login: &LoginAttempt) {
        for m in &self.members {
            m.equalize_timing(login).await;
        }
    }

    async fn ready(&self) -> Result<(), BackendError> {
        for m in &self.members {
            m.ready().await?;
        }
        Ok(())
    }

    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        Ok(self.lookup_with_source(account).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub::{Answer, Stub};

    fn chain(members: &[Arc<Stub>]) -> AuthenticatorChain {
        let mut c = AuthenticatorChain::new();
        for m in members {
            c.push(m.clone());
        }
        c
    }

    #[tokio::test]
    async fn not_applicable_falls_through_in_configured_order() {
        let a = Arc::new(Stub::new("a", Answer::NotApplicable));
        let b = Arc::new(Stub::accept("b"));
        let c = Arc::new(Stub::new("c", Answer::Reject));
        let ch = chain(&[a.clone(), b.clone(), c.clone()]);
        let (out, by) = ch
            .authenticate_with_source(&LoginAttempt::new("bob", "pw"))
            .await
            .unwrap();
        assert_eq!(out, AuthnOutcome::Authenticated(Identity::new("bob")));
        assert_eq!(by, Some("b"));
        assert_eq!(c.calls(), 0, "chain must stop at the first decision");
        assert_eq!(a.equalized(), 0);
    }

    #[tokio::test]
    async fn rejected_stops_even_if_a_later_backend_would_accept() {
        let a = Arc::new(Stub::new("a", Answer::Reject));
        let b = Arc::new(Stub::accept("b"));
        let out = chain(&[a, b.clone()])
            .authenticate(&LoginAttempt::new("bob", "pw"))
            .await
            .unwrap();
        assert_eq!(out, AuthnOutcome::Rejected);
        assert_eq!(b.calls(), 0);
    }

    #[tokio::test]
    async fn errors_stop_the_chain_and_stay_errors() {
        let a = Arc::new(Stub::down("a"));
        let b = Arc::new(Stub::accept("b"));
        let err = chain(&[a, b.clone()])
            .authenticate(&LoginAttempt::new("bob", "pw"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::BackendErrorKind::Unavailable);
        assert_eq!(b.calls(), 0);
    }

    #[tokio::test]
    async fn nobody_matched_equalizes_every_member() {
        let a = Arc::new(Stub::new("a", Answer::NotApplicable));
        let b = Arc::new(Stub::new("b", Answer::NotApplicable));
        let out = chain(&[a.clone(), b.clone()])
            .authenticate(&LoginAttempt::new("x", "y"))
            .await
            .unwrap();
        assert_eq!(out, AuthnOutcome::NotApplicable);
        assert_eq!(a.equalized(), 1);
        assert_eq!(b.equalized(), 1);
    }

    struct Directory(&'static str, LookupOutcome);

    #[async_trait]
    impl Authenticator for Directory {
        fn name(&self) -> &str {
            self.0
        }
        async fn authenticate(&self, _: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
            Ok(AuthnOutcome::NotApplicable)
        }
        async fn lookup_account(&self, _: &str) -> Result<LookupOutcome, BackendError> {
            Ok(self.1.clone())
        }
    }

    #[tokio::test]
    async fn lookup_follows_the_chain_order_and_names_who_cannot_look_up() {
        let bob = LookupOutcome::Found(Identity::new("bob"));
        let chain = AuthenticatorChain::new()
            .with(Directory("a", LookupOutcome::NotFound))
            .with(Directory("b", LookupOutcome::Unsupported))
            .with(Directory("c", bob.clone()));
        assert_eq!(
            chain.lookup_with_source("bob").await.unwrap(),
            (bob, Some("c"))
        );
        let chain = AuthenticatorChain::new()
            .with(Directory("a", LookupOutcome::NotFound))
            .with(Arc::new(Directory("b", LookupOutcome::Unsupported)));
        assert_eq!(
            chain.lookup_with_source("x").await.unwrap(),
            (LookupOutcome::Unsupported, Some("b"))
        );
        let chain = AuthenticatorChain::new().with(Directory("a", LookupOutcome::NotFound));
        assert_eq!(
            chain.lookup_account("x").await.unwrap(),
            LookupOutcome::NotFound
        );
        let boxed: Box<dyn Authenticator> = Box::new(Stub::new("f", Answer::Reject));
        assert_eq!(
            boxed.lookup_account("x").await.unwrap(),
            LookupOutcome::Unsupported,
            "the default"
        );
    }

    #[tokio::test]
    async fn works_as_dyn_and_through_box() {
        let boxed: Box<dyn Authenticator> = Box::new(Stub::new("x", Answer::Reject));
        assert_eq!(boxed.name(), "x");
        assert_eq!(
            boxed
                .authenticate(&LoginAttempt::anonymous())
                .await
                .unwrap(),
            AuthnOutcome::Rejected
        );
    }
}
