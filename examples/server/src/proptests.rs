//! Property tests of the docker_auth YAML loader: random and mutated files never panic; what
//! loads, loads again the same way.

use std::sync::OnceLock;

use docker_token_core::keys::{Algorithm, SigningKey};
use proptest::prelude::*;

use crate::config::FileConfig;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid configuration using most sections, with a real key (written once per run).
fn base_config() -> &'static str {
    static BASE: OnceLock<(tempfile_dir::Dir, String)> = OnceLock::new();
    &BASE
        .get_or_init(|| {
            let dir = tempfile_dir::Dir::new();
            let key = SigningKey::generate(Algorithm::ES256, "proptest").unwrap();
            let key_path = dir.path().join("token.key");
            std::fs::write(&key_path, key.key_pem.expose()).unwrap();
            let hash = bcrypt::hash("pw", 4).unwrap();
            let yaml = format!(
                r#"server:
  addr: "127.0.0.1:0"
  path_prefix: /docker
  real_ip_header: X-Forwarded-For
  real_ip_pos: -1
  real_ip_trusted_proxies: ["10.0.0.0/8", "::1"]
token:
  issuer: "Acme auth"
  expiration: 900
  key: {key}
users:
  admin:
    password: "{hash}"
    labels: {{group: [admins, ops]}}
  "": {{}}
credential_cache: {{ttl: 60, max_entries: 100}}
acl:
  - match: {{account: admin}}
    actions: ["*"]
    comment: admins
  - match: {{account: "/^(.+)$/", name: "${{account}}/*", labels: {{group: "ops"}}}}
    actions: [pull, push]
  - match: {{ip: "10.0.0.0/8", type: repository, service: "reg*"}}
    actions: [pull]
  - match: {{account: ""}}
    actions: []
"#,
                key = key_path.display()
            );
            (dir, yaml)
        })
        .1
}

/// A minimal temporary directory (the server crate has no tempfile dependency).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new() -> Self {
            let p = std::env::temp_dir().join(format!(
                "docker-token-proptest-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One edit of a YAML text.
#[derive(Clone, Debug)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
    Indent { line: usize, by: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop_oneof![
        prop::sample::select(vec![
            ":",
            " ",
            "\n",
            "-",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "'",
            "*",
            "&a",
            "*a",
            "!!binary",
            "~",
            "${",
            "/",
            "#",
            "\t",
            "null",
            "true",
            "- ",
            ": ",
            "? ",
            "|",
            ">",
            "%YAML 1.2\n---\n",
            "unknown_key: 1\n",
            "<<: *a\n",
            "99999999999999999999",
            "-1",
            "0x10",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), snippet).prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (any::<usize>(), 0usize..5).prop_map(|(line, by)| Mutation::Indent { line, by }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let boundary = |at: usize| {
        let mut i = at % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Delete { at, len } => {
            let a = boundary(*at);
            let b = boundary((a + len).min(text.len()));
            format!("{}{}", &text[..a], &text[b.max(a)..])
        }
        Mutation::Insert { at, text: t } => {
            let a = boundary(*at);
            format!("{}{t}{}", &text[..a], &text[a..])
        }
        Mutation::DuplicateLine { line } => {
            if let Some(l) = lines.get(line % n).cloned() {
                lines.insert(line % n, l);
            }
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
        Mutation::Indent { line, by } => {
            if let Some(l) = lines.get_mut(line % n) {
                *l = format!("{}{l}", " ".repeat(*by));
            }
            lines.join("\n")
        }
    }
}

fn load(text: &str) -> Result<(), String> {
    let parsed = FileConfig::parse(text, "proptest").map_err(|e| e.0)?;
    let loaded = parsed.load("proptest").map_err(|e| e.0)?;
    // what loads builds a service, too
    crate::serve::build_service(&loaded).map_err(|e| e.0)?;
    Ok(())
}

#[test]
fn the_base_config_loads() {
    load(base_config()).unwrap();
}

#[test]
fn alias_bombs_are_refused_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='j' {
        bomb.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = c;
    }
    let t = std::time::Instant::now();
    assert!(FileConfig::parse(&bomb, "bomb").is_err());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_text_never_panics(text in ".{0,200}") {
        let _ = load(&text);
    }

    #[test]
    fn random_yaml_shapes_never_panic(text in prop::collection::vec(
        prop::sample::select(vec![
            "server:", "token:", "users:", "acl:", "ldap_auth:", "oidc_auth:", "  addr: x",
            "  - match: {account: a}", "    actions: [\"*\"]", "  issuer: i", "  key: /nonexistent",
            "  expiration: -5", "\"\": {}", "  admin: {password: x}", "github_auth: {}", "---",
            "  real_ip_pos: 99999999999999999999", "credential_cache: {ttl: 0}", "htpasswd_file: /dev/null",
        ]),
        0..12,
    )) {
        let _ = load(&text.join("\n"));
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn mutated_configs_never_panic(mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut text = base_config().to_owned();
        for m in &mutations {
            text = apply(&text, m);
        }
        // a second load of the same text gives the same verdict
        let first = load(&text).is_ok();
        prop_assert_eq!(load(&text).is_ok(), first);
    }
}
