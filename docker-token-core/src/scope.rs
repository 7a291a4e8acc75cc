//! The scope grammar: `type[(class)]:name:action[,action…]` (protocol.md §5).
//!
//! Parsing is robust where clients are creative and strict where a mistake would change the
//! meaning:
//!
//! - the type ends at the **first** `:` and the actions start after the **last** `:`, so a
//!   name may carry a `host:port` prefix (`repository:myhost:5000/foo:pull`);
//! - the type must be `[a-z0-9]+`, optionally followed by `([a-z0-9]+)` (the class), and the
//!   whole type must match: `Repository` is an error, not `epository` as in docker_auth;
//! - actions are split on `,`, empty ones are dropped (`repository:x:` asks for nothing), each
//!   is `*` or `[A-Za-z0-9_-]+`; `*` is a real action;
//! - names are otherwise taken as they come (upper case, dots, `__`, ports): the registry
//!   decides what a valid repository name is, we only refuse empty names and names with
//!   whitespace or control characters.
//!
//! [`parse_scopes`] turns the values of repeated `scope` parameters into a list, splitting
//! each value on spaces and merging requests for the same resource.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The longest scope text (in bytes) [`Scope::parse`] accepts. Repository names are at most
/// 255 characters; this leaves room for a type, a host and actions without letting a client
/// make us carry kilobytes of junk around.
pub const MAX_SCOPE_LEN: usize = 4096;

/// The most distinct resources one request may ask for ([`parse_scopes`]). Clients ask for
/// one to three; a token carrying thousands would be megabytes of header for the registry.
pub const MAX_SCOPES: usize = 256;

/// How much of an offending scope an error repeats (in characters).
const ERROR_SCOPE_CHARS: usize = 128;

/// How much of an offending part (type, class, action) an error repeats (in characters).
const ERROR_PART_CHARS: usize = 64;

/// One requested (or granted) resource scope, e.g. `repository:library/alpine:pull,push`.
///
/// Actions are kept sorted and de-duplicated; `*` is a real action.
///
/// ```
/// use docker_token_core::Scope;
///
/// let s: Scope = "repository:myhost:5000/foo:push,pull".parse().unwrap();
/// assert_eq!(s.resource_type(), "repository");
/// assert_eq!(s.name(), "myhost:5000/foo");
/// assert_eq!(s.actions(), ["pull", "push"]);
/// assert_eq!(s.to_string(), "repository:myhost:5000/foo:pull,push");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    resource_type: String,
    class: Option<String>,
    name: String,
    actions: Vec<String>,
}

impl Scope {
    /// Builds a scope from parts; actions are sorted and de-duplicated. The parts are not
    /// validated; use [`Scope::parse`] for text from a client.
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

    /// Parses one scope, `type[(class)]:name:actions`.
    ///
    /// # Errors
    ///
    /// A [`ScopeError`] naming the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        if text.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong {
                scope: clip(text, ERROR_SCOPE_CHARS),
                len: text.len(),
                max: MAX_SCOPE_LEN,
            });
        }
        let scope = || clip(text, ERROR_SCOPE_CHARS);

        let Some((type_part, rest)) = text.split_once(':') else {
            return Err(ScopeError::MissingName { scope: scope() });
        };
        let Some((name, actions_part)) = rest.rsplit_once(':') else {
            return Err(ScopeError::MissingActions { scope: scope() });
        };

        let (resource_type, class) = parse_type(type_part, &scope)?;
        check_name(name, &scope)?;

        let mut actions = Vec::new();
        for action in actions_part.split(',').filter(|a| !a.is_empty()) {
            if !is_action(action) {
                return Err(ScopeError::InvalidAction {
                    scope: scope(),
                    action: clip(action, ERROR_PART_CHARS),
                });
            }
            actions.push(action);
        }

        let parsed = Self::new(resource_type, name, actions);
        Ok(match class {
            Some(class) => parsed.with_class(class),
            None => parsed,
        })
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

    /// Whether `other` names the same resource (type, class and name; actions ignored).
    #[must_use]
    pub fn same_resource(&self, other: &Self) -> bool {
        self.resource_type == other.resource_type
            && self.class == other.class
            && self.name == other.name
    }

    /// Adds the actions of another request for the same resource, keeping them sorted and
    /// unique.
    fn merge_actions(&mut self, more: &[String]) {
        self.actions.extend(more.iter().cloned());
        self.actions.sort();
        self.actions.dedup();
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource_type)?;
        if let Some(c) = &self.class {
            f.write_str("(")?;
            f.write_str(c)?;
            f.write_str(")")?;
        }
        f.write_str(":")?;
        f.write_str(&self.name)?;
        f.write_str(":")?;
        write_joined(f, &self.actions)
    }
}

/// Writes `items` separated by commas (what `items.join(",")` would build, without
/// building it: scopes are written into every audit line).
pub(crate) fn write_joined(f: &mut fmt::Formatter<'_>, items: &[String]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        f.write_str(item)?;
    }
    Ok(())
}

/// A scope's resource: (type, class, name).
type ResourceKey = (String, Option<String>, String);

fn resource_key(s: &Scope) -> ResourceKey {
    (s.resource_type.clone(), s.class.clone(), s.name.clone())
}

/// Up to this many distinct scopes, [`parse_scopes`] finds repeats by comparing.
const LINEAR_SCOPES: usize = 8;

/// Parses the values of (possibly repeated) `scope` parameters.
///
/// Each value is split on spaces (runs of spaces and empty values are skipped, wherever they
/// occur). Requests for the same resource — same type, class and name — are merged into one
/// scope with the union of their actions; the result keeps the order in which resources
/// first appear.
///
/// ```
/// use docker_token_core::scope::parse_scopes;
///
/// let scopes = parse_scopes(["", "repository:a:push,pull  registry:catalog:*", "repository:a:pull"])
///     .unwrap();
/// let texts: Vec<String> = scopes.iter().map(ToString::to_string).collect();
/// assert_eq!(texts, ["repository:a:pull,push", "registry:catalog:*"]);
/// ```
///
/// # Errors
///
/// The first [`ScopeError`] met; a request with one bad scope is rejected as a whole, and so
/// is one asking for more than [`MAX_SCOPES`] distinct resources.
pub fn parse_scopes<I, S>(values: I) -> Result<Vec<Scope>, ScopeError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut scopes: Vec<Scope> = Vec::new();
    // (type, class, name) -> index in `scopes`, so that merging stays linear; built only
    // past a few scopes (a request names one or two, and hashing them costs more than
    // comparing)
    let mut index: Option<HashMap<ResourceKey, usize>> = None;
    for value in values {
        for item in value.as_ref().split_ascii_whitespace() {
            let scope = Scope::parse(item)?;
            let found = match &index {
                Some(index) => index.get(&resource_key(&scope)).copied(),
                None => scopes.iter().position(|s| s.same_resource(&scope)),
            };
            if let Some(existing) = found.and_then(|i| scopes.get_mut(i)) {
                existing.merge_actions(&scope.actions);
            } else if scopes.len() >= MAX_SCOPES {
                return Err(ScopeError::TooMany {
                    scope: clip(item, ERROR_SCOPE_CHARS),
                    max: MAX_SCOPES,
                });
            } else {
                if let Some(index) = &mut index {
                    index.insert(resource_key(&scope), scopes.len());
                }
                scopes.push(scope);
                if index.is_none() && scopes.len() >= LINEAR_SCOPES {
                    index = Some(
                        scopes
                            .iter()
                            .enumerate()
                            .map(|(i, s)| (resource_key(s), i))
                            .collect(),
                    );
                }
            }
        }
    }
    Ok(scopes)
}

/// Splits `type[(class)]` and checks both parts.
fn parse_type<'a>(
    part: &'a str,
    scope: &impl Fn() -> String,
) -> Result<(&'a str, Option<&'a str>), ScopeError> {
    let (base, class) = match part.split_once('(') {
        None => (part, None),
        Some((base, rest)) => (base, Some(rest)),
    };
    if !is_lower_alnum(base) {
        return Err(ScopeError::InvalidType {
            scope: scope(),
            found: clip(base, ERROR_PART_CHARS),
        });
    }
    let Some(rest) = class else {
        return Ok((base, None));
    };
    match rest.strip_suffix(')') {
        Some(class) if is_lower_alnum(class) => Ok((base, Some(class))),
        _ => Err(ScopeError::InvalidClass {
            scope: scope(),
            found: clip(&format!("({rest}"), ERROR_PART_CHARS),
        }),
    }
}

/// Refuses empty names and names that could not have come from a registry challenge.
fn check_name(name: &str, scope: &impl Fn() -> String) -> Result<(), ScopeError> {
    if name.is_empty() {
        return Err(ScopeError::EmptyName { scope: scope() });
    }
    let reason = if name.chars().any(char::is_whitespace) {
        "contains whitespace"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(ScopeError::InvalidName {
        scope: scope(),
        reason,
    })
}

/// `[a-z0-9]+`
fn is_lower_alnum(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `*` or `[A-Za-z0-9_-]+` (non-empty is checked by the caller).
fn is_action(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

/// At most `max` characters of `s`, with `…` when something was cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// What is wrong with a scope string. Every variant carries the offending scope text
/// (clipped to 128 characters) and prints it escaped, so the message is safe to log and to
/// return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// There is no `:` at all, so no name (expected `type:name:actions`).
    #[error("scope {scope:?} has no name (expected type:name:actions)")]
    MissingName {
        /// The offending scope text.
        scope: String,
    },
    /// There is only one `:`, so no actions part (expected `type:name:actions`; an empty
    /// actions part, `type:name:`, is fine).
    #[error("scope {scope:?} has no actions part (expected type:name:actions)")]
    MissingActions {
        /// The offending scope text.
        scope: String,
    },
    /// The resource type is not `[a-z0-9]+`.
    #[error("scope {scope:?}: resource type {found:?} is not made of [a-z0-9]")]
    InvalidType {
        /// The offending scope text.
        scope: String,
        /// The type as written, without its class.
        found: String,
    },
    /// The resource class is not `([a-z0-9]+)`.
    #[error(
        "scope {scope:?}: resource class {found:?} is not of the form (class) with class made of [a-z0-9]"
    )]
    InvalidClass {
        /// The offending scope text.
        scope: String,
        /// The class as written, from its `(`.
        found: String,
    },
    /// The name between the type and the actions is empty.
    #[error("scope {scope:?} has an empty name")]
    EmptyName {
        /// The offending scope text.
        scope: String,
    },
    /// The name contains characters no registry would use.
    #[error("scope {scope:?}: the name {reason}")]
    InvalidName {
        /// The offending scope text.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An action is neither `*` nor made of `[A-Za-z0-9_-]`.
    #[error("scope {scope:?}: action {action:?} is neither * nor made of [A-Za-z0-9_-]")]
    InvalidAction {
        /// The offending scope text.
        scope: String,
        /// The offending action.
        action: String,
    },
    /// The request names more than [`MAX_SCOPES`] distinct resources.
    #[error("more than {max} distinct scopes requested (the first one over: {scope:?})")]
    TooMany {
        /// The first scope over the limit.
        scope: String,
        /// The limit.
        max: usize,
    },
    /// The scope is longer than [`MAX_SCOPE_LEN`] bytes.
    #[error("scope {scope:?} is {len} bytes long, more than the {max} allowed")]
    TooLong {
        /// The beginning of the offending scope text.
        scope: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ScopeError {
    /// The offending scope text (clipped).
    #[must_use]
    pub fn scope(&self) -> &str {
        match self {
            Self::MissingName { scope }
            | Self::MissingActions { scope }
            | Self::InvalidType { scope, .. }
            | Self::InvalidClass { scope, .. }
            | Self::EmptyName { scope }
            | Self::InvalidName { scope, .. }
            | Self::InvalidAction { scope, .. }
            | Self::TooMany { scope, .. }
            | Self::TooLong { scope, .. } => scope,
        }
    }
}

#[cfg(test)]
mod tests;
