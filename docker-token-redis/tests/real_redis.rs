//! `RedisStore` against a real `redis-server` (Debian `redis-server`, started on a free
//! loopback port by test-support).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use docker_token_core::credential_store::unix_seconds;
use docker_token_core::{
    Authenticator, AuthnOutcome, BackendErrorKind, CredentialStore, Labels, LoginAttempt,
    StoredCredential,
};
use docker_token_redis::{RedisConfig, RedisStore};
use docker_token_store::robots::{Robot, RobotAuthenticator, RobotStore, parse_labels};
use test_support::redis::RedisServer;

fn in_secs(s: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(s)
}

fn ttl(redis: &RedisServer, key: &str) -> i64 {
    let out = redis.cli(&["TTL", key]);
    assert!(out.success, "redis-cli failed: {}", out.stderr);
    out.stdout.trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_and_robots_carry_ttls_and_hashed_keys() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&RedisConfig::new(redis.url()).with_key_prefix("t1:")).unwrap();
    store.ping().await.unwrap();

    // a credential under a hostile user name
    let user = "alice\r\nDEL *";
    let cred = StoredCredential::new(user, "$2b$04$hash", in_secs(600)).with_labels(Labels::from(
        [("groups".to_owned(), vec!["dev".to_owned()])],
    ));
    store.put(user, cred.clone()).await.unwrap();
    assert_eq!(store.get(user).await.unwrap(), Some(cred));
    let key = store.key_for_credential(user);
    let t = ttl(&redis, &key);
    assert!((590..=600).contains(&t), "TTL {t} of {key}");

    // a robot
    let (robot, secret) =
        Robot::generate("ci", parse_labels(&["team=ci"]).unwrap(), in_secs(3600)).unwrap();
    assert!(store.create_robot(robot.clone()).await.unwrap());
    assert!(!store.create_robot(robot).await.unwrap(), "SET NX: unique");
    let t = ttl(&redis, &store.key_for_robot("ci"));
    assert!((3590..=3600).contains(&t), "robot TTL {t}");
    let (other, _) = Robot::generate("deploy", Labels::new(), in_secs(60)).unwrap();
    assert!(store.create_robot(other).await.unwrap());
    let names: Vec<String> = store
        .list_robots()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["ci", "deploy"]);

    // no key holds a raw client value; every key has a TTL
    let keys = redis.cli(&["--scan", "--pattern", "*"]);
    let keys: Vec<&str> = keys.stdout.lines().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for k in &keys {
        assert!(
            k.starts_with("t1:") && !k.contains("alice") && !k.contains("ci"),
            "{k}"
        );
        assert!(ttl(&redis, k) > 0, "{k} has no TTL");
    }

    // the authenticator on Redis
    let authn = RobotAuthenticator::new(Arc::new(store.clone()));
    let ok = authn
        .authenticate(&LoginAttempt::new("robot$ci", secret.expose()))
        .await
        .unwrap();
    assert!(matches!(ok, AuthnOutcome::Authenticated(ref i) if i.labels["team"] == ["ci"]));
    assert!(store.delete_robot("ci").await.unwrap());
    assert_eq!(
        authn
            .authenticate(&LoginAttempt::new("robot$ci", secret.expose()))
            .await
            .unwrap(),
        AuthnOutcome::NotApplicable,
        "revoked"
    );

    // an already-expired record is not written
    let past = StoredCredential::new("old", "h", SystemTime::now() - Duration::from_secs(1));
    store.put("old", past).await.unwrap();
    assert!(store.get("old").await.unwrap().is_none());
    assert!(store.delete(user).await.unwrap());
    assert!(!store.delete(user).await.unwrap());
    assert_eq!(store.sweep_expired(SystemTime::now()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_disappears_when_it_expires() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&RedisConfig::new(redis.url())).unwrap();
    // expires in the next second or two: Redis drops it by itself
    let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds(SystemTime::now()) + 2);
    store
        .put("brief", StoredCredential::new("brief", "h", exp))
        .await
        .unwrap();
    assert!(
        redis
            .cli(&["EXISTS", &store.key_for_credential("brief")])
            .stdout
            .trim()
            == "1"
    );
    let mut gone = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if redis
            .cli(&["EXISTS", &store.key_for_credential("brief")])
            .stdout
            .trim()
            == "0"
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "Redis did not expire the record");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_is_unavailable_then_recovers_without_a_new_store() {
    let mut redis = RedisServer::start();
    let store = RedisStore::new(&RedisConfig::new(redis.url())).unwrap();
    store
        .put("bob", StoredCredential::new("bob", "h", in_secs(600)))
        .await
        .unwrap();
    redis.stop();
    for _ in 0..2 {
        let err = store.get("bob").await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
        let err = store.get_robot("ci").await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
    }
    assert!(store.ping().await.is_err());
    redis.start_again();
    // the connection comes back by itself (bounded wait)
    let mut back = None;
    for _ in 0..50 {
        match store.get("bob").await {
            Ok(v) => {
                back = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let back = back.expect("the store did not recover after Redis restarted");
    assert_eq!(
        back.map(|c| c.account).as_deref(),
        Some("bob"),
        "the data survived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_keep_the_store_contract_with_ttls() {
    use docker_token_core::refresh::{RefreshPolicy, RefreshRecord, RefreshTokenStore};
    let redis = RedisServer::start();
    let store = RedisStore::new(&RedisConfig::new(redis.url()).with_key_prefix("rt:")).unwrap();
    test_support::refresh_store::exercise(&store).await;
    // the one record left by the exercise was deleted: the keyspace is empty
    assert_eq!(redis.cli(&["DBSIZE"]).stdout.trim(), "0");
    // a record's TTL is its idle deadline, and an update sets it again
    let policy = RefreshPolicy::new(Duration::from_secs(600), Duration::from_secs(3600));
    let now = SystemTime::now();
    let r = RefreshRecord::new(
        "id-1", "alice", "registry", "docker", "static", &policy, now,
    );
    store.insert_token(r.clone()).await.unwrap();
    let key = store.key_for_refresh_token("id-1");
    assert!(
        !key.contains("id-1") && key.starts_with("rt:refresh:"),
        "{key}"
    );
    let t = ttl(&redis, &key);
    assert!((590..=600).contains(&t), "TTL {t}");
    let used = r.used_at(now + Duration::from_secs(100), &policy);
    assert!(store.update_token(used).await.unwrap());
    let t = ttl(&redis, &key);
    assert!((690..=700).contains(&t), "TTL after a use {t}");
    assert!(store.delete_token("id-1").await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_configured_ca() {
    use docker_token_redis::RedisTlsConfig;
    let redis = RedisServer::start_tls();
    assert!(redis.url().starts_with("rediss://"));
    let config = RedisConfig::new(redis.url())
        .with_tls(RedisTlsConfig::default().with_ca_file(redis.ca_file()));
    let store = RedisStore::new(&config).unwrap();
    store.ping().await.unwrap();
    store
        .put(
            "tls-user",
            StoredCredential::new("tls-user", "h", in_secs(60)),
        )
        .await
        .unwrap();
    assert!(store.get("tls-user").await.unwrap().is_some());
    let key = store.key_for_credential("tls-user");
    assert_eq!(redis.cli(&["EXISTS", &key]).stdout.trim(), "1");
    // without the CA (the system's roots) the server's certificate is refused: unavailable
    let untrusted = RedisStore::new(&RedisConfig::new(redis.url())).unwrap();
    let err = untrusted.ping().await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
}
