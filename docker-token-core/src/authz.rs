//! Authorization: the [`Authorizer`] trait, asked once per requested scope, and the ordered
//! [`AuthorizerChain`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackendError;
use crate::identity::Identity;
use crate::scope::Scope;

/// One authorization question: may `identity` do `scope.actions()` on `scope`?
#[derive(Clone, Copy, Debug)]
pub struct AuthzRequest<'a> {
    /// Who asks (anonymous: account `""`).
    pub identity: &'a Identity,
    /// The `service` the token is for.
    pub service: &'a str,
    /// The client's IP address, when known.
    pub client_ip: Option<IpAddr>,
    /// The requested resource and actions.
    pub scope: &'a Scope,
}

/// Which rule decided, for audit logs and `explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// 0-based index of the rule in its authorizer's list.
    pub index: usize,
    /// The rule's `comment`, if any.
    pub comment: Option<String>,
}

/// A decision: the granted actions (a subset of the requested ones, possibly empty, which is
/// an explicit deny) and the rule that made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Granted actions, sorted and unique.
    pub actions: Vec<String>,
    /// The rule that decided, when the authorizer has rules.
    pub rule: Option<RuleRef>,
    /// A lifetime for tokens that grant something by this decision (an ACL rule's
    /// `expiration`); `None`: the decision sets none.
    pub expiration: Option<Duration>,
}

impl Grant {
    /// A grant of these actions with no rule reference.
    pub fn actions(actions: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut actions: Vec<String> = actions.into_iter().map(Into::into).collect();
        actions.sort();
        actions.dedup();
        Self {
            actions,
            rule: None,
            expiration: None,
        }
    }

    /// Sets the token lifetime this grant asks for, builder style.
    #[must_use]
    pub fn with_expiration(mut self, expiration: Duration) -> Self {
        self.expiration = Some(expiration);
        self
    }

    /// An explicit deny (no actions).
    #[must_use]
    pub fn deny() -> Self {
        Self::default()
    }
}

/// The answer of one authorizer for one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthzOutcome {
    /// A decision (possibly "nothing"). The chain stops here.
    Granted(Grant),
    /// No opinion: ask the next authorizer. If none decides, nothing is granted.
    NotApplicable,
}

/// A source of access decisions: the static ACL, or your own.
///
/// Return `Err` only when you could not decide (backend down); a denial is
/// `Ok(AuthzOutcome::Granted(Grant::deny()))`.
///
/// # Example
///
/// ```
/// use async_trait::async_trait;
/// use docker_token_core::{Authorizer, AuthzOutcome, AuthzRequest, BackendError, Grant, Identity, Scope};
///
/// /// Everyone may pull `public/*`; no opinion on anything else.
/// struct PublicPull;
///
/// #[async_trait]
/// impl Authorizer for PublicPull {
///     fn name(&self) -> &str {
///         "public-pull"
///     }
///
///     async fn authorize(&self, req: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError> {
///         let s = req.scope;
///         if s.resource_type() == "repository" && s.name().starts_with("public/") {
///             let granted = s.actions().iter().filter(|a| *a == "pull");
///             Ok(AuthzOutcome::Granted(Grant::actions(granted)))
///         } else {
///             Ok(AuthzOutcome::NotApplicable)
///         }
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let scope = Scope::new("repository", "public/alpine", ["pull", "push"]);
/// let who = Identity::anonymous();
/// let req = AuthzRequest { identity: &who, service: "registry", client_ip: None, scope: &scope };
/// assert_eq!(PublicPull.authorize(&req).await.unwrap(), AuthzOutcome::Granted(Grant::actions(["pull"])));
/// # });
/// ```
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// A short, stable name for logs and metrics (`acl`, …).
    fn name(&self) -> &str;

    /// Decides one scope.
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError>;

    /// Whether the backend can currently serve requests. The default is always ready.
    async fn ready(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

#[async_trait]
impl<T: Authorizer + ?Sized> Authorizer for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError> {
        (**self).authorize(request).await
    }
    async fn ready(&self) -> Result<(), BackendError> {
        (**self).ready().await
    }
}

#[async_trait]
impl<T: Authorizer + ?Sized> Authorizer for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError> {
        (**self).authorize(request).await
    }
    async fn ready(&self) -> Result<(), BackendError> {
        (**self).ready().await
    }
}

/// Which authorizer and rule decided one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Granted actions (empty when nobody decided or a rule denied).
    pub granted: Vec<String>,
    /// The deciding authorizer's name; `None` when no authorizer decided.
    pub authorizer: Option<String>,
    /// The deciding rule, when the authorizer reports one.
    pub rule: Option<RuleRef>,
    /// The token lifetime the decision sets, if any.
    pub expiration: Option<Duration>,
}

/// Authorizers asked in the configured order: `NotApplicable` asks the next one; the first
/// decision wins; an error stops the chain; when nobody decides, nothing is granted.
#[derive(Clone, Default)]
pub struct AuthorizerChain {
    members: Vec<Arc<dyn Authorizer>>,
}

impl std::fmt::Debug for AuthorizerChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.members.iter().map(|m| m.name()))
            .finish()
    }
}

impl AuthorizerChain {
    /// An empty chain (it grants nothing).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an authorizer, builder style.
    #[must_use]
    pub fn with(mut self, authorizer: impl Authorizer + 'static) -> Self {
        self.members.push(Arc::new(authorizer));
        self
    }

    /// Appends a shared authorizer.
    pub fn push(&mut self, authorizer: Arc<dyn Authorizer>) {
        self.members.push(authorizer);
    }

    /// The members, in order.
    #[must_use]
    pub fn members(&self) -> &[Arc<dyn Authorizer>] {
        &self.members
    }

    /// Runs the chain for one scope and reports who decided.
    pub async fn decide(&self, request: &AuthzRequest<'_>) -> Result<Decision, BackendError> {
        for m in &self.members {
            if let AuthzOutcome::Granted(g) = m.authorize(request).await? {
                return Ok(Decision {
                    granted: g.actions,
                    authorizer: Some(m.name().to_owned()),
                    rule: g.rule,
                    expiration: g.expiration,
                });
            }
        }
        Ok(Decision {
            granted: Vec::new(),
            authorizer: None,
            rule: None,
            expiration: None,
        })
    }
}

#[async_trait]
impl Authorizer for AuthorizerChain {
    fn name(&self) -> &str {
        "chain"
    }

    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError> {
        for m in &self.members {
            if let decided @ AuthzOutcome::Granted(_) = m.authorize(request).await? {
                return Ok(decided);
            }
        }
        Ok(AuthzOutcome::NotApplicable)
    }

    async fn ready(&self) -> Result<(), BackendError> {
        for m in &self.members {
            m.ready().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Option<Vec<&'static str>>);

    #[async_trait]
    impl Authorizer for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn authorize(&self, _: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError> {
            Ok(match &self.1 {
                None => AuthzOutcome::NotApplicable,
                Some(a) => AuthzOutcome::Granted(Grant::actions(a.iter().copied())),
            })
        }
    }

    #[tokio::test]
    async fn first_decision_wins_and_none_means_nothing() {
        let who = Identity::new("alice");
        let scope = Scope::new("repository", "x", ["pull", "push"]);
        let req = AuthzRequest {
            identity: &who,
            service: "s",
            client_ip: None,
            scope: &scope,
        };

        let chain = AuthorizerChain::new()
            .with(Fixed("first", None))
            .with(Fixed("second", Some(vec![])))
            .with(Fixed("third", Some(vec!["pull"])));
        let d = chain.decide(&req).await.unwrap();
        assert_eq!(d.authorizer.as_deref(), Some("second"));
        assert!(d.granted.is_empty(), "an explicit deny stops the chain");

        let none = AuthorizerChain::new().with(Fixed("only", None));
        let d = none.decide(&req).await.unwrap();
        assert_eq!(d.authorizer, None);
        assert!(d.granted.is_empty());
    }
}
