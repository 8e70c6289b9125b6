//! Scale-out (docs/DEPLOY.md): the database becoming unreachable while latchkey serves.
//! Through the HTTP layer, on PostgreSQL whatever `LATCHKEY_TEST_BACKEND`
//! says. A binary of its own: it stops the throwaway server, which every
//! other test of a binary shares.

use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::{TestApp, assert_problem, pg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_gives_503_keeps_cached_keys_working_and_recovers_without_a_restart() {
    let app = TestApp::builder().postgres().build().await;
    let Some(server) = pg::throwaway() else {
        eprintln!("LATCHKEY_TEST_DATABASE_URL is set: this test needs the throwaway server");
        return;
    };
    let (_, used) = app.key(&["clients:read", "clients:write"]).await;
    let (_, unused) = app.key(&["clients:read"]).await;

    // Before the outage: the key is used (so it is in the cache), one client.
    assert_eq!(app.get("/api/v1/me", &used).await.status, 200);
    let r = app
        .post("/api/v1/clients", &used, json!({"first_name": "Before"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.get("/api/v1/clients", &used).await;
    assert_eq!(r.body["meta"]["total_entries"], 1, "{}", r.text);

    server.stop();

    // A key used before the outage still verifies, from the cache.
    let r = app.get("/api/v1/me", &used).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Requests that need the database are 503 `unavailable`.
    assert_problem(&app.get("/api/v1/clients", &used).await, 503, "unavailable");
    assert_problem(
        &app.post("/api/v1/clients", &used, json!({"first_name": "During"}))
            .await,
        503,
        "unavailable",
    );
    // A key never seen before cannot be verified without the database.
    assert_problem(&app.get("/api/v1/me", &unused).await, 503, "unavailable");

    // The server returns: the same latchkey answers again, by itself.
    server.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = app.get("/api/v1/clients", &used).await;
        if r.status == 200 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "latchkey did not recover after PostgreSQL came back: {}\n{}",
            r.text,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Nothing half-written: the refused create left no client behind.
    assert_eq!(r.body["meta"]["total_entries"], 1, "{}", r.text);
    assert_eq!(r.body["clients"][0]["first_name"], "Before", "{}", r.text);

    assert_eq!(app.get("/api/v1/me", &unused).await.status, 200);
    let r = app
        .post("/api/v1/clients", &used, json!({"first_name": "After"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.get("/api/v1/clients", &used).await;
    assert_eq!(r.body["meta"]["total_entries"], 2, "{}", r.text);
}
