//! SQLite: key usage counts, written by the batched flush. The port is
//! written once in [`crate::store::shared::usage`]; here is only the SQL that
//! differs by backend.

use std::collections::HashMap;

use sqlx::Transaction;

use super::{Db, SqliteStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::StoreResult;
use crate::store::row::usage_summary_from_row;
use crate::store::usage::*;

/// Adds every minute row older than `cutoff` to its hour and deletes it;
/// returns how many minute rows were moved.
async fn move_minutes_into_hours(tx: &mut Transaction<'_, Db>, cutoff: i64) -> StoreResult<u64> {
    sqlx::query(
        "INSERT INTO usage_hours (key_id, hour_start, requests, errors_4xx, errors_5xx)
         SELECT key_id, (minute_start / ?2) * ?2, SUM(requests), SUM(errors_4xx), SUM(errors_5xx)
         FROM usage_minutes WHERE minute_start < ?1 GROUP BY key_id, (minute_start / ?2) * ?2
         ON CONFLICT (key_id, hour_start) DO UPDATE SET
            requests = requests + excluded.requests,
            errors_4xx = errors_4xx + excluded.errors_4xx,
            errors_5xx = errors_5xx + excluded.errors_5xx",
    )
    .bind(cutoff)
    .bind(HOUR)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    let rolled = sqlx::query("DELETE FROM usage_minutes WHERE minute_start < ?1")
        .bind(cutoff)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    Ok(rolled)
}

/// Keeps each key's [`CLIENTS_PER_KEY`] most recent clients.
async fn trim_clients(tx: &mut Transaction<'_, Db>) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM usage_clients WHERE rowid IN (
            SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY last_used_at DESC) AS n
                               FROM usage_clients) WHERE n > ?1)",
    )
    .bind(CLIENTS_PER_KEY)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

crate::store::shared::usage::usage_store!(SqliteStore, greatest = "MAX");

impl SqliteStore {
    /// [`UsageStore::usage_summaries`] for a non-empty `key_ids`.
    async fn summaries(
        &self,
        key_ids: &[String],
        now: Timestamp,
    ) -> StoreResult<HashMap<String, UsageSummary>> {
        let marks = (1..=key_ids.len())
            .map(|n| format!("?{}", n + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT t.key_id AS key_id, t.last_used_at, t.last_used_ip,
                COALESCE((SELECT SUM(requests) FROM usage_minutes m WHERE m.key_id = t.key_id AND m.minute_start >= ?1), 0)
              + COALESCE((SELECT SUM(requests) FROM usage_hours h WHERE h.key_id = t.key_id AND h.hour_start >= ?1), 0) AS day
             FROM usage_totals t WHERE t.key_id IN ({marks})"
        );
        let mut q = sqlx::query(&sql).bind(day_window(now).as_micros());
        for id in key_ids {
            q = q.bind(id);
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(usage_summary_from_row)
            .collect()
    }
}
