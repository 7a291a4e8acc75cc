//! Criterion benches of the token path's pieces. Every group has a baseline in the same run:
//! minting compares our pre-parsed signer with `jsonwebtoken::encode`, verification our
//! `TokenVerifier` with `jsonwebtoken::decode` (key parsed per request / once); the service call
//! compares an anonymous request (no bcrypt) with a bcrypt cost-5 user.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use docker_token_core::acl::{Acl, AclEntry};
use docker_token_core::keys::{Algorithm, KeySet, SigningKey};
use docker_token_core::request::TokenRequest;
use docker_token_core::scope::parse_scopes;
use docker_token_core::static_users::UsersConfig;
use docker_token_core::token::{AccessEntry, TokenIssuer};
use docker_token_core::verify::TokenVerifier;
use docker_token_core::{
    Authenticator, AuthenticatorChain, AuthnOutcome, AuthorizerChain, AuthzRequest, CacheConfig,
    CachedAuthenticator, Identity, LoginAttempt, Scope, StaticUsers, TokenService,
};

fn acl(rules: usize) -> Acl {
    let mut entries: Vec<serde_json::Value> = (0..rules.saturating_sub(1))
        .map(|i| match i % 3 {
            0 => serde_json::json!({"match": {"account": format!("user{i}"), "name": "team/*"}, "actions": ["pull", "push"]}),
            1 => serde_json::json!({"match": {"account": "/^svc-[0-9]+$/", "name": format!("svc{i}/*")}, "actions": ["pull"]}),
            _ => serde_json::json!({"match": {"account": "/.+/", "name": "${account}/*", "labels": {"group": format!("g{i}")}}, "actions": ["*"]}),
        })
        .collect();
    entries.push(serde_json::json!({"match": {"account": "alice", "name": "${labels:team}/*"}, "actions": ["*"], "comment": "last"}));
    let entries: Vec<AclEntry> =
        serde_json::from_value(serde_json::Value::Array(entries)).expect("entries");
    Acl::new(entries).expect("acl")
}

fn bench_scope(c: &mut Criterion) {
    let mut g = c.benchmark_group("scope");
    g.bench_function("parse one", |b| {
        b.iter(|| Scope::parse(black_box("repository:library/alpine:pull,push")))
    });
    g.bench_function("parse_scopes 3 (host:port, dup)", |b| {
        let v = [
            "repository:myhost:5000/team/app:push,pull repository:team/base:pull",
            "repository:team/base:pull",
        ];
        b.iter(|| parse_scopes(black_box(v)))
    });
    g.finish();
}

fn bench_acl(c: &mut Criterion) {
    let mut g = c.benchmark_group("acl evaluate (match on the last rule)");
    let identity =
        Identity::new("alice").with_labels([("team".to_owned(), vec!["demo".to_owned()])].into());
    let scope = Scope::new("repository", "demo/app", ["pull", "push"]);
    // more distinct resources than the ACL remembers decisions for: each one is evaluated
    let fresh: Vec<Scope> = (0..10_000)
        .map(|i| Scope::new("repository", format!("demo/app-{i}"), ["pull", "push"]))
        .collect();
    for n in [10, 1000] {
        let acl = acl(n);
        g.bench_function(
            format!("{n} rules, the same request (decision remembered)"),
            |b| {
                b.iter(|| {
                    let req = AuthzRequest {
                        identity: &identity,
                        service: "registry",
                        client_ip: None,
                        scope: &scope,
                    };
                    let grant = acl.evaluate(black_box(&req)).expect("match");
                    assert_eq!(grant.actions.len(), 2);
                    grant
                })
            },
        );
        let mut next = fresh.iter().cycle();
        g.bench_function(format!("{n} rules, a new resource each time"), |b| {
            b.iter(|| {
                let req = AuthzRequest {
                    identity: &identity,
                    service: "registry",
                    client_ip: None,
                    scope: next.next().expect("cycle"),
                };
                let grant = acl.evaluate(black_box(&req)).expect("match");
                assert_eq!(grant.actions.len(), 2);
                grant
            })
        });
    }
    g.finish();
}

fn access() -> Vec<AccessEntry> {
    vec![AccessEntry::new(
        "repository",
        "library/alpine",
        vec!["pull".to_owned(), "push".to_owned()],
    )]
}

fn bench_mint(c: &mut Criterion) {
    let mut g = c.benchmark_group("mint");
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let generated = SigningKey::generate(alg, "bench").expect("key");
        let pem = generated.key_pem.expose().as_bytes().to_vec();
        let issuer = TokenIssuer::new(
            "bench",
            Duration::from_secs(300),
            KeySet::new(generated.key),
        );
        let access = access();
        g.bench_function(format!("{} pre-parsed (ours)", alg.as_str()), |b| {
            b.iter(|| {
                issuer
                    .issue(black_box("alice"), "registry", &access)
                    .expect("issue")
            })
        });
        // baseline: jsonwebtoken with a key object built once
        let (key, jalg) = match alg {
            Algorithm::ES256 => (
                jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("ec"),
                jsonwebtoken::Algorithm::ES256,
            ),
            _ => (
                jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("rsa"),
                jsonwebtoken::Algorithm::RS256,
            ),
        };
        let header = jsonwebtoken::Header::new(jalg);
        let claims = serde_json::json!({"iss":"bench","sub":"alice","aud":"registry","exp":2_000_000_000u64,"nbf":1u64,"iat":1u64,"jti":"x","access":access});
        g.bench_function(
            format!("{} jsonwebtoken::encode (baseline)", alg.as_str()),
            |b| b.iter(|| jsonwebtoken::encode(black_box(&header), &claims, &key).expect("encode")),
        );
    }
    // RSA-4096 (docker_auth deployments often have one); gen-key makes 2048-bit keys
    let rsa4096 = {
        use aws_lc_rs::encoding::AsDer as _;
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa4096).expect("rsa 4096");
        let der = pair.as_der().expect("pkcs8").as_ref().to_vec();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        SigningKey::from_pem(pem.as_bytes(), None).expect("key")
    };
    let issuer = TokenIssuer::new("bench", Duration::from_secs(300), KeySet::new(rsa4096));
    let access = access();
    g.bench_function("RS256 RSA-4096 pre-parsed (ours)", |b| {
        b.iter(|| {
            issuer
                .issue(black_box("alice"), "registry", &access)
                .expect("issue")
        })
    });
    g.finish();
}

/// Verification per request: our `TokenVerifier` (keys parsed once when it is built)
/// against `jsonwebtoken::decode` with the key parsed from PEM on every request (what a
/// naive resource server does) and with a `DecodingKey` built once.
fn bench_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let generated = SigningKey::generate(alg, "bench").expect("key");
        let public_pem = pem::encode(&pem::Pem::new(
            "PUBLIC KEY",
            generated.key.public_key_spki_der().to_vec(),
        ));
        let keys = KeySet::new(generated.key);
        let issuer = TokenIssuer::new("bench", Duration::from_secs(300), keys.clone());
        // the token as issued: header with kid and the x5c certificate
        let token = issuer
            .issue("alice", "registry", &access())
            .expect("issue")
            .token;
        let verifier = TokenVerifier::builder("bench", "registry")
            .key_set(&keys)
            .build()
            .expect("verifier");
        verifier.verify(&token).expect("verifies");
        g.bench_function(format!("{} TokenVerifier (ours)", alg.as_str()), |b| {
            b.iter(|| {
                let verified = verifier.verify(black_box(&token)).expect("verify");
                assert!(verified.allows("repository", "library/alpine", "pull"));
                verified
            })
        });

        let jalg = match alg {
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::RS256,
        };
        let parse_key = || match alg {
            Algorithm::ES256 => {
                jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes()).expect("ec")
            }
            _ => jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("rsa"),
        };
        let mut validation = jsonwebtoken::Validation::new(jalg);
        validation.set_audience(&["registry"]);
        validation.set_issuer(&["bench"]);
        validation.leeway = 60;
        validation.validate_nbf = true;
        jsonwebtoken::decode::<serde_json::Value>(&token, &parse_key(), &validation)
            .expect("baseline verifies");
        g.bench_function(
            format!(
                "{} jsonwebtoken::decode, key parsed per request (baseline)",
                alg.as_str()
            ),
            |b| {
                b.iter(|| {
                    let key = parse_key();
                    jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                        .expect("decode")
                })
            },
        );
        let key = parse_key();
        g.bench_function(
            format!(
                "{} jsonwebtoken::decode, key parsed once (baseline)",
                alg.as_str()
            ),
            |b| {
                b.iter(|| {
                    jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                        .expect("decode")
                })
            },
        );
    }
    g.finish();
}

fn bench_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let key = SigningKey::generate(Algorithm::ES256, "bench")
        .expect("key")
        .key;
    let issuer = TokenIssuer::new("bench", Duration::from_secs(300), KeySet::new(key));
    let users: UsersConfig = serde_json::from_value(serde_json::json!({
        "alice": {"password": bcrypt::hash("secret", 5).expect("hash"), "labels": {"team": ["demo"]}},
        "": {}
    }))
    .expect("users");
    let service = TokenService::builder(issuer)
        .authenticators(
            AuthenticatorChain::new().with(StaticUsers::from_config(&users).expect("users")),
        )
        .authorizers(AuthorizerChain::new().with(acl(20)))
        .build();
    let cached_service = |builder: docker_token_core::TokenServiceBuilder| {
        builder
            .authenticators(
                AuthenticatorChain::new().with(
                    CachedAuthenticator::new(
                        StaticUsers::from_config(&users).expect("users"),
                        CacheConfig::default(),
                    )
                    .expect("cache"),
                ),
            )
            .authorizers(AuthorizerChain::new().with(acl(20)))
            .build()
    };
    let cached = cached_service(TokenService::builder(service.issuer().clone()));
    let reusing = cached_service(
        TokenService::builder(service.issuer().clone()).reuse_window(Duration::from_secs(3600)),
    );
    let basic = http::HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0"); // alice:secret
    let mut g = c.benchmark_group("TokenService::issue (ES256, 20-rule ACL)");
    g.bench_function("anonymous (baseline, no bcrypt)", |b| {
        let req = TokenRequest::from_query(
            "service=registry&scope=repository:demo/app:pull",
            None,
            None,
        )
        .expect("req");
        b.iter(|| rt.block_on(service.issue(black_box(&req))).expect("issue"))
    });
    g.bench_function("static user, bcrypt cost 5", |b| {
        let req = TokenRequest::from_query(
            "service=registry&scope=repository:demo/app:pull,push",
            Some(&basic),
            None,
        )
        .expect("req");
        b.iter(|| rt.block_on(service.issue(black_box(&req))).expect("issue"))
    });
    g.bench_function("static user, credential cache hit", |b| {
        let req = TokenRequest::from_query(
            "service=registry&scope=repository:demo/app:pull,push",
            Some(&basic),
            None,
        )
        .expect("req");
        b.iter(|| rt.block_on(cached.issue(black_box(&req))).expect("issue"))
    });
    g.bench_function(
        "static user, credential cache hit + reuse window hit",
        |b| {
            let req = TokenRequest::from_query(
                "service=registry&scope=repository:demo/app:pull,push",
                Some(&basic),
                None,
            )
            .expect("req");
            b.iter(|| rt.block_on(reusing.issue(black_box(&req))).expect("issue"))
        },
    );
    g.finish();
}

fn bench_credential_cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let users: UsersConfig = serde_json::from_value(serde_json::json!({
        "alice": {"password": bcrypt::hash("secret", 5).expect("hash"), "labels": {"team": ["demo"]}}
    }))
    .expect("users");
    let cached = CachedAuthenticator::new(
        StaticUsers::from_config(&users).expect("users"),
        CacheConfig::default(),
    )
    .expect("cache");
    let login = LoginAttempt::new("alice", "secret");
    rt.block_on(cached.authenticate(&login)).expect("authn");
    let mut g = c.benchmark_group("credential cache");
    g.bench_function("hit (HMAC + lookup + identity clone)", |b| {
        b.iter(|| {
            let out = rt
                .block_on(cached.authenticate(black_box(&login)))
                .expect("authn");
            assert!(matches!(out, AuthnOutcome::Authenticated(_)));
            out
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = bench_scope, bench_acl, bench_mint, bench_verify, bench_service, bench_credential_cache }
criterion_main!(benches);
