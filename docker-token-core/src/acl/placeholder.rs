//! `${…}` placeholders: discovery at load time and substitution at request time.
//!
//! Substitution follows Go's `strings.Replacer`: one left-to-right pass, the first key (in
//! list order) that matches at a position wins, and substituted text is not scanned again.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use regex::Regex;

/// A request field that patterns can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Account,
    Type,
    Name,
    Service,
}

impl Field {
    pub(crate) const ALL: [Self; 4] = [Self::Account, Self::Type, Self::Name, Self::Service];

    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Type => "type",
            Self::Name => "name",
            Self::Service => "service",
        }
    }

    pub(crate) fn placeholder(self) -> &'static str {
        match self {
            Self::Account => "${account}",
            Self::Type => "${type}",
            Self::Name => "${name}",
            Self::Service => "${service}",
        }
    }

    /// docker_auth resolves `${x:N}` by reflecting on `strings.Title(x)`, so `account` and
    /// `Account` both work (and nothing else).
    fn from_capture_key(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| key == f.key() || key == f.title())
    }

    fn title(self) -> &'static str {
        match self {
            Self::Account => "Account",
            Self::Type => "Type",
            Self::Name => "Name",
            Self::Service => "Service",
        }
    }
}

/// A `${field:N}` placeholder: the N-th capture group of `field`'s own regex applied to the
/// request's value of `field`.
#[derive(Clone, Debug)]
pub(crate) struct CaptureVar {
    /// The placeholder text as written.
    pub(crate) text: String,
    pub(crate) field: Field,
    pub(crate) index: usize,
    pub(crate) regex: Arc<Regex>,
}

impl CaptureVar {
    /// The captured text, or `None` when the regex does not match or the group is out of
    /// range (the placeholder then stays literal). A group that did not take part gives "".
    pub(crate) fn value<'v>(&self, input: &'v str) -> Option<&'v str> {
        if self.index < 1 {
            return None;
        }
        let caps = self.regex.captures(input)?;
        if self.index >= caps.len() {
            return None;
        }
        Some(caps.get(self.index).map_or("", |m| m.as_str()))
    }
}

/// docker_auth's capture-placeholder syntax, with its lazy `.+?` (which makes
/// `${account}/${name:1}` one odd, unusable key, exactly as upstream).
static CAPTURE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\$\{(.+?):([0-9]+)\}").ok());

/// Finds the `${field:N}` placeholders in `raw`, in order, as `(text, key, index)`.
/// An index too large for `usize` becomes 0, which never resolves (Go's `Atoi` failure).
pub(crate) fn find_captures(raw: &str) -> Vec<(String, Option<Field>, usize)> {
    let Some(re) = CAPTURE.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(raw)
        .filter_map(|c| {
            let whole = c.get(0)?.as_str().to_owned();
            let key = c.get(1)?.as_str();
            let index = c.get(2)?.as_str().parse().unwrap_or(0);
            Some((whole, Field::from_capture_key(key), index))
        })
        .collect()
}

/// `${…}` texts in `raw` that no rule of the language substitutes (they stay literal).
pub(crate) fn unknown_placeholders(raw: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let tail = rest.get(start..).unwrap_or_default();
        let Some(end) = tail.find('}') else { break };
        let text = tail.get(..=end).unwrap_or_default();
        let inner = text
            .get(2..text.len().saturating_sub(1))
            .unwrap_or_default();
        let known = Field::ALL.iter().any(|f| f.key() == inner)
            || inner.starts_with("labels:")
            || inner.rsplit_once(':').is_some_and(|(k, n)| {
                Field::from_capture_key(k).is_some()
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            });
        if !known {
            out.push(text);
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    out
}

/// Go's `regexp.QuoteMeta`: a backslash before each of `\.+*?()|[]{}^$`.
pub(crate) fn quote_meta(s: &str) -> Cow<'_, str> {
    // a `match` compiles to a few comparisons; `SPECIAL.contains` was a search per byte
    let special = |b: u8| {
        matches!(
            b,
            b'\\'
                | b'.'
                | b'+'
                | b'*'
                | b'?'
                | b'('
                | b')'
                | b'|'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'^'
                | b'$'
        )
    };
    if !s.bytes().any(special) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii() && special(c as u8) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// A placeholder and its replacement.
pub(crate) type Var<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The substitution list in Go's order: the request values and capture groups (`base`),
/// then the label values of one combination (`extra`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vars<'v, 'a> {
    pub(crate) base: &'v [Var<'a>],
    pub(crate) extra: &'v [Var<'a>],
}

impl<'v, 'a> Vars<'v, 'a> {
    /// Only `base`.
    pub(crate) fn new(base: &'v [Var<'a>]) -> Self {
        Self { base, extra: &[] }
    }

    fn find(&self, at: &str) -> Option<&'v Var<'a>> {
        self.base
            .iter()
            .chain(self.extra)
            .find(|(k, _)| at.starts_with(k.as_ref()))
    }
}

/// The position of the first `${` (a byte scan: `str::find` sets up a substring searcher
/// on every call, which costs more than these short patterns).
fn find_open(s: &str) -> Option<usize> {
    s.as_bytes().windows(2).position(|w| w == b"${")
}

/// Replaces every occurrence of the keys in `vars`, Go `strings.Replacer` style.
pub(crate) fn substitute(raw: &str, vars: Vars<'_, '_>) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    let mut rest = raw;
    while let Some(pos) = find_open(rest) {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let at = rest.get(pos..).unwrap_or_default();
        match vars.find(at) {
            Some((k, v)) => {
                out.push_str(v);
                rest = at.get(k.len()..).unwrap_or_default();
            }
            None => {
                out.push_str("${");
                rest = at.get(2..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v<'a>(k: &'a str, val: &'a str) -> Var<'a> {
        (Cow::Borrowed(k), Cow::Borrowed(val))
    }

    #[test]
    fn quote_meta_matches_go() {
        assert_eq!(quote_meta("john.smith"), "john\\.smith");
        assert_eq!(
            quote_meta(r"a\.+*?()|[]{}^$b"),
            r"a\\\.\+\*\?\(\)\|\[\]\{\}\^\$b"
        );
        assert_eq!(quote_meta("a-b/c_d#é"), "a-b/c_d#é");
        assert!(matches!(quote_meta("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn substitution_is_single_pass() {
        let vars = [v("${account}", "${name}"), v("${name}", "repo")];
        assert_eq!(
            substitute("${account}/${name}/${x}", Vars::new(&vars)),
            "${name}/repo/${x}"
        );
        assert_eq!(
            substitute("no placeholders", Vars::new(&vars)),
            "no placeholders"
        );
        assert_eq!(substitute("$${name}$", Vars::new(&vars)), "$repo$");
        let extra = [v("${labels:g}", "x"), v("${name}", "shadowed")];
        let both = Vars {
            base: &vars,
            extra: &extra,
        };
        assert_eq!(
            substitute("${name}/${labels:g}", both),
            "repo/x",
            "earlier keys win"
        );
    }

    #[test]
    fn finds_capture_placeholders_like_docker_auth() {
        let found = find_captures("${account:1}-${Account:2}/x");
        let fields: Vec<_> = found.iter().map(|(t, f, i)| (t.as_str(), *f, *i)).collect();
        assert_eq!(
            fields,
            [
                ("${account:1}", Some(Field::Account), 1),
                ("${Account:2}", Some(Field::Account), 2)
            ]
        );
        // Upstream's lazy `.+?` swallows a preceding placeholder into the key.
        let odd = find_captures("${account}/${name:1}");
        assert_eq!(odd.len(), 1);
        assert_eq!(odd.first().map(|c| c.1), Some(None));
        assert_eq!(
            find_captures("${name:99999999999999999999999}")
                .first()
                .map(|c| c.2),
            Some(0)
        );
    }

    #[test]
    fn reports_unknown_placeholders() {
        assert_eq!(
            unknown_placeholders("${account}/${acount}/${labels:g}/${name:1}/${ip}"),
            ["${acount}", "${ip}"]
        );
        assert!(unknown_placeholders("{labels:tier}").is_empty());
    }
}
