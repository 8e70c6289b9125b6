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
        }
    }

    pub fn add(&mut self, o: Rejected) {
        self.revoked += o.revoked;
        self.expired += o.expired;
        self.retired += o.retired;
        self.ip_denied += o.ip_denied;
        self.rate_limited += o.rate_limited;
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
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.rejected.is_empty() && self.last_seen.is_empty()
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

pub const MINUTE: i64 = 60_000_000;
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
}
