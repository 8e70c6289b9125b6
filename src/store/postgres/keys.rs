//! PostgreSQL: API keys. The port is written once in
//! [`crate::store::shared::keys`]; every mutation writes its audit events and
//! then, last before commit, its `key_changes` rows (see [`super::feed`]).

use sqlx::Transaction;

use super::audit::insert_audit;
use super::feed::record_changes;
use super::{Db, PostgresStore, map_err};
use crate::store::StoreResult;

/// Locks the shop row for `check_room`'s count: `FOR NO KEY UPDATE` excludes
/// another `check_room` on the same shop but not the foreign-key checks of
/// inserts, so two creations racing at the limit count one after the other
/// and the second sees the first's key.
async fn lock_shop(tx: &mut Transaction<'_, Db>, shop_id: &str) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM shops WHERE id = $1 FOR NO KEY UPDATE")
        .bind(shop_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

crate::store::shared::keys::key_store!(PostgresStore);
