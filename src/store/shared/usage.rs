//! The [`UsageStore`](crate::store::usage::UsageStore) port (key usage counts,
//! written by the batched flush), written once for both backends.
//!
//! `usage_store!(SqliteStore, greatest = "MAX")` in `store::sqlite::usage` and
//! `usage_store!(PostgresStore, greatest = "GREATEST")` in
//! `store::postgres::usage` expand it into each backend's `impl UsageStore`;
//! `greatest` names the backend's two-argument maximum. The invoking module
//! provides `Db`, `map_err`, the store's `write_tx()` and `pool`, and the
//! three pieces whose SQL genuinely differs: `move_minutes_into_hours(tx,
//! cutoff)` (PostgreSQL moves minute rows in one `DELETE … RETURNING`
//! statement, which SQLite cannot put in a `WITH`), `trim_clients(tx)` (rows
//! named by `rowid` against by their key) and the store's
//! `summaries(key_ids, now)` (a bound array against a list of placeholders).

use crate::store::usage::count_value;

/// Rows per multi-row upsert: 12 values each at most, well under SQLite's
/// 32,766 and PostgreSQL's 65,535 bound parameters per statement.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

pub(crate) fn i(n: u64) -> i64 {
    count_value(n)
}

macro_rules! usage_store {
    ($Store:ident, greatest = $greatest:literal) => {
        const _: () = {
            use std::collections::HashMap;

            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::domain::clock::Timestamp;
            use $crate::store::StoreResult;
            use $crate::store::row::{
                bucket_from_row, client_seen_from_row, endpoint_usage_from_row, stored_totals_from_row,
            };
            use $crate::store::shared::usage::{ROWS_PER_STATEMENT, i};
            use $crate::store::usage::*;

            #[async_trait]
            impl UsageStore for $Store {
                async fn flush_usage(&self, batch: &UsageBatch) -> StoreResult<()> {
                    if batch.is_empty() {
                        return Ok(());
                    }
                    // Every row in one order (by key first), so two instances flushing
                    // overlapping keys lock rows in the same order and never deadlock.
                    let (mut endpoints, mut totals) = batch.endpoint_and_total_rows();
                    endpoints.sort_unstable_by(|a, b| {
                        (a.key_id, &a.endpoint.method, &a.endpoint.route).cmp(&(
                            b.key_id,
                            &b.endpoint.method,
                            &b.endpoint.route,
                        ))
                    });
                    totals.sort_unstable_by(|a, b| a.key_id.cmp(b.key_id));
                    let mut minutes: Vec<_> = batch.minutes.iter().collect();
                    minutes.sort_unstable_by(|(a, _), (b, _)| {
                        (&a.0, a.1, &a.2.method, &a.2.route).cmp(&(&b.0, b.1, &b.2.method, &b.2.route))
                    });
                    let mut daily: Vec<_> = batch.daily.iter().collect();
                    daily.sort_unstable_by(|(a, _), (b, _)| {
                        (&a.0, a.1, &a.2.method, &a.2.route, &a.3).cmp(&(&b.0, b.1, &b.2.method, &b.2.route, &b.3))
                    });
                    let mut clients: Vec<_> = batch.clients.iter().collect();
                    clients.sort_unstable_by_key(|(a, _)| *a);
                    let mut tx = self.write_tx().await?;
                    for chunk in minutes.chunks(ROWS_PER_STATEMENT) {
                        let mut q = QueryBuilder::<Db>::new(
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
                                requests = usage_minutes.requests + excluded.requests,
                                errors_4xx = usage_minutes.errors_4xx + excluded.errors_4xx,
                                errors_5xx = usage_minutes.errors_5xx + excluded.errors_5xx",
                        );
                        q.build().execute(&mut *tx).await.map_err(map_err)?;
                    }
                    for chunk in endpoints.chunks(ROWS_PER_STATEMENT) {
                        let mut q = QueryBuilder::<Db>::new(
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
                        q.push(concat!(
                            " ON CONFLICT (key_id, method, route) DO UPDATE SET
                                requests = usage_endpoints.requests + excluded.requests,
                                errors_4xx = usage_endpoints.errors_4xx + excluded.errors_4xx,
                                errors_5xx = usage_endpoints.errors_5xx + excluded.errors_5xx,
                                last_used_at = ", $greatest, "(usage_endpoints.last_used_at, excluded.last_used_at)"
                        ));
                        q.build().execute(&mut *tx).await.map_err(map_err)?;
                    }
                    for chunk in totals.chunks(ROWS_PER_STATEMENT) {
                        let mut q = QueryBuilder::<Db>::new(
                            "INSERT INTO usage_totals (key_id, requests, errors_4xx, errors_5xx, rejected_revoked, rejected_expired,
                                rejected_retired, rejected_ip, rejected_rate, rejected_paused, last_used_at, last_used_ip, last_user_agent) ",
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
                                .push_bind(i(r.paused))
                                .push_bind(seen.map(|s| s.at.as_micros()))
                                .push_bind(seen.map(|s| s.ip.as_str()))
                                .push_bind(seen.and_then(|s| s.user_agent.as_deref()));
                        });
                        q.push(concat!(
                            " ON CONFLICT (key_id) DO UPDATE SET
                                requests = usage_totals.requests + excluded.requests,
                                errors_4xx = usage_totals.errors_4xx + excluded.errors_4xx,
                                errors_5xx = usage_totals.errors_5xx + excluded.errors_5xx,
                                rejected_revoked = usage_totals.rejected_revoked + excluded.rejected_revoked,
                                rejected_expired = usage_totals.rejected_expired + excluded.rejected_expired,
                                rejected_retired = usage_totals.rejected_retired + excluded.rejected_retired,
                                rejected_ip = usage_totals.rejected_ip + excluded.rejected_ip,
                                rejected_rate = usage_totals.rejected_rate + excluded.rejected_rate,
                                rejected_paused = usage_totals.rejected_paused + excluded.rejected_paused,
                                last_user_agent = CASE WHEN excluded.last_used_at >= COALESCE(usage_totals.last_used_at, 0)
                                    THEN excluded.last_user_agent ELSE usage_totals.last_user_agent END,
                                last_used_ip = CASE WHEN excluded.last_used_at >= COALESCE(usage_totals.last_used_at, 0)
                                    THEN excluded.last_used_ip ELSE usage_totals.last_used_ip END,
                                last_used_at = ", $greatest, "(COALESCE(usage_totals.last_used_at, 0), COALESCE(excluded.last_used_at, 0))"
                        ));
                        q.build().execute(&mut *tx).await.map_err(map_err)?;
                    }
                    for chunk in clients.chunks(ROWS_PER_STATEMENT) {
                        let mut q = QueryBuilder::<Db>::new(
                            "INSERT INTO usage_clients (key_id, ip, user_agent, requests, last_used_at) ",
                        );
                        q.push_values(chunk, |mut row, ((key, ip, agent), (n, at))| {
                            row.push_bind(key)
                                .push_bind(ip)
                                .push_bind(agent)
                                .push_bind(i(*n))
                                .push_bind(at.as_micros());
                        });
                        q.push(concat!(
                            " ON CONFLICT (key_id, ip, user_agent) DO UPDATE SET
                                requests = usage_clients.requests + excluded.requests,
                                last_used_at = ", $greatest, "(usage_clients.last_used_at, excluded.last_used_at)"
                        ));
                        q.build().execute(&mut *tx).await.map_err(map_err)?;
                    }
                    for chunk in daily.chunks(ROWS_PER_STATEMENT) {
                        let mut q = QueryBuilder::<Db>::new(
                            "INSERT INTO usage_daily_routes (key_id, day, method, route, ip, requests) ",
                        );
                        q.push_values(chunk, |mut row, ((key, day, endpoint, ip), n)| {
                            row.push_bind(key)
                                .push_bind(day.as_micros())
                                .push_bind(&endpoint.method)
                                .push_bind(&endpoint.route)
                                .push_bind(ip)
                                .push_bind(i(**n));
                        });
                        q.push(
                            " ON CONFLICT (key_id, day, method, route, ip) DO UPDATE SET
                                requests = usage_daily_routes.requests + excluded.requests",
                        );
                        q.build().execute(&mut *tx).await.map_err(map_err)?;
                    }
                    tx.commit().await.map_err(map_err)
                }

                async fn route_uses(&self, key_id: &str, since: Timestamp) -> StoreResult<Vec<RouteUse>> {
                    use sqlx::Row;
                    let rows = sqlx::query(
                        "SELECT day, method, route, ip, requests FROM usage_daily_routes
                         WHERE key_id = $1 AND day >= $2 ORDER BY day, method, route, ip",
                    )
                    .bind(key_id)
                    .bind(day_start(since).as_micros())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                    rows.iter()
                        .map(|r| {
                            let requests: i64 = r.try_get("requests").map_err(map_err)?;
                            Ok(RouteUse {
                                day: Timestamp::from_micros(r.try_get("day").map_err(map_err)?),
                                method: r.try_get("method").map_err(map_err)?,
                                route: r.try_get("route").map_err(map_err)?,
                                ip: r.try_get("ip").map_err(map_err)?,
                                requests: u64::try_from(requests).unwrap_or(0),
                            })
                        })
                        .collect()
                }

                async fn roll_up_usage(&self, now: Timestamp) -> StoreResult<(u64, u64)> {
                    let cutoff = minute_start(now).as_micros() - 60 * MINUTE;
                    let retention = now.as_micros() - RETENTION_DAYS * 24 * HOUR;
                    let mut tx = self.write_tx().await?;
                    let rolled = move_minutes_into_hours(&mut tx, cutoff).await?;
                    let dropped = sqlx::query("DELETE FROM usage_hours WHERE hour_start < $1")
                        .bind(retention)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                    trim_clients(&mut tx).await?;
                    sqlx::query("DELETE FROM usage_daily_routes WHERE day < $1")
                        .bind(day_start(now).as_micros() - ROUTE_USE_DAYS * DAY)
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
                    self.summaries(key_ids, now).await
                }

                async fn key_usage(&self, key_id: &str, now: Timestamp) -> StoreResult<KeyUsage> {
                    let totals = sqlx::query("SELECT * FROM usage_totals WHERE key_id = $1")
                        .bind(key_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?
                        .as_ref()
                        .map(stored_totals_from_row)
                        .transpose()?;
                    let endpoints = sqlx::query(
                        "SELECT method, route, requests, errors_4xx, errors_5xx, last_used_at FROM usage_endpoints
                         WHERE key_id = $1 ORDER BY requests DESC, method, route",
                    )
                    .bind(key_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(endpoint_usage_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                    let minutes = sqlx::query(
                        "SELECT minute_start AS bucket, CAST(SUM(requests) AS BIGINT) AS r, CAST(SUM(errors_4xx + errors_5xx) AS BIGINT) AS e FROM usage_minutes
                         WHERE key_id = $1 AND minute_start >= $2 GROUP BY minute_start",
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
                         WHERE key_id = $1 AND hour_start >= $2",
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
                        "SELECT ip, user_agent, requests, last_used_at FROM usage_clients WHERE key_id = $1
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
        };
    };
}

pub(crate) use usage_store;
