//! The [`ChangeFeed`](crate::store::ChangeFeed) port's reads (the `key_changes`
//! invalidation feed that every instance tails), written once for both
//! backends. How a change is recorded (`record_changes`), and so why a tailer
//! reading `seq > last` never skips one, is each backend's own: see
//! `store::sqlite::feed` and `store::postgres::feed`.
//!
//! `change_feed!(SqliteStore)` and `change_feed!(PostgresStore, { … })` expand
//! it into each backend's `impl ChangeFeed`; the braces hold trait methods of
//! the backend's own (PostgreSQL's `LISTEN`-woken `wait_for_change`). The
//! invoking module provides `map_err` and the store's `pool`.

macro_rules! change_feed {
    ($Store:ident $(, { $($own:tt)* })?) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::domain::clock::Timestamp;
            use $crate::store::row::key_change_from_row;
            use $crate::store::{ChangeFeed, KeyChange, StoreResult};

            #[async_trait]
            impl ChangeFeed for $Store {
                async fn key_changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<KeyChange>> {
                    let rows = sqlx::query(
                        "SELECT seq, key_id, key_hash FROM key_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                    )
                    .bind(seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                    rows.iter().map(key_change_from_row).collect()
                }

                async fn last_key_change(&self) -> StoreResult<i64> {
                    sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM key_changes")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?
                        .try_get("seq")
                        .map_err(map_err)
                }

                async fn prune_key_changes(&self, before: Timestamp) -> StoreResult<u64> {
                    let result = sqlx::query("DELETE FROM key_changes WHERE changed_at < $1")
                        .bind(before.as_micros())
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Ok(result.rows_affected())
                }

                $($($own)*)?
            }
        };
    };
}

pub(crate) use change_feed;
