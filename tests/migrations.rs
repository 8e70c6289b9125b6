//! Rolling upgrades: old and new instances run on one database while the
//! upgrade rolls, so (1) a build opens a database that a newer build has
//! migrated further, and (2) every migration only adds (tables, nullable or
//! defaulted columns, indexes), never drops, renames or tightens what an older
//! build still uses. docs/DEPLOY.md, "Rolling upgrades", explains the rule.

mod common;

use latchkey::store::postgres::PostgresStore;
use latchkey::store::sqlite::SqliteStore;

/// What a newer build's migration leaves behind: its row in sqlx's table and
/// a table this build knows nothing about.
const NEWER_MIGRATION_SQL: &[&str] = &[
    "CREATE TABLE from_a_newer_build (id BIGINT PRIMARY KEY)",
    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
     VALUES (99990001, 'from a newer build', TRUE, X'00', 1)",
];

#[tokio::test]
async fn sqlite_opens_a_database_a_newer_build_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    let store = SqliteStore::open_path(&path).await.unwrap();
    drop(store);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for sql in NEWER_MIGRATION_SQL {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = SqliteStore::open_path(&path)
        .await
        .expect("an older build opens a database a newer build migrated");
    use latchkey::store::ShopStore;
    assert!(!store.has_shops().await.unwrap(), "and it works");
}

#[tokio::test]
async fn postgres_opens_a_database_a_newer_build_migrated() {
    let db = common::pg::fresh_database().await;
    drop(PostgresStore::open_with(db.options.clone()).await.unwrap());
    let pool = sqlx::PgPool::connect_with(db.options.clone())
        .await
        .unwrap();
    for sql in NEWER_MIGRATION_SQL {
        // PostgreSQL writes bytea literals as '\x00'.
        let sql = sql.replace("X'00'", "'\\x00'::BYTEA");
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = PostgresStore::open_with(db.options.clone())
        .await
        .expect("an older build opens a database a newer build migrated");
    use latchkey::store::ShopStore;
    assert!(!store.has_shops().await.unwrap(), "and it works");
}

/// Statements that would break an older instance still running on the
/// database while a newer one migrates it.
fn breaking_statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        .to_uppercase();
    text.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| {
            s.contains("DROP TABLE")
                || s.contains("DROP COLUMN")
                || s.contains("RENAME")
                || s.contains("ALTER COLUMN")
                || (s.contains("ADD COLUMN") && s.contains("NOT NULL") && !s.contains("DEFAULT"))
        })
        .collect()
}

#[test]
fn every_migration_only_adds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut checked = 0;
    for backend in ["sqlite", "postgres"] {
        for entry in std::fs::read_dir(root.join(backend)).unwrap() {
            let path = entry.unwrap().path();
            let sql = std::fs::read_to_string(&path).unwrap();
            let bad = breaking_statements(&sql);
            assert!(
                bad.is_empty(),
                "{} would break instances of the previous release during a rolling upgrade \
                 (add instead: a new table or a nullable/defaulted column; drop in a later release): {bad:#?}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "found the migrations");
    // The rule itself catches what it names.
    assert_eq!(
        breaking_statements("ALTER TABLE keys DROP COLUMN name; -- gone").len(),
        1
    );
    assert_eq!(
        breaking_statements("ALTER TABLE keys ADD COLUMN x TEXT NOT NULL").len(),
        1
    );
    assert!(
        breaking_statements("ALTER TABLE keys ADD COLUMN x TEXT NOT NULL DEFAULT ''").is_empty()
    );
}

/// The SQL an instance of the release before integer ids runs: rows with no
/// `numeric_id` (it does not know the column). `$N` placeholders: both
/// backends bind them by number.
const BEFORE_INTEGER_IDS: &[&str] = &[
    "INSERT INTO shops (id, name, created_at) VALUES ('shop_old', 'Old', 0)",
    "INSERT INTO clients (id, shop_id, environment, first_name, created_at, updated_at)
     VALUES ('cli_b', 'shop_old', 'live', 'Second', 20, 20)",
    "INSERT INTO clients (id, shop_id, environment, first_name, created_at, updated_at)
     VALUES ('cli_a', 'shop_old', 'live', 'First', 10, 10)",
    "INSERT INTO orders (id, shop_id, environment, reference, client_id, status, currency, created_at, updated_at)
     VALUES ('ord_a', 'shop_old', 'live', 'RM-10001', 'cli_a', 'in_progress', 'GBP', 30, 30)",
    "INSERT INTO devices (id, shop_id, environment, order_id, device_type, status, created_at, updated_at)
     VALUES ('dev_a', 'shop_old', 'live', 'ord_a', 'phone', 'received', 40, 40)",
];

/// What the previous release inserts while the new one already runs.
const OLD_BUILD_INSERT: &str =
    "INSERT INTO clients (id, shop_id, environment, first_name, created_at, updated_at)
     VALUES ('cli_c', 'shop_old', 'live', 'Third', 50, 50)";

/// Existing rows got integer ids in creation order, a row the previous
/// release inserts afterwards gets the next one, and so does a new client.
async fn check_integer_ids(store: std::sync::Arc<dyn latchkey::store::Store>) {
    use latchkey::domain::client::ClientFields;
    use latchkey::domain::clock::Timestamp;
    use latchkey::domain::token::Environment;
    use latchkey::store::resources::{NumericKind, Scope};
    let scope = Scope {
        shop_id: "shop_old".into(),
        environment: Environment::Live,
    };
    let number = |id: &'static str| {
        let store = store.clone();
        let scope = scope.clone();
        async move {
            store
                .get_client(&scope, id)
                .await
                .unwrap()
                .unwrap()
                .numeric_id
        }
    };
    assert_eq!(
        (
            number("cli_a").await,
            number("cli_b").await,
            number("cli_c").await
        ),
        (1, 2, 3)
    );
    let order = store.get_order(&scope, "ord_a").await.unwrap().unwrap();
    let device = store.get_device(&scope, "dev_a").await.unwrap().unwrap();
    assert_eq!((order.numeric_id, device.numeric_id), (1, 1));
    assert_eq!(device.client_id, "cli_a");
    let made = store
        .create_client(
            &scope,
            "cli_d",
            &ClientFields {
                first_name: Some("Fourth".into()),
                ..Default::default()
            },
            Timestamp::from_micros(60),
        )
        .await
        .unwrap();
    assert_eq!(made.numeric_id, 4);
    assert_eq!(
        store
            .id_for_number(&scope, NumericKind::Client, 3)
            .await
            .unwrap()
            .as_deref(),
        Some("cli_c")
    );
}

#[tokio::test]
async fn sqlite_numbers_existing_rows_and_those_the_previous_release_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    for sql in BEFORE_INTEGER_IDS {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = SqliteStore::open_path(&path).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(OLD_BUILD_INSERT).execute(&pool).await.unwrap();
    pool.close().await;
    check_integer_ids(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_numbers_existing_rows_and_those_the_previous_release_inserts() {
    let db = common::pg::fresh_database().await;
    let pool = sqlx::PgPool::connect_with(db.options.clone())
        .await
        .unwrap();
    let mut before = sqlx::migrate!("migrations/postgres");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 3)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    for sql in BEFORE_INTEGER_IDS {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let store = PostgresStore::open_with(db.options.clone()).await.unwrap();
    sqlx::query(OLD_BUILD_INSERT).execute(&pool).await.unwrap();
    pool.close().await;
    check_integer_ids(std::sync::Arc::new(store)).await;
}
