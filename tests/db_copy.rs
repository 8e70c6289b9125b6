//! `latchkey db copy`: a SQLite installation built through the real CLI (and
//! the store, for usage, sessions, idempotency and orders) moves to PostgreSQL
//! and back with every row, every key verifying, usage identical and the
//! counters (order references, audit seq) continuing; a non-empty target is
//! refused untouched; a bad URL is one line with its password redacted; and
//! no table of either schema is missing from the copy list.

#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::str::FromStr;

use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::domain::client::ClientFields;
use latchkey::domain::clock::Timestamp;
use latchkey::domain::order::{OrderFields, OrderStatus};
use latchkey::domain::token::Environment;
use latchkey::store::Store;
use latchkey::store::copy::{COUNTER_TABLES, INTERNAL_TABLES, Kind, TABLES};
use latchkey::store::postgres::PostgresStore;
use latchkey::store::resources::{ResourceStore, Scope};
use latchkey::store::sqlite::SqliteStore;
use latchkey::store::usage::{Counts, Endpoint, LastSeen, UsageBatch, UsageStore};
use latchkey::store::users::{Session, UserStore};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// `latchkey ARGS` with a clean environment, in `cwd`.
fn latchkey(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LATCHKEY_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env_remove("RUST_LOG")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .args(args)
        .output()
        .expect("latchkey runs")
}

fn ok(cwd: &Path, args: &[&str]) -> String {
    let out = latchkey(cwd, args);
    assert!(
        out.status.success(),
        "latchkey {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(cwd: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(cwd, args)).expect("JSON output")
}

fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    Timestamp::from_micros(i64::try_from(micros).unwrap())
}

/// Row counts of every copied table.
async fn counts(url: &str) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    if url.starts_with("sqlite:") {
        let pool = SqlitePoolOptions::new()
            .connect_with(SqliteConnectOptions::from_str(url).unwrap())
            .await
            .unwrap();
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.name))
                .fetch_one(&pool)
                .await
                .unwrap();
            out.insert(t.name, n);
        }
        pool.close().await;
    } else {
        let pool = PgPoolOptions::new()
            .connect_with(PgConnectOptions::from_str(url).unwrap())
            .await
            .unwrap();
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.name))
                .fetch_one(&pool)
                .await
                .unwrap();
            out.insert(t.name, n);
        }
        pool.close().await;
    }
    out
}

async fn max_audit_seq(store_url: &str) -> i64 {
    let sql = "SELECT COALESCE(MAX(seq), 0) FROM audit_events";
    if store_url.starts_with("sqlite:") {
        let pool = SqlitePoolOptions::new()
            .connect_with(SqliteConnectOptions::from_str(store_url).unwrap())
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = PgPoolOptions::new()
            .connect_with(PgConnectOptions::from_str(store_url).unwrap())
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    }
}

async fn open(url: &str) -> std::sync::Arc<dyn Store> {
    latchkey::store::open(url).await.expect("the store opens")
}

struct Installation {
    shop: String,
    /// (key id, secret) of every key made, the revoked one included.
    keys: Vec<(String, String)>,
    /// The live order made through the store, and its reference.
    order_ref: String,
}

/// A SQLite installation in `dir/data`, through the CLI and the store.
async fn build_sqlite_installation(dir: &Path) -> Installation {
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    let created = json(
        dir,
        &[
            "shop",
            "create",
            "--name",
            "Fix-It",
            "--owner-email",
            "owner@fixit.test",
            "--json",
            "--data-dir",
            d,
        ],
    );
    let shop = created["shop_id"].as_str().unwrap().to_owned();
    let owner = created["owner_id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for args in [
        &["--template", "read-only"][..],
        &[
            "--environment",
            "test",
            "--permission",
            "clients:read",
            "--name",
            "Test app",
        ][..],
        &["--permission", "orders:read", "--name", "Old app"][..],
    ] {
        let mut all = vec!["keys", "create", "--shop", &shop, "--json", "--data-dir", d];
        all.extend_from_slice(args);
        let k = json(dir, &all);
        keys.push((
            k["key"]["id"].as_str().unwrap().to_owned(),
            k["key"]["secret"].as_str().unwrap().to_owned(),
        ));
    }
    ok(dir, &["keys", "revoke", &keys[2].0, "--data-dir", d]);
    let csv = dir.join("legacy.csv");
    std::fs::write(
        &csv,
        "key,name,permissions\nlegacy-abcdefghijklmnop1234,Old website,orders:read\n",
    )
    .unwrap();
    let imported = json(
        dir,
        &[
            "legacy",
            "import",
            "--shop",
            &shop,
            "--file",
            csv.to_str().unwrap(),
            "--json",
            "--data-dir",
            d,
        ],
    );
    keys.push((
        imported["keys"][0]["id"].as_str().unwrap().to_owned(),
        "legacy-abcdefghijklmnop1234".to_owned(),
    ));
    ok(
        dir,
        &["test-data", "reset", "--shop", &shop, "--data-dir", d],
    );

    // What the server writes: usage, a session, an idempotency key, an order.
    let store = SqliteStore::open_path(&data.join("latchkey.db"))
        .await
        .unwrap();
    let at = now();
    let minute = Timestamp::from_micros(at.as_micros() / 60_000_000 * 60_000_000);
    let mut batch = UsageBatch::default();
    let endpoint = Endpoint {
        method: "GET".into(),
        route: "/api/v1/clients".into(),
    };
    batch.minutes.insert(
        (keys[0].0.clone(), minute, endpoint),
        Counts {
            requests: 7,
            errors_4xx: 2,
            errors_5xx: 1,
        },
    );
    batch.last_seen.insert(
        keys[0].0.clone(),
        LastSeen {
            at,
            ip: "203.0.113.7".into(),
            user_agent: Some("zapier/1.0".into()),
        },
    );
    batch.clients.insert(
        (keys[0].0.clone(), "203.0.113.7".into(), "zapier/1.0".into()),
        (7, at),
    );
    store.flush_usage(&batch).await.unwrap();
    store
        .create_session(&Session {
            token_hash: [7; 32],
            user_id: owner,
            shop_id: shop.clone(),
            created_at: at,
            last_seen_at: at,
            expires_at: at.plus_seconds(3600),
            ip: Some("203.0.113.7".into()),
        })
        .await
        .unwrap();
    let live = Scope {
        shop_id: shop.clone(),
        environment: Environment::Live,
    };
    store
        .begin_idempotent(&live, "idem-1", "POST /api/v1/orders", at)
        .await
        .unwrap();
    store
        .finish_idempotent(&live, "idem-1", 201, "{}", Some("/api/v1/orders/ord_1"))
        .await
        .unwrap();
    let client = ClientFields {
        first_name: Some("Sam".into()),
        ..Default::default()
    };
    let order = store
        .create_order(
            &live,
            "ord_copytest000000000000001",
            &order_fields("cli_copytest000000000000001"),
            Some(("cli_copytest000000000000001", &client)),
            at,
        )
        .await
        .unwrap();
    Installation {
        shop,
        keys,
        order_ref: order.reference,
    }
}

fn order_fields(client_id: &str) -> OrderFields {
    OrderFields {
        client_id: client_id.into(),
        status: OrderStatus::InProgress,
        problem_description: Some("Cracked screen".into()),
        problem_type: None,
        technician: None,
        due_date: None,
        estimate_cents: Some(8999),
        price_cents: None,
        currency: "GBP".into(),
        notes: None,
    }
}

fn next_ref(reference: &str) -> String {
    let n: u64 = reference.strip_prefix("RM-").unwrap().parse().unwrap();
    format!("RM-{}", n + 1)
}

/// Every key verifies on `url` with the installation's secret, and usage
/// reads the same as on `reference`.
async fn check_served_alike(dir: &Path, inst: &Installation, reference: &str, url: &str) {
    let secret = ServerSecret::read_file(&dir.join("data/secret.key")).unwrap();
    let hasher = KeyHasher::new(&secret);
    let (a, b) = (open(reference).await, open(url).await);
    for (id, plain) in &inst.keys {
        let found = b.find_key_by_hash(&hasher.hash(plain)).await.unwrap();
        assert_eq!(
            found.map(|k| k.id),
            Some(id.clone()),
            "{id} verifies on {url}"
        );
        let at = now();
        assert_eq!(
            format!("{:?}", a.key_usage(id, at).await.unwrap()),
            format!("{:?}", b.key_usage(id, at).await.unwrap()),
            "usage of {id}"
        );
    }
}

fn copy_ok(dir: &Path, from: &str, to: &str) -> Value {
    json(dir, &["db", "copy", "--from", from, "--to", to, "--json"])
}

fn as_counts(summary: &Value) -> BTreeMap<&'static str, i64> {
    TABLES
        .iter()
        .map(|t| (t.name, summary["tables"][t.name].as_i64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_keeps_every_row_key_usage_and_counter() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inst = build_sqlite_installation(dir).await;
    let sqlite_url = format!("sqlite://{}", dir.join("data/latchkey.db").display());
    let before = counts(&sqlite_url).await;
    for t in [
        "secret_fingerprint",
        "shops",
        "users",
        "api_keys",
        "key_changes",
        "audit_events",
        "clients",
        "orders",
        "devices",
        "order_sequences",
        "idempotency_keys",
        "web_sessions",
        "usage_minutes",
        "usage_endpoints",
        "usage_totals",
        "usage_clients",
    ] {
        assert!(before[t] > 0, "the installation has {t} rows: {before:?}");
    }

    // SQLite → PostgreSQL.
    let db = pg::fresh_database().await;
    let pg_url = db.url();
    let summary = copy_ok(dir, &sqlite_url, &pg_url);
    assert_eq!(as_counts(&summary), before, "{summary}");
    assert_eq!(counts(&pg_url).await, before);
    check_served_alike(dir, &inst, &sqlite_url, &pg_url).await;

    // The next order reference and the next audit seq continue.
    let pg_store = open(&pg_url).await;
    let live = Scope {
        shop_id: inst.shop.clone(),
        environment: Environment::Live,
    };
    let next = pg_store
        .create_order(
            &live,
            "ord_copytest000000000000002",
            &order_fields("cli_copytest000000000000001"),
            None,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(next.reference, next_ref(&inst.order_ref));
    let seq = max_audit_seq(&pg_url).await;
    assert_eq!(seq, max_audit_seq(&sqlite_url).await);
    let data = dir.join("data");
    ok(
        dir,
        &[
            "keys",
            "revoke",
            &inst.keys[0].0,
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &pg_url,
        ],
    );
    assert_eq!(max_audit_seq(&pg_url).await, seq + 1);
    // The fingerprint came along: another secret is refused on the copy.
    let other = dir.join("other.key");
    std::fs::write(&other, "f".repeat(64)).unwrap();
    let refused = latchkey(
        dir,
        &[
            "keys",
            "list",
            "--shop",
            &inst.shop,
            "--secret-file",
            other.to_str().unwrap(),
            "--database-url",
            &pg_url,
        ],
    );
    assert!(!refused.status.success());
    let line = String::from_utf8_lossy(&refused.stderr);
    assert!(line.contains("server secret"), "{line}");

    // PostgreSQL → a new SQLite file.
    let back_url = format!("sqlite://{}", dir.join("back/latchkey.db").display());
    let on_pg = counts(&pg_url).await;
    let summary = copy_ok(dir, &pg_url, &back_url);
    assert_eq!(as_counts(&summary), on_pg);
    assert_eq!(counts(&back_url).await, on_pg);
    check_served_alike(dir, &inst, &pg_url, &back_url).await;
    let back = open(&back_url).await;
    let next2 = back
        .create_order(
            &live,
            "ord_copytest000000000000003",
            &order_fields("cli_copytest000000000000001"),
            None,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(next2.reference, next_ref(&next.reference));
    let seq = max_audit_seq(&back_url).await;
    ok(
        dir,
        &[
            "keys",
            "revoke",
            &inst.keys[1].0,
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &back_url,
        ],
    );
    assert_eq!(max_audit_seq(&back_url).await, seq + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_target_is_refused_and_left_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = dir.join("a");
    ok(
        dir,
        &[
            "shop",
            "create",
            "--name",
            "A",
            "--owner-email",
            "a@a.test",
            "--data-dir",
            a.to_str().unwrap(),
        ],
    );
    let sqlite_url = format!("sqlite://{}", a.join("latchkey.db").display());
    let db = pg::fresh_database().await;
    let pg_url = db.url();
    let b = dir.join("b");
    ok(
        dir,
        &[
            "shop",
            "create",
            "--name",
            "B",
            "--owner-email",
            "b@b.test",
            "--data-dir",
            b.to_str().unwrap(),
            "--database-url",
            &pg_url,
        ],
    );
    for (from, to) in [(&sqlite_url, &pg_url), (&pg_url, &sqlite_url)] {
        let before = counts(to).await;
        let out = latchkey(dir, &["db", "copy", "--from", from, "--to", to]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("already holds data"), "{stderr}");
        assert_eq!(counts(to).await, before, "{to} unchanged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_is_one_line_with_the_password_redacted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    ok(dir, &["migrate", "--data-dir", data.to_str().unwrap()]);
    let from = format!("sqlite://{}", data.join("latchkey.db").display());
    for to in [
        "postgres://copier:s3cr3t-pw@127.0.0.1:1/nowhere",
        "mysql://copier:s3cr3t-pw@127.0.0.1/nowhere",
    ] {
        let out = latchkey(dir, &["db", "copy", "--from", &from, "--to", to]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("s3cr3t-pw"), "{stderr}");
        assert!(stderr.contains("copier:***@127.0.0.1"), "{stderr}");
    }
    // A SQLite source that does not exist is not created empty.
    let missing = dir.join("missing/latchkey.db");
    let out = latchkey(
        dir,
        &[
            "db",
            "copy",
            "--from",
            &format!("sqlite://{}", missing.display()),
            "--to",
            &format!("sqlite://{}", dir.join("x.db").display()),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQLite database"));
    assert!(!missing.exists());
    // --help says the secret must be the same.
    let help = ok(dir, &["db", "copy", "--help"]);
    assert!(help.contains("same") && help.contains("secret"), "{help}");
}

/// Tables (and columns, with their types) of a migrated schema.
type Schema = BTreeMap<String, BTreeSet<(String, Kind)>>;

fn kind(declared: &str) -> Kind {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" => Kind::Int,
        "text" => Kind::Text,
        "blob" | "bytea" => Kind::Blob,
        other => panic!("a column of type {other}: the copy knows no such type"),
    }
}

async fn sqlite_schema(url: &str) -> Schema {
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::from_str(url).unwrap())
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p
         WHERE m.type = 'table'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table, column, ty) in rows {
        if INTERNAL_TABLES.contains(&table.as_str()) {
            continue;
        }
        schema.entry(table).or_default().insert((column, kind(&ty)));
    }
    schema
}

async fn pg_schema(url: &str) -> Schema {
    let pool = PgPoolOptions::new()
        .connect_with(PgConnectOptions::from_str(url).unwrap())
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
         FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table, column, ty) in rows {
        if INTERNAL_TABLES.contains(&table.as_str()) {
            continue;
        }
        let k = if ty == "integer" {
            Kind::Int
        } else {
            kind(&ty)
        };
        schema.entry(table).or_default().insert((column, k));
    }
    schema
}

fn check_schema(backend: &str, schema: &Schema) {
    let listed: HashMap<&str, BTreeSet<(String, Kind)>> = TABLES
        .iter()
        .map(|t| {
            let cols = t
                .columns
                .iter()
                .map(|(c, k)| ((*c).to_owned(), *k))
                .collect();
            (t.name, cols)
        })
        .collect();
    for (table, columns) in schema {
        if COUNTER_TABLES.contains(&table.as_str()) || INTERNAL_TABLES.contains(&table.as_str()) {
            continue;
        }
        let copied = listed
            .get(table.as_str())
            .unwrap_or_else(|| panic!("{backend} table {table} is missing from the copy list"));
        assert_eq!(
            copied, columns,
            "{backend} table {table}: the copy's columns"
        );
    }
    for t in TABLES {
        assert!(
            schema.contains_key(t.name),
            "{backend} has no table {}",
            t.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_and_column_of_both_schemas_is_in_the_copy_list() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("latchkey.db").display());
    drop(open(&url).await);
    check_schema("SQLite", &sqlite_schema(&url).await);
    let db = pg::fresh_database().await;
    drop(PostgresStore::open_with(db.options.clone()).await.unwrap());
    check_schema("PostgreSQL", &pg_schema(&db.url()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_bigger_than_a_page_are_copied_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = format!("sqlite://{}", dir.join("big.db").display());
    drop(open(&url).await);
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::from_str(&url).unwrap())
        .await
        .unwrap();
    // 1,234 rows on a three-column key (pages of 500 resume mid-key), and
    // NULLs of every type.
    for i in 0..1234i64 {
        sqlx::query(
            "INSERT INTO usage_clients (key_id, ip, user_agent, requests, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(format!("key_{}", i % 3))
        .bind(format!("10.0.{}.{}", i % 2, i / 7))
        .bind(format!("agent/{}", i % 5))
        .bind(i)
        .bind(1_700_000_000_000_000 + i)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO usage_totals (key_id, requests) VALUES ('key_0', 3)")
        .execute(&pool)
        .await
        .unwrap();
    let total = "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM usage_clients";
    let sum: i64 = sqlx::query_scalar(total).fetch_one(&pool).await.unwrap();
    pool.close().await;

    let db = pg::fresh_database().await;
    let summary = copy_ok(dir, &url, &db.url());
    assert_eq!(summary["tables"]["usage_clients"], 1234);
    let pg = PgPoolOptions::new()
        .connect_with(db.options.clone())
        .await
        .unwrap();
    let copied: i64 = sqlx::query_scalar(total).fetch_one(&pg).await.unwrap();
    assert_eq!(copied, sum);
    let nulls: (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT last_used_at, last_used_ip FROM usage_totals")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(nulls, (None, None));
}
