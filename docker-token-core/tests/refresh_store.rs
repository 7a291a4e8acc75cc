//! The shared refresh-token store behaviour test, on the in-memory store.

use docker_token_core::refresh::InMemoryRefreshTokenStore;

#[tokio::test]
async fn in_memory_store_keeps_the_contract() {
    let store = InMemoryRefreshTokenStore::new();
    test_support::refresh_store::exercise(&store).await;
    assert!(store.is_empty());
}
