//! The scope grammar: `type[(class)]:name:action[,action…]` (protocol.md §5).
//!
//! IMPLEMENTATION PENDING (helper A): parsing, list parsing with merging, Display.

use std::fmt;

/// One requested (or granted) resource scope, e.g. `repository:library/alpine:pull,push`.
///
/// Actions are kept sorted and de-duplicated; `*` is a real action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    resource_type: String,
    class: Option<String>,
    name: String,
    actions: Vec<String>,
}

impl Scope {
    /// Builds a scope from parts; actions are sorted and de-duplicated.
    pub fn new(
        resource_type: impl Into<String>,
        name: impl Into<String>,
        actions: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let mut actions: Vec<String> = actions.into_iter().map(Into::into).collect();
        actions.sort();
        actions.dedup();
        Self {
            resource_type: resource_type.into(),
            class: None,
            name: name.into(),
            actions,
        }
    }

    /// Sets the resource class (`repository(plugin)`), builder style.
    #[must_use]
    pub fn with_class(mut self, class: impl Into<String>) -> Self {
        self.class = Some(class.into());
        self
    }

    /// The resource type without its class: `repository`, `registry`, ….
    #[must_use]
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The resource class, if the type was written `type(class)`.
    #[must_use]
    pub fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    /// The resource name (may contain one `:` for a host:port prefix).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actions, sorted and unique.
    #[must_use]
    pub fn actions(&self) -> &[String] {
        &self.actions
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource_type)?;
        if let Some(c) = &self.class {
            write!(f, "({c})")?;
        }
        write!(f, ":{}:{}", self.name, self.actions.join(","))
    }
}

/// What is wrong with a scope string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Placeholder until the parser lands.
    #[error("scope {scope:?} is malformed")]
    Malformed {
        /// The offending scope text.
        scope: String,
    },
}
