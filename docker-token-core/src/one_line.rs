//! [`OneLine`]: a value from a client or a backend, written into a log line safely.

use std::fmt;

/// Displays a string that came from outside (a user name, an LDAP DN, an IdP claim) with
/// every character that could end or rewrite a log line escaped: `\n` and `\r` as those two
/// characters, other control characters and the Unicode line and paragraph separators as
/// `\u{…}`. Anything else, tabs included, is written as it is, so ordinary values look the
/// same as with plain `Display`. The crates log such values through it (`account =
/// %OneLine(&account)`), so that one event stays one line whatever subscriber a library
/// user installs.
///
/// ```
/// use docker_token_core::OneLine;
///
/// assert_eq!(OneLine("alice").to_string(), "alice");
/// assert_eq!(
///     OneLine("x\nINFO token issued account=admin").to_string(),
///     "x\\nINFO token issued account=admin"
/// );
/// assert_eq!(OneLine("a\u{1b}[31m\u{2028}b").to_string(), "a\\u{1b}[31m\\u{2028}b");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OneLine<'a>(pub &'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        // the common case: printable ASCII (and tabs), written in one piece
        if text
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
        {
            return f.write_str(text);
        }
        let mut clean = 0;
        for (at, c) in text.char_indices() {
            let escaped = match c {
                '\t' => continue,
                '\n' => "\\n",
                '\r' => "\\r",
                c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => "",
                _ => continue,
            };
            f.write_str(text.get(clean..at).unwrap_or_default())?;
            if escaped.is_empty() {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                f.write_str(escaped)?;
            }
            clean = at + c.len_utf8();
        }
        f.write_str(text.get(clean..).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::OneLine;

    #[test]
    fn escapes_what_breaks_lines_and_keeps_the_rest() {
        let cases = [
            ("alice", "alice"),
            ("", ""),
            ("tab\there", "tab\there"),
            ("naïve ✓", "naïve ✓"),
            ("a\nb\rc", "a\\nb\\rc"),
            ("nul\0del\u{7f}c1\u{85}", "nul\\u{0}del\\u{7f}c1\\u{85}"),
            ("sep\u{2028}par\u{2029}", "sep\\u{2028}par\\u{2029}"),
            ("\n", "\\n"),
        ];
        for (raw, shown) in cases {
            let out = OneLine(raw).to_string();
            assert_eq!(out, shown, "{raw:?}");
            assert!(!out.contains(['\n', '\r', '\u{2028}', '\u{2029}']));
        }
    }
}
