//! PostgreSQL: clients, orders, devices, test data and idempotency keys. The
//! port is written once in [`crate::store::shared::resources`].

use super::{Db, PostgresStore, map_err};
use crate::store::StoreResult;
use crate::store::resources::Scope;
use crate::store::shared::resources::env_str;

/// Locks the client before its delete counts its orders: an order being
/// created for it holds a key share lock on it (its foreign key), so the
/// count sees every order that will ever refer to it.
async fn lock_client(
    conn: &mut <Db as sqlx::Database>::Connection,
    scope: &Scope,
    id: &str,
) -> StoreResult<()> {
    sqlx::query(
        "SELECT 1 FROM clients WHERE shop_id = $1 AND environment = $2 AND id = $3 FOR UPDATE",
    )
    .bind(&scope.shop_id)
    .bind(env_str(scope))
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

crate::store::shared::resources::resource_store!(
    PostgresStore,
    key_share = " FOR KEY SHARE",
    refuses_nul = true
);
