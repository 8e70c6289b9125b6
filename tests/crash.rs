//! Crash safety (issue 12): `latchkey serve` on its default SQLite database,
//! killed with SIGKILL while key changes, resource writes and keyed requests
//! are in flight, then started again on the same data directory, several
//! times over. docs/SECURITY.md "Crashes": whatever the API confirmed (a 2xx) is
//! there after the restart; usage loses at most the last second before the
//! crash; nothing is counted that was not served.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/pg.rs"]
mod pg;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::Cluster;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What the API confirmed before the crash, checked after the restart.
#[derive(Default)]
struct Confirmed {
    /// Created keys: id → (secret, name it was last confirmed to have).
    keys: HashMap<String, (String, String)>,
    /// A change sent when the kill came: it may or may not have been made
    /// (the kill can fall between the commit and the answer). Key id and
    /// the name it was being given, or `None` for a revocation.
    in_flight: Option<(String, Option<String>)>,
    /// Keys whose revocation was confirmed.
    revoked: Vec<String>,
    /// Created clients: id → last confirmed phone.
    clients: HashMap<String, String>,
}

async fn send(req: reqwest::RequestBuilder) -> Option<(u16, Value)> {
    // A request cut by the kill has no answer: not confirmed, not an error.
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// Writes as fast as one connection allows until `stop`, recording every
/// confirmed change.
async fn writer(
    client: reqwest::Client,
    base: String,
    manager: String,
    round: usize,
    done: Arc<Mutex<Confirmed>>,
    stop: Arc<AtomicBool>,
) {
    let auth = format!("Bearer {manager}");
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("crash r{round} n{n}");
        let Some((status, body)) = send(
            client
                .post(format!("{base}/api/v1/keys"))
                .header("authorization", &auth)
                .json(&json!({"name": name, "permissions": ["orders:read"]})),
        )
        .await
        else {
            return;
        };
        if status == 201 {
            // An answer cut short by the kill confirmed nothing.
            let (Some(id), Some(secret)) =
                (body["key"]["id"].as_str(), body["key"]["secret"].as_str())
            else {
                return;
            };
            let (id, secret) = (id.to_owned(), secret.to_owned());
            done.lock().await.keys.insert(id.clone(), (secret, name));
            let renamed = format!("renamed r{round} n{n}");
            done.lock().await.in_flight = Some((id.clone(), Some(renamed.clone())));
            match send(
                client
                    .patch(format!("{base}/api/v1/keys/{id}"))
                    .header("authorization", &auth)
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({"name": renamed}).to_string()),
            )
            .await
            {
                Some((200, _)) => done.lock().await.keys.get_mut(&id).unwrap().1 = renamed,
                Some((s, b)) => panic!("rename: {s} {b}"),
                None => return,
            }
            if n.is_multiple_of(3) {
                done.lock().await.in_flight = Some((id.clone(), None));
                match send(
                    client
                        .post(format!("{base}/api/v1/keys/{id}/revoke"))
                        .header("authorization", &auth),
                )
                .await
                {
                    Some((200, _)) => done.lock().await.revoked.push(id),
                    Some((s, b)) => panic!("revoke: {s} {b}"),
                    None => return,
                }
            }
        } else {
            panic!("create key: {status} {body}");
        }
        let phone = format!("+44 20 7946 {:04}", n % 10_000);
        match send(
            client
                .post(format!("{base}/api/v1/clients"))
                .header("authorization", &auth)
                .json(&json!({"first_name": "Crash", "last_name": format!("R{round}"), "phone": phone})),
        )
        .await
        {
            Some((201, body)) => {
                let Some(id) = body["client"]["id"].as_str() else {
                    return;
                };
                let id = id.to_owned();
                done.lock().await.clients.insert(id, phone);
            }
            Some((s, b)) => panic!("create client: {s} {b}"),
            None => return,
        }
    }
}

/// Keyed reads until `stop`; the instant each one was answered 200.
async fn reader(
    client: reqwest::Client,
    base: String,
    key: String,
    stop: Arc<AtomicBool>,
) -> Vec<Instant> {
    let mut answered = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match send(
            client
                .get(format!("{base}/api/v1/me"))
                .header("authorization", format!("Bearer {key}")),
        )
        .await
        {
            Some((200, _)) => {
                answered.push(Instant::now());
                // ~100 a second: within the key's 10,000 a minute.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Some((s, b)) => panic!("/me: {s} {b}"),
            None => break,
        }
    }
    answered
}

async fn get(c: &Cluster, i: usize, path: &str, key: &str) -> (u16, Value) {
    send(
        c.client
            .get(format!("{}{path}", c.url(i)))
            .header("authorization", format!("Bearer {key}")),
    )
    .await
    .expect("the restarted instance answers")
}

/// Room for every key the writer makes: on a quiet machine it creates more
/// than the default 1,000 a shop may hold.
const ROOM: &[&str] = &["--max-keys-per-shop", "1000000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_no_confirmed_change_and_at_most_the_last_second_of_usage() {
    crash_rounds(Cluster::sqlite().args(ROOM).start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_too_sigkill_loses_no_confirmed_change_and_at_most_the_last_second_of_usage()
{
    let db = pg::fresh_database().await;
    crash_rounds(
        Cluster::builder(&db.url())
            .instances(1)
            .args(ROOM)
            .start()
            .await,
    )
    .await;
}

/// Four rounds of: writes and keyed reads, SIGKILL at a different moment,
/// restart on the same database, check everything confirmed.
async fn crash_rounds(mut c: Cluster) {
    let shop = c.new_shop("Crash Phones");
    let (_, manager) = c.new_key(
        &shop,
        "Crash manager",
        &[
            "keys:read",
            "keys:write",
            "clients:read",
            "clients:write",
            "orders:read",
        ],
    );
    let (reads_id, reads_key) = c.new_key(&shop, "Crash reads", &["orders:read"]);
    let done = Arc::new(Mutex::new(Confirmed::default()));
    let mut served_total = 0u64;
    let mut served_safe = 0u64;
    const ROUNDS: usize = 4;

    let mut cur = 0;
    let mut counted_before = 0u64;
    for round in 0..ROUNDS {
        let base = c.url(cur).to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let w = tokio::spawn(writer(
            c.client.clone(),
            base.clone(),
            manager.clone(),
            round,
            done.clone(),
            stop.clone(),
        ));
        let r = tokio::spawn(reader(
            c.client.clone(),
            base,
            reads_key.clone(),
            stop.clone(),
        ));
        // Kill at a different moment of the flush cycle each round.
        tokio::time::sleep(Duration::from_millis(1500 + 350 * round as u64)).await;
        let killed_at = Instant::now();
        let killed = c.kill(cur);
        assert!(
            !killed.status.success(),
            "SIGKILL ends it: {}",
            killed.status
        );
        stop.store(true, Ordering::Relaxed);
        w.await.expect("the writer task");
        let answered = r.await.expect("the reader task");
        let safe = answered
            .iter()
            .filter(|t| killed_at.duration_since(**t) > Duration::from_secs(1))
            .count() as u64;
        served_total += answered.len() as u64;
        served_safe += safe;

        cur = c.add(&[]).await;

        let (status, key) = get(&c, cur, &format!("/api/v1/keys/{reads_id}"), &manager).await;
        assert_eq!(status, 200, "{key}");
        let counted = key["key"]["requests_24h"].as_u64().unwrap();
        eprintln!(
            "round {round}: {} keyed reads answered, {safe} more than 1 s before the kill; \
             {served_total} answered in all, {counted} counted after restart ({} lost)",
            answered.len(),
            served_total - counted
        );
        assert!(
            counted - counted_before >= safe,
            "round {round}: usage lost more than the last second: {} counted < {safe} served over a second before the kill",
            counted - counted_before
        );
        counted_before = counted;
        assert!(
            counted >= served_safe,
            "usage lost more than the last second: {counted} counted < {served_safe} served over a second before the kills"
        );
        assert!(
            counted <= served_total,
            "counted {counted} of {served_total} served"
        );

        let mut confirmed = done.lock().await;
        let in_flight = confirmed.in_flight.take();
        // What the check finds of the change in flight becomes what later
        // rounds expect.
        let mut settled: Vec<(String, Option<String>)> = Vec::new();
        for (id, (secret, name)) in &confirmed.keys {
            let sent = in_flight
                .as_ref()
                .filter(|(k, _)| k == id)
                .map(|(_, change)| change);
            let (status, body) = get(&c, cur, &format!("/api/v1/keys/{id}"), &manager).await;
            assert_eq!(
                status, 200,
                "a confirmed key is gone after the crash: {id} {body}"
            );
            let stored = body["key"]["name"].as_str().unwrap();
            assert!(
                stored == name || sent.is_some_and(|s| s.as_deref() == Some(stored)),
                "a confirmed rename was lost: {name} confirmed, {body}"
            );
            if stored != name {
                settled.push((id.clone(), Some(stored.to_owned())));
            }
            let me = get(&c, cur, "/api/v1/me", secret).await;
            if sent == Some(&None) {
                // A revocation cut off by the kill: either outcome is fine,
                // but it must be one of them.
                if me.0 != 200 {
                    settled.push((id.clone(), None));
                }
                assert!(
                    me.0 == 200 || me.1["code"] == "revoked_key",
                    "{id} {}",
                    me.1
                );
            } else if confirmed.revoked.contains(id) {
                assert_eq!(me.0, 401, "a confirmed revocation was lost: {id} {}", me.1);
                assert_eq!(me.1["code"], "revoked_key");
            } else {
                assert_eq!(me.0, 200, "a confirmed key does not work: {id} {}", me.1);
            }
        }
        for (id, change) in settled {
            match change {
                Some(name) => confirmed.keys.get_mut(&id).unwrap().1 = name,
                None => confirmed.revoked.push(id),
            }
        }
        for (id, phone) in &confirmed.clients {
            let (status, body) = get(&c, cur, &format!("/api/v1/clients/{id}"), &manager).await;
            assert_eq!(status, 200, "a confirmed client is gone: {id}");
            assert_eq!(body["client"]["phone"], phone.as_str());
        }
        eprintln!(
            "round {round}: {} keys, {} revocations, {} clients confirmed so far, all present",
            confirmed.keys.len(),
            confirmed.revoked.len(),
            confirmed.clients.len()
        );
    }
    let confirmed = done.lock().await;
    assert!(
        confirmed.keys.len() >= ROUNDS
            && !confirmed.revoked.is_empty()
            && confirmed.clients.len() >= ROUNDS,
        "the writer made too little progress to test anything"
    );
    // The keyed reads of the checks above were counted too; served_safe is
    // the floor that matters.
    assert!(
        served_safe > 0,
        "no read was answered over a second before a kill"
    );
    let _ = reads_id;
}
