//! The limiter contract: one set of rules, run on every adapter — the
//! in-memory one and the Redis one (`memory::…` and `redis::…`). Each
//! contract gets two handles, `a` and `b`: for memory the same limiter, for
//! Redis two separate adapters on one server (two latchkey instances), so
//! every rule is also checked across instances.

#[path = "common/redis.rs"]
mod redis_server;

use std::net::IpAddr;
use std::sync::Arc;

use latchkey::domain::clock::Timestamp;
use latchkey::limiter::{
    Claim, FormKey, LOGIN_WINDOW_SECONDS, LoginBucket, MemoryLimiter, RateLimiter, RedisLimiter,
    Throttle, network_of,
};

fn at(secs: f64) -> Timestamp {
    Timestamp::from_micros(1_795_000_000_000_000 + (secs * 1e6) as i64)
}

fn net(s: &str) -> IpAddr {
    network_of(s.parse().unwrap())
}

macro_rules! contracts {
    ($($contract:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let a = std::sync::Arc::new(latchkey::limiter::MemoryLimiter::new());
                    super::$contract(a.clone(), a).await;
                }
            )+
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let (a, b) = super::two_redis_instances().await;
                    super::$contract(a, b).await;
                }
            )+
        }
    };
}

async fn two_redis_instances() -> (Arc<RedisLimiter>, Arc<RedisLimiter>) {
    let url = redis_server::url();
    let prefix = redis_server::prefix();
    let a = RedisLimiter::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    let b = RedisLimiter::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    assert!(a.is_up() && b.is_up(), "the test Redis at {url} answers");
    (Arc::new(a), Arc::new(b))
}

contracts!(
    the_whole_minute_is_a_burst_then_it_refills_evenly,
    a_refusal_says_when_to_retry_and_when_the_budget_is_whole,
    a_changed_limit_keeps_the_requests_already_counted,
    exact_under_concurrency_across_instances,
    failed_attempts_are_counted_per_network,
    login_failures_count_per_account_and_network,
    a_form_is_claimed_once_and_finds_the_key_it_made,
);

async fn the_whole_minute_is_a_burst_then_it_refills_evenly<L: RateLimiter>(a: Arc<L>, b: Arc<L>) {
    let first = a.check_key("key_burst", 100, at(0.0)).await.unwrap();
    assert_eq!(
        (first.allowed, first.remaining, first.limit),
        (true, 99, 100)
    );
    for i in 1..100 {
        let l = if i % 2 == 0 { &a } else { &b };
        let d = l.check_key("key_burst", 100, at(0.0)).await.unwrap();
        assert!(d.allowed, "request {i}");
        assert_eq!(d.remaining, 99 - i);
    }
    let denied = b.check_key("key_burst", 100, at(0.0)).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_secs, 1, "one request's worth is 0.6 s");
    assert_eq!(denied.reset_secs, 60);
    // 0.6 s later exactly one more fits.
    assert!(
        a.check_key("key_burst", 100, at(0.6))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !b.check_key("key_burst", 100, at(0.6))
            .await
            .unwrap()
            .allowed
    );
    // After a full minute the budget is whole again.
    let d = a.check_key("key_burst", 100, at(61.0)).await.unwrap();
    assert_eq!(d.remaining, 99);
}

async fn a_refusal_says_when_to_retry_and_when_the_budget_is_whole<L: RateLimiter>(
    a: Arc<L>,
    b: Arc<L>,
) {
    let one = a.check_key("key_two", 2, at(0.0)).await.unwrap();
    assert_eq!((one.allowed, one.remaining, one.reset_secs), (true, 1, 30));
    let two = b.check_key("key_two", 2, at(0.0)).await.unwrap();
    assert_eq!((two.allowed, two.remaining, two.reset_secs), (true, 0, 60));
    let three = a.check_key("key_two", 2, at(0.0)).await.unwrap();
    assert_eq!(
        three,
        latchkey::limiter::Decision {
            allowed: false,
            limit: 2,
            remaining: 0,
            reset_secs: 60,
            retry_after_secs: 30,
        }
    );
    // A refusal is not counted: 30 s later one fits again.
    assert!(b.check_key("key_two", 2, at(30.0)).await.unwrap().allowed);
}

async fn a_changed_limit_keeps_the_requests_already_counted<L: RateLimiter>(a: Arc<L>, b: Arc<L>) {
    for _ in 0..5 {
        assert!(a.check_key("key_k", 100, at(0.0)).await.unwrap().allowed);
    }
    // Lowered to 4 a minute on another instance: 5 already used, refused at once.
    let d = b.check_key("key_k", 4, at(0.0)).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.limit, 4);
    // Raised to 100 again: 5 used, 95 left.
    let d = a.check_key("key_k", 100, at(0.0)).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 94);
    // Raising the limit of a throttled key frees it at once.
    assert!(a.check_key("key_j", 1, at(0.0)).await.unwrap().allowed);
    assert!(!b.check_key("key_j", 1, at(0.0)).await.unwrap().allowed);
    assert!(a.check_key("key_j", 10, at(0.0)).await.unwrap().allowed);
}

async fn exact_under_concurrency_across_instances<L: RateLimiter + 'static>(a: Arc<L>, b: Arc<L>) {
    let mut tasks = Vec::new();
    for task in 0..8 {
        let l = if task % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0;
            for _ in 0..125 {
                if l.check_key("key_busy", 100, at(0.0)).await.unwrap().allowed {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    assert_eq!(allowed, 100, "8 tasks × 125 checks of one 100/min key");
}

async fn failed_attempts_are_counted_per_network<L: RateLimiter>(a: Arc<L>, b: Arc<L>) {
    // Two addresses of one IPv6 /64 are one network.
    let v6 = net("2001:db8:1:2:aaaa::1");
    assert_eq!(v6, net("2001:db8:1:2:bbbb::9"));
    assert_ne!(v6, net("2001:db8:1:3::1"));
    assert_eq!(a.failure_wait(v6, 3, at(0.0)).await.unwrap(), 0);
    for i in 0..3 {
        let l = if i % 2 == 0 { &a } else { &b };
        assert!(
            l.record_failure(v6, 3, at(0.0)).await.unwrap().allowed,
            "{i}"
        );
    }
    let refused = b.record_failure(v6, 3, at(0.0)).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_secs, 20);
    assert_eq!(a.failure_wait(v6, 3, at(0.0)).await.unwrap(), 20);
    // Looking counts nothing.
    assert_eq!(b.failure_wait(v6, 3, at(0.0)).await.unwrap(), 20);
    // Another network is not affected.
    let v4 = net("192.0.2.1");
    assert_eq!(a.failure_wait(v4, 3, at(0.0)).await.unwrap(), 0);
    assert!(b.record_failure(v4, 3, at(0.0)).await.unwrap().allowed);
    // A minute later the first network may fail again.
    assert_eq!(a.failure_wait(v6, 3, at(61.0)).await.unwrap(), 0);
}

async fn login_failures_count_per_account_and_network<L: Throttle>(a: Arc<L>, b: Arc<L>) {
    let owner = LoginBucket {
        account: [7; 16],
        network: net("203.0.113.10"),
    };
    let owner_elsewhere = LoginBucket {
        network: net("198.51.100.20"),
        ..owner
    };
    let other_account = LoginBucket {
        account: [8; 16],
        ..owner
    };
    for i in 0..9 {
        let l = if i % 2 == 0 { &a } else { &b };
        l.record_login_failure(&owner, at(f64::from(i)))
            .await
            .unwrap();
        assert_eq!(a.login_blocked_until(&owner, at(10.0)).await.unwrap(), None);
    }
    b.record_login_failure(&owner, at(9.0)).await.unwrap();
    let until = a.login_blocked_until(&owner, at(10.0)).await.unwrap();
    assert_eq!(until, Some(at(0.0).plus_seconds(LOGIN_WINDOW_SECONDS)));
    // The same account from another network, and another account from the
    // same network, are not blocked.
    assert_eq!(
        b.login_blocked_until(&owner_elsewhere, at(10.0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        b.login_blocked_until(&other_account, at(10.0))
            .await
            .unwrap(),
        None
    );
    // The window slides: once the first failure is old enough, one more try.
    let later = at(0.5).plus_seconds(LOGIN_WINDOW_SECONDS);
    assert_eq!(a.login_blocked_until(&owner, later).await.unwrap(), None);
    // A success clears the entry.
    b.clear_login_failures(&owner).await.unwrap();
    assert_eq!(a.login_blocked_until(&owner, at(10.0)).await.unwrap(), None);
}

async fn a_form_is_claimed_once_and_finds_the_key_it_made<L: Throttle>(a: Arc<L>, b: Arc<L>) {
    let form = FormKey([1; 16]);
    assert_eq!(a.claim_form(&form, at(0.0)).await.unwrap(), Claim::Claimed);
    // A resend on another instance while the first still acts.
    assert_eq!(
        b.claim_form(&form, at(0.1)).await.unwrap(),
        Claim::InProgress
    );
    a.record_form_key(&form, "key_made", at(0.2)).await.unwrap();
    assert_eq!(
        b.claim_form(&form, at(0.3)).await.unwrap(),
        Claim::Made("key_made".into())
    );
    // Releasing a recorded form changes nothing.
    b.release_form(&form).await.unwrap();
    assert_eq!(
        a.claim_form(&form, at(0.4)).await.unwrap(),
        Claim::Made("key_made".into())
    );
    // A failed first action releases its claim: the form may be sent again.
    let failed = FormKey([2; 16]);
    assert_eq!(
        a.claim_form(&failed, at(0.0)).await.unwrap(),
        Claim::Claimed
    );
    a.release_form(&failed).await.unwrap();
    assert_eq!(
        b.claim_form(&failed, at(0.1)).await.unwrap(),
        Claim::Claimed
    );
}

/// A flushed script cache (or a restarted Redis) is not an error: the
/// script is loaded again.
#[tokio::test]
async fn a_flushed_script_cache_is_reloaded_not_an_error() {
    let (a, _) = two_redis_instances().await;
    assert!(a.check_key("key_flush", 10, at(0.0)).await.unwrap().allowed);
    let reply = redis_server::send("SCRIPT FLUSH").expect("the test Redis answers");
    assert!(reply.starts_with("+OK"), "{reply}");
    let d = a.check_key("key_flush", 10, at(0.0)).await.unwrap();
    assert!(d.allowed);
    assert_eq!(
        d.remaining, 8,
        "the state survived, only the script was gone"
    );
    redis_server::send("SCRIPT FLUSH");
    assert_eq!(
        a.claim_form(&FormKey([3; 16]), at(0.0)).await.unwrap(),
        Claim::Claimed
    );
    redis_server::send("SCRIPT FLUSH");
    a.release_form(&FormKey([3; 16])).await.unwrap();
}

/// Every key the Redis adapter writes is namespaced and expires, and none
/// holds an email or a form id.
#[tokio::test]
async fn redis_keys_are_namespaced_expire_and_hold_no_typed_text() {
    let url = redis_server::url();
    let prefix = redis_server::prefix();
    let a = RedisLimiter::connect_with_prefix(&url, &prefix)
        .await
        .unwrap();
    a.check_key("key_x", 10, at(0.0)).await.unwrap();
    a.record_failure(net("192.0.2.7"), 10, at(0.0))
        .await
        .unwrap();
    let bucket = LoginBucket {
        account: [9; 16],
        network: net("192.0.2.7"),
    };
    a.record_login_failure(&bucket, at(0.0)).await.unwrap();
    a.claim_form(&FormKey([4; 16]), at(0.0)).await.unwrap();
    let keys = redis_server::send(&format!("KEYS {prefix}*")).unwrap();
    let names: Vec<&str> = keys
        .lines()
        .filter(|l| l.starts_with("latchkey:"))
        .collect();
    assert_eq!(names.len(), 4, "{keys}");
    for name in names {
        assert!(name.starts_with(&prefix), "{name}");
        let ttl = redis_server::send(&format!("PTTL {name}")).unwrap();
        let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
        assert!(ttl > 0, "{name} expires (PTTL {ttl})");
    }
}

/// The in-memory adapter's login entries are keyed by a fixed-size hash.
#[test]
fn memory_login_entries_have_a_fixed_size_key() {
    assert_eq!(
        std::mem::size_of::<LoginBucket>(),
        16 + std::mem::size_of::<IpAddr>()
    );
    let m = MemoryLimiter::new();
    assert_eq!(m.login_entries(), 0);
}

/// The facade's form flow: the first POST acts; a resend while it acts waits
/// a moment, then is told the form is being processed; once the key is
/// recorded a resend finds it; a failed action releases the form.
#[tokio::test]
async fn a_resent_form_waits_then_is_busy_then_finds_the_key() {
    use latchkey::auth::secret::{KeyHasher, ServerSecret};
    use latchkey::limiter::{FORM_WAIT, FormStart, Limits, WhenUnavailable};
    let hasher = KeyHasher::new(&ServerSecret::new(vec![7; 32]).unwrap());
    let memory = Limits::in_memory(hasher.clone(), 30);
    let url = redis_server::url();
    let redis = RedisLimiter::connect_with_prefix(&url, &redis_server::prefix())
        .await
        .unwrap();
    let shared = Limits::with_redis(hasher, 30, redis, WhenUnavailable::Deny);
    for limits in [memory, shared] {
        let form = "f0rm1d0f5ixteenchars";
        let Some(FormStart::Act(claim)) = limits.start_form("usr_1", form, at(0.0)).await.unwrap()
        else {
            panic!("the first POST acts");
        };
        let started = std::time::Instant::now();
        let busy = limits.start_form("usr_1", form, at(0.1)).await.unwrap();
        assert!(matches!(busy, Some(FormStart::Busy)), "{busy:?}");
        assert!(
            started.elapsed() >= FORM_WAIT,
            "it waited for the first POST"
        );
        limits.finish_form(claim, "key_first", at(0.2)).await;
        let made = limits.start_form("usr_1", form, at(0.3)).await.unwrap();
        assert!(
            matches!(made, Some(FormStart::Made(ref id)) if id == "key_first"),
            "{made:?}"
        );
        // Another user's form with the same id is another form.
        let other = limits.start_form("usr_2", form, at(0.3)).await.unwrap();
        let Some(FormStart::Act(other)) = other else {
            panic!("{other:?}");
        };
        // A failed action releases the form: it may be sent again.
        limits.release_form(other).await;
        let again = limits.start_form("usr_2", form, at(0.4)).await.unwrap();
        assert!(matches!(again, Some(FormStart::Act(_))), "{again:?}");
        // A form without a usable id just acts.
        assert!(
            limits
                .start_form("usr_1", "short", at(0.0))
                .await
                .unwrap()
                .is_none()
        );
    }
}
