//! Logging. `LATCHKEY_LOG` (or `RUST_LOG`) sets the filter, e.g. `info` or
//! `latchkey=debug`. Log lines never carry a key, a password or a query string.
//!
//! The server logs every request at `info`, so a line must cost its request
//! little. It is formatted on the request's thread and appended to a shared
//! buffer (one short lock, no system call); a writer thread writes the
//! buffer to stderr in one `write` every [`LOG_FLUSH_INTERVAL`], or sooner
//! once it holds [`LOG_WAKE_BYTES`]. Writing each line, or waking a writer
//! thread for each line (as `tracing-appender` does), cost the keyed `/me`
//! request about a quarter of its throughput on one core (docs/BENCHMARKS.md).
//! Nothing is dropped: past [`LOG_MAX_BYTES`] unwritten (stderr blocked),
//! requests wait for the writer, as they did when logging was synchronous.
//! What is buffered is written when [`LogGuard`] drops, at the end of
//! `serve`; a crash loses at most the last [`LOG_FLUSH_INTERVAL`] of lines.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::domain::clock::{Clock, SystemClock};

/// How often the writer thread writes what has been logged.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// The writer is woken early once this much is waiting.
pub const LOG_WAKE_BYTES: usize = 64 * 1024;
/// Past this much unwritten, logging waits for the writer.
pub const LOG_MAX_BYTES: usize = 8 * 1024 * 1024;

/// The line's time, RFC 3339 in UTC with microseconds as the default timer
/// writes it, by the server's own formatter (cheaper than the default timer).
struct LineTime;

impl FormatTime for LineTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", SystemClock.now())
    }
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer (early, or to finish).
    wake: Condvar,
    /// Wakes loggers waiting for room.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic mid-append leaves at worst a partial line: keep logging.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The subscriber's writer: appends each formatted line to the buffer.
#[derive(Clone)]
struct BatchedStderr(Arc<Shared>);

impl Write for &BatchedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &*self.0;
        let mut pending = shared.lock();
        while pending.bytes.len() >= LOG_MAX_BYTES && !pending.closed {
            shared.wake.notify_one();
            pending = shared
                .drained
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let before = pending.bytes.len();
        pending.bytes.extend_from_slice(line);
        if before < LOG_WAKE_BYTES && pending.bytes.len() >= LOG_WAKE_BYTES {
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = &'a BatchedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// The writer thread: swaps the buffer out and writes it, until closed.
fn write_batches(shared: &Shared) {
    let mut stderr = std::io::stderr();
    let mut spare = Vec::with_capacity(LOG_WAKE_BYTES);
    loop {
        let mut pending = shared.lock();
        if pending.bytes.len() < LOG_WAKE_BYTES && !pending.closed {
            pending = shared
                .wake
                .wait_timeout(pending, LOG_FLUSH_INTERVAL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut pending.bytes, &mut spare);
        let closed = pending.closed;
        drop(pending);
        shared.drained.notify_all();
        if !spare.is_empty() {
            // Nowhere to report a failed write to stderr: the lines are lost.
            let _ = stderr.write_all(&spare);
            let _ = stderr.flush();
            spare.clear();
        }
        if closed {
            return;
        }
    }
}

/// Keeps the writer thread; dropping it writes out what is buffered.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Option<(Arc<Shared>, std::thread::JoinHandle<()>)>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((shared, writer)) = self.0.take() {
            shared.lock().closed = true;
            shared.wake.notify_one();
            shared.drained.notify_all();
            let _ = writer.join();
        }
    }
}

/// Installs the global subscriber; `verbose` (the server) logs at `info`,
/// other commands only warnings, on stderr so `--json` output stays clean.
/// The server's lines go through the writer thread; other commands log a
/// handful of lines and write them directly.
pub fn init(verbose: bool) -> LogGuard {
    let default = if verbose { "info" } else { "warn" };
    let filter = std::env::var("LATCHKEY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_timer(LineTime);
    if !verbose {
        let _ = builder.with_writer(std::io::stderr).try_init();
        return LogGuard(None);
    }
    let shared = Arc::new(Shared::default());
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("latchkey-log".into())
            .spawn(move || write_batches(&shared))
    };
    let guard = match writer {
        Ok(writer) => LogGuard(Some((shared.clone(), writer))),
        Err(e) => {
            eprintln!("latchkey: cannot start the log writer thread ({e}); logging directly");
            let _ = builder.with_writer(std::io::stderr).try_init();
            return LogGuard(None);
        }
    };
    // Fails only when a subscriber is installed already (in-process tests):
    // that one is kept, and the guard ends the unused thread.
    let _ = builder.with_writer(BatchedStderr(shared)).try_init();
    guard
}
