//! Several real `latchkey serve` instances on one PostgreSQL database
//! (docs/DEPLOY.md): a key change made on one instance or by the CLI is enforced
//! by every instance within 1 s (the delays are printed: run with
//! `--nocapture`); usage counts add up exactly across instances, a SIGTERM
//! flushes and a SIGKILL loses at most the last second; an idempotent POST
//! replayed on another instance answers the same; concurrent order creations
//! across instances get distinct references; instances started together on an
//! empty database and an empty data directory agree on one secret, and one
//! with another secret refuses to start; with one Redis, a key's rate limit
//! and the failed-attempt limit are exact across the instances.
//!
//! Each test gets a fresh database on the throwaway server of `common/pg.rs`
//! and its own processes (`common/cluster.rs`).

#[path = "common/pg.rs"]
mod pg;

#[path = "common/cluster.rs"]
mod cluster;

#[path = "common/redis.rs"]
mod test_redis;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster::Cluster;
use latchkey::domain::clock::{Clock, SystemClock};
use serde_json::{Value, json};

/// Documented (docs/DEPLOY.md): a key change reaches every instance within 1 second.
const DEADLINE: Duration = Duration::from_secs(1);

/// How long a poll goes on before giving up, so a slow propagation is still
/// measured and reported rather than cut off at the deadline.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Rounds per kind of change; the maximum delay is reported.
const ROUNDS: usize = 5;

/// Status and JSON body of a request.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("the instance answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(c: &Cluster, i: usize, path: &str, key: &str) -> (u16, Value) {
    send(c.client.get(format!("{}{path}", c.url(i))).bearer_auth(key)).await
}

async fn post(c: &Cluster, i: usize, path: &str, key: &str, body: &Value) -> (u16, Value) {
    send(
        c.client
            .post(format!("{}{path}", c.url(i)))
            .bearer_auth(key)
            .json(body),
    )
    .await
}

/// The lifetime request count of `key_id`, read from the database.
async fn stored_requests(database_url: &str, key_id: &str) -> u64 {
    let store = latchkey::store::open(database_url)
        .await
        .expect("the store opens");
    store
        .key_usage(key_id, SystemClock.now())
        .await
        .expect("usage reads")
        .requests
        .total
}

// ---------------------------------------------------------------------------
// 1. A key change is enforced everywhere within a second.

#[derive(Clone, Copy, Debug)]
enum Change {
    /// `POST /api/v1/keys/{id}/revoke` on instance 0.
    ApiRevoke,
    /// `latchkey keys revoke ID` against the database.
    CliRevoke,
    /// `DELETE /api/v1/keys/{id}` on instance 0.
    ApiDelete,
    /// `PATCH /api/v1/keys/{id}` on instance 0 taking `clients:read` away.
    PermissionRemoved,
    /// `POST /api/v1/keys/pause` on instance 0 naming the key.
    ApiPause,
    /// `latchkey keys pause --shop S --key ID` against the database.
    CliPause,
}

impl Change {
    /// The request that shows the change, and what it answers afterwards:
    /// (path, status, code).
    fn probe(self) -> (&'static str, u16, &'static str) {
        match self {
            Change::ApiRevoke | Change::CliRevoke => ("/api/v1/me", 401, "revoked_key"),
            Change::ApiDelete => ("/api/v1/me", 401, "invalid_key"),
            Change::PermissionRemoved => ("/api/v1/clients", 403, "insufficient_permission"),
            Change::ApiPause | Change::CliPause => ("/api/v1/me", 403, "key_paused"),
        }
    }
}

/// Polls `path` on instance `i` every ~10 ms until it answers `status`;
/// returns the time since `since`. Anything but 200 or the expected answer
/// fails the test.
async fn refused_after(
    c: &Cluster,
    i: usize,
    key: &str,
    change: Change,
    since: Instant,
) -> Duration {
    let (path, status, code) = change.probe();
    loop {
        let (got, body) = get(c, i, path, key).await;
        let elapsed = since.elapsed();
        if got == status {
            assert_eq!(body["code"], code, "instance {i}, {change:?}: {body}");
            return elapsed;
        }
        assert_eq!(
            got, 200,
            "instance {i}, {change:?}: neither still accepted nor refused: {body}"
        );
        assert!(
            elapsed < GIVE_UP,
            "instance {i} still accepts the key {} ms after {change:?}",
            elapsed.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One round: a fresh key used on every instance (so each has it cached),
/// then `change`; returns the delay until each instance refuses it.
async fn one_round(
    c: &Cluster,
    shop: &str,
    manager: &str,
    change: Change,
    round: usize,
) -> Vec<Duration> {
    let (status, body) = post(
        c,
        0,
        "/api/v1/keys",
        manager,
        &json!({
            "name": format!("Propagation {change:?} {round}"),
            "permissions": ["clients:read", "orders:read"],
            "rate_limit_per_minute": 10000,
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["key"]["id"].as_str().unwrap().to_owned();
    let secret = body["key"]["secret"].as_str().unwrap().to_owned();
    let (path, _, _) = change.probe();
    for i in 0..c.len() {
        let (status, body) = get(c, i, path, &secret).await;
        assert_eq!(status, 200, "instance {i} accepts the new key: {body}");
    }

    let key_path = format!("{}/api/v1/keys/{id}", c.url(0));
    let done = match change {
        Change::ApiRevoke => {
            let (status, body) = post(
                c,
                0,
                &format!("/api/v1/keys/{id}/revoke"),
                manager,
                &json!({}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            Instant::now()
        }
        Change::CliRevoke => {
            let out = c.cli(&["keys", "revoke", &id]);
            assert!(
                out.status.success(),
                "keys revoke: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Instant::now()
        }
        Change::ApiDelete => {
            let (status, body) = send(c.client.delete(&key_path).bearer_auth(manager)).await;
            assert_eq!(status, 204, "{body}");
            Instant::now()
        }
        Change::PermissionRemoved => {
            let (status, body) = send(
                c.client
                    .patch(&key_path)
                    .bearer_auth(manager)
                    .json(&json!({"permissions": ["orders:read"]})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            Instant::now()
        }
        Change::ApiPause => {
            let (status, body) = post(
                c,
                0,
                "/api/v1/keys/pause",
                manager,
                &json!({"key_ids": [id], "reason": "propagation test"}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["paused"], json!([id]), "{body}");
            Instant::now()
        }
        Change::CliPause => {
            let out = c.cli(&["keys", "pause", "--shop", shop, "--key", &id]);
            assert!(
                out.status.success(),
                "keys pause: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Instant::now()
        }
    };
    if !matches!(change, Change::CliRevoke | Change::CliPause) {
        // Documented: immediately on the instance that made the change.
        let (path, status, _) = change.probe();
        let (got, body) = get(c, 0, path, &secret).await;
        assert_eq!(got, status, "instance 0 right after {change:?}: {body}");
    }
    let (a, b, d) = tokio::join!(
        refused_after(c, 0, &secret, change, done),
        refused_after(c, 1, &secret, change, done),
        refused_after(c, 2, &secret, change, done),
    );
    vec![a, b, d]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_delete_pause_or_permission_change_on_one_instance_or_by_the_cli_is_enforced_by_all_within_a_second()
 {
    let db = pg::fresh_database().await;
    let c = Cluster::builder(&db.url()).instances(3).start().await;
    let shop = c.new_shop("Propagation Phones");
    let (_, manager) = c.new_key(
        &shop,
        "Key manager",
        &["keys:read", "keys:write", "clients:read", "orders:read"],
    );

    let mut report = Vec::new();
    for change in [
        Change::ApiRevoke,
        Change::CliRevoke,
        Change::ApiDelete,
        Change::PermissionRemoved,
        Change::ApiPause,
        Change::CliPause,
    ] {
        let mut worst = Duration::ZERO;
        for round in 1..=ROUNDS {
            let delays = one_round(&c, &shop, &manager, change, round).await;
            let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
            eprintln!("{change:?} round {round}: refused after {ms:?} ms on instances 0, 1, 2");
            worst = worst.max(delays.into_iter().max().unwrap());
        }
        eprintln!(
            "{change:?}: max delay over {ROUNDS} rounds: {} ms",
            worst.as_millis()
        );
        report.push((change, worst));
    }
    for (change, worst) in report {
        assert!(
            worst <= DEADLINE,
            "{change:?} took {} ms to reach every instance (documented: within 1 s)",
            worst.as_millis()
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Usage counts across instances.

/// `n` keyed `GET /api/v1/me`, spread round-robin over `instances`, 10 at a
/// time; every one must answer 200.
async fn spread_requests(c: &Cluster, instances: &[usize], key: &str, n: usize) {
    let urls: Vec<String> = instances
        .iter()
        .map(|&i| format!("{}/api/v1/me", c.url(i)))
        .collect();
    let mut next = 0;
    while next < n {
        let batch: Vec<_> = (next..n.min(next + 10))
            .map(|j| tokio::spawn(send(c.client.get(&urls[j % urls.len()]).bearer_auth(key))))
            .collect();
        next += batch.len();
        for task in batch {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, 200, "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counted_on_three_instances_adds_up_exactly_after_sigterm_and_a_sigkill_loses_at_most_the_last_second()
 {
    let db = pg::fresh_database().await;
    let url = db.url();
    let mut c = Cluster::builder(&url).instances(3).start().await;
    let shop = c.new_shop("Usage Phones");

    // Spread over three instances, then every instance stopped gracefully.
    let (spread_id, spread_key) = c.new_key(&shop, "Spread usage", &["orders:read"]);
    const M: usize = 300;
    spread_requests(&c, &[0, 1, 2], &spread_key, M).await;
    for i in 0..3 {
        let stopped = c.terminate(i);
        assert!(stopped.status.success(), "instance {i}: {}", stopped.log);
    }
    let counted = stored_requests(&url, &spread_id).await;
    eprintln!("usage: {M} requests over 3 instances, SIGTERM all: {counted} counted");
    assert_eq!(counted, M as u64, "usage is exact across instances");

    // One instance killed: what it served more than a second before is
    // counted, nothing twice.
    let i = c.add(&[]).await;
    let (killed_id, killed_key) = c.new_key(&shop, "Killed usage", &["orders:read"]);
    const BEFORE: usize = 60;
    const AFTER: usize = 60;
    spread_requests(&c, &[i], &killed_key, BEFORE).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    spread_requests(&c, &[i], &killed_key, AFTER).await;
    let killed = c.kill(i);
    assert!(
        !killed.status.success(),
        "SIGKILL ends it: {}",
        killed.status
    );
    let counted = stored_requests(&url, &killed_id).await;
    eprintln!(
        "usage: {BEFORE} requests, 2 s pause, {AFTER} more, SIGKILL at once: {counted} counted"
    );
    assert!(
        counted >= BEFORE as u64,
        "a killed instance lost more than its last second: {counted} < {BEFORE}"
    );
    assert!(
        counted <= (BEFORE + AFTER) as u64,
        "counted more than was sent: {counted}"
    );
}

// ---------------------------------------------------------------------------
// 3. Idempotency and order references across instances.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_post_replayed_on_another_instance_answers_the_same_and_creates_one_client() {
    let db = pg::fresh_database().await;
    let c = Cluster::builder(&db.url()).instances(3).start().await;
    let shop = c.new_shop("Idempotent Phones");
    let (_, key) = c.new_key(&shop, "Website form", &["clients:read", "clients:write"]);
    let body = json!({"first_name": "Ada", "last_name": "Lovelace", "phone": "+44 20 7946 0000"});
    let mut answers = Vec::new();
    for i in [0, 1, 2] {
        let r = c
            .client
            .post(format!("{}/api/v1/clients", c.url(i)))
            .bearer_auth(&key)
            .header("Idempotency-Key", "contact-form-42")
            .json(&body)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = r.status().as_u16();
        let json: Value = r.json().await.unwrap();
        answers.push((status, location, json));
    }
    assert_eq!(answers[0].0, 201, "{}", answers[0].2);
    assert!(answers[0].1.is_some(), "201 has a Location");
    for (i, a) in answers.iter().enumerate().skip(1) {
        assert_eq!(a, &answers[0], "instance {i} replays instance 0's answer");
    }
    let (status, list) = get(&c, 2, "/api/v1/clients", &key).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_entries"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_order_creations_over_every_instance_get_distinct_references() {
    let db = pg::fresh_database().await;
    let c = Cluster::builder(&db.url()).instances(3).start().await;
    let shop = c.new_shop("Busy Phones");
    let (_, key) = c.new_key(
        &shop,
        "Front desk",
        &["clients:write", "orders:read", "orders:write"],
    );
    let (status, client) = post(
        &c,
        0,
        "/api/v1/clients",
        &key,
        &json!({"first_name": "Grace", "email": "grace@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let client_id = client["client"]["id"].as_str().unwrap().to_owned();

    const N: usize = 60;
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let req = c
                .client
                .post(format!("{}/api/v1/orders", c.url(n % 3)))
                .bearer_auth(&key)
                .json(&json!({
                    "client_id": client_id,
                    "problem_description": format!("Cracked screen #{n}"),
                }));
            tokio::spawn(send(req))
        })
        .collect();
    let mut references = BTreeSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
        references.insert(body["order"]["reference"].as_str().unwrap().to_owned());
    }
    eprintln!(
        "orders: {N} concurrent creations over 3 instances, {} distinct references ({} … {})",
        references.len(),
        references.first().unwrap(),
        references.last().unwrap()
    );
    assert_eq!(references.len(), N, "every reference distinct");
    let (status, list) = get(&c, 1, "/api/v1/orders?per_page=100", &key).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["total_entries"], N);
}

// ---------------------------------------------------------------------------
// 4. Starting together on nothing, and a stranger's secret.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_started_together_on_an_empty_database_and_data_dir_agree_and_another_secret_is_refused()
 {
    let db = pg::fresh_database().await;
    let mut c = Cluster::builder(&db.url())
        .instances(3)
        .data_dir_secret()
        .start()
        .await;

    // One whole secret file, no temporary file left behind.
    let names: BTreeSet<String> = std::fs::read_dir(&c.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["secret.key".to_owned()]),
        "the data directory"
    );
    let secret = std::fs::read_to_string(c.data_dir.join("secret.key")).unwrap();
    assert_eq!(secret.trim().len(), 64, "a whole secret");

    // Each migration applied once, successfully.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&db.options)
        .await
        .unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "{applied:?}");
    assert!(applied.iter().all(|(_, ok)| *ok), "{applied:?}");

    // They all hash keys with that secret: a key made by the CLI (which
    // reads the same data directory) works on each.
    let shop = c.new_shop("Together Phones");
    let (_, key) = c.new_key(&shop, "Everywhere", &["orders:read"]);
    for i in 0..3 {
        let (status, body) = get(&c, i, "/api/v1/me", &key).await;
        assert_eq!(status, 200, "instance {i}: {body}");
    }

    // A fourth with a different secret refuses to start, in one line.
    let other = c.root().join("other.key");
    std::fs::write(&other, "0f".repeat(32)).unwrap();
    let log = c
        .try_add(&["--secret-file", other.to_str().unwrap()])
        .expect_err("an instance with another secret refuses to start");
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("latchkey: "))
        .collect();
    assert_eq!(refusals.len(), 1, "{log}");
    let line = refusals[0];
    assert!(line.contains("server secret"), "{line}");
    assert!(
        line.contains(other.to_str().unwrap()),
        "names the file: {line}"
    );
    assert!(
        line.contains("same --secret-file or LATCHKEY_SECRET"),
        "{line}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains(&"0f".repeat(8)), "the secret is not logged");
    assert!(!log.contains(secret.trim()), "the secret is not logged");
    assert!(!log.contains("exit status: 0"), "{log}");
}

// ---------------------------------------------------------------------------
// 5. Limits shared through Redis are exact across instances.

/// Sends `n` requests at once, spread round-robin over every instance;
/// returns how many answered 200 and the statuses of the rest, and how long
/// the burst took.
async fn burst(c: &Cluster, path: &str, key: &str, n: usize) -> (usize, Vec<u16>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|j| {
            let url = format!("{}{path}", c.url(j % c.len()));
            tokio::spawn(send(c.client.get(url).bearer_auth(key)))
        })
        .collect();
    let mut ok = 0;
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (200, _) => ok += 1,
            (status, _) => refused.push(status),
        }
    }
    (ok, refused, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_redis_a_keys_limit_and_the_failed_attempt_limit_are_exact_across_three_instances()
{
    let db = pg::fresh_database().await;
    let redis_url = test_redis::url();
    // A database of its own per test, so a Redis DB of its own too would be
    // tidy; key ids and client IPs are unique enough: buckets do not collide.
    let c = Cluster::builder(&db.url())
        .instances(3)
        .args(&["--redis-url", &redis_url, "--failed-auth-limit", "30"])
        .start()
        .await;
    let shop = c.new_shop("Limit Phones");
    let out = c.cli_json(&[
        "keys",
        "create",
        "--shop",
        &shop,
        "--name",
        "Thirty a minute",
        "--permission",
        "orders:read",
        "--rate-limit",
        "30",
        "--json",
    ]);
    let key = out["key"]["secret"].as_str().unwrap().to_owned();

    // 90 requests at once over three instances: the key's 30, not 3 × 30.
    // GCRA refills one request every 2 s, so a burst taking longer may earn
    // one more per 2 s elapsed.
    let (ok, refused, took) = burst(&c, "/api/v1/me", &key, 90).await;
    let refill = (took.as_secs_f64() / 2.0).floor() as usize;
    eprintln!("rate limit 30/min over 3 instances: {ok} of 90 allowed in {took:?}");
    assert!(
        (30..=30 + refill).contains(&ok),
        "{ok} allowed of a 30/min key across 3 instances in {took:?}"
    );
    assert!(refused.iter().all(|s| *s == 429), "{refused:?}");

    // Unknown keys from one client IP: 30 failures a minute in all, not per
    // instance (the 31st and later get 429 too_many_failed_attempts).
    let bogus = "lk_test_0000000000000000000000000000000000000000";
    let (ok, refused, took) = burst(&c, "/api/v1/me", bogus, 60).await;
    let unauthorized = refused.iter().filter(|s| **s == 401).count();
    let throttled = refused.iter().filter(|s| **s == 429).count();
    let refill = (took.as_secs_f64() / 2.0).floor() as usize;
    eprintln!(
        "failed attempts over 3 instances: {unauthorized} answered 401, {throttled} throttled (429) in {took:?}"
    );
    assert_eq!(ok, 0);
    assert!(
        (30..=30 + refill).contains(&unauthorized),
        "{unauthorized} failed attempts let through across 3 instances in {took:?}"
    );
    assert_eq!(unauthorized + throttled, 60);
}
