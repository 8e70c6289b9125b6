//! SQLite: appending to the audit log; the port is written once in
//! [`crate::store::shared::audit`].

use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, map_err};
use crate::store::{AuditEvent, StoreResult};

/// Appends `e` in the caller's transaction. Its position comes from the
/// `audit_sequence` counter row (migration 0006), bumped in the same
/// transaction, so two writers can never be handed the same `seq`.
pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Sqlite>,
    e: &AuditEvent,
) -> StoreResult<()> {
    let seq: i64 =
        sqlx::query("UPDATE audit_sequence SET last = last + 1 WHERE id = 1 RETURNING last")
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?
            .try_get("last")
            .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO audit_events (id, seq, shop_id, at, actor, action, key_id, environment, ip, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .bind(&e.id)
    .bind(seq)
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

crate::store::shared::audit::audit_store!(SqliteStore);
