//! The mini-registry's 401 answers (status, `WWW-Authenticate`, `Content-Type`, API-version
//! header and body) are byte for byte what the Debian registry 2.8 sends for the same
//! request and token, both trusting the same docker-token-server.

mod common;

use common::{ALICE_PW, Env, ISSUER, Mode, SERVICE};
use test_support::{Registry, RegistryAuth};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    content_type: Option<String>,
    api_version: Option<String>,
    body: String,
}

async fn ask(method: &str, url: &str, bearer: Option<&str>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: resp.status().as_u16(),
        challenge: header("www-authenticate"),
        content_type: header("content-type"),
        api_version: header("docker-distribution-api-version"),
        body: resp.text().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_answers_match_registry_2_8_byte_for_byte() {
    let env = tokio::task::spawn_blocking(|| Env::start(Mode::Separate))
        .await
        .unwrap();
    let reg28 = Registry::start(
        env.dir.path(),
        &RegistryAuth {
            realm: &env.token_url,
            service: SERVICE,
            issuer: ISSUER,
            rootcertbundle: &env.keys.join("token.crt"),
        },
    );
    let svc = SERVICE.replace(' ', "+");
    let alice = Some(("alice", ALICE_PW));
    // alice may only pull shared/*: asking for push yields a pull-only token
    let pull_only = env
        .token(
            &format!("service={svc}&scope=repository:shared/base:pull,push"),
            alice,
        )
        .await;
    // push on demo/x, but nothing on private/secret
    let no_source = env
        .token(
            &format!("service={svc}&scope=repository:demo/x:pull,push&scope=repository:private/secret:pull"),
            alice,
        )
        .await;
    let no_catalog = env
        .token(&format!("service={svc}&scope=registry:catalog:*"), alice)
        .await;
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", "/v2/".into(), None),
        ("GET", "/v2/".into(), Some("not.a.token")),
        ("GET", "/v2/demo/hello/tags/list".into(), None),
        // the acceptance case: a push by a pull-only user
        (
            "POST",
            "/v2/shared/base/blobs/uploads/".into(),
            Some(&pull_only),
        ),
        (
            "PUT",
            "/v2/shared/base/manifests/v1".into(),
            Some(&pull_only),
        ),
        (
            "DELETE",
            format!("/v2/shared/base/manifests/{DIGEST}"),
            Some(&pull_only),
        ),
        (
            "POST",
            format!("/v2/demo/x/blobs/uploads/?mount={DIGEST}&from=private/secret"),
            Some(&no_source),
        ),
        ("GET", "/v2/_catalog".into(), Some(&no_catalog)),
    ];
    for (method, path, token) in &cases {
        let ours = ask(method, &format!("http://{}{path}", env.host), *token).await;
        assert_eq!(ours.status, 401, "{method} {path}: {ours:?}");
        // registry 2.8 orders the challenge's scope randomly (Go map iteration): ask it
        // again until it picks our order (2 resources × 2 actions: 1 in 4 per try)
        let mut theirs = ask(method, &format!("http://{}{path}", reg28.host()), *token).await;
        for _ in 0..40 {
            if theirs.challenge == ours.challenge {
                break;
            }
            theirs = ask(method, &format!("http://{}{path}", reg28.host()), *token).await;
        }
        assert_eq!(ours, theirs, "{method} {path}");
    }
    let logs = env.logs();
    assert!(!logs.contains(&pull_only), "a token leaked into a log");
}
