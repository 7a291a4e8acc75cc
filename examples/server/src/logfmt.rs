//! A faster writer of tracing-subscriber's default ("full") log line.
//!
//! Every token request logs an audit line (ten fields), and formatting it through the
//! generic formatter cost about a tenth of a reused token's CPU time: the timestamp is
//! converted from the epoch and written digit group by digit group through `fmt`, every field
//! goes through `Debug` twice removed, and each piece is a dynamic `fmt::Write` call.
//! [`LineFormat`] writes the same bytes directly: the date and time up to the second are
//! computed once per second and thread (with the token response's `rfc3339`), and plain strings are quoted without `Debug`'s
//! per-character escaping when they need none.
//!
//! It handles the lines the server writes at the default level: no colours, no enclosing
//! span, fields that are strings, integers, booleans or `Display`/`Debug` values. Anything
//! else (colours on a terminal, span context at `RUST_LOG=debug`, error values, events
//! forwarded from the `log` crate, a message that needs ANSI sanitising, a clock before 1970)
//! goes to tracing-subscriber's own formatter, so the output is byte for byte the same in
//! every case (a test compares the two).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime as SystemTimer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of the server (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct LineFormat {
    full: Format<Full, SystemTimer>,
}

thread_local! {
    /// The line being written, and the current second's `YYYY-MM-DDTHH:MM:SS.` prefix.
    static SCRATCH: RefCell<(String, Second)> = RefCell::new((String::new(), Second::default()));
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // the fast path writes DefaultFields' field format; another N formats its own way
        let default_fields = std::any::TypeId::of::<N>() == std::any::TypeId::of::<DefaultFields>();
        if default_fields && !writer.has_ansi_escapes() && ctx.event_scope().is_none() {
            let written = SCRATCH.with(|s| {
                let Ok(mut s) = s.try_borrow_mut() else {
                    return None; // an event logged while formatting one
                };
                let (line, second) = &mut *s;
                line.clear();
                write_line(line, second, event, SystemTime::now()).then(|| writer.write_str(line))
            });
            if let Some(result) = written {
                #[cfg(test)]
                FAST_LINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return result;
            }
        }
        self.full.format_event(ctx, writer, event)
    }
}

/// Lines written by the fast path (the test checks that it is taken).
#[cfg(test)]
static FAST_LINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The date and time of one second, as the line prefix `YYYY-MM-DDTHH:MM:SS.`.
#[derive(Debug, Default)]
struct Second {
    epoch: u64,
    text: String,
}

impl Second {
    /// The prefix for `epoch` (seconds since 1970), computed when the second changes;
    /// `None` after 9999 (the generic formatter writes those years its own way).
    fn prefix(&mut self, epoch: u64) -> Option<&str> {
        if epoch > 253_402_300_799 {
            return None;
        }
        if self.text.is_empty() || self.epoch != epoch {
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
            // `YYYY-MM-DDTHH:MM:SSZ` without its `Z`
            let mut text = docker_token_core::token::rfc3339(at);
            text.pop();
            text.push('.');
            self.text = text;
            self.epoch = epoch;
        }
        Some(&self.text)
    }
}

/// Writes the full-format line for `event` at `now` into `line`; `false` when the event
/// needs the generic formatter (then `line` holds garbage).
fn write_line(line: &mut String, second: &mut Second, event: &Event<'_>, now: SystemTime) -> bool {
    let Ok(since) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let Some(prefix) = second.prefix(since.as_secs()) else {
        return false;
    };
    line.push_str(prefix);
    let micros = since.subsec_micros();
    push_digits(line, micros, 6);
    line.push_str("Z ");
    let meta = event.metadata();
    line.push_str(match *meta.level() {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    });
    line.push_str(meta.target());
    line.push_str(": ");
    let mut fields = Fields {
        line,
        first: true,
        fallback: false,
    };
    event.record(&mut fields);
    if fields.fallback {
        return false;
    }
    line.push('\n');
    true
}

/// Appends `n` as exactly `width` decimal digits (`n` < 10^width).
fn push_digits(line: &mut String, mut n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    line.extend(digits[..width].iter().map(|&b| char::from(b)));
}

/// Writes fields as `DefaultFields` does: the message first as text, then `name=value`
/// separated by spaces, strings quoted.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    /// Something only the generic formatter writes exactly.
    fallback: bool,
}

impl Fields<'_> {
    /// The separator and `name=`; `false` for a message (written bare).
    fn start(&mut self, field: &Field) -> Option<bool> {
        let name = field.name();
        if name.starts_with("log.") {
            // an event from the `log` crate: its metadata must be normalised first
            self.fallback = true;
            return None;
        }
        if self.first {
            self.first = false;
        } else {
            self.line.push(' ');
        }
        if name == "message" {
            return Some(false);
        }
        self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.line.push('=');
        Some(true)
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match self.start(field) {
            None => {}
            Some(false) => self.message(format_args!("{value}")),
            Some(true) => {
                let plain = value
                    .bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
                if plain {
                    self.line.push('"');
                    self.line.push_str(value);
                    self.line.push('"');
                } else {
                    let _ = write!(self.line, "{value:?}");
                }
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some(named) = self.start(field) {
            if named {
                self.line.push_str(if value { "true" } else { "false" });
            } else {
                self.message(format_args!("{value:?}"));
            }
        }
    }

    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        // the generic formatter lists the error's sources
        self.fallback = true;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match self.start(field) {
            None => {}
            Some(false) => self.message(format_args!("{value:?}")),
            Some(true) => {
                let _ = write!(self.line, "{value:?}");
            }
        }
    }
}

impl Fields<'_> {
    /// The message, as `Debug` formats it; characters that the generic formatter would
    /// sanitise (terminal controls) send the event there.
    fn message(&mut self, text: fmt::Arguments<'_>) {
        let start = self.line.len();
        let _ = self.line.write_fmt(text);
        let sanitised = self.line[start..].chars().any(|c| {
            matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            )
        });
        if sanitised {
            self.fallback = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn hostile() -> Vec<String> {
        vec![
            "alice".to_owned(),
            String::new(),
            "quote\"back\\slash".to_owned(),
            "new\nline\r\0tab\t".to_owned(),
            "esc\x1b[31mred del\x7f".to_owned(),
            "naïve ✓ \u{85}\u{2028} \u{301}".to_owned(),
            "x".repeat(300),
        ]
    }

    /// Logs the same events through the generic formatter and ours, returning both outputs.
    fn both(log: impl Fn()) -> (String, String) {
        let mut out = Vec::new();
        for fast in [false, true] {
            let capture = Capture::default();
            let builder = tracing_subscriber::fmt()
                .with_max_level(Level::TRACE)
                .with_ansi(false)
                .with_writer(capture.clone());
            if fast {
                tracing::subscriber::with_default(
                    builder.event_format(LineFormat::default()).finish(),
                    &log,
                );
            } else {
                tracing::subscriber::with_default(builder.finish(), &log);
            }
            out.push(String::from_utf8(capture.0.lock().unwrap().clone()).unwrap());
        }
        let fast = out.pop().unwrap();
        (out.pop().unwrap(), fast)
    }

    /// The text with each line's leading timestamp (`YYYY-MM-DDTHH:MM:SS.ffffffZ `, 28
    /// bytes) cut out, and the timestamps' seconds since the epoch. Lines without one are
    /// continuations: a raw newline inside a `%` field, which the writer escapes later.
    fn split(text: &str) -> (Vec<&str>, Vec<u64>) {
        let stamped = |l: &str| {
            l.len() >= 28
                && l.bytes().take(28).enumerate().all(|(i, c)| match i {
                    4 | 7 => c == b'-',
                    10 => c == b'T',
                    13 | 16 => c == b':',
                    19 => c == b'.',
                    26 => c == b'Z',
                    27 => c == b' ',
                    _ => c.is_ascii_digit(),
                })
        };
        let mut rest = Vec::new();
        let mut secs = Vec::new();
        for l in text.lines() {
            if stamped(l) {
                secs.push(epoch_of(&l[..19]));
                rest.push(&l[28..]);
            } else {
                rest.push(l);
            }
        }
        (rest, secs)
    }

    /// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS`, by counting days (independent of
    /// `civil_from_days`).
    fn epoch_of(s: &str) -> u64 {
        let n = |r: std::ops::Range<usize>| s[r].parse::<u64>().unwrap();
        let (y, m, d) = (n(0..4), n(5..7), n(8..10));
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let mut days: u64 = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum();
        let lengths = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        days += lengths[..(m - 1) as usize].iter().sum::<u64>() + d - 1;
        days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
    }

    #[test]
    fn lines_are_byte_for_byte_those_of_the_generic_formatter() {
        let (full, fast) = both(|| {
            for v in hostile() {
                let d = v.as_str();
                tracing::info!(
                    target: "docker_token::audit",
                    account = %d,
                    authenticator = d,
                    service = ?d,
                    expires_in = 300u64,
                    delta = -5i64,
                    ratio = 0.25f64,
                    reused = false,
                    r#type = "x",
                    "token issued"
                );
                tracing::warn!(account = %d, "authentication failed");
                tracing::error!("{d}");
                tracing::debug!(d, n = 1u8);
                tracing::trace!(name = d);
            }
            let io = std::io::Error::other("disk on fire");
            tracing::error!(error = &io as &(dyn std::error::Error + 'static), "failed");
            tracing::info!("colour \x1b[1m in a message");
            let span = tracing::info_span!("request", id = 7);
            span.in_scope(|| tracing::info!(x = 1, "in a span"));
        });
        // the five events of each value but two `error!("{d}")`, whose messages hold
        // characters the generic formatter sanitises (ESC and DEL; U+0085); then none
        let fast_path = FAST_LINES.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(fast_path, 7 * 5 - 2, "events written by the fast path");
        let ((full_lines, full_secs), (fast_lines, fast_secs)) = (split(&full), split(&fast));
        assert_eq!(full_secs.len(), 7 * 5 + 3, "one timestamp per event");
        assert_eq!(fast_secs.len(), full_secs.len());
        assert_eq!(full_lines, fast_lines);
        // the two runs are microseconds apart: the same second, or the next one
        let d = fast_secs[0] - full_secs[0];
        assert!(d <= 1, "{full_secs:?} {fast_secs:?}");
        assert!(fast_secs.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn prefixes_agree_with_day_counting_over_four_centuries() {
        let mut second = Second::default();
        let mut epoch = 0u64;
        // every 37 hours and 13 seconds from 1970 to about 2400, and the edges
        while epoch < 13_600_000_000 {
            let text = second.prefix(epoch).unwrap().to_owned();
            assert_eq!(epoch_of(&text[..19]), epoch, "{text}");
            epoch += 37 * 3600 + 13;
        }
        for (epoch, text) in [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (4_107_542_399, "2100-02-28T23:59:59."),
            (253_402_300_799, "9999-12-31T23:59:59."),
        ] {
            assert_eq!(second.prefix(epoch), Some(text));
        }
        assert_eq!(second.prefix(253_402_300_800), None);
    }
}
