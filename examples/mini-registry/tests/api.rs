//! The distribution API of docker-token-mini-registry over plain HTTP (what the clients in
//! `e2e.rs` do not all exercise): chunked uploads with `Content-Range`, digest and range
//! errors, size limits, cross-repository mounts, manifests by digest, tag and manifest
//! deletes, referrers, and the catalog's pagination. Bad requests get distribution's error
//! codes and the registry keeps serving.

mod common;

use common::{ADMIN_PW, Env, Mode};
use reqwest::{Client, Method, Response};

fn sha256(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

struct Api {
    client: Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self
            .client
            .request(method, url)
            .bearer_auth(&self.token)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn code(resp: Response) -> (u16, String) {
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        (
            status,
            body["errors"][0]["code"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Monolithic upload of `data` into `repo`; returns its digest.
    async fn blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                data.to_vec(),
                &[],
            )
            .await;
        assert_eq!(r.status(), 201);
        digest
    }
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn distribution_api_conformance() {
    let env = tokio::task::spawn_blocking(|| Env::start(Mode::SingleProcess))
        .await
        .unwrap();
    let scopes =
        "scope=repository:team/app:*&scope=repository:team/base:*&scope=registry:catalog:*";
    let token = env
        .token(
            &format!("service={}&{scopes}", common::SERVICE.replace(' ', "+")),
            Some(("admin", ADMIN_PW)),
        )
        .await;
    let api = Api {
        client: Client::new(),
        base: format!("http://{}", env.host),
        token,
    };

    // chunked upload: POST, PATCH, PATCH (Content-Range), PUT ?digest=
    let r = api
        .send(Method::POST, "/v2/team/app/blobs/uploads/", vec![], &[])
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-0");
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let location = header(&r, "location");
    assert!(
        location.starts_with("/v2/team/app/blobs/uploads/"),
        "{location}"
    );
    let r = api
        .send(Method::PATCH, &location, b"hello ".to_vec(), &[])
        .await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "range")),
        (202, "0-5".to_owned())
    );
    // a chunk that does not continue the upload
    let r = api
        .send(
            Method::PATCH,
            &location,
            b"x".to_vec(),
            &[("content-range", "3-3")],
        )
        .await;
    assert_eq!(header(&r, "range"), "0-5");
    assert_eq!(Api::code(r).await, (416, "RANGE_INVALID".to_owned()));
    let r = api
        .send(
            Method::PATCH,
            &location,
            b"chunked ".to_vec(),
            &[("content-range", "6-13")],
        )
        .await;
    assert_eq!(header(&r, "range"), "0-13");
    let r = api.send(Method::GET, &location, vec![], &[]).await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "range")),
        (204, "0-13".to_owned())
    );
    let layer = b"hello chunked world";
    let digest = sha256(layer);
    let r = api
        .send(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            b"world".to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), digest);
    // the session is gone
    let r = api.send(Method::GET, &location, vec![], &[]).await;
    assert_eq!(Api::code(r).await, (404, "BLOB_UPLOAD_UNKNOWN".to_owned()));
    let r = api
        .send(
            Method::HEAD,
            &format!("/v2/team/app/blobs/{digest}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), layer.len().to_string());
    let r = api
        .send(
            Method::GET,
            &format!("/v2/team/app/blobs/{digest}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.bytes().await.unwrap(), &layer[..]);

    // wrong digests, unsupported algorithms, garbage parameters
    let wrong = sha256(b"something else");
    let r = api
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={wrong}"),
            layer.to_vec(),
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (400, "DIGEST_INVALID".to_owned()));
    let r = api
        .send(
            Method::POST,
            "/v2/team/app/blobs/uploads/?digest=sha512:00000000000000000000000000000000",
            vec![],
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (400, "DIGEST_INVALID".to_owned()));
    let r = api
        .send(
            Method::POST,
            "/v2/team/app/blobs/uploads/?digest=../../etc/passwd",
            vec![],
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (400, "DIGEST_INVALID".to_owned()));
    let r = api
        .send(
            Method::PATCH,
            "/v2/team/app/blobs/uploads/not-a-session",
            vec![1],
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (404, "BLOB_UPLOAD_UNKNOWN".to_owned()));
    let r = api
        .send(
            Method::PUT,
            "/v2/team/app/manifests/v1",
            b"not json".to_vec(),
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (400, "MANIFEST_INVALID".to_owned()));

    // cross-repository mount, then a manifest that needs both blobs
    let config = api
        .blob("team/base", br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let r = api
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={config}&from=team/base"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status(), 201, "mount");
    assert_eq!(
        header(&r, "location"),
        format!("/v2/team/app/blobs/{config}")
    );
    // mounting what the source does not have falls back to an upload session
    let r = api
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={wrong}&from=team/base"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status(), 202);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":38}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{}}}]}}"#,
        layer.len()
    );
    let ct = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    let r = api
        .send(
            Method::PUT,
            "/v2/team/app/manifests/v1",
            manifest.clone().into_bytes(),
            &ct,
        )
        .await;
    assert_eq!(r.status(), 201);
    let m_digest = header(&r, "docker-content-digest");
    assert_eq!(m_digest, sha256(manifest.as_bytes()));
    let r = api
        .send(
            Method::GET,
            &format!("/v2/team/app/manifests/{m_digest}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(header(&r, "content-type"), ct[0].1);
    assert_eq!(r.text().await.unwrap(), manifest);
    // a manifest naming a blob the repository does not have
    let dangling = manifest.replace(&config, &wrong);
    let r = api
        .send(
            Method::PUT,
            "/v2/team/app/manifests/v2",
            dangling.into_bytes(),
            &ct,
        )
        .await;
    assert_eq!(
        Api::code(r).await,
        (400, "MANIFEST_BLOB_UNKNOWN".to_owned())
    );

    // referrers: an artifact whose subject is the image
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":38}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m_digest}","size":{}}}}}"#,
        manifest.len()
    );
    let a_digest = sha256(artifact.as_bytes());
    let r = api
        .send(
            Method::PUT,
            &format!("/v2/team/app/manifests/{a_digest}"),
            artifact.into_bytes(),
            &ct,
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "oci-subject"), m_digest);
    let r = api
        .send(
            Method::GET,
            &format!("/v2/team/app/referrers/{m_digest}"),
            vec![],
            &[],
        )
        .await;
    let index: serde_json::Value = r.json().await.unwrap();
    assert_eq!(index["manifests"][0]["digest"], a_digest.as_str());
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/example.sig"
    );
    let r = api
        .send(
            Method::GET,
            &format!("/v2/team/app/referrers/{m_digest}?artifactType=other"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: serde_json::Value = r.json().await.unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));

    // tags, catalog with pagination
    for tag in ["v2", "v3"] {
        let r = api
            .send(
                Method::PUT,
                &format!("/v2/team/app/manifests/{tag}"),
                manifest.clone().into_bytes(),
                &ct,
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = api
        .send(Method::GET, "/v2/team/app/tags/list?n=2", vec![], &[])
        .await;
    assert_eq!(
        header(&r, "link"),
        "</v2/team/app/tags/list?last=v2&n=2>; rel=\"next\""
    );
    let tags: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"name": "team/app", "tags": ["v1", "v2"]})
    );
    let r = api.send(Method::GET, "/v2/_catalog?n=1", vec![], &[]).await;
    assert!(
        header(&r, "link").contains("last=team%2Fapp"),
        "{}",
        header(&r, "link")
    );
    let r = api
        .send(Method::GET, "/v2/_catalog?last=team/app", vec![], &[])
        .await;
    let cat: serde_json::Value = r.json().await.unwrap();
    assert_eq!(cat["repositories"], serde_json::json!(["team/base"]));

    // deletes: a tag, then the manifest (its other tags go with it), then a blob
    let r = api
        .send(Method::DELETE, "/v2/team/app/manifests/v3", vec![], &[])
        .await;
    assert_eq!(r.status(), 202);
    let r = api
        .send(
            Method::DELETE,
            &format!("/v2/team/app/manifests/{m_digest}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = api
        .send(Method::GET, "/v2/team/app/manifests/v1", vec![], &[])
        .await;
    assert_eq!(Api::code(r).await, (404, "MANIFEST_UNKNOWN".to_owned()));
    let r = api
        .send(
            Method::DELETE,
            &format!("/v2/team/app/blobs/{digest}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = api
        .send(
            Method::GET,
            &format!("/v2/team/app/blobs/{digest}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (404, "BLOB_UNKNOWN".to_owned()));
    let r = api
        .send(Method::OPTIONS, "/v2/team/app/tags/list", vec![], &[])
        .await;
    assert_eq!(Api::code(r).await, (405, "UNSUPPORTED".to_owned()));

    // still serving
    let r = api.send(Method::GET, "/v2/", vec![], &[]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_over_the_limit_are_refused_and_the_registry_keeps_serving() {
    let env = tokio::task::spawn_blocking(|| {
        // the limit is a registry: key; add it through the config text
        Env::start_with_registry(Mode::SingleProcess, "  max_blob_bytes: 1024\n")
    })
    .await
    .unwrap();
    let token = env
        .token(
            &format!(
                "service={}&scope=repository:team/app:pull,push",
                common::SERVICE.replace(' ', "+")
            ),
            Some(("admin", ADMIN_PW)),
        )
        .await;
    let api = Api {
        client: Client::new(),
        base: format!("http://{}", env.host),
        token,
    };
    let big = vec![7u8; 2048];
    let r = api
        .send(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={}", sha256(&big)),
            big.clone(),
            &[],
        )
        .await;
    assert_eq!(Api::code(r).await, (413, "SIZE_INVALID".to_owned()));
    let r = api
        .send(Method::POST, "/v2/team/app/blobs/uploads/", vec![], &[])
        .await;
    let location = header(&r, "location");
    let r = api
        .send(Method::PATCH, &location, big[..1000].to_vec(), &[])
        .await;
    assert_eq!(r.status(), 202);
    let r = api
        .send(Method::PATCH, &location, big[..100].to_vec(), &[])
        .await;
    assert_eq!(Api::code(r).await, (413, "SIZE_INVALID".to_owned()));
    assert_eq!(api.blob("team/app", b"small").await, sha256(b"small"));
}
