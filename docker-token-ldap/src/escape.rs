//! Escaping and parsing of LDAP strings.
//!
//! * [`filter_value`]: a value inside a search filter (RFC 4515 §3), so `${account}` in
//!   `(uid=${account})` can never add a wildcard or a clause.
//! * [`dn_value`]: an attribute value inside a distinguished name (RFC 4514 §2.4), so
//!   `${account}` in `uid=${account},ou=people,…` can never add an RDN or change the base.
//! * [`Dn`]: a parsed DN, for comparing DNs the way a server does (attribute types and values
//!   compared case-insensitively, escapes resolved) and for extracting a `CN`.
//!
//! The two escapings are different on purpose: a filter escape (`\28`) inside a DN, or a DN
//! escape (`\,`) inside a filter, is wrong (docker_auth reuses the filter escaping for DNs).

use std::borrow::Cow;
use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `ldap3`'s escaping plus the ASCII control characters it leaves as they are (NUL aside):
/// a raw newline or CR in a value has no business reaching a server or its logs.
fn escape_controls(escaped: Cow<'_, str>) -> String {
    if !escaped.bytes().any(|b| b.is_ascii_control()) {
        return escaped.into_owned();
    }
    let mut out = String::with_capacity(escaped.len() + 4);
    for c in escaped.chars() {
        if c.is_ascii_control() {
            let byte = c as u8;
            out.push('\\');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes a value for an LDAP search filter (RFC 4515 §3).
///
/// `*`, `(`, `)`, `\` and NUL are escaped by [`ldap3::ldap_escape`]; this also escapes
/// every other ASCII control character, which RFC 4515 allows for any octet. Everything else
/// (including UTF-8) is kept.
///
/// ```
/// use docker_token_ldap::escape::filter_value;
/// assert_eq!(filter_value("*)(uid=*"), r"\2a\29\28uid=\2a");
/// assert_eq!(filter_value("dave (contractor)"), r"dave \28contractor\29");
/// ```
#[must_use]
pub fn filter_value(value: &str) -> String {
    escape_controls(ldap3::ldap_escape(value))
}

/// Escapes an attribute value for use inside a distinguished name (RFC 4514 §2.4).
///
/// [`ldap3::dn_escape`] decides what to escape (`"` `+` `,` `;` `<` `>` `\` `=` and NUL, a
/// leading `#` or space, a trailing space); the special characters are then written in
/// RFC 4514's preferred `\,` form rather than as hex, and the other ASCII control
/// characters are escaped as `\XX` too.
///
/// ```
/// use docker_token_ldap::escape::dn_value;
/// assert_eq!(dn_value("Doe, John"), r"Doe\, John");
/// assert_eq!(dn_value("x,ou=admins"), r"x\,ou\=admins");
/// ```
#[must_use]
pub fn dn_value(value: &str) -> String {
    let escaped = ldap3::dn_escape(value);
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_ref();
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3).unwrap_or_default();
        match u8::from_str_radix(hex, 16).map(char::from) {
            Ok(c @ ('"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' | '#' | ' ')) => {
                out.push('\\');
                out.push(c);
            }
            // NUL stays hex; `dn_escape` writes nothing else
            _ => out.push_str(&rest[i..i + 1 + hex.len()]),
        }
        rest = &rest[i + 1 + hex.len()..];
    }
    out.push_str(rest);
    escape_controls(Cow::Owned(out))
}

/// Replaces `${name}` placeholders in one pass (a value that itself contains `${…}` is not
/// expanded again). Unknown placeholders are kept as written.
pub(crate) fn expand(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let known = after.find('}').and_then(|j| {
            vars.iter()
                .find(|(name, _)| *name == &after[..j])
                .map(|(_, v)| (j, *v))
        });
        match known {
            Some((j, value)) => {
                out.push_str(value);
                rest = &after[j + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A DN that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(String);

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DN: {}", self.0)
    }
}

impl std::error::Error for DnError {}

/// One `type=value` pair of a relative distinguished name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    /// The attribute type as written (`CN`, `uid`, `2.5.4.3`).
    pub attr: String,
    /// The value with all escapes resolved (`Doe, John`). A `#…` hex (BER) value is kept as written.
    pub value: String,
}

/// A parsed distinguished name: RDNs from the most specific (leftmost) to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<Vec<Ava>>,
}

impl Dn {
    /// Parses a DN in RFC 4514 string form (also accepting the RFC 2253 leniencies servers
    /// emit: spaces around `,` `+` `=`, and `;` as a separator).
    pub fn parse(s: &str) -> Result<Self, DnError> {
        Parser {
            chars: s.chars().collect(),
            pos: 0,
        }
        .dn()
    }

    /// The RDNs, most specific first.
    #[must_use]
    pub fn rdns(&self) -> &[Vec<Ava>] {
        &self.rdns
    }

    /// The value of the first `CN` in the DN (leftmost first), unescaped: `Doe, John` for
    /// `cn=Doe\2C John,ou=people,dc=example,dc=org`.
    #[must_use]
    pub fn cn(&self) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|a| a.attr.eq_ignore_ascii_case("cn") || a.attr == "2.5.4.3")
            .map(|a| a.value.as_str())
    }

    /// A canonical string for comparisons: types and values lower-cased, values re-escaped
    /// the one RFC 4514 way, multi-valued RDNs sorted. Two spellings of the same DN
    /// (`cn=Doe\, John,OU=People` and `CN=Doe\2C John,ou=people`) normalise identically.
    #[must_use]
    pub fn normalized(&self) -> String {
        let rdns: Vec<String> = self
            .rdns
            .iter()
            .map(|rdn| {
                let mut avas: Vec<String> = rdn
                    .iter()
                    .map(|a| {
                        let attr = a.attr.to_ascii_lowercase();
                        let attr = if attr == "2.5.4.3" {
                            "cn".to_owned()
                        } else {
                            attr
                        };
                        format!("{attr}={}", dn_value(&a.value.to_lowercase()))
                    })
                    .collect();
                avas.sort();
                avas.join("+")
            })
            .collect();
        rdns.join(",")
    }

    /// Whether `self` is `ancestor` or lies below it (compared after normalisation).
    #[must_use]
    pub fn is_within(&self, ancestor: &Self) -> bool {
        let n = ancestor.rdns.len();
        if n > self.rdns.len() {
            return false;
        }
        let tail = Self {
            rdns: self.rdns[self.rdns.len() - n..].to_vec(),
        };
        tail.normalized() == ancestor.normalized()
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    fn err(&self, what: &str) -> DnError {
        DnError(format!("{what} at character {}", self.pos))
    }

    fn dn(mut self) -> Result<Dn, DnError> {
        let mut rdns = Vec::new();
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(Dn { rdns });
        }
        loop {
            let mut rdn = vec![self.ava()?];
            loop {
                match self.peek() {
                    Some('+') => {
                        self.pos += 1;
                        rdn.push(self.ava()?);
                    }
                    Some(',' | ';') => {
                        self.pos += 1;
                        rdns.push(rdn);
                        break;
                    }
                    None => {
                        rdns.push(rdn);
                        return Ok(Dn { rdns });
                    }
                    Some(_) => return Err(self.err("expected ',' or '+'")),
                }
            }
        }
    }

    fn ava(&mut self) -> Result<Ava, DnError> {
        self.skip_spaces();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let attr: String = self.chars[start..self.pos].iter().collect();
        if attr.is_empty() {
            return Err(self.err("expected an attribute type"));
        }
        self.skip_spaces();
        if self.peek() != Some('=') {
            return Err(self.err("expected '='"));
        }
        self.pos += 1;
        self.skip_spaces();
        let value = match self.peek() {
            Some('#') => self.hex_string(),
            Some('"') => self.quoted()?,
            _ => self.string()?,
        };
        Ok(Ava { attr, value })
    }

    fn hex_string(&mut self) -> String {
        let start = self.pos;
        self.pos += 1;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        self.skip_spaces();
        s.to_ascii_lowercase()
    }

    fn quoted(&mut self) -> Result<String, DnError> {
        self.pos += 1;
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted value")),
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => self.escape(&mut bytes)?,
                Some(c) => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.pos += 1;
                }
            }
        }
        self.skip_spaces();
        String::from_utf8(bytes).map_err(|_| self.err("escaped bytes are not UTF-8"))
    }

    fn string(&mut self) -> Result<String, DnError> {
        let mut bytes = Vec::new();
        // the length of `bytes` up to the last character that was escaped or not a space,
        // so that unescaped trailing spaces are dropped but `\ ` is kept
        let mut keep = 0;
        while let Some(c) = self.peek() {
            match c {
                ',' | ';' | '+' => break,
                '\\' => {
                    self.escape(&mut bytes)?;
                    keep = bytes.len();
                }
                '"' | '<' | '>' | '=' | '\0' => return Err(self.err("unescaped special character")),
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    if c != ' ' {
                        keep = bytes.len();
                    }
                    self.pos += 1;
                }
            }
        }
        bytes.truncate(keep);
        String::from_utf8(bytes).map_err(|_| self.err("escaped bytes are not UTF-8"))
    }

    /// Reads `\X` (a special character) or `\XX` (a hex-encoded byte) at `pos`.
    fn escape(&mut self, bytes: &mut Vec<u8>) -> Result<(), DnError> {
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err(self.err("dangling backslash"));
        };
        let next = self.chars.get(self.pos + 1).copied();
        match (c.to_digit(16), next.and_then(|n| n.to_digit(16))) {
            (Some(hi), Some(lo)) => {
                bytes.push(u8::try_from(hi * 16 + lo).map_err(|_| self.err("bad hex escape"))?);
                self.pos += 2;
            }
            _ if " \"#+,;<=>\\".contains(c) => {
                bytes.push(c as u8);
                self.pos += 1;
            }
            _ => return Err(self.err("invalid escape")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_escaping_matches_the_rfc_4515_examples() {
        // RFC 4515 §4
        assert_eq!(
            filter_value("Parens R Us (for all your parenthetical needs)"),
            r"Parens R Us \28for all your parenthetical needs\29"
        );
        assert!(format!("*{}*", filter_value("*")).eq_ignore_ascii_case(r"*\2A*"));
        assert_eq!(filter_value(r"C:\MyFile"), r"C:\5cMyFile");
        assert_eq!(filter_value("\0\0\0\x04"), r"\00\00\00\04");
        // UTF-8 may stay as is (the RFC's `Lu\c4\8di\c4\87` is an equivalent spelling)
        assert_eq!(filter_value("Lučić"), "Lučić");
    }

    #[test]
    fn filter_injection_attempts_stay_one_value() {
        for hostile in [
            "*",
            "*)(uid=*",
            "admin)(|(uid=*",
            "a\0b",
            "x)(objectClass=*",
        ] {
            let escaped = filter_value(hostile);
            assert!(
                !escaped.contains(['*', '(', ')', '\0']),
                "{hostile:?} -> {escaped:?}"
            );
        }
        assert_eq!(filter_value("admin)(|(uid=*"), r"admin\29\28|\28uid=\2a");
    }

    #[test]
    fn dn_escaping_matches_the_rfc_4514_examples() {
        // RFC 4514 §4: CN=James \"Jim\" Smith\, III,DC=example,DC=net
        assert_eq!(
            dn_value(r#"James "Jim" Smith, III"#),
            r#"James \"Jim\" Smith\, III"#
        );
        // CN=Before\0dAfter,DC=example,DC=net
        assert_eq!(dn_value("Before\rAfter"), r"Before\0dAfter");
        assert_eq!(dn_value(" #lead"), r"\ #lead");
        assert_eq!(dn_value("#lead"), r"\#lead");
        assert_eq!(dn_value("trail "), r"trail\ ");
        assert_eq!(dn_value("a+b;c<d>e\\f"), r"a\+b\;c\<d\>e\\f");
        assert_eq!(dn_value(""), "");
    }

    #[test]
    fn control_characters_are_escaped_beyond_what_ldap3_does() {
        assert_eq!(
            ldap3::ldap_escape("a\nb"),
            "a\nb",
            "ldap3 keeps a raw newline"
        );
        assert_eq!(filter_value("a\nb\x7f\0"), r"a\0ab\7f\00");
        assert_eq!(dn_value("a\nb\0"), r"a\0ab\00");
        assert_eq!(dn_value("x,y"), r"x\,y", "the RFC 4514 form, not hex");
        assert_eq!(ldap3::dn_escape("x,y"), r"x\2cy");
        assert_eq!(dn_value(" "), r"\ ");
    }

    #[test]
    fn dn_escape_round_trips_through_the_parser() {
        for v in [
            "Doe, John",
            " x ",
            "#1",
            "a+b=c",
            "q\"u",
            "back\\slash",
            "nul\0",
            "Lučić",
            "dave (contractor)",
        ] {
            let dn = Dn::parse(&format!("cn={},dc=example", dn_value(v))).unwrap();
            assert_eq!(dn.rdns().len(), 2, "{v:?}");
            assert_eq!(dn.cn(), Some(v), "{v:?}");
        }
    }

    #[test]
    fn parses_rfc_4514_examples() {
        let dn = Dn::parse(r#"CN=James \"Jim\" Smith\, III,DC=example,DC=net"#).unwrap();
        assert_eq!(dn.cn(), Some(r#"James "Jim" Smith, III"#));
        assert_eq!(dn.rdns().len(), 3);
        let dn = Dn::parse(r"CN=Lu\C4\8Di\C4\87").unwrap();
        assert_eq!(dn.cn(), Some("Lučić"));
        let dn = Dn::parse("OU=Sales+CN=J.  Smith,DC=example,DC=net").unwrap();
        assert_eq!(dn.rdns()[0].len(), 2);
        assert_eq!(dn.cn(), Some("J.  Smith"));
        let dn = Dn::parse("1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com").unwrap();
        assert_eq!(dn.rdns()[0][0].value, "#04024869");
        assert_eq!(Dn::parse("").unwrap().rdns().len(), 0);
    }

    #[test]
    fn normalisation_makes_equivalent_spellings_equal() {
        let a = Dn::parse(r"cn=Doe\, John,OU=People, dc=example,dc=org").unwrap();
        let b = Dn::parse(r"CN=Doe\2C John,ou=people,dc=example,dc=org").unwrap();
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.normalized(), r"cn=doe\, john,ou=people,dc=example,dc=org");
        let c = Dn::parse(r"cn=Doe\2C Jane,ou=people,dc=example,dc=org").unwrap();
        assert_ne!(a.normalized(), c.normalized());
        let m1 = Dn::parse("ou=Sales+cn=x,dc=a").unwrap();
        let m2 = Dn::parse("CN=X+OU=sales,DC=A").unwrap();
        assert_eq!(m1.normalized(), m2.normalized());
    }

    #[test]
    fn subtree_membership() {
        let base = Dn::parse("ou=Groups, dc=Example,dc=org").unwrap();
        assert!(
            Dn::parse("cn=dev,ou=groups,dc=example,dc=org")
                .unwrap()
                .is_within(&base)
        );
        assert!(
            Dn::parse("ou=groups,dc=example,dc=org")
                .unwrap()
                .is_within(&base)
        );
        assert!(
            !Dn::parse("cn=dev,ou=posixgroups,dc=example,dc=org")
                .unwrap()
                .is_within(&base)
        );
        assert!(!Dn::parse("dc=org").unwrap().is_within(&base));
    }

    #[test]
    fn expansion_is_single_pass() {
        let vars = [("account", "${dn}"), ("dn", "cn=x")];
        assert_eq!(
            expand("(&(uid=${account})(m=${dn}))", &vars),
            "(&(uid=${dn})(m=cn=x))"
        );
        assert_eq!(expand("${other} ${account", &vars), "${other} ${account");
        assert_eq!(expand("", &vars), "");
    }

    #[test]
    fn rejects_malformed_dns() {
        for bad in [
            "cn",
            "cn=a,",
            "=x",
            r"cn=a\",
            r"cn=a\zz",
            "cn=a=b",
            "cn=\"open",
            r"cn=\ff\fe",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
