//! PostgreSQL: recording changes on the `key_changes` invalidation feed, and
//! `LISTEN/NOTIFY` as its wake-up; its reads are written once in
//! [`crate::store::shared::feed`].
//!
//! # Why a tailer never skips a change
//!
//! A plain sequence would not do: numbers are handed out when a transaction
//! inserts, not when it commits, so a tailer that has read seq 101 (committed)
//! would never look back at seq 100 committing a moment later. Here `seq`
//! comes from the single row of `key_change_sequence`, bumped with
//! `UPDATE … RETURNING` in the writing transaction. That row stays locked until
//! the transaction ends, and PostgreSQL makes a commit visible before it
//! releases the transaction's locks. So the next writer gets its number only
//! after the previous one is visible (or rolled back, in which case the number
//! is handed out again): `seq` order is commit order, the feed has no holes a
//! reader could pass, and `seq > last` is exact.
//!
//! The price is that key mutations queue on that row from their feed insert to
//! their commit. Every mutation therefore records its changes last, after its
//! audit events, so the lock is held for one statement and a commit. Key
//! mutations are administrative (people and integrations changing keys, not
//! the keyed request path), so this is far from a limit.
//!
//! # Wake-up
//!
//! The same statement calls `pg_notify('latchkey_key_changes', '')`, which
//! PostgreSQL delivers at commit. [`ChangeFeed::wait_for_change`](crate::store::ChangeFeed::wait_for_change) returns on
//! such a notification, so other instances evict within milliseconds. It is a
//! hint only: notifications are lost while the listening connection is down
//! (it reconnects by itself), and the tailer polls every 250 ms regardless.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::{Postgres, Transaction};
use tokio::sync::Notify;

use super::{PostgresStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::StoreResult;

/// The `NOTIFY` channel every instance listens on.
const CHANNEL: &str = "latchkey_key_changes";

/// Appends a feed row for each (key id, key hash), in the caller's
/// transaction, and the notification that wakes other instances at commit.
/// Call it as the last statement before commit (see the module
/// documentation).
pub(super) async fn record_changes(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[(&str, &[u8; 32])],
    at: Timestamp,
) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
    let hashes: Vec<&[u8]> = keys.iter().map(|(_, h)| &h[..]).collect();
    sqlx::query(
        "WITH n AS (
             UPDATE key_change_sequence SET last = last + cardinality($1::TEXT[]) WHERE id = 1
             RETURNING last
         ), added AS (
             INSERT INTO key_changes (seq, key_id, key_hash, changed_at)
             SELECT n.last - cardinality($1::TEXT[]) + k.ord, k.id, k.hash, $3
             FROM n, UNNEST($1::TEXT[], $2::BYTEA[]) WITH ORDINALITY AS k (id, hash, ord)
         )
         SELECT pg_notify('latchkey_key_changes', '')",
    )
    .bind(&ids)
    .bind(&hashes)
    .bind(at.as_micros())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The `LISTEN` task of a store; stops when dropped with the store.
pub(super) struct ListenerTask(tokio::task::AbortHandle);

impl ListenerTask {
    pub(super) fn spawn(pool: PgPool, wake: Arc<Notify>) -> Self {
        ListenerTask(tokio::spawn(listen(pool, wake)).abort_handle())
    }
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Listens on [`CHANNEL`] for as long as the store lives, waking the tailer
/// on every notification, and reconnecting (quietly: the tailer's polls go on
/// meanwhile) whenever the connection is lost.
async fn listen(pool: PgPool, wake: Arc<Notify>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    // Changes made while nobody listened: look now.
                    wake.notify_one();
                    loop {
                        match listener.recv().await {
                            Ok(_) => wake.notify_one(),
                            Err(e) => {
                                tracing::debug!(error = %e, "key_changes listener lost its connection");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "LISTEN on key_changes failed"),
            },
            Err(e) => tracing::debug!(error = %e, "key_changes listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

crate::store::shared::feed::change_feed!(PostgresStore, {
    async fn wait_for_change(&self, max: Duration) {
        self.listener
            .get_or_init(|| ListenerTask::spawn(self.pool.clone(), self.feed_wake.clone()));
        // Timing out is the ordinary case: nothing changed.
        let _ = tokio::time::timeout(max, self.feed_wake.notified()).await;
    }
});
