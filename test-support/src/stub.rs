//! [`Stub`]: a stand-in [`Authenticator`] with a fixed answer, for tests that need a backend
//! that accepts everyone, rejects everyone, knows nobody or is down, without a real peer.
//!
//! This file is also compiled into docker-token-core's own unit tests (with `#[path]`), where
//! the core types are the crate's own: a dependency on this crate would bring a second copy
//! of them. So it names the core types through its parent module (`super::`), which imports
//! them from `docker_token_core` here and from the crate root there.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{Authenticator, AuthnOutcome, BackendError, Identity, LoginAttempt};

/// What a [`Stub`] answers to a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `Authenticated` as the account of the attempt, without labels.
    Accept,
    /// `Rejected` (a wrong password).
    Reject,
    /// `NotApplicable` (an unknown user: the chain goes on).
    NotApplicable,
    /// An unavailable backend (503, "connection refused"); [`Authenticator::ready`] fails too.
    Down,
}

/// An authenticator that gives the same [`Answer`] to every login (or, with
/// [`only`](Self::only), to one account) and counts the calls. [`Stub::accept`] and
/// [`Stub::down`] are the common ones; [`Stub::new`] takes any answer.
///
/// ```
/// use docker_token_core::{Authenticator, AuthnOutcome, LoginAttempt};
/// use test_support::stub::{Answer, Stub};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let open = Stub::accept("open");
/// let out = open.authenticate(&LoginAttempt::new("alice", "pw")).await.unwrap();
/// assert!(matches!(out, AuthnOutcome::Authenticated(id) if id.account == "alice"));
/// assert_eq!(open.calls(), 1);
///
/// let carol = Stub::accept("carol-only").only("carol");
/// let out = carol.authenticate(&LoginAttempt::new("alice", "pw")).await.unwrap();
/// assert_eq!(out, AuthnOutcome::NotApplicable);
///
/// let no = Stub::new("no", Answer::Reject);
/// let out = no.authenticate(&LoginAttempt::new("alice", "pw")).await.unwrap();
/// assert_eq!(out, AuthnOutcome::Rejected);
/// assert!(Stub::down("ldap").ready().await.is_err());
/// # });
/// ```
#[derive(Debug)]
pub struct Stub {
    name: &'static str,
    answer: Answer,
    only: Option<&'static str>,
    calls: AtomicUsize,
    equalized: AtomicUsize,
}

impl Stub {
    /// A stub named `name` (its backend name in logs and errors) answering `answer`.
    #[must_use]
    pub fn new(name: &'static str, answer: Answer) -> Self {
        Self {
            name,
            answer,
            only: None,
            calls: AtomicUsize::new(0),
            equalized: AtomicUsize::new(0),
        }
    }

    /// Accepts everyone, as the account they logged in with.
    #[must_use]
    pub fn accept(name: &'static str) -> Self {
        Self::new(name, Answer::Accept)
    }

    /// Is unreachable: every login and readiness check fails with "connection refused".
    #[must_use]
    pub fn down(name: &'static str) -> Self {
        Self::new(name, Answer::Down)
    }

    /// Answers only logins as `account`; every other one is `NotApplicable`.
    #[must_use]
    pub fn only(mut self, account: &'static str) -> Self {
        self.only = Some(account);
        self
    }

    /// How many logins it was asked about.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many times the chain asked it to spend the time of a login nobody matched.
    #[must_use]
    pub fn equalized(&self) -> usize {
        self.equalized.load(Ordering::SeqCst)
    }

    fn refused(&self) -> BackendError {
        BackendError::unavailable(self.name, "connection refused")
    }
}

#[async_trait]
impl Authenticator for Stub {
    fn name(&self) -> &str {
        self.name
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.only.is_some_and(|a| a != login.account) {
            return Ok(AuthnOutcome::NotApplicable);
        }
        match self.answer {
            Answer::Accept => Ok(AuthnOutcome::Authenticated(Identity::new(
                login.account.clone(),
            ))),
            Answer::Reject => Ok(AuthnOutcome::Rejected),
            Answer::NotApplicable => Ok(AuthnOutcome::NotApplicable),
            Answer::Down => Err(self.refused()),
        }
    }

    async fn equalize_timing(&self, _: &LoginAttempt) {
        self.equalized.fetch_add(1, Ordering::SeqCst);
    }

    async fn ready(&self) -> Result<(), BackendError> {
        match self.answer {
            Answer::Down => Err(self.refused()),
            _ => Ok(()),
        }
    }
}
