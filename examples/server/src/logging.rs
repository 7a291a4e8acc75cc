//! One event, one line: a log writer that escapes control characters.
//!
//! Log lines carry client values (user names, services, scopes, header-derived addresses).
//! The formatter prints them as they are, so a user name such as `"x\nINFO token issued"`
//! (Basic credentials are arbitrary bytes) would forge a second log line. The writer below
//! receives each formatted event in one piece and escapes every control character in it
//! (`\n` becomes the two characters `\n`, other controls `\u{1b}`-style), as well as the
//! Unicode line and paragraph separators, except the event's own final newline and, when
//! colours are on, the ESC of the formatter's colour codes.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Makes [`OneLineWriter`]s over standard error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OneLineStderr {
    /// Keep ESC (colour codes) unescaped: only when writing to a terminal.
    pub(crate) ansi: bool,
}

impl<'a> MakeWriter<'a> for OneLineStderr {
    type Writer = OneLineWriter<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter {
            inner: io::stderr(),
            ansi: self.ansi,
        }
    }
}

/// Escapes control characters in each buffer written (see the module documentation).
#[derive(Debug)]
pub(crate) struct OneLineWriter<W> {
    inner: W,
    ansi: bool,
}

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&escape(buf, self.ansi))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The escaped text: one line, ending in `\n` when the input did.
fn escape(buf: &[u8], ansi: bool) -> Vec<u8> {
    let (body, newline) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (buf, false),
    };
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\u{1b}' if ansi => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend(c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    if newline {
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_stays_one_line() {
        let forged = "WARN account=alice\nINFO token issued account=admin\r\0\u{85}\u{2028}\n";
        let out = String::from_utf8(escape(forged.as_bytes(), false)).unwrap();
        assert_eq!(out.lines().count(), 1, "{out:?}");
        assert!(out.ends_with('\n'));
        assert!(out.contains("alice\\nINFO token issued"), "{out:?}");
        assert!(out.contains("\\r\\u{0}\\u{85}\\u{2028}"), "{out:?}");
        assert!(
            !out.contains('\u{1b}') && escape(b"\x1b[1m", false) == b"\\u{1b}[1m",
            "{out:?}"
        );
        assert_eq!(escape(b"\x1b[1mok\tx\n", true), b"\x1b[1mok\tx\n");
        assert_eq!(escape("naïve ✓".as_bytes(), false), "naïve ✓".as_bytes());
    }

    #[test]
    fn writes_everything_in_one_call() {
        let mut w = OneLineWriter {
            inner: Vec::new(),
            ansi: false,
        };
        w.write_all(b"a\nb\n").unwrap();
        assert_eq!(w.inner, b"a\\nb\n");
    }
}
