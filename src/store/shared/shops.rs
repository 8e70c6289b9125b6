//! The [`ShopStore`](crate::store::ShopStore) port (shops, the first-run setup
//! token, the secret's fingerprint, health), written once for both backends.
//!
//! `shop_store!(SqliteStore)` in `store::sqlite::shops` and
//! `shop_store!(PostgresStore)` in `store::postgres::shops` expand it into
//! each backend's `impl ShopStore`. The invoking module provides `Db` (its
//! sqlx database), `map_err`, `insert_audit` and the store's `write_tx()` and
//! `pool`.

macro_rules! shop_store {
    ($Store:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::{Row, Transaction};

            use $crate::domain::clock::Timestamp;
            use $crate::store::row::{RowExt as _, fingerprint_from_row, shop_from_row};
            use $crate::store::shared::users::email_taken;
            use $crate::store::{AuditEvent, Shop, ShopListing, ShopStore, StoreError, StoreResult, User};

            /// Inserts a new shop, its owner and the audit event, in `tx`.
            async fn insert_shop_and_owner(
                tx: &mut Transaction<'_, Db>,
                shop: &Shop,
                owner: &User,
                audit: &AuditEvent,
            ) -> StoreResult<()> {
                sqlx::query("INSERT INTO shops (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&shop.id)
                    .bind(&shop.name)
                    .bind(shop.created_at.as_micros())
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO users (id, shop_id, email, role, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(&owner.id)
                .bind(&owner.shop_id)
                .bind(owner.email.as_str())
                .bind(owner.role.as_str())
                .bind(&owner.password_hash)
                .bind(owner.created_at.as_micros())
                .execute(&mut **tx)
                .await
                .map_err(map_err)
                .map_err(|e| email_taken(e, owner))?;
                insert_audit(tx, audit).await
            }

            #[async_trait]
            impl ShopStore for $Store {
                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1")
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Ok(())
                }

                async fn claim_secret_fingerprint(
                    &self,
                    fingerprint: &[u8; 32],
                    at: Timestamp,
                ) -> StoreResult<[u8; 32]> {
                    // Insert-if-absent, then read back: whoever inserted first wins, and
                    // everyone reads the winner's.
                    sqlx::query(
                        "INSERT INTO secret_fingerprint (id, fingerprint, created_at) VALUES (1, $1, $2)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&fingerprint[..])
                    .bind(at.as_micros())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                    let row = sqlx::query("SELECT fingerprint FROM secret_fingerprint WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                    fingerprint_from_row(&row)
                }

                async fn has_shops(&self) -> StoreResult<bool> {
                    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM shops) AS found")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                    row.try_get::<bool, _>("found").map_err(map_err)
                }

                async fn create_shop(&self, shop: &Shop, owner: &User, audit: &AuditEvent) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    insert_shop_and_owner(&mut tx, shop, owner, audit).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn put_setup_token(&self, token_hash: &[u8; 32], at: Timestamp) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query("DELETE FROM setup_tokens WHERE used_at IS NULL AND created_at < $1")
                        .bind(
                            at.plus_seconds(-crate::store::SETUP_TOKEN_PRUNE_SECONDS)
                                .as_micros(),
                        )
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    sqlx::query("INSERT INTO setup_tokens (token_hash, created_at) VALUES ($1, $2)")
                        .bind(&token_hash[..])
                        .bind(at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)
                }

                async fn setup_token_valid(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
                    let row = sqlx::query(
                        "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND used_at IS NULL)
                            AND NOT EXISTS (SELECT 1 FROM shops) AS ok",
                    )
                    .bind(&token_hash[..])
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                    row.try_get::<bool, _>("ok").map_err(map_err)
                }

                async fn complete_setup(
                    &self,
                    token_hash: &[u8; 32],
                    shop: &Shop,
                    owner: &User,
                    audit: &AuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    let used = sqlx::query(
                        "UPDATE setup_tokens SET used_at = $2
                         WHERE token_hash = $1 AND used_at IS NULL AND NOT EXISTS (SELECT 1 FROM shops)",
                    )
                    .bind(&token_hash[..])
                    .bind(shop.created_at.as_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if used.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    insert_shop_and_owner(&mut tx, shop, owner, audit).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn get_shop(&self, id: &str) -> StoreResult<Option<Shop>> {
                    let row = sqlx::query("SELECT id, name, created_at FROM shops WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    row.as_ref().map(shop_from_row).transpose()
                }

                async fn list_shops(&self) -> StoreResult<Vec<ShopListing>> {
                    let rows = sqlx::query(
                        "SELECT s.id, s.name, s.created_at,
                                (SELECT u.email FROM users u
                                  WHERE u.shop_id = s.id AND u.role = 'owner'
                                  ORDER BY u.created_at, u.id LIMIT 1) AS owner_email,
                                (SELECT COUNT(*) FROM api_keys k
                                  WHERE k.shop_id = s.id AND k.kind = 'legacy'
                                    AND k.revoked_at IS NULL AND k.retired_at IS NULL) AS legacy_keys
                         FROM shops s ORDER BY s.created_at, s.id",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                    rows.iter()
                        .map(|row| {
                            Ok(ShopListing {
                                shop: shop_from_row(row)?,
                                owner_email: row.opt_text("owner_email")?,
                                legacy_keys: row.count("legacy_keys")?,
                            })
                        })
                        .collect()
                }
            }
        };
    };
}

pub(crate) use shop_store;
