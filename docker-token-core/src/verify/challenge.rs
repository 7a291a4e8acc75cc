//! [`Challenge`]: the registry's `WWW-Authenticate: Bearer …` value, byte for byte.

use std::fmt::{self, Write as _};

use crate::scope::Scope;

/// The `error` parameter of a Bearer challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The token is missing parts, malformed, or fails a key/iss/aud/time/signature check.
    InvalidToken,
    /// The token is valid but lacks an action the request needs.
    InsufficientScope,
}

impl ChallengeError {
    /// The parameter value: `invalid_token` or `insufficient_scope`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds the `WWW-Authenticate` header value a registry sends with a 401 (protocol.md §2.1):
///
/// ```text
/// Bearer realm="<realm>",service="<service>"[,scope="<s1> <s2>"][,error="invalid_token"|"insufficient_scope"]
/// ```
///
/// Values are quoted as Go's `%q` does (`"` and `\` backslash-escaped, control characters
/// as `\n`, `\x01`, `\u0085`, …); no spaces after commas; `scope` is present only when
/// access is required, with one `type:name:action1,action2` item per resource (actions of
/// the same resource merged), items joined by a single space. The registry orders
/// resources and actions randomly (Go map iteration); this builder keeps the order they
/// were added in. Add no `error` when the request carried no usable `Bearer` token.
///
/// Pure string building: put the value into your framework's header type yourself.
///
/// ```
/// use docker_token_core::verify::{Challenge, ChallengeError};
///
/// let challenge = Challenge::new("https://auth.example.com/token", "my registry")
///     .with_access("repository", "team/app", "pull")
///     .with_access("repository", "team/app", "push")
///     .with_access("repository", "team/base", "pull")
///     .with_error(ChallengeError::InsufficientScope);
/// assert_eq!(
///     challenge.to_string(),
///     r#"Bearer realm="https://auth.example.com/token",service="my registry",scope="repository:team/app:pull,push repository:team/base:pull",error="insufficient_scope""#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    realm: String,
    service: String,
    /// (type, name, actions) in the order added.
    resources: Vec<(String, String, Vec<String>)>,
    error: Option<ChallengeError>,
}

impl Challenge {
    /// A challenge for `GET /v2/`: realm and service, no scope, no error.
    pub fn new(realm: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            service: service.into(),
            resources: Vec::new(),
            error: None,
        }
    }

    /// Adds one required action on a resource (merged with earlier ones for the same
    /// resource; a repeated action is ignored).
    #[must_use]
    pub fn with_access(
        mut self,
        resource_type: impl Into<String>,
        name: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        self.add(resource_type.into(), name.into(), action.into());
        self
    }

    /// Adds every action of `scope` (its class is dropped, as in the registry's challenge).
    #[must_use]
    pub fn with_scope(mut self, scope: &Scope) -> Self {
        for action in scope.actions() {
            self.add(
                scope.resource_type().to_owned(),
                scope.name().to_owned(),
                action.clone(),
            );
        }
        self
    }

    /// Sets the `error` parameter.
    #[must_use]
    pub fn with_error(mut self, error: ChallengeError) -> Self {
        self.error = Some(error);
        self
    }

    /// The `error` parameter, if set.
    #[must_use]
    pub fn error(&self) -> Option<ChallengeError> {
        self.error
    }

    /// The unquoted `scope` parameter (`repository:a:pull,push registry:catalog:*`), or
    /// `None` when no access was added.
    #[must_use]
    pub fn scope_param(&self) -> Option<String> {
        if self.resources.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, (resource_type, name, actions)) in self.resources.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(resource_type);
            out.push(':');
            out.push_str(name);
            out.push(':');
            out.push_str(&actions.join(","));
        }
        Some(out)
    }

    /// The header value; the same as `to_string()`.
    #[must_use]
    pub fn header_value(&self) -> String {
        self.to_string()
    }

    fn add(&mut self, resource_type: String, name: String, action: String) {
        match self
            .resources
            .iter_mut()
            .find(|(t, n, _)| *t == resource_type && *n == name)
        {
            Some((_, _, actions)) => {
                if !actions.contains(&action) {
                    actions.push(action);
                }
            }
            None => self.resources.push((resource_type, name, vec![action])),
        }
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(64 + self.realm.len() + self.service.len());
        out.push_str("Bearer realm=");
        go_quote(&self.realm, &mut out);
        out.push_str(",service=");
        go_quote(&self.service, &mut out);
        if let Some(scope) = self.scope_param() {
            out.push_str(",scope=");
            go_quote(&scope, &mut out);
        }
        if let Some(error) = self.error {
            out.push_str(",error=\"");
            out.push_str(error.as_str());
            out.push('"');
        }
        f.write_str(&out)
    }
}

/// Appends `s` quoted like Go's `strconv.Quote` (what `%q` prints).
///
/// Exact for ASCII. Beyond ASCII, Go keeps what `unicode.IsPrint` calls printable and
/// escapes the rest; this escapes the C0/C1 controls, the non-ASCII spaces and separators,
/// the common format characters (soft hyphen, zero-width and bidi controls, BOM, …),
/// private-use code points and non-characters, and keeps every other character — an
/// unassigned code point is the only case where the two can differ.
pub(crate) fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if !go_printable(c) => {
                let code = u32::from(c);
                if code < 0x10000 {
                    let _ = write!(out, "\\u{code:04x}");
                } else {
                    let _ = write!(out, "\\U{code:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `strconv.IsPrint` for non-control characters, without Unicode tables: false for
/// spaces other than U+0020, line/paragraph separators, the format characters listed,
/// private use and non-characters.
fn go_printable(c: char) -> bool {
    let code = u32::from(c);
    if c.is_control() {
        return false;
    }
    !matches!(code,
        // Zs (except U+0020), Zl, Zp
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
        // Cf
        | 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890 | 0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        // Co
        | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD
        // non-characters (unassigned)
        | 0xFDD0..=0xFDEF)
        && code & 0xFFFE != 0xFFFE
}
