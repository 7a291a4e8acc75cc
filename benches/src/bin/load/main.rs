//! The load benchmark:
//! `cargo run --release -p docker-token-benches --bin load [-- --secs N] [--rounds N] [--no-ldap]
//! [--only TEXT]…`.
//!
//! Builds `docker-token-server` in release, writes fixed configurations (ES256 or RSA-4096
//! key, a bcrypt cost-5 user, a 20-rule ACL; LDAP through a throwaway slapd), starts the
//! server on 127.0.0.1 and drives it with `wrk` at 32 and 256 connections. Prints req/s,
//! p50/p99 latency, the server's peak RSS (VmHWM), each case's ratio to `/healthz` measured
//! on the same server just before (with `--rounds N`, the median of N back-to-back
//! `/healthz` + case pairs), p99 at half of the measured peak (an open-loop generator,
//! `paced.rs`) and the cold start (process start → first token). Every run is bounded
//! (`--secs`, default 5). `--only TEXT` (repeatable) runs just the cases whose name contains
//! one of the texts, e.g. `--only '(c)' --only '(c-r)'` for the token-path targets (`cold`
//! selects the cold start).

mod paced;
mod setup;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use setup::{PASSWORD, Server, USER, Variant, basic};

struct Row {
    case: String,
    connections: u32,
    report: wrk::Report,
    vs_health: Option<f64>,
    peak_rss_kib: Option<u64>,
}

struct PacedRow {
    case: String,
    report: paced::Report,
}

/// One request shape against one server.
struct Case {
    name: &'static str,
    path: String,
    authorization: Option<String>,
    paced: bool,
}

struct Bench {
    wrk: PathBuf,
    secs: Duration,
    /// Interleaved `/healthz` + case pairs per figure (`--rounds`); the median pair is shown.
    rounds: u32,
    rows: Vec<Row>,
    paced: Vec<PacedRow>,
    health: [Option<f64>; 2],
    /// `--only`: run just the cases whose name contains one of these (all when empty).
    only: Vec<String>,
}

const CONNECTIONS: [u32; 2] = [32, 256];

impl Bench {
    fn run_server(
        &mut self,
        bin: &Path,
        config: &Path,
        port: u16,
        log: &str,
        cases: &[Case],
    ) -> Result<(), String> {
        let cases: Vec<&Case> = cases.iter().filter(|c| self.selected(c.name)).collect();
        if cases.is_empty() {
            return Ok(());
        }
        let server = Server::start(bin, config, port, log)?;
        // The ratio "× (a)" is taken against `/healthz` on the same server just before its
        // cases: the machine's speed drifts by 20 % and more over a run (shared VM), which
        // a single `/healthz` figure at the start would charge to the later cases.
        if self.rounds == 1 && cases.first().is_some_and(|c| c.path != "/healthz") {
            for (i, c) in CONNECTIONS.iter().enumerate() {
                let url = format!("http://{}/healthz", server.addr);
                let report = wrk::run(&self.wrk, &url, *c, self.secs, None)?;
                self.health[i] = Some(report.rps);
            }
        }
        for case in cases {
            let url = format!("http://{}{}", server.addr, case.path);
            let header = case
                .authorization
                .as_ref()
                .map(|a| format!("Authorization: {a}"));
            // warm-up: fills caches and pools, and checks that the case answers 200
            let status = setup::get(server.addr, &case.path, case.authorization.as_deref())?;
            if status != 200 {
                return Err(format!("{}: warm-up answered {status}", case.name));
            }
            let mut peak = 0.0f64;
            let health_url = format!("http://{}/healthz", server.addr);
            for (i, c) in CONNECTIONS.iter().enumerate() {
                // With --rounds N > 1, each round measures /healthz and then the case, back to
                // back, and the round with the median ratio is shown: the VM's speed drifts
                // by 20–30 % from one 5 s run to the next.
                let mut samples = Vec::new();
                for _ in 0..self.rounds {
                    let health = if self.rounds > 1 && case.path != "/healthz" {
                        Some(wrk::run(&self.wrk, &health_url, *c, self.secs, None)?.rps)
                    } else {
                        self.health[i]
                    };
                    let report = wrk::run(&self.wrk, &url, *c, self.secs, header.as_deref())?;
                    samples.push((report, health));
                }
                let key = |(r, h): &(wrk::Report, Option<f64>)| h.map_or(r.rps, |h| r.rps / h);
                samples.sort_by(|a, b| key(a).total_cmp(&key(b)));
                let (report, health) = samples[samples.len() / 2];
                if case.path == "/healthz" {
                    self.health[i] = Some(report.rps);
                }
                if *c == 32 {
                    peak = report.rps;
                }
                let row = Row {
                    case: case.name.to_owned(),
                    connections: *c,
                    vs_health: if case.path == "/healthz" {
                        Some(1.0)
                    } else {
                        health.map(|h| report.rps / h)
                    },
                    peak_rss_kib: server.peak_rss_kib(),
                    report,
                };
                eprintln!(
                    "load: {:<44} c={:<3} {:>8.0} req/s  p50 {:>8.2?}  p99 {:>8.2?}  errors {}",
                    row.case, c, report.rps, report.p50, report.p99, report.errors
                );
                self.rows.push(row);
            }
            if case.paced {
                let report = paced::run(
                    server.addr,
                    &case.path,
                    case.authorization.as_deref(),
                    peak / 2.0,
                    32,
                    self.secs,
                )?;
                eprintln!(
                    "load: {:<44} paced {:>6.0} req/s  p50 {:>8.2?}  p99 {:>8.2?}",
                    case.name, report.rate, report.p50, report.p99
                );
                self.paced.push(PacedRow {
                    case: case.name.to_owned(),
                    report,
                });
            }
        }
        Ok(())
    }

    /// Whether `--only` selects the case named `name`.
    fn selected(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Args {
    secs: u64,
    rounds: u32,
    ldap: bool,
    only: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        secs: 5,
        rounds: 1,
        ldap: true,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => {
                a.secs = number(
                    it.next(),
                    1..=120,
                    "--secs needs a number of seconds (1–120)",
                )?
            }
            "--rounds" => {
                a.rounds = number(it.next(), 1..=9, "--rounds needs a number of rounds (1–9)")?
            }
            "--no-ldap" => a.ldap = false,
            "--only" => a
                .only
                .push(it.next().ok_or("--only needs a part of a case name")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (use --secs N, --rounds N, --no-ldap, --only TEXT)"
                ));
            }
        }
    }
    Ok(a)
}

/// An option's value: a number within `range`, else `error`.
fn number<T: std::str::FromStr + PartialOrd>(
    value: Option<String>,
    range: std::ops::RangeInclusive<T>,
    error: &str,
) -> Result<T, String> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|v| range.contains(v))
        .ok_or_else(|| error.to_owned())
}

fn real_main() -> Result<(), String> {
    let args = args()?;
    let wrk = test_support::require_binary("wrk", "apt-get install wrk");
    let bin = setup::build_server()?;
    let dir = test_support::workdir();
    let (es_key, es_crt) = setup::es256_key(&bin, dir.path())?;
    let (rsa_key, rsa_crt) = setup::rsa4096_key(dir.path())?;
    let mut bench = Bench {
        wrk,
        secs: Duration::from_secs(args.secs),
        rounds: args.rounds,
        rows: Vec::new(),
        paced: Vec::new(),
        health: [None, None],
        only: args.only,
    };
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let user = basic(USER, PASSWORD);
    let token = |scope: &str| format!("/auth?service=registry&scope=repository:{scope}:pull");
    let es = |cache: Option<&'static str>| Variant {
        key: &es_key,
        cert: &es_crt,
        ldap: None,
        credential_cache: cache,
        reuse_window: 0,
        metrics: false,
    };

    // ES256, static users with the default credential cache
    let port = test_support::free_port();
    let cfg = setup::config(dir.path(), "es256", port, &es(None))?;
    bench.run_server(
        &bin,
        &cfg,
        port,
        "info",
        &[
            Case {
                name: "(a) /healthz",
                path: "/healthz".to_owned(),
                authorization: None,
                paced: false,
            },
            Case {
                name: "(b) token, anonymous",
                path: token("demo/app"),
                authorization: None,
                paced: true,
            },
            Case {
                name: "(c) token, Basic (cache 60 s), 1 scope",
                path: token("demo/app"),
                authorization: Some(user.clone()),
                paced: true,
            },
        ],
    )?;
    // the audit log's cost: the same server with INFO events filtered out
    let port = test_support::free_port();
    let cfg = setup::config(dir.path(), "es256-warn", port, &es(None))?;
    bench.run_server(
        &bin,
        &cfg,
        port,
        "warn",
        &[
            Case {
                name: "(b) anonymous, RUST_LOG=warn",
                path: token("demo/app"),
                authorization: None,
                paced: false,
            },
            Case {
                name: "(c) Basic, RUST_LOG=warn",
                path: token("demo/app"),
                authorization: Some(user.clone()),
                paced: false,
            },
        ],
    )?;
    // the cost of metrics: the same configuration with and without `server.metrics`,
    // alternating twice so that drift in the machine's speed hits both sides alike
    for round in 1..=2 {
        for metrics in [false, true] {
            let port = test_support::free_port();
            let label = if metrics { "on" } else { "off" };
            let cfg = setup::config(
                dir.path(),
                &format!("metrics-{label}-{round}"),
                port,
                &Variant {
                    metrics,
                    ..es(None)
                },
            )?;
            let names: [&'static str; 2] = if metrics {
                ["(b) anonymous, metrics on", "(c) Basic, metrics on"]
            } else {
                ["(b) anonymous, metrics off", "(c) Basic, metrics off"]
            };
            bench.run_server(
                &bin,
                &cfg,
                port,
                "info",
                &[
                    Case {
                        name: names[0],
                        path: token("demo/app"),
                        authorization: None,
                        paced: false,
                    },
                    Case {
                        name: names[1],
                        path: token("demo/app"),
                        authorization: Some(user.clone()),
                        paced: false,
                    },
                ],
            )?;
        }
    }
    // no credential cache: a bcrypt cost-5 verification per request
    let port = test_support::free_port();
    let cfg = setup::config(dir.path(), "es256-nocache", port, &es(Some("{ttl: 0}")))?;
    bench.run_server(
        &bin,
        &cfg,
        port,
        "info",
        &[Case {
            name: "(c0) token, Basic, no cache (bcrypt)",
            path: token("demo/app"),
            authorization: Some(user.clone()),
            paced: false,
        }],
    )?;
    // RSA-4096
    let port = test_support::free_port();
    let cfg = setup::config(
        dir.path(),
        "rsa4096",
        port,
        &Variant {
            key: &rsa_key,
            cert: &rsa_crt,
            ldap: None,
            credential_cache: None,
            reuse_window: 0,
            metrics: false,
        },
    )?;
    bench.run_server(
        &bin,
        &cfg,
        port,
        "info",
        &[Case {
            name: "(d) token, Basic, RSA-4096 key",
            path: token("demo/app"),
            authorization: Some(user),
            paced: true,
        }],
    )?;
    // the opt-in token reuse window (30 s of a 900 s token): identical grants skip signing
    for (name, key, crt) in [
        (
            "(c-r) token, Basic, ES256, reuse_window 30",
            &es_key,
            &es_crt,
        ),
        (
            "(d-r) token, Basic, RSA-4096, reuse_window 30",
            &rsa_key,
            &rsa_crt,
        ),
    ] {
        let port = test_support::free_port();
        let cfg = setup::config(
            dir.path(),
            &format!("reuse-{}", name.len()),
            port,
            &Variant {
                key,
                cert: crt,
                ldap: None,
                credential_cache: None,
                reuse_window: 30,
                metrics: false,
            },
        )?;
        bench.run_server(
            &bin,
            &cfg,
            port,
            "info",
            &[Case {
                name,
                path: token("demo/app"),
                authorization: Some(basic(USER, PASSWORD)),
                paced: false,
            }],
        )?;
    }
    // LDAP
    if args.ldap && (bench.selected("(e) token, LDAP") || bench.selected("(e60)")) {
        let slapd = std::panic::catch_unwind(test_support::slapd::Slapd::start).map_err(
            |_| "cannot start slapd (apt-get install slapd ldap-utils, or pass --no-ldap)",
        )?;
        let pw = dir.path().join("bind_password");
        std::fs::write(&pw, test_support::slapd::SERVICE_PW).map_err(|e| e.to_string())?;
        let ldap_user = basic("alice", "alicepw");
        for (name, ttl) in [
            ("(e) token, LDAP (no cache)", 0),
            ("(e60) token, LDAP, cache_ttl 60", 60),
        ] {
            let section = format!(
                "ldap_auth:\n  addr: \"127.0.0.1:{}\"\n  tls: starttls\n  ca_certificate: {}\n  bind_dn: \"{}\"\n  bind_password_file: {}\n  base: \"{}\"\n  filter: \"(uid=${{account}})\"\n  labels:\n    group: {{attribute: memberOf, parse_cn: true, lower_case: true}}\n  cache_ttl: {ttl}\n",
                slapd.ldap_port,
                slapd.ca_cert().display(),
                test_support::slapd::SERVICE_DN,
                pw.display(),
                test_support::slapd::PEOPLE,
            );
            let port = test_support::free_port();
            let cfg = setup::config(
                dir.path(),
                &format!("ldap{ttl}"),
                port,
                &Variant {
                    key: &es_key,
                    cert: &es_crt,
                    ldap: Some(section),
                    credential_cache: None,
                    reuse_window: 0,
                    metrics: false,
                },
            )?;
            bench.run_server(
                &bin,
                &cfg,
                port,
                "info",
                &[Case {
                    name,
                    path: token("dev/app"),
                    authorization: Some(ldap_user.clone()),
                    paced: ttl == 0,
                }],
            )?;
        }
    }
    // cold start: process start → first token (ES256, static users, no LDAP)
    let port = test_support::free_port();
    let cfg = setup::config(dir.path(), "cold", port, &es(None))?;
    let cold = if bench.selected("cold start") {
        cold_start(&bin, &cfg, port, &token("demo/app"))?
    } else {
        Vec::new()
    };

    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    print_report(&bench, &cold, load_before.trim(), load_after.trim());
    Ok(())
}

fn cold_start(bin: &Path, cfg: &Path, port: u16, path: &str) -> Result<Vec<Duration>, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut child = setup::spawn(bin, cfg, "info")?;
        let deadline = start + Duration::from_secs(10);
        let result = loop {
            if setup::get(addr, path, None) == Ok(200) {
                break Ok(start.elapsed());
            }
            if Instant::now() > deadline {
                break Err("no token within 10 s of starting the server".to_owned());
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        times.push(result?);
    }
    times.sort_unstable();
    Ok(times)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn print_report(b: &Bench, cold: &[Duration], load_before: &str, load_after: &str) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    println!(
        "\nmachine: {} × {cpu}; wrk -t2 on the same box; {} s per run; {} round(s) per figure (median of /healthz + case pairs); loadavg before {load_before}, after {load_after}\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        b.secs.as_secs(),
        b.rounds
    );
    println!("| case | conns | req/s | × (a) | p50 ms | p99 ms | errors | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &b.rows {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.case,
            r.connections,
            r.report.rps,
            r.vs_health.map_or("–".to_owned(), |v| format!("{v:.2}")),
            ms(r.report.p50),
            ms(r.report.p99),
            r.report.errors,
            r.peak_rss_kib
                .map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    println!("\n| at half of peak (32 conns, open loop) | rate req/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for p in &b.paced {
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            p.case,
            p.report.rate,
            ms(p.report.p50),
            ms(p.report.p99),
            p.report.errors
        );
    }
    println!(
        "\n| metrics on / off (sum of both rounds) | conns | off req/s | on req/s | on / off |"
    );
    println!("|---|---:|---:|---:|---:|");
    for case in ["(b) anonymous", "(c) Basic"] {
        for c in CONNECTIONS {
            let sum = |suffix: &str| -> f64 {
                let name = format!("{case}, metrics {suffix}");
                b.rows
                    .iter()
                    .filter(|r| r.case == name && r.connections == c)
                    .map(|r| r.report.rps)
                    .sum()
            };
            let (off, on) = (sum("off"), sum("on"));
            if off > 0.0 {
                println!(
                    "| {case} | {c} | {:.0} | {:.0} | {:.3} |",
                    off / 2.0,
                    on / 2.0,
                    on / off
                );
            }
        }
    }
    if cold.is_empty() {
        return;
    }
    let median = cold.get(cold.len() / 2).copied().unwrap_or_default();
    let max = cold.last().copied().unwrap_or_default();
    println!(
        "\ncold start (process start → first token, ES256, static users, 5 runs): median {} ms, max {} ms",
        ms(median),
        ms(max)
    );
}
