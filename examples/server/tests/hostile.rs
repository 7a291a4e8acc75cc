//! Hostile inputs against the running server binary, over raw TCP (so that no client library
//! cleans the bytes up first). The table is `docs/hostile-inputs.md`; keep both in step.
//!
//! Every case asserts the documented status, no 500, and (for the token endpoint) docker's
//! JSON error body. At the end: a good request still works, the process never panicked, and
//! no client value forged a log line.
//!
//! `DOCKER_TOKEN_SERVER_BIN=/path/to/release/docker-token-server` runs the table against
//! another build (e.g. `target/release/docker-token-server`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use test_support::{Process, free_port, workdir};

const ALICE_PW: &str = "alice-pw-0123";
/// Exactly bcrypt's 72 bytes.
const LONG_PW: &str = "L234567890123456789012345678901234567890123456789012345678901234567890_2";
/// Marks the start of a forged log line; no output line may begin with it.
const MARK: &str = "INJECTED-LOG-LINE";
/// Configured `server.header_read_timeout` (seconds).
const HEADER_TIMEOUT: u64 = 1;
/// The IdP's `http_timeout`; the slow IdP answers after twice that.
const IDP_TIMEOUT_MS: u64 = 700;

// ---------------------------------------------------------------------------------------------
// raw HTTP

#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What came back on the connection.
#[derive(Debug)]
enum Outcome {
    Response(Resp),
    /// The server closed (or reset) the connection without an answer.
    Closed,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Writes `bytes` (errors ignored: the server may answer and close before reading them all)
/// and reads one response.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Outcome {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> Outcome {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap()),
        }
        if let Some(r) = parse_complete(&buf) {
            return Outcome::Response(r);
        }
    }
    parse_complete(&buf).map_or(Outcome::Closed, Outcome::Response)
}

/// A complete response in `buf` (Content-Length or chunked), if any.
fn parse_complete(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(buf.get(..end)?).into_owned();
    let rest = buf.get(end + 4..)?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut r = Resp {
        status,
        head,
        body: String::new(),
    };
    if let Some(len) = r.header("content-length") {
        let len: usize = len.parse().ok()?;
        r.body = String::from_utf8_lossy(rest.get(..len)?).into_owned();
    } else if r
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        let text = String::from_utf8_lossy(rest).into_owned();
        if !text.ends_with("0\r\n\r\n") {
            return None;
        }
        r.body = text;
    }
    Some(r)
}

fn get(path_and_query: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path_and_query} HTTP/1.1\r\nHost: t\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

fn post_form(body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST /auth HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn basic(user_pass: &[u8]) -> String {
    format!("Authorization: Basic {}\r\n", STANDARD.encode(user_pass))
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// a hostile identity provider

/// How the fake IdP answers the JWKS, introspection and token endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Idp {
    /// A 2 MiB JSON body (over the 1 MiB limit), no Content-Length.
    Huge = 0,
    /// Answers after twice the configured `http_timeout`.
    Slow = 1,
    /// Truncated JSON.
    Malformed = 2,
    /// Well-formed JSON of the wrong shape.
    WrongShape = 3,
    /// An HTML error page with status 200.
    Html = 4,
}

struct FakeIdp {
    issuer: String,
    mode: Arc<AtomicU8>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeIdp {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(Idp::Malformed as u8));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (iss, m, reqs) = (issuer.clone(), mode.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (iss, m, reqs) = (iss.clone(), m.clone(), reqs.clone());
                std::thread::spawn(move || idp_answer(conn, &iss, &m, &reqs));
            }
        });
        Self {
            issuer,
            mode,
            requests,
        }
    }

    fn set(&self, mode: Idp) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with(path))
            .count()
    }
}

fn idp_answer(mut conn: TcpStream, issuer: &str, mode: &AtomicU8, requests: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // the head, then as much body as Content-Length says
    let head_end = loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap()),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap()).to_lowercase();
    let want = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + want {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap()),
        }
    }
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    requests.lock().unwrap().push(path.clone());
    let json = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if path.starts_with("/.well-known/openid-configuration") {
        let doc = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let _ = conn.write_all(json(&doc.to_string()).as_bytes());
        return;
    }
    let mode = mode.load(Ordering::SeqCst);
    let reply = match mode {
        m if m == Idp::Huge as u8 => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"keys\":[",
            );
            let filler = vec![b' '; 64 * 1024];
            for _ in 0..32 {
                if conn.write_all(&filler).is_err() {
                    return;
                }
            }
            "]}".to_owned()
        }
        m if m == Idp::Slow as u8 => {
            std::thread::sleep(Duration::from_millis(IDP_TIMEOUT_MS * 2));
            json(r#"{"keys":[],"active":false}"#)
        }
        m if m == Idp::Malformed as u8 => json(r#"{"keys":[{"kty":"RSA","n":"#),
        m if m == Idp::WrongShape as u8 => json(
            r#"{"keys":"nope","active":"yes","access_token":7,"token_type":["x"],"exp":"never"}"#,
        ),
        _ => "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 21\r\n\r\n<html>oops</html>\r\n\r\n"
            .to_owned(),
    };
    let _ = conn.write_all(reply.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// the server

struct Server {
    process: Process,
    addr: SocketAddr,
}

fn server_binary() -> String {
    std::env::var("DOCKER_TOKEN_SERVER_BIN").unwrap_or_else(|_| common::SERVER.to_owned())
}

fn write_config(dir: &Path, port: u16, idp: &FakeIdp) -> std::path::PathBuf {
    let keys = common::gen_key(dir);
    let yaml = format!(
        r#"server:
  addr: "127.0.0.1:{port}"
  real_ip_header: X-Forwarded-For
  real_ip_trusted_proxies: ["10.0.0.0/8"]   # the test connects from loopback: untrusted
  header_read_timeout: {HEADER_TIMEOUT}
token:
  issuer: "test-issuer"
  expiration: 900
  certificate: {cert}
  key: {key}
users:
  alice:
    password: "{alice}"
  long:
    password: "{long}"
  "": {{}}
oidc_token_auth:
  issuer: "{issuer}"
  client_id: registry
  client_secret: registry-secret
  user_claim: sub
  audiences: ["urn:test"]
  http_timeout: "{IDP_TIMEOUT_MS}ms"
  cache_ttl: 0
  negative_cache_ttl: 0
  jwks_min_refresh_interval: 0
oidc_auth:
  issuer: "{issuer}"
  redirect_url: "http://127.0.0.1:{port}/oidc_auth/callback"
  client_id: registry-ui
  client_secret: registry-ui-secret
  user_claim: sub
  http_timeout: "{IDP_TIMEOUT_MS}ms"
acl:
  - match: {{account: "alice"}}
    actions: ["*"]
  - match: {{account: "long"}}
    actions: ["pull"]
  - match: {{ip: "10.9.9.9/32"}}
    actions: ["*"]
    comment: "only for the trusted proxy's clients"
  - match: {{account: "", name: "demo/*"}}
    actions: ["pull"]
"#,
        cert = keys.join("token.crt").display(),
        key = keys.join("token.key").display(),
        alice = common::hash(ALICE_PW),
        long = common::hash(LONG_PW),
        issuer = idp.issuer,
    );
    let path = dir.join("hostile.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start(config: &Path) -> Server {
    let mut cmd = Command::new(server_binary());
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info");
    let mut process = Process::spawn("docker-token-server", cmd);
    let line = process.wait_for_line("listening on http://", common::T);
    let addr = line
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Server { process, addr }
}

// ---------------------------------------------------------------------------------------------
// the table

/// One class of hostile input.
struct Case {
    /// The class, as in docs/hostile-inputs.md.
    name: &'static str,
    request: Vec<u8>,
    /// Acceptable statuses; `0` stands for "connection closed without an answer".
    expect: &'static [u16],
    /// The token endpoint answers in docker's JSON error shape.
    json_error: bool,
    /// The IdP behaviour to set first.
    idp: Option<Idp>,
}

fn case(name: &'static str, request: Vec<u8>, expect: &'static [u16]) -> Case {
    Case {
        name,
        request,
        expect,
        json_error: expect.iter().all(|s| (400..500).contains(s) && *s != 431),
        idp: None,
    }
}

impl Case {
    fn raw(mut self) -> Self {
        self.json_error = false;
        self
    }

    fn idp(mut self, mode: Idp) -> Self {
        self.idp = Some(mode);
        self
    }
}

/// A JWT-shaped password from the fake IdP (never verifies: it has no real signature).
fn fake_jwt(issuer: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#);
    let p = URL_SAFE_NO_PAD.encode(
        serde_json::json!({"iss": issuer, "sub": "idpuser", "aud": "urn:test", "exp": exp})
            .to_string(),
    );
    format!("{h}.{p}.c2lnbmF0dXJl")
}

fn table(idp: &FakeIdp) -> Vec<Case> {
    let alice = basic(format!("alice:{ALICE_PW}").as_bytes());
    let long_plus = |extra: &str| basic(format!("long:{LONG_PW}{extra}").as_bytes());
    let many_scopes: String = (0..1000)
        .map(|i| format!("scope=repository:r{i}:pull&"))
        .collect();
    let same_scope: String = "scope=repository:demo/x:pull&".repeat(2000);
    let jwt = basic(format!("idpuser:{}", fake_jwt(&idp.issuer)).as_bytes());
    let opaque = basic(b"idpuser:opaque-access-token-0123456789abcdef");
    let big_body = format!("grant_type=password&x={}", "a".repeat(100 * 1024));
    let chunked_over = {
        let mut b = b"POST /auth HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..20 {
            b.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
            b.extend_from_slice(&[b'a'; 8192]);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    vec![
        // --- sizes
        case("query over 16 KiB", get(&format!("/auth?service={}", "s".repeat(20_000)), ""), &[400]),
        case("query of 300 KiB", get(&format!("/auth?x={}", "q".repeat(300_000)), ""), &[431]).raw(),
        case("one header of 500 KiB", get("/auth", &format!("X-Big: {}\r\n", "h".repeat(500_000))), &[431]).raw(),
        case("headers of 60 KiB (under the 64 KiB head limit)", get("/auth", &format!("X-Pad: {}\r\n", "h".repeat(60_000))), &[200]),
        case("200 headers", get("/auth", &(0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()), &[431]).raw(),
        case("path of 60 KiB", get(&format!("/{}", "p".repeat(60_000)), ""), &[404]).raw(),
        case("POST body of 100 KiB (Content-Length)", post_form(&big_body, ""), &[413, 0]),
        case("chunked POST body of 160 KiB", chunked_over, &[413, 0]),
        case("1000 distinct scopes (POST)", post_form(&format!("grant_type=password&username=alice&password={ALICE_PW}&{many_scopes}"), ""), &[400]),
        case("2000 copies of one scope (POST, merged)", post_form(&format!("grant_type=password&username=alice&password={ALICE_PW}&{same_scope}"), ""), &[200]),
        case("200 distinct scopes (under the limit)", post_form(&format!("grant_type=password&username=alice&password={ALICE_PW}&{}", (0..200).map(|i| format!("scope=repository:r{i}:pull&")).collect::<String>()), ""), &[200]),
        case("one scope of 5 KiB", get(&format!("/auth?scope=repository:{}:pull", "n".repeat(5000)), ""), &[400]),
        // --- encodings
        case("raw invalid UTF-8 in the query", concat(&[b"GET /auth?service=\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"]), &[400]).raw(),
        case("percent-encoded invalid UTF-8 (service)", get("/auth?service=%FF%FE", ""), &[400]),
        case("percent-encoded invalid UTF-8 (scope)", get("/auth?scope=repository:%C3%28:pull", ""), &[400]),
        case("bad percent-encoding in scope", get("/auth?scope=%ZZrepository:a:pull", ""), &[400]),
        case("truncated percent-encoding in service (kept literally)", get("/auth?service=reg%2", ""), &[200]),
        case("NUL in account", get("/auth?account=al%00ice", &alice), &[400]),
        case("CR/LF in account", get(&format!("/auth?account=alice%0D%0A{MARK}"), &alice), &[400]),
        case("CR/LF in service", get(&format!("/auth?service=reg%0A{MARK}"), ""), &[400]),
        case("NUL in service", get("/auth?service=reg%00istry", ""), &[400]),
        case("CR/LF in scope name", get(&format!("/auth?scope=repository:a%0A{MARK}:pull"), ""), &[400]),
        case("NUL in scope name", get("/auth?scope=repository:a%00b:pull", ""), &[400]),
        case("CR/LF in client_id", get(&format!("/auth?client_id=x%0D%0A{MARK}"), ""), &[400]),
        case("CR/LF in the Basic user name", get("/auth", &basic(format!("alice\n{MARK}:pw").as_bytes())), &[400]),
        case("NUL in the Basic user name", get("/auth", &basic(b"ali\0ce:pw")), &[400]),
        case("CR/LF in the POST username", post_form(&format!("grant_type=password&username=a%0A{MARK}&password=x"), ""), &[400]),
        case("scope type in upper case", get("/auth?scope=Repository:a:pull", ""), &[400]),
        case("scope without actions part", get("/auth?scope=repository:a", ""), &[400]),
        case("scope with a bad action", get("/auth?scope=repository:a:pu%20ll;rm", ""), &[400]),
        // --- Basic credentials
        case("Basic without a colon", get("/auth", &basic(b"alice")), &[400]),
        case("Basic with bad base64", get("/auth", "Authorization: Basic !!!not-base64!!!\r\n"), &[400]),
        case("Basic with nothing after the scheme", get("/auth", "Authorization: Basic\r\n"), &[400]),
        case("Basic decoding to invalid UTF-8", get("/auth", &basic(b"\xff\xfe:\xfd")), &[400]),
        case("Bearer instead of Basic", get("/auth", "Authorization: Bearer abc.def.ghi\r\n"), &[400]),
        case("Authorization with non-ASCII bytes", concat(&[b"GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Basic \xc3\xa9\xff\r\nConnection: close\r\n\r\n"]), &[400]),
        case("user name of 10 kB", get("/auth", &basic(format!("{}:pw", "u".repeat(10_000)).as_bytes())), &[401]),
        case("password of 10 kB", get("/auth", &basic(format!("alice:{}", "p".repeat(10_000)).as_bytes())), &[401]),
        case("password of 73 bytes sharing bcrypt's 72", get("/auth", &long_plus("X")), &[401]),
        case("password of 72 bytes + 1000 more", get("/auth", &long_plus(&"Y".repeat(1000))), &[401]),
        case("wrong password", get("/auth", &basic(b"alice:wrong")), &[401]),
        // --- who is asking
        case("account differs from the Basic user", get("/auth?account=admin", &alice), &[400]),
        case("POST username differs from the Basic user", post_form("grant_type=password&username=admin&password=x", &alice), &[400]),
        case("POST account differs from username", post_form(&format!("grant_type=password&username=alice&password={ALICE_PW}&account=admin"), ""), &[400]),
        case("service given twice, differently", get("/auth?service=a&service=b", ""), &[400]),
        case("real_ip_header spoofed by an untrusted peer", get("/auth?scope=repository:secret/x:pull", "X-Forwarded-For: 10.9.9.9\r\n"), &[200]),
        case("garbage real_ip_header from an untrusted peer", get("/auth", "X-Forwarded-For: not-an-ip, , ,[::1\r\n"), &[200]),
        case("DEL byte in a header value", get("/auth", "X-Forwarded-For: \u{7f}1.2.3.4\r\n"), &[400]).raw(),
        // --- POST forms
        case("POST without grant_type", post_form("username=alice&password=x", ""), &[400]),
        case("POST with a 10 kB grant_type", post_form(&format!("grant_type={}", "g".repeat(10_000)), ""), &[400]),
        case("POST JSON instead of a form", concat(&[b"POST /auth HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"grant\":\"x\"}\r\n"]), &[400]),
        case("refresh_token grant without a token", post_form("grant_type=refresh_token", ""), &[400]),
        // --- HTTP framing
        case("invalid chunk size", concat(&[b"POST /auth HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"]), &[400]),
        case("Content-Length and Transfer-Encoding together", concat(&[b"POST /auth HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"]), &[400]).raw(),
        case("non-numeric Content-Length", concat(&[b"POST /auth HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"]), &[400]).raw(),
        case("header line without a colon", concat(&[b"GET /auth HTTP/1.1\r\nHost: t\r\nNoColonHere\r\nConnection: close\r\n\r\n"]), &[400]).raw(),
        case("obsolete line folding", concat(&[b"GET /auth HTTP/1.1\r\nHost: t\r\nX-A: a\r\n folded\r\nConnection: close\r\n\r\n"]), &[400]).raw(),
        case("TLS ClientHello on the plain port", concat(&[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &[0u8; 64]]), &[400]).raw(),
        case("unknown method", concat(&[b"BREW /auth HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"]), &[405]).raw(),
        case("path traversal", get("/auth/../../../etc/passwd", ""), &[404]).raw(),
        case("POST to the JWKS", post_form("x=1", "").replace_path("/auth", "/.well-known/jwks.json"), &[405]).raw(),
        // --- hostile IdP answers (oidc_token_auth)
        case("JWKS answer of 2 MiB", get("/auth", &jwt), &[503]).idp(Idp::Huge),
        case("JWKS answer too slow", get("/auth", &jwt), &[503]).idp(Idp::Slow),
        case("JWKS answer truncated JSON", get("/auth", &jwt), &[503]).idp(Idp::Malformed),
        case("JWKS answer of the wrong shape", get("/auth", &jwt), &[401]).idp(Idp::WrongShape),
        case("JWKS answer in HTML", get("/auth", &jwt), &[503]).idp(Idp::Html),
        case("introspection answer of 2 MiB", get("/auth", &opaque), &[503]).idp(Idp::Huge),
        case("introspection answer too slow", get("/auth", &opaque), &[503]).idp(Idp::Slow),
        case("introspection answer truncated JSON", get("/auth", &opaque), &[503]).idp(Idp::Malformed),
        case("introspection answer of the wrong shape", get("/auth", &opaque), &[503]).idp(Idp::WrongShape),
        case("introspection answer in HTML", get("/auth", &opaque), &[503]).idp(Idp::Html),
        // --- OIDC browser login (oidc_auth)
        case("OIDC callback without parameters or cookie", get("/oidc_auth/callback", ""), &[400]).raw(),
        case("OIDC callback with a forged state, no cookie", get("/oidc_auth/callback?code=x&state=forged", ""), &[400]).raw(),
        case("OIDC callback with a garbage cookie", get("/oidc_auth/callback?code=x&state=y", "Cookie: docker_token_oidc_login=AAAA.%%%.\u{1}\r\n"), &[400]).raw(),
        case("OIDC callback with an 8 KiB cookie", get("/oidc_auth/callback?code=x&state=y", &format!("Cookie: docker_token_oidc_login={}\r\n", "c".repeat(8192))), &[400]).raw(),
        case("OIDC callback error with HTML and CR/LF", get(&format!("/oidc_auth/callback?error=%3Cscript%3Ealert(1)%3C/script%3E&error_description=x%0A{MARK}"), ""), &[400]).raw(),
        case("OIDC callback with invalid UTF-8 and NUL", get("/oidc_auth/callback?code=%FF%00&state=%C3%28", ""), &[400]).raw(),
        case("OIDC sign-out with a bad Basic header", concat(&[b"POST /oidc_auth/sign_out HTTP/1.1\r\nHost: t\r\nAuthorization: Basic %%%\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"]), &[401]).raw(),
    ]
}

trait ReplacePath {
    fn replace_path(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplacePath for Vec<u8> {
    fn replace_path(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replacen(from, to, 1)
            .into_bytes()
    }
}

fn check(case: &Case, got: &Outcome) -> Result<(), String> {
    let status = match got {
        Outcome::Response(r) => r.status,
        Outcome::Closed => 0,
    };
    eprintln!("class {:?}: {status}", case.name);
    if status == 500 {
        return Err(format!("{}: 500 {got:?}", case.name));
    }
    if let Outcome::Response(r) = got
        && r.body.contains("<script>")
    {
        return Err(format!(
            "{}: HTML from the request echoed unescaped",
            case.name
        ));
    }
    if !case.expect.contains(&status) {
        return Err(format!(
            "{}: expected {:?}, got {status}: {got:?}",
            case.name, case.expect
        ));
    }
    if let (true, Outcome::Response(r)) = (case.json_error, got) {
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("{}: body is not JSON ({e}): {:?}", case.name, r.body))?;
        let code = v["errors"][0]["code"].as_str();
        let message = v["errors"][0]["message"].as_str();
        if code.is_none() || message.is_none() {
            return Err(format!("{}: not docker's error shape: {v}", case.name));
        }
        if r.body.contains(MARK) && !r.body.contains(&format!("\\n{MARK}")) {
            return Err(format!("{}: raw control characters echoed: {v}", case.name));
        }
    }
    Ok(())
}

fn good_request(addr: SocketAddr) {
    let alice = basic(format!("alice:{ALICE_PW}").as_bytes());
    match exchange(
        addr,
        &get("/auth?service=reg&scope=repository:a/b:pull", &alice),
    ) {
        Outcome::Response(r) if r.status == 200 => {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert!(v["token"].as_str().is_some_and(|t| t.len() > 100), "{v}");
        }
        other => panic!("the good request failed: {other:?}"),
    }
}

fn access_of(resp: &Resp) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    common::jwt_part(v["token"].as_str().unwrap(), 2)["access"].clone()
}

#[test]
fn hostile_inputs_table() {
    let started = Instant::now();
    let idp = FakeIdp::start();
    let dir = workdir();
    let port = free_port();
    let config = write_config(dir.path(), port, &idp);
    let server = start(&config);
    let addr = server.addr;
    good_request(addr);

    let cases = table(&idp);
    assert!(cases.len() >= 40, "{} classes", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        if let Some(mode) = c.idp {
            idp.set(mode);
        }
        let got = exchange(addr, &c.request);
        if let Err(e) = check(c, &got) {
            failures.push(e);
        }
        // the spoofed header must not have unlocked the rule for 10.9.9.9
        if c.name.starts_with("real_ip_header spoofed")
            && let Outcome::Response(r) = &got
        {
            assert_eq!(
                access_of(r),
                serde_json::json!([{"type":"repository","name":"secret/x","actions":[]}])
            );
        }
    }
    assert!(idp.count("/jwks") >= 4, "the JWKS cases reached the IdP");
    assert!(
        idp.count("/introspect") >= 4,
        "the introspection cases reached the IdP"
    );

    // extra classes that need more than one exchange
    let extra = [
        slow_header_is_cut(addr),
        idle_connection_is_cut(addr),
        slow_body_is_answered_408(addr),
        thousand_idle_connections(addr),
        oidc_callback_with_hostile_token_endpoint(addr, &idp),
        correct_72_byte_password_works(addr),
    ];
    for r in extra {
        if let Err(e) = r {
            failures.push(e);
        }
    }
    let classes = cases.len() + 6;
    good_request(addr);

    // wait for the log lines of the last requests, then read the output
    std::thread::sleep(Duration::from_millis(200));
    let output = server.process.output();
    assert!(
        !output.contains("panicked"),
        "the server panicked:\n{output}"
    );
    for line in output.lines() {
        assert!(
            !line.trim_start().starts_with(MARK),
            "a client value forged a log line: {line:?}\nwhole output:\n{output}"
        );
        assert!(!line.contains('\0'), "a NUL reached the log: {line:?}");
    }
    assert!(
        output.contains(&format!("\\n{MARK}")),
        "the escaped value should be in the log (OIDC error_description): {output}"
    );
    assert!(
        failures.is_empty(),
        "{} of {classes} classes failed:\n{}\n\nserver output:\n{output}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{classes} hostile-input classes passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Headers sent slower than `header_read_timeout`: the server closes the connection.
fn slow_header_is_cut(addr: SocketAddr) -> Result<(), String> {
    let mut s = connect(addr);
    s.write_all(b"GET /auth HTTP/1.1\r\nHost: t\r\n").unwrap();
    let t = Instant::now();
    let got = read_response(&mut s);
    let waited = t.elapsed();
    match got {
        Outcome::Closed | Outcome::Response(Resp { status: 408, .. })
            if waited < Duration::from_secs(HEADER_TIMEOUT + 5) =>
        {
            Ok(())
        }
        other => Err(format!(
            "slowloris: expected the connection closed after {HEADER_TIMEOUT} s, got {other:?} after {waited:?}"
        )),
    }
}

/// A connection that never sends a byte is closed after the header timeout.
fn idle_connection_is_cut(addr: SocketAddr) -> Result<(), String> {
    let mut s = connect(addr);
    let t = Instant::now();
    match read_response(&mut s) {
        Outcome::Closed if t.elapsed() < Duration::from_secs(HEADER_TIMEOUT + 5) => Ok(()),
        other => Err(format!(
            "idle connection: {other:?} after {:?}",
            t.elapsed()
        )),
    }
}

/// A POST body that stops arriving: 408 with the JSON error.
fn slow_body_is_answered_408(addr: SocketAddr) -> Result<(), String> {
    let mut s = connect(addr);
    s.write_all(
        b"POST /auth HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\nConnection: close\r\n\r\ngrant_type=pass",
    )
    .unwrap();
    match read_response(&mut s) {
        Outcome::Response(r) if r.status == 408 && r.body.contains("\"errors\"") => Ok(()),
        other => Err(format!("slow body: expected 408, got {other:?}")),
    }
}

/// 1000 idle connections do not stop service, and they are closed after the header timeout.
fn thousand_idle_connections(addr: SocketAddr) -> Result<(), String> {
    let conns: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("opening 1000 connections: {e}"))?;
    let t = Instant::now();
    good_request(addr);
    let served_in = t.elapsed();
    // all of them are closed by the server within the timeout (+ slack)
    let deadline = Instant::now() + Duration::from_secs(HEADER_TIMEOUT + 5);
    let mut open = 0;
    for mut c in conns {
        let left = deadline.saturating_duration_since(Instant::now());
        c.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut b = [0u8; 1];
        if !matches!(c.read(&mut b), Ok(0) | Err(_)) || Instant::now() >= deadline {
            open += 1;
        }
    }
    if open > 0 {
        return Err(format!("{open} of 1000 idle connections were still open"));
    }
    eprintln!("with 1000 idle connections a token took {served_in:?}");
    Ok(())
}

/// A real login start (state and cookie), then a callback whose code exchange meets a hostile
/// token endpoint: 502, no 500.
fn oidc_callback_with_hostile_token_endpoint(
    addr: SocketAddr,
    idp: &FakeIdp,
) -> Result<(), String> {
    for mode in [
        Idp::Huge,
        Idp::Slow,
        Idp::Malformed,
        Idp::WrongShape,
        Idp::Html,
    ] {
        idp.set(mode);
        let Outcome::Response(start) = exchange(addr, &get("/oidc_auth", "")) else {
            return Err("oidc start: no answer".to_owned());
        };
        if start.status != 303 && start.status != 302 {
            return Err(format!("oidc start: {start:?}"));
        }
        let location = start.header("location").unwrap_or_default().to_owned();
        let state = location
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("state="))
            .unwrap_or_default()
            .to_owned();
        let cookie = start
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_owned();
        let got = exchange(
            addr,
            &get(
                &format!("/oidc_auth/callback?code=abc&state={state}"),
                &format!("Cookie: {cookie}\r\n"),
            ),
        );
        match got {
            Outcome::Response(r) if r.status == 502 || r.status == 400 => {}
            other => return Err(format!("oidc callback, token endpoint {mode:?}: {other:?}")),
        }
    }
    Ok(())
}

fn correct_72_byte_password_works(addr: SocketAddr) -> Result<(), String> {
    match exchange(
        addr,
        &get(
            "/auth?scope=repository:x:pull",
            &basic(format!("long:{LONG_PW}").as_bytes()),
        ),
    ) {
        Outcome::Response(r) if r.status == 200 => {
            assert_eq!(LONG_PW.len(), 72);
            Ok(())
        }
        other => Err(format!("72-byte password: {other:?}")),
    }
}
