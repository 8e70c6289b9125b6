//! PostgreSQL: appending to the audit log; the port is written once in
//! [`crate::store::shared::audit`]. `seq` is an identity column: unique
//! without a lock; it only breaks ties between events of the same microsecond.

use sqlx::{Postgres, Transaction};

use super::{PostgresStore, map_err};
use crate::store::{AuditEvent, StoreResult};

/// Appends `e` in the caller's transaction.
pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    e: &AuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, shop_id, at, actor, action, key_id, environment, ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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

crate::store::shared::audit::audit_store!(PostgresStore);
