//! Limits every surface shares: per-key rate limits, the failed-attempt
//! limiter per client network, login throttles and web-form de-duplication.
//!
//! Two ports, [`RateLimiter`] and [`Throttle`], each with an in-memory adapter
//! ([`memory::MemoryLimiter`], always present) and a Redis adapter
//! ([`redis::RedisLimiter`], with `--redis-url`) that shares the state across
//! instances. Handlers and services use the facade, [`Limits`]: without Redis
//! it calls the in-memory adapter directly (no boxed future, no allocation on
//! the request path); with Redis it asks Redis and, when Redis does not answer,
//! falls back to the in-memory adapter (`--redis-unavailable local`) or refuses
//! (`deny`).
//!
//! Both adapters take "now" from the injected [`Clock`](crate::domain::clock::Clock)
//! as an argument, so one contract suite runs on both; with Redis, every
//! instance's clock must therefore be synchronised (NTP), since the GCRA state
//! is a time.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::auth::secret::KeyHasher;
use crate::domain::clock::Timestamp;

pub use self::memory::MemoryLimiter;
pub use self::redis::RedisLimiter;

pub(crate) const MINUTE_MICROS: i64 = 60_000_000;
/// Failed logins allowed per (account, client network) in [`LOGIN_WINDOW_SECONDS`].
pub const LOGIN_FAILURES: usize = 10;
pub const LOGIN_WINDOW_SECONDS: i64 = 15 * 60;
/// How long a recorded form keeps the key it made.
pub const FORM_SECONDS: i64 = 24 * 3600;
/// How long a claimed form that has not finished blocks a resend: longer than
/// any create takes, short enough that a crash mid-create does not hold the
/// form for a day.
pub const FORM_PENDING_SECONDS: i64 = 120;
/// How long a resent form waits for the first POST to finish.
pub const FORM_WAIT: Duration = Duration::from_secs(3);
/// Most entries of each kind the in-memory adapter keeps.
pub const MAX_TRACKED: u64 = 100_000;

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

/// GCRA with the whole minute usable as a burst: the emission interval.
pub(crate) fn interval(limit: u32) -> i64 {
    MINUTE_MICROS / i64::from(limit.max(1))
}

impl Decision {
    /// The decision of one GCRA step, from how far ahead of now the
    /// theoretical arrival time is: after the step when allowed, before it
    /// when refused. Both adapters end here, so their answers are the same.
    pub(crate) fn from_gcra(allowed: bool, limit: u32, ahead_micros: i64) -> Decision {
        let limit = limit.max(1);
        let interval = interval(limit);
        let tolerance = MINUTE_MICROS - interval;
        if !allowed {
            return Decision {
                allowed,
                limit,
                remaining: 0,
                reset_secs: ceil_secs(ahead_micros),
                retry_after_secs: ceil_secs(ahead_micros - tolerance).max(1),
            };
        }
        let headroom = tolerance - ahead_micros;
        let remaining = if headroom < 0 {
            0
        } else {
            headroom / interval + 1
        };
        Decision {
            allowed,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(limit).min(limit),
            reset_secs: ceil_secs(ahead_micros),
            retry_after_secs: 0,
        }
    }
}

pub(crate) fn ceil_secs(micros: i64) -> u64 {
    u64::try_from(micros.max(0))
        .unwrap_or(0)
        .div_ceil(1_000_000)
}

/// IPv6 clients are counted by /64: one subscriber usually holds a whole /64.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match crate::domain::net::canonical(ip) {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

/// A login throttle entry: a keyed hash of the account's lower-cased email
/// (never the typed text, so entries have a fixed size) and the client network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoginBucket {
    pub account: [u8; 16],
    pub network: IpAddr,
}

/// A key-making web form: a keyed hash of (user id, form id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FormKey(pub [u8; 16]);

/// What claiming a form found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This POST may act; it records the key it made or releases the claim.
    Claimed,
    /// An earlier POST of this form made this key.
    Made(String),
    /// An earlier POST of this form is still acting.
    InProgress,
}

/// The shared store did not answer, or answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimiterError(pub String);

pub type LimiterResult<T> = Result<T, LimiterError>;

/// Per-key limits and failed attempts per client network (GCRA).
pub trait RateLimiter: Send + Sync {
    /// Counts one request of key `key_id` against `limit` per minute. A
    /// changed limit rescales what was already counted.
    fn check_key(
        &self,
        key_id: &str,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Decision>> + Send;

    /// Counts one failed attempt from `network` (see [`network_of`]).
    fn record_failure(
        &self,
        network: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Decision>> + Send;

    /// Seconds until `network` may fail again without being refused (0: now),
    /// counting nothing.
    fn failure_wait(
        &self,
        network: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<u64>> + Send;
}

/// Login throttles per (account, client network), and key-making forms that
/// act once.
pub trait Throttle: Send + Sync {
    /// When `bucket` may try again, if not now.
    fn login_blocked_until(
        &self,
        bucket: &LoginBucket,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Option<Timestamp>>> + Send;

    fn record_login_failure(
        &self,
        bucket: &LoginBucket,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<()>> + Send;

    fn clear_login_failures(
        &self,
        bucket: &LoginBucket,
    ) -> impl Future<Output = LimiterResult<()>> + Send;

    fn claim_form(
        &self,
        form: &FormKey,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<Claim>> + Send;

    /// The claimed form made `key_id`: a resend finds it for a day.
    fn record_form_key(
        &self,
        form: &FormKey,
        key_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = LimiterResult<()>> + Send;

    /// The claimed form's action failed: it may be sent again.
    fn release_form(&self, form: &FormKey) -> impl Future<Output = LimiterResult<()>> + Send;
}

/// `--redis-unavailable`: what an instance does while Redis does not answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenUnavailable {
    /// Fall back to this instance's own limits, warning at most once a minute.
    #[default]
    Local,
    /// Refuse what needs the shared limits (503).
    Deny,
}

impl WhenUnavailable {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "local" => Ok(WhenUnavailable::Local),
            "deny" => Ok(WhenUnavailable::Deny),
            other => Err(format!("`{other}` is neither `local` nor `deny`")),
        }
    }
}

/// Redis as `/readyz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisStatus {
    NotConfigured,
    Ok,
    Unavailable,
}

impl RedisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisStatus::NotConfigured => "not configured",
            RedisStatus::Ok => "ok",
            RedisStatus::Unavailable => "unavailable",
        }
    }
}

/// Redis is not answering and `--redis-unavailable deny` says to refuse.
#[derive(Debug, thiserror::Error)]
#[error("the shared limits (Redis) are not answering and --redis-unavailable is deny")]
pub struct Unavailable;

/// A form this POST may act on; where it was claimed, so the outcome is
/// recorded there too.
#[derive(Debug)]
pub struct FormClaim {
    key: FormKey,
    shared: bool,
}

/// What a key-making form's POST should do.
#[derive(Debug)]
pub enum FormStart {
    Act(FormClaim),
    /// An earlier POST made this key.
    Made(String),
    /// An earlier POST is still acting after [`FORM_WAIT`].
    Busy,
}

struct Shared {
    redis: RedisLimiter,
    mode: WhenUnavailable,
    started: Instant,
    /// Seconds after `started` of the last "Redis unavailable" warning, plus one (0: never).
    last_warning: AtomicU64,
}

impl Shared {
    /// Redis failed or is down: `Err` in deny mode; a warning at most once a minute.
    fn fallback(&self, cause: Option<&LimiterError>) -> Result<(), Unavailable> {
        if let Some(e) = cause {
            self.redis.mark_down();
            tracing::debug!(error = %e, "redis: a limiter call failed");
        }
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 60)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            match self.mode {
                WhenUnavailable::Local => tracing::warn!(
                    error = cause.map(|e| e.0.as_str()).unwrap_or("not answering"),
                    "redis is unavailable: limits fall back to this instance's own (--redis-unavailable local) until it answers again"
                ),
                WhenUnavailable::Deny => tracing::warn!(
                    error = cause.map(|e| e.0.as_str()).unwrap_or("not answering"),
                    "redis is unavailable: keyed requests, logins and key forms get 503 (--redis-unavailable deny) until it answers again"
                ),
            }
        }
        match self.mode {
            WhenUnavailable::Local => Ok(()),
            WhenUnavailable::Deny => Err(Unavailable),
        }
    }
}

/// The facade every surface uses: the in-memory adapter, and Redis when configured.
pub struct Limits {
    memory: MemoryLimiter,
    shared: Option<Shared>,
    hasher: KeyHasher,
    failed_auth_limit: u32,
}

/// Asks Redis when it is configured and up, else (or when it fails) the
/// in-memory adapter — unless deny mode says to refuse. A macro rather than a
/// closure taking futures, so nothing is boxed.
macro_rules! shared_or_local {
    ($self:ident, |$redis:ident| $shared:expr, $local:expr) => {{
        if let Some(s) = &$self.shared {
            if s.redis.is_up() {
                let $redis = &s.redis;
                match $shared.await {
                    Ok(v) => return Ok(v),
                    Err(e) => s.fallback(Some(&e))?,
                }
            } else {
                s.fallback(None)?;
            }
        }
        Ok($local)
    }};
}

impl Limits {
    /// Limits kept in this process only.
    pub fn in_memory(hasher: KeyHasher, failed_auth_limit: u32) -> Self {
        Limits {
            memory: MemoryLimiter::new(),
            shared: None,
            hasher,
            failed_auth_limit: failed_auth_limit.max(1),
        }
    }

    /// Limits shared through `redis`, with this process's own as the fallback.
    pub fn with_redis(
        hasher: KeyHasher,
        failed_auth_limit: u32,
        redis: RedisLimiter,
        mode: WhenUnavailable,
    ) -> Self {
        Limits {
            shared: Some(Shared {
                redis,
                mode,
                started: Instant::now(),
                last_warning: AtomicU64::new(0),
            }),
            ..Limits::in_memory(hasher, failed_auth_limit)
        }
    }

    /// The in-memory adapter (the fallback, and all there is without Redis).
    pub fn memory(&self) -> &MemoryLimiter {
        &self.memory
    }

    pub fn redis(&self) -> Option<&RedisLimiter> {
        self.shared.as_ref().map(|s| &s.redis)
    }

    pub fn redis_status(&self) -> RedisStatus {
        match &self.shared {
            None => RedisStatus::NotConfigured,
            Some(s) if s.redis.is_up() => RedisStatus::Ok,
            Some(_) => RedisStatus::Unavailable,
        }
    }

    /// Whether readiness fails with Redis down.
    pub fn ready(&self) -> bool {
        match &self.shared {
            None => true,
            Some(s) => s.mode == WhenUnavailable::Local || s.redis.is_up(),
        }
    }

    /// Counts one request of a verified key.
    pub async fn check_key(
        &self,
        key_id: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<Decision, Unavailable> {
        shared_or_local!(
            self,
            |r| r.check_key(key_id, limit, now),
            self.memory.check(key_id, limit, now)
        )
    }

    /// Counts one failed authentication from `ip` (keyed requests and logins).
    pub async fn record_failed_attempt(
        &self,
        ip: IpAddr,
        now: Timestamp,
    ) -> Result<Decision, Unavailable> {
        let network = network_of(ip);
        let limit = self.failed_auth_limit;
        shared_or_local!(
            self,
            |r| r.record_failure(network, limit, now),
            self.memory.failure(network, limit, now)
        )
    }

    async fn failure_wait(&self, ip: IpAddr, now: Timestamp) -> Result<u64, Unavailable> {
        let network = network_of(ip);
        let limit = self.failed_auth_limit;
        shared_or_local!(
            self,
            |r| r.failure_wait(network, limit, now),
            self.memory.peek_failure(network, limit, now)
        )
    }

    /// The throttle entry of `email` from `ip`; `None` when the text typed
    /// is no email, so no account can match it (only the address counts).
    fn login_bucket(&self, email: &str, ip: IpAddr) -> Option<LoginBucket> {
        let email = crate::domain::user::Email::parse(email).ok()?;
        let mac = self
            .hasher
            .hash(&format!("login-throttle:{}", email.as_str()));
        let mut account = [0u8; 16];
        account.copy_from_slice(&mac[..16]);
        Some(LoginBucket {
            account,
            network: network_of(ip),
        })
    }

    async fn pair_blocked_until(
        &self,
        b: &LoginBucket,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, Unavailable> {
        shared_or_local!(
            self,
            |r| r.login_blocked_until(b, now),
            self.memory.login_blocked_until(b, now)
        )
    }

    async fn pair_record_failure(
        &self,
        b: &LoginBucket,
        now: Timestamp,
    ) -> Result<(), Unavailable> {
        shared_or_local!(
            self,
            |r| r.record_login_failure(b, now),
            self.memory.record_login_failure(b, now)
        )
    }

    /// When a login for `email` from `ip` may be tried again, if not now:
    /// the later of the (account, network) entry and the address's failed
    /// attempts. Other addresses' failures for the account do not count.
    pub async fn login_blocked_until(
        &self,
        email: &str,
        ip: IpAddr,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, Unavailable> {
        let wait = self.failure_wait(ip, now).await?;
        let by_ip = (wait > 0).then(|| now.plus_seconds(i64::try_from(wait).unwrap_or(60)));
        let by_account = match self.login_bucket(email, ip) {
            None => None,
            Some(b) => self.pair_blocked_until(&b, now).await?,
        };
        Ok(by_ip.into_iter().chain(by_account).max())
    }

    /// Counts a failed login against (account, network) and the address;
    /// returns until when this failure blocks further tries, if it does.
    pub async fn record_login_failure(
        &self,
        email: &str,
        ip: IpAddr,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, Unavailable> {
        let by_account = match self.login_bucket(email, ip) {
            Some(b) => {
                self.pair_record_failure(&b, now).await?;
                self.pair_blocked_until(&b, now).await?
            }
            None => None,
        };
        let d = self.record_failed_attempt(ip, now).await?;
        let by_ip =
            (!d.allowed).then(|| now.plus_seconds(i64::try_from(d.retry_after_secs).unwrap_or(60)));
        Ok(by_ip.into_iter().chain(by_account).max())
    }

    /// A successful login clears that (account, network) entry.
    pub async fn clear_login_failures(&self, email: &str, ip: IpAddr) -> Result<(), Unavailable> {
        let Some(b) = self.login_bucket(email, ip) else {
            return Ok(());
        };
        // Cleared in memory too: a fallback period may have counted there.
        self.memory.clear_login_failures(&b);
        shared_or_local!(self, |r| r.clear_login_failures(&b), ())
    }

    fn form_key(&self, user_id: &str, form_id: &str) -> Option<FormKey> {
        let usable = (16..=64).contains(&form_id.len())
            && form_id.bytes().all(|b| b.is_ascii_alphanumeric());
        usable.then(|| {
            let mac = self.hasher.hash(&format!("form:{user_id}:{form_id}"));
            let mut k = [0u8; 16];
            k.copy_from_slice(&mac[..16]);
            FormKey(k)
        })
    }

    async fn claim_once(
        &self,
        key: &FormKey,
        now: Timestamp,
    ) -> Result<(Claim, bool), Unavailable> {
        shared_or_local!(
            self,
            |r| async { r.claim_form(key, now).await.map(|c| (c, true)) },
            (self.memory.claim_form(key, now), false)
        )
    }

    /// Forms that make a key carry a one-time `form_id`: sending the same
    /// form again (a reload of the secret page, a double click, "resend", on
    /// any instance) must not make a second key. `None` when the form has no
    /// usable id (it just acts). A resend while the first POST still acts
    /// waits up to [`FORM_WAIT`] for it.
    pub async fn start_form(
        &self,
        user_id: &str,
        form_id: &str,
        now: Timestamp,
    ) -> Result<Option<FormStart>, Unavailable> {
        let Some(key) = self.form_key(user_id, form_id) else {
            return Ok(None);
        };
        let deadline = Instant::now() + FORM_WAIT;
        loop {
            let (claim, shared) = self.claim_once(&key, now).await?;
            match claim {
                Claim::Claimed => return Ok(Some(FormStart::Act(FormClaim { key, shared }))),
                Claim::Made(id) => return Ok(Some(FormStart::Made(id))),
                Claim::InProgress if Instant::now() >= deadline => {
                    return Ok(Some(FormStart::Busy));
                }
                Claim::InProgress => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The claimed form made `key_id`.
    pub async fn finish_form(&self, claim: FormClaim, key_id: &str, now: Timestamp) {
        if claim.shared
            && let Some(s) = &self.shared
        {
            if let Err(e) = s.redis.record_form_key(&claim.key, key_id, now).await {
                let _ = s.fallback(Some(&e));
            } else {
                return;
            }
        }
        self.memory.record_form_key(&claim.key, key_id, now);
    }

    /// The claimed form's action failed: it may be sent again.
    pub async fn release_form(&self, claim: FormClaim) {
        if claim.shared
            && let Some(s) = &self.shared
        {
            if let Err(e) = s.redis.release_form(&claim.key).await {
                let _ = s.fallback(Some(&e));
            }
            return;
        }
        self.memory.release_form(&claim.key);
    }
}
