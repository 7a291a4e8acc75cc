//! An open-loop (fixed-rate) load generator for "p99 at half of peak": `wrk` keeps every
//! connection busy and cannot hold a rate (wrk2 is not packaged). Each of `connections`
//! threads owns one keep-alive HTTP/1.1 connection and sends on a fixed schedule; latency is
//! measured from the *scheduled* send time, so a stalled server is charged for the requests
//! that queued behind the stall (no coordinated omission).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The figures of one paced run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Report {
    pub(crate) rate: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) errors: u64,
}

/// Sends `GET path` to `addr` at `rate` requests/s in total over `connections` connections
/// for `duration`.
pub(crate) fn run(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    rate: f64,
    connections: u32,
    duration: Duration,
) -> Result<Report, String> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(a) = authorization {
        request.push_str(&format!("Authorization: {a}\r\n"));
    }
    request.push_str("\r\n");
    let interval = Duration::from_secs_f64(f64::from(connections) / rate.max(1.0));
    let start = Instant::now() + Duration::from_millis(50);
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let request = request.clone();
            // spread the connections' schedules evenly over one interval
            let offset = interval.mul_f64(f64::from(i) / f64::from(connections));
            std::thread::spawn(move || {
                connection(addr, &request, start + offset, interval, start + duration)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (l, e) = t
            .join()
            .map_err(|_| "a load thread panicked".to_owned())??;
        latencies.extend(l);
        errors += e;
    }
    if latencies.is_empty() {
        return Err("no successful request".to_owned());
    }
    latencies.sort_unstable();
    let pick = |per_mille: usize| {
        let i = (latencies.len() - 1) * per_mille / 1000;
        latencies.get(i).copied().unwrap_or_default()
    };
    Ok(Report {
        rate: latencies.len() as f64 / duration.as_secs_f64(),
        p50: pick(500),
        p99: pick(990),
        errors,
    })
}

type ConnResult = Result<(Vec<Duration>, u64), String>;

fn connection(
    addr: SocketAddr,
    request: &str,
    first: Instant,
    interval: Duration,
    end: Instant,
) -> ConnResult {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut due = first;
    while due < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        writer
            .write_all(request.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        match read_response(&mut reader) {
            Ok(200) => latencies.push(due.elapsed()),
            Ok(_) => errors += 1,
            Err(e) => return Err(format!("read: {e}")),
        }
        due += interval;
    }
    Ok((latencies, errors))
}

/// Reads one response with a `Content-Length` body; returns its status.
fn read_response(reader: &mut impl BufRead) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| bad("content-length"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad("chunked responses are not supported"));
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_to_back_responses() {
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nx: y\r\n\r\n{}";
        let mut r = BufReader::new(&two[..]);
        assert_eq!(read_response(&mut r).unwrap(), 200);
        assert_eq!(read_response(&mut r).unwrap(), 401);
        assert!(read_response(&mut r).is_err(), "nothing left");
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(read_response(&mut BufReader::new(&chunked[..])).is_err());
    }
}
