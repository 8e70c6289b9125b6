//! Limits shared through Redis, over HTTP: two instances (two cores on one
//! database and one Redis) let exactly a key's limit through; the 429s and
//! their headers; failed attempts shared; and Redis going away: `local` mode
//! answers from each instance's own limits, `deny` answers 503, readiness
//! says which, and shared limits resume within 5 s of Redis returning.
//!
//! Tests here stop and start the binary's throwaway Redis, so each takes
//! [`REDIS`] and they run one at a time.
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use common::{TestApp, WhenUnavailable, redis};
use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::limiter::{Limits, RedisLimiter, RedisStatus};
use latchkey::service::keys::NewKeyInput;
use latchkey::{AppState, Core, build_router};
use tower::ServiceExt;

static REDIS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Another instance beside `app`: its own core and limiter on the same
/// database and the same Redis keys.
async fn second_instance(app: &TestApp, prefix: &str, mode: WhenUnavailable) -> Arc<Core> {
    let redis = RedisLimiter::connect_with_prefix(&redis::url(), prefix)
        .await
        .unwrap();
    let secret = ServerSecret::new(b"test-secret-test-secret-test-secret!".to_vec()).unwrap();
    let hasher = KeyHasher::new(&secret);
    let limits = Arc::new(Limits::with_redis(
        hasher.clone(),
        app.core.policy.failed_auth_limit,
        redis,
        mode,
    ));
    Arc::new(Core::with_limits(
        app.store.clone(),
        app.clock.clone(),
        hasher,
        app.core.policy.clone(),
        limits,
    ))
}

fn router(core: &Arc<Core>) -> Router {
    let peer: SocketAddr = "203.0.113.10:40000".parse().unwrap();
    build_router(AppState::new(core.clone())).layer(MockConnectInfo(peer))
}

async fn status(router: &Router, path: &str, key: &str) -> u16 {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    router.clone().oneshot(req).await.unwrap().status().as_u16()
}

fn limited(limit: i64) -> NewKeyInput {
    NewKeyInput {
        name: Some(format!("{limit} a minute")),
        permissions: Some(vec!["orders:read".into()]),
        rate_limit_per_minute: Some(limit),
        ..Default::default()
    }
}

/// Polls until every limiter answers again; returns how long that took.
async fn until_shared(limits: &[&Limits]) -> Duration {
    let started = Instant::now();
    while limits.iter().any(|l| l.redis_status() != RedisStatus::Ok) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "shared limits did not resume within 5 s of Redis returning"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_a_redis_let_exactly_a_keys_limit_through() {
    let _one = REDIS.lock().await;
    let prefix = redis::prefix();
    let app = TestApp::builder()
        .redis_prefix(&prefix, WhenUnavailable::Local)
        .build()
        .await;
    let (_, key) = app.key(&["orders:read"]).await;
    let other = second_instance(&app, &prefix, WhenUnavailable::Local).await;
    let (a, b) = (router(&app.core), router(&other));
    let mut tasks = Vec::new();
    for i in 0..400 {
        let r = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(
            async move { status(&r, "/api/v1/me", &key).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 100, "a 100/min key, 400 requests over two instances");
}

#[tokio::test]
async fn on_redis_past_the_limit_the_answer_is_429_with_its_headers() {
    let _one = REDIS.lock().await;
    let app = TestApp::builder()
        .redis(WhenUnavailable::Deny)
        .build()
        .await;
    let (_, key) = app.key_with(&app.shop_id, limited(2)).await;
    let r = app.get("/api/v1/me", &key).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit"), Some("\"key\";r=1;t=30"));
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    let r = app.get("/api/v1/me", &key).await;
    common::assert_problem(&r, 429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("60"));
    app.clock.advance_seconds(30);
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        serde_json::json!({"status": "ready", "database": "ok", "redis": "ok"})
    );
}

#[tokio::test]
async fn failed_attempts_are_counted_across_instances() {
    let _one = REDIS.lock().await;
    let prefix = redis::prefix();
    let app = TestApp::builder()
        .policy(|p| p.failed_auth_limit = 4)
        .redis_prefix(&prefix, WhenUnavailable::Local)
        .build()
        .await;
    let other = second_instance(&app, &prefix, WhenUnavailable::Local).await;
    let (a, b) = (router(&app.core), router(&other));
    for i in 0..4 {
        let r = if i % 2 == 0 { &a } else { &b };
        assert_eq!(status(r, "/api/v1/me", "lk_live_nope").await, 401, "{i}");
    }
    assert_eq!(status(&a, "/api/v1/me", "lk_live_nope").await, 429);
    assert_eq!(status(&b, "/api/v1/me", "lk_live_nope").await, 429);
}

#[tokio::test]
async fn without_redis_readiness_says_it_is_not_configured() {
    let app = TestApp::new().await;
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(
        r.body,
        serde_json::json!({"status": "ready", "database": "ok", "redis": "not configured"})
    );
}

/// `local`: with Redis down each instance answers from its own limits (no
/// 500, no 503, ready); once Redis is back (empty) the limits are shared
/// again within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_local_mode_answers_from_memory_and_shares_again_when_it_returns() {
    let _one = REDIS.lock().await;
    let Some(server) = redis::throwaway() else {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL is set, and this test stops Redis");
        return;
    };
    let prefix = redis::prefix();
    let app = TestApp::builder()
        .redis_prefix(&prefix, WhenUnavailable::Local)
        .build()
        .await;
    let other = second_instance(&app, &prefix, WhenUnavailable::Local).await;
    let (a, b) = (router(&app.core), router(&other));
    let (_, key) = app.key_with(&app.shop_id, limited(3)).await;
    for _ in 0..3 {
        assert_eq!(status(&a, "/api/v1/me", &key).await, 200);
    }
    assert_eq!(status(&b, "/api/v1/me", &key).await, 429, "shared");

    server.stop();
    // Each instance falls back to its own, fresh, limiter.
    assert_eq!(status(&a, "/api/v1/me", &key).await, 200);
    assert_eq!(status(&b, "/api/v1/me", &key).await, 200);
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["redis"], "unavailable");
    // Failed attempts and the web login page work too.
    assert_eq!(status(&a, "/api/v1/me", "lk_live_nope").await, 401);

    server.start();
    let delay = until_shared(&[&app.core.limits, &other.limits]).await;
    eprintln!("shared limits resumed {delay:?} after Redis returned (empty)");
    for _ in 0..3 {
        assert_eq!(status(&a, "/api/v1/me", &key).await, 200);
    }
    assert_eq!(status(&b, "/api/v1/me", &key).await, 429, "shared again");
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.body["redis"], "ok");
}

/// `deny`: with Redis down keyed requests get 503 `unavailable`, readiness
/// 503, the login form 503; all resume when Redis returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_deny_mode_answers_503_and_resumes_when_it_returns() {
    let _one = REDIS.lock().await;
    let Some(server) = redis::throwaway() else {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL is set, and this test stops Redis");
        return;
    };
    let app = TestApp::builder()
        .redis(WhenUnavailable::Deny)
        .build()
        .await;
    let (_, key) = app.key(&["orders:read"]).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);

    server.stop();
    let r = app.get("/api/v1/me", &key).await;
    common::assert_problem(&r, 503, "unavailable");
    let r = app.get("/api/v1/me", "lk_live_nope").await;
    common::assert_problem(&r, 503, "unavailable");
    let r = app.call("GET", "/readyz", None, None).await;
    common::assert_problem(&r, 503, "unavailable");
    assert_eq!(r.body["redis"], "unavailable");
    assert_eq!(r.body["database"], "ok");
    // The login form, too (a page, not a 500).
    let page = app
        .send(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    let cookie = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let csrf = page
        .text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("email", "owner@fixit.example"),
        ("password", "correct horse battery"),
    ])
    .unwrap();
    let r = app
        .send(
            Request::post("/login")
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("Try again in a moment"), "{}", r.text);

    server.start();
    let delay = until_shared(&[&app.core.limits]).await;
    eprintln!("deny mode served again {delay:?} after Redis returned");
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    assert_eq!(app.call("GET", "/readyz", None, None).await.status, 200);
}

/// A flushed script cache is reloaded: never a 500.
#[tokio::test]
async fn a_flushed_script_cache_never_becomes_a_500() {
    let _one = REDIS.lock().await;
    let app = TestApp::builder()
        .redis(WhenUnavailable::Deny)
        .build()
        .await;
    let (_, key) = app.key_with(&app.shop_id, limited(5)).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    assert!(redis::send("SCRIPT FLUSH").unwrap().starts_with("+OK"));
    let r = app.get("/api/v1/me", &key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("3"), "state kept");
}

/// A Redis that does not answer at start: `local` serves (ready), `deny`
/// answers 503 (not ready).
#[tokio::test]
async fn an_unreachable_redis_at_start_is_local_or_503_by_mode() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    for (mode, expected) in [(WhenUnavailable::Local, 200), (WhenUnavailable::Deny, 503)] {
        let app = TestApp::builder()
            .redis_url(&url, "latchkey:", mode)
            .build()
            .await;
        let (_, key) = app.key(&["orders:read"]).await;
        assert_eq!(
            app.get("/api/v1/me", &key).await.status.as_u16(),
            expected,
            "{mode:?}"
        );
        let r = app.call("GET", "/readyz", None, None).await;
        assert_eq!(r.status.as_u16(), expected, "{mode:?}: {}", r.text);
        assert_eq!(r.body["redis"], "unavailable");
    }
}

/// Redis down when the instance starts, up later: shared limits start
/// within 5 s, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_up_after_the_start_is_used_within_5_s() {
    let _one = REDIS.lock().await;
    let Some(server) = redis::throwaway() else {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL is set, and this test stops Redis");
        return;
    };
    server.stop();
    let app = TestApp::builder()
        .redis(WhenUnavailable::Local)
        .build()
        .await;
    assert_eq!(app.core.limits.redis_status(), RedisStatus::Unavailable);
    let (_, key) = app.key(&["orders:read"]).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    server.start();
    let delay = until_shared(&[&app.core.limits]).await;
    eprintln!("a Redis started after the instance was used {delay:?} after it answered");
    assert_eq!(app.get("/api/v1/me", &key).await.status, 200);
    assert_eq!(
        app.call("GET", "/readyz", None, None).await.body["redis"],
        "ok"
    );
}
