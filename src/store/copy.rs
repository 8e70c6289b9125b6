//! `latchkey db copy`: a whole installation from one database to another,
//! SQLite → PostgreSQL or back.
//!
//! [`TABLES`] names every table that holds rows, once, with its columns and
//! primary key, parents before children. Rows travel as neutral [`Value`]s
//! (both schemas keep the same column names and portable types: 64-bit
//! integers, text, bytes), read from the source in pages (keyset order on the
//! primary key, so memory stays bounded whatever the size) inside one snapshot
//! transaction, and written to the target with multi-row `INSERT`s inside one
//! transaction: the target ends up with all of it or none of it.
//!
//! Counters that are not rows of their own table in both schemas travel as
//! [`Counters`]: the last audit `seq` (SQLite's `audit_sequence` row,
//! PostgreSQL's identity on `audit_events.seq`) and the last `key_changes`
//! position (SQLite's `AUTOINCREMENT`, PostgreSQL's `key_change_sequence`),
//! so the next event and the next feed row continue past the copied ones.
//! Order references continue by themselves: `order_sequences` is copied; so
//! do integer ids (`numeric_id_sequences`; the triggers that assign them only
//! act on rows inserted without one, and copied rows carry theirs).
//!
//! Key hashes are copied as they are: the target must be served with the same
//! server secret as the source, or no key verifies. The secret's fingerprint
//! travels too (`secret_fingerprint`), so a target opened with another secret
//! refuses to start rather than answer `invalid_key` to every key.

use std::path::Path;

use sqlx::query_builder::Separated;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};
use sqlx::{Postgres, Sqlite, Transaction};

use super::{StoreError, StoreResult};

/// A column's portable type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// SQLite INTEGER, PostgreSQL BIGINT.
    Int,
    /// TEXT on both.
    Text,
    /// SQLite BLOB, PostgreSQL BYTEA.
    Blob,
}

/// One stored value, as either backend reads and writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A table the copy carries, with every column it has.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The primary key's columns: the order rows are paged in.
    pub key: &'static [&'static str],
    pub columns: &'static [(&'static str, Kind)],
}

const I: Kind = Kind::Int;
const T: Kind = Kind::Text;
const B: Kind = Kind::Blob;

/// Every table that holds rows, parents before children (foreign keys hold
/// at every insert).
pub const TABLES: &[Table] = &[
    Table {
        name: "secret_fingerprint",
        key: &["id"],
        columns: &[("id", I), ("fingerprint", B), ("created_at", I)],
    },
    Table {
        name: "shops",
        key: &["id"],
        columns: &[("id", T), ("name", T), ("created_at", I)],
    },
    Table {
        name: "users",
        key: &["id"],
        columns: &[
            ("id", T),
            ("shop_id", T),
            ("email", T),
            ("role", T),
            ("password_hash", T),
            ("created_at", I),
            ("updated_at", I),
        ],
    },
    Table {
        name: "one_time_passwords",
        key: &["user_id"],
        columns: &[("user_id", T), ("created_at", I), ("expires_at", I)],
    },
    Table {
        name: "web_sessions",
        key: &["token_hash"],
        columns: &[
            ("token_hash", B),
            ("user_id", T),
            ("shop_id", T),
            ("created_at", I),
            ("last_seen_at", I),
            ("expires_at", I),
            ("ip", T),
        ],
    },
    Table {
        name: "setup_tokens",
        key: &["token_hash"],
        columns: &[("token_hash", B), ("created_at", I), ("used_at", I)],
    },
    Table {
        name: "usage_daily_routes",
        key: &["key_id", "day", "method", "route", "ip"],
        columns: &[
            ("key_id", T),
            ("day", I),
            ("method", T),
            ("route", T),
            ("ip", T),
            ("requests", I),
        ],
    },
    Table {
        name: "api_keys",
        key: &["id"],
        columns: &[
            ("id", T),
            ("shop_id", T),
            ("name", T),
            ("environment", T),
            ("kind", T),
            ("display", T),
            ("key_hash", B),
            ("permissions", T),
            ("allowed_ips", T),
            ("rate_limit_per_minute", I),
            ("expires_at", I),
            ("revoked_at", I),
            ("retired_at", I),
            ("template", T),
            ("created_at", I),
            ("updated_at", I),
            ("created_by", T),
            ("sent_in_url_at", I),
            ("rolled_to", T),
            ("paused_at", I),
            ("paused_reason", T),
            ("paused_by", T),
            ("leaked_at", I),
            ("leak_url", T),
            ("leak_source", T),
        ],
    },
    Table {
        name: "key_changes",
        key: &["seq"],
        columns: &[
            ("seq", I),
            ("key_id", T),
            ("key_hash", B),
            ("changed_at", I),
        ],
    },
    Table {
        name: "audit_events",
        key: &["id"],
        columns: &[
            ("id", T),
            ("seq", I),
            ("shop_id", T),
            ("at", I),
            ("actor", T),
            ("action", T),
            ("key_id", T),
            ("environment", T),
            ("ip", T),
            ("details", T),
        ],
    },
    Table {
        name: "clients",
        key: &["id"],
        columns: &[
            ("id", T),
            ("shop_id", T),
            ("environment", T),
            ("first_name", T),
            ("last_name", T),
            ("business_name", T),
            ("email", T),
            ("phone", T),
            ("address", T),
            ("city", T),
            ("postcode", T),
            ("country", T),
            ("notes", T),
            ("search_text", T),
            ("created_at", I),
            ("updated_at", I),
            ("numeric_id", I),
            ("mobile", T),
            ("address_2", T),
            ("state", T),
        ],
    },
    Table {
        name: "numeric_id_sequences",
        key: &["kind"],
        columns: &[("kind", T), ("last_id", I)],
    },
    Table {
        name: "order_sequences",
        key: &["shop_id", "environment"],
        columns: &[("shop_id", T), ("environment", T), ("last_number", I)],
    },
    Table {
        name: "orders",
        key: &["id"],
        columns: &[
            ("id", T),
            ("shop_id", T),
            ("environment", T),
            ("reference", T),
            ("client_id", T),
            ("status", T),
            ("problem_description", T),
            ("technician", T),
            ("due_date", T),
            ("estimate_cents", I),
            ("price_cents", I),
            ("currency", T),
            ("notes", T),
            ("created_at", I),
            ("updated_at", I),
            ("numeric_id", I),
            ("problem_type", T),
        ],
    },
    Table {
        name: "devices",
        key: &["id"],
        columns: &[
            ("id", T),
            ("shop_id", T),
            ("environment", T),
            ("order_id", T),
            ("device_type", T),
            ("brand", T),
            ("model", T),
            ("serial", T),
            ("imei", T),
            ("color", T),
            ("condition", T),
            ("fault", T),
            ("status", T),
            ("created_at", I),
            ("updated_at", I),
            ("numeric_id", I),
            ("name", T),
        ],
    },
    Table {
        name: "client_devices",
        key: &["id"],
        columns: &[
            ("id", T),
            ("shop_id", T),
            ("environment", T),
            ("client_id", T),
            ("numeric_id", I),
            ("name", T),
            ("device_type", T),
            ("brand", T),
            ("model", T),
            ("serial", T),
            ("imei", T),
            ("color", T),
            ("condition", T),
            ("fault", T),
            ("status", T),
            ("created_at", I),
            ("updated_at", I),
        ],
    },
    Table {
        name: "idempotency_keys",
        key: &["shop_id", "environment", "idem_key"],
        columns: &[
            ("shop_id", T),
            ("environment", T),
            ("idem_key", T),
            ("fingerprint", T),
            ("created_at", I),
            ("status", I),
            ("body", T),
            ("resource_path", T),
        ],
    },
    Table {
        name: "usage_minutes",
        key: &["key_id", "minute_start", "method", "route"],
        columns: &[
            ("key_id", T),
            ("minute_start", I),
            ("method", T),
            ("route", T),
            ("requests", I),
            ("errors_4xx", I),
            ("errors_5xx", I),
        ],
    },
    Table {
        name: "usage_hours",
        key: &["key_id", "hour_start"],
        columns: &[
            ("key_id", T),
            ("hour_start", I),
            ("requests", I),
            ("errors_4xx", I),
            ("errors_5xx", I),
        ],
    },
    Table {
        name: "usage_endpoints",
        key: &["key_id", "method", "route"],
        columns: &[
            ("key_id", T),
            ("method", T),
            ("route", T),
            ("requests", I),
            ("errors_4xx", I),
            ("errors_5xx", I),
            ("last_used_at", I),
        ],
    },
    Table {
        name: "usage_totals",
        key: &["key_id"],
        columns: &[
            ("key_id", T),
            ("requests", I),
            ("errors_4xx", I),
            ("errors_5xx", I),
            ("rejected_revoked", I),
            ("rejected_expired", I),
            ("rejected_retired", I),
            ("rejected_ip", I),
            ("rejected_rate", I),
            ("rejected_paused", I),
            ("last_used_at", I),
            ("last_used_ip", T),
            ("last_user_agent", T),
        ],
    },
    Table {
        name: "usage_clients",
        key: &["key_id", "ip", "user_agent"],
        columns: &[
            ("key_id", T),
            ("ip", T),
            ("user_agent", T),
            ("requests", I),
            ("last_used_at", I),
        ],
    },
];

/// Tables holding one counter row, carried as [`Counters`] rather than rows:
/// SQLite's `audit_sequence`, PostgreSQL's `key_change_sequence`.
pub const COUNTER_TABLES: &[&str] = &["audit_sequence", "key_change_sequence"];

/// The database's or the migrator's own bookkeeping: never copied (both
/// stores migrate on open; `sqlite_sequence` is one of the [`Counters`]).
pub const INTERNAL_TABLES: &[&str] = &["_sqlx_migrations", "sqlite_sequence"];

/// Most rows one page (and one `INSERT`) carries; fewer for wide tables so a
/// statement stays well under either backend's limit on bound parameters.
const PAGE_ROWS: usize = 500;
const MAX_BINDS: usize = 30_000;

fn page_rows(table: &Table) -> usize {
    PAGE_ROWS.min(MAX_BINDS / table.columns.len())
}

/// Counters that continue on the target past the copied rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The last audit `seq` handed out.
    pub audit_seq: i64,
    /// The last `key_changes` position handed out.
    pub key_change_seq: i64,
}

/// Which database an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    From,
    To,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The database cannot be opened (or migrated). The message never repeats
    /// the URL: the caller names it, with its password redacted.
    #[error("{1}")]
    Open(Side, StoreError),
    /// The target holds a shop, a key or a user; nothing was written.
    #[error(
        "the target database already holds data (shops, keys or users); copy only into an empty database"
    )]
    TargetNotEmpty,
    #[error("reading the source: {0}")]
    Read(StoreError),
    /// Writing failed; the target transaction was rolled back.
    #[error("writing the target (nothing was kept): {0}")]
    Write(StoreError),
}

/// What was copied: each table with its row count, in copy order.
#[derive(Clone, Debug, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
    pub counters: Counters,
}

impl CopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Copies every table of the installation at `from` into the empty database
/// at `to` (each `sqlite://PATH` or `postgres://…`; both are migrated on
/// open). Calls `progress` once per table, with its row count, as it is
/// written. Refuses, writing nothing, when the target holds any shop, key or
/// user; any other leftover rows there (an unused setup token) are replaced.
pub async fn copy(
    from: &str,
    to: &str,
    mut progress: impl FnMut(&'static str, u64),
) -> Result<CopyReport, CopyError> {
    if let Some(path) = sqlite_file(from)
        && !path.exists()
    {
        return Err(CopyError::Open(
            Side::From,
            StoreError::Unavailable(format!("no SQLite database at {}", path.display())),
        ));
    }
    let source_db = Backend::open(from)
        .await
        .map_err(|e| CopyError::Open(Side::From, e))?;
    let target_db = Backend::open(to)
        .await
        .map_err(|e| CopyError::Open(Side::To, e))?;
    let mut source = source_db.snapshot().await.map_err(CopyError::Read)?;
    let mut target = target_db.write().await.map_err(CopyError::Write)?;
    if !target.is_empty().await.map_err(CopyError::Write)? {
        return Err(CopyError::TargetNotEmpty);
    }
    target.clear().await.map_err(CopyError::Write)?;
    let mut report = CopyReport::default();
    for table in TABLES {
        let limit = page_rows(table);
        let mut after: Option<Vec<Value>> = None;
        let mut count = 0u64;
        loop {
            let rows = source
                .read_page(table, after.as_deref(), limit)
                .await
                .map_err(CopyError::Read)?;
            if rows.is_empty() {
                break;
            }
            count += rows.len() as u64;
            let full = rows.len() == limit;
            after = rows.last().map(|row| key_of(table, row));
            target.insert(table, rows).await.map_err(CopyError::Write)?;
            if !full {
                break;
            }
        }
        progress(table.name, count);
        report.tables.push((table.name, count));
    }
    report.counters = source.counters().await.map_err(CopyError::Read)?;
    target
        .set_counters(report.counters)
        .await
        .map_err(CopyError::Write)?;
    target.commit().await.map_err(CopyError::Write)?;
    source.finish().await;
    Ok(report)
}

/// The file a `sqlite:` URL names (not `:memory:`).
fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| Path::new(path))
}

/// The primary-key values of `row`, to page on after it.
fn key_of(table: &Table, row: &[Value]) -> Vec<Value> {
    table
        .key
        .iter()
        .map(|k| {
            let i = table
                .columns
                .iter()
                .position(|(c, _)| c == k)
                .expect("a key column is a column");
            row[i].clone()
        })
        .collect()
}

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT … FROM t [WHERE (key) > (after)] ORDER BY key LIMIT n`, for
/// either backend (row-value comparison works on both).
fn select_page<'a, DB>(table: &Table, after: Option<&[Value]>, limit: usize) -> QueryBuilder<'a, DB>
where
    DB: Database,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!("SELECT {} FROM {}", column_list(table), table.name));
    let key = table.key.join(", ");
    if let Some(after) = after {
        q.push(format_args!(" WHERE ({key}) > ("));
        let mut sep = q.separated(", ");
        for (name, value) in table.key.iter().zip(after) {
            let kind = kind_of(table, name);
            push_value(&mut sep, value.clone(), kind);
        }
        q.push(")");
    }
    q.push(format_args!(" ORDER BY {key} LIMIT "));
    q.push_bind(limit as i64);
    q
}

fn kind_of(table: &Table, column: &str) -> Kind {
    table
        .columns
        .iter()
        .find(|(c, _)| *c == column)
        .map(|(_, k)| *k)
        .expect("a key column is a column")
}

/// `INSERT INTO t (…) VALUES (…), (…), …` for either backend.
fn insert_rows<'a, DB>(table: &Table, rows: Vec<Vec<Value>>) -> QueryBuilder<'a, DB>
where
    DB: Database,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "INSERT INTO {} ({}) ",
        table.name,
        column_list(table)
    ));
    q.push_values(rows, |mut sep, row| {
        for (value, (_, kind)) in row.into_iter().zip(table.columns) {
            push_value(&mut sep, value, *kind);
        }
    });
    q
}

/// Binds `value` typed by its column (a NULL too: PostgreSQL wants a NULL
/// of the column's type).
fn push_value<'a, DB>(sep: &mut Separated<'_, 'a, DB, &str>, value: Value, kind: Kind)
where
    DB: Database,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
{
    match (value, kind) {
        (Value::Int(v), _) => sep.push_bind(Some(v)),
        (Value::Text(v), _) => sep.push_bind(Some(v)),
        (Value::Blob(v), _) => sep.push_bind(Some(v)),
        (Value::Null, Kind::Int) => sep.push_bind(None::<i64>),
        (Value::Null, Kind::Text) => sep.push_bind(None::<String>),
        (Value::Null, Kind::Blob) => sep.push_bind(None::<Vec<u8>>),
    };
}

/// A row as [`Value`]s, read by the column types the table declares.
fn decode_row<R>(table: &Table, row: &R) -> StoreResult<Vec<Value>>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let err = |e: sqlx::Error| StoreError::Internal(format!("reading {}: {e}", table.name));
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => row
                    .try_get::<Option<i64>, _>(i)
                    .map_err(err)?
                    .map(Value::Int),
                Kind::Text => row
                    .try_get::<Option<String>, _>(i)
                    .map_err(err)?
                    .map(Value::Text),
                Kind::Blob => row
                    .try_get::<Option<Vec<u8>>, _>(i)
                    .map_err(err)?
                    .map(Value::Blob),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

/// An opened (and migrated) database of either kind.
enum Backend {
    Sqlite(super::sqlite::SqliteStore),
    Postgres(super::postgres::PostgresStore),
}

/// An open transaction on either backend.
enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Backend {
    async fn open(url: &str) -> StoreResult<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite(
                super::sqlite::SqliteStore::open(url).await?,
            ))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres(
                super::postgres::PostgresStore::open(url).await?,
            ))
        } else {
            Err(StoreError::Unavailable(
                "the database URL is neither sqlite://PATH nor postgres://…".into(),
            ))
        }
    }

    /// A read-only transaction seeing one consistent state of every table.
    async fn snapshot(&self) -> StoreResult<Tx> {
        match self {
            // A deferred transaction reads one WAL snapshot from its first read.
            Backend::Sqlite(s) => Ok(Tx::Sqlite(s.pool.begin().await.map_err(sqlite_err)?)),
            Backend::Postgres(p) => {
                let mut tx = p.pool.begin().await.map_err(pg_err)?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .map_err(pg_err)?;
                Ok(Tx::Postgres(tx))
            }
        }
    }

    /// The one write transaction the whole copy goes into.
    async fn write(&self) -> StoreResult<Tx> {
        match self {
            Backend::Sqlite(s) => {
                let tx = s
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(sqlite_err)?;
                Ok(Tx::Sqlite(tx))
            }
            Backend::Postgres(p) => Ok(Tx::Postgres(p.pool.begin().await.map_err(pg_err)?)),
        }
    }
}

fn sqlite_err(e: sqlx::Error) -> StoreError {
    super::sqlite::map_err(e)
}

fn pg_err(e: sqlx::Error) -> StoreError {
    super::postgres::map_err(e)
}

impl Tx {
    async fn read_page(
        &mut self,
        table: &Table,
        after: Option<&[Value]>,
        limit: usize,
    ) -> StoreResult<Vec<Vec<Value>>> {
        match self {
            Tx::Sqlite(tx) => {
                let rows = select_page::<Sqlite>(table, after, limit)
                    .build()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(sqlite_err)?;
                rows.iter().map(|r| decode_row(table, r)).collect()
            }
            Tx::Postgres(tx) => {
                let rows = select_page::<Postgres>(table, after, limit)
                    .build()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| decode_row(table, r)).collect()
            }
        }
    }

    async fn insert(&mut self, table: &Table, rows: Vec<Vec<Value>>) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => {
                insert_rows::<Sqlite>(table, rows)
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(sqlite_err)?;
            }
            Tx::Postgres(tx) => {
                insert_rows::<Postgres>(table, rows)
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(pg_err)?;
            }
        }
        Ok(())
    }

    /// Whether no shop, key or user exists.
    async fn is_empty(&mut self) -> StoreResult<bool> {
        const SQL: &str = "SELECT NOT (EXISTS (SELECT 1 FROM shops) OR EXISTS (SELECT 1 FROM api_keys) OR EXISTS (SELECT 1 FROM users))";
        match self {
            Tx::Sqlite(tx) => sqlx::query_scalar::<_, bool>(SQL)
                .fetch_one(&mut **tx)
                .await
                .map_err(sqlite_err),
            Tx::Postgres(tx) => sqlx::query_scalar::<_, bool>(SQL)
                .fetch_one(&mut **tx)
                .await
                .map_err(pg_err),
        }
    }

    /// Deletes any leftovers (an unused setup token, …), children first.
    async fn clear(&mut self) -> StoreResult<()> {
        for table in TABLES.iter().rev() {
            let sql = format!("DELETE FROM {}", table.name);
            match self {
                Tx::Sqlite(tx) => {
                    sqlx::query(&sql)
                        .execute(&mut **tx)
                        .await
                        .map_err(sqlite_err)?;
                }
                Tx::Postgres(tx) => {
                    sqlx::query(&sql).execute(&mut **tx).await.map_err(pg_err)?;
                }
            }
        }
        Ok(())
    }

    async fn counters(&mut self) -> StoreResult<Counters> {
        match self {
            Tx::Sqlite(tx) => {
                let audit_seq: i64 = sqlx::query_scalar(
                    "SELECT MAX(COALESCE((SELECT last FROM audit_sequence WHERE id = 1), 0),
                                COALESCE((SELECT MAX(seq) FROM audit_events), 0))",
                )
                .fetch_one(&mut **tx)
                .await
                .map_err(sqlite_err)?;
                let key_change_seq: i64 = sqlx::query_scalar(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'key_changes'), 0),
                                COALESCE((SELECT MAX(seq) FROM key_changes), 0))",
                )
                .fetch_one(&mut **tx)
                .await
                .map_err(sqlite_err)?;
                Ok(Counters {
                    audit_seq,
                    key_change_seq,
                })
            }
            Tx::Postgres(tx) => {
                let audit_seq: i64 = sqlx::query_scalar(
                    "SELECT GREATEST(
                        COALESCE(pg_sequence_last_value(pg_get_serial_sequence('audit_events', 'seq')::regclass), 0),
                        COALESCE((SELECT MAX(seq) FROM audit_events), 0))",
                )
                .fetch_one(&mut **tx)
                .await
                .map_err(pg_err)?;
                let key_change_seq: i64 = sqlx::query_scalar(
                    "SELECT GREATEST(
                        COALESCE((SELECT last FROM key_change_sequence WHERE id = 1), 0),
                        COALESCE((SELECT MAX(seq) FROM key_changes), 0))",
                )
                .fetch_one(&mut **tx)
                .await
                .map_err(pg_err)?;
                Ok(Counters {
                    audit_seq,
                    key_change_seq,
                })
            }
        }
    }

    async fn set_counters(&mut self, c: Counters) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => {
                sqlx::query(
                    "INSERT INTO audit_sequence (id, last) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET last = excluded.last",
                )
                .bind(c.audit_seq)
                .execute(&mut **tx)
                .await
                .map_err(sqlite_err)?;
                // AUTOINCREMENT's counter: the inserted rows set it to their
                // maximum; the source's may be higher (pruned rows).
                let updated =
                    sqlx::query("UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'key_changes'")
                        .bind(c.key_change_seq)
                        .execute(&mut **tx)
                        .await
                        .map_err(sqlite_err)?;
                if updated.rows_affected() == 0 && c.key_change_seq > 0 {
                    sqlx::query(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES ('key_changes', ?1)",
                    )
                    .bind(c.key_change_seq)
                    .execute(&mut **tx)
                    .await
                    .map_err(sqlite_err)?;
                }
            }
            Tx::Postgres(tx) => {
                if c.audit_seq > 0 {
                    sqlx::query("SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), $1)")
                        .bind(c.audit_seq)
                        .execute(&mut **tx)
                        .await
                        .map_err(pg_err)?;
                }
                sqlx::query(
                    "INSERT INTO key_change_sequence (id, last) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET last = EXCLUDED.last",
                )
                .bind(c.key_change_seq)
                .execute(&mut **tx)
                .await
                .map_err(pg_err)?;
            }
        }
        Ok(())
    }

    async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await.map_err(sqlite_err),
            Tx::Postgres(tx) => tx.commit().await.map_err(pg_err),
        }
    }

    /// Ends a read-only snapshot.
    async fn finish(self) {
        match self {
            Tx::Sqlite(tx) => {
                let _ = tx.rollback().await;
            }
            Tx::Postgres(tx) => {
                let _ = tx.rollback().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_column_is_a_column_and_pages_fit_the_bind_limit() {
        for t in TABLES {
            for k in t.key {
                assert!(t.columns.iter().any(|(c, _)| c == k), "{}.{k}", t.name);
            }
            assert!(page_rows(t) * t.columns.len() <= MAX_BINDS);
            assert!(page_rows(t) > 0);
        }
    }

    #[test]
    fn sqlite_file_names_the_path() {
        assert_eq!(sqlite_file("sqlite://a/b.db"), Some(Path::new("a/b.db")));
        assert_eq!(sqlite_file("sqlite:x.db?mode=rwc"), Some(Path::new("x.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
