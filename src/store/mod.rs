//! Persistence behind one trait, so the SQLite store (default) and a PostgreSQL
//! store serve the same callers. Only portable types cross this boundary:
//! strings, integers, [`Timestamp`]s and the domain types built from them.
//!
//! Every mutation of a key writes, in the same transaction, a `key_changes` row
//! (the invalidation feed every instance tails) and its audit event: what the API
//! confirmed is durable, and nothing is half-written.

pub mod copy;
pub mod postgres;
pub mod resources;
mod row;
mod shared;
pub mod sqlite;
pub mod usage;
pub mod users;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyName, KeyRecord, KeyStatus};
use crate::domain::net::AllowedIps;
use crate::domain::permission::PermissionSet;
use crate::domain::token::Environment;
use crate::domain::user::{Email, Role};

/// Errors a store reports. Callers map them to HTTP answers in one place
/// (`error.rs`); a store never decides a status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The data's state forbids it (a limit reached, a unique value taken).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens the store `url` names, by its scheme: `sqlite://PATH` (or
/// `sqlite::memory:`), `postgres://…` or `postgresql://…`; pending migrations
/// are applied. An unknown scheme or an unreachable database is
/// [`StoreError::Unavailable`], whose message never repeats the URL (the
/// caller names it, with its password redacted).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::Unavailable(
            "the database URL is neither sqlite://PATH nor postgres://…".into(),
        ))
    }
}

/// Unused setup tokens are kept this long (a day) after they were printed.
pub const SETUP_TOKEN_PRUNE_SECONDS: i64 = 24 * 3600;

/// A build's migrations, tolerant of newer ones: during a rolling upgrade the
/// first new instance migrates the database, and an old instance that starts
/// (or restarts) afterwards must still open it rather than refuse a migration
/// it does not know. That is safe because migrations only add (docs/DEPLOY.md,
/// "Rolling upgrades"; `tests/migrations.rs` holds them to it).
fn tolerant(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// Says so, once at open, when a newer build has migrated the database.
fn warn_if_newer(migrator: &sqlx::migrate::Migrator, applied: Option<i64>) {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(applied) = applied.filter(|v| *v > known) {
        tracing::warn!(
            applied,
            known,
            "the database has migrations newer than this build knows (a newer latchkey upgraded it); this build runs on the newer schema until it is replaced"
        );
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Shop {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// A shop as `latchkey shop list` shows it, with what the operator needs
/// to recognise it and what `serve` checks at start.
#[derive(Clone, Debug)]
pub struct ShopListing {
    pub shop: Shop,
    /// The first owner's email (the login that created the shop).
    pub owner_email: Option<String>,
    /// Legacy keys neither revoked nor retired by an upgrade: the keys the
    /// legacy cut-off stops.
    pub legacy_keys: u64,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub shop_id: String,
    pub email: Email,
    pub role: Role,
    /// argon2id PHC string; never serialised.
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// A change to a key's settings; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct KeyUpdate {
    pub name: Option<KeyName>,
    pub allowed_ips: Option<AllowedIps>,
    pub expires_at: Option<Option<Timestamp>>,
    pub rate_limit_per_minute: Option<u32>,
    pub permissions: Option<PermissionSet>,
}

impl KeyUpdate {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.allowed_ips.is_none()
            && self.expires_at.is_none()
            && self.rate_limit_per_minute.is_none()
            && self.permissions.is_none()
    }
}

/// What happens to a key when it is replaced (rolled or upgraded).
#[derive(Clone, Debug, Default)]
pub struct Replacement {
    /// Records the new key as the old one's `rolled_to`; refused if set already.
    pub mark_rolled: bool,
    /// A new expiry for the old key (the end of a roll's grace period).
    pub expires_at: Option<Timestamp>,
    /// Retires the old key at this instant (an upgrade retiring a legacy key).
    pub retired_at: Option<Timestamp>,
}

/// Which keys a listing returns.
#[derive(Clone, Debug)]
pub struct KeyFilter {
    pub environment: Option<Environment>,
    pub status: Option<KeyStatus>,
    /// Status depends on time and the legacy cut-off.
    pub now: Timestamp,
    pub legacy_sunset: Timestamp,
}

#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    pub fn offset(self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.per_page)
    }
}

#[derive(Clone, Debug)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// One row of the invalidation feed.
#[derive(Clone, Debug)]
pub struct KeyChange {
    pub seq: i64,
    pub key_id: String,
    pub key_hash: [u8; 32],
}

/// Who did what to which key, when and from where.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: String,
    #[serde(skip)]
    pub shop_id: String,
    pub at: Timestamp,
    /// The user id, key id or `cli` that acted.
    #[schema(value_type = String, example = "key_YtLkX1OQhXrisuV1L0CV1zX5")]
    pub actor: Actor,
    /// e.g. `key.created`, `key.updated`, `key.revoked`, `key.deleted`, `key.cloned`.
    #[schema(example = "key.revoked")]
    pub action: String,
    pub key_id: Option<String>,
    /// The environment of the key acted on, so a test key sees only test events.
    pub environment: Option<Environment>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub environment: Option<Environment>,
    pub key_id: Option<String>,
    pub action: Option<String>,
}

/// Shops, the first-run setup token, the server secret's fingerprint, and the
/// database's health.
#[async_trait]
pub trait ShopStore: Send + Sync {
    /// Answers when the database does (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// Records `fingerprint` as the server secret's unless one is recorded
    /// already, and returns the one recorded (this one, or the first
    /// opener's). Race-free: openers starting at once all get the same one.
    async fn claim_secret_fingerprint(
        &self,
        fingerprint: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<[u8; 32]>;
    async fn has_shops(&self) -> StoreResult<bool>;
    /// Creates a shop and its owner in one transaction.
    async fn create_shop(&self, shop: &Shop, owner: &User, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_shop(&self, id: &str) -> StoreResult<Option<Shop>>;
    /// Every shop, oldest first.
    async fn list_shops(&self) -> StoreResult<Vec<ShopListing>>;
    /// Adds a setup token. Every unused token works until one of them creates
    /// the first shop: several instances starting together on an empty
    /// database each print a link, and each must work. Unused tokens older
    /// than [`SETUP_TOKEN_PRUNE_SECONDS`] before `at` are removed.
    async fn put_setup_token(&self, token_hash: &[u8; 32], at: Timestamp) -> StoreResult<()>;
    /// Whether an unused setup token with this hash exists and no shop does.
    async fn setup_token_valid(&self, token_hash: &[u8; 32]) -> StoreResult<bool>;
    /// Uses the token and creates the first shop and its owner, atomically.
    /// `NotFound` when the token is unknown or used, or a shop already exists.
    async fn complete_setup(
        &self,
        token_hash: &[u8; 32],
        shop: &Shop,
        owner: &User,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}

/// API keys. Every mutation writes its `key_changes` row and audit events in
/// the same transaction.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts a key unless its shop already holds `max_per_shop` keys.
    async fn insert_key(
        &self,
        key: &KeyRecord,
        max_per_shop: u32,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// A key of `shop_id` by id; another shop's key is `None`.
    async fn get_key(&self, shop_id: &str, id: &str) -> StoreResult<Option<KeyRecord>>;
    /// A key by id in any shop (the CLI's view: key ids are unique across shops).
    async fn get_key_any_shop(&self, id: &str) -> StoreResult<Option<KeyRecord>>;
    async fn find_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>>;
    async fn list_keys(
        &self,
        shop_id: &str,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> StoreResult<Paged<KeyRecord>>;
    /// Applies `update` and returns the key as it now is.
    async fn update_key(
        &self,
        shop_id: &str,
        id: &str,
        update: &KeyUpdate,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<KeyRecord>;
    /// Revokes a key (keeping the first revocation time if it was already
    /// revoked) and returns it.
    async fn revoke_key(
        &self,
        shop_id: &str,
        id: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<KeyRecord>;
    /// Pauses (`Some`) or resumes (`None`) a key that is not revoked, with
    /// its audit event and feed row, and returns it; `None` (nothing written)
    /// when the key is unknown, revoked, or already paused or running.
    async fn set_paused(
        &self,
        shop_id: &str,
        id: &str,
        pause: Option<&crate::domain::key::Pause>,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<Option<KeyRecord>>;
    /// Records a leaked-key report on key `id` (any shop), and revokes it
    /// when `revoke`, with the audit event and feed row; returns the key.
    /// `None` (nothing written) when the key is unknown or the report adds
    /// nothing (already flagged, and revoked if `revoke`).
    async fn mark_key_leaked(
        &self,
        id: &str,
        leak: &crate::domain::key::Leak,
        revoke: bool,
        audit: &AuditEvent,
    ) -> StoreResult<Option<KeyRecord>>;
    async fn delete_key(&self, shop_id: &str, id: &str, audit: &AuditEvent) -> StoreResult<()>;
    /// Marks that the key was seen in a URL (a warning on the key) and audits
    /// it; `NotFound` (and nothing written) for an unknown key.
    async fn mark_key_sent_in_url(&self, id: &str, audit: &AuditEvent) -> StoreResult<()>;
    /// Inserts many keys (an import) in one transaction, with their audit
    /// events: all or nothing. `Conflict` naming the first key (by index)
    /// whose hash already exists, or when the shop would exceed `max_per_shop`.
    async fn insert_keys(
        &self,
        keys: &[KeyRecord],
        max_per_shop: u32,
        audits: &[AuditEvent],
    ) -> StoreResult<()>;
    /// Inserts `new` as the replacement of key `old_id` (same shop) and changes
    /// the old key as `change` says, in one transaction with `audits`.
    /// `Conflict` when `change.mark_rolled` and the old key was already rolled.
    async fn replace_key(
        &self,
        new: &KeyRecord,
        max_per_shop: u32,
        old_id: &str,
        change: &Replacement,
        audits: &[AuditEvent],
    ) -> StoreResult<KeyRecord>;
    /// The id of the key `id` was rolled to, if it was rolled.
    async fn rolled_to(&self, id: &str) -> StoreResult<Option<String>>;
}

/// The `key_changes` invalidation feed every instance tails.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Feed rows after `seq`, oldest first.
    async fn key_changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<KeyChange>>;
    /// The newest feed position (0 when empty).
    async fn last_key_change(&self) -> StoreResult<i64>;
    /// Drops feed rows older than `before`; instances only ever need the recent ones.
    async fn prune_key_changes(&self, before: Timestamp) -> StoreResult<u64>;
    /// Returns when a change may have been recorded (by any instance or the
    /// CLI), or after `max`. Only a hint to poll early: a tailer still polls
    /// [`Self::key_changes_since`] at least every `max`, so a lost wake-up
    /// costs latency, never a change. The default just sleeps; PostgreSQL
    /// wakes on `LISTEN/NOTIFY`.
    async fn wait_for_change(&self, max: std::time::Duration) {
        tokio::time::sleep(max).await;
    }
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    async fn list_audit_events(
        &self,
        shop_id: &str,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Paged<AuditEvent>>;
}

/// Every port one database serves; a backend implements each of them.
pub trait Store:
    ShopStore
    + KeyStore
    + ChangeFeed
    + AuditStore
    + resources::ResourceStore
    + usage::UsageStore
    + users::UserStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: ShopStore
        + KeyStore
        + ChangeFeed
        + AuditStore
        + resources::ResourceStore
        + usage::UsageStore
        + users::UserStore
        + Send
        + Sync
        + 'static
{
}
