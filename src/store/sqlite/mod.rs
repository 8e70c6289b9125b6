//! The embedded store: SQLite in WAL mode through sqlx.
//!
//! Write transactions start with `BEGIN IMMEDIATE`, so two writers (the server and
//! a CLI process on the same file) queue on the busy timeout instead of failing
//! halfway through a read-then-write transaction. The statements do not lean on
//! that: counters are bumped with `UPDATE … RETURNING`, claims are made with
//! `INSERT … ON CONFLICT`, exactly as on PostgreSQL.
//!
//! Each port is written once, for both backends, in [`super::shared`] (rows
//! become domain values through [`super::row`]); one file per port here
//! ([`shops`], [`keys`], [`feed`], [`audit`], [`resources`], [`users`],
//! [`usage`]) instantiates it for [`SqliteStore`] with what only SQLite does:
//! how a write transaction begins, the error mapping, the audit `seq` counter,
//! the feed append, and the few statements whose SQL genuinely differs.

mod audit;
mod feed;
mod keys;
mod resources;
mod shops;
mod usage;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, Transaction};

use super::{StoreError, StoreResult};

static MIGRATOR: LazyLock<sqlx::migrate::Migrator> =
    LazyLock::new(|| super::tolerant(sqlx::migrate!("migrations/sqlite")));

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:`) and applies pending migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        // Several processes opening one new file at once: switching it to WAL
        // needs the file to itself, and SQLite answers "database is locked"
        // at once rather than through the busy timeout. Such an open is
        // tried again (for up to 10 s); any other failure is reported.
        let mut attempts = 0;
        loop {
            match Self::open_once(url).await {
                Err(StoreError::Unavailable(m))
                    if attempts < 100 && (m.contains("locked") || m.contains("busy")) =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn open_once(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed transaction survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        // Migrate under the database's write lock: a server and a CLI opening
        // one new file at once would otherwise both see "not migrated" and
        // the second would fail on tables the first just made. The migrator
        // runs each migration in a savepoint of this transaction; the other
        // opener waits (busy timeout), then finds nothing left to do.
        let mut conn = pool.acquire().await.map_err(map_err)?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        MIGRATOR
            .run_direct(&mut *tx)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        super::warn_if_newer(&MIGRATOR, applied);
        drop(conn);
        Ok(SqliteStore { pool })
    }

    /// Opens the database file at `path`.
    pub async fn open_path(path: &Path) -> StoreResult<Self> {
        Self::open(&format!("sqlite://{}", path.display())).await
    }

    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// A read-only transaction for a count and a page that must agree: a
    /// deferred `BEGIN`, whose first read fixes the WAL snapshot every later
    /// read sees; it never blocks a writer.
    async fn read_snapshot(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(map_err)
    }
}

/// The sqlx database of this backend, as the shared port bodies
/// ([`super::shared`]) name it.
type Db = Sqlite;

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: overloaded, not a bug.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6" | "517")) => {
            StoreError::Unavailable(db.message().to_owned())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}
