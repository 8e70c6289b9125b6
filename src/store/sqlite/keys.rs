//! SQLite: API keys. The port is written once in
//! [`crate::store::shared::keys`]; every mutation writes its `key_changes`
//! rows and audit events in the same transaction.

use sqlx::Transaction;

use super::audit::insert_audit;
use super::feed::record_changes;
use super::{Db, SqliteStore, map_err};
use crate::store::StoreResult;

/// Nothing to lock: the transaction holds SQLite's write lock from `BEGIN
/// IMMEDIATE` on, so `check_room`'s count and the insert after it are atomic
/// (PostgreSQL locks the shop row instead).
async fn lock_shop(_tx: &mut Transaction<'_, Db>, _shop_id: &str) -> StoreResult<()> {
    Ok(())
}

crate::store::shared::keys::key_store!(SqliteStore);
