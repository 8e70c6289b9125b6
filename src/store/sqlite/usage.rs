//! SQLite: key usage counts, written by the batched flush. The port is
//! written once in [`crate::store::shared::usage`]; here is only the SQL that
//! differs by backend.

use std::collections::HashMap;

use super::{Db, SqliteStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::StoreResult;
use crate::store::row::usage_summary_from_row;
use crate::store::usage::*;

crate::store::shared::usage::usage_store!(SqliteStore, greatest = "MAX");

impl SqliteStore {
    /// Moves minute rows older than an hour into their hours, drops hours
    /// past retention and trims each key's client list.
    async fn roll_up(&self, now: Timestamp) -> StoreResult<(u64, u64)> {
        let cutoff = minute_start(now).as_micros() - 60 * MINUTE;
        let retention = now.as_micros() - RETENTION_DAYS * 24 * HOUR;
        let mut tx = self.write_tx().await?;
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
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let rolled = sqlx::query("DELETE FROM usage_minutes WHERE minute_start < ?1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        let dropped = sqlx::query("DELETE FROM usage_hours WHERE hour_start < ?1")
            .bind(retention)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query(
            "DELETE FROM usage_clients WHERE rowid IN (
                SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY last_used_at DESC) AS n
                                   FROM usage_clients) WHERE n > ?1)",
        )
        .bind(CLIENTS_PER_KEY)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok((rolled, dropped))
    }

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
