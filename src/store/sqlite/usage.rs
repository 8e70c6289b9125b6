//! SQLite: key usage counts, written by the batched flush.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::StoreResult;
use crate::store::row::{
    bucket_from_row, client_seen_from_row, endpoint_usage_from_row, stored_totals_from_row,
    usage_summary_from_row,
};
use crate::store::usage::*;

/// Rows per multi-row upsert: 12 values each at most, well under SQLite's
/// 32,766 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 500;

fn i(n: u64) -> i64 {
    count_value(n)
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn flush_usage(&self, batch: &UsageBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (endpoints, totals) = batch.endpoint_and_total_rows();
        let mut tx = self.write_tx().await?;
        let minutes: Vec<_> = batch.minutes.iter().collect();
        for chunk in minutes.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_minutes (key_id, minute_start, method, route, requests, errors_4xx, errors_5xx) ",
            );
            q.push_values(chunk, |mut row, ((key, minute, endpoint), c)| {
                row.push_bind(key)
                    .push_bind(minute.as_micros())
                    .push_bind(&endpoint.method)
                    .push_bind(&endpoint.route)
                    .push_bind(i(c.requests))
                    .push_bind(i(c.errors_4xx))
                    .push_bind(i(c.errors_5xx));
            });
            q.push(
                " ON CONFLICT (key_id, minute_start, method, route) DO UPDATE SET
                    requests = requests + excluded.requests,
                    errors_4xx = errors_4xx + excluded.errors_4xx,
                    errors_5xx = errors_5xx + excluded.errors_5xx",
            );
            q.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        for chunk in endpoints.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_endpoints (key_id, method, route, requests, errors_4xx, errors_5xx, last_used_at) ",
            );
            q.push_values(chunk, |mut row, e| {
                row.push_bind(e.key_id)
                    .push_bind(&e.endpoint.method)
                    .push_bind(&e.endpoint.route)
                    .push_bind(i(e.counts.requests))
                    .push_bind(i(e.counts.errors_4xx))
                    .push_bind(i(e.counts.errors_5xx))
                    .push_bind(e.last_used_at.as_micros());
            });
            q.push(
                " ON CONFLICT (key_id, method, route) DO UPDATE SET
                    requests = requests + excluded.requests,
                    errors_4xx = errors_4xx + excluded.errors_4xx,
                    errors_5xx = errors_5xx + excluded.errors_5xx,
                    last_used_at = MAX(last_used_at, excluded.last_used_at)",
            );
            q.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        for chunk in totals.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_totals (key_id, requests, errors_4xx, errors_5xx, rejected_revoked, rejected_expired,
                    rejected_retired, rejected_ip, rejected_rate, last_used_at, last_used_ip, last_user_agent) ",
            );
            q.push_values(chunk, |mut row, t| {
                let (c, r, seen) = (t.counts, t.rejected, t.last_seen);
                row.push_bind(t.key_id)
                    .push_bind(i(c.requests))
                    .push_bind(i(c.errors_4xx))
                    .push_bind(i(c.errors_5xx))
                    .push_bind(i(r.revoked))
                    .push_bind(i(r.expired))
                    .push_bind(i(r.retired))
                    .push_bind(i(r.ip_denied))
                    .push_bind(i(r.rate_limited))
                    .push_bind(seen.map(|s| s.at.as_micros()))
                    .push_bind(seen.map(|s| s.ip.as_str()))
                    .push_bind(seen.and_then(|s| s.user_agent.as_deref()));
            });
            q.push(
                " ON CONFLICT (key_id) DO UPDATE SET
                    requests = requests + excluded.requests,
                    errors_4xx = errors_4xx + excluded.errors_4xx,
                    errors_5xx = errors_5xx + excluded.errors_5xx,
                    rejected_revoked = rejected_revoked + excluded.rejected_revoked,
                    rejected_expired = rejected_expired + excluded.rejected_expired,
                    rejected_retired = rejected_retired + excluded.rejected_retired,
                    rejected_ip = rejected_ip + excluded.rejected_ip,
                    rejected_rate = rejected_rate + excluded.rejected_rate,
                    last_user_agent = CASE WHEN excluded.last_used_at >= COALESCE(last_used_at, 0)
                        THEN excluded.last_user_agent ELSE last_user_agent END,
                    last_used_ip = CASE WHEN excluded.last_used_at >= COALESCE(last_used_at, 0)
                        THEN excluded.last_used_ip ELSE last_used_ip END,
                    last_used_at = MAX(COALESCE(last_used_at, 0), COALESCE(excluded.last_used_at, 0))",
            );
            q.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        let clients: Vec<_> = batch.clients.iter().collect();
        for chunk in clients.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_clients (key_id, ip, user_agent, requests, last_used_at) ",
            );
            q.push_values(chunk, |mut row, ((key, ip, agent), (n, at))| {
                row.push_bind(key)
                    .push_bind(ip)
                    .push_bind(agent)
                    .push_bind(i(*n))
                    .push_bind(at.as_micros());
            });
            q.push(
                " ON CONFLICT (key_id, ip, user_agent) DO UPDATE SET
                    requests = requests + excluded.requests,
                    last_used_at = MAX(last_used_at, excluded.last_used_at)",
            );
            q.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn roll_up_usage(&self, now: Timestamp) -> StoreResult<(u64, u64)> {
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

    async fn usage_summaries(
        &self,
        key_ids: &[String],
        now: Timestamp,
    ) -> StoreResult<HashMap<String, UsageSummary>> {
        if key_ids.is_empty() {
            return Ok(HashMap::new());
        }
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

    async fn key_usage(&self, key_id: &str, now: Timestamp) -> StoreResult<KeyUsage> {
        let totals = sqlx::query("SELECT * FROM usage_totals WHERE key_id = ?1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(stored_totals_from_row)
            .transpose()?;
        let endpoints = sqlx::query(
            "SELECT method, route, requests, errors_4xx, errors_5xx, last_used_at FROM usage_endpoints
             WHERE key_id = ?1 ORDER BY requests DESC, method, route",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(endpoint_usage_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let minutes = sqlx::query(
            "SELECT minute_start AS bucket, SUM(requests) AS r, SUM(errors_4xx + errors_5xx) AS e FROM usage_minutes
             WHERE key_id = ?1 AND minute_start >= ?2 GROUP BY minute_start",
        )
        .bind(key_id)
        .bind(KeyUsageRows::first_bucket(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(bucket_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let hours = sqlx::query(
            "SELECT hour_start AS bucket, requests AS r, errors_4xx + errors_5xx AS e FROM usage_hours
             WHERE key_id = ?1 AND hour_start >= ?2",
        )
        .bind(key_id)
        .bind(KeyUsageRows::first_hour(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(bucket_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let clients = sqlx::query(
            "SELECT ip, user_agent, requests, last_used_at FROM usage_clients WHERE key_id = ?1
             ORDER BY last_used_at DESC LIMIT 20",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(client_seen_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(KeyUsageRows {
            totals,
            endpoints,
            minutes,
            hours,
            clients,
        }
        .into_key_usage(now))
    }
}
