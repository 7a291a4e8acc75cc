//! One behaviour test for every [`RefreshTokenStore`] implementation (in memory, redb,
//! Redis): call [`exercise`] on an empty store.

use std::time::{Duration, SystemTime};

use docker_token_core::refresh::{
    RefreshPolicy, RefreshRecord, RefreshTokenStore, refresh_token_id,
};

fn record(token: &str, account: &str, policy: &RefreshPolicy, at: SystemTime) -> RefreshRecord {
    RefreshRecord::new(
        refresh_token_id(token),
        account,
        "registry",
        "docker",
        "static",
        policy,
        at,
    )
}

/// Checks the [`RefreshTokenStore`] contract on an **empty** store: insert/get, expiry
/// hidden at once, update only while present (a revocation wins), delete once, delete by
/// account (exact match, hostile names included), list, sweep. Panics on the first
/// violation.
pub async fn exercise(store: &dyn RefreshTokenStore) {
    let policy = RefreshPolicy::new(Duration::from_secs(600), Duration::from_secs(3600));
    let now = SystemTime::now();
    let a1 = record("token-a1", "alice", &policy, now);
    let a2 = record("token-a2", "alice", &policy, now);
    // a hostile account name: must stay data, never become a key pattern
    let evil_name = "bob*\r\n{x}:?[]";
    let b1 = record("token-b1", evil_name, &policy, now);
    let alice_prefix = record("token-c1", "alice2", &policy, now);
    for r in [&a1, &a2, &b1, &alice_prefix] {
        store.insert_token(r.clone()).await.expect("insert");
    }
    assert_eq!(
        store.get_token(&a1.id).await.expect("get"),
        Some(a1.clone())
    );
    assert_eq!(store.get_token("no-such-id").await.expect("get"), None);

    // update: only while present; the new expiry is what get returns
    let later = a1.used_at(now + Duration::from_secs(30), &policy);
    assert!(store.update_token(later.clone()).await.expect("update"));
    assert_eq!(store.get_token(&a1.id).await.expect("get"), Some(later));
    let gone = record("token-gone", "alice", &policy, now);
    assert!(
        !store.update_token(gone.clone()).await.expect("update"),
        "update of an absent record must say false"
    );
    assert_eq!(
        store.get_token(&gone.id).await.expect("get"),
        None,
        "update must not create a record"
    );

    // list: per account (exact) and all
    let mut alice: Vec<String> = store
        .list_tokens(Some("alice"))
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    alice.sort();
    let mut want = vec![a1.id.clone(), a2.id.clone()];
    want.sort();
    assert_eq!(alice, want, "list(alice) is exact: not alice2");
    assert_eq!(store.list_tokens(None).await.expect("list").len(), 4);
    assert_eq!(
        store
            .list_tokens(Some(evil_name))
            .await
            .expect("list")
            .len(),
        1
    );

    // delete: once
    assert!(store.delete_token(&a2.id).await.expect("delete"));
    assert!(!store.delete_token(&a2.id).await.expect("delete"));
    assert_eq!(store.get_token(&a2.id).await.expect("get"), None);

    // delete by account: exact
    assert_eq!(
        store
            .delete_account_tokens("alice")
            .await
            .expect("delete_account"),
        1
    );
    assert_eq!(store.get_token(&a1.id).await.expect("get"), None);
    assert!(
        store
            .get_token(&alice_prefix.id)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        store
            .delete_account_tokens(evil_name)
            .await
            .expect("delete_account"),
        1
    );
    assert_eq!(
        store
            .delete_account_tokens("nobody")
            .await
            .expect("delete_account"),
        0
    );

    // expired records are hidden at once, cannot be updated, and are swept (or expire)
    let old = record(
        "token-old",
        "carol",
        &policy,
        now - Duration::from_secs(700),
    );
    assert!(old.is_expired_at(now));
    store.insert_token(old.clone()).await.expect("insert");
    assert_eq!(store.get_token(&old.id).await.expect("get"), None);
    assert!(
        !store
            .update_token(old.used_at(now, &policy))
            .await
            .expect("update")
    );
    assert!(
        store
            .list_tokens(Some("carol"))
            .await
            .expect("list")
            .is_empty()
    );
    let swept = store.sweep_expired_tokens(now).await.expect("sweep");
    assert!(swept <= 1, "{swept}");
    assert_eq!(store.list_tokens(None).await.expect("list").len(), 1);
    assert!(store.delete_token(&alice_prefix.id).await.expect("delete"));
}
