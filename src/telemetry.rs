//! Logging. `LATCHKEY_LOG` (or `RUST_LOG`) sets the filter, e.g. `info` or
//! `latchkey=debug`. Log lines never carry a key, a password or a query string.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `verbose` (the server) logs at `info`,
/// other commands only warnings, on stderr so `--json` output stays clean.
pub fn init(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = std::env::var("LATCHKEY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
