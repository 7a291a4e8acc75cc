//! Who a request is: an account name and its labels.

use std::collections::BTreeMap;

/// Labels attached to an identity by the backend that authenticated it (static users,
/// LDAP groups, OIDC claims). A label name maps to one or more values; ACL rules match on
/// them (`match: {labels: {group: admins}}`) and substitute them (`${labels:group}`).
pub type Labels = BTreeMap<String, Vec<String>>;

/// An authenticated (or anonymous) principal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The account name. The empty string is the anonymous user.
    pub account: String,
    /// Labels from the authenticating backend.
    pub labels: Labels,
}

impl Identity {
    /// An identity with no labels.
    pub fn new(account: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            labels: Labels::new(),
        }
    }

    /// The anonymous identity (account `""`, no labels).
    #[must_use]
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Adds labels, builder style.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Whether this is the anonymous user.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        self.account.is_empty()
    }
}
