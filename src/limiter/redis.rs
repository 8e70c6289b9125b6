//! The Redis adapter: the same limits as [`super::memory`], shared by every
//! instance using the same Redis.
//!
//! - GCRA is one Lua script ([`GCRA`]) run with `EVALSHA`: atomic, one round
//!   trip per check. `redis::Script` loads the script again when Redis
//!   answers `NOSCRIPT` (a restarted Redis, `SCRIPT FLUSH`).
//! - One [`ConnectionManager`] per instance: a multiplexed connection, so
//!   concurrent checks pipeline over it (no lock around it, no connection
//!   per request), and it reconnects by itself.
//! - "Now" comes from the caller's clock, as for the in-memory adapter, so
//!   instances sharing a Redis need synchronised clocks.
//! - Key names are namespaced (`latchkey:…`) and never hold typed text: key
//!   ids, client networks, keyed hashes of emails and form ids. Every key
//!   expires (`PEXPIRE`) once forgetting it changes nothing, so Redis memory
//!   stays bounded.
//! - A background task pings Redis every second and keeps [`RedisLimiter::is_up`]
//!   current: while Redis is down, checks do not wait on it, and within a
//!   second or two of it answering again they are shared again.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, FromRedisValue, Script, ScriptInvocation};

use super::{
    Claim, Decision, FORM_PENDING_SECONDS, FORM_SECONDS, FormKey, LOGIN_FAILURES,
    LOGIN_WINDOW_SECONDS, LimiterError, LimiterResult, LoginBucket, RateLimiter, Throttle,
};
use crate::domain::clock::Timestamp;

/// The namespace of every key latchkey writes.
pub const DEFAULT_PREFIX: &str = "latchkey:";

/// GCRA, as in the in-memory adapter. KEYS[1]: the bucket, a hash holding the
/// theoretical arrival time `t` (µs) and the limit `l` it was computed for.
/// ARGV: now (µs), the limit per minute, 1 to count or 0 to look. Returns
/// {allowed, how far ahead of now the arrival time is}. Numbers stay below
/// 2^53, so Lua's doubles hold them exactly; they are written with `%.0f`
/// because Lua's own conversion would round them.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local count = ARGV[3] == '1'
local minute = 60000000
local interval = math.floor(minute / limit)
local tolerance = minute - interval
local state = redis.call('HMGET', KEYS[1], 't', 'l')
local tat = tonumber(state[1]) or now
local old = tonumber(state[2]) or 0
if old ~= 0 and old ~= limit and tat > now then
  tat = now + math.floor((tat - now) * old / limit)
end
local base = math.max(tat, now)
local allowed = 1
local stored = tat
local ahead
if base - now > tolerance then
  allowed = 0
  ahead = base - now
else
  stored = base + interval
  ahead = stored - now
end
if count then
  redis.call('HSET', KEYS[1], 't', string.format('%.0f', stored), 'l', limit)
  redis.call('PEXPIRE', KEYS[1], math.floor(math.max(stored - now, 0) / 1000) + 1000)
end
return {allowed, ahead}
";

/// Claims a form once. KEYS[1]: the form; ARGV[1]: how long a claim that
/// has not finished holds (ms). Returns '' when claimed, else the value
/// found ('pending', or 'made:<key id>').
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[1]) then
  return ''
end
return redis.call('GET', KEYS[1]) or ''
";

/// Releases a claim that has not finished (never a recorded key).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    up: Arc<AtomicBool>,
    gcra: Script,
    claim: Script,
    release: Script,
    pinger: tokio::task::JoinHandle<()>,
}

impl Drop for RedisLimiter {
    fn drop(&mut self) {
        self.pinger.abort();
    }
}

fn err(e: redis::RedisError) -> LimiterError {
    LimiterError(e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Whether `url` is one the Redis client accepts (scheme, host, port,
/// database number), without connecting.
pub fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn ping(conn: &mut ConnectionManager) -> bool {
    let cmd = redis::cmd("PING");
    let pong = cmd.query_async::<String>(conn);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), pong).await,
        Ok(Ok(_))
    )
}

impl RedisLimiter {
    /// Connects to `url` (keys under [`DEFAULT_PREFIX`]). A URL the client
    /// cannot parse is an error; a Redis that does not answer is not: the
    /// limiter starts "down" and comes up when Redis answers (see [`Self::is_up`]).
    /// Must run inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<RedisLimiter, String> {
        Self::connect_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// As [`Self::connect`], with keys under `prefix` (tests share one Redis).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisLimiter, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mut conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        let up = Arc::new(AtomicBool::new(ping(&mut conn).await));
        let pinger = tokio::spawn({
            let (mut conn, up) = (conn.clone(), up.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let now_up = ping(&mut conn).await;
                    let was_up = up.swap(now_up, Ordering::Relaxed);
                    if now_up && !was_up {
                        tracing::info!("redis answers again: limits are shared again");
                    }
                }
            }
        });
        Ok(RedisLimiter {
            conn,
            prefix: prefix.to_owned(),
            up,
            gcra: Script::new(GCRA),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            pinger,
        })
    }

    /// Whether Redis answered the last ping (and no call failed since).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A call failed: answer from elsewhere until the next successful ping.
    pub fn mark_down(&self) {
        self.up.store(false, Ordering::Relaxed);
    }

    /// Pings now, updating [`Self::is_up`].
    pub async fn ping_now(&self) -> bool {
        let ok = ping(&mut self.conn.clone()).await;
        self.up.store(ok, Ordering::Relaxed);
        ok
    }

    /// Runs a script. `redis::Script` loads it again after `NOSCRIPT`; a
    /// flush racing that reload (another `SCRIPT FLUSH`) is tried again too.
    async fn invoke<T: FromRedisValue>(&self, script: &ScriptInvocation<'_>) -> LimiterResult<T> {
        let mut conn = self.conn.clone();
        let mut tries = 0;
        loop {
            match script.invoke_async(&mut conn).await {
                Err(e)
                    if tries < 3
                        && e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    tries += 1;
                }
                other => return other.map_err(err),
            }
        }
    }

    async fn run_gcra(
        &self,
        key: String,
        limit: u32,
        now: Timestamp,
        count: bool,
    ) -> LimiterResult<(bool, i64)> {
        let limit = limit.max(1);
        let mut script = self.gcra.key(key);
        script.arg(now.as_micros()).arg(limit).arg(u8::from(count));
        let (allowed, ahead): (i64, i64) = self.invoke(&script).await?;
        Ok((allowed == 1, ahead))
    }

    fn login_key(&self, b: &LoginBucket) -> String {
        format!("{}login:{}:{}", self.prefix, hex(&b.account), b.network)
    }

    fn form_key(&self, f: &FormKey) -> String {
        format!("{}form:{}", self.prefix, hex(&f.0))
    }
}

impl RateLimiter for RedisLimiter {
    async fn check_key(&self, key_id: &str, limit: u32, now: Timestamp) -> LimiterResult<Decision> {
        let key = format!("{}rl:{key_id}", self.prefix);
        let (allowed, ahead) = self.run_gcra(key, limit, now, true).await?;
        Ok(Decision::from_gcra(allowed, limit, ahead))
    }

    async fn record_failure(
        &self,
        network: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> LimiterResult<Decision> {
        let key = format!("{}fail:{network}", self.prefix);
        let (allowed, ahead) = self.run_gcra(key, limit, now, true).await?;
        Ok(Decision::from_gcra(allowed, limit, ahead))
    }

    async fn failure_wait(
        &self,
        network: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> LimiterResult<u64> {
        let key = format!("{}fail:{network}", self.prefix);
        Ok(match self.run_gcra(key, limit, now, false).await? {
            (true, _) => 0,
            (false, ahead) => Decision::from_gcra(false, limit, ahead).retry_after_secs,
        })
    }
}

impl Throttle for RedisLimiter {
    async fn login_blocked_until(
        &self,
        bucket: &LoginBucket,
        now: Timestamp,
    ) -> LimiterResult<Option<Timestamp>> {
        let mut conn = self.conn.clone();
        let times: Vec<i64> = conn
            .lrange(self.login_key(bucket), 0, -1)
            .await
            .map_err(err)?;
        let window_start = now.plus_seconds(-LOGIN_WINDOW_SECONDS).as_micros();
        let recent: Vec<i64> = times.into_iter().filter(|t| *t > window_start).collect();
        Ok((recent.len() >= LOGIN_FAILURES)
            .then(|| recent.iter().min().copied())
            .flatten()
            .map(|first| Timestamp::from_micros(first).plus_seconds(LOGIN_WINDOW_SECONDS)))
    }

    async fn record_login_failure(
        &self,
        bucket: &LoginBucket,
        now: Timestamp,
    ) -> LimiterResult<()> {
        let key = self.login_key(bucket);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .rpush(&key, now.as_micros())
            .ignore()
            .ltrim(&key, -(LOGIN_FAILURES as isize), -1)
            .ignore()
            .pexpire(&key, LOGIN_WINDOW_SECONDS * 1000)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }

    async fn clear_login_failures(&self, bucket: &LoginBucket) -> LimiterResult<()> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.login_key(bucket)).await.map_err(err)
    }

    async fn claim_form(&self, form: &FormKey, _now: Timestamp) -> LimiterResult<Claim> {
        let mut script = self.claim.key(self.form_key(form));
        script.arg(FORM_PENDING_SECONDS * 1000);
        let found: String = self.invoke(&script).await?;
        Ok(if found.is_empty() {
            Claim::Claimed
        } else if let Some(id) = found.strip_prefix("made:") {
            Claim::Made(id.to_owned())
        } else {
            Claim::InProgress
        })
    }

    async fn record_form_key(
        &self,
        form: &FormKey,
        key_id: &str,
        _now: Timestamp,
    ) -> LimiterResult<()> {
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(
            self.form_key(form),
            format!("made:{key_id}"),
            (FORM_SECONDS * 1000) as u64,
        )
        .await
        .map_err(err)
    }

    async fn release_form(&self, form: &FormKey) -> LimiterResult<()> {
        let script = self.release.key(self.form_key(form));
        self.invoke::<i64>(&script).await.map(|_| ())
    }
}
