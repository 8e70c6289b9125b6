//! N warm runs of one part of the keyed request path, for instruction counts
//! under callgrind (`bench/callgrind.sh`); the same code as `benches/verify.rs`.
//!
//! ```sh
//! cargo run --release --example verify_once -- <what> <n>
//! ```
//!
//! `what`: `parse`, `hmac`, `malformed`, `verify`, `calls`, `middleware` or
//! `baseline`
//! (see `benches/verify.rs`). Setup (1,000 keys in a temporary SQLite
//! database, one warm-up pass) is the same whatever `n` is, so the difference
//! between two runs with different `n` is the cost of the extra iterations.

/// The server's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/support/mod.rs"]
mod support;

use std::hint::black_box;

use latchkey::auth::verify::KeySource;
use latchkey::domain::token::{self, Environment};

const KEYS: u64 = 1_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: verify_once <parse|hmac|malformed|verify|calls|middleware|baseline> <n>";
    let what = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let n: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let keys = support::header_values(Environment::Live, KEYS);
    let plain: Vec<String> = keys
        .iter()
        .map(|k| k.to_str().expect("ASCII").to_owned())
        .collect();
    let malformed: Vec<String> = plain
        .iter()
        .map(|k| {
            let mut k = k.clone();
            let last = if k.ends_with('0') { "1" } else { "0" };
            k.replace_range(k.len() - 1.., last);
            k
        })
        .collect();
    let ip = support::client_ip();
    rt.block_on(async {
        support::seed(&path, &support::hasher(), &support::SeedSpec::bench(KEYS)).await?;
        let state = support::open_core(&path).await?;
        support::warm(&state, &keys).await;
        let hasher = support::hasher();
        let keyed = support::keyed_router();
        let baseline = support::baseline_router();
        let k = keys.len();
        match what.as_str() {
            "parse" => {
                for i in 0..n {
                    black_box(token::classify(black_box(&plain[i % k])).is_ok());
                }
            }
            "hmac" => {
                for i in 0..n {
                    black_box(hasher.hash(black_box(&plain[i % k])));
                }
            }
            "malformed" => {
                for i in 0..n {
                    let verdict = state
                        .core
                        .verify(black_box(&malformed[i % k]), KeySource::Header, ip)
                        .await;
                    assert!(verdict.is_err());
                }
            }
            "verify" => {
                for i in 0..n {
                    black_box(
                        state
                            .core
                            .verify(black_box(&plain[i % k]), KeySource::Header, ip)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    );
                }
            }
            "calls" => {
                let _drainer = support::Drainer::start(&state);
                let headers = support::header_maps(&keys);
                for i in 0..n {
                    support::calls(&state, &headers[i % k]).await;
                }
            }
            "middleware" => {
                for i in 0..n {
                    support::call(&keyed, &state, &keys[i % k]).await;
                }
            }
            "baseline" => {
                for i in 0..n {
                    support::call(&baseline, &state, &keys[i % k]).await;
                }
            }
            other => anyhow::bail!("unknown part `{other}`; {usage}"),
        }
        anyhow::Ok(())
    })
}
