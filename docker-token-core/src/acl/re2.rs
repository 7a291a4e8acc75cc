//! Go RE2 syntax on top of Rust's `regex` crate.
//!
//! docker_auth compiles `/…/` patterns with Go's `regexp`. Rust's `regex` is close but not
//! identical, so a Go pattern is first rewritten into an equivalent Rust pattern:
//!
//! * Go rejects what Rust would accept: nested repetition operators (`a**`, `foo?*`,
//!   `a{2}*`), repeat counts above 1000, and flags other than `i`, `m`, `s`, `U`.
//! * Go accepts what Rust would reject: a `{` that does not start a valid repetition is a
//!   literal (so `/^${account}_.*/` is valid *before* substitution), `\p{^Greek}`, `\Q…\E`,
//!   and `[` inside a character set is a literal.
//! * Go's `\d`, `\w`, `\s` and `\b` are ASCII-only; Rust's are Unicode. They are rewritten to
//!   explicit ASCII sets.
//!
//! Go-only escapes without a Rust counterpart (`\C`, octal escapes) are rejected.

use regex::{Regex, RegexBuilder};

/// Compiles a Go regular expression (without the surrounding slashes).
pub(crate) fn compile(go: &str, size_limit: usize) -> Result<Regex, String> {
    let rust = translate(go)?;
    RegexBuilder::new(&rust)
        .size_limit(size_limit)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => s.lines().last().unwrap_or("syntax error").trim().to_owned(),
            regex::Error::CompiledTooBig(_) => "the expression is too large".to_owned(),
            other => other.to_string(),
        })
}

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = "\\t\\n\\x0C\\r ";

/// Rewrites Go RE2 syntax into Rust `regex` syntax, rejecting what Go rejects.
fn translate(go: &str) -> Result<String, String> {
    let mut out = String::with_capacity(go.len() + 8);
    let mut it = go.char_indices().peekable();
    // Whether the previous token was a repetition operator (Go forbids stacking them).
    let mut last_was_repeat = false;
    while let Some((pos, c)) = it.next() {
        let mut is_repeat = false;
        match c {
            '\\' => {
                let Some((_, e)) = it.next() else {
                    return Err("trailing backslash".to_owned());
                };
                match e {
                    'd' | 'w' | 's' => {
                        out.push('[');
                        out.push_str(perl_class(e));
                        out.push(']');
                    }
                    'D' | 'W' | 'S' => {
                        out.push_str("[^");
                        out.push_str(perl_class(e.to_ascii_lowercase()));
                        out.push(']');
                    }
                    'b' | 'B' => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    'Q' => {
                        let rest = go.get(pos + 2..).unwrap_or_default();
                        let (lit, consumed) = match rest.find("\\E") {
                            Some(end) => (rest.get(..end).unwrap_or_default(), end + 2),
                            None => (rest, rest.len()),
                        };
                        out.push_str(&regex::escape(lit));
                        for _ in 0..lit.chars().count() + (consumed - lit.len()) {
                            it.next();
                        }
                    }
                    'p' | 'P' => push_unicode_class(&mut out, e, &mut it)?,
                    'x' => {
                        out.push_str("\\x");
                        if it.peek().map(|(_, c)| *c) == Some('{') {
                            copy_braces(&mut out, &mut it)?;
                        }
                    }
                    '<' | '>' => out.push(e),
                    'C' => return Err("\\C (any byte) is not supported".to_owned()),
                    '0'..='9' => return Err(format!("octal escape \\{e} is not supported")),
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' => translate_class(&mut out, &mut it)?,
            '{' => {
                let rest = go.get(pos..).unwrap_or_default();
                match parse_repeat(rest) {
                    Some((min, max, len)) => {
                        if min > 1000 || max.is_some_and(|m| m > 1000 || min > m) {
                            return Err(format!(
                                "invalid repeat count {:?}",
                                rest.get(..len).unwrap_or(rest)
                            ));
                        }
                        if last_was_repeat {
                            return Err(nested(rest.get(..len).unwrap_or(rest)));
                        }
                        out.push_str(rest.get(..len).unwrap_or_default());
                        for _ in 1..len {
                            it.next();
                        }
                        is_repeat = true;
                        if it.peek().map(|(_, c)| *c) == Some('?') {
                            it.next();
                            out.push('?');
                        }
                    }
                    None => out.push_str("\\{"),
                }
            }
            '}' => out.push_str("\\}"),
            '*' | '+' | '?' => {
                if last_was_repeat {
                    return Err(nested(&c.to_string()));
                }
                out.push(c);
                is_repeat = true;
                if it.peek().map(|(_, c)| *c) == Some('?') {
                    it.next();
                    out.push('?');
                }
            }
            '(' => {
                out.push('(');
                if it.peek().map(|(_, c)| *c) == Some('?') {
                    it.next();
                    out.push('?');
                    check_group_flags(&mut out, &mut it)?;
                }
            }
            _ => out.push(c),
        }
        last_was_repeat = is_repeat;
    }
    Ok(out)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn nested(op: &str) -> String {
    format!("invalid nested repetition operator {op:?}")
}

fn perl_class(c: char) -> &'static str {
    match c {
        'd' => DIGIT,
        'w' => WORD,
        _ => SPACE,
    }
}

/// `{n}`, `{n,}` or `{n,m}` as Go parses it: digits without leading zeros. Returns the
/// bounds and the length of the text; `None` when the `{` is a literal.
fn parse_repeat(s: &str) -> Option<(u32, Option<u32>, usize)> {
    let body = s.strip_prefix('{')?;
    let end = body.find('}')?;
    let inner = body.get(..end)?;
    let number = |t: &str| -> Option<u32> {
        let ok = !t.is_empty()
            && t.bytes().all(|b| b.is_ascii_digit())
            && !(t.len() > 1 && t.starts_with('0'));
        // Go treats huge numbers as an invalid count, not a literal.
        ok.then(|| t.parse().unwrap_or(u32::MAX))
    };
    let (min, max) = match inner.split_once(',') {
        None => {
            let n = number(inner)?;
            (n, Some(n))
        }
        Some((lo, "")) => (number(lo)?, None),
        Some((lo, hi)) => (number(lo)?, Some(number(hi)?)),
    };
    Some((min, max, end + 2))
}

/// Copies `{…}` verbatim.
fn copy_braces(out: &mut String, it: &mut Chars<'_>) -> Result<(), String> {
    for (_, c) in it.by_ref() {
        out.push(c);
        if c == '}' {
            return Ok(());
        }
    }
    Err("missing closing }".to_owned())
}

/// `\pL`, `\p{Greek}`, `\p{^Greek}` (Go's negation, Rust's `\P{Greek}`).
fn push_unicode_class(out: &mut String, e: char, it: &mut Chars<'_>) -> Result<(), String> {
    let Some((_, first)) = it.next() else {
        return Err(format!("missing name after \\{e}"));
    };
    if first != '{' {
        out.push('\\');
        out.push(e);
        out.push(first);
        return Ok(());
    }
    let mut name = String::new();
    loop {
        match it.next() {
            Some((_, '}')) => break,
            Some((_, c)) => name.push(c),
            None => return Err("missing closing }".to_owned()),
        }
    }
    let (negate, name) = match name.strip_prefix('^') {
        Some(n) => (true, n.to_owned()),
        None => (false, name),
    };
    let upper = (e == 'P') != negate;
    out.push_str(if upper { "\\P{" } else { "\\p{" });
    out.push_str(&name);
    out.push('}');
    Ok(())
}

/// After `(?`: named groups pass, flag groups may only use Go's flags `i`, `m`, `s`, `U`.
fn check_group_flags(out: &mut String, it: &mut Chars<'_>) -> Result<(), String> {
    match it.peek().map(|(_, c)| *c) {
        Some('P' | '<') => return Ok(()),
        Some(_) => {}
        None => return Err("missing closing )".to_owned()),
    }
    for (_, c) in it.by_ref() {
        out.push(c);
        match c {
            ':' | ')' => return Ok(()),
            'i' | 'm' | 's' | 'U' | '-' => {}
            other => return Err(format!("invalid or unsupported flag {other:?} in group")),
        }
    }
    Err("missing closing )".to_owned())
}

/// Translates a character set (after its `[`), item by item, into an unambiguous Rust set.
fn translate_class(out: &mut String, it: &mut Chars<'_>) -> Result<(), String> {
    const MISSING: &str = "missing closing ] in character set";
    out.push('[');
    if it.peek().map(|(_, c)| *c) == Some('^') {
        it.next();
        out.push('^');
    }
    let mut first = true;
    loop {
        let Some(&(_, c)) = it.peek() else {
            return Err(MISSING.to_owned());
        };
        if c == ']' && !first {
            it.next();
            out.push(']');
            return Ok(());
        }
        first = false;
        // POSIX class `[:alpha:]` / `[:^alpha:]`: the same names exist in Rust.
        if c == '[' {
            let mut look = it.clone();
            look.next();
            if look.peek().map(|(_, c)| *c) == Some(':') {
                let mut text = String::from("[");
                look.next();
                text.push(':');
                let mut closed = false;
                while let Some((_, d)) = look.next() {
                    text.push(d);
                    if d == ':' && look.peek().map(|(_, c)| *c) == Some(']') {
                        look.next();
                        text.push(']');
                        closed = true;
                        break;
                    }
                }
                if closed {
                    out.push_str(&text);
                    *it = look;
                    continue;
                }
            }
        }
        // `None`: a class escape such as \d was written out.
        let Some(lo) = class_char(out, it)? else {
            continue;
        };
        let mut hi = lo;
        let mut look = it.clone();
        if look.next().map(|(_, c)| c) == Some('-') && look.peek().is_some_and(|(_, c)| *c != ']') {
            it.next();
            hi = class_char(out, it)?.ok_or("invalid character set range")?;
            if hi < lo {
                return Err(format!("invalid character set range {lo:?}-{hi:?}"));
            }
        }
        push_class_char(out, lo);
        if hi != lo {
            out.push('-');
            push_class_char(out, hi);
        }
    }
}

/// One set member: a character, or `None` after writing a class escape (`\d`, `\pL`).
fn class_char(out: &mut String, it: &mut Chars<'_>) -> Result<Option<char>, String> {
    let Some((_, c)) = it.next() else {
        return Err("missing closing ] in character set".to_owned());
    };
    if c != '\\' {
        return Ok(Some(c));
    }
    let Some((_, e)) = it.next() else {
        return Err("trailing backslash".to_owned());
    };
    let ch = match e {
        'd' | 'w' | 's' => {
            out.push_str(perl_class(e));
            return Ok(None);
        }
        'D' | 'W' | 'S' => {
            out.push_str("[^");
            out.push_str(perl_class(e.to_ascii_lowercase()));
            out.push(']');
            return Ok(None);
        }
        'p' | 'P' => {
            push_unicode_class(out, e, it)?;
            return Ok(None);
        }
        'a' => '\x07',
        'f' => '\x0C',
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'v' => '\x0B',
        'x' => hex_escape(it)?,
        c if c.is_ascii_punctuation() => c,
        other => {
            return Err(format!(
                "invalid or unsupported escape \\{other} in character set"
            ));
        }
    };
    Ok(Some(ch))
}

/// `\x41` or `\x{1F600}` (after the `x`).
fn hex_escape(it: &mut Chars<'_>) -> Result<char, String> {
    let mut digits = String::new();
    if it.peek().map(|(_, c)| *c) == Some('{') {
        it.next();
        loop {
            match it.next() {
                Some((_, '}')) => break,
                Some((_, c)) => digits.push(c),
                None => return Err("missing closing } in \\x{…}".to_owned()),
            }
        }
    } else {
        for _ in 0..2 {
            if let Some((_, c)) = it.next() {
                digits.push(c);
            }
        }
    }
    u32::from_str_radix(&digits, 16)
        .ok()
        .and_then(char::from_u32)
        .ok_or_else(|| format!("invalid escape \\x{digits}"))
}

fn push_class_char(out: &mut String, c: char) {
    match c {
        '[' | ']' | '\\' | '^' | '-' | '&' | '~' => {
            out.push('\\');
            out.push(c);
        }
        '\n' => out.push_str("\\n"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(go: &str, s: &str) -> bool {
        compile(go, 1 << 20)
            .map(|r| r.is_match(s))
            .unwrap_or_else(|e| panic!("{go:?}: {e}"))
    }

    #[test]
    fn rejects_what_go_rejects() {
        for p in [
            "a**",
            "foo?*",
            "a{2}*",
            "a+?*",
            "a*{2}",
            "a{1001}",
            "a{1,1001}",
            "a{2,1}",
            "(?x)a",
            "(?u)a",
            "\\C",
            "\\1",
        ] {
            assert!(compile(p, 1 << 20).is_err(), "{p:?} should be rejected");
        }
    }

    #[test]
    fn accepts_what_go_accepts() {
        for p in [
            "a*?",
            "(a*)*",
            "a{1000}",
            "a{2,}",
            "${account}_.*",
            "a{foo}",
            "x{,3}",
            "a{01}",
            "}",
            "(?i)x",
            "(?i:x)",
            "(?P<n>a)",
            "(?<n>a)",
            "[[:alpha:]]",
            "\\p{^Greek}",
            "\\Qa.b\\E",
            "[[]",
            "[]a]",
            "[a-z&&]",
        ] {
            assert!(
                compile(p, 1 << 20).is_ok(),
                "{p:?}: {:?}",
                compile(p, 1 << 20).err()
            );
        }
    }

    #[test]
    fn literal_braces_and_quotes() {
        // `$` is an anchor, the `{account}` after it literal text: valid, never matches.
        assert!(!is_match("^${account}_.*$", "${account}_x"));
        assert!(is_match("^x\\${account}_.*$", "x${account}_y"));
        assert!(is_match("a{foo}", "a{foo}"));
        assert!(is_match("x{,3}", "x{,3}"));
        assert!(!is_match("x{,3}", "xxx"));
        assert!(is_match("^a{2}$", "aa"));
        assert!(is_match("^\\Qa.b\\E$", "a.b"));
        assert!(!is_match("^\\Qa.b\\E$", "axb"));
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert!(is_match("^\\d+$", "123"));
        assert!(
            !is_match("^\\d$", "٣"),
            "Arabic-Indic digit is not \\d in Go"
        );
        assert!(!is_match("^\\w$", "é"));
        assert!(is_match("^\\W$", "é"));
        assert!(is_match("^[\\d.]+$", "1.2"));
        assert!(is_match("^[\\Dx]$", "é"));
        assert!(!is_match("^[\\Dx]$", "5"));
        assert!(is_match("\\bfoo\\b", "a foo b"));
    }

    #[test]
    fn sets_keep_go_meaning() {
        assert!(is_match("^[[]$", "["));
        assert!(is_match("^[]a]$", "]"));
        assert!(is_match("^[a&&b]$", "&"));
        assert!(is_match("^[a-c-]$", "-"));
        assert!(is_match("^[^\\x41-\\x{5A}]$", "a"));
        assert!(!is_match("^[^\\x41-\\x{5A}]$", "Q"));
        assert!(is_match("^\\p{^Greek}$", "a"));
        assert!(!is_match("^\\p{^Greek}$", "α"));
        assert!(compile("[a", 1 << 20).is_err());
        assert!(compile("[z-a]", 1 << 20).is_err());
    }
}
