//! SQLite: the audit log.

use async_trait::async_trait;
use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, map_err};
use crate::store::row::audit_from_row;
use crate::store::{AuditEvent, AuditFilter, AuditStore, PageRequest, Paged, StoreResult};

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
            total: u64::try_from(total).unwrap_or(0),
        })
    }
}
