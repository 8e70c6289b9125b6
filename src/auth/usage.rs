//! Usage recording with no database write on the request path: each request
//! bumps in-memory counters (one short, sharded lock); a background task
//! flushes them every half second in one transaction, and once more on
//! graceful shutdown. A crash loses at most the last second: half a second
//! of waiting for the next flush, and the rest is room for that flush's
//! commit to wait on other writers (`tests/crash.rs` kills a busy server to
//! check it). A failed flush is kept and retried with the next one.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::domain::clock::{Clock, Timestamp};
use crate::store::Store;
use crate::store::usage::{
    Counts, Endpoint, LastSeen, Rejected, Rejection, UsageBatch, minute_start,
};

const SHARDS: usize = 16;

/// The recorder's maps are on the request path and keyed by values the
/// server made (key ids, route templates) or saw (client IPs, user agents of
/// verified keys): a fast per-process-seeded hasher, not SipHash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// User agents are kept to this many characters.
const MAX_USER_AGENT: usize = 200;
/// New distinct clients (IP, user agent) that refused requests may add to a
/// key per minute. A revoked key is neither rate limited nor counted as a
/// failed attempt, so without a bound each request with a fresh user agent
/// would write a row; past the bound such requests are still counted (by
/// endpoint and by reason), only not listed as clients.
pub const REFUSED_CLIENTS_PER_MINUTE: u32 = 10;

/// One request that presented a known key.
pub struct Hit<'a> {
    pub key_id: &'a str,
    pub at: Timestamp,
    pub method: &'a axum::http::Method,
    /// The route template (`/api/v1/orders/{id}`), never the raw path.
    pub route: &'a str,
    pub status: u16,
    pub rejection: Option<Rejection>,
    pub ip: IpAddr,
    pub user_agent: Option<&'a str>,
}

/// (day start, method, route template, client address or "other").
type DailyUse = (i64, &'static str, Arc<str>, Option<IpAddr>);

#[derive(Default)]
struct KeyBucket {
    counts: FastMap<(i64, &'static str, Arc<str>), Counts>,
    rejected: Rejected,
    last: Option<(Timestamp, IpAddr, Option<Box<str>>)>,
    clients: FastMap<IpAddr, FastMap<Box<str>, (u64, Timestamp)>>,
    /// (day start, method, route, client address) → requests, for the
    /// least-privilege suggestions; addresses past the first
    /// [`DAILY_ADDRESSES`] of a flush window count as `None` ("other").
    daily: FastMap<DailyUse, u64>,
    /// The distinct addresses in `daily` this window.
    daily_ips: Vec<IpAddr>,
}

/// Distinct client addresses per key a flush window records by name for
/// the suggestions (more than the 3 an allow-list is suggested for, so "many
/// addresses" is still told apart); the rest are counted as "other", so a key
/// used from a crowd of addresses adds a bounded number of rows.
pub const DAILY_ADDRESSES: usize = 4;

/// How an address past [`DAILY_ADDRESSES`] is stored.
pub const OTHER_ADDRESSES: &str = "other";

fn method_name(m: &axum::http::Method) -> &'static str {
    match *m {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// One shard: the counts since the last flush and, per key, how many new
/// clients refused requests have added this minute (kept across flushes).
#[derive(Default)]
struct Shard {
    buckets: FastMap<String, KeyBucket>,
    refused_clients: FastMap<String, (i64, u32)>,
}

pub struct UsageRecorder {
    shards: Vec<Mutex<Shard>>,
    routes: RwLock<FastMap<Box<str>, Arc<str>>>,
    hasher: foldhash::fast::RandomState,
    /// A batch whose flush failed, retried with the next one.
    pending: Mutex<UsageBatch>,
}

impl Default for UsageRecorder {
    fn default() -> Self {
        UsageRecorder {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            routes: RwLock::default(),
            hasher: foldhash::fast::RandomState::default(),
            pending: Mutex::new(UsageBatch::default()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave counters inconsistent
    // (each update is a few additions), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl UsageRecorder {
    fn route(&self, route: &str) -> Arc<str> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
        {
            return r.clone();
        }
        let mut w = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.entry(route.into())
            .or_insert_with(|| Arc::from(route))
            .clone()
    }

    /// Counts one request. Cheap: no I/O, one shard lock.
    pub fn record(&self, hit: Hit<'_>) {
        let route = self.route(hit.route);
        let shard = &self.shards[(self.hasher.hash_one(hit.key_id) as usize) % SHARDS];
        let mut shard = lock(shard);
        let Shard {
            buckets,
            refused_clients,
        } = &mut *shard;
        let bucket = match buckets.get_mut(hit.key_id) {
            Some(b) => b,
            None => buckets.entry(hit.key_id.to_owned()).or_default(),
        };
        let minute = minute_start(hit.at).as_micros();
        // What the key was used for, by route and address: only requests
        // that reached the permission check (a refused key records counts
        // only, never a row per address).
        if hit.rejection.is_none() && hit.status != 401 {
            let day = crate::store::usage::day_start(hit.at).as_micros();
            let ip = if bucket.daily_ips.contains(&hit.ip) {
                Some(hit.ip)
            } else if bucket.daily_ips.len() < DAILY_ADDRESSES {
                bucket.daily_ips.push(hit.ip);
                Some(hit.ip)
            } else {
                None
            };
            *bucket
                .daily
                .entry((day, method_name(hit.method), route.clone(), ip))
                .or_default() += 1;
        }
        let c = bucket
            .counts
            .entry((minute, method_name(hit.method), route))
            .or_default();
        c.requests += 1;
        match hit.status {
            400..=499 => c.errors_4xx += 1,
            500..=599 => c.errors_5xx += 1,
            _ => {}
        }
        if let Some(r) = hit.rejection {
            bucket.rejected.bump(r);
        }
        let agent = hit
            .user_agent
            .map(|a| match a.char_indices().nth(MAX_USER_AGENT) {
                Some((i, _)) => &a[..i],
                None => a,
            });
        match &mut bucket.last {
            Some((at, ip, ua)) if *at <= hit.at => {
                *at = hit.at;
                *ip = hit.ip;
                if ua.as_deref() != agent {
                    *ua = agent.map(Into::into);
                }
            }
            Some(_) => {}
            None => bucket.last = Some((hit.at, hit.ip, agent.map(Into::into))),
        }
        let agent = agent.unwrap_or("");
        if let Some(e) = bucket
            .clients
            .get_mut(&hit.ip)
            .and_then(|per_ip| per_ip.get_mut(agent))
        {
            e.0 += 1;
            e.1 = e.1.max(hit.at);
            return;
        }
        // A refusal before the handler: a status reason, or a 401 (the only
        // one a known key gets is `key_in_url`).
        let refused = hit.rejection.is_some() || hit.status == 401;
        if refused {
            let budget = match refused_clients.get_mut(hit.key_id) {
                Some(b) => b,
                None => refused_clients
                    .entry(hit.key_id.to_owned())
                    .or_insert((minute, 0)),
            };
            if budget.0 != minute {
                *budget = (minute, 0);
            }
            if budget.1 >= REFUSED_CLIENTS_PER_MINUTE {
                return;
            }
            budget.1 += 1;
        }
        bucket
            .clients
            .entry(hit.ip)
            .or_default()
            .insert(agent.into(), (1, hit.at));
    }

    /// Takes everything counted so far (and any batch a failed flush left).
    pub fn take(&self) -> UsageBatch {
        let mut batch = std::mem::take(&mut *lock(&self.pending));
        for shard in &self.shards {
            let drained = {
                let mut shard = lock(shard);
                // Budgets of minutes gone by are done with; the newest stays.
                let newest = shard.refused_clients.values().map(|b| b.0).max();
                shard.refused_clients.retain(|_, b| Some(b.0) == newest);
                std::mem::take(&mut shard.buckets)
            };
            for (key, bucket) in drained {
                for ((minute, method, route), c) in bucket.counts {
                    let endpoint = Endpoint {
                        method: method.to_owned(),
                        route: route.to_string(),
                    };
                    batch
                        .minutes
                        .entry((key.clone(), Timestamp::from_micros(minute), endpoint))
                        .or_default()
                        .add(c);
                }
                for ((day, method, route, ip), n) in bucket.daily {
                    let endpoint = Endpoint {
                        method: method.to_owned(),
                        route: route.to_string(),
                    };
                    *batch
                        .daily
                        .entry((
                            key.clone(),
                            Timestamp::from_micros(day),
                            endpoint,
                            ip.map_or_else(|| OTHER_ADDRESSES.to_owned(), |ip| ip.to_string()),
                        ))
                        .or_default() += n;
                }
                if bucket.rejected != Rejected::default() {
                    batch
                        .rejected
                        .entry(key.clone())
                        .or_default()
                        .add(bucket.rejected);
                }
                for (ip, agents) in bucket.clients {
                    for (agent, (n, at)) in agents {
                        let e = batch
                            .clients
                            .entry((key.clone(), ip.to_string(), agent.into()))
                            .or_insert((0, at));
                        e.0 += n;
                        e.1 = e.1.max(at);
                    }
                }
                if let Some((at, ip, ua)) = bucket.last {
                    let seen = LastSeen {
                        at,
                        ip: ip.to_string(),
                        user_agent: ua.map(Into::into),
                    };
                    let mut one = UsageBatch::default();
                    one.last_seen.insert(key, seen);
                    batch.merge(one);
                }
            }
        }
        batch
    }

    /// Writes what was counted. On failure the batch is kept for the next try.
    pub async fn flush(&self, store: &dyn Store) -> Result<u64, crate::store::StoreError> {
        let batch = self.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.total_requests();
        match store.flush_usage(&batch).await {
            Ok(()) => Ok(n),
            Err(e) => {
                lock(&self.pending).merge(batch);
                Err(e)
            }
        }
    }
}

/// How often counted usage is written: half the second a crash may lose.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Flushes every [`FLUSH_EVERY`] and rolls usage up every minute until
/// `shutdown`, then flushes a last time.
pub async fn run_flusher(
    recorder: Arc<UsageRecorder>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticks_per_minute = (60_000 / FLUSH_EVERY.as_millis()) as u64;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if let Err(e) = recorder.flush(store.as_ref()).await {
            tracing::warn!(error = %e, "usage flush failed; keeping the counts for the next try");
        }
        ticks += 1;
        if ticks.is_multiple_of(ticks_per_minute)
            && let Err(e) = store.roll_up_usage(clock.now()).await
        {
            tracing::warn!(error = %e, "usage roll-up failed");
        }
    }
    match recorder.flush(store.as_ref()).await {
        Ok(n) => tracing::info!(requests = n, "final usage flush"),
        Err(e) => tracing::error!(error = %e, "final usage flush failed; these counts are lost"),
    }
}
