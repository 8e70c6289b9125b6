//! The [`AuditStore`](crate::store::AuditStore) port (appending and listing
//! audit events), written once for both backends. How an event is appended
//! inside a transaction (`insert_audit`, which every mutation calls) stays per
//! backend: SQLite takes `seq` from a counter row, PostgreSQL from an identity
//! column.
//!
//! `audit_store!(SqliteStore)` in `store::sqlite::audit` and
//! `audit_store!(PostgresStore)` in `store::postgres::audit` expand it into
//! each backend's `impl AuditStore`. The invoking module provides `map_err`,
//! `insert_audit` and the store's `write_tx()` and `read_snapshot()`.

macro_rules! audit_store {
    ($Store:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::store::row::audit_from_row;
            use $crate::store::{AuditEvent, AuditFilter, AuditStore, PageRequest, Paged, StoreResult};

            #[async_trait]
            impl AuditStore for $Store {
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
                    let conditions = "shop_id = $1 AND ($2 IS NULL OR environment = $2)
                         AND ($3 IS NULL OR key_id = $3) AND ($4 IS NULL OR action = $4)";
                    // One snapshot for the count and the page, so they agree.
                    let mut tx = self.read_snapshot().await?;
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
        };
    };
}

pub(crate) use audit_store;
