//! The in-memory adapter: GCRA per key and per client network, login
//! failures per (account hash, network), and form claims, in this process.
//! Exact under concurrency (one short lock per bucket; only requests of the
//! same bucket ever contend) and bounded: at most [`MAX_TRACKED`] entries of
//! each kind (plus the key cache's size for keys), every entry of a fixed
//! size, idle entries forgotten once forgetting them changes nothing.

use std::collections::VecDeque;
use std::future::{Future, ready};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moka::sync::Cache;

use super::{
    Claim, Decision, FORM_PENDING_SECONDS, FORM_SECONDS, FormKey, LOGIN_FAILURES,
    LOGIN_WINDOW_SECONDS, LimiterResult, LoginBucket, MAX_TRACKED, MINUTE_MICROS, RateLimiter,
    Throttle, interval,
};
use crate::domain::clock::Timestamp;

/// Keys whose GCRA state is kept at once (as many as the key cache holds).
pub const MAX_TRACKED_KEYS: u64 = crate::app::KEY_CACHE_CAPACITY;

/// One GCRA bucket: the theoretical arrival time (microseconds) and the
/// limit it was computed for.
#[derive(Debug)]
struct Bucket(Mutex<(i64, u32)>);

impl Default for Bucket {
    fn default() -> Self {
        Bucket(Mutex::new((i64::MIN, 0)))
    }
}

/// One GCRA step (or a look, with `count == false`). Returns whether the
/// request fits and how far ahead of `now` the arrival time is (after the
/// step when it fits).
fn gcra(bucket: &Bucket, limit: u32, now: Timestamp, count: bool) -> (bool, i64) {
    let limit = limit.max(1);
    let t = now.as_micros();
    let interval = interval(limit);
    // The whole minute may be used as a burst.
    let tolerance = MINUTE_MICROS - interval;
    let mut state = bucket.0.lock().unwrap_or_else(PoisonError::into_inner);
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
        if count {
            *state = (tat, limit);
        }
        return (false, base - t);
    }
    let next = base + interval;
    if count {
        *state = (next, limit);
    }
    (true, next - t)
}

/// A form's state: acting since, or the key it made.
#[derive(Debug, Default)]
enum FormState {
    #[default]
    Free,
    Pending(Timestamp),
    Made(String, Timestamp),
}

pub struct MemoryLimiter {
    /// By key id (made by the server): a fast hasher, not SipHash.
    keys: Cache<String, Arc<Bucket>, foldhash::fast::RandomState>,
    failures: Cache<IpAddr, Arc<Bucket>>,
    logins: Cache<LoginBucket, Arc<Mutex<VecDeque<Timestamp>>>>,
    forms: Cache<FormKey, Arc<Mutex<FormState>>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        MemoryLimiter {
            keys: Cache::builder()
                .max_capacity(MAX_TRACKED_KEYS)
                // A bucket idle for over a minute is full again: forgetting it
                // changes nothing.
                .time_to_idle(Duration::from_secs(61))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            failures: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(Duration::from_secs(61))
                .build(),
            logins: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(Duration::from_secs(LOGIN_WINDOW_SECONDS as u64 + 60))
                .build(),
            forms: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_live(Duration::from_secs(FORM_SECONDS as u64))
                .build(),
        }
    }

    /// Counts one request of key `id` against `limit` per minute.
    pub fn check(&self, id: &str, limit: u32, now: Timestamp) -> Decision {
        let bucket = self
            .keys
            .get_with_by_ref(id, || Arc::new(Bucket::default()));
        let (allowed, ahead) = gcra(&bucket, limit, now, true);
        Decision::from_gcra(allowed, limit, ahead)
    }

    /// Counts one failed attempt from `network`.
    pub fn failure(&self, network: IpAddr, limit: u32, now: Timestamp) -> Decision {
        let bucket = self
            .failures
            .get_with(network, || Arc::new(Bucket::default()));
        let (allowed, ahead) = gcra(&bucket, limit, now, true);
        Decision::from_gcra(allowed, limit, ahead)
    }

    /// Seconds until `network` may fail again (0: now), counting nothing.
    pub fn peek_failure(&self, network: IpAddr, limit: u32, now: Timestamp) -> u64 {
        match self.failures.get(&network) {
            None => 0,
            Some(bucket) => match gcra(&bucket, limit, now, false) {
                (true, _) => 0,
                (false, ahead) => Decision::from_gcra(false, limit, ahead).retry_after_secs,
            },
        }
    }

    pub fn login_blocked_until(&self, b: &LoginBucket, now: Timestamp) -> Option<Timestamp> {
        let q = self.logins.get(b)?;
        let mut q = q.lock().unwrap_or_else(PoisonError::into_inner);
        let window_start = now.plus_seconds(-LOGIN_WINDOW_SECONDS);
        while q.front().is_some_and(|t| *t <= window_start) {
            q.pop_front();
        }
        (q.len() >= LOGIN_FAILURES)
            .then(|| q.front().map(|t| t.plus_seconds(LOGIN_WINDOW_SECONDS)))
            .flatten()
    }

    pub fn record_login_failure(&self, b: &LoginBucket, now: Timestamp) {
        let q = self
            .logins
            .get_with(*b, || Arc::new(Mutex::new(VecDeque::new())));
        let mut q = q.lock().unwrap_or_else(PoisonError::into_inner);
        q.push_back(now);
        while q.len() > LOGIN_FAILURES {
            q.pop_front();
        }
    }

    pub fn clear_login_failures(&self, b: &LoginBucket) {
        self.logins.invalidate(b);
    }

    /// Login entries held now (for tests of the memory bound).
    pub fn login_entries(&self) -> u64 {
        self.logins.run_pending_tasks();
        self.logins.entry_count()
    }

    /// Client networks whose failed attempts are tracked now.
    pub fn tracked_networks(&self) -> u64 {
        self.failures.run_pending_tasks();
        self.failures.entry_count()
    }

    pub fn claim_form(&self, form: &FormKey, now: Timestamp) -> Claim {
        let entry = self.forms.get_with(*form, Default::default);
        let mut state = entry.lock().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            FormState::Made(id, at) if now < at.plus_seconds(FORM_SECONDS) => {
                Claim::Made(id.clone())
            }
            FormState::Pending(since) if now < since.plus_seconds(FORM_PENDING_SECONDS) => {
                Claim::InProgress
            }
            _ => {
                *state = FormState::Pending(now);
                Claim::Claimed
            }
        }
    }

    pub fn record_form_key(&self, form: &FormKey, key_id: &str, now: Timestamp) {
        let entry = self.forms.get_with(*form, Default::default);
        *entry.lock().unwrap_or_else(PoisonError::into_inner) =
            FormState::Made(key_id.to_owned(), now);
    }

    pub fn release_form(&self, form: &FormKey) {
        if let Some(entry) = self.forms.get(form) {
            let mut state = entry.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(*state, FormState::Pending(_)) {
                *state = FormState::Free;
            }
        }
    }
}

impl RateLimiter for MemoryLimiter {
    fn check_key(
        &self,
        key_id: &str,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Decision>> + Send {
        ready(Ok(self.check(key_id, limit, now)))
    }

    fn record_failure(
        &self,
        network: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Decision>> + Send {
        ready(Ok(self.failure(network, limit, now)))
    }

    fn failure_wait(
        &self,
        network: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<u64>> + Send {
        ready(Ok(self.peek_failure(network, limit, now)))
    }
}

impl Throttle for MemoryLimiter {
    fn login_blocked_until(
        &self,
        bucket: &LoginBucket,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Option<Timestamp>>> + Send {
        ready(Ok(MemoryLimiter::login_blocked_until(self, bucket, now)))
    }

    fn record_login_failure(
        &self,
        bucket: &LoginBucket,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<()>> + Send {
        MemoryLimiter::record_login_failure(self, bucket, now);
        ready(Ok(()))
    }

    fn clear_login_failures(
        &self,
        bucket: &LoginBucket,
    ) -> impl Future<Output = LimiterResult<()>> + Send {
        MemoryLimiter::clear_login_failures(self, bucket);
        ready(Ok(()))
    }

    fn claim_form(
        &self,
        form: &FormKey,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Claim>> + Send {
        ready(Ok(MemoryLimiter::claim_form(self, form, now)))
    }

    fn record_form_key(
        &self,
        form: &FormKey,
        key_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<()>> + Send {
        MemoryLimiter::record_form_key(self, form, key_id, now);
        ready(Ok(()))
    }

    fn release_form(&self, form: &FormKey) -> impl Future<Output = LimiterResult<()>> + Send {
        MemoryLimiter::release_form(self, form);
        ready(Ok(()))
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
        let l = MemoryLimiter::new();
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
        let l = MemoryLimiter::new();
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
        assert!(l.check("j", 1, at(0.0)).allowed);
        assert!(!l.check("j", 1, at(0.0)).allowed);
        assert!(l.check("j", 10, at(0.0)).allowed);
    }

    #[test]
    fn exact_under_concurrency() {
        let l = Arc::new(MemoryLimiter::new());
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
    fn failed_attempts_are_bounded() {
        let f = MemoryLimiter::new();
        for i in 0..(MAX_TRACKED + 5_000) {
            let ip = IpAddr::from((i as u32 | 0x0a00_0000).to_be_bytes());
            f.failure(ip, 3, at(0.0));
        }
        assert!(
            f.tracked_networks() <= MAX_TRACKED + MAX_TRACKED / 10,
            "{}",
            f.tracked_networks()
        );
    }
}
