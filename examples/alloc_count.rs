//! Heap allocations per request through the whole application router (the
//! request context, route tag, key check, handler and response headers;
//! not hyper's connection buffers, which are reused), counted by a wrapper
//! around the server's allocator.
//!
//! ```sh
//! cargo run --release --example alloc_count
//! ```
//!
//! 1,000 keys in a temporary SQLite database; every key is used once to warm
//! the caches, then each request kind is sent 10,000 times, cycling through
//! the keys, and the allocator's counters are read before and after. The
//! request log is not installed, as under `LATCHKEY_LOG=warn`.

use std::alloc::{GlobalAlloc, Layout};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode};
use latchkey::domain::token::Environment;
use tower::ServiceExt;

#[path = "../benches/support/mod.rs"]
mod support;

/// mimalloc (the server's allocator, src/main.rs), counting.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on unchanged to mimalloc; the counters are
// plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is mimalloc's.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEYS: u64 = 1_000;
const REQUESTS: u64 = 10_000;

fn request(path: &str, key: Option<&HeaderValue>) -> Request<Body> {
    let mut req = Request::builder().uri(path);
    if let Some(key) = key {
        req = req.header("x-api-key", key.clone());
    }
    let mut req = req.body(Body::empty()).expect("valid request");
    // The peer address, as the server's listener would give it.
    req.extensions_mut()
        .insert(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    req
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let keys = support::header_values(Environment::Live, KEYS);
    rt.block_on(async {
        support::seed(&path, &support::hasher(), &support::SeedSpec::bench(KEYS)).await?;
        let state = support::open_core(&path).await?;
        let router = latchkey::http::build_router(state.clone());
        let send = |path: &'static str, key: Option<&HeaderValue>, expect: StatusCode| {
            let router = router.clone();
            let req = request(path, key);
            async move {
                let response = router.oneshot(req).await.expect("infallible");
                assert_eq!(response.status(), expect, "{path}");
                // The body is read, as hyper would write it.
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("body");
            }
        };
        let kinds: [(&str, &'static str, bool, StatusCode); 3] = [
            ("GET /healthz (no key)", "/healthz", false, StatusCode::OK),
            ("GET /api/v1/me (keyed)", "/api/v1/me", true, StatusCode::OK),
            (
                "GET /api/v1/keys (keyed, 403: no keys:read)",
                "/api/v1/keys",
                true,
                StatusCode::FORBIDDEN,
            ),
        ];
        for (_, path, keyed, expect) in kinds {
            for key in &keys {
                send(path, keyed.then_some(key), expect).await;
            }
        }
        println!("{:<45} {:>12} {:>14}", "request", "allocations", "bytes");
        for (name, path, keyed, expect) in kinds {
            let (a0, b0) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
            for i in 0..REQUESTS {
                let key = &keys[(i % KEYS) as usize];
                send(path, keyed.then_some(key), expect).await;
            }
            let (a1, b1) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
            println!(
                "{name:<45} {:>12.1} {:>14.0}",
                (a1 - a0) as f64 / REQUESTS as f64,
                (b1 - b0) as f64 / REQUESTS as f64
            );
        }
        anyhow::Ok(())
    })
}
