//! PostgreSQL: key usage counts, written by the batched flush. The port is
//! written once in [`crate::store::shared::usage`]; here is only the SQL that
//! differs by backend.

use std::collections::HashMap;

use sqlx::Transaction;

use super::{Db, PostgresStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::StoreResult;
use crate::store::row::{RowExt, usage_summary_from_row};
use crate::store::usage::*;

/// Adds every minute row older than `cutoff` to its hour and deletes it;
/// returns how many minute rows were moved.
async fn move_minutes_into_hours(tx: &mut Transaction<'_, Db>, cutoff: i64) -> StoreResult<u64> {
    // Moved in one statement: a minute row is either deleted and added to
    // its hour here, or left for next time. A second instance rolling up
    // at the same moment waits for these rows and then finds them gone,
    // so nothing is counted twice.
    let rolled = sqlx::query(
        "WITH moved AS (
             DELETE FROM usage_minutes WHERE minute_start < $1
             RETURNING key_id, minute_start, requests, errors_4xx, errors_5xx
         ), hours AS (
             INSERT INTO usage_hours (key_id, hour_start, requests, errors_4xx, errors_5xx)
             SELECT key_id, (minute_start / $2) * $2, SUM(requests), SUM(errors_4xx), SUM(errors_5xx)
             FROM moved GROUP BY key_id, (minute_start / $2) * $2
             ON CONFLICT (key_id, hour_start) DO UPDATE SET
                requests = usage_hours.requests + excluded.requests,
                errors_4xx = usage_hours.errors_4xx + excluded.errors_4xx,
                errors_5xx = usage_hours.errors_5xx + excluded.errors_5xx
         )
         SELECT COUNT(*) AS n FROM moved",
    )
    .bind(cutoff)
    .bind(HOUR)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?
    .count("n")?;
    Ok(rolled)
}

/// Keeps each key's [`CLIENTS_PER_KEY`] most recent clients.
async fn trim_clients(tx: &mut Transaction<'_, Db>) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM usage_clients u USING (
            SELECT key_id, ip, user_agent,
                   ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY last_used_at DESC) AS n
            FROM usage_clients) r
         WHERE r.n > $1 AND u.key_id = r.key_id AND u.ip = r.ip AND u.user_agent = r.user_agent",
    )
    .bind(CLIENTS_PER_KEY)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

crate::store::shared::usage::usage_store!(PostgresStore, greatest = "GREATEST");

impl PostgresStore {
    /// [`UsageStore::usage_summaries`] for a non-empty `key_ids`.
    async fn summaries(
        &self,
        key_ids: &[String],
        now: Timestamp,
    ) -> StoreResult<HashMap<String, UsageSummary>> {
        let q = sqlx::query(
            "SELECT t.key_id AS key_id, t.last_used_at, t.last_used_ip,
                (COALESCE((SELECT SUM(requests) FROM usage_minutes m WHERE m.key_id = t.key_id AND m.minute_start >= $1), 0)
               + COALESCE((SELECT SUM(requests) FROM usage_hours h WHERE h.key_id = t.key_id AND h.hour_start >= $1), 0))::BIGINT AS day
             FROM usage_totals t WHERE t.key_id = ANY($2)",
        )
        .bind(day_window(now).as_micros())
        .bind(key_ids);
        q.fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(usage_summary_from_row)
            .collect()
    }
}
