//! The keyed request path, warm cache: `cargo bench --bench verify`.
//!
//! Groups (each id is `group/function`):
//! - `keys_1k`: 1,000 keys in the database, all active (requests cycle
//!   through them).
//!   - `parse`: prefix, length, alphabet, CRC-32 checksum.
//!   - `hmac`: HMAC-SHA256 of a key with the server secret.
//!   - `malformed`: `Core::verify` of a key with a wrong checksum (refused
//!     before any hashing).
//!   - `verify`: `Core::verify` (parse, hash, cache, status, allowed IPs).
//!   - `calls`: the functions the middleware calls, called directly: key
//!     extraction, `Core::verify`, the rate limit, the permission check and
//!     the usage bump (no router, no response headers).
//!   - `middleware`: one request through the real `require_key` middleware
//!     (its permission check reads the permission table): everything above plus the
//!     rate limit, the permission check and whatever else the middleware does
//!     per request (usage recording).
//!   - `baseline`: the same request through the same router without the
//!     middleware. `middleware - baseline` is the cost of authentication.
//! - `keys_1m`: 1,000,000 keys in the database, 100,000 of them active (warm):
//!   `verify`, `calls`, `middleware`, `baseline`, and `verify_hot1k` (the
//!   same warm cache, requests cycling through 1,000 of its keys only).
//!
//! A thread empties the usage recorder once a second, as the server's flusher
//! does, so its maps stay the size they have in a running server.
//!
//! After the run a summary (medians, auth cost, 1M/1k ratios) is printed and
//! written to `target/criterion/latchkey-summary.txt`.
//!
//! Environment: `LATCHKEY_BENCH_SCALE_KEYS` (default 1000000; 0 skips the
//! scale group), `LATCHKEY_BENCH_SCALE_ACTIVE` (default 100000).
//! `cargo test --benches` runs each benchmark once, without the scale group.

/// The server's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use latchkey::AppState;
use latchkey::auth::verify::KeySource;
use latchkey::domain::token::{self, Environment};
use tokio::runtime::Runtime;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A database of `total` keys in a fresh temporary directory.
fn seeded(rt: &Runtime, total: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let started = Instant::now();
    rt.block_on(support::seed(
        &path,
        &support::hasher(),
        &support::SeedSpec::bench(total),
    ))
    .expect("seeding");
    eprintln!(
        "seeded {total} keys in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    (dir, path)
}

/// A fresh core over `path` with keys `0..active` warm: a new rate limiter
/// and usage recorder for every benchmark, so none inherits another's state.
fn warm_state(rt: &Runtime, path: &Path, keys: &[HeaderValue]) -> AppState {
    rt.block_on(async {
        let state = support::open_core(path).await.expect("open core");
        support::warm(&state, keys).await;
        state
    })
}

/// Runs one benchmark per function of the request path over `keys`.
fn request_path(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    path: &Path,
    keys: &[HeaderValue],
    all: bool,
) {
    let plain: Vec<String> = keys
        .iter()
        .map(|k| k.to_str().expect("ASCII").to_owned())
        .collect();
    let n = keys.len();
    let ip = support::client_ip();

    if all {
        group.bench_function("parse", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                token::classify(black_box(&plain[i])).expect("well-formed")
            });
        });
        let hasher = support::hasher();
        group.bench_function("hmac", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                hasher.hash(black_box(&plain[i]))
            });
        });
    }

    let state = warm_state(rt, path, keys);
    if all {
        // Every character valid, the checksum wrong: the costliest refusal.
        let malformed: Vec<String> = plain
            .iter()
            .map(|k| {
                let mut k = k.clone();
                let last = if k.ends_with('0') { "1" } else { "0" };
                k.replace_range(k.len() - 1.., last);
                k
            })
            .collect();
        let state = &state;
        group.bench_function("malformed", |b| {
            let mut i = 0;
            b.to_async(rt).iter(|| {
                i = (i + 1) % n;
                let key = &malformed[i];
                async move {
                    let verdict = state
                        .core
                        .verify(black_box(key), KeySource::Header, ip)
                        .await;
                    assert!(verdict.is_err());
                }
            });
        });
    }
    {
        let state = &state;
        let plain = &plain;
        group.bench_function("verify", |b| {
            let mut i = 0;
            b.to_async(rt).iter(|| {
                i = (i + 1) % n;
                let key = &plain[i];
                async move {
                    state
                        .core
                        .verify(black_box(key), KeySource::Header, ip)
                        .await
                        .expect("valid key")
                }
            });
        });
    }
    if !all {
        // The same warm cache, but requests cycle through 1,000 of its keys
        // only: separates the size of the working set (CPU caches) from the
        // number of keys stored.
        let state = &state;
        let hot = &plain[..n.min(1_000)];
        group.bench_function("verify_hot1k", |b| {
            let mut i = 0;
            b.to_async(rt).iter(|| {
                i = (i + 1) % hot.len();
                let key = &hot[i];
                async move {
                    state
                        .core
                        .verify(black_box(key), KeySource::Header, ip)
                        .await
                        .expect("valid key")
                }
            });
        });
    }
    drop(state);

    let state = warm_state(rt, path, keys);
    let drainer = support::Drainer::start(&state);
    let headers = support::header_maps(keys);
    {
        let state = &state;
        let headers = &headers;
        group.bench_function("calls", |b| {
            let mut i = 0;
            b.to_async(rt).iter(|| {
                i = (i + 1) % n;
                let h = &headers[i];
                async move { support::calls(state, h).await }
            });
        });
    }
    drop(drainer);
    drop(state);

    let state = warm_state(rt, path, keys);
    let _drainer = support::Drainer::start(&state);
    let router = support::keyed_router();
    {
        let (state, router) = (&state, &router);
        group.bench_function("middleware", |b| {
            let mut i = 0;
            b.to_async(rt).iter(|| {
                i = (i + 1) % n;
                let key = &keys[i];
                async move { support::call(router, state, key).await }
            });
        });
    }
    let router = support::baseline_router();
    {
        let (state, router) = (&state, &router);
        group.bench_function("baseline", |b| {
            let mut i = 0;
            b.to_async(rt).iter(|| {
                i = (i + 1) % n;
                let key = &keys[i];
                async move { support::call(router, state, key).await }
            });
        });
    }
}

/// The 1M/1k ratios again, robust to the machine's load drifting between
/// the two groups: both states live side by side and the same operation is
/// timed on one, then the other, in alternation (`rounds` rounds of
/// `per_round` operations each); the median of the per-round ratios is kept.
fn interleaved(
    rt: &Runtime,
    small: (&Path, &[HeaderValue]),
    large: (&Path, &[HeaderValue]),
) -> Vec<String> {
    let rounds = env_u64("LATCHKEY_BENCH_AB_ROUNDS", 31) as usize;
    let per_round = env_u64("LATCHKEY_BENCH_AB_PER_ROUND", 20_000) as usize;
    let states = [
        warm_state(rt, small.0, small.1),
        warm_state(rt, large.0, large.1),
    ];
    let drainers: Vec<_> = states.iter().map(support::Drainer::start).collect();
    let sets = [small.1, large.1];
    let plain: Vec<Vec<String>> = sets
        .iter()
        .map(|keys| {
            keys.iter()
                .map(|k| k.to_str().expect("ASCII").to_owned())
                .collect()
        })
        .collect();
    let headers: Vec<Vec<axum::http::HeaderMap>> =
        sets.iter().map(|k| support::header_maps(k)).collect();
    let router = support::keyed_router();
    let ip = support::client_ip();
    let mut offset = [0usize; 2];
    let mut lines = vec![format!(
        "interleaved A/B, {rounds} rounds of {per_round} operations on each state (median of per-round ratios):"
    )];
    for op in ["verify", "calls", "middleware"] {
        let mut ratios = Vec::with_capacity(rounds);
        let mut per_op = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            let mut ns = [0f64; 2];
            for s in 0..2 {
                let state = &states[s];
                let n = sets[s].len();
                let started = Instant::now();
                rt.block_on(async {
                    for j in 0..per_round {
                        let i = (offset[s] + j) % n;
                        match op {
                            "verify" => {
                                black_box(
                                    state
                                        .core
                                        .verify(&plain[s][i], KeySource::Header, ip)
                                        .await
                                        .expect("valid key"),
                                );
                            }
                            "calls" => support::calls(state, &headers[s][i]).await,
                            _ => support::call(&router, state, &sets[s][i]).await,
                        }
                    }
                });
                ns[s] = started.elapsed().as_nanos() as f64 / per_round as f64;
                offset[s] = (offset[s] + per_round) % n;
                per_op[s].push(ns[s]);
            }
            ratios.push(ns[1] / ns[0]);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        lines.push(format!(
            "  {op:<10} 1k {:>6.0} ns, 1M {:>6.0} ns, ratio 1M/1k {:.2}  (target <= 1.2)",
            median(&mut per_op[0]),
            median(&mut per_op[1]),
            median(&mut ratios)
        ));
    }
    drop(drainers);
    lines
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // target/release/deps/verify-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The median of one benchmark's last run, in nanoseconds.
fn median_ns(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let text =
        std::fs::read_to_string(dir.join(group).join(function).join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn summary(dir: &Path, scale: Option<(u64, u64)>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        println!("{s}");
        out.push_str(&s);
        out.push('\n');
    };
    let get = |g: &str, f: &str| median_ns(dir, g, f);
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |ns| format!("{ns:.0} ns"));
    line("== latchkey verify benchmark: medians ==".into());
    let mut groups = vec![("keys_1k", "1,000 keys, all active".to_owned())];
    if let Some((total, active)) = scale {
        groups.push(("keys_1m", format!("{total} keys, {active} active")));
    }
    for (g, what) in &groups {
        line(format!("[{g}] {what}"));
        for f in [
            "parse",
            "hmac",
            "malformed",
            "verify",
            "verify_hot1k",
            "calls",
            "middleware",
            "baseline",
        ] {
            if let Some(v) = get(g, f) {
                line(format!("  {f:<11} {}", fmt(Some(v))));
            }
        }
        if let Some(v) = get(g, "calls") {
            line(format!(
                "  whole verify path, direct calls: {v:.0} ns  (target <= 2000 ns)"
            ));
        }
        if let (Some(m), Some(b)) = (get(g, "middleware"), get(g, "baseline")) {
            line(format!(
                "  auth cost (middleware - baseline) {:.0} ns  (target <= 2000 ns)",
                m - b
            ));
        }
    }
    if scale.is_some() {
        let ratio = |f: &str| -> Option<f64> { Some(get("keys_1m", f)? / get("keys_1k", f)?) };
        let auth = |g: &str| -> Option<f64> { Some(get(g, "middleware")? - get(g, "baseline")?) };
        for f in ["verify", "calls", "middleware"] {
            if let Some(r) = ratio(f) {
                line(format!("  ratio 1M/1k {f:<10} {r:.2}  (target <= 1.2)"));
            }
        }
        if let (Some(a), Some(b)) = (get("keys_1m", "verify_hot1k"), get("keys_1k", "verify")) {
            line(format!(
                "  ratio 1M (1,000 of them hot)/1k verify {:.2}  (stored keys alone)",
                a / b
            ));
        }
        if let (Some(a), Some(b)) = (auth("keys_1m"), auth("keys_1k")) {
            line(format!(
                "  ratio 1M/1k auth cost: {:.2}  (target <= 1.2)",
                a / b
            ));
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benchmarking = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = runtime();

    let small = if benchmarking { 1_000 } else { 100 };
    let (_dir_1k, path_1k) = seeded(&rt, small);
    let keys = support::header_values(Environment::Live, small);
    {
        let mut group = c.benchmark_group("keys_1k");
        request_path(&mut group, &rt, &path_1k, &keys, true);
        group.finish();
    }

    let total = env_u64("LATCHKEY_BENCH_SCALE_KEYS", 1_000_000);
    let active = env_u64("LATCHKEY_BENCH_SCALE_ACTIVE", 100_000).min(total);
    let scale = (benchmarking && total > 0 && active > 0).then_some((total, active));
    let mut ab = Vec::new();
    if let Some((total, active)) = scale {
        let (_dir_1m, path_1m) = seeded(&rt, total);
        let keys_1m = support::header_values(Environment::Live, active);
        {
            let mut group = c.benchmark_group("keys_1m");
            request_path(&mut group, &rt, &path_1m, &keys_1m, false);
            group.finish();
        }
        if !args.iter().any(|a| a == "--list") {
            ab = interleaved(&rt, (&path_1k, &keys), (&path_1m, &keys_1m));
        }
    }

    c.final_summary();
    if benchmarking {
        let mut text = summary(&dir, scale);
        for line in &ab {
            println!("{line}");
            text.push_str(line);
            text.push('\n');
        }
        let _ = std::fs::write(dir.join("latchkey-summary.txt"), text);
    }
}
