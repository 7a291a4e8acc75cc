//! The docker_auth ACL language: ordered rules, first match wins.
//!
//! ```yaml
//! acl:
//!   - match: {ip: "127.0.0.0/8"}
//!     actions: ["*"]
//!     comment: "everything from localhost"
//!   - match: {account: "admin"}
//!     actions: ["*"]
//!   - match: {account: "/.+/", name: "${account}/*"}    # logged-in users own their namespace
//!     actions: ["*"]
//!   - match: {account: "/^(.+)@example\\.com$/", name: "${account:1}/*"}
//!     actions: ["pull", "push"]
//!   - match: {name: "${labels:group}-shared/*"}          # one try per value of label "group"
//!     actions: ["pull", "push"]
//!   - match: {labels: {group: "/^(ops|dev)$/"}, type: "registry", name: "catalog"}
//!     actions: ["*"]
//!   - match: {account: "", name: "public/*"}             # "" is the anonymous user
//!     actions: ["pull"]
//!   - match: {account: "mallory"}
//!     actions: []                                      # explicit deny
//! ```
//!
//! * **Order**: the first entry whose `match` clause matches decides; later entries are not
//!   consulted. No match: [`Acl::evaluate`] returns `None` (the next authorizer is asked).
//! * **Actions**: `["*"]` (exactly) grants every *requested* action; otherwise the grant is
//!   requested ∩ listed; `[]` denies. `"*"` next to other actions is a literal action name.
//!   A requested `*` (e.g. `registry:catalog:*`, skopeo's delete) is therefore granted only
//!   by `["*"]` or by a rule that lists `"*"` — as in docker_auth.
//! * **Clause**: `account`, `type` (the scope's type, without its `(class)`), `name`,
//!   `service`, `ip`, `labels`; all optional and AND-combined. `""` matches only the empty
//!   value; `{}` matches everything, even a request whose client IP is unknown.
//! * **Patterns**: `/…/` (longer than two bytes) is an unanchored Go RE2 search (anchor with
//!   `^…$`; `(?i)` works). Anything else is a Go `path.Match` glob: `*` and `?` never match
//!   `/` (so `${account}/*` does not cover `alice/team/app`), `[a-z]`, `[^…]`, `\` escapes;
//!   no `{a,b}`, no `**`. Matching is case-sensitive.
//! * **Placeholders** in `account`/`type`/`name`/`service` and in label conditions:
//!   `${account}`, `${type}`, `${name}`, `${service}` (request values, regex-quoted even in
//!   globs: `john.smith` becomes `john\.smith`); `${field:N}` (group N of that field's own
//!   `/regex/` applied to the request value; unquoted; left literal when out of range or
//!   unmatched; in a label condition only if it also appears in one of the four fields). In the four string fields, `${labels:X}` is tried with each value of label
//!   `X` (every combination when several labels appear), after a first try without label
//!   substitution; label values are not quoted (`test/*` acts as a glob). Unknown
//!   placeholders stay literal (a warning is logged at load).
//! * **`labels: {key: pattern}`**: the identity must have label `key` with at least one
//!   value matching the pattern.
//! * **`expiration`** (our addition, seconds or `1h`): tokens granting something by this
//!   rule live at most this long (the shortest lifetime among what a token grants wins; the
//!   token section's `expiration` applies when nothing sets one).
//! * **`ip`**: an address (one host) or a CIDR (host bits ignored); IPv4-mapped IPv6 clients
//!   match IPv4 rules; an unknown client address never matches an `ip` rule.
//!
//! Everything is validated and compiled by [`Acl::new`]; errors name the rule
//! (`acl[3].match.ip: …`). Regexes without placeholders are compiled once; substituted
//! regexes go through a small bounded cache.
//!
//! # Deviations from docker_auth
//!
//! * Malformed globs (`foo[`, trailing `\`) are rejected at load; docker_auth accepted them
//!   and they never matched.
//! * A missing `actions` key is rejected at load (docker_auth crashed when such a rule
//!   matched). A missing `match` key and unknown keys (`acount:`) are rejected too
//!   (docker_auth ignored unknown keys, which silently made match-all rules).
//! * A pattern written as a glob stays a glob after substitution: an account or label value
//!   of the form `/…/` does not turn it into a regex.
//! * At most 10 000 label combinations are tried per pattern.
//! * Regexes are Go syntax run by Rust's `regex` crate: Go-only escapes without a Rust
//!   equivalent (`\C`, octal `\123`) are rejected at load.

mod entry;
mod glob;
mod pattern;
mod placeholder;
mod re2;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use self::entry::{Actions, CompiledEntry, RequestCtx};
use self::pattern::RegexCache;
use crate::authz::{Authorizer, AuthzOutcome, AuthzRequest, Grant, RuleRef};
use crate::cache::TtlCache;
use crate::error::{BackendError, ConfigError};

/// One ACL rule as written in the configuration. Build one with [`AclEntry::new`] and set
/// the other fields, or deserialize it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AclEntry {
    /// The conditions, all of which must hold.
    #[serde(rename = "match")]
    pub match_: MatchConditions,
    /// The actions granted when the clause matches: `["*"]` for all requested actions, `[]`
    /// to deny. Required.
    pub actions: Option<Vec<String>>,
    /// Free text, reported with decisions (audit logs, `explain`).
    pub comment: Option<String>,
    /// Our addition: the lifetime of tokens this rule grants something in (seconds, or a
    /// number with a unit: `1h`). A token lives as long as the shortest lifetime set for
    /// what it grants; see [`TokenServiceBuilder::expiration_by_action`](crate::TokenServiceBuilder::expiration_by_action).
    #[serde(
        default,
        deserialize_with = "crate::config::deserialize_optional_duration"
    )]
    pub expiration: Option<std::time::Duration>,
}

/// The `match` clause of an [`AclEntry`]. An absent field is no constraint. Build one from
/// [`Default`] and set the fields, or deserialize it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MatchConditions {
    /// Pattern for the account name (`""` = anonymous only, `/.+/` = any logged-in user).
    pub account: Option<String>,
    /// Pattern for the scope's resource type, without its class (`repository`, `registry`).
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
    /// Pattern for the resource name (`library/alpine`, `catalog`).
    pub name: Option<String>,
    /// Pattern for the requested service.
    pub service: Option<String>,
    /// An IP address or CIDR the client address must be in.
    pub ip: Option<String>,
    /// Label name → pattern; each label needs at least one matching value.
    pub labels: Option<BTreeMap<String, String>>,
}

impl AclEntry {
    /// A rule granting `actions` (`["*"]`: all requested, `[]`: deny) when `match_` holds.
    #[must_use]
    pub fn new(
        match_: MatchConditions,
        actions: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            match_,
            actions: Some(actions.into_iter().map(Into::into).collect()),
            comment: None,
            expiration: None,
        }
    }
}

/// A compiled ACL. Cloning is cheap (shared).
///
/// # Example
///
/// ```
/// use docker_token_core::acl::{Acl, AclEntry};
/// use docker_token_core::{AuthzRequest, Identity, Scope};
///
/// let rules: Vec<AclEntry> = serde_json::from_str(
///     r#"[{"match": {"account": "/.+/", "name": "${account}/*"}, "actions": ["*"]},
///         {"match": {"account": "/.+/"}, "actions": ["pull"], "comment": "read-only"}]"#,
/// )?;
/// let acl = Acl::new(rules)?;
///
/// let alice = Identity::new("alice");
/// let scope = Scope::new("repository", "bob/app", ["pull", "push"]);
/// let req = AuthzRequest { identity: &alice, service: "registry", client_ip: None, scope: &scope };
/// let grant = acl.evaluate(&req).expect("rule 1 matches");
/// assert_eq!(grant.actions, ["pull"]);
/// assert_eq!(grant.rule.map(|r| r.index), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Acl {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Vec<CompiledEntry>,
    /// Distinct untemplated regexes (see `entry::share_regex_results`).
    memo_slots: usize,
    cache: RegexCache,
    /// The index of the first matching rule for a request's inputs (see
    /// [`Acl::decision_key`]): the same account, labels, resource and service get the same
    /// rule, and they repeat on every pull and push.
    decisions: TtlCache<Box<[u8]>, Option<usize>>,
    /// Some rule has an `ip` condition: the client address is an input.
    uses_ip: bool,
    /// Some rule reads labels: the labels are an input.
    uses_labels: bool,
}

/// Requests whose inputs take more than this many bytes (many long labels) are evaluated
/// without being remembered, so that the decisions' memory stays bounded.
const MAX_DECISION_KEY: usize = 1024;
/// Decisions remembered per ACL (about 100 bytes each).
const DECISIONS: usize = 4096;

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("rules", &self.inner.entries.len())
            .field("regex_cache", &self.inner.cache)
            .finish()
    }
}

impl Acl {
    /// Validates and compiles the rules.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] located at the offending rule (`acl[3].match.ip: …`): a regex that
    /// does not compile as Go RE2, a malformed glob, a bad IP or CIDR, missing `actions`.
    pub fn new(entries: Vec<AclEntry>) -> Result<Self, ConfigError> {
        let mut entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| CompiledEntry::compile(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        let memo_slots = entry::share_regex_results(&mut entries);
        let uses_ip = entries.iter().any(CompiledEntry::uses_ip);
        let uses_labels = entries.iter().any(CompiledEntry::uses_labels);
        Ok(Self {
            inner: Arc::new(Inner {
                entries,
                memo_slots,
                cache: RegexCache::default(),
                decisions: TtlCache::new(DECISIONS),
                uses_ip,
                uses_labels,
            }),
        })
    }

    /// The number of rules.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    /// Whether there are no rules (such an ACL never decides).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// The decision of the first matching rule, or `None` when no rule matches.
    #[must_use]
    pub fn evaluate(&self, req: &AuthzRequest<'_>) -> Option<Grant> {
        let key = self.decision_key(req);
        let remembered = key.as_deref().and_then(|k| self.inner.decisions.get(k));
        let index = match remembered {
            Some(index) => index?,
            None => {
                let index = self.first_match(req);
                if let Some(key) = key {
                    self.inner
                        .decisions
                        .insert_unexpiring(key.into_boxed_slice(), index);
                }
                index?
            }
        };
        let entry = self.inner.entries.get(index)?;
        let requested = req.scope.actions();
        let mut actions: Vec<String> = match &entry.actions {
            Actions::All => requested.to_vec(),
            Actions::Listed(listed) => requested
                .iter()
                .filter(|a| listed.binary_search(a).is_ok())
                .cloned()
                .collect(),
        };
        actions.sort();
        actions.dedup();
        tracing::debug!(rule = index, comment = entry.comment.as_deref(), granted = ?actions, "ACL rule matched");
        Some(Grant {
            actions,
            rule: Some(RuleRef {
                index,
                comment: entry.comment.clone(),
            }),
            expiration: entry.expiration,
        })
    }
}

impl Acl {
    /// The index of the first rule whose clause matches.
    fn first_match(&self, req: &AuthzRequest<'_>) -> Option<usize> {
        let ctx = RequestCtx::new(req, self.inner.memo_slots);
        let cache = &self.inner.cache;
        self.inner
            .entries
            .iter()
            .position(|e| e.matches(&ctx, cache))
    }

    /// Everything a rule's clause reads from the request, length-prefixed: account, type,
    /// name, service, and when some rule reads them, the client address and the labels.
    /// `None` when longer than [`MAX_DECISION_KEY`].
    fn decision_key(&self, req: &AuthzRequest<'_>) -> Option<Vec<u8>> {
        fn count(key: &mut Vec<u8>, n: usize) {
            key.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
        fn field(key: &mut Vec<u8>, bytes: &[u8]) {
            count(key, bytes.len());
            key.extend_from_slice(bytes);
        }
        let mut key = Vec::with_capacity(128);
        for value in [
            req.identity.account.as_str(),
            req.scope.resource_type(),
            req.scope.name(),
            req.service,
        ] {
            field(&mut key, value.as_bytes());
        }
        if self.inner.uses_ip {
            let (bytes, len) =
                crate::rate_limit::ip_bytes(req.client_ip.map(|ip| ip.to_canonical()));
            key.extend_from_slice(bytes.get(..len).unwrap_or_default());
        }
        if self.inner.uses_labels {
            let labels = &req.identity.labels;
            count(&mut key, labels.len());
            for (name, values) in labels {
                field(&mut key, name.as_bytes());
                count(&mut key, values.len());
                for v in values {
                    field(&mut key, v.as_bytes());
                }
                if key.len() > MAX_DECISION_KEY {
                    return None;
                }
            }
        }
        (key.len() <= MAX_DECISION_KEY).then_some(key)
    }
}

#[async_trait]
impl Authorizer for Acl {
    fn name(&self) -> &str {
        "acl"
    }

    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<AuthzOutcome, BackendError> {
        Ok(self
            .evaluate(request)
            .map_or(AuthzOutcome::NotApplicable, AuthzOutcome::Granted))
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;
