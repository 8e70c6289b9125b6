//! The embedded store: SQLite in WAL mode through sqlx.
//!
//! Write transactions start with `BEGIN IMMEDIATE`, so two writers (the server and
//! a CLI process on the same file) queue on the busy timeout instead of failing
//! halfway through a read-then-write transaction.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::*;
use crate::domain::key::KeyKind;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:`) and applies pending migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
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
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        Ok(SqliteStore { pool })
    }

    /// Opens the database file at `path`.
    pub async fn open_path(path: &Path) -> StoreResult<Self> {
        Self::open(&format!("sqlite://{}", path.display())).await
    }

    pub(super) async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

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

const KEY_COLUMNS: &str = "id, shop_id, name, environment, kind, display, key_hash, permissions, \
     allowed_ips, rate_limit_per_minute, expires_at, revoked_at, retired_at, template, \
     created_at, updated_at, created_by, sent_in_url_at";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} `{value}` does not parse"))
}

fn key_from_row(row: &SqliteRow) -> StoreResult<KeyRecord> {
    let environment: String = row.try_get("environment").map_err(map_err)?;
    let kind: String = row.try_get("kind").map_err(map_err)?;
    let name: String = row.try_get("name").map_err(map_err)?;
    let hash: Vec<u8> = row.try_get("key_hash").map_err(map_err)?;
    let permissions: String = row.try_get("permissions").map_err(map_err)?;
    let allowed_ips: String = row.try_get("allowed_ips").map_err(map_err)?;
    let rate: i64 = row.try_get("rate_limit_per_minute").map_err(map_err)?;
    let ts = |col: &str| -> StoreResult<Option<Timestamp>> {
        Ok(row
            .try_get::<Option<i64>, _>(col)
            .map_err(map_err)?
            .map(Timestamp::from_micros))
    };
    let perm_names: Vec<&str> = permissions.split_whitespace().collect();
    let ip_entries: Vec<&str> = allowed_ips.split_whitespace().collect();
    Ok(KeyRecord {
        id: row.try_get("id").map_err(map_err)?,
        shop_id: row.try_get("shop_id").map_err(map_err)?,
        name: KeyName::parse(&name).map_err(|_| corrupt("key name", &name))?,
        environment: environment
            .parse()
            .map_err(|_| corrupt("environment", &environment))?,
        kind: KeyKind::parse(&kind).ok_or_else(|| corrupt("key kind", &kind))?,
        display: row.try_get("display").map_err(map_err)?,
        hash: hash
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("key hash", "(wrong length)"))?,
        permissions: PermissionSet::parse_list(&perm_names)
            .map_err(|_| corrupt("permissions", &permissions))?,
        allowed_ips: AllowedIps::parse(&ip_entries)
            .map_err(|_| corrupt("allowed IPs", &allowed_ips))?,
        rate_limit_per_minute: u32::try_from(rate)
            .map_err(|_| corrupt("rate limit", &rate.to_string()))?,
        expires_at: ts("expires_at")?,
        revoked_at: ts("revoked_at")?,
        retired_at: ts("retired_at")?,
        template: row.try_get("template").map_err(map_err)?,
        created_at: Timestamp::from_micros(row.try_get("created_at").map_err(map_err)?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at").map_err(map_err)?),
        created_by: Actor::parse(&row.try_get::<String, _>("created_by").map_err(map_err)?),
        sent_in_url_at: ts("sent_in_url_at")?,
    })
}

pub(super) fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    let email: String = row.try_get("email").map_err(map_err)?;
    let role: String = row.try_get("role").map_err(map_err)?;
    Ok(User {
        id: row.try_get("id").map_err(map_err)?,
        shop_id: row.try_get("shop_id").map_err(map_err)?,
        email: Email::parse(&email).map_err(|_| corrupt("email", &email))?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        created_at: Timestamp::from_micros(row.try_get("created_at").map_err(map_err)?),
    })
}

fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditEvent> {
    let environment: Option<String> = row.try_get("environment").map_err(map_err)?;
    let details: String = row.try_get("details").map_err(map_err)?;
    Ok(AuditEvent {
        id: row.try_get("id").map_err(map_err)?,
        shop_id: row.try_get("shop_id").map_err(map_err)?,
        at: Timestamp::from_micros(row.try_get("at").map_err(map_err)?),
        actor: Actor::parse(&row.try_get::<String, _>("actor").map_err(map_err)?),
        action: row.try_get("action").map_err(map_err)?,
        key_id: row.try_get("key_id").map_err(map_err)?,
        environment: environment
            .map(|e| e.parse().map_err(|_| corrupt("environment", &e)))
            .transpose()?,
        ip: row.try_get("ip").map_err(map_err)?,
        details: serde_json::from_str(&details).map_err(|_| corrupt("audit details", &details))?,
    })
}

pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Sqlite>,
    e: &AuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, seq, shop_id, at, actor, action, key_id, environment, ip, details)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(&e.id)
    .bind(&e.shop_id)
    .bind(e.at.as_micros())
    .bind(e.actor.as_string())
    .bind(&e.action)
    .bind(&e.key_id)
    .bind(e.environment.map(|env| env.as_str()))
    .bind(&e.ip)
    .bind(e.details.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Appends the feed row for key `id` (reading its hash), in the caller's transaction.
async fn record_change(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO key_changes (key_id, key_hash, changed_at) SELECT id, key_hash, ?2 FROM api_keys WHERE id = ?1",
    )
    .bind(id)
    .bind(at.as_micros())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn fetch_key_in(
    tx: &mut Transaction<'_, Sqlite>,
    shop_id: &str,
    id: &str,
) -> StoreResult<KeyRecord> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE shop_id = ?1 AND id = ?2"
    ))
    .bind(shop_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?
    .ok_or(StoreError::NotFound)?;
    key_from_row(&row)
}

/// Refuses when the shop cannot take `adding` more keys.
async fn check_room(
    tx: &mut Transaction<'_, Sqlite>,
    shop_id: &str,
    adding: usize,
    max_per_shop: u32,
) -> StoreResult<()> {
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE shop_id = ?1")
        .bind(shop_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)?;
    let adding = i64::try_from(adding).unwrap_or(i64::MAX);
    if count.saturating_add(adding) > i64::from(max_per_shop) {
        return Err(StoreError::Conflict(format!(
            "this shop already has {count} keys, the most it may hold ({max_per_shop}); delete keys that are no longer used"
        )));
    }
    Ok(())
}

/// Inserts one key row in the caller's transaction.
async fn insert_key_row(tx: &mut Transaction<'_, Sqlite>, key: &KeyRecord) -> StoreResult<()> {
    sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ))
        .bind(&key.id)
        .bind(&key.shop_id)
        .bind(key.name.as_str())
        .bind(key.environment.as_str())
        .bind(key.kind.as_str())
        .bind(&key.display)
        .bind(&key.hash[..])
        .bind(key.permissions.to_names().join(" "))
        .bind(key.allowed_ips.to_strings().join(" "))
        .bind(i64::from(key.rate_limit_per_minute))
        .bind(key.expires_at.map(Timestamp::as_micros))
        .bind(key.revoked_at.map(Timestamp::as_micros))
        .bind(key.retired_at.map(Timestamp::as_micros))
        .bind(&key.template)
        .bind(key.created_at.as_micros())
        .bind(key.updated_at.as_micros())
        .bind(key.created_by.as_string())
        .bind(key.sent_in_url_at.map(Timestamp::as_micros))
        .execute(&mut **tx)
        .await
        .map_err(|e| match map_err(e) {
            // A 190-bit collision is not going to happen; an imported legacy
            // key that already exists is.
            StoreError::Conflict(_) => StoreError::Conflict("this key already exists".into()),
            other => other,
        })?;
    Ok(())
}

async fn insert_shop_and_owner(
    tx: &mut Transaction<'_, Sqlite>,
    shop: &Shop,
    owner: &User,
    audit: &AuditEvent,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO shops (id, name, created_at) VALUES (?1, ?2, ?3)")
        .bind(&shop.id)
        .bind(&shop.name)
        .bind(shop.created_at.as_micros())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO users (id, shop_id, email, role, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )
    .bind(&owner.id)
    .bind(&owner.shop_id)
    .bind(owner.email.as_str())
    .bind(owner.role.as_str())
    .bind(&owner.password_hash)
    .bind(owner.created_at.as_micros())
    .execute(&mut **tx)
    .await
    .map_err(|e| match map_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "a user with the email {} already exists",
            owner.email.as_str()
        )),
        other => other,
    })?;
    insert_audit(tx, audit).await
}

/// The SQL form of [`KeyRecord::status`]; the contract tests hold the two equal.
const STATUS_SQL: &str = "CASE
    WHEN revoked_at IS NOT NULL AND revoked_at <= ?2 THEN 'revoked'
    WHEN (retired_at IS NOT NULL AND retired_at <= ?2) OR (kind = 'legacy' AND ?2 >= ?3) THEN 'retired'
    WHEN expires_at IS NOT NULL AND expires_at <= ?2 THEN 'expired'
    ELSE 'active' END";

#[async_trait]
impl ShopStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn has_shops(&self) -> StoreResult<bool> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM shops) AS any")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.try_get::<bool, _>("any").map_err(map_err)?)
    }

    async fn create_shop(&self, shop: &Shop, owner: &User, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_shop_and_owner(&mut tx, shop, owner, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn put_setup_token(&self, token_hash: &[u8; 32], at: Timestamp) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM setup_tokens WHERE used_at IS NULL")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO setup_tokens (token_hash, created_at) VALUES (?1, ?2)")
            .bind(&token_hash[..])
            .bind(at.as_micros())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn setup_token_valid(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = ?1 AND used_at IS NULL)
                AND NOT EXISTS (SELECT 1 FROM shops) AS ok",
        )
        .bind(&token_hash[..])
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        row.try_get::<bool, _>("ok").map_err(map_err)
    }

    async fn complete_setup(
        &self,
        token_hash: &[u8; 32],
        shop: &Shop,
        owner: &User,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let used = sqlx::query(
            "UPDATE setup_tokens SET used_at = ?2
             WHERE token_hash = ?1 AND used_at IS NULL AND NOT EXISTS (SELECT 1 FROM shops)",
        )
        .bind(&token_hash[..])
        .bind(shop.created_at.as_micros())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if used.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_shop_and_owner(&mut tx, shop, owner, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn get_shop(&self, id: &str) -> StoreResult<Option<Shop>> {
        let row = sqlx::query("SELECT id, name, created_at FROM shops WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            Ok(Shop {
                id: r.try_get("id").map_err(map_err)?,
                name: r.try_get("name").map_err(map_err)?,
                created_at: Timestamp::from_micros(r.try_get("created_at").map_err(map_err)?),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        max_per_shop: u32,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        check_room(&mut tx, &key.shop_id, 1, max_per_shop).await?;
        insert_key_row(&mut tx, key).await?;
        // Creations go on the feed too: other instances drop the hash from their
        // negative caches, so a key made a moment after a failed try works at once.
        record_change(&mut tx, &key.id, key.created_at).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn insert_keys(
        &self,
        keys: &[KeyRecord],
        max_per_shop: u32,
        audits: &[AuditEvent],
    ) -> StoreResult<()> {
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let mut tx = self.write_tx().await?;
        check_room(&mut tx, &first.shop_id, keys.len(), max_per_shop).await?;
        for (i, key) in keys.iter().enumerate() {
            insert_key_row(&mut tx, key).await.map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("key {} ({}) already exists", i + 1, key.display))
                }
                other => other,
            })?;
            record_change(&mut tx, &key.id, key.created_at).await?;
        }
        for audit in audits {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn replace_key(
        &self,
        new: &KeyRecord,
        max_per_shop: u32,
        old_id: &str,
        change: &Replacement,
        audits: &[AuditEvent],
    ) -> StoreResult<KeyRecord> {
        let mut tx = self.write_tx().await?;
        let at = new.created_at;
        // The guard and the change in one statement: two concurrent rolls of
        // the same key cannot both succeed.
        let changed = sqlx::query(
            "UPDATE api_keys SET
                rolled_to = CASE WHEN ?3 THEN ?4 ELSE rolled_to END,
                expires_at = COALESCE(?5, expires_at),
                retired_at = COALESCE(retired_at, ?6),
                updated_at = ?7
             WHERE shop_id = ?1 AND id = ?2 AND NOT (?3 AND rolled_to IS NOT NULL)",
        )
        .bind(&new.shop_id)
        .bind(old_id)
        .bind(change.mark_rolled)
        .bind(&new.id)
        .bind(change.expires_at.map(Timestamp::as_micros))
        .bind(change.retired_at.map(Timestamp::as_micros))
        .bind(at.as_micros())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if changed.rows_affected() == 0 {
            let exists = fetch_key_in(&mut tx, &new.shop_id, old_id).await;
            return Err(match exists {
                Ok(_) => StoreError::Conflict(
                    "this key has already been rolled; roll its replacement instead".into(),
                ),
                Err(e) => e,
            });
        }
        check_room(&mut tx, &new.shop_id, 1, max_per_shop).await?;
        insert_key_row(&mut tx, new).await?;
        record_change(&mut tx, &new.id, at).await?;
        record_change(&mut tx, old_id, at).await?;
        for audit in audits {
            insert_audit(&mut tx, audit).await?;
        }
        let old = fetch_key_in(&mut tx, &new.shop_id, old_id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(old)
    }

    async fn rolled_to(&self, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT rolled_to FROM api_keys WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        match row {
            Some(r) => r.try_get("rolled_to").map_err(map_err),
            None => Ok(None),
        }
    }

    async fn get_key(&self, shop_id: &str, id: &str) -> StoreResult<Option<KeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE shop_id = ?1 AND id = ?2"
        ))
        .bind(shop_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn get_key_any_shop(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn find_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"
        ))
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(
        &self,
        shop_id: &str,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> StoreResult<Paged<KeyRecord>> {
        let from = format!(
            "FROM (SELECT {KEY_COLUMNS}, {STATUS_SQL} AS status FROM api_keys WHERE shop_id = ?1) k
             WHERE (?4 IS NULL OR environment = ?4) AND (?5 IS NULL OR status = ?5)"
        );
        let env = filter.environment.map(|e| e.as_str());
        let status = filter.status.map(|s| s.as_str());
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n {from}"))
            .bind(shop_id)
            .bind(filter.now.as_micros())
            .bind(filter.legacy_sunset.as_micros())
            .bind(env)
            .bind(status)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?
            .try_get("n")
            .map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} {from} ORDER BY created_at DESC, id DESC LIMIT ?6 OFFSET ?7"
        ))
        .bind(shop_id)
        .bind(filter.now.as_micros())
        .bind(filter.legacy_sunset.as_micros())
        .bind(env)
        .bind(status)
        .bind(i64::from(page.per_page))
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(Paged {
            items: rows.iter().map(key_from_row).collect::<StoreResult<_>>()?,
            total: total as u64,
        })
    }

    async fn update_key(
        &self,
        shop_id: &str,
        id: &str,
        update: &KeyUpdate,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<KeyRecord> {
        let mut tx = self.write_tx().await?;
        // Only the named columns change, so an edit racing a revoke cannot undo it.
        let result = sqlx::query(
            "UPDATE api_keys SET
                name = COALESCE(?3, name),
                allowed_ips = COALESCE(?4, allowed_ips),
                expires_at = CASE WHEN ?5 THEN ?6 ELSE expires_at END,
                rate_limit_per_minute = COALESCE(?7, rate_limit_per_minute),
                permissions = COALESCE(?8, permissions),
                updated_at = ?9
             WHERE shop_id = ?1 AND id = ?2",
        )
        .bind(shop_id)
        .bind(id)
        .bind(update.name.as_ref().map(KeyName::as_str))
        .bind(
            update
                .allowed_ips
                .as_ref()
                .map(|ips| ips.to_strings().join(" ")),
        )
        .bind(update.expires_at.is_some())
        .bind(update.expires_at.flatten().map(Timestamp::as_micros))
        .bind(update.rate_limit_per_minute.map(i64::from))
        .bind(update.permissions.map(|p| p.to_names().join(" ")))
        .bind(at.as_micros())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        record_change(&mut tx, id, at).await?;
        insert_audit(&mut tx, audit).await?;
        let key = fetch_key_in(&mut tx, shop_id, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(key)
    }

    async fn revoke_key(
        &self,
        shop_id: &str,
        id: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<KeyRecord> {
        let mut tx = self.write_tx().await?;
        let result = sqlx::query(
            "UPDATE api_keys SET revoked_at = ?3, updated_at = ?3
             WHERE shop_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        )
        .bind(shop_id)
        .bind(id)
        .bind(at.as_micros())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let key = fetch_key_in(&mut tx, shop_id, id).await?;
        if result.rows_affected() > 0 {
            record_change(&mut tx, id, at).await?;
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(key)
    }

    async fn delete_key(&self, shop_id: &str, id: &str, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        record_change(&mut tx, id, audit.at).await?;
        let result = sqlx::query("DELETE FROM api_keys WHERE shop_id = ?1 AND id = ?2")
            .bind(shop_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound); // dropping `tx` rolls back
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn mark_key_sent_in_url(&self, id: &str, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let marked = sqlx::query("UPDATE api_keys SET sent_in_url_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(audit.at.as_micros())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if marked.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        record_change(&mut tx, id, audit.at).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn key_changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<KeyChange>> {
        let rows = sqlx::query(
            "SELECT seq, key_id, key_hash FROM key_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.try_get("key_hash").map_err(map_err)?;
                Ok(KeyChange {
                    seq: r.try_get("seq").map_err(map_err)?,
                    key_id: r.try_get("key_id").map_err(map_err)?,
                    key_hash: hash
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("key hash", "(wrong length)"))?,
                })
            })
            .collect()
    }

    async fn last_key_change(&self) -> StoreResult<i64> {
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM key_changes")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?
            .try_get("seq")
            .map_err(map_err)
    }

    async fn prune_key_changes(&self, before: Timestamp) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM key_changes WHERE changed_at < ?1")
            .bind(before.as_micros())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_audit(&mut tx, event).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_audit_events(
        &self,
        shop_id: &str,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Paged<AuditEvent>> {
        let env = filter.environment.map(|e| e.as_str());
        let conditions = "shop_id = ?1 AND (?2 IS NULL OR environment = ?2)
             AND (?3 IS NULL OR key_id = ?3) AND (?4 IS NULL OR action = ?4)";
        let total: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE {conditions}"
        ))
        .bind(shop_id)
        .bind(env)
        .bind(&filter.key_id)
        .bind(&filter.action)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM audit_events WHERE {conditions} ORDER BY at DESC, seq DESC LIMIT ?5 OFFSET ?6"
        ))
        .bind(shop_id)
        .bind(env)
        .bind(&filter.key_id)
        .bind(&filter.action)
        .bind(i64::from(page.per_page))
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(Paged {
            items: rows
                .iter()
                .map(audit_from_row)
                .collect::<StoreResult<_>>()?,
            total: total as u64,
        })
    }
}
