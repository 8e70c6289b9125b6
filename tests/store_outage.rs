//! PostgreSQL going away and coming back. A binary of its own: it stops the
//! throwaway server, which every other test of a binary shares.

use std::time::{Duration, Instant};

use latchkey::store::StoreError;

#[path = "common/backends.rs"]
mod backends;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_makes_the_store_unavailable_and_it_recovers_by_itself() {
    let opened = backends::open_postgres().await;
    let Some(server) = backends::pg::throwaway() else {
        eprintln!("LATCHKEY_TEST_DATABASE_URL is set: this test needs the throwaway server");
        return;
    };
    let store = opened.store.clone();
    store.ping().await.expect("the database answers");

    server.stop();
    let err = store.ping().await.expect_err("the database is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.has_shops().await.expect_err("the database is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    server.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = store.ping().await {
        assert!(
            Instant::now() < deadline,
            "the store did not recover after the restart: {e:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!store.has_shops().await.expect("reads work again"));
}
