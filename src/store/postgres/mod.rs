//! The shared store: PostgreSQL 15+ through sqlx, for several instances (and
//! the CLI) working on one database.
//!
//! Nothing here relies on a single writer. Transactions run at READ COMMITTED
//! and every read-then-write is made atomic by the statement or a row lock:
//!
//! - counters are bumped with `UPDATE … RETURNING` or `INSERT … ON CONFLICT DO
//!   UPDATE … RETURNING` (order references, the feed position);
//! - claims are made with `INSERT … ON CONFLICT DO NOTHING` and read after
//!   (idempotency keys);
//! - a count that guards an insert runs under a lock on the row it counts for
//!   (`check_room` locks the shop row `FOR NO KEY UPDATE`; deleting a client
//!   locks the client `FOR UPDATE` before counting its orders);
//! - audit events take `seq` from an identity column;
//! - the `key_changes` feed is ordered by commit (see [`feed`]), and every
//!   transaction that writes to it also sends a `NOTIFY` so other instances
//!   wake at once instead of at their next poll.
//!
//! Lock order, to stay free of deadlocks: the rows a mutation changes first,
//! then the shop row, and the feed's counter row last of all, just before
//! commit (it is the one lock every key mutation shares, so it is held for the
//! shortest time possible).
//!
//! Each port is written once, for both backends, in [`super::shared`]; one
//! file per port here instantiates it for [`PostgresStore`] with what only
//! PostgreSQL does (the row locks, the feed's counter row and `NOTIFY`, the
//! error mapping, the statements whose SQL genuinely differs).
//!
//! Connection trouble (refused, reset, the server restarting, the pool timing
//! out) is [`StoreError::Unavailable`]; the pool tests each connection before
//! handing it out and opens new ones as needed, so the store recovers by
//! itself when the database returns.

mod audit;
mod feed;
mod keys;
mod resources;
mod shops;
mod usage;
mod users;

use std::str::FromStr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Transaction};
use tokio::sync::Notify;

use super::{StoreError, StoreResult};

static MIGRATOR: LazyLock<sqlx::migrate::Migrator> =
    LazyLock::new(|| super::tolerant(sqlx::migrate!("migrations/postgres")));

/// How long a caller waits for a connection (or the database to answer a new
/// one) before the request is refused as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

pub struct PostgresStore {
    pub(super) pool: PgPool,
    /// Woken by the `LISTEN` task on every feed notification.
    feed_wake: Arc<Notify>,
    /// The `LISTEN` task, started by the first `wait_for_change`; stopped
    /// when the store is dropped.
    listener: OnceLock<feed::ListenerTask>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`) and applies
    /// pending migrations. Several instances opening one empty database at
    /// once is safe: sqlx's migrator holds `pg_advisory_lock` while it
    /// migrates, so one migrates and the others wait, then find nothing to do.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        Self::open_with(options).await
    }

    /// [`Self::open`] with options built by the caller (tests use it to pick
    /// a database).
    pub async fn open_with(options: PgConnectOptions) -> StoreResult<Self> {
        // No NOTICEs ("relation … already exists, skipping" from the
        // migrator's bookkeeping on every start): sqlx logs them at info,
        // which would be noise in the server's log and break a refusal's one
        // line on stderr.
        let options = options
            .application_name("latchkey")
            .options([("client_min_messages", "warning")]);
        // One direct connection first: the pool retries until its timeout and
        // then only says it timed out; this says why (refused, unknown host,
        // bad password).
        PgConnection::connect_with(&options)
            .await
            .map_err(map_err)?
            .close()
            .await
            .map_err(map_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection the server dropped (a restart) is replaced, not
            // handed to a request that would then fail.
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => match map_err(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(m),
                other => StoreError::Internal(format!("migration failed: {other}")),
            },
            other => StoreError::Internal(format!("migration failed: {other}")),
        })?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .map_err(map_err)?;
        super::warn_if_newer(&MIGRATOR, applied);
        Ok(PostgresStore {
            pool,
            feed_wake: Arc::new(Notify::new()),
            listener: OnceLock::new(),
        })
    }

    /// A transaction for a read-then-write: a plain `BEGIN` (READ COMMITTED);
    /// the statements and row locks make it atomic (see the module
    /// documentation). Named like SQLite's so shared port bodies call one
    /// method.
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(map_err)
    }

    /// A read-only transaction for a count and a page that must agree: one
    /// REPEATABLE READ snapshot for both.
    async fn read_snapshot(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }
}

/// The sqlx database of this backend, as the shared port bodies
/// ([`super::shared`]) name it.
type Db = Postgres;

/// SQLSTATEs that mean "try again later", not "this request is wrong":
/// connection exceptions (class 08), the server shutting down or starting
/// (57P01-57P03), too many connections or out of resources (class 53), and
/// serialization failures and deadlocks (40001, 40P01).
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| is_transient(&c)) => {
            StoreError::Unavailable(db.message().to_owned())
        }
        // 22021: a parameter holds a NUL byte, which PostgreSQL text cannot
        // hold (SQLite can). No stored row can match such a value, so a
        // lookup by it (an id from a URL like `/clients/%00`) is "not found",
        // as on SQLite, rather than an internal error.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => StoreError::NotFound,
        _ => StoreError::Internal(e.to_string()),
    }
}
