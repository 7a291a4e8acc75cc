//! `/metrics` and failed-login rate limiting against the real server binary: the Prometheus
//! text is read by a real parser (`prometheus-parse`) and the counters move for a granted, a
//! denied and a failed request; 20 wrong passwords for one account from one address end in
//! 429 with `Retry-After` while other addresses and accounts keep working; 50 parallel
//! correct logins never see 429.

mod common;

use std::path::Path;

use common::{ADMIN_PW, ALICE_PW, T, start_server, write_config};
use prometheus_parse::{Scrape, Value};
use test_support::Process;

const SCOPE: &str = "service=test-registry&scope=repository:demo/app:pull";
const DENIED: &str = "service=test-registry&scope=repository:nobody/app:pull";

/// The common configuration plus `extra` lines in `server:` (the client address comes from
/// `X-Forwarded-For`, trusted from loopback).
fn server_with(dir: &Path, extra: &str) -> (Process, String) {
    let config = write_config(dir, &common::Opts::default());
    let yaml = std::fs::read_to_string(&config).unwrap();
    let server_section = "server:\n  addr: \"127.0.0.1:0\"\n";
    assert!(yaml.contains(server_section));
    let yaml = yaml.replacen(
        server_section,
        &format!("{server_section}  real_ip_header: X-Forwarded-For\n{extra}"),
        1,
    );
    std::fs::write(&config, yaml).unwrap();
    start_server(&config)
}

async fn token(url: &str, query: &str, user: Option<(&str, &str)>, ip: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{url}/auth?{query}"))
        .header("X-Forwarded-For", ip);
    if let Some((u, p)) = user {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.expect("token request")
}

async fn scrape(url: &str) -> (String, Scrape) {
    let resp = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = resp.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    (text, parsed)
}

/// The value of a counter with the given labels (0 when the series does not exist yet).
fn counter(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) => v,
            _ => panic!("{name} is not a counter: {:?}", x.value),
        })
        .sum()
}

/// The number of observations of a histogram (its `+Inf` bucket), summed over label sets.
fn observations(s: &Scrape, name: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .map(|x| match &x.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_for_granted_denied_and_failed_requests() {
    let dir = test_support::workdir();
    let (server, url) = server_with(dir.path(), "  metrics: {enabled: true}\n");
    let ip = "203.0.113.10";
    // a first request creates the series
    assert_eq!(
        token(&url, SCOPE, Some(("alice", ALICE_PW)), ip)
            .await
            .status(),
        200
    );
    let (_, before) = scrape(&url).await;

    let ok = token(&url, SCOPE, Some(("alice", ALICE_PW)), ip).await;
    assert_eq!(ok.status(), 200);
    let denied = token(&url, DENIED, Some(("alice", ALICE_PW)), ip).await;
    assert_eq!(denied.status(), 200, "a denied scope is an empty grant");
    let failed = token(&url, SCOPE, Some(("alice", "wrong")), ip).await;
    assert_eq!(failed.status(), 401);

    let (text, after) = scrape(&url).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        counter(&after, name, labels) - counter(&before, name, labels)
    };
    let requests = "docker_token_requests_total";
    assert_eq!(delta(requests, &[("outcome", "granted")]), 1.0, "{text}");
    assert_eq!(delta(requests, &[("outcome", "denied")]), 1.0, "{text}");
    assert_eq!(
        delta(requests, &[("outcome", "unauthorized")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        observations(&after, "docker_token_request_duration_seconds")
            - observations(&before, "docker_token_request_duration_seconds"),
        3.0,
        "{text}"
    );
    let authn = "docker_token_authn_total";
    assert_eq!(
        delta(authn, &[("backend", "static"), ("result", "authenticated")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        delta(authn, &[("backend", "static"), ("result", "rejected")]),
        1.0,
        "{text}"
    );
    assert!(
        observations(&after, "docker_token_authn_duration_seconds") >= 4.0,
        "{text}"
    );
    let cache = "docker_token_credential_cache_total";
    assert_eq!(
        delta(cache, &[("backend", "static"), ("result", "hit")]),
        2.0,
        "the first request cached alice's password: {text}"
    );
    assert_eq!(
        delta(cache, &[("backend", "static"), ("result", "miss")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta("docker_token_failed_logins_total", &[]),
        1.0,
        "{text}"
    );
    assert!(after.docs.contains_key(requests), "HELP lines: {text}");
    // no client-controlled value is a label
    for needle in ["alice", "demo/app", "nobody", "test-registry", ip] {
        assert!(!text.contains(needle), "{needle:?} leaked into the metrics");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_off_or_on_a_separate_listener() {
    let dir = test_support::workdir();
    // off by default: /metrics is not a route
    let (server, url) = server_with(dir.path(), "");
    assert_eq!(
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .status(),
        404
    );
    drop(server);

    let dir = test_support::workdir();
    let (mut server, url) = server_with(
        dir.path(),
        "  metrics: {addr: \"127.0.0.1:0\", path: /internal/metrics}\n",
    );
    let line = server.wait_for_line("metrics on http://", T);
    let metrics_url = line.rsplit(' ').next().unwrap().to_owned();
    assert!(metrics_url.ends_with("/internal/metrics"), "{line}");
    assert_eq!(
        reqwest::get(format!("{url}/internal/metrics"))
            .await
            .unwrap()
            .status(),
        404,
        "not on the public listener"
    );
    assert_eq!(
        token(&url, SCOPE, Some(("admin", ADMIN_PW)), "198.51.100.1")
            .await
            .status(),
        200
    );
    let text = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(
        counter(
            &parsed,
            "docker_token_requests_total",
            &[("outcome", "granted")]
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_passwords_are_limited_for_that_account_and_address_only() {
    let dir = test_support::workdir();
    let (mut server, url) = server_with(dir.path(), "  metrics: {enabled: true}\n");
    let ip = "203.0.113.5";
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..20 {
        let r = token(&url, SCOPE, Some(("alice", "guess")), ip).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");
        }
    }
    // the default burst is 10 failures per (account, address)
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 10], "{statuses:?}");
    let secs: u64 = retry_after
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=10).contains(&secs), "{secs}");

    // while limited, the right password gets 429 too: guessing gets no signal
    assert_eq!(
        token(&url, SCOPE, Some(("alice", ALICE_PW)), ip)
            .await
            .status(),
        429
    );
    // the same account from another address, and another account from this one, work
    assert_eq!(
        token(&url, SCOPE, Some(("alice", ALICE_PW)), "203.0.113.6")
            .await
            .status(),
        200
    );
    assert_eq!(
        token(&url, SCOPE, Some(("admin", ADMIN_PW)), ip)
            .await
            .status(),
        200
    );
    // anonymous requests are never limited
    assert_eq!(token(&url, SCOPE, None, ip).await.status(), 200);

    let line = server.wait_for_line("login rate-limited", T);
    assert!(line.contains("203.0.113.5"), "{line}");
    let (text, s) = scrape(&url).await;
    assert_eq!(
        counter(
            &s,
            "docker_token_rate_limited_total",
            &[("limit", "account_ip")]
        ),
        11.0,
        "{text}"
    );
    assert_eq!(
        counter(
            &s,
            "docker_token_requests_total",
            &[("outcome", "rate_limited")]
        ),
        11.0,
        "{text}"
    );
    assert_eq!(
        counter(&s, "docker_token_failed_logins_total", &[]),
        10.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_correct_logins_never_see_429() {
    let dir = test_support::workdir();
    let (server, url) = server_with(dir.path(), "");
    let ip = "198.51.100.50";
    // nine failures: one short of the burst
    for _ in 0..9 {
        assert_eq!(
            token(&url, SCOPE, Some(("alice", "typo")), ip)
                .await
                .status(),
            401
        );
    }
    for round in 0..3 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let url = url.clone();
            set.spawn(async move {
                token(&url, SCOPE, Some(("alice", ALICE_PW)), ip)
                    .await
                    .status()
                    .as_u16()
            });
        }
        let statuses: Vec<u16> = set.join_all().await;
        assert!(
            statuses.iter().all(|s| *s == 200),
            "round {round}: {statuses:?}"
        );
    }
    drop(server);
}
