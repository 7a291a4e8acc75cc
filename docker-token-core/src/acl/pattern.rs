//! One compiled ACL pattern (`/regex/` or glob) and the cache of substituted regexes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use crate::cache::TtlCache;

use super::glob::{glob_match, validate_glob};
use super::placeholder::{Vars, substitute};
use super::re2;

/// Size limit for regexes compiled from the configuration (the `regex` crate's default).
const LOAD_SIZE_LIMIT: usize = 10 << 20;
/// Size limit for regexes compiled per request after substitution: label values come from
/// backends and must not be able to make us build huge automata.
const REQUEST_SIZE_LIMIT: usize = 1 << 20;
/// Entries kept in the substituted-regex cache.
const CACHE_CAPACITY: usize = 1024;

/// Whether a (substituted) pattern text is a regex: `/…/` and longer than two bytes.
fn regex_body(p: &str) -> Option<&str> {
    if p.len() > 2 {
        p.strip_prefix('/')?.strip_suffix('/')
    } else {
        None
    }
}

/// A validated pattern.
#[derive(Debug)]
pub(crate) struct Pattern {
    raw: String,
    /// The compiled raw regex when the pattern is written `/…/` (placeholders, if any, are
    /// literal text in it, as in docker_auth's validation and capture groups).
    regex: Option<Arc<Regex>>,
    /// Contains `${`: must be substituted per request.
    templated: bool,
    /// Where each `${labels:` starts in `raw` (none: no label permutations to try).
    label_starts: Vec<usize>,
    /// Every `${` starts a `${labels:`: substituting the request values and capture groups
    /// changes nothing (only label values do).
    labels_only: bool,
    /// A glob without placeholders or wildcards: matching is comparing.
    literal: bool,
}

impl Pattern {
    /// Validates and compiles `raw`. The message names the problem, not the location.
    pub(crate) fn compile(raw: &str) -> Result<Self, String> {
        let regex = match regex_body(raw) {
            Some(body) => Some(Arc::new(
                re2::compile(body, LOAD_SIZE_LIMIT)
                    .map_err(|e| format!("invalid regex pattern {raw:?}: {e}"))?,
            )),
            None => {
                validate_glob(raw).map_err(|_| {
                    format!(
                        "invalid glob pattern {raw:?}: unterminated [ ], bad range or trailing \\ \
                         (wrap a regex in slashes: /…/)"
                    )
                })?;
                None
            }
        };
        let templated = raw.contains("${");
        let literal = regex.is_none()
            && !templated
            && !raw.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'));
        Ok(Self {
            raw: raw.to_owned(),
            regex,
            templated,
            label_starts: raw.match_indices(LABELS).map(|(i, _)| i).collect(),
            labels_only: raw
                .match_indices("${")
                .all(|(i, _)| raw.get(i..).is_some_and(|at| at.starts_with(LABELS))),
            literal,
        })
    }

    /// The pattern as written.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// The compiled regex, when the pattern is a `/regex/`.
    pub(crate) fn regex(&self) -> Option<&Arc<Regex>> {
        self.regex.as_ref()
    }

    pub(crate) fn is_templated(&self) -> bool {
        self.templated
    }

    /// Contains `${labels:`: may need label permutations.
    pub(crate) fn is_label_templated(&self) -> bool {
        !self.label_starts.is_empty()
    }

    /// The placeholder `${labels:KEY}` as it appears in the pattern, if it does (the text
    /// `raw.contains(format!("${{labels:{key}}}"))` looks for, without building it).
    pub(crate) fn label_placeholder(&self, key: &str) -> Option<&str> {
        self.label_starts.iter().find_map(|&start| {
            let end = start + LABELS.len() + key.len();
            let text = self.raw.get(start..=end)?;
            (text.get(LABELS.len()..end - start) == Some(key) && text.ends_with('}'))
                .then_some(text)
        })
    }

    /// Matches without substitution (for patterns without placeholders).
    pub(crate) fn matches_plain(&self, value: &str) -> bool {
        match &self.regex {
            Some(re) => re.is_match(value),
            None if self.literal => self.raw == value,
            None => glob_match(&self.raw, value).unwrap_or(false),
        }
    }

    /// Substitutes `vars` and matches.
    pub(crate) fn matches_with(&self, value: &str, vars: Vars<'_, '_>, cache: &RegexCache) -> bool {
        if !self.templated {
            return self.matches_plain(value);
        }
        let no_label_values = vars
            .base
            .iter()
            .chain(vars.extra)
            .all(|(k, _)| !k.starts_with(LABELS));
        let text = if self.labels_only && no_label_values {
            // the first, label-less attempt of a label pattern: nothing to replace
            Cow::Borrowed(self.raw.as_str())
        } else {
            Cow::Owned(substitute(&self.raw, vars))
        };
        // As in docker_auth, the kind is decided on the substituted text, except that a
        // pattern written as a glob stays a glob (a request value such as an account named
        // "/a/" must never turn a glob into a regex).
        match (&self.regex, regex_body(&text)) {
            (Some(_), Some(body)) => cache.get(body).is_some_and(|re| re.is_match(value)),
            _ => glob_match(&text, value).unwrap_or(false),
        }
    }
}

/// The start of a label placeholder, `${labels:KEY}`.
const LABELS: &str = "${labels:";

/// Regexes compiled after substitution, keyed by their text, so steady traffic does not
/// recompile. Bounded (the core [`TtlCache`], entries without expiry). Failed compilations
/// are cached too (as `None`).
pub(crate) struct RegexCache {
    map: TtlCache<String, Option<Arc<Regex>>>,
}

impl Default for RegexCache {
    fn default() -> Self {
        Self {
            map: TtlCache::new(CACHE_CAPACITY),
        }
    }
}

impl fmt::Debug for RegexCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegexCache")
            .field("len", &self.map.len())
            .finish()
    }
}

impl RegexCache {
    /// The compiled regex for `body`, or `None` when it does not compile (such a pattern
    /// simply does not match).
    pub(crate) fn get(&self, body: &str) -> Option<Arc<Regex>> {
        if let Some(hit) = self.map.get(body) {
            return hit;
        }
        let compiled = match re2::compile(body, REQUEST_SIZE_LIMIT) {
            Ok(re) => Some(Arc::new(re)),
            Err(e) => {
                tracing::debug!(pattern = body, error = %e, "substituted ACL regex does not compile; no match");
                None
            }
        };
        self.map
            .insert_unexpiring(body.to_owned(), compiled.clone());
        compiled
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn kinds_and_validation() {
        assert!(Pattern::compile("/foo.*/").unwrap().regex().is_some());
        assert!(
            Pattern::compile("//").unwrap().regex().is_none(),
            "// is a glob"
        );
        assert!(Pattern::compile("/").unwrap().regex().is_none());
        let err = Pattern::compile("/foo?*/").unwrap_err();
        assert!(err.contains("nested repetition"), "{err}");
        let err = Pattern::compile("foo[").unwrap_err();
        assert!(err.contains("invalid glob pattern \"foo[\""), "{err}");
        assert!(
            Pattern::compile("/^${account}_.*$/")
                .unwrap()
                .is_templated()
        );
    }

    #[test]
    fn label_placeholders_are_found_where_contains_finds_them() {
        let raws = [
            "${labels:team}/*",
            "/^${labels:a}-${labels:ab}$/",
            "${labels:a}b}/x",
            "${labels:${labels:x}}",
            "x${labels:é}y",
            "no labels",
            "${labels:}",
        ];
        let keys = ["team", "a", "ab", "a}b", "x", "${labels:x", "é", "", "tea"];
        for raw in raws {
            let p = Pattern::compile(raw).unwrap();
            for key in keys {
                let placeholder = format!("${{labels:{key}}}");
                let expected = raw.contains(&placeholder).then_some(placeholder.as_str());
                assert_eq!(p.label_placeholder(key), expected, "{raw:?} {key:?}");
            }
        }
        // label-only patterns skip the first substitution: it must change nothing
        let base = [
            (Cow::Borrowed("${account}"), Cow::Borrowed("a")),
            (Cow::Borrowed("${name}"), Cow::Borrowed("n")),
            (Cow::Borrowed("${account:1}"), Cow::Borrowed("c")),
        ];
        for raw in raws
            .iter()
            .chain(&["${account}/${labels:x}", "$${labels:x}", "${name:1}"])
        {
            let p = Pattern::compile(raw).unwrap();
            let unchanged = super::substitute(raw, Vars::new(&base)) == *raw;
            assert!(!p.labels_only || unchanged, "{raw:?}");
        }
        assert!(Pattern::compile("${labels:team}/*").unwrap().labels_only);
        assert!(
            !Pattern::compile("${account}/${labels:x}")
                .unwrap()
                .labels_only
        );
        let literal = Pattern::compile("user1").unwrap();
        assert!(literal.matches_plain("user1") && !literal.matches_plain("user10"));
        assert!(Pattern::compile("a\\*").unwrap().matches_plain("a*"));
    }

    #[test]
    fn regex_search_is_unanchored() {
        let p = Pattern::compile("/z$/").unwrap();
        assert!(p.matches_plain("baz"));
        assert!(!p.matches_plain("zab"));
    }

    #[test]
    fn a_glob_never_becomes_a_regex() {
        let cache = RegexCache::default();
        let p = Pattern::compile("${account}").unwrap();
        let vars = [(Cow::Borrowed("${account}"), Cow::Borrowed("/a/"))];
        assert!(!p.matches_with("banana", Vars::new(&vars), &cache));
        assert!(p.matches_with("/a/", Vars::new(&vars), &cache));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn cache_is_reused_and_bounded() {
        let cache = RegexCache::default();
        let p = Pattern::compile("/^${labels:x}$/").unwrap();
        for i in 0..3 {
            let vars = [(
                Cow::Borrowed("${labels:x}"),
                Cow::Owned(format!("v{}", i % 2)),
            )];
            assert!(p.matches_with(&format!("v{}", i % 2), Vars::new(&vars), &cache));
        }
        assert_eq!(cache.len(), 2);
        for i in 0..CACHE_CAPACITY + 5 {
            assert!(cache.get(&format!("^{i}$")).is_some());
        }
        assert!(cache.len() <= CACHE_CAPACITY);
        assert!(
            cache.get("a**").is_none(),
            "an invalid substituted regex does not match"
        );
    }
}
