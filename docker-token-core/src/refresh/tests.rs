use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn tokens_are_long_random_and_ids_are_hashes() {
    let a = new_refresh_token().unwrap();
    let b = new_refresh_token().unwrap();
    assert_eq!(a.expose().len(), 43, "256 bits in base64url");
    assert_ne!(a, b);
    let id = refresh_token_id(a.expose());
    assert_eq!(id.len(), 22);
    assert!(!a.expose().contains(&id) && !id.contains(a.expose()));
    // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
    assert_eq!(
        refresh_token_id("abc"),
        URL_SAFE_NO_PAD.encode([
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23
        ])
    );
}

#[test]
fn idle_deadline_moves_with_use_but_never_past_the_absolute_one() {
    let policy = RefreshPolicy::new(Duration::from_secs(100), Duration::from_secs(250));
    let r = RefreshRecord::new("id", "alice", "reg", "docker", "static", &policy, at(1000));
    assert_eq!(
        (r.created_at, r.expires_at, r.absolute_expires_at),
        (1000, 1100, 1250)
    );
    assert!(!r.is_expired_at(at(1099)) && r.is_expired_at(at(1100)));
    let used = r.used_at(at(1090), &policy);
    assert_eq!((used.last_used_at, used.expires_at), (1090, 1190));
    let late = used.used_at(at(1180), &policy);
    assert_eq!(late.expires_at, 1250, "capped by the absolute lifetime");
    assert_eq!(late.ttl_at(at(1200)), 50);
    assert_eq!(late.ttl_at(at(1300)), 0);
    assert_eq!(late.created_at, 1000);
}

#[test]
fn default_policy_is_a_week_idle_and_90_days_without_rotation() {
    let p = RefreshPolicy::default();
    assert_eq!(p.idle.as_secs(), 7 * 86_400);
    assert_eq!(p.absolute.as_secs(), 90 * 86_400);
    assert!(!p.rotate && p.with_rotation(true).rotate);
}

#[test]
fn records_round_trip_as_json() {
    let r = RefreshRecord::new(
        "id",
        "a\"b",
        "reg",
        "",
        "ldap",
        &RefreshPolicy::default(),
        at(5),
    );
    let back: RefreshRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[tokio::test]
async fn in_memory_store_is_usable_through_arc_and_box() {
    let shared: Arc<dyn RefreshTokenStore> = Arc::new(InMemoryRefreshTokenStore::new());
    let boxed: Box<dyn RefreshTokenStore> = Box::new(shared.clone());
    let r = RefreshRecord::new(
        "k",
        "bob",
        "reg",
        "docker",
        "static",
        &RefreshPolicy::default(),
        SystemTime::now(),
    );
    boxed.insert_token(r.clone()).await.unwrap();
    assert_eq!(shared.get_token("k").await.unwrap(), Some(r));
    assert_eq!(boxed.list_tokens(Some("bob")).await.unwrap().len(), 1);
    assert!(shared.delete_token("k").await.unwrap());
    assert_eq!(
        boxed.sweep_expired_tokens(SystemTime::now()).await.unwrap(),
        0
    );
}
