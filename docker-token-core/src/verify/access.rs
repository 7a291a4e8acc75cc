//! [`Access`]: what a verified token grants, and the registry's matching rule.

use crate::scope::Scope;
use crate::token::AccessEntry;

/// The `access` claim of a verified token, merged per resource.
///
/// Matching is the registry's (protocol.md §3.6): the resource is the exact, case-sensitive
/// pair (`type`, `name`) — a `class` is ignored, `repository(plugin)` is another type, and
/// there are no wildcards in names; an action is granted if the entry lists it or lists
/// `*`. A required action `*` (the catalog's `registry:catalog:*`) is therefore granted
/// only by a literal `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    entries: Vec<AccessEntry>,
}

impl Access {
    /// The access granted by `entries`; entries for the same resource are merged (first
    /// appearance order, duplicate actions dropped).
    pub fn new(entries: impl IntoIterator<Item = AccessEntry>) -> Self {
        let mut merged: Vec<AccessEntry> = Vec::new();
        for entry in entries {
            match merged
                .iter_mut()
                .find(|m| m.resource_type == entry.resource_type && m.name == entry.name)
            {
                Some(m) => {
                    for action in entry.actions {
                        if !m.actions.contains(&action) {
                            m.actions.push(action);
                        }
                    }
                }
                None => {
                    let mut entry = entry;
                    let mut seen = Vec::with_capacity(entry.actions.len());
                    entry.actions.retain(|a| {
                        let new = !seen.contains(a);
                        if new {
                            seen.push(a.clone());
                        }
                        new
                    });
                    merged.push(entry);
                }
            }
        }
        Self { entries: merged }
    }

    /// Whether `action` on the resource (`resource_type`, `name`) is granted.
    #[must_use]
    pub fn allows(&self, resource_type: &str, name: &str, action: &str) -> bool {
        self.actions(resource_type, name)
            .iter()
            .any(|a| a == action || a == "*")
    }

    /// Whether every action of `scope` is granted on its resource (its class is ignored,
    /// as the registry does).
    #[must_use]
    pub fn allows_scope(&self, scope: &Scope) -> bool {
        scope
            .actions()
            .iter()
            .all(|action| self.allows(scope.resource_type(), scope.name(), action))
    }

    /// The actions granted on a resource, as listed in the token (empty if none).
    #[must_use]
    pub fn actions(&self, resource_type: &str, name: &str) -> &[String] {
        self.entries
            .iter()
            .find(|e| e.resource_type == resource_type && e.name == name)
            .map_or(&[], |e| e.actions.as_slice())
    }

    /// The merged entries, one per resource.
    #[must_use]
    pub fn entries(&self) -> &[AccessEntry] {
        &self.entries
    }

    /// Whether the token grants nothing (a login token: enough for `GET /v2/`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| e.actions.is_empty())
    }
}
