//! SQLite: recording changes on the `key_changes` invalidation feed; its
//! reads are written once in [`crate::store::shared::feed`].
//!
//! `seq` is `AUTOINCREMENT`, handed out while the transaction holds SQLite's
//! database write lock (every writer, in this process or another, takes it
//! before writing and keeps it until commit). So `seq` order is commit order,
//! and a tailer reading `seq > last` cannot skip a change that commits later
//! with a smaller number. (PostgreSQL gets the same property from a counter
//! row; see `store::postgres::feed`.)

use sqlx::{Sqlite, Transaction};

use super::{SqliteStore, map_err};
use crate::domain::clock::Timestamp;
use crate::store::StoreResult;

/// Appends a feed row for each (key id, key hash), in the caller's
/// transaction.
pub(super) async fn record_changes(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &[(&str, &[u8; 32])],
    at: Timestamp,
) -> StoreResult<()> {
    for (id, hash) in keys {
        sqlx::query("INSERT INTO key_changes (key_id, key_hash, changed_at) VALUES ($1, $2, $3)")
            .bind(*id)
            .bind(&hash[..])
            .bind(at.as_micros())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

crate::store::shared::feed::change_feed!(SqliteStore);
