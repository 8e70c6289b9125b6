//! Test harness: a fresh database per test, a manual clock, the router driven
//! in-process (`TestApp::call`) or served on a real socket on port 0
//! (`TestApp::spawn`).
//!
//! The database is SQLite (`<dir>/latchkey.db`) by default; with
//! `LATCHKEY_TEST_BACKEND=postgres` it is a fresh PostgreSQL database on the
//! throwaway server of `pg.rs` (one server per test binary), so every HTTP
//! suite runs on both backends (scripts/test.sh runs both passes).
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::domain::clock::{ManualClock, Timestamp};
use latchkey::domain::key::Actor;
use latchkey::domain::new_id;
use latchkey::domain::user::{Email, Password, Role};
use latchkey::service::keys::{NewKeyInput, Principal};
use latchkey::store::postgres::PostgresStore;
use latchkey::store::sqlite::SqliteStore;
use latchkey::store::{AuditEvent, Shop, Store, User};
use latchkey::{Core, Policy, build_router};
use serde_json::Value;
use tower::ServiceExt;

#[path = "pg.rs"]
pub mod pg;
#[path = "redis.rs"]
pub mod redis;

pub use latchkey::limiter::WhenUnavailable;

/// The instant every test starts at.
pub const T0: &str = "2026-11-23T12:00:00Z";

pub struct TestApp {
    pub core: Arc<Core>,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    /// The default shop, created with the app.
    pub shop_id: String,
    /// A temporary directory; on SQLite it holds the database file.
    pub dir: tempfile::TempDir,
    /// On PostgreSQL: this test's database (it must outlive the store).
    pub db: Option<pg::TestDatabase>,
    /// The TCP peer the in-process router sees.
    pub peer: SocketAddr,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

pub struct Builder {
    policy: Policy,
    empty: bool,
    postgres: bool,
    /// Limits shared through a Redis: (URL, key prefix, mode).
    redis: Option<(String, String, WhenUnavailable)>,
}

impl Builder {
    pub fn policy(mut self, f: impl FnOnce(&mut Policy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// On PostgreSQL whatever `LATCHKEY_TEST_BACKEND` says (outage tests).
    pub fn postgres(mut self) -> Self {
        self.postgres = true;
        self
    }

    /// Limits shared through the test Redis (`common::redis`), under a key
    /// prefix of this app's own.
    pub fn redis(self, mode: WhenUnavailable) -> Self {
        self.redis_prefix(&redis::prefix(), mode)
    }

    /// Limits shared through the test Redis under `prefix`: apps given the
    /// same prefix share their limits, as instances sharing a Redis do.
    pub fn redis_prefix(self, prefix: &str, mode: WhenUnavailable) -> Self {
        self.redis_url(&redis::url(), prefix, mode)
    }

    /// Limits shared through the Redis at `url` (which may not answer).
    pub fn redis_url(mut self, url: &str, prefix: &str, mode: WhenUnavailable) -> Self {
        self.redis = Some((url.to_owned(), prefix.to_owned(), mode));
        self
    }

    /// No default shop (a first run).
    pub fn empty(mut self) -> Self {
        self.empty = true;
        self
    }

    pub async fn build(self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db = if self.postgres || pg::http_backend_is_postgres() {
            Some(pg::fresh_database().await)
        } else {
            None
        };
        let store = open_store(dir.path(), db.as_ref()).await;
        let clock = Arc::new(ManualClock::new(Timestamp::parse_rfc3339(T0).unwrap()));
        let secret = ServerSecret::new(b"test-secret-test-secret-test-secret!".to_vec()).unwrap();
        let hasher = KeyHasher::new(&secret);
        let limits = match &self.redis {
            None => Arc::new(latchkey::limiter::Limits::in_memory(
                hasher.clone(),
                self.policy.failed_auth_limit,
            )),
            Some((url, prefix, mode)) => {
                let redis = latchkey::limiter::RedisLimiter::connect_with_prefix(url, prefix)
                    .await
                    .unwrap_or_else(|e| panic!("the test Redis URL: {e}"));
                Arc::new(latchkey::limiter::Limits::with_redis(
                    hasher.clone(),
                    self.policy.failed_auth_limit,
                    redis,
                    *mode,
                ))
            }
        };
        let core = Arc::new(Core::with_limits(
            store.clone(),
            clock.clone(),
            hasher,
            self.policy,
            limits,
        ));
        let mut app = TestApp {
            core,
            clock,
            store,
            shop_id: String::new(),
            dir,
            db,
            peer: "203.0.113.10:40000".parse().unwrap(),
        };
        if !self.empty {
            app.shop_id = app.new_shop("Fix-It Phones", "owner@fixit.example").await;
        }
        app
    }
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            policy: Policy::default(),
            empty: false,
            postgres: false,
            redis: None,
        }
    }

    pub async fn new() -> TestApp {
        Self::builder().build().await
    }

    /// Whether this app runs on PostgreSQL (`LATCHKEY_TEST_BACKEND=postgres`).
    pub fn on_postgres(&self) -> bool {
        self.db.is_some()
    }

    /// A second store on this app's database, as another process would open it.
    pub async fn reopen_store(&self) -> Arc<dyn Store> {
        open_store(self.dir.path(), self.db.as_ref()).await
    }

    /// Whether `needle` appears anywhere in what the database stores: the
    /// SQLite file and its WAL, or every PostgreSQL row (`bytea` as hex, so
    /// the needle's hex form is looked for too).
    pub async fn database_contains(&self, needle: &[u8]) -> bool {
        match &self.db {
            None => ["latchkey.db", "latchkey.db-wal"].iter().any(|file| {
                let bytes = std::fs::read(self.dir.path().join(file)).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle)
            }),
            Some(db) => {
                let text = pg::dump_text(&db.options).await;
                text.as_bytes().windows(needle.len()).any(|w| w == needle)
                    || text.contains(&pg::hex_of(needle))
            }
        }
    }

    /// Creates a shop with an owner; returns the shop id.
    pub async fn new_shop(&self, name: &str, owner_email: &str) -> String {
        let now = self.clock.now_ts();
        let shop = Shop {
            id: new_id("shop"),
            name: name.into(),
            created_at: now,
        };
        let owner = User {
            id: new_id("usr"),
            shop_id: shop.id.clone(),
            email: Email::parse(owner_email).unwrap(),
            role: Role::Owner,
            password_hash: Password::parse("correct horse battery".into())
                .unwrap()
                .hash(),
            created_at: now,
        };
        let audit = AuditEvent {
            id: new_id("evt"),
            shop_id: shop.id.clone(),
            at: now,
            actor: Actor::Cli,
            action: "shop.created".into(),
            key_id: None,
            environment: None,
            ip: None,
            details: serde_json::json!({}),
        };
        self.store.create_shop(&shop, &owner, &audit).await.unwrap();
        shop.id
    }

    /// A live key of the default shop with `permissions`; returns (id, secret).
    pub async fn key(&self, permissions: &[&str]) -> (String, String) {
        self.key_in(&self.shop_id, "live", permissions).await
    }

    /// A key made by the CLI principal in any shop and environment.
    pub async fn key_in(
        &self,
        shop_id: &str,
        environment: &str,
        permissions: &[&str],
    ) -> (String, String) {
        self.key_with(
            shop_id,
            NewKeyInput {
                name: Some(
                    format!("Test harness {}", permissions.join(" "))
                        .chars()
                        .take(100)
                        .collect(),
                ),
                permissions: Some(permissions.iter().map(|p| p.to_string()).collect()),
                environment: Some(environment.into()),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn key_with(&self, shop_id: &str, input: NewKeyInput) -> (String, String) {
        let new = input
            .validate(
                self.clock.now_ts(),
                latchkey::domain::token::Environment::Live,
                100,
            )
            .unwrap();
        let created = self
            .core
            .keys
            .create_key(&Principal::cli(shop_id), new)
            .await
            .unwrap();
        (created.key.id.clone(), created.secret.expose().to_owned())
    }

    /// Sends a request through the router in-process.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).unwrap()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// Sends a fully built request through the router in-process.
    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        self.send_from(self.peer, req).await
    }

    /// Sends a request as if from the TCP peer `peer`.
    pub async fn send_from(&self, peer: SocketAddr, req: Request<Body>) -> TestResponse {
        let router =
            build_router(latchkey::AppState::new(self.core.clone())).layer(MockConnectInfo(peer));
        let response = router.oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> TestResponse {
        self.call("GET", path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> TestResponse {
        self.call("POST", path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> TestResponse {
        self.call("PATCH", path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> TestResponse {
        self.call("DELETE", path, Some(key), None).await
    }

    /// Serves the app on 127.0.0.1:0; returns its base URL and a handle that
    /// stops it (gracefully) when dropped or when `stop` is called.
    pub async fn spawn(&self) -> RunningServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let core = self.core.clone();
        let handle = tokio::spawn(async move {
            latchkey::serve(listener, latchkey::AppState::new(core), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        RunningServer {
            url: format!("http://{addr}"),
            stop: Some(tx),
            handle: Some(handle),
        }
    }
}

pub struct RunningServer {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The store of a test: SQLite in `dir`, or the PostgreSQL database `db`.
async fn open_store(dir: &std::path::Path, db: Option<&pg::TestDatabase>) -> Arc<dyn Store> {
    match db {
        None => Arc::new(
            SqliteStore::open_path(&dir.join("latchkey.db"))
                .await
                .unwrap(),
        ),
        Some(db) => Arc::new(
            PostgresStore::open_with(db.options.clone())
                .await
                .unwrap_or_else(|e| panic!("open the test PostgreSQL database: {e}")),
        ),
    }
}

/// Reads "now" from the manual clock through the `Clock` trait.
pub trait ClockExt {
    fn now_ts(&self) -> Timestamp;
}

impl ClockExt for ManualClock {
    fn now_ts(&self) -> Timestamp {
        latchkey::domain::clock::Clock::now(self)
    }
}

/// An RFC 9457 problem with this status and code, whose `instance` is the
/// request id the response carries.
pub fn assert_problem(r: &TestResponse, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text
    );
    assert_eq!(r.body["status"], status, "{}", r.text);
    assert!(r.body["type"].is_string(), "{}", r.text);
    assert!(
        r.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        r.text
    );
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    let request_id = r
        .header("x-request-id")
        .expect("every response carries X-Request-Id");
    assert!(!request_id.is_empty());
    assert_eq!(r.body["instance"], request_id, "{}", r.text);
}
