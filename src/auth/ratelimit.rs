//! Rate limits, in memory: GCRA per key (the minute's budget usable as a
//! burst, refilling evenly), and a limiter of failed authentications per
//! client IP. Both are exact under concurrency (one short per-key lock per
//! request) and bounded in memory: state exists only for verified keys and
//! for at most [`MAX_TRACKED_IPS`] addresses (IPv6 by /64).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::clock::Timestamp;

const MINUTE_MICROS: i64 = 60_000_000;
/// Most client networks whose failed attempts are tracked at once.
pub const MAX_TRACKED_IPS: u64 = 100_000;

/// The outcome of one check, with what the headers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the whole budget is available again.
    pub reset_secs: u64,
    /// Seconds until the next request is allowed (0 when allowed).
    pub retry_after_secs: u64,
}

/// One GCRA bucket: the theoretical arrival time (microseconds) and the
/// limit it was computed for.
#[derive(Debug)]
pub struct Bucket(Mutex<(i64, u32)>);

impl Default for Bucket {
    fn default() -> Self {
        Bucket(Mutex::new((i64::MIN, 0)))
    }
}

fn gcra(bucket: &Bucket, limit: u32, now: Timestamp) -> Decision {
    let limit = limit.max(1);
    let t = now.as_micros();
    let interval = MINUTE_MICROS / i64::from(limit);
    // The whole minute may be used as a burst.
    let tolerance = MINUTE_MICROS - interval;
    // One short lock per key: exact under concurrency, and cheap since only
    // requests of the same key ever contend.
    let mut state = bucket
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (mut tat, old_limit) = *state;
    if old_limit != 0 && old_limit != limit && tat > t {
        // The limit changed: keep the number of requests already counted in
        // the window, re-expressed in the new limit's units, so lowering a
        // limit applies at once and raising one frees the key at once.
        let used = i128::from(tat - t) * i128::from(old_limit) / i128::from(limit);
        tat = t + i64::try_from(used).unwrap_or(i64::MAX / 2);
    }
    let base = tat.max(t);
    if base - t > tolerance {
        *state = (tat, limit);
        return Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset_secs: ceil_secs(base - t),
            retry_after_secs: ceil_secs(base - tolerance - t).max(1),
        };
    }
    let next = base + interval;
    *state = (next, limit);
    let headroom = tolerance - (next - t);
    let remaining = if headroom < 0 {
        0
    } else {
        headroom / interval + 1
    };
    Decision {
        allowed: true,
        limit,
        remaining: u32::try_from(remaining).unwrap_or(limit).min(limit),
        reset_secs: ceil_secs(next - t),
        retry_after_secs: 0,
    }
}

fn ceil_secs(micros: i64) -> u64 {
    u64::try_from(micros.max(0))
        .unwrap_or(0)
        .div_ceil(1_000_000)
}

/// Per-key limits.
pub struct KeyLimiter {
    buckets: Cache<String, Arc<Bucket>>,
}

impl KeyLimiter {
    pub fn new(capacity: u64) -> Self {
        KeyLimiter {
            buckets: Cache::builder()
                .max_capacity(capacity)
                // A bucket idle for over a minute is full again: forgetting it
                // changes nothing.
                .time_to_idle(Duration::from_secs(61))
                .build(),
        }
    }

    /// Counts one request of key `id` against `limit` per minute.
    pub fn check(&self, id: &str, limit: u32, now: Timestamp) -> Decision {
        let bucket = self
            .buckets
            .get_with_by_ref(id, || Arc::new(Bucket::default()));
        gcra(&bucket, limit, now)
    }
}

/// Failed authentications per client network.
pub struct FailedAttemptLimiter {
    limit: u32,
    buckets: Cache<IpAddr, Arc<Bucket>>,
}

/// IPv6 clients are counted by /64: one subscriber usually holds a whole /64.
fn network_of(ip: IpAddr) -> IpAddr {
    match crate::domain::net::canonical(ip) {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

impl FailedAttemptLimiter {
    pub fn new(limit_per_minute: u32) -> Self {
        FailedAttemptLimiter {
            limit: limit_per_minute.max(1),
            buckets: Cache::builder()
                .max_capacity(MAX_TRACKED_IPS)
                .time_to_idle(Duration::from_secs(61))
                .build(),
        }
    }

    /// Counts one failed attempt from `ip`; `allowed == false` once over the limit.
    pub fn record_failure(&self, ip: IpAddr, now: Timestamp) -> Decision {
        let bucket = self
            .buckets
            .get_with(network_of(ip), || Arc::new(Bucket::default()));
        gcra(&bucket, self.limit, now)
    }

    pub fn tracked(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_micros((1_800_000_000.0 * 1e6 + secs * 1e6) as i64)
    }

    #[test]
    fn the_whole_minute_is_a_burst_then_it_refills_evenly() {
        let l = KeyLimiter::new(10);
        let first = l.check("k", 100, at(0.0));
        assert_eq!((first.allowed, first.remaining), (true, 99));
        for i in 1..100 {
            let d = l.check("k", 100, at(0.0));
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 99 - i);
        }
        let denied = l.check("k", 100, at(0.0));
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_secs, 1, "one request's worth is 0.6 s");
        assert_eq!(denied.reset_secs, 60);
        // 0.6 s later exactly one more fits.
        assert!(l.check("k", 100, at(0.6)).allowed);
        assert!(!l.check("k", 100, at(0.6)).allowed);
        // After a full minute the budget is whole again.
        assert_eq!(l.check("k", 100, at(61.0)).remaining, 99);
    }

    #[test]
    fn a_changed_limit_keeps_the_requests_already_counted() {
        let l = KeyLimiter::new(10);
        for _ in 0..5 {
            assert!(l.check("k", 100, at(0.0)).allowed);
        }
        // Lowered to 4 a minute: 5 already used, so refused at once.
        assert!(!l.check("k", 4, at(0.0)).allowed);
        // Raised to 100 again: 5 used, 95 left.
        let d = l.check("k", 100, at(0.0));
        assert!(d.allowed);
        assert_eq!(d.remaining, 94);
        // Raising the limit of a throttled key frees it at once.
        let l = KeyLimiter::new(10);
        assert!(l.check("j", 1, at(0.0)).allowed);
        assert!(!l.check("j", 1, at(0.0)).allowed);
        assert!(l.check("j", 10, at(0.0)).allowed);
    }

    #[test]
    fn exact_under_concurrency() {
        let l = Arc::new(KeyLimiter::new(10));
        let now = at(0.0);
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let l = l.clone();
                    s.spawn(move || (0..125).filter(|_| l.check("k", 100, now).allowed).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
    }

    #[test]
    fn failed_attempts_are_counted_per_network_and_bounded() {
        let f = FailedAttemptLimiter::new(3);
        let ip: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert!(f.record_failure(ip, at(0.0)).allowed);
        assert!(f.record_failure(same_64, at(0.0)).allowed);
        assert!(f.record_failure(ip, at(0.0)).allowed);
        assert!(!f.record_failure(same_64, at(0.0)).allowed);
        assert!(
            f.record_failure("192.0.2.1".parse().unwrap(), at(0.0))
                .allowed
        );
        for i in 0..(MAX_TRACKED_IPS + 5_000) {
            let ip = IpAddr::from((i as u32 | 0x0a00_0000).to_be_bytes());
            f.record_failure(ip, at(0.0));
        }
        assert!(
            f.tracked() <= MAX_TRACKED_IPS + MAX_TRACKED_IPS / 10,
            "{}",
            f.tracked()
        );
    }
}
