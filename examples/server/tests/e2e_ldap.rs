//! End-to-end with LDAP: docker-token-server with `ldap_auth` (real slapd, StartTLS) before
//! static `users`, the ACL keyed on LDAP group labels, the real registry and skopeo.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ADMIN_PW, T, gen_key, hash, start_server};
use test_support::slapd::{PEOPLE, SERVICE_DN, SERVICE_PW, Slapd};
use test_support::{Process, Registry, RegistryAuth, TempDir, require_binary, run, workdir};

struct Env {
    dir: TempDir,
    slapd: Slapd,
    server: Process,
    url: String,
    registry: Registry,
    oci: std::path::PathBuf,
}

fn config(dir: &Path, slapd: &Slapd) -> std::path::PathBuf {
    let keys = gen_key(dir);
    let pw_file = dir.join("bind_password");
    std::fs::write(&pw_file, format!("{SERVICE_PW}\n")).unwrap();
    let yaml = format!(
        r#"server:
  addr: "127.0.0.1:0"
token:
  issuer: "test-issuer"
  expiration: 900
  certificate: {cert}
  key: {key}
# LDAP is asked first; users it does not know fall through to the static users below
ldap_auth:
  addr: "127.0.0.1:{port}"
  tls: starttls
  ca_certificate: {ca}
  bind_dn: "{SERVICE_DN}"
  bind_password_file: {pw}
  base: "{PEOPLE}"
  filter: "(uid=${{account}})"
  labels:
    group: {{attribute: memberOf, parse_cn: true, lower_case: true}}
  connect_timeout: 2
  operation_timeout: 2
users:
  admin:
    password: "{admin}"
acl:
  - match: {{account: admin}}
    actions: ["*"]
  - match: {{account: "/.+/", name: "${{labels:group}}/*"}}
    actions: [pull, push]
    comment: "LDAP groups own their namespace"
"#,
        cert = keys.join("token.crt").display(),
        key = keys.join("token.key").display(),
        port = slapd.ldap_port,
        ca = slapd.ca_cert().display(),
        pw = pw_file.display(),
        admin = hash(ADMIN_PW),
    );
    let path = dir.join("auth_config.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

impl Env {
    fn start() -> Self {
        let dir = workdir();
        let slapd = Slapd::start();
        let cfg = config(dir.path(), &slapd);
        let (server, url) = start_server(&cfg);
        let realm = format!("{url}/auth");
        let registry = Registry::start(
            dir.path(),
            &RegistryAuth {
                realm: &realm,
                service: "reg",
                issuer: "test-issuer",
                rootcertbundle: &dir.path().join("keys/token.crt"),
            },
        );
        let oci = test_support::oci_layout(dir.path());
        Self {
            dir,
            slapd,
            server,
            url,
            registry,
            oci,
        }
    }

    fn push(&self, repo: &str, creds: &str) -> test_support::CmdOutput {
        let skopeo = require_binary("skopeo", "apt-get install skopeo");
        let src = format!("oci:{}:latest", self.oci.display());
        let dst = format!("docker://{}/{repo}", self.registry.host());
        run(
            std::process::Command::new(skopeo)
                .args([
                    "copy",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    creds,
                    &src,
                    &dst,
                ])
                .env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json")),
            T,
        )
    }

    async fn status(&self, path: &str, user: &str, pw: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .basic_auth(user, Some(pw))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ldap_users_and_groups_drive_the_acl_and_outages_are_503() {
    let mut env = tokio::task::spawn_blocking(Env::start).await.unwrap();

    let pushes = tokio::task::block_in_place(|| {
        [
            (
                "alice (group dev) pushes dev/app",
                env.push("dev/app:v1", "alice:alicepw"),
                true,
            ),
            (
                "alice (group ops) pushes ops/tool",
                env.push("ops/tool:v1", "alice:alicepw"),
                true,
            ),
            (
                "carol (no groups) pushes dev/x",
                env.push("dev/x:v1", "carol:carolpw"),
                false,
            ),
            (
                "alice with a wrong password",
                env.push("dev/app:v2", "alice:wrong"),
                false,
            ),
            (
                "admin (static user, after LDAP) pushes anywhere",
                env.push("any/thing:v1", &format!("admin:{ADMIN_PW}")),
                true,
            ),
        ]
    });
    for (what, out, ok) in pushes {
        assert_eq!(
            out.success, ok,
            "{what}: stdout {} stderr {}",
            out.stdout, out.stderr
        );
    }
    assert_eq!(env.status("/readyz", "", "").await, 200);

    // LDAP down: an outage, not a wrong password
    env.slapd.stop();
    assert_eq!(
        env.status("/auth?service=reg", "alice", "alicepw").await,
        503
    );
    assert_eq!(env.status("/readyz", "", "").await, 503);
    // back up: the same server recovers without a restart
    env.slapd.start_again();
    let mut recovered = false;
    for _ in 0..50 {
        if env.status("/auth?service=reg", "alice", "alicepw").await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "no recovery after slapd came back; server log:\n{}",
        env.server.output()
    );
    assert!(
        !env.server.output().contains("alicepw") && !env.server.output().contains(SERVICE_PW),
        "a password leaked into the log"
    );
}
