//! One event, one line: a log writer that escapes control characters.
//!
//! Log lines carry client values (user names, services, scopes, header-derived addresses).
//! The formatter prints them as they are, so a user name such as `"x\nINFO token issued"`
//! (Basic credentials are arbitrary bytes) would forge a second log line. The writer below
//! receives each formatted event in one piece and escapes every control character in it
//! (`\n` becomes the two characters `\n`, other controls `\u{1b}`-style), as well as the
//! Unicode line and paragraph separators, except the event's own final newline and, when
//! colours are on, the ESC of the formatter's colour codes.
//!
//! The server writes its lines through a [`BatchedStderr`]: every token request logs an audit
//! line, and a `write(2)` per line cost about a sixth of a reused token's CPU time. Lines are
//! appended to one buffer, in order, and a thread writes whatever has accumulated in one
//! call: under load many lines per system call, at most a millisecond after they were
//! logged; after a quiet spell the first line wakes the thread at once. Nothing is dropped: when the buffer holds
//! [`MAX_PENDING`] bytes (standard error is blocked), loggers wait for it to drain.
//! [`flush`] is called before the process exits.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// The most bytes waiting to be written before loggers block (backpressure, no loss).
pub(crate) const MAX_PENDING: usize = 1 << 20;

/// How often the writer thread looks for new lines while lines keep coming.
const POLL: Duration = Duration::from_millis(1);
/// Empty polls after which the writer thread sleeps until a line arrives.
const QUIET_POLLS: u32 = 20;

/// The buffer shared by loggers and the writer thread.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer thread holds a batch it has not finished writing.
    writing: bool,
    /// The writer thread sleeps until a line arrives (it must be woken).
    idle: bool,
    /// Threads waiting on `drained` (a full buffer, or [`Sink::flush`]).
    waiters: usize,
}

/// The lines not yet written and the two signals around them. While lines keep coming the
/// writer thread polls every [`POLL`], so a logging request never makes a system call; only
/// the first line after a quiet spell wakes it.
#[derive(Debug, Default)]
struct Sink {
    pending: Mutex<Pending>,
    /// Signalled when a line arrives while the writer thread is idle.
    arrived: Condvar,
    /// Signalled when the writer thread has taken or finished a batch.
    drained: Condvar,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits on `drained` (counted, so that the writer thread signals only when needed).
    fn wait_drained<'a>(&self, mut p: MutexGuard<'a, Pending>) -> MutexGuard<'a, Pending> {
        p.waiters += 1;
        p = self.drained.wait(p).unwrap_or_else(PoisonError::into_inner);
        p.waiters -= 1;
        p
    }

    fn append(&self, line: &[u8]) {
        let mut p = self.lock();
        while p.bytes.len() >= MAX_PENDING {
            p = self.wait_drained(p);
        }
        p.bytes.extend_from_slice(line);
        let wake = p.idle;
        p.idle = false;
        drop(p);
        if wake {
            self.arrived.notify_one();
        }
    }

    /// The writer thread: takes everything pending, writes it in one call, repeats.
    fn run(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        let mut quiet = 0;
        loop {
            let mut p = self.lock();
            p.writing = false;
            if p.waiters > 0 {
                self.drained.notify_all();
            }
            if p.bytes.is_empty() {
                if quiet < QUIET_POLLS {
                    drop(p);
                    quiet += 1;
                    std::thread::sleep(POLL);
                    continue;
                }
                p.idle = true;
                while p.bytes.is_empty() {
                    p = self.arrived.wait(p).unwrap_or_else(PoisonError::into_inner);
                }
            }
            quiet = 0;
            std::mem::swap(&mut p.bytes, &mut batch);
            p.writing = true;
            if p.waiters > 0 {
                self.drained.notify_all();
            }
            drop(p);
            // a closed or full standard error must not stop the server: the lines are lost
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > MAX_PENDING {
                batch = Vec::new();
            }
        }
    }

    /// Waits until everything appended so far has been written.
    fn flush(&self) {
        let mut p = self.lock();
        while !p.bytes.is_empty() || p.writing {
            p = self.wait_drained(p);
        }
    }
}

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

/// Starts the writer thread (once) and returns the sink it drains into standard error.
fn stderr_sink() -> io::Result<Arc<Sink>> {
    if let Some(s) = SINK.get() {
        return Ok(s.clone());
    }
    let sink = Arc::new(Sink::default());
    let s = sink.clone();
    std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || s.run(io::stderr()))?;
    Ok(SINK.get_or_init(|| sink).clone())
}

/// Writes out every line logged so far (before the process exits).
pub(crate) fn flush() {
    if let Some(s) = SINK.get() {
        s.flush();
    }
}

/// Makes [`OneLineWriter`]s over the batched standard error (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct BatchedStderr {
    sink: Arc<Sink>,
    /// Keep ESC (colour codes) unescaped: only when writing to a terminal.
    ansi: bool,
}

impl BatchedStderr {
    /// Starts the writer thread; `None` if no thread can be started.
    pub(crate) fn new(ansi: bool) -> Option<Self> {
        stderr_sink().ok().map(|sink| Self { sink, ansi })
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = OneLineWriter<SinkWriter>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter {
            inner: SinkWriter(self.sink.clone()),
            ansi: self.ansi,
        }
    }
}

/// Appends to a [`Sink`].
#[derive(Debug)]
pub(crate) struct SinkWriter(Arc<Sink>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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
        if is_one_clean_line(buf, self.ansi) {
            // the common case (an audit line of printable text): no copy
            self.inner.write_all(buf)?;
        } else {
            self.inner.write_all(&escape(buf, self.ansi))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `buf` needs no escaping: valid UTF-8 without control characters (but tab, and
/// ESC when `ansi`), line or paragraph separators, except one final `\n`. Checked on bytes:
/// ASCII controls are bytes below 0x20 and 0x7F; the C1 controls (U+0080–U+009F) are
/// encoded `C2 80`–`C2 9F`; U+2028/U+2029 are `E2 80 A8`/`E2 80 A9`.
fn is_one_clean_line(buf: &[u8], ansi: bool) -> bool {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    // the common case, printable ASCII and tabs: folded per 64-byte chunk without an early
    // exit inside it, so that the compiler vectorises it
    let plain = body.chunks(64).all(|chunk| {
        chunk.iter().fold(true, |ok, &b| {
            // 0x20..0x7f, as one comparison
            ok & ((b.wrapping_sub(0x20) < 0x5f) | (b == b'\t'))
        })
    });
    if plain {
        return true;
    }
    let mut prev = [0u8; 2];
    for &b in body {
        let bad = match b {
            b'\t' => false,
            0x1b => !ansi,
            0..0x20 | 0x7f => true,
            0x80..=0x9f => prev[1] == 0xc2,
            0xa8 | 0xa9 => prev == [0xe2, 0x80],
            _ => false,
        };
        if bad {
            return false;
        }
        prev = [prev[1], b];
    }
    std::str::from_utf8(body).is_ok()
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
    fn the_fast_path_agrees_with_escaping() {
        let samples: [&[u8]; 12] = [
            b"INFO token issued account=alice\n",
            b"a\tb\n",
            b"a\nb\n",
            b"\x1b[1mbold\n",
            "naïve ✓ ü\n".as_bytes(),
            "c1 \u{85} x\n".as_bytes(),
            "c1 \u{9f}\n".as_bytes(),
            "sep \u{2028}\n".as_bytes(),
            "sep \u{2029}".as_bytes(),
            "not sep \u{2027} \u{20ac}\n".as_bytes(),
            b"bad utf8 \xff\n",
            b"del \x7f\n",
        ];
        for s in samples {
            for ansi in [false, true] {
                if is_one_clean_line(s, ansi) {
                    assert_eq!(escape(s, ansi), s, "{s:?} {ansi}");
                } else {
                    assert_ne!(escape(s, ansi), s, "{s:?} {ansi}");
                }
            }
        }
        assert!(is_one_clean_line(b"INFO token issued\n", false));
        assert!(is_one_clean_line("naïve ✓\n".as_bytes(), false));
        assert!(!is_one_clean_line(b"two\nlines\n", false));
    }

    #[test]
    fn the_sink_keeps_every_line_in_order_and_flush_waits_for_them() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                // a slow destination: batches build up behind it
                std::thread::sleep(std::time::Duration::from_micros(50));
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Arc::new(Sink::default());
        let out = Shared::default();
        let (s, o) = (sink.clone(), out.clone());
        std::thread::spawn(move || s.run(o));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        sink.append(format!("t{t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.flush();
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 8_000);
        for t in 0..4 {
            let mine: Vec<&str> = written
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let expected: Vec<String> = (0..2_000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, expected, "thread {t}'s lines out of order or lost");
        }
    }

    #[test]
    fn a_blocked_destination_makes_loggers_wait_instead_of_growing() {
        let sink = Arc::new(Sink::default());
        let line = vec![b'x'; 4096];
        // no writer thread yet: the buffer fills up to the limit, then append blocks
        let filler = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for _ in 0..(MAX_PENDING / 4096 + 8) {
                    sink.append(&line);
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!filler.is_finished(), "append should block at the limit");
        assert!(sink.lock().bytes.len() <= MAX_PENDING + 4096);
        let s = sink.clone();
        std::thread::spawn(move || s.run(io::sink()));
        filler.join().unwrap();
        sink.flush();
        assert!(sink.lock().bytes.is_empty());
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
