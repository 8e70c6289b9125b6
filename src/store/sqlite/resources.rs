//! SQLite: clients, orders, devices, test data and idempotency keys. The port
//! is written once in [`crate::store::shared::resources`].

use super::{Db, SqliteStore, map_err};
use crate::store::StoreResult;
use crate::store::resources::Scope;

/// Nothing to lock before a client's delete counts its orders: the
/// transaction holds SQLite's write lock from `BEGIN IMMEDIATE` on, so no
/// order can be added between the count and the delete.
async fn lock_client(
    _conn: &mut <Db as sqlx::Database>::Connection,
    _scope: &Scope,
    _id: &str,
) -> StoreResult<()> {
    Ok(())
}

crate::store::shared::resources::resource_store!(SqliteStore, key_share = "", refuses_nul = false);
