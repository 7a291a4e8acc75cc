//! Runs `wrk` and reads its report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One closed-loop run's figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    pub(crate) rps: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub(crate) errors: u64,
}

/// `wrk -t2 -c<connections> -d<secs>s --latency [-H <header>] <url>`.
pub(crate) fn run(
    wrk: &Path,
    url: &str,
    connections: u32,
    duration: Duration,
    header: Option<&str>,
) -> Result<Report, String> {
    let mut cmd = Command::new(wrk);
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{}s", duration.as_secs().max(1)),
        "--timeout",
        "5s",
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    cmd.arg(url);
    let out = cmd.output().map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&text).ok_or_else(|| format!("cannot read wrk's report:\n{text}"))
}

/// Reads `Requests/sec`, the 50 % and 99 % latency lines and the error counters.
pub(crate) fn parse(text: &str) -> Option<Report> {
    let mut r = Report::default();
    let mut seen = (false, false, false);
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                r.rps = v.parse().ok()?;
                seen.0 = true;
            }
            (Some("50%"), Some(v)) => {
                r.p50 = duration(v)?;
                seen.1 = true;
            }
            (Some("99%"), Some(v)) => {
                r.p99 = duration(v)?;
                seen.2 = true;
            }
            (Some("Non-2xx"), _) => r.errors += last_number(line),
            (Some("Socket"), Some("errors:")) => {
                r.errors += line.split(',').map(last_number).sum::<u64>();
            }
            _ => {}
        }
    }
    (seen == (true, true, true)).then_some(r)
}

fn last_number(s: &str) -> u64 {
    s.split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// `283.00us`, `1.20ms`, `2.01s`, `1.00m`.
fn duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:1/healthz
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   710.12us    1.02ms  20.11ms   91.00%
    Req/Sec    24.10k     2.01k   28.00k    70.00%
  Latency Distribution
     50%  412.00us
     75%  701.00us
     90%    1.41ms
     99%    5.20ms
  239812 requests in 5.00s, 31.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  47962.40
Transfer/sec:      6.22MB
";

    #[test]
    fn reads_the_figures_and_counts_errors() {
        let r = parse(SAMPLE).expect("parsed");
        assert!((r.rps - 47962.40).abs() < 1e-6);
        assert_eq!(r.p50, Duration::from_micros(412));
        assert_eq!(r.p99, Duration::from_micros(5200));
        assert_eq!(r.errors, 10);
    }

    #[test]
    fn an_incomplete_report_is_none() {
        assert!(parse("Requests/sec: 5\n").is_none());
        assert!(parse(&SAMPLE.replace("99%", "98%")).is_none());
        assert_eq!(duration("3.5s"), Some(Duration::from_millis(3500)));
        assert_eq!(duration("3.5h"), None);
    }
}
