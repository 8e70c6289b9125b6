//! Seeds many keys into a latchkey data directory, fast (one transaction of
//! prepared multi-row inserts), for `bench/scale.sh` and `bench/load.sh`.
//!
//! ```sh
//! latchkey --data-dir DIR migrate          # creates the database and secret.key
//! cargo run --release --example seed_keys -- DIR 1000000 100000 keys.txt
//! ```
//!
//! Arguments: the data directory (its `latchkey.db` and `secret.key` are
//! used), how many keys to create, how many of them to write (one per line,
//! the full key) to the output file, and the output file. Keys have 10,000
//! requests per minute, `orders:read clients:read devices:read`, any client
//! address, and are spread over shops of 1,000 keys each.

#[path = "../benches/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::domain::token::Environment;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, total, plain, out] = &args[..] else {
        anyhow::bail!("usage: seed_keys <data-dir> <keys> <keys-to-print> <output-file>");
    };
    let dir = PathBuf::from(dir);
    let total: u64 = total.parse()?;
    let plain: u64 = plain.parse::<u64>()?.min(total);
    let secret = ServerSecret::read_file(&dir.join("secret.key")).map_err(anyhow::Error::msg)?;
    let hasher = KeyHasher::new(&secret);
    let spec = support::SeedSpec {
        allowed_ips: String::new(),
        ..support::SeedSpec::bench(total)
    };
    let started = Instant::now();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(support::seed(&dir.join("latchkey.db"), &hasher, &spec))?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for i in 0..plain {
        writeln!(file, "{}", support::key_for(Environment::Live, i))?;
    }
    file.flush()?;
    eprintln!(
        "seeded {total} keys in {:.1} s; {plain} of them written to {out}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
