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
