//! The key cache and its invalidation feed.
//!
//! Verified keys are cached by hash; unknown hashes are cached briefly too so a
//! flood of made-up but well-formed keys cannot hammer the database. Nothing
//! here relies on a TTL for correctness: every key mutation appends to the
//! `key_changes` feed, the instance that made it evicts at once, and every
//! instance tails the feed ([`run_feed`]) and evicts what changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::clock::Clock;
use crate::domain::key::KeyRecord;
use crate::store::Store;

/// How often the feed is polled. A change made elsewhere reaches this
/// instance within this interval plus one query.
pub const FEED_INTERVAL: Duration = Duration::from_millis(250);

/// How often [`run_feed`] runs [`housekeeping`].
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(3600);

/// The caches are keyed by HMACs, which no client can aim at one hash
/// bucket: a fast hasher, not SipHash.
type Fast = foldhash::fast::RandomState;

pub struct KeyCache {
    known: Cache<[u8; 32], Arc<KeyRecord>, Fast>,
    unknown: Cache<[u8; 32], (), Fast>,
    /// Bumped by every eviction. A lookup that started before an eviction does
    /// not store what it read, which may predate the change.
    epoch: AtomicU64,
}

/// What the cache holds for a hash.
pub enum Cached {
    Known(Arc<KeyRecord>),
    Unknown,
    Miss(u64),
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        KeyCache {
            known: Cache::builder()
                .max_capacity(capacity)
                // Not for correctness (the feed is), only to let idle keys go.
                .time_to_idle(Duration::from_secs(3600))
                .build_with_hasher(Fast::default()),
            unknown: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(60))
                .build_with_hasher(Fast::default()),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, hash: &[u8; 32]) -> Cached {
        // Read the epoch first: an eviction after this point invalidates the
        // lookup that follows a miss.
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some(key) = self.known.get(hash) {
            Cached::Known(key)
        } else if self.unknown.contains_key(hash) {
            Cached::Unknown
        } else {
            Cached::Miss(epoch)
        }
    }

    /// Stores a lookup's result unless something was evicted since `epoch`.
    pub fn fill(&self, hash: [u8; 32], found: Option<Arc<KeyRecord>>, epoch: u64) {
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        match found {
            Some(key) => self.known.insert(hash, key),
            None => self.unknown.insert(hash, ()),
        }
    }

    pub fn evict(&self, hash: &[u8; 32]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.known.invalidate(hash);
        self.unknown.invalidate(hash);
    }

    pub fn entry_count(&self) -> u64 {
        self.known.entry_count() + self.unknown.entry_count()
    }
}

/// Tails `key_changes` until `shutdown` resolves, evicting every changed hash.
/// Also prunes feed rows older than a day, once an hour.
pub async fn run_feed(
    store: Arc<dyn Store>,
    cache: Arc<KeyCache>,
    clock: Arc<dyn Clock>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = match store.last_key_change().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the key_changes feed position; starting from 0");
            0
        }
    };
    let mut last_housekeeping = std::time::Instant::now();
    loop {
        // Polls every FEED_INTERVAL, and at once when the store signals a
        // change (PostgreSQL's NOTIFY from another instance or the CLI).
        tokio::select! {
            _ = store.wait_for_change(FEED_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        loop {
            match store.key_changes_since(last, 1000).await {
                Ok(changes) => {
                    for change in &changes {
                        cache.evict(&change.key_hash);
                        last = change.seq;
                    }
                    if changes.len() < 1000 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "key_changes poll failed; retrying");
                    break;
                }
            }
        }
        if last_housekeeping.elapsed() >= HOUSEKEEPING_INTERVAL {
            last_housekeeping = std::time::Instant::now();
            housekeeping(store.as_ref(), clock.now()).await;
        }
    }
}

/// Hourly upkeep, run by [`run_feed`]: feed rows older than a day (every
/// instance has long read them), and web sessions past their expiry (they are
/// refused already; this keeps the table from growing with every login).
pub async fn housekeeping(store: &dyn Store, now: crate::domain::clock::Timestamp) {
    if let Err(e) = store.prune_key_changes(now.plus_seconds(-86_400)).await {
        tracing::warn!(error = %e, "pruning key_changes failed");
    }
    match store.prune_sessions(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "expired web sessions removed"),
        Err(e) => tracing::warn!(error = %e, "pruning expired web sessions failed"),
    }
}
