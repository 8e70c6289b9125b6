//! Key usage: what the batched flush writes and what the usage views read.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;

use super::StoreResult;
use crate::domain::clock::Timestamp;

/// Why a request that presented a known key was refused before its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    Revoked,
    Expired,
    Retired,
    IpDenied,
    RateLimited,
    Paused,
}

/// Counts for one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.errors_4xx += other.errors_4xx;
        self.errors_5xx += other.errors_5xx;
    }
}

/// Rejections by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rejected {
    pub revoked: u64,
    pub expired: u64,
    pub retired: u64,
    pub paused: u64,
    pub ip_denied: u64,
    pub rate_limited: u64,
}

impl Rejected {
    pub fn bump(&mut self, r: Rejection) {
        match r {
            Rejection::Revoked => self.revoked += 1,
            Rejection::Expired => self.expired += 1,
            Rejection::Retired => self.retired += 1,
            Rejection::IpDenied => self.ip_denied += 1,
            Rejection::RateLimited => self.rate_limited += 1,
            Rejection::Paused => self.paused += 1,
        }
    }

    pub fn add(&mut self, o: Rejected) {
        self.revoked += o.revoked;
        self.expired += o.expired;
        self.retired += o.retired;
        self.ip_denied += o.ip_denied;
        self.rate_limited += o.rate_limited;
        self.paused += o.paused;
    }
}

/// Where a request went: method and route template (never the raw path).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub method: String,
    pub route: String,
}

/// The latest sighting of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSeen {
    pub at: Timestamp,
    pub ip: String,
    pub user_agent: Option<String>,
}

/// One second's worth of usage, merged by the recorder; every count is added
/// to what is stored.
#[derive(Clone, Debug, Default)]
pub struct UsageBatch {
    /// (key id, minute start, endpoint) → counts.
    pub minutes: HashMap<(String, Timestamp, Endpoint), Counts>,
    pub rejected: HashMap<String, Rejected>,
    pub last_seen: HashMap<String, LastSeen>,
    /// (key id, ip, user agent) → (requests, last seen).
    pub clients: HashMap<(String, String, String), (u64, Timestamp)>,
    /// (key id, day start, endpoint, client ip) → requests: the roll-up the
    /// least-privilege suggestions read.
    pub daily: HashMap<(String, Timestamp, Endpoint, String), u64>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
            && self.rejected.is_empty()
            && self.last_seen.is_empty()
            && self.daily.is_empty()
    }

    /// Folds `other` into `self` (used to keep a batch whose flush failed).
    pub fn merge(&mut self, other: UsageBatch) {
        for (k, c) in other.minutes {
            self.minutes.entry(k).or_default().add(c);
        }
        for (k, r) in other.rejected {
            self.rejected.entry(k).or_default().add(r);
        }
        for (k, seen) in other.last_seen {
            match self.last_seen.get(&k) {
                Some(mine) if mine.at >= seen.at => {}
                _ => {
                    self.last_seen.insert(k, seen);
                }
            }
        }
        for (k, n) in other.daily {
            *self.daily.entry(k).or_default() += n;
        }
        for (k, (n, at)) in other.clients {
            let e = self.clients.entry(k).or_insert((0, at));
            e.0 += n;
            e.1 = e.1.max(at);
        }
    }

    pub fn total_requests(&self) -> u64 {
        self.minutes.values().map(|c| c.requests).sum()
    }
}

/// What a key object shows of its usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageSummary {
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub requests_24h: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RequestCounts {
    pub total: u64,
    pub last_24h: u64,
    pub last_7d: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorCounts {
    #[serde(rename = "4xx")]
    pub e4xx: u64,
    #[serde(rename = "5xx")]
    pub e5xx: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EndpointUsage {
    #[schema(example = "GET")]
    pub method: String,
    #[schema(example = "/api/v1/orders/{id}")]
    pub route: String,
    pub requests: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub last_used_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    pub at: Timestamp,
    pub requests: u64,
    pub errors: u64,
}

/// A client (IP and user agent) seen using the key.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClientSeen {
    pub ip: String,
    pub user_agent: String,
    pub requests: u64,
    pub last_used_at: Timestamp,
}

/// `GET /api/v1/keys/{id}/usage`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    pub requests: RequestCounts,
    pub errors: ErrorCounts,
    pub error_rate: f64,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub endpoints: Vec<EndpointUsage>,
    /// The last hour, one point a minute, oldest first.
    pub per_minute: Vec<SeriesPoint>,
    /// The last 7 days, one point an hour, oldest first.
    pub per_hour: Vec<SeriesPoint>,
    pub rejected: Rejected,
    /// The most recent distinct clients (IP and user agent), newest first.
    pub clients: Vec<ClientSeen>,
}

/// Requests of one key on one route from one address on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteUse {
    pub day: Timestamp,
    pub method: String,
    pub route: String,
    pub ip: String,
    pub requests: u64,
}

pub const MINUTE: i64 = 60_000_000;
pub const DAY: i64 = 24 * HOUR;
/// Days the per-route, per-address roll-up is kept.
pub const ROUTE_USE_DAYS: i64 = 30;

pub fn day_start(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros().div_euclid(DAY) * DAY)
}
pub const HOUR: i64 = 3_600_000_000;
/// Hour buckets older than this are dropped.
pub const RETENTION_DAYS: i64 = 90;

pub fn minute_start(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros().div_euclid(MINUTE) * MINUTE)
}

pub fn hour_start(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros().div_euclid(HOUR) * HOUR)
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds a batch to the stored counts, in one transaction.
    async fn flush_usage(&self, batch: &UsageBatch) -> StoreResult<()>;
    /// Rolls minute buckets older than an hour into hours and drops hours
    /// older than 90 days. Returns (minute rows rolled, hour rows dropped).
    async fn roll_up_usage(&self, now: Timestamp) -> StoreResult<(u64, u64)>;
    /// Summaries for the key objects of `key_ids`.
    async fn usage_summaries(
        &self,
        key_ids: &[String],
        now: Timestamp,
    ) -> StoreResult<HashMap<String, UsageSummary>>;
    /// The full usage view of one key.
    async fn key_usage(&self, key_id: &str, now: Timestamp) -> StoreResult<KeyUsage>;
    /// The key's requests per day, route and client address since `since`
    /// (day granularity).
    async fn route_uses(&self, key_id: &str, since: Timestamp) -> StoreResult<Vec<RouteUse>>;
}

/// Distinct (IP, user agent) pairs kept per key.
pub(crate) const CLIENTS_PER_KEY: i64 = 50;

/// The first hour of the "last 24 hours" (hour-granular, 24 buckets).
pub(crate) fn day_window(now: Timestamp) -> Timestamp {
    Timestamp::from_micros(hour_start(now).as_micros() - 23 * HOUR)
}

/// A count as the databases store it (a signed 64-bit integer).
pub(crate) fn count_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One `usage_endpoints` row a flush adds.
pub(crate) struct EndpointRow<'a> {
    pub key_id: &'a str,
    pub endpoint: &'a Endpoint,
    pub counts: Counts,
    pub last_used_at: Timestamp,
}

/// One `usage_totals` row a flush adds.
pub(crate) struct TotalsRow<'a> {
    pub key_id: &'a str,
    pub counts: Counts,
    pub rejected: Rejected,
    pub last_seen: Option<&'a LastSeen>,
}

impl UsageBatch {
    /// The batch aggregated per endpoint and per key, as every backend's
    /// flush writes it: with 100,000 keys in use a flush touches tens of
    /// thousands of rows, so each table is written with multi-row upserts of
    /// these rows rather than one statement per request bucket.
    pub(crate) fn endpoint_and_total_rows(&self) -> (Vec<EndpointRow<'_>>, Vec<TotalsRow<'_>>) {
        let mut endpoints: HashMap<(&str, &Endpoint), (Counts, Timestamp)> = HashMap::new();
        let mut totals: HashMap<&str, Counts> = HashMap::new();
        for ((key, minute, endpoint), c) in &self.minutes {
            let last = minute.plus_seconds(59);
            let e = endpoints
                .entry((key.as_str(), endpoint))
                .or_insert((Counts::default(), *minute));
            e.0.add(*c);
            e.1 = e.1.max(last);
            totals.entry(key.as_str()).or_default().add(*c);
        }
        let endpoint_rows = endpoints
            .into_iter()
            .map(|((key_id, endpoint), (counts, seen))| EndpointRow {
                key_id,
                endpoint,
                counts,
                // Minute precision: the end of the endpoint's latest minute, or
                // the key's last request if that came earlier (exact when this
                // endpoint was the last one called).
                last_used_at: self.last_seen.get(key_id).map_or(seen, |s| s.at.min(seen)),
            })
            .collect();
        let mut keys: std::collections::BTreeSet<&str> = totals.keys().copied().collect();
        keys.extend(self.rejected.keys().map(String::as_str));
        keys.extend(self.last_seen.keys().map(String::as_str));
        let total_rows = keys
            .into_iter()
            .map(|key_id| TotalsRow {
                key_id,
                counts: totals.get(key_id).copied().unwrap_or_default(),
                rejected: self.rejected.get(key_id).copied().unwrap_or_default(),
                last_seen: self.last_seen.get(key_id),
            })
            .collect();
        (endpoint_rows, total_rows)
    }
}

/// What `usage_totals` holds for a key.
#[derive(Clone, Debug, Default)]
pub(crate) struct StoredTotals {
    pub requests: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub rejected: Rejected,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
}

/// A bucket's start (microseconds), requests and errors.
pub(crate) type Bucket = (i64, u64, u64);

/// What a backend reads for [`UsageStore::key_usage`]; [`Self::into_key_usage`]
/// turns it into the view, the same way for every backend.
pub(crate) struct KeyUsageRows {
    pub totals: Option<StoredTotals>,
    pub endpoints: Vec<EndpointUsage>,
    /// Minute buckets since [`KeyUsageRows::first_bucket`], summed over endpoints.
    pub minutes: Vec<Bucket>,
    /// Hour buckets since the first hour of the week.
    pub hours: Vec<Bucket>,
    pub clients: Vec<ClientSeen>,
}

impl KeyUsageRows {
    /// The first minute of the last hour.
    pub fn first_minute(now: Timestamp) -> i64 {
        minute_start(now).as_micros() - 59 * MINUTE
    }

    /// The first hour of the last 7 days.
    pub fn first_hour(now: Timestamp) -> i64 {
        hour_start(now).as_micros() - 167 * HOUR
    }

    /// The oldest minute bucket to read: minutes not yet rolled up count
    /// towards both series.
    pub fn first_bucket(now: Timestamp) -> i64 {
        Self::first_hour(now).min(Self::first_minute(now))
    }

    pub fn into_key_usage(self, now: Timestamp) -> KeyUsage {
        let first_minute = Self::first_minute(now);
        let first_hour = Self::first_hour(now);
        let mut minutes: HashMap<i64, (u64, u64)> = HashMap::new();
        let mut hours: HashMap<i64, (u64, u64)> = HashMap::new();
        for (at, req, err) in self.minutes {
            if at >= first_minute {
                let m = minutes.entry(at).or_default();
                m.0 += req;
                m.1 += err;
            }
            let h = hours.entry(at.div_euclid(HOUR) * HOUR).or_default();
            h.0 += req;
            h.1 += err;
        }
        for (at, req, err) in self.hours {
            let h = hours.entry(at).or_default();
            h.0 += req;
            h.1 += err;
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
        let totals = self.totals.unwrap_or_default();
        let (total, e4, e5) = (totals.requests, totals.errors_4xx, totals.errors_5xx);
        KeyUsage {
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
            last_used_at: totals.last_used_at,
            last_used_ip: totals.last_used_ip,
            endpoints: self.endpoints,
            per_minute,
            per_hour,
            rejected: totals.rejected,
            clients: self.clients,
        }
    }
}
