//! SQLite implementation of [`UsageStore`].

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::StoreResult;
use super::sqlite::{SqliteStore, map_err};
use super::usage::*;
use crate::domain::clock::Timestamp;

/// Rows per multi-row upsert: 12 values each at most, well under SQLite's
/// 32,766 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 500;

/// Distinct (IP, user agent) pairs kept per key.
const CLIENTS_PER_KEY: i64 = 50;

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The first hour of the "last 24 hours" (hour-granular, 24 buckets).
fn day_window(now: Timestamp) -> Timestamp {
    Timestamp::from_micros(hour_start(now).as_micros() - 23 * HOUR)
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn flush_usage(&self, batch: &UsageBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Aggregate per endpoint and per key first, then write each table
        // with multi-row upserts: with 100,000 keys in use a flush touches
        // tens of thousands of rows, and one statement per row (each a round
        // trip to the SQLite worker thread) took the server's whole core.
        let mut endpoints: HashMap<(&str, &Endpoint), (Counts, Timestamp)> = HashMap::new();
        let mut totals: HashMap<&str, Counts> = HashMap::new();
        for ((key, minute, endpoint), c) in &batch.minutes {
            let last = minute.plus_seconds(59);
            let e = endpoints
                .entry((key.as_str(), endpoint))
                .or_insert((Counts::default(), *minute));
            e.0.add(*c);
            e.1 = e.1.max(last);
            totals.entry(key.as_str()).or_default().add(*c);
        }
        let mut keys: BTreeSet<&str> = totals.keys().copied().collect();
        keys.extend(batch.rejected.keys().map(String::as_str));
        keys.extend(batch.last_seen.keys().map(String::as_str));

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
        let endpoints: Vec<_> = endpoints.into_iter().collect();
        for chunk in endpoints.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_endpoints (key_id, method, route, requests, errors_4xx, errors_5xx, last_used_at) ",
            );
            q.push_values(chunk, |mut row, ((key, endpoint), (c, seen))| {
                // Minute precision: the end of the endpoint's latest minute, or
                // the key's last request if that came earlier (exact when this
                // endpoint was the last one called).
                let at = batch.last_seen.get(*key).map_or(*seen, |s| s.at.min(*seen));
                row.push_bind(*key)
                    .push_bind(&endpoint.method)
                    .push_bind(&endpoint.route)
                    .push_bind(i(c.requests))
                    .push_bind(i(c.errors_4xx))
                    .push_bind(i(c.errors_5xx))
                    .push_bind(at.as_micros());
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
        let keys: Vec<&str> = keys.into_iter().collect();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO usage_totals (key_id, requests, errors_4xx, errors_5xx, rejected_revoked, rejected_expired,
                    rejected_retired, rejected_ip, rejected_rate, last_used_at, last_used_ip, last_user_agent) ",
            );
            q.push_values(chunk, |mut row, key| {
                let c = totals.get(key).copied().unwrap_or_default();
                let r = batch.rejected.get(*key).copied().unwrap_or_default();
                let seen = batch.last_seen.get(*key);
                row.push_bind(*key)
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
        let mut out = HashMap::new();
        if key_ids.is_empty() {
            return Ok(out);
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
        for row in q.fetch_all(&self.pool).await.map_err(map_err)? {
            let id: String = row.try_get("key_id").map_err(map_err)?;
            let at: Option<i64> = row.try_get("last_used_at").map_err(map_err)?;
            out.insert(
                id,
                UsageSummary {
                    last_used_at: at.filter(|a| *a > 0).map(Timestamp::from_micros),
                    last_used_ip: row.try_get("last_used_ip").map_err(map_err)?,
                    requests_24h: u(row.try_get("day").map_err(map_err)?),
                },
            );
        }
        Ok(out)
    }

    async fn key_usage(&self, key_id: &str, now: Timestamp) -> StoreResult<KeyUsage> {
        let totals = sqlx::query("SELECT * FROM usage_totals WHERE key_id = ?1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let get = |name: &str| -> i64 {
            totals
                .as_ref()
                .and_then(|r| r.try_get::<i64, _>(name).ok())
                .unwrap_or(0)
        };
        let (total, e4, e5) = (
            u(get("requests")),
            u(get("errors_4xx")),
            u(get("errors_5xx")),
        );
        let rejected = Rejected {
            revoked: u(get("rejected_revoked")),
            expired: u(get("rejected_expired")),
            retired: u(get("rejected_retired")),
            ip_denied: u(get("rejected_ip")),
            rate_limited: u(get("rejected_rate")),
        };
        let last_used_at = totals
            .as_ref()
            .and_then(|r| r.try_get::<Option<i64>, _>("last_used_at").ok().flatten())
            .filter(|a| *a > 0)
            .map(Timestamp::from_micros);
        let last_used_ip = totals.as_ref().and_then(|r| {
            r.try_get::<Option<String>, _>("last_used_ip")
                .ok()
                .flatten()
        });

        let endpoints = sqlx::query(
            "SELECT method, route, requests, errors_4xx, errors_5xx, last_used_at FROM usage_endpoints
             WHERE key_id = ?1 ORDER BY requests DESC, method, route",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(EndpointUsage {
                method: r.try_get("method").map_err(map_err)?,
                route: r.try_get("route").map_err(map_err)?,
                requests: u(r.try_get("requests").map_err(map_err)?),
                errors_4xx: u(r.try_get("errors_4xx").map_err(map_err)?),
                errors_5xx: u(r.try_get("errors_5xx").map_err(map_err)?),
                last_used_at: Timestamp::from_micros(r.try_get("last_used_at").map_err(map_err)?),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

        // Minutes of the last hour, and hours of the last week (stored hours
        // plus minutes not yet rolled up).
        let first_minute = minute_start(now).as_micros() - 59 * MINUTE;
        let first_hour = hour_start(now).as_micros() - 167 * HOUR;
        let mut minutes: HashMap<i64, (u64, u64)> = HashMap::new();
        let mut hours: HashMap<i64, (u64, u64)> = HashMap::new();
        let rows = sqlx::query(
            "SELECT minute_start, SUM(requests) AS r, SUM(errors_4xx + errors_5xx) AS e FROM usage_minutes
             WHERE key_id = ?1 AND minute_start >= ?2 GROUP BY minute_start",
        )
        .bind(key_id)
        .bind(first_hour.min(first_minute))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        for r in rows {
            let at: i64 = r.try_get("minute_start").map_err(map_err)?;
            let (req, err) = (
                u(r.try_get("r").map_err(map_err)?),
                u(r.try_get("e").map_err(map_err)?),
            );
            if at >= first_minute {
                let m = minutes.entry(at).or_default();
                m.0 += req;
                m.1 += err;
            }
            let h = hours.entry(at.div_euclid(HOUR) * HOUR).or_default();
            h.0 += req;
            h.1 += err;
        }
        let rows = sqlx::query(
            "SELECT hour_start, requests, errors_4xx + errors_5xx AS e FROM usage_hours WHERE key_id = ?1 AND hour_start >= ?2",
        )
        .bind(key_id)
        .bind(first_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        for r in rows {
            let h = hours
                .entry(r.try_get("hour_start").map_err(map_err)?)
                .or_default();
            h.0 += u(r.try_get("requests").map_err(map_err)?);
            h.1 += u(r.try_get("e").map_err(map_err)?);
        }
        let series =
            |start: i64, step: i64, n: i64, map: &HashMap<i64, (u64, u64)>| -> Vec<SeriesPoint> {
                (0..n)
                    .map(|k| {
                        let at = start + k * step;
                        let (requests, errors) = map.get(&at).copied().unwrap_or_default();
                        SeriesPoint {
                            at: Timestamp::from_micros(at),
                            requests,
                            errors,
                        }
                    })
                    .collect()
            };
        let per_minute = series(first_minute, MINUTE, 60, &minutes);
        let per_hour = series(first_hour, HOUR, 168, &hours);
        let day_start = day_window(now);
        let last_24h = per_hour
            .iter()
            .filter(|p| p.at >= day_start)
            .map(|p| p.requests)
            .sum();
        let last_7d = per_hour.iter().map(|p| p.requests).sum();

        let clients = sqlx::query(
            "SELECT ip, user_agent, requests, last_used_at FROM usage_clients WHERE key_id = ?1
             ORDER BY last_used_at DESC LIMIT 20",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(ClientSeen {
                ip: r.try_get("ip").map_err(map_err)?,
                user_agent: r.try_get("user_agent").map_err(map_err)?,
                requests: u(r.try_get("requests").map_err(map_err)?),
                last_used_at: Timestamp::from_micros(r.try_get("last_used_at").map_err(map_err)?),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

        Ok(KeyUsage {
            requests: RequestCounts {
                total,
                last_24h,
                last_7d,
            },
            errors: ErrorCounts { e4xx: e4, e5xx: e5 },
            error_rate: if total == 0 {
                0.0
            } else {
                (e4 + e5) as f64 / total as f64
            },
            last_used_at,
            last_used_ip,
            endpoints,
            per_minute,
            per_hour,
            rejected,
            clients,
        })
    }
}
