//! The [`ResourceStore`](crate::store::resources::ResourceStore) port (clients,
//! orders, devices, test data and idempotency keys), written once for both
//! backends.
//!
//! Tenancy: every statement here filters on `shop_id` AND `environment` (the
//! [`Scope`]), so an id from another shop or the other environment behaves
//! exactly like an id that does not exist.
//!
//! Lists run their count and their page in one snapshot (the store's
//! `read_snapshot()`), so `total` and `items` agree. `total` counts the rows
//! matching the filters (`q`, `status`, `client_id`, `order_id`, `updated_since`) and
//! NOT the cursor condition: with `after`, it stays the size of the whole
//! filtered set while a poller walks it, it is not "how many are left".
//! `after` is only applied with [`Sort::UpdatedAsc`] (the only order a cursor
//! describes); with another sort it is ignored (the HTTP layer rejects that
//! combination before it gets here).
//!
//! `resource_store!(SqliteStore, key_share = "", refuses_nul = false)` in
//! `store::sqlite::resources` and `resource_store!(PostgresStore, key_share =
//! " FOR KEY SHARE", refuses_nul = true)` in `store::postgres::resources`
//! expand it into each backend's `impl ResourceStore`: `key_share` is the row
//! lock an order's client check takes (a client being deleted waits for it),
//! `refuses_nul` whether a NUL byte in a text filter must be kept from the
//! database. The invoking module provides `Db`, `map_err`, `lock_client` (the
//! lock a client's delete counts its orders under) and the store's
//! `write_tx()`, `read_snapshot()` and `pool`.

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

use crate::store::resources::{Scope, Sort};

/// A row this statement refers to was deleted meanwhile by another
/// transaction (a foreign-key violation). Only PostgreSQL gets there: on
/// SQLite the check and the insert run under one write lock (or in one
/// statement).
pub(crate) fn is_fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

pub(crate) fn env_str(scope: &Scope) -> &'static str {
    scope.environment.as_str()
}

#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// A `WHERE` clause under construction, with `$N`-numbered arguments.
#[derive(Clone, Debug)]
pub(crate) struct Conditions {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Conditions {
    /// Starts with the scope: every list filters on shop and environment.
    pub(crate) fn scoped(scope: &Scope) -> Self {
        Conditions {
            clauses: vec!["shop_id = $1".into(), "environment = $2".into()],
            args: vec![
                Arg::Text(scope.shop_id.clone()),
                Arg::Text(env_str(scope).into()),
            ],
        }
    }

    /// Adds an argument; returns its placeholder.
    pub(crate) fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    pub(crate) fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    pub(crate) fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    /// Whether a text argument holds a NUL byte (which PostgreSQL text
    /// cannot hold).
    pub(crate) fn holds_nul(&self) -> bool {
        self.args
            .iter()
            .any(|a| matches!(a, Arg::Text(t) if t.contains('\0')))
    }

    /// Binds the arguments, in order, to `q` (either backend's query).
    pub(crate) fn bind<'q, DB>(
        &'q self,
        mut q: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    ) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
    where
        DB: Database,
        &'q str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
    {
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

pub(crate) fn order_by(sort: Sort) -> &'static str {
    match sort {
        Sort::CreatedDesc => "created_at DESC, id DESC",
        Sort::CreatedAsc => "created_at ASC, id ASC",
        Sort::UpdatedAsc => "updated_at ASC, id ASC",
        Sort::UpdatedDesc => "updated_at DESC, id DESC",
        Sort::NumericAsc => "numeric_id ASC",
    }
}

macro_rules! resource_store {
    ($Store:ident, key_share = $key_share:literal, refuses_nul = $refuses_nul:literal) => {
        const _: () = {
            use std::collections::HashSet;

            use async_trait::async_trait;
            use sqlx::Row;

            use $crate::domain::client::{Client, ClientFields};
            use $crate::domain::clock::Timestamp;
            use $crate::domain::device::{Device, DeviceFields};
            use $crate::domain::order::{Order, OrderFields};
            use $crate::domain::token::Environment;
            use $crate::store::resources::*;
            use $crate::store::row::{
                CLIENT_COLUMNS, CLIENT_INSERT_COLUMNS, DEVICE_COLUMNS, DEVICE_DATA_COLUMNS, DEVICE_ROWS,
                ORDER_COLUMNS, ORDER_INSERT_COLUMNS, client_from_row, device_from_row, enum_name,
                idempotency_from_row, like_substring, order_from_row, search_text,
            };
            use $crate::store::shared::resources::{
                Arg, Conditions, env_str, is_fk_violation, order_by,
            };
            use $crate::store::{Paged, StoreError, StoreResult};

            type Conn = <Db as sqlx::Database>::Connection;

            /// Whether a text parameter holding a NUL byte is refused
            /// (PostgreSQL) rather than simply matching nothing (SQLite).
            const REFUSES_NUL: bool = $refuses_nul;

            impl $Store {
                /// Runs a list: `filters` must already hold the scope and the
                /// resource-specific filters; `query` adds `updated_since`, the cursor,
                /// the order and the page.
                async fn list_rows<T>(
                    &self,
                    table: &str,
                    columns: &str,
                    mut filters: Conditions,
                    query: &ListQuery,
                    from_row: fn(&<Db as sqlx::Database>::Row) -> StoreResult<T>,
                ) -> StoreResult<Paged<T>> {
                    if let Some(since) = query.updated_since {
                        let p = filters.arg(Arg::Int(since.as_micros()));
                        filters.push(format!("updated_at >= {p}"));
                    }
                    // `total` ignores the cursor (see the module documentation).
                    let counted = filters.clone();
                    let mut offset = query.page.offset();
                    if let (Some(c), Sort::UpdatedAsc) = (&query.after, query.sort) {
                        let at = filters.arg(Arg::Int(c.updated_at.as_micros()));
                        let id = filters.arg(Arg::Text(c.id.clone()));
                        filters.push(format!(
                            "(updated_at > {at} OR (updated_at = {at} AND id > {id}))"
                        ));
                        offset = 0;
                    }
                    // A filter holding a NUL byte (`?client_id=%00`) matches nothing:
                    // PostgreSQL text cannot store one, and it refuses one as a parameter
                    // (SQLSTATE 22021). SQLite lists nothing for it; so does PostgreSQL.
                    if REFUSES_NUL && filters.holds_nul() {
                        return Ok(Paged {
                            items: Vec::new(),
                            total: 0,
                        });
                    }
                    let limit = filters.arg(Arg::Int(i64::from(query.page.per_page)));
                    let off = filters.arg(Arg::Int(offset));

                    // One snapshot: the count and the page agree.
                    let mut tx = self.read_snapshot().await?;
                    let count_sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {}", counted.sql());
                    let total: i64 = counted
                        .bind(sqlx::query(&count_sql))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .try_get("n")
                        .map_err(map_err)?;
                    let page_sql = format!(
                        "SELECT {columns} FROM {table} WHERE {} ORDER BY {} LIMIT {limit} OFFSET {off}",
                        filters.sql(),
                        order_by(query.sort)
                    );
                    let rows = filters
                        .bind(sqlx::query(&page_sql))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(Paged {
                        items: rows.iter().map(from_row).collect::<StoreResult<_>>()?,
                        total: u64::try_from(total).unwrap_or(0),
                    })
                }
            }

            // ---------------------------------------------------------------------------
            // Statements shared by several methods (run on a connection, usually inside
            // a transaction)
            // ---------------------------------------------------------------------------

            async fn insert_client(
                conn: &mut Conn,
                shop_id: &str,
                env: Environment,
                id: &str,
                f: &ClientFields,
                at: Timestamp,
            ) -> StoreResult<i64> {
                sqlx::query(&format!(
                    "INSERT INTO clients (shop_id, environment, search_text, {CLIENT_INSERT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)"
                ))
                .bind(shop_id)
                .bind(env.as_str())
                .bind(search_text(f))
                .bind(id)
                .bind(&f.first_name)
                .bind(&f.last_name)
                .bind(&f.business_name)
                .bind(&f.email)
                .bind(&f.phone)
                .bind(&f.mobile)
                .bind(&f.address)
                .bind(&f.address_2)
                .bind(&f.city)
                .bind(&f.state)
                .bind(&f.postcode)
                .bind(&f.country)
                .bind(&f.notes)
                .bind(at.as_micros())
                .execute(&mut *conn)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("a client with id {id} already exists"))
                    }
                    other => other,
                })?;
                numeric_id_of(conn, "clients", id).await
            }

            /// The integer id the database gave the row `id` of `table` on
            /// insert (a trigger takes it from `numeric_id_sequences`).
            async fn numeric_id_of(conn: &mut Conn, table: &str, id: &str) -> StoreResult<i64> {
                sqlx::query(&format!("SELECT numeric_id FROM {table} WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_err)?
                    .try_get::<Option<i64>, _>("numeric_id")
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::Internal(format!("{table} row {id} has no numeric_id")))
            }

            /// A device as stored, whichever table holds it.
            async fn device_in(conn: &mut Conn, scope: &Scope, id: &str) -> StoreResult<Option<Device>> {
                let row = sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM {DEVICE_ROWS} WHERE shop_id = $1 AND environment = $2 AND id = $3"
                ))
                .bind(&scope.shop_id)
                .bind(env_str(scope))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
                row.as_ref().map(device_from_row).transpose()
            }

            async fn client_in_scope(conn: &mut Conn, scope: &Scope, id: &str) -> StoreResult<bool> {
                let row = sqlx::query(concat!(
                    "SELECT EXISTS (SELECT 1 FROM clients WHERE shop_id = $1 AND environment = $2 AND id = $3",
                    $key_share,
                    ") AS found"
                ))
                .bind(&scope.shop_id)
                .bind(env_str(scope))
                .bind(id)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
                row.try_get::<bool, _>("found").map_err(map_err)
            }

            /// The scope's next order reference. The `order_sequences` row is never
            /// reset or deleted by this store, so references never repeat; the upsert
            /// locks the row until commit (on SQLite it runs inside a `BEGIN IMMEDIATE`
            /// transaction, so writers are serialised), so concurrent orders take
            /// numbers in turn.
            async fn next_reference(
                conn: &mut Conn,
                shop_id: &str,
                env: Environment,
            ) -> StoreResult<String> {
                let n: i64 = sqlx::query(
                    "INSERT INTO order_sequences (shop_id, environment, last_number) VALUES ($1, $2, $3)
                     ON CONFLICT (shop_id, environment) DO UPDATE SET last_number = order_sequences.last_number + 1
                     RETURNING last_number",
                )
                .bind(shop_id)
                .bind(env.as_str())
                .bind(FIRST_ORDER_NUMBER)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?
                .try_get("last_number")
                .map_err(map_err)?;
                Ok(format!("RM-{n}"))
            }

            async fn insert_order(
                conn: &mut Conn,
                shop_id: &str,
                env: Environment,
                id: &str,
                reference: &str,
                f: &OrderFields,
                at: Timestamp,
            ) -> StoreResult<Order> {
                sqlx::query(&format!(
                    "INSERT INTO orders (shop_id, environment, {ORDER_INSERT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)"
                ))
                .bind(shop_id)
                .bind(env.as_str())
                .bind(id)
                .bind(reference)
                .bind(&f.client_id)
                .bind(f.status.as_str())
                .bind(&f.problem_description)
                .bind(&f.problem_type)
                .bind(&f.technician)
                .bind(&f.due_date)
                .bind(f.estimate_cents)
                .bind(f.price_cents)
                .bind(&f.currency)
                .bind(&f.notes)
                .bind(at.as_micros())
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    // What it belongs to was deleted meanwhile: as if never there.
                    if is_fk_violation(&e) {
                        return StoreError::NotFound;
                    }
                    match map_err(e) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("an order with id {id} already exists"))
                        }
                        other => other,
                    }
                })?;
                Ok(Order {
                    id: id.to_owned(),
                    numeric_id: numeric_id_of(conn, "orders", id).await?,
                    reference: reference.to_owned(),
                    fields: f.clone(),
                    created_at: at,
                    updated_at: at,
                })
            }

            /// Inserts a device if its owner (order or client) is in (`shop_id`,
            /// `env`); `false` if not. One statement: the owner check and the
            /// insert cannot be split by a concurrent delete (and the foreign key
            /// catches one that commits in between on PostgreSQL).
            async fn insert_device(
                conn: &mut Conn,
                shop_id: &str,
                env: Environment,
                owner: &DeviceOwner,
                id: &str,
                f: &DeviceFields,
                at: Timestamp,
            ) -> StoreResult<bool> {
                let (table, owner_column, owner_table, owner_id) = match owner {
                    DeviceOwner::Order(o) => ("devices", "order_id", "orders", o),
                    DeviceOwner::Client(c) => ("client_devices", "client_id", "clients", c),
                };
                let result = sqlx::query(&format!(
                    "INSERT INTO {table} (shop_id, environment, id, {owner_column}, {DEVICE_DATA_COLUMNS})
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15
                     WHERE EXISTS (SELECT 1 FROM {owner_table} WHERE shop_id = $1 AND environment = $2 AND id = $4)"
                ))
                .bind(shop_id)
                .bind(env.as_str())
                .bind(id)
                .bind(owner_id)
                .bind(&f.name)
                .bind(enum_name("device type", &f.device_type)?)
                .bind(&f.brand)
                .bind(&f.model)
                .bind(&f.serial)
                .bind(&f.imei)
                .bind(&f.color)
                .bind(&f.condition)
                .bind(&f.fault)
                .bind(enum_name("device status", &f.status)?)
                .bind(at.as_micros())
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    // What it belongs to was deleted meanwhile: as if never there.
                    if is_fk_violation(&e) {
                        return StoreError::NotFound;
                    }
                    match map_err(e) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("a device with id {id} already exists"))
                        }
                        other => other,
                    }
                })?;
                Ok(result.rows_affected() > 0)
            }

            #[async_trait]
            impl ResourceStore for $Store {
                // -----------------------------------------------------------------------
                // Clients
                // -----------------------------------------------------------------------

                async fn create_client(
                    &self,
                    scope: &Scope,
                    id: &str,
                    fields: &ClientFields,
                    at: Timestamp,
                ) -> StoreResult<Client> {
                    let mut conn = self.pool.acquire().await.map_err(map_err)?;
                    let numeric_id =
                        insert_client(&mut conn, &scope.shop_id, scope.environment, id, fields, at).await?;
                    Ok(Client {
                        id: id.to_owned(),
                        numeric_id,
                        fields: fields.clone(),
                        created_at: at,
                        updated_at: at,
                    })
                }

                async fn get_client(&self, scope: &Scope, id: &str) -> StoreResult<Option<Client>> {
                    let row = sqlx::query(&format!(
                        "SELECT {CLIENT_COLUMNS} FROM clients WHERE shop_id = $1 AND environment = $2 AND id = $3"
                    ))
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    row.as_ref().map(client_from_row).transpose()
                }

                async fn list_clients_where(
                    &self,
                    scope: &Scope,
                    filter: &ClientFilter,
                    query: &ListQuery,
                ) -> StoreResult<Paged<Client>> {
                    let mut filters = Conditions::scoped(scope);
                    if let Some(q) = filter.search.as_deref().filter(|q| !q.is_empty()) {
                        let p = filters.arg(Arg::Text(like_substring(q)));
                        filters.push(format!("search_text LIKE {p} ESCAPE '\\'"));
                    }
                    if let Some(email) = filter.email.as_deref() {
                        let p = filters.arg(Arg::Text(email.to_lowercase()));
                        filters.push(format!("LOWER(email) = {p}"));
                    }
                    self.list_rows("clients", CLIENT_COLUMNS, filters, query, client_from_row)
                        .await
                }

                async fn update_client(
                    &self,
                    scope: &Scope,
                    id: &str,
                    fields: &ClientFields,
                    at: Timestamp,
                ) -> StoreResult<Client> {
                    let row = sqlx::query(&format!(
                        "UPDATE clients SET
                            first_name = $4, last_name = $5, business_name = $6, email = $7, phone = $8,
                            address = $9, city = $10, postcode = $11, country = $12, notes = $13,
                            search_text = $14, updated_at = $15, mobile = $16, address_2 = $17, state = $18
                         WHERE shop_id = $1 AND environment = $2 AND id = $3
                         RETURNING {CLIENT_COLUMNS}"
                    ))
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .bind(&fields.first_name)
                    .bind(&fields.last_name)
                    .bind(&fields.business_name)
                    .bind(&fields.email)
                    .bind(&fields.phone)
                    .bind(&fields.address)
                    .bind(&fields.city)
                    .bind(&fields.postcode)
                    .bind(&fields.country)
                    .bind(&fields.notes)
                    .bind(search_text(fields))
                    .bind(at.as_micros())
                    .bind(&fields.mobile)
                    .bind(&fields.address_2)
                    .bind(&fields.state)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    row.as_ref()
                        .map(client_from_row)
                        .transpose()?
                        .ok_or(StoreError::NotFound)
                }

                async fn delete_client(&self, scope: &Scope, id: &str) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    // The client first (`lock_client`), then the count: the count sees
                    // every order that will ever refer to it.
                    lock_client(&mut tx, scope, id).await?;
                    let orders: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM orders WHERE shop_id = $1 AND environment = $2 AND client_id = $3",
                    )
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .try_get("n")
                    .map_err(map_err)?;
                    if orders > 0 {
                        let noun = if orders == 1 { "order" } else { "orders" };
                        return Err(StoreError::Conflict(format!(
                            "this client has {orders} {noun}; delete or reassign them first"
                        )));
                    }
                    let devices: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM client_devices WHERE shop_id = $1 AND environment = $2 AND client_id = $3",
                    )
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .try_get("n")
                    .map_err(map_err)?;
                    if devices > 0 {
                        let noun = if devices == 1 { "device" } else { "devices" };
                        return Err(StoreError::Conflict(format!(
                            "this client has {devices} {noun} of its own; delete them first"
                        )));
                    }
                    let result =
                        sqlx::query("DELETE FROM clients WHERE shop_id = $1 AND environment = $2 AND id = $3")
                            .bind(&scope.shop_id)
                            .bind(env_str(scope))
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    if result.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    tx.commit().await.map_err(map_err)
                }

                // -----------------------------------------------------------------------
                // Orders
                // -----------------------------------------------------------------------

                async fn create_order(
                    &self,
                    scope: &Scope,
                    id: &str,
                    fields: &OrderFields,
                    new_client: Option<(&str, &ClientFields)>,
                    at: Timestamp,
                ) -> StoreResult<Order> {
                    let mut tx = self.write_tx().await?;
                    match new_client {
                        Some((client_id, client)) => {
                            if client_id != fields.client_id {
                                return Err(StoreError::Internal(format!(
                                    "create_order: the order's client_id `{}` is not the new client's id `{client_id}`",
                                    fields.client_id
                                )));
                            }
                            insert_client(
                                &mut tx,
                                &scope.shop_id,
                                scope.environment,
                                client_id,
                                client,
                                at,
                            )
                            .await?;
                        }
                        None => {
                            if !client_in_scope(&mut tx, scope, &fields.client_id).await? {
                                return Err(StoreError::NotFound);
                            }
                        }
                    }
                    let reference = next_reference(&mut tx, &scope.shop_id, scope.environment).await?;
                    let order = insert_order(
                        &mut tx,
                        &scope.shop_id,
                        scope.environment,
                        id,
                        &reference,
                        fields,
                        at,
                    )
                    .await?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(order)
                }

                async fn get_order(&self, scope: &Scope, id: &str) -> StoreResult<Option<Order>> {
                    let row = sqlx::query(&format!(
                        "SELECT {ORDER_COLUMNS} FROM orders WHERE shop_id = $1 AND environment = $2 AND id = $3"
                    ))
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    row.as_ref().map(order_from_row).transpose()
                }

                async fn list_orders(
                    &self,
                    scope: &Scope,
                    filter: &OrderFilter,
                    query: &ListQuery,
                ) -> StoreResult<Paged<Order>> {
                    let mut filters = Conditions::scoped(scope);
                    if !filter.statuses.is_empty() {
                        let ps: Vec<String> = filter
                            .statuses
                            .iter()
                            .map(|s| filters.arg(Arg::Text(s.as_str().into())))
                            .collect();
                        filters.push(format!("status IN ({})", ps.join(", ")));
                    }
                    if let Some(client_id) = &filter.client_id {
                        let p = filters.arg(Arg::Text(client_id.clone()));
                        filters.push(format!("client_id = {p}"));
                    }
                    self.list_rows("orders", ORDER_COLUMNS, filters, query, order_from_row)
                        .await
                }

                async fn update_order(
                    &self,
                    scope: &Scope,
                    id: &str,
                    fields: &OrderFields,
                    at: Timestamp,
                ) -> StoreResult<Order> {
                    let mut tx = self.write_tx().await?;
                    // The client must be in scope whether or not it changed; an unchanged
                    // one always is, so this only ever refuses a changed client_id.
                    if !client_in_scope(&mut tx, scope, &fields.client_id).await? {
                        return Err(StoreError::NotFound);
                    }
                    let row = sqlx::query(&format!(
                        "UPDATE orders SET
                            client_id = $4, status = $5, problem_description = $6, technician = $7,
                            due_date = $8, estimate_cents = $9, price_cents = $10, currency = $11, notes = $12,
                            updated_at = $13, problem_type = $14
                         WHERE shop_id = $1 AND environment = $2 AND id = $3
                         RETURNING {ORDER_COLUMNS}"
                    ))
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .bind(&fields.client_id)
                    .bind(fields.status.as_str())
                    .bind(&fields.problem_description)
                    .bind(&fields.technician)
                    .bind(&fields.due_date)
                    .bind(fields.estimate_cents)
                    .bind(fields.price_cents)
                    .bind(&fields.currency)
                    .bind(&fields.notes)
                    .bind(at.as_micros())
                    .bind(&fields.problem_type)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let order = row
                        .as_ref()
                        .map(order_from_row)
                        .transpose()?
                        .ok_or(StoreError::NotFound)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(order)
                }

                async fn delete_order(&self, scope: &Scope, id: &str) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    // Explicitly, not only by ON DELETE CASCADE: the store does not depend
                    // on the connection having foreign keys switched on.
                    sqlx::query(
                        "DELETE FROM devices WHERE shop_id = $1 AND environment = $2 AND order_id = $3",
                    )
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let result =
                        sqlx::query("DELETE FROM orders WHERE shop_id = $1 AND environment = $2 AND id = $3")
                            .bind(&scope.shop_id)
                            .bind(env_str(scope))
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    if result.rows_affected() == 0 {
                        return Err(StoreError::NotFound); // dropping `tx` rolls back
                    }
                    tx.commit().await.map_err(map_err)
                }

                // -----------------------------------------------------------------------
                // Devices
                // -----------------------------------------------------------------------

                async fn create_device(
                    &self,
                    scope: &Scope,
                    owner: &DeviceOwner,
                    id: &str,
                    fields: &DeviceFields,
                    at: Timestamp,
                ) -> StoreResult<Device> {
                    let mut conn = self.pool.acquire().await.map_err(map_err)?;
                    if !insert_device(&mut conn, &scope.shop_id, scope.environment, owner, id, fields, at)
                        .await?
                    {
                        return Err(StoreError::NotFound);
                    }
                    // Read back for the integer id and the client (its owner may be
                    // deleted meanwhile only with it, so a miss is NotFound).
                    device_in(&mut conn, scope, id).await?.ok_or(StoreError::NotFound)
                }

                async fn get_device(&self, scope: &Scope, id: &str) -> StoreResult<Option<Device>> {
                    let mut conn = self.pool.acquire().await.map_err(map_err)?;
                    device_in(&mut conn, scope, id).await
                }

                async fn list_devices(
                    &self,
                    scope: &Scope,
                    filter: &DeviceFilter,
                    query: &ListQuery,
                ) -> StoreResult<Paged<Device>> {
                    let mut filters = Conditions::scoped(scope);
                    if let Some(order_id) = &filter.order_id {
                        let p = filters.arg(Arg::Text(order_id.clone()));
                        filters.push(format!("order_id = {p}"));
                    }
                    if let Some(client_id) = &filter.client_id {
                        let p = filters.arg(Arg::Text(client_id.clone()));
                        filters.push(format!("client_id = {p}"));
                    }
                    self.list_rows(DEVICE_ROWS, DEVICE_COLUMNS, filters, query, device_from_row)
                        .await
                }

                async fn update_device(
                    &self,
                    scope: &Scope,
                    id: &str,
                    fields: &DeviceFields,
                    at: Timestamp,
                ) -> StoreResult<Device> {
                    let mut tx = self.write_tx().await?;
                    // A device is in exactly one of the two tables.
                    let mut updated = 0;
                    for table in ["devices", "client_devices"] {
                        updated += sqlx::query(&format!(
                            "UPDATE {table} SET
                                device_type = $4, brand = $5, model = $6, serial = $7, imei = $8, color = $9,
                                condition = $10, fault = $11, status = $12, updated_at = $13, name = $14
                             WHERE shop_id = $1 AND environment = $2 AND id = $3"
                        ))
                        .bind(&scope.shop_id)
                        .bind(env_str(scope))
                        .bind(id)
                        .bind(enum_name("device type", &fields.device_type)?)
                        .bind(&fields.brand)
                        .bind(&fields.model)
                        .bind(&fields.serial)
                        .bind(&fields.imei)
                        .bind(&fields.color)
                        .bind(&fields.condition)
                        .bind(&fields.fault)
                        .bind(enum_name("device status", &fields.status)?)
                        .bind(at.as_micros())
                        .bind(&fields.name)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                        if updated > 0 {
                            break;
                        }
                    }
                    if updated == 0 {
                        return Err(StoreError::NotFound);
                    }
                    let device = device_in(&mut tx, scope, id).await?.ok_or(StoreError::NotFound)?;
                    tx.commit().await.map_err(map_err)?;
                    Ok(device)
                }

                async fn delete_device(&self, scope: &Scope, id: &str) -> StoreResult<()> {
                    for table in ["devices", "client_devices"] {
                        let result = sqlx::query(&format!(
                            "DELETE FROM {table} WHERE shop_id = $1 AND environment = $2 AND id = $3"
                        ))
                        .bind(&scope.shop_id)
                        .bind(env_str(scope))
                        .bind(id)
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                        if result.rows_affected() > 0 {
                            return Ok(());
                        }
                    }
                    Err(StoreError::NotFound)
                }

                async fn id_for_number(
                    &self,
                    scope: &Scope,
                    kind: NumericKind,
                    n: i64,
                ) -> StoreResult<Option<String>> {
                    let table = match kind {
                        NumericKind::Client => "clients",
                        NumericKind::Order => "orders",
                        NumericKind::Device => DEVICE_ROWS,
                    };
                    let row = sqlx::query(&format!(
                        "SELECT id FROM {table} WHERE shop_id = $1 AND environment = $2 AND numeric_id = $3"
                    ))
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(n)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    row.map(|r| r.try_get::<String, _>("id").map_err(map_err)).transpose()
                }

                // -----------------------------------------------------------------------
                // Test data
                // -----------------------------------------------------------------------

                async fn reset_test_data(
                    &self,
                    shop_id: &str,
                    sample: &SampleData,
                    at: Timestamp,
                ) -> StoreResult<()> {
                    // The sample must only refer to itself, so nothing it inserts can
                    // point into live data or another shop.
                    let client_ids: HashSet<&str> = sample.clients.iter().map(|(id, _)| id.as_str()).collect();
                    let order_ids: HashSet<&str> = sample.orders.iter().map(|(id, _)| id.as_str()).collect();
                    if let Some((id, _)) = sample
                        .orders
                        .iter()
                        .find(|(_, o)| !client_ids.contains(o.client_id.as_str()))
                    {
                        return Err(StoreError::Internal(format!(
                            "sample order {id} names a client outside the sample"
                        )));
                    }
                    if let Some((id, _, _)) = sample
                        .devices
                        .iter()
                        .find(|(_, o, _)| !order_ids.contains(o.as_str()))
                    {
                        return Err(StoreError::Internal(format!(
                            "sample device {id} names an order outside the sample"
                        )));
                    }

                    let env = Environment::Test;
                    let mut tx = self.write_tx().await?;
                    // Answers kept for Idempotency-Key retries name resources that are
                    // about to disappear.
                    sqlx::query("DELETE FROM idempotency_keys WHERE shop_id = $1 AND environment = $2")
                        .bind(shop_id)
                        .bind(env.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    // Children first; the order_sequences row stays, so references keep
                    // counting.
                    for table in ["devices", "client_devices", "orders", "clients"] {
                        sqlx::query(&format!(
                            "DELETE FROM {table} WHERE shop_id = $1 AND environment = $2"
                        ))
                        .bind(shop_id)
                        .bind(env.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    }
                    for (id, fields) in &sample.clients {
                        insert_client(&mut tx, shop_id, env, id, fields, at).await?;
                    }
                    for (id, fields) in &sample.orders {
                        let reference = next_reference(&mut tx, shop_id, env).await?;
                        insert_order(&mut tx, shop_id, env, id, &reference, fields, at).await?;
                    }
                    for (id, order_id, fields) in &sample.devices {
                        let owner = DeviceOwner::Order(order_id.clone());
                        if !insert_device(&mut tx, shop_id, env, &owner, id, fields, at).await? {
                            return Err(StoreError::Internal(format!(
                                "sample device {id}: order {order_id} was not inserted"
                            )));
                        }
                    }
                    tx.commit().await.map_err(map_err)
                }

                // -----------------------------------------------------------------------
                // Idempotency keys
                // -----------------------------------------------------------------------

                async fn begin_idempotent(
                    &self,
                    scope: &Scope,
                    key: &str,
                    fingerprint: &str,
                    at: Timestamp,
                ) -> StoreResult<Idempotency> {
                    let mut tx = self.write_tx().await?;
                    // Expire this scope's old keys first, so an expired key is simply new.
                    sqlx::query("DELETE FROM idempotency_keys WHERE shop_id = $1 AND environment = $2 AND created_at < $3")
                        .bind(&scope.shop_id)
                        .bind(env_str(scope))
                        .bind(at.as_micros().saturating_sub(IDEMPOTENCY_TTL_MICROS))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    // Claim first, read second: of two identical requests racing, exactly
                    // one inserts the row (and runs); the other reads the claim.
                    let claimed = sqlx::query(
                        "INSERT INTO idempotency_keys (shop_id, environment, idem_key, fingerprint, created_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (shop_id, environment, idem_key) DO NOTHING",
                    )
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(key)
                    .bind(fingerprint)
                    .bind(at.as_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected()
                        > 0;
                    let answer = if claimed {
                        Idempotency::New
                    } else {
                        let row = sqlx::query(
                            "SELECT fingerprint, status, body, resource_path FROM idempotency_keys
                             WHERE shop_id = $1 AND environment = $2 AND idem_key = $3",
                        )
                        .bind(&scope.shop_id)
                        .bind(env_str(scope))
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        idempotency_from_row(&row, fingerprint)?
                    };
                    tx.commit().await.map_err(map_err)?;
                    Ok(answer)
                }

                async fn finish_idempotent(
                    &self,
                    scope: &Scope,
                    key: &str,
                    status: u16,
                    body: &str,
                    resource_path: Option<&str>,
                ) -> StoreResult<()> {
                    let result = sqlx::query(
                        "UPDATE idempotency_keys SET status = $4, body = $5, resource_path = $6
                         WHERE shop_id = $1 AND environment = $2 AND idem_key = $3",
                    )
                    .bind(&scope.shop_id)
                    .bind(env_str(scope))
                    .bind(key)
                    .bind(i64::from(status))
                    .bind(body)
                    .bind(resource_path)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                    // The claim is gone (abandoned, or expired during a day-long request):
                    // nothing to keep the answer under.
                    if result.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                async fn abandon_idempotent(&self, scope: &Scope, key: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM idempotency_keys WHERE shop_id = $1 AND environment = $2 AND idem_key = $3")
                        .bind(&scope.shop_id)
                        .bind(env_str(scope))
                        .bind(key)
                        .execute(&self.pool)
                        .await
                        .map_err(map_err)?;
                    Ok(())
                }
            }
        };
    };
}

pub(crate) use resource_store;
