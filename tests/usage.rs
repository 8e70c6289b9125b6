//! Usage monitoring: exact counts across flushes and restarts, endpoints,
//! errors, rejections by reason, roll-up and retention on a manual clock.
mod common;

use common::{ClockExt, TestApp};
use latchkey::domain::clock::Timestamp;

async fn flush(app: &TestApp) -> u64 {
    app.core.usage.flush(app.store.as_ref()).await.unwrap()
}

async fn usage(app: &TestApp, admin: &str, key_id: &str) -> serde_json::Value {
    let r = app
        .get(&format!("/api/v1/keys/{key_id}/usage"), admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["usage"].clone()
}

#[tokio::test]
async fn n_requests_give_n_across_flushes_with_endpoints_and_errors() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read"]).await;
    let (id, key) = app.key(&["orders:read"]).await;
    for _ in 0..7 {
        assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    }
    assert_eq!(flush(&app).await, 7);
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/orders/nope", &key).await.status, 404);
    }
    // A route it may not use still counts, as a 4xx.
    assert_eq!(app.get("/api/v1/clients", &key).await.status, 403);
    flush(&app).await;

    let u = usage(&app, &admin, &id).await;
    assert_eq!(u["requests"]["total"], 11);
    assert_eq!(u["requests"]["last_24h"], 11);
    assert_eq!(u["requests"]["last_7d"], 11);
    assert_eq!(u["errors"]["4xx"], 4);
    assert_eq!(u["errors"]["5xx"], 0);
    assert!((u["error_rate"].as_f64().unwrap() - 4.0 / 11.0).abs() < 1e-9);
    assert_eq!(u["last_used_ip"], app.peer.ip().to_string());
    let endpoints = u["endpoints"].as_array().unwrap();
    let find = |route: &str| {
        endpoints
            .iter()
            .find(|e| e["route"] == route)
            .unwrap()
            .clone()
    };
    assert_eq!(find("/api/v1/me")["requests"], 7);
    assert_eq!(
        find("/api/v1/orders/{id}")["errors_4xx"],
        3,
        "route templates, never raw paths"
    );
    assert_eq!(find("/api/v1/clients")["method"], "GET");
    assert_eq!(u["per_minute"].as_array().unwrap().len(), 60);
    assert_eq!(u["per_hour"].as_array().unwrap().len(), 168);
    assert_eq!(
        u["per_minute"].as_array().unwrap().last().unwrap()["requests"],
        11
    );
    assert_eq!(
        u["per_minute"].as_array().unwrap().last().unwrap()["errors"],
        4
    );

    // The key object carries the summary too.
    let k = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(k.body["key"]["requests_24h"], 11);
    assert_eq!(k.body["key"]["last_used_ip"], app.peer.ip().to_string());
    assert!(k.body["key"]["last_used_at"].is_string());
}

#[tokio::test]
async fn refusals_of_a_known_key_are_counted_by_reason() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (ip_id, ip_key) = app
        .key_with(
            &app.shop_id,
            latchkey::service::keys::NewKeyInput {
                name: Some("Office only".into()),
                permissions: Some(vec!["orders:read".into()]),
                allowed_ips: Some(Some(vec!["198.51.100.0/24".into()])),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        app.get("/api/v1/me", &ip_key).await.code(),
        "ip_not_allowed"
    );

    let (slow_id, slow) = app
        .key_with(
            &app.shop_id,
            latchkey::service::keys::NewKeyInput {
                name: Some("One a minute".into()),
                permissions: Some(vec!["orders:read".into()]),
                rate_limit_per_minute: Some(1),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(app.get("/api/v1/me", &slow).await.status, 200);
    assert_eq!(app.get("/api/v1/me", &slow).await.code(), "rate_limited");

    let (gone_id, gone) = app.key(&["orders:read"]).await;
    let r = app
        .post(
            &format!("/api/v1/keys/{gone_id}/revoke"),
            &admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/api/v1/me", &gone).await.code(), "revoked_key");
    assert_eq!(app.get("/api/v1/me", &gone).await.code(), "revoked_key");
    flush(&app).await;

    assert_eq!(
        usage(&app, &admin, &ip_id).await["rejected"]["ip_denied"],
        1
    );
    let s = usage(&app, &admin, &slow_id).await;
    assert_eq!(
        (
            s["requests"]["total"].as_u64(),
            s["rejected"]["rate_limited"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let g = usage(&app, &admin, &gone_id).await;
    assert_eq!(g["rejected"]["revoked"], 2);
    assert_eq!(
        g["requests"]["total"], 2,
        "every request that presented the key counts"
    );
}

#[tokio::test]
async fn unknown_keys_create_no_usage_state() {
    let app = TestApp::new().await;
    let fake = latchkey::domain::token::generate(latchkey::domain::token::Environment::Live);
    for _ in 0..5 {
        assert_eq!(
            app.get("/api/v1/me", fake.expose()).await.code(),
            "invalid_key"
        );
    }
    assert!(app.core.usage.take().is_empty());
}

#[tokio::test]
async fn minutes_roll_up_into_hours_and_old_hours_are_dropped_but_the_total_is_lifetime() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read"]).await;
    let (id, key) = app.key(&["orders:read"]).await;
    for _ in 0..4 {
        app.get("/api/v1/me", &key).await;
    }
    flush(&app).await;
    let t0 = app.clock.now_ts();

    // Two hours later the minute buckets are rolled into their hour.
    app.clock.advance_seconds(2 * 3600);
    let (rolled, _) = app.store.roll_up_usage(app.clock.now_ts()).await.unwrap();
    assert!(rolled >= 1);
    let u = usage(&app, &admin, &id).await;
    assert!(
        u["per_minute"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["requests"] == 0)
    );
    let hour_of_t0 =
        Timestamp::from_micros(t0.as_micros() / 3_600_000_000 * 3_600_000_000).to_string();
    let point = u["per_hour"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["at"] == hour_of_t0.as_str())
        .unwrap()
        .clone();
    assert_eq!(point["requests"], 4);
    assert_eq!(u["requests"]["last_24h"], 4);

    // Two days later: outside the last 24 h, inside the last 7 days.
    app.clock.advance_seconds(2 * 86_400);
    let u = usage(&app, &admin, &id).await;
    assert_eq!(
        (
            u["requests"]["last_24h"].as_u64(),
            u["requests"]["last_7d"].as_u64()
        ),
        (Some(0), Some(4))
    );

    // After 90 days the hour buckets go; the lifetime total stays.
    app.clock.advance_seconds(91 * 86_400);
    let (_, dropped) = app.store.roll_up_usage(app.clock.now_ts()).await.unwrap();
    assert!(dropped >= 1);
    let u = usage(&app, &admin, &id).await;
    assert_eq!(u["requests"]["total"], 4);
    assert_eq!(u["requests"]["last_7d"], 0);
}

#[tokio::test]
async fn counts_survive_a_graceful_restart_without_a_manual_flush() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read"]).await;
    let (id, key) = app.key(&["orders:read"]).await;
    let server = app.spawn().await;
    let client = reqwest::Client::new();
    for _ in 0..25 {
        let r = client
            .get(format!("{}/api/v1/me", server.url))
            .bearer_auth(&key)
            .header("user-agent", "Zapier")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Stop at once: well inside the first one-second flush interval.
    server.stop().await;

    let u = usage(&app, &admin, &id).await;
    assert_eq!(
        u["requests"]["total"], 25,
        "the final flush on shutdown lost nothing"
    );
    assert_eq!(u["clients"][0]["user_agent"], "Zapier");
    assert_eq!(u["clients"][0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn a_failed_flush_keeps_its_counts_for_the_next() {
    let app = TestApp::new().await;
    let (id, key) = app.key(&["orders:read"]).await;
    for _ in 0..3 {
        app.get("/api/v1/me", &key).await;
    }
    let batch = app.core.usage.take();
    assert_eq!(batch.total_requests(), 3);
    // Put it back as a failed flush would, add more, then flush for real.
    let mut again = latchkey::store::usage::UsageBatch::default();
    again.merge(batch);
    app.store.flush_usage(&again).await.unwrap();
    app.get("/api/v1/me", &key).await;
    flush(&app).await;
    let (_, admin) = app.key(&["keys:read"]).await;
    assert_eq!(usage(&app, &admin, &id).await["requests"]["total"], 4);
}

/// A flush writes each table with multi-row statements of at most 500 rows:
/// 1,201 keys in one flush (three statements per table, the last one short)
/// and then the same again (every row an update) must still count exactly.
#[tokio::test]
async fn a_flush_of_more_keys_than_one_statement_holds_counts_every_key() {
    use latchkey::auth::usage::Hit;
    use latchkey::store::usage::Rejection;
    let app = TestApp::new().await;
    let ids: Vec<String> = (0..1201).map(|i| format!("key_bulk{i:05}")).collect();
    let get = axum::http::Method::GET;
    let at = app.core.clock.now();
    for round in 0..2 {
        for (i, id) in ids.iter().enumerate() {
            for n in 0..=(i % 3) {
                app.core.usage.record(Hit {
                    key_id: id,
                    at,
                    method: &get,
                    route: "/api/v1/me",
                    status: if n == 1 { 404 } else { 200 },
                    rejection: (i % 2 == 1 && n == 0).then_some(Rejection::RateLimited),
                    ip: [192, 0, 2, (i % 250) as u8].into(),
                    user_agent: Some(if round == 0 { "bulk/1" } else { "bulk/2" }),
                });
            }
        }
        let expected: u64 = (0..ids.len()).map(|i| (i % 3 + 1) as u64).sum();
        assert_eq!(flush(&app).await, expected);
    }
    for (i, id) in ids.iter().enumerate() {
        let u = app.store.key_usage(id, app.core.clock.now()).await.unwrap();
        let per_round = (i % 3 + 1) as u64;
        assert_eq!(u.requests.total, 2 * per_round, "{id}");
        assert_eq!(u.errors.e4xx, if per_round >= 2 { 2 } else { 0 }, "{id}");
        assert_eq!(
            u.rejected.rate_limited,
            if i % 2 == 1 { 2 } else { 0 },
            "{id}"
        );
        assert_eq!(
            u.last_used_ip.as_deref(),
            Some(format!("192.0.2.{}", i % 250).as_str())
        );
        assert_eq!(u.endpoints.len(), 1, "{id}");
        assert_eq!(u.endpoints[0].requests, 2 * per_round, "{id}");
        let clients: u64 = u.clients.iter().map(|c| c.requests).sum();
        assert_eq!((u.clients.len(), clients), (2, 2 * per_round), "{id}");
    }
}

/// A revoked key is neither rate limited nor a failed attempt, so each
/// request with a fresh user agent used to write a client row (issue 12
/// item 7). Refused requests are still counted, but add only a few clients.
#[tokio::test]
async fn refused_requests_with_distinct_user_agents_add_a_bounded_number_of_clients() {
    use latchkey::auth::usage::REFUSED_CLIENTS_PER_MINUTE;
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (gone_id, gone) = app.key(&["orders:read"]).await;
    let r = app
        .post(
            &format!("/api/v1/keys/{gone_id}/revoke"),
            &admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    flush(&app).await;

    let hammer = |from: usize| {
        let (app, gone) = (&app, &gone);
        async move {
            for i in from..from + 1000 {
                let req = axum::http::Request::get("/api/v1/me")
                    .header("authorization", format!("Bearer {gone}"))
                    .header("user-agent", format!("hammer/{i}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                assert_eq!(app.send(req).await.code(), "revoked_key");
            }
        }
    };
    // Two flushes within one minute: the bound holds across them.
    hammer(0).await;
    let first = app.core.usage.take();
    hammer(1000).await;
    let second = app.core.usage.take();
    let clients_of = |b: &latchkey::store::usage::UsageBatch| {
        b.clients.keys().filter(|(k, _, _)| *k == gone_id).count()
    };
    let added = clients_of(&first) + clients_of(&second);
    assert!(
        added <= REFUSED_CLIENTS_PER_MINUTE as usize,
        "2,000 refused requests added {added} clients"
    );
    assert!(added > 0, "the first few refused clients are still listed");
    app.store.flush_usage(&first).await.unwrap();
    app.store.flush_usage(&second).await.unwrap();
    let g = usage(&app, &admin, &gone_id).await;
    assert_eq!(g["requests"]["total"], 2000, "every refusal is counted");
    assert_eq!(g["rejected"]["revoked"], 2000);

    // The next minute has a fresh (small) allowance.
    app.clock.advance_seconds(60);
    hammer(2000).await;
    let third = app.core.usage.take();
    assert_eq!(
        clients_of(&third),
        REFUSED_CLIENTS_PER_MINUTE as usize,
        "a new minute lists a few new clients again"
    );
}
