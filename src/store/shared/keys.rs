//! The [`KeyStore`](crate::store::KeyStore) port (API keys), written once for
//! both backends. Every mutation writes its audit events and then, last before
//! commit, its `key_changes` rows: on PostgreSQL the feed's counter row is the
//! one lock every key mutation shares, so it is held for the shortest time
//! possible (see `store::postgres::feed`); on SQLite the order does not matter.
//!
//! `key_store!(SqliteStore)` in `store::sqlite::keys` and
//! `key_store!(PostgresStore)` in `store::postgres::keys` expand it into each
//! backend's `impl KeyStore`. The invoking module provides `Db`, `map_err`,
//! `insert_audit`, `record_changes` (the feed append), `lock_shop` (the row
//! lock `check_room` counts under) and the store's `write_tx()`,
//! `read_snapshot()` and `pool`.

use crate::domain::key::KeyRecord;
use crate::store::StoreResult;
use crate::store::row::{RowExt, key_from_row};

/// The SQL form of [`KeyRecord::status`]; the contract tests hold the two equal.
pub(crate) const STATUS_SQL: &str = "CASE
    WHEN revoked_at IS NOT NULL AND revoked_at <= $2 THEN 'revoked'
    WHEN (retired_at IS NOT NULL AND retired_at <= $2) OR (kind = 'legacy' AND $2 >= $3) THEN 'retired'
    WHEN expires_at IS NOT NULL AND expires_at <= $2 THEN 'expired'
    WHEN paused_at IS NOT NULL THEN 'paused'
    ELSE 'active' END";

/// A key row that may be absent, as a key.
pub(crate) fn key_from_optional(row: Option<impl RowExt>) -> StoreResult<Option<KeyRecord>> {
    row.as_ref().map(key_from_row).transpose()
}

macro_rules! key_store {
    ($Store:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::{Row, Transaction};

            use $crate::domain::clock::Timestamp;
            use $crate::domain::key::{KeyName, KeyRecord, Leak, Pause};
            use $crate::domain::token::Environment;
            use $crate::store::row::{
                KEY_COLUMNS, allowed_ips_text, key_from_row, permissions_text, shop_full,
            };
            use $crate::store::shared::keys::{STATUS_SQL, key_from_optional};
            use $crate::store::{
                AuditEvent, KeyFilter, KeyStore, KeyUpdate, PageRequest, Paged, Replacement,
                StoreError, StoreResult,
            };

            async fn fetch_key_in(
                tx: &mut Transaction<'_, Db>,
                shop_id: &str,
                id: &str,
            ) -> StoreResult<KeyRecord> {
                let row = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE shop_id = $1 AND id = $2"
                ))
                .bind(shop_id)
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
                key_from_row(&row)
            }

            /// Refuses when the shop cannot take `adding` more keys of `environment`
            /// (live and test keys are counted apart: test keys never block live
            /// ones). `lock_shop`
            /// makes count and insert atomic: on PostgreSQL it locks the shop row
            /// (`FOR NO KEY UPDATE`: it excludes another `check_room` on the same shop
            /// but not the foreign-key checks of inserts), so two creations racing at
            /// the limit count one after the other and the second sees the first's
            /// key; on SQLite the transaction already holds the database's write lock
            /// from `BEGIN IMMEDIATE` on. A shop that does not exist is left to the
            /// insert's foreign key.
            async fn check_room(
                tx: &mut Transaction<'_, Db>,
                shop_id: &str,
                environment: Environment,
                adding: usize,
                max_per_shop: u32,
            ) -> StoreResult<()> {
                lock_shop(tx, shop_id).await?;
                let count: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM api_keys WHERE shop_id = $1 AND environment = $2",
                )
                    .bind(shop_id)
                    .bind(environment.as_str())
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .try_get("n")
                    .map_err(map_err)?;
                let adding = i64::try_from(adding).unwrap_or(i64::MAX);
                if count.saturating_add(adding) > i64::from(max_per_shop) {
                    return Err(shop_full(count, environment, max_per_shop));
                }
                Ok(())
            }

            /// Inserts one key row in the caller's transaction.
            async fn insert_key_row(tx: &mut Transaction<'_, Db>, key: &KeyRecord) -> StoreResult<()> {
                sqlx::query(&format!(
                        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
                    ))
                    .bind(&key.id)
                    .bind(&key.shop_id)
                    .bind(key.name.as_str())
                    .bind(key.environment.as_str())
                    .bind(key.kind.as_str())
                    .bind(&key.display)
                    .bind(&key.hash[..])
                    .bind(permissions_text(&key.permissions))
                    .bind(allowed_ips_text(&key.allowed_ips))
                    .bind(i64::from(key.rate_limit_per_minute))
                    .bind(key.expires_at.map(Timestamp::as_micros))
                    .bind(key.revoked_at.map(Timestamp::as_micros))
                    .bind(key.retired_at.map(Timestamp::as_micros))
                    .bind(&key.template)
                    .bind(key.created_at.as_micros())
                    .bind(key.updated_at.as_micros())
                    .bind(key.created_by.as_string())
                    .bind(key.sent_in_url_at.map(Timestamp::as_micros))
                    .bind(key.paused.as_ref().map(|p| p.at.as_micros()))
                    .bind(key.paused.as_ref().and_then(|p| p.reason.as_ref()).map(|r| r.as_str().to_owned()))
                    .bind(key.paused.as_ref().map(|p| p.by.as_string()))
                    .bind(key.leaked.as_ref().map(|l| l.at.as_micros()))
                    .bind(key.leaked.as_ref().map(|l| l.url.clone()))
                    .bind(key.leaked.as_ref().map(|l| l.source.clone()))
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| match map_err(e) {
                        // A 190-bit collision is not going to happen; an imported legacy
                        // key that already exists is.
                        StoreError::Conflict(_) => StoreError::Conflict("this key already exists".into()),
                        other => other,
                    })?;
                Ok(())
            }

            #[async_trait]
            impl KeyStore for $Store {
                async fn insert_key(
                    &self,
                    key: &KeyRecord,
                    max_per_shop: u32,
                    audit: &AuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    check_room(&mut tx, &key.shop_id, key.environment, 1, max_per_shop).await?;
                    insert_key_row(&mut tx, key).await?;
                    insert_audit(&mut tx, audit).await?;
                    // Creations go on the feed too: other instances drop the hash from their
                    // negative caches, so a key made a moment after a failed try works at once.
                    record_changes(&mut tx, &[(&key.id, &key.hash)], key.created_at).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn insert_keys(
                    &self,
                    keys: &[KeyRecord],
                    max_per_shop: u32,
                    audits: &[AuditEvent],
                ) -> StoreResult<()> {
                    let Some(first) = keys.first() else {
                        return Ok(());
                    };
                    let mut tx = self.write_tx().await?;
                    for environment in [Environment::Live, Environment::Test] {
                        let adding = keys.iter().filter(|k| k.environment == environment).count();
                        if adding > 0 {
                            check_room(&mut tx, &first.shop_id, environment, adding, max_per_shop).await?;
                        }
                    }
                    for (i, key) in keys.iter().enumerate() {
                        insert_key_row(&mut tx, key).await.map_err(|e| match e {
                            StoreError::Conflict(_) => {
                                StoreError::Conflict(format!("key {} ({}) already exists", i + 1, key.display))
                            }
                            other => other,
                        })?;
                    }
                    for audit in audits {
                        insert_audit(&mut tx, audit).await?;
                    }
                    let changes: Vec<(&str, &[u8; 32])> =
                        keys.iter().map(|k| (k.id.as_str(), &k.hash)).collect();
                    record_changes(&mut tx, &changes, first.created_at).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn replace_key(
                    &self,
                    new: &KeyRecord,
                    max_per_shop: u32,
                    old_id: &str,
                    change: &Replacement,
                    audits: &[AuditEvent],
                ) -> StoreResult<KeyRecord> {
                    let mut tx = self.write_tx().await?;
                    let at = new.created_at;
                    // The guard and the change in one statement: two concurrent rolls of
                    // the same key cannot both succeed (the second waits for the first's
                    // row lock, then finds `rolled_to` set).
                    let old = sqlx::query(&format!(
                        "UPDATE api_keys SET
                            rolled_to = CASE WHEN $3 THEN $4 ELSE rolled_to END,
                            expires_at = COALESCE($5, expires_at),
                            retired_at = COALESCE(retired_at, $6),
                            updated_at = $7
                         WHERE shop_id = $1 AND id = $2 AND NOT ($3 AND rolled_to IS NOT NULL)
                         RETURNING {KEY_COLUMNS}"
                    ))
                    .bind(&new.shop_id)
                    .bind(old_id)
                    .bind(change.mark_rolled)
                    .bind(&new.id)
                    .bind(change.expires_at.map(Timestamp::as_micros))
                    .bind(change.retired_at.map(Timestamp::as_micros))
                    .bind(at.as_micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let Some(old) = key_from_optional(old)? else {
                        let exists = fetch_key_in(&mut tx, &new.shop_id, old_id).await;
                        return Err(match exists {
                            Ok(_) => StoreError::Conflict(
                                "this key has already been rolled; roll its replacement instead".into(),
                            ),
                            Err(e) => e,
                        });
                    };
                    check_room(&mut tx, &new.shop_id, new.environment, 1, max_per_shop).await?;
                    insert_key_row(&mut tx, new).await?;
                    for audit in audits {
                        insert_audit(&mut tx, audit).await?;
                    }
                    record_changes(&mut tx, &[(&new.id, &new.hash), (old_id, &old.hash)], at).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(old)
                }

                async fn rolled_to(&self, id: &str) -> StoreResult<Option<String>> {
                    let row = sqlx::query("SELECT rolled_to FROM api_keys WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    match row {
                        Some(r) => r.try_get("rolled_to").map_err(map_err),
                        None => Ok(None),
                    }
                }

                async fn get_key(&self, shop_id: &str, id: &str) -> StoreResult<Option<KeyRecord>> {
                    let row = sqlx::query(&format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE shop_id = $1 AND id = $2"
                    ))
                    .bind(shop_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    key_from_optional(row)
                }

                async fn get_key_any_shop(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
                    let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    key_from_optional(row)
                }

                async fn find_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<KeyRecord>> {
                    let row = sqlx::query(&format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
                    ))
                    .bind(&hash[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    key_from_optional(row)
                }

                async fn list_keys(
                    &self,
                    shop_id: &str,
                    filter: &KeyFilter,
                    page: PageRequest,
                ) -> StoreResult<Paged<KeyRecord>> {
                    let from = format!(
                        "FROM (SELECT {KEY_COLUMNS}, {STATUS_SQL} AS status FROM api_keys WHERE shop_id = $1) k
                         WHERE ($4 IS NULL OR environment = $4) AND ($5 IS NULL OR status = $5)"
                    );
                    let env = filter.environment.map(|e| e.as_str());
                    let status = filter.status.map(|s| s.as_str());
                    // One snapshot for the count and the page, so they agree.
                    let mut tx = self.read_snapshot().await?;
                    let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n {from}"))
                        .bind(shop_id)
                        .bind(filter.now.as_micros())
                        .bind(filter.legacy_sunset.as_micros())
                        .bind(env)
                        .bind(status)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .try_get("n")
                        .map_err(map_err)?;
                    let rows = sqlx::query(&format!(
                        "SELECT {KEY_COLUMNS} {from} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
                    ))
                    .bind(shop_id)
                    .bind(filter.now.as_micros())
                    .bind(filter.legacy_sunset.as_micros())
                    .bind(env)
                    .bind(status)
                    .bind(i64::from(page.per_page))
                    .bind(page.offset())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(Paged {
                        items: rows.iter().map(key_from_row).collect::<StoreResult<_>>()?,
                        total: u64::try_from(total).unwrap_or(0),
                    })
                }

                async fn update_key(
                    &self,
                    shop_id: &str,
                    id: &str,
                    update: &KeyUpdate,
                    at: Timestamp,
                    audit: &AuditEvent,
                ) -> StoreResult<KeyRecord> {
                    let mut tx = self.write_tx().await?;
                    // Only the named columns change, so an edit racing a revoke cannot undo it.
                    let row = sqlx::query(&format!(
                        "UPDATE api_keys SET
                            name = COALESCE($3, name),
                            allowed_ips = COALESCE($4, allowed_ips),
                            expires_at = CASE WHEN $5 THEN $6 ELSE expires_at END,
                            rate_limit_per_minute = COALESCE($7, rate_limit_per_minute),
                            permissions = COALESCE($8, permissions),
                            updated_at = $9
                         WHERE shop_id = $1 AND id = $2
                         RETURNING {KEY_COLUMNS}"
                    ))
                    .bind(shop_id)
                    .bind(id)
                    .bind(update.name.as_ref().map(KeyName::as_str))
                    .bind(update.allowed_ips.as_ref().map(allowed_ips_text))
                    .bind(update.expires_at.is_some())
                    .bind(update.expires_at.flatten().map(Timestamp::as_micros))
                    .bind(update.rate_limit_per_minute.map(i64::from))
                    .bind(update.permissions.as_ref().map(permissions_text))
                    .bind(at.as_micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let key = key_from_optional(row)?.ok_or(StoreError::NotFound)?;
                    insert_audit(&mut tx, audit).await?;
                    record_changes(&mut tx, &[(id, &key.hash)], at).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(key)
                }

                async fn revoke_key(
                    &self,
                    shop_id: &str,
                    id: &str,
                    at: Timestamp,
                    audit: &AuditEvent,
                ) -> StoreResult<KeyRecord> {
                    let mut tx = self.write_tx().await?;
                    // A concurrent revoke waits for this row lock, then finds `revoked_at`
                    // set and changes nothing: one revocation time, one audit event.
                    let revoked = sqlx::query(&format!(
                        "UPDATE api_keys SET revoked_at = $3, updated_at = $3
                         WHERE shop_id = $1 AND id = $2 AND revoked_at IS NULL
                         RETURNING {KEY_COLUMNS}"
                    ))
                    .bind(shop_id)
                    .bind(id)
                    .bind(at.as_micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let key = match key_from_optional(revoked)? {
                        Some(key) => {
                            insert_audit(&mut tx, audit).await?;
                            record_changes(&mut tx, &[(id, &key.hash)], at).await?;
                            key
                        }
                        None => fetch_key_in(&mut tx, shop_id, id).await?,
                    };
                    tx.commit().await.map_err(map_err)?;
                    Ok(key)
                }

                async fn set_paused(
                    &self,
                    shop_id: &str,
                    id: &str,
                    pause: Option<&Pause>,
                    at: Timestamp,
                    audit: &AuditEvent,
                ) -> StoreResult<Option<KeyRecord>> {
                    let mut tx = self.write_tx().await?;
                    // The guard and the change in one statement: of two pauses (or two
                    // resumes) racing, one changes the key and the other finds it done.
                    let changed = sqlx::query(&format!(
                        "UPDATE api_keys SET paused_at = $3, paused_reason = $4, paused_by = $5, updated_at = $6
                         WHERE shop_id = $1 AND id = $2 AND revoked_at IS NULL
                           AND (($3 IS NULL) = (paused_at IS NOT NULL))
                         RETURNING {KEY_COLUMNS}"
                    ))
                    .bind(shop_id)
                    .bind(id)
                    .bind(pause.map(|p| p.at.as_micros()))
                    .bind(pause.and_then(|p| p.reason.as_ref()).map(|r| r.as_str().to_owned()))
                    .bind(pause.map(|p| p.by.as_string()))
                    .bind(at.as_micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let key = key_from_optional(changed)?;
                    if let Some(key) = &key {
                        insert_audit(&mut tx, audit).await?;
                        record_changes(&mut tx, &[(id, &key.hash)], at).await?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(key)
                }

                async fn mark_key_leaked(
                    &self,
                    id: &str,
                    leak: &Leak,
                    revoke: bool,
                    audit: &AuditEvent,
                ) -> StoreResult<Option<KeyRecord>> {
                    let mut tx = self.write_tx().await?;
                    // The first report's place is kept; a report changes the key only
                    // when it adds something (the flag, or the revocation asked for).
                    let changed = sqlx::query(&format!(
                        "UPDATE api_keys SET
                            leaked_at = COALESCE(leaked_at, $2),
                            leak_url = CASE WHEN leaked_at IS NULL THEN $3 ELSE leak_url END,
                            leak_source = CASE WHEN leaked_at IS NULL THEN $4 ELSE leak_source END,
                            revoked_at = CASE WHEN $5 THEN COALESCE(revoked_at, $2) ELSE revoked_at END,
                            updated_at = $2
                         WHERE id = $1 AND (leaked_at IS NULL OR ($5 AND revoked_at IS NULL))
                         RETURNING {KEY_COLUMNS}"
                    ))
                    .bind(id)
                    .bind(leak.at.as_micros())
                    .bind(&leak.url)
                    .bind(&leak.source)
                    .bind(revoke)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let key = key_from_optional(changed)?;
                    if let Some(key) = &key {
                        insert_audit(&mut tx, audit).await?;
                        record_changes(&mut tx, &[(id, &key.hash)], leak.at).await?;
                    }
                    tx.commit().await.map_err(map_err)?;
                    Ok(key)
                }

                async fn delete_key(&self, shop_id: &str, id: &str, audit: &AuditEvent) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    let deleted =
                        sqlx::query("DELETE FROM api_keys WHERE shop_id = $1 AND id = $2 RETURNING key_hash")
                            .bind(shop_id)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(map_err)?
                            .ok_or(StoreError::NotFound)?;
                    let hash: Vec<u8> = deleted.try_get("key_hash").map_err(map_err)?;
                    let hash: [u8; 32] = hash
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Internal("stored key hash has the wrong length".into()))?;
                    insert_audit(&mut tx, audit).await?;
                    record_changes(&mut tx, &[(id, &hash)], audit.at).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn mark_key_sent_in_url(&self, id: &str, audit: &AuditEvent) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    let marked = sqlx::query(&format!(
                        "UPDATE api_keys SET sent_in_url_at = $2 WHERE id = $1 RETURNING {KEY_COLUMNS}"
                    ))
                    .bind(id)
                    .bind(audit.at.as_micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let key = key_from_optional(marked)?.ok_or(StoreError::NotFound)?;
                    insert_audit(&mut tx, audit).await?;
                    record_changes(&mut tx, &[(id, &key.hash)], audit.at).await?;
                    tx.commit().await.map_err(map_err)
                }
            }
        };
    };
}

pub(crate) use key_store;
