//! The [`UserStore`](crate::store::users::UserStore) port (users of the web UI,
//! one-time passwords, login sessions), written once for both backends: the SQL
//! numbers its parameters `$1, $2…`, which PostgreSQL and sqlx's SQLite driver
//! both bind by number.
//!
//! `user_store!(SqliteStore)` in `store::sqlite::users` and
//! `user_store!(PostgresStore)` in `store::postgres::users` expand it into
//! each backend's `impl UserStore`. The invoking module provides what differs:
//! `map_err` (its error mapping), `insert_audit` (its audit append) and the
//! store's `write_tx()` (how a write transaction begins) and `pool`.

use crate::store::{StoreError, User};

/// A unique violation on insert is the email being taken (the only unique
/// column a new user can collide on besides its random id).
pub(crate) fn email_taken(e: StoreError, user: &User) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "a user with the email {} already exists",
            user.email.as_str()
        )),
        other => other,
    }
}

macro_rules! user_store {
    ($Store:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::domain::clock::Timestamp;
            use $crate::domain::user::{Email, Role};
            use $crate::store::row::{RowExt, session_from_row, user_from_row};
            use $crate::store::shared::users::email_taken;
            use $crate::store::users::{Session, SessionUser, UserStore};
            use $crate::store::{AuditEvent, StoreError, StoreResult, User};

            #[async_trait]
            impl UserStore for $Store {
                async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
                    let row = sqlx::query("SELECT * FROM users WHERE email = $1")
                        .bind(email.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
                    let row = sqlx::query("SELECT * FROM users WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn list_users(&self, shop_id: &str) -> StoreResult<Vec<User>> {
                    let rows = sqlx::query("SELECT * FROM users WHERE shop_id = $1 ORDER BY created_at, id")
                        .bind(shop_id)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(map_err)?;
                    rows.iter().map(user_from_row).collect()
                }

                async fn get_shop_user(&self, shop_id: &str, id: &str) -> StoreResult<Option<User>> {
                    let row = sqlx::query("SELECT * FROM users WHERE shop_id = $1 AND id = $2")
                        .bind(shop_id)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn insert_user(
                    &self,
                    user: &User,
                    one_time_until: Option<Timestamp>,
                    audit: &AuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query(
                        "INSERT INTO users (id, shop_id, email, role, password_hash, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    )
                    .bind(&user.id)
                    .bind(&user.shop_id)
                    .bind(user.email.as_str())
                    .bind(user.role.as_str())
                    .bind(&user.password_hash)
                    .bind(user.created_at.as_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)
                    .map_err(|e| email_taken(e, user))?;
                    if let Some(until) = one_time_until {
                        sqlx::query(
                            "INSERT INTO one_time_passwords (user_id, created_at, expires_at) VALUES ($1, $2, $3)",
                        )
                        .bind(&user.id)
                        .bind(user.created_at.as_micros())
                        .bind(until.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    }
                    insert_audit(&mut tx, audit).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn set_user_role(
                    &self,
                    shop_id: &str,
                    id: &str,
                    role: Role,
                    at: Timestamp,
                    audit: &AuditEvent,
                ) -> StoreResult<User> {
                    let mut tx = self.write_tx().await?;
                    let row = sqlx::query(
                        "UPDATE users SET role = $3, updated_at = $4 WHERE shop_id = $1 AND id = $2 RETURNING *",
                    )
                    .bind(shop_id)
                    .bind(id)
                    .bind(role.as_str())
                    .bind(at.as_micros())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or(StoreError::NotFound)?;
                    let user = user_from_row(&row)?;
                    insert_audit(&mut tx, audit).await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(user)
                }

                async fn set_password(
                    &self,
                    shop_id: &str,
                    id: &str,
                    password_hash: &str,
                    one_time_until: Option<Timestamp>,
                    keep_session: Option<&[u8; 32]>,
                    audit: &AuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    let updated = sqlx::query(
                        "UPDATE users SET password_hash = $3, updated_at = $4 WHERE shop_id = $1 AND id = $2",
                    )
                    .bind(shop_id)
                    .bind(id)
                    .bind(password_hash)
                    .bind(audit.at.as_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    if updated.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query("DELETE FROM one_time_passwords WHERE user_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if let Some(until) = one_time_until {
                        sqlx::query(
                            "INSERT INTO one_time_passwords (user_id, created_at, expires_at) VALUES ($1, $2, $3)",
                        )
                        .bind(id)
                        .bind(audit.at.as_micros())
                        .bind(until.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    }
                    sqlx::query(
                        "DELETE FROM web_sessions WHERE user_id = $1 AND ($2 IS NULL OR token_hash <> $2)",
                    )
                    .bind(id)
                    .bind(keep_session.map(|h| &h[..]))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    insert_audit(&mut tx, audit).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn one_time_password_expiry(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
                    let row = sqlx::query("SELECT expires_at FROM one_time_passwords WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_err)?;
                    row.map(|r| {
                        r.try_get::<i64, _>("expires_at")
                            .map(Timestamp::from_micros)
                            .map_err(map_err)
                    })
                    .transpose()
                }

                async fn delete_user(&self, shop_id: &str, id: &str, audit: &AuditEvent) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    // Sessions and one-time passwords go with the user (ON DELETE CASCADE).
                    let deleted = sqlx::query("DELETE FROM users WHERE shop_id = $1 AND id = $2")
                        .bind(shop_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if deleted.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    insert_audit(&mut tx, audit).await?;
                    tx.commit().await.map_err(map_err)
                }

                async fn create_session(&self, s: &Session) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO web_sessions (token_hash, user_id, shop_id, created_at, last_seen_at, expires_at, ip)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&s.token_hash[..])
                    .bind(&s.user_id)
                    .bind(&s.shop_id)
                    .bind(s.created_at.as_micros())
                    .bind(s.last_seen_at.as_micros())
                    .bind(s.expires_at.as_micros())
                    .bind(&s.ip)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                    Ok(())
                }

                async fn find_session(
                    &self,
                    token_hash: &[u8; 32],
                    now: Timestamp,
                ) -> StoreResult<Option<SessionUser>> {
                    let row = sqlx::query(
                        "SELECT s.token_hash, s.user_id, s.shop_id, s.created_at AS s_created_at,
                                s.last_seen_at, s.expires_at, s.ip,
                                u.*, (o.user_id IS NOT NULL) AS one_time
                         FROM web_sessions s
                         JOIN users u ON u.id = s.user_id AND u.shop_id = s.shop_id
                         LEFT JOIN one_time_passwords o ON o.user_id = u.id
                         WHERE s.token_hash = $1 AND s.expires_at > $2",
                    )
                    .bind(&token_hash[..])
                    .bind(now.as_micros())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    Ok(Some(SessionUser {
                        session: session_from_row(&row)?,
                        user: user_from_row(&row)?,
                        must_change_password: row.flag("one_time")?,
                    }))
                }

                async fn touch_session(
                    &self,
                    token_hash: &[u8; 32],
                    at: Timestamp,
                    expires_at: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE web_sessions SET last_seen_at = $2, expires_at = $3 WHERE token_hash = $1",
                    )
                    .bind(&token_hash[..])
                    .bind(at.as_micros())
                    .bind(expires_at.as_micros())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                    Ok(())
                }

                async fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()> {
                    sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
                        .bind(&token_hash[..])
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Ok(())
                }

                async fn prune_sessions(&self, before: Timestamp) -> StoreResult<u64> {
                    let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
                        .bind(before.as_micros())
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Ok(done.rows_affected())
                }
            }
        };
    };
}

pub(crate) use user_store;
