//! SQLite: the `key_changes` invalidation feed.
//!
//! `seq` is `AUTOINCREMENT`, handed out while the transaction holds SQLite's
//! database write lock (every writer, in this process or another, takes it
//! before writing and keeps it until commit). So `seq` order is commit order,
//! and a tailer reading `seq > last` cannot skip a change that commits later
//! with a smaller number. (PostgreSQL gets the same property from a counter
//! row; see `store::postgres::feed`.)

use async_trait::async_trait;
use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::row::key_change_from_row;
use crate::store::{ChangeFeed, KeyChange, StoreResult};

/// Appends a feed row for each (key id, key hash), in the caller's
/// transaction.
pub(super) async fn record_changes(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &[(&str, &[u8; 32])],
    at: Timestamp,
) -> StoreResult<()> {
    for (id, hash) in keys {
        sqlx::query("INSERT INTO key_changes (key_id, key_hash, changed_at) VALUES ($1, $2, $3)")
            .bind(*id)
            .bind(&hash[..])
            .bind(at.as_micros())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn key_changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<KeyChange>> {
        let rows = sqlx::query(
            "SELECT seq, key_id, key_hash FROM key_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(key_change_from_row).collect()
    }

    async fn last_key_change(&self) -> StoreResult<i64> {
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM key_changes")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?
            .try_get("seq")
            .map_err(map_err)
    }

    async fn prune_key_changes(&self, before: Timestamp) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM key_changes WHERE changed_at < ?1")
            .bind(before.as_micros())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(result.rows_affected())
    }
}
