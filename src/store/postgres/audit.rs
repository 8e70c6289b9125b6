//! PostgreSQL: the audit log. `seq` is an identity column: unique without a
//! lock; it only breaks ties between events of the same microsecond.

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};

use super::{PostgresStore, map_err};
use crate::store::row::audit_from_row;
use crate::store::{AuditEvent, AuditFilter, AuditStore, PageRequest, Paged, StoreResult};

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

#[async_trait]
impl AuditStore for PostgresStore {
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
        let conditions = "shop_id = $1 AND ($2::TEXT IS NULL OR environment = $2)
             AND ($3::TEXT IS NULL OR key_id = $3) AND ($4::TEXT IS NULL OR action = $4)";
        // One snapshot for the count and the page, so they agree.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let total: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE {conditions}"
        ))
        .bind(shop_id)
        .bind(env)
        .bind(&filter.key_id)
        .bind(&filter.action)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?
        .try_get("n")
        .map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM audit_events WHERE {conditions} ORDER BY at DESC, seq DESC LIMIT $5 OFFSET $6"
        ))
        .bind(shop_id)
        .bind(env)
        .bind(&filter.key_id)
        .bind(&filter.action)
        .bind(i64::from(page.per_page))
        .bind(page.offset())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Paged {
            items: rows
                .iter()
                .map(audit_from_row)
                .collect::<StoreResult<_>>()?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }
}
