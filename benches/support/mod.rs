//! Shared by `benches/verify.rs`, `examples/verify_once.rs` (callgrind) and
//! `examples/seed_keys.rs` (bench/scale.sh): fast seeding of many keys and the
//! keyed request path as the server runs it.
//!
//! The request path is exercised through the real `require_key` middleware in a
//! minimal router, so whatever the middleware does (verify, rate limit,
//! permission, usage recording, ...) is measured as it is, and a twin router
//! without the middleware gives the baseline to subtract.
#![allow(dead_code, reason = "each target uses a different part")]

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::routing::get;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite};

use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::auth::usage::Hit;
use latchkey::domain::clock::{Clock, SystemClock};
use latchkey::domain::permission::{Permission, PermissionSet};
use latchkey::domain::token;
use latchkey::http::auth::{Caller, ClientIp, extract_key, require_key};
use latchkey::store::sqlite::SqliteStore;
use latchkey::{AppState, Core, Policy};

/// The benches' server secret (fixed, so seeded databases are reproducible).
pub const SECRET: &[u8] = b"latchkey-bench-secret-0123456789abcdef-not-for-production";
/// The route the keyed request takes, as the real API declares it.
pub const ROUTE: &str = "/api/v1/orders/{id}";
pub const PATH: &str = "/api/v1/orders/ord_bench";
/// Rows per multi-row INSERT (13 binds each; well under SQLite's 32766).
const CHUNK: usize = 500;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn hasher() -> KeyHasher {
    KeyHasher::new(&ServerSecret::new(SECRET.to_vec()).expect("bench secret is long enough"))
}

/// The client address of every bench request; the keys' allowed IPs admit it
/// (as the second entry, so the check does some work).
pub fn client_ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th bench key: a well-formed standard key (prefix, 32 base62
/// characters, CRC-32 checksum), deterministic so runs are comparable.
pub fn key_for(environment: token::Environment, i: u64) -> String {
    let mut state = i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x6C6B_6265_6E63_6821;
    let mut random = [0u8; 32];
    for chunk in random.chunks_mut(8) {
        let mut bits = splitmix(&mut state);
        for b in chunk {
            *b = BASE62[(bits % 62) as usize];
            bits /= 62;
        }
    }
    let prefix = match environment {
        token::Environment::Live => "lk_live_",
        token::Environment::Test => "lk_test_",
    };
    let mut key = String::with_capacity(token::KEY_LEN);
    key.push_str(prefix);
    key.push_str(std::str::from_utf8(&random).expect("ASCII"));
    key.push_str(std::str::from_utf8(&token::checksum(&random)).expect("ASCII"));
    key
}

/// What [`seed`] writes.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    pub keys: u64,
    /// Keys are spread evenly over this many shops.
    pub shops: u64,
    pub environment: token::Environment,
    pub rate_limit_per_minute: u32,
    /// Space-separated, as stored (empty allows every address).
    pub allowed_ips: String,
}

impl SeedSpec {
    pub fn bench(keys: u64) -> Self {
        SeedSpec {
            keys,
            shops: keys.div_ceil(1000).max(1),
            environment: token::Environment::Live,
            rate_limit_per_minute: 10_000,
            allowed_ips: "10.0.0.0/8 127.0.0.0/8".into(),
        }
    }
}

/// Writes `spec.keys` keys (and their shops) into the migrated SQLite database
/// at `path` in one transaction of prepared multi-row inserts, hashing each
/// with `hasher`. Key `i` is [`key_for`]`(env, i)`; its id is `key_bench…i`.
/// A million keys take seconds, not the hours one `keys create` each would.
pub async fn seed(path: &Path, hasher: &KeyHasher, spec: &SeedSpec) -> anyhow::Result<()> {
    // Opening the store applies the migrations.
    drop(SqliteStore::open_path(path).await?);
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .journal_mode(SqliteJournalMode::Wal)
        // A bench database: durability is irrelevant, speed is not.
        .synchronous(SqliteSynchronous::Off)
        .pragma("cache_size", "-262144")
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let now = SystemClock.now().as_micros();
    let permissions = PermissionSet::parse_list(&["orders:read", "clients:read", "devices:read"])
        .map_err(anyhow::Error::msg)?
        .to_names()
        .join(" ");
    let mut tx = pool.begin().await?;
    let shop_ids: Vec<String> = (0..spec.shops)
        .map(|s| format!("shop_bench{s:014}"))
        .collect();
    for chunk in shop_ids.chunks(CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR IGNORE INTO shops (id, name, created_at) ");
        q.push_values(chunk, |mut b, id| {
            b.push_bind(id)
                .push_bind(format!("Bench shop {id}"))
                .push_bind(now);
        });
        q.build().persistent(true).execute(&mut *tx).await?;
    }
    let per_shop = spec.keys.div_ceil(spec.shops);
    let mut start = 0u64;
    while start < spec.keys {
        let end = (start + CHUNK as u64).min(spec.keys);
        let rows: Vec<(String, String, String, [u8; 32])> = (start..end)
            .map(|i| {
                let key = key_for(spec.environment, i);
                (
                    format!("key_bench{i:015}"),
                    shop_ids[(i / per_shop) as usize].clone(),
                    token::display_form(&key),
                    hasher.hash(&key),
                )
            })
            .collect();
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO api_keys (id, shop_id, name, environment, kind, display, key_hash, \
             permissions, allowed_ips, rate_limit_per_minute, created_at, updated_at, created_by) ",
        );
        q.push_values(&rows, |mut b, (id, shop, display, hash)| {
            b.push_bind(id)
                .push_bind(shop)
                .push_bind("Bench key")
                .push_bind(spec.environment.as_str())
                .push_bind("standard")
                .push_bind(display)
                .push_bind(&hash[..])
                .push_bind(&permissions)
                .push_bind(&spec.allowed_ips)
                .push_bind(i64::from(spec.rate_limit_per_minute))
                .push_bind(now)
                .push_bind(now)
                .push_bind("cli");
        });
        q.build().persistent(true).execute(&mut *tx).await?;
        start = end;
    }
    tx.commit().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

/// A fresh [`Core`] (empty caches and limiters, as after a restart) over the
/// seeded database at `path`.
pub async fn open_core(path: &Path) -> anyhow::Result<AppState> {
    let store = SqliteStore::open_path(path).await?;
    Ok(AppState::new(Arc::new(Core::new(
        Arc::new(store),
        Arc::new(SystemClock),
        hasher(),
        Policy::default(),
    ))))
}

/// The keyed route behind the real middleware, at the API's own
/// `GET /api/v1/orders/{id}` template, so the middleware's permission check
/// (`orders:read`, from the permission table) is included; the handler
/// does nothing else.
pub fn keyed_router() -> Router {
    async fn handler(_: Caller) -> StatusCode {
        StatusCode::OK
    }
    Router::new()
        .route(ROUTE, get(handler))
        .route_layer(axum::middleware::from_fn(require_key))
}

/// The same route without the middleware: what [`keyed_router`] costs
/// beyond authentication.
pub fn baseline_router() -> Router {
    async fn handler() -> StatusCode {
        StatusCode::OK
    }
    Router::new().route(ROUTE, get(handler))
}

/// The request as the server's outer layer hands it to the API routes: the
/// key header, the client IP and the shared state in the extensions.
pub fn request(state: &AppState, key: &HeaderValue) -> Request<Body> {
    let mut req = Request::builder()
        .uri(PATH)
        .header("x-api-key", key.clone())
        .body(Body::empty())
        .expect("valid request");
    req.extensions_mut().insert(ClientIp(client_ip()));
    req.extensions_mut().insert(state.core.clone());
    req
}

/// Header values of keys `0..n` (built once, cloned per request).
pub fn header_values(environment: token::Environment, n: u64) -> Vec<HeaderValue> {
    (0..n)
        .map(|i| HeaderValue::from_str(&key_for(environment, i)).expect("ASCII key"))
        .collect()
}

/// One keyed request through `router`; panics unless it is let through, so a
/// bench can never quietly measure 401s or 429s.
pub async fn call(router: &Router, state: &AppState, key: &HeaderValue) {
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(request(state, key))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "bench request refused");
}

/// Loads every key in `keys` into the cache (and its rate-limit bucket and
/// usage entry) through the middleware.
pub async fn warm(state: &AppState, keys: &[HeaderValue]) {
    let router = keyed_router();
    for key in keys {
        call(&router, state, key).await;
    }
}

/// Header maps carrying keys `0..n` as `X-API-Key`.
pub fn header_maps(keys: &[HeaderValue]) -> Vec<HeaderMap> {
    keys.iter()
        .map(|k| {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", k.clone());
            h
        })
        .collect()
}

/// The functions the middleware calls for a keyed request, called directly
/// (no router, no response): extract, verify (parse, hash, cache, status,
/// allowed IPs), rate limit, permission, usage recording.
pub async fn calls(state: &AppState, headers: &HeaderMap) {
    let ip = client_ip();
    let (value, source) = extract_key(headers, None).expect("a key header");
    let key = state
        .core
        .verify(&value, source, ip)
        .await
        .expect("a valid key");
    let decision = state
        .core
        .limits
        .check_key(&key.id, key.rate_limit_per_minute, state.core.clock.now())
        .await
        .expect("limits without Redis always answer");
    assert!(decision.allowed, "bench key rate limited");
    assert!(key.permissions.contains(Permission::OrdersRead));
    state.core.usage.record(Hit {
        key_id: &key.id,
        at: state.core.clock.now(),
        method: &Method::GET,
        route: ROUTE,
        status: 200,
        rejection: None,
        ip,
        user_agent: None,
    });
}

/// Empties the usage recorder once a second, as the server's flusher does
/// (without the database write, which is not on the request path), so the
/// recorder's maps stay as small as in a running server. Stops when dropped.
pub struct Drainer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drainer {
    pub fn start(state: &AppState) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let state = state.clone();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(std::time::Duration::from_secs(1))
            {
                drop(state.core.usage.take());
            }
        });
        Drainer {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
