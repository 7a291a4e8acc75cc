//! A port of Go's `path.Match`: the glob language of docker_auth ACL patterns.
//!
//! * `*` matches any run of bytes other than `/`; `?` matches one character other than `/`.
//! * `[...]` matches one character from a set of characters and ranges (`[a-z0-9]`); `[^...]`
//!   negates it. `\` escapes the next character, inside and outside sets.
//! * There is no `{a,b}` alternation and no `**`.
//!
//! Like Go, the name is compared byte by byte and a `*` may skip into the middle of a
//! multi-byte character; a character set or `?` then sees U+FFFD, as Go's UTF-8 decoder does.

/// The pattern is malformed (Go's `path.ErrBadPattern`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadPattern;

const RUNE_ERROR: u32 = 0xFFFD;

/// Whether `name` matches the glob `pattern` as Go's `path.Match` decides, or `Err` when Go
/// would report a syntax error.
pub(crate) fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern = pattern.as_bytes();
    let mut name = name.as_bytes();
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it contains a `/`.
            return Ok(!name.contains(&b'/'));
        }
        // Try the chunk at the current position. When it is the last chunk it must consume
        // the whole name, otherwise a later star could still help.
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(BadPattern);
        }
        if star {
            // The star skips i+1 bytes, never a `/`.
            let mut i = 0;
            while i < name.len() && name.get(i) != Some(&b'/') {
                let (t, ok, err) = match_chunk(chunk, name.get(i + 1..).unwrap_or_default());
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if err {
                    return Err(BadPattern);
                }
                i += 1;
            }
        }
        // No match: still report a syntax error anywhere in the rest of the pattern.
        validate_rest(pattern)?;
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Checks that `pattern` is a well-formed glob, i.e. that Go's `path.Match` never reports
/// `ErrBadPattern` for it, whatever the name.
pub(crate) fn validate_glob(pattern: &str) -> Result<(), BadPattern> {
    validate_rest(pattern.as_bytes())
}

fn validate_rest(mut pattern: &[u8]) -> Result<(), BadPattern> {
    while !pattern.is_empty() {
        let (_, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if match_chunk(chunk, b"").2 {
            return Err(BadPattern);
        }
    }
    Ok(())
}

/// Splits off leading stars and the chunk up to the next unbracketed `*`.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        match c {
            // A trailing backslash is reported by match_chunk.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pattern.split_at(i.min(pattern.len()));
    (star, chunk, rest)
}

/// Matches one star-free chunk at the start of `s`: `(rest of s, matched, syntax error)`.
/// After a mismatch it keeps parsing the chunk (without reading `s`) to find syntax errors.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> (&'a [u8], bool, bool) {
    const BAD: (&[u8], bool, bool) = (b"", false, true);
    let mut failed = false;
    while let Some((&c, after)) = chunk.split_first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (rune, n) = decode_rune(s);
                    r = rune;
                    s = s.get(n..).unwrap_or_default();
                }
                chunk = after;
                let mut negated = false;
                if let Some((b'^', rest)) = chunk.split_first() {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if let Some((b']', rest)) = chunk.split_first()
                        && nrange > 0
                    {
                        chunk = rest;
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return BAD;
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if let Some((b'-', rest)) = chunk.split_first() {
                        let Some((h, rest)) = get_esc(rest) else {
                            return BAD;
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s.first() == Some(&b'/') {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = s.get(n..).unwrap_or_default();
                }
                chunk = after;
            }
            b'\\' => {
                let Some((&lit, rest)) = after.split_first() else {
                    return BAD;
                };
                if !failed {
                    if s.first() != Some(&lit) {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or_default();
                }
                chunk = rest;
            }
            _ => {
                if !failed {
                    if s.first() != Some(&c) {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or_default();
                }
                chunk = after;
            }
        }
    }
    if failed {
        (b"", false, false)
    } else {
        (s, true, false)
    }
}

/// One (possibly escaped) character of a set, and the rest; `None` on a syntax error.
fn get_esc(chunk: &[u8]) -> Option<(u32, &[u8])> {
    let mut chunk = match chunk.first() {
        None | Some(b'-' | b']') => return None,
        Some(b'\\') => chunk.get(1..).filter(|c| !c.is_empty())?,
        Some(_) => chunk,
    };
    let (r, n) = decode_rune(chunk);
    if r == RUNE_ERROR && n == 1 {
        return None;
    }
    chunk = chunk.get(n..).unwrap_or_default();
    // Go reports a set that ends right after a character as malformed.
    if chunk.is_empty() {
        None
    } else {
        Some((r, chunk))
    }
}

/// Decodes the first UTF-8 character like Go's `utf8.DecodeRune`: invalid or truncated
/// input gives `(U+FFFD, 1)`, empty input `(U+FFFD, 0)`.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let Some(&first) = s.first() else {
        return (RUNE_ERROR, 0);
    };
    let len = match first {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (RUNE_ERROR, 1),
    };
    match s
        .get(..len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| t.chars().next())
    {
        Some(c) => (u32::from(c), len),
        None => (RUNE_ERROR, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own `path.Match` table (src/path/match_test.go), restated.
    #[test]
    fn go_path_match_table() {
        let ok = |p: &str, s: &str| glob_match(p, s);
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (p, s, want) in cases {
            assert_eq!(ok(p, s), *want, "path.Match({p:?}, {s:?})");
        }
    }

    #[test]
    fn validation_agrees_with_matching() {
        for p in ["abc", "a*b?[c-d]\\*", "[^x]*", "*", ""] {
            assert_eq!(validate_glob(p), Ok(()), "{p:?}");
        }
        for p in ["[", "a[", "\\", "[]a]", "[x-]", "*[", "ok/*/[z"] {
            assert_eq!(validate_glob(p), Err(BadPattern), "{p:?}");
        }
    }

    #[test]
    fn star_and_question_never_cross_slashes() {
        assert_eq!(glob_match("alice/*", "alice/app"), Ok(true));
        assert_eq!(glob_match("alice/*", "alice/team/app"), Ok(false));
        assert_eq!(glob_match("*/*", "a/b"), Ok(true));
        assert_eq!(glob_match("a?c", "a/c"), Ok(false));
        assert_eq!(glob_match("", ""), Ok(true));
        assert_eq!(glob_match("", "x"), Ok(false));
    }

    #[test]
    fn case_sensitive_and_no_braces() {
        assert_eq!(glob_match("Foo", "foo"), Ok(false));
        assert_eq!(glob_match("{a,b}", "a"), Ok(false));
        assert_eq!(glob_match("{a,b}", "{a,b}"), Ok(true));
        assert_eq!(glob_match("**", "a/b"), Ok(false));
    }

    #[test]
    fn escaped_regex_metacharacters_match_literally() {
        // What `${account}` becomes for "john.smith": Go's QuoteMeta output.
        assert_eq!(glob_match("john\\.smith/*", "john.smith/app"), Ok(true));
        assert_eq!(glob_match("john\\.smith/*", "johnxsmith/app"), Ok(false));
    }
}
