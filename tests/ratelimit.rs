//! Rate limits over HTTP: exactness under concurrency on a real socket, the
//! headers, per-key changes, failed-attempt limiting, and the client address
//! behind trusted proxies.
mod common;

use axum::body::Body;
use axum::http::Request;
use common::TestApp;
use latchkey::service::keys::NewKeyInput;

fn named(name: &str, perms: &[&str], limit: Option<i64>) -> NewKeyInput {
    NewKeyInput {
        name: Some(name.into()),
        permissions: Some(perms.iter().map(|p| p.to_string()).collect()),
        rate_limit_per_minute: limit,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_simultaneous_requests_on_a_fresh_100_per_minute_key_let_exactly_100_through() {
    let app = TestApp::new().await;
    let (_, key) = app.key(&["orders:read"]).await;
    let server = app.spawn().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (client, url, key) = (
            client.clone(),
            format!("{}/api/v1/me", server.url),
            key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 900));
    server.stop().await;
}

#[tokio::test]
async fn every_answer_past_the_ip_check_carries_the_rate_limit_headers() {
    let app = TestApp::new().await;
    let (_, key) = app
        .key_with(&app.shop_id, named("Reports", &["orders:read"], Some(60)))
        .await;
    let r = app.get("/api/v1/me", &key).await;
    assert_eq!(r.header("ratelimit-policy"), Some("\"key\";q=60;w=60"));
    assert_eq!(r.header("ratelimit"), Some("\"key\";r=59;t=1"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("59"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("1"));
    // A 403 for a route it may not use is past the IP check: headers too.
    let r = app.get("/api/v1/keys", &key).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("58"));
}

#[tokio::test]
async fn a_405_to_a_valid_key_carries_the_rate_limit_headers_it_spent() {
    let app = TestApp::new().await;
    let (_, key) = app
        .key_with(&app.shop_id, named("Reports", &["orders:read"], Some(60)))
        .await;
    let r = app.call("PUT", "/api/v1/me", Some(&key), None).await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.code(), "method_not_allowed");
    assert!(r.header("allow").is_some(), "405 carries Allow");
    assert_eq!(r.header("ratelimit-policy"), Some("\"key\";q=60;w=60"));
    assert_eq!(r.header("ratelimit"), Some("\"key\";r=59;t=1"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("59"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("1"));
    // The next answer agrees: the 405 spent one.
    let r = app.get("/api/v1/me", &key).await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("58"));
}

#[tokio::test]
async fn past_the_limit_the_answer_is_429_with_retry_after_and_the_minute_refills() {
    let app = TestApp::new().await;
    let (_, key) = app
        .key_with(
            &app.shop_id,
            named("Two a minute", &["orders:read"], Some(2)),
        )
        .await;
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    let r = app.get("/api/v1/me", &key).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "rate_limited");
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.body["retry_after"], 30);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    app.clock.advance_seconds(30);
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
}

#[tokio::test]
async fn changing_a_keys_limit_takes_effect_at_once() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (id, key) = app
        .key_with(&app.shop_id, named("Sync", &["orders:read"], Some(100)))
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    }
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            serde_json::json!({"rate_limit_per_minute": 2}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app.get("/api/v1/me", &key).await;
    assert_eq!(
        r.status, 429,
        "3 used at 1.8 s of budget is over a 2/min limit"
    );
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
}

#[tokio::test]
async fn failed_attempts_are_limited_per_ip_but_never_block_a_known_key() {
    let app = TestApp::builder()
        .policy(|p| p.failed_auth_limit = 5)
        .build()
        .await;
    let (_, key) = app.key(&["orders:read"]).await;
    for _ in 0..5 {
        assert_eq!(
            app.get("/api/v1/me", "lk_live_nope").await.code(),
            "malformed_key"
        );
    }
    let r = app.get("/api/v1/me", "lk_live_nope").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "too_many_failed_attempts");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        app.call("GET", "/api/v1/me", None, None).await.code(),
        "too_many_failed_attempts"
    );
    // The same IP with a known key is served.
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
}

async fn from(app: &TestApp, peer: &str, xff: Option<&str>, key: &str) -> common::TestResponse {
    let mut req = Request::get("/api/v1/me").header("authorization", format!("Bearer {key}"));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    app.send_from(peer.parse().unwrap(), req.body(Body::empty()).unwrap())
        .await
}

#[tokio::test]
async fn the_client_ip_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
    let app = TestApp::builder()
        .policy(|p| {
            p.trusted_proxies = latchkey::domain::net::TrustedProxies::new(vec![
                "10.0.0.0/8".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ])
        })
        .build()
        .await;
    let (_, key) = app
        .key_with(
            &app.shop_id,
            NewKeyInput {
                name: Some("Office".into()),
                permissions: Some(vec!["orders:read".into()]),
                allowed_ips: Some(Some(vec!["203.0.113.5".into(), "2001:db8::5".into()])),
                ..Default::default()
            },
        )
        .await;
    // Through the trusted load balancer: the right-most untrusted hop.
    assert_eq!(
        from(&app, "10.0.0.2:1", Some("6.6.6.6, 203.0.113.5"), &key)
            .await
            .status,
        200
    );
    // A spoofed header from an untrusted peer is ignored.
    let r = from(&app, "198.51.100.9:1", Some("203.0.113.5"), &key).await;
    assert_eq!(r.code(), "ip_not_allowed");
    assert_eq!(r.body["client_ip"], "198.51.100.9");
    // A client that prepends the allowed address gains nothing.
    let r = from(&app, "10.0.0.2:1", Some("203.0.113.5, 192.0.2.77"), &key).await;
    assert_eq!(r.body["client_ip"], "192.0.2.77");
    // IPv6 behind an IPv6 proxy.
    assert_eq!(
        from(&app, "[fd00::1]:1", Some("2001:db8::5"), &key)
            .await
            .status,
        200
    );
}
