//! The shop's data: clients, orders, devices. Tenancy is enforced here, not
//! only in handlers: every method takes a [`Scope`] (shop and environment) and
//! every query filters on both, so no path can reach another shop's or the
//! other environment's rows.

use async_trait::async_trait;

use super::{PageRequest, Paged, StoreResult};
use crate::domain::client::{Client, ClientFields};
use crate::domain::clock::Timestamp;
use crate::domain::device::{Device, DeviceFields};
use crate::domain::order::{Order, OrderFields, OrderStatus};
use crate::domain::token::Environment;

/// How long an `Idempotency-Key` is kept: 24 hours, in microseconds.
pub const IDEMPOTENCY_TTL_MICROS: i64 = 86_400_000_000;

/// The first order number of a scope (`RM-10001`).
pub const FIRST_ORDER_NUMBER: i64 = 10001;

/// Whose data, and which of its two data sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub shop_id: String,
    pub environment: Environment,
}

/// The order of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// `-created_at`, the default: newest first.
    CreatedDesc,
    /// `created_at`
    CreatedAsc,
    /// `updated_at`: oldest change first, for sync; supports cursors.
    UpdatedAsc,
    /// `-updated_at`
    UpdatedDesc,
    /// By integer id, oldest first: rows created while a client walks the
    /// pages land after it, so it neither misses nor repeats one (the
    /// RepairShopr-compatible lists). Not offered on the native lists.
    NumericAsc,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "-created_at" => Some(Sort::CreatedDesc),
            "created_at" => Some(Sort::CreatedAsc),
            "updated_at" => Some(Sort::UpdatedAsc),
            "-updated_at" => Some(Sort::UpdatedDesc),
            _ => None,
        }
    }
}

/// A position in an `updated_at` listing: the last item seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub updated_at: Timestamp,
    pub id: String,
}

/// What every list takes. Ties on the sort key are broken by id, so pages are
/// stable and a poller never misses or repeats an item.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub page: PageRequest,
    pub sort: Sort,
    /// Only rows with `updated_at >= updated_since`.
    pub updated_since: Option<Timestamp>,
    /// Only rows after this position (with `Sort::UpdatedAsc`); `page` is then
    /// ignored (the first page after the cursor is returned).
    pub after: Option<Cursor>,
}

#[derive(Clone, Debug, Default)]
pub struct ClientFilter {
    /// Matches (case-insensitively, as a substring) names, business name,
    /// email, phone and mobile.
    pub search: Option<String>,
    /// The email, whole (case-insensitively).
    pub email: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    /// Orders in any of these statuses; empty: any status.
    pub statuses: Vec<OrderStatus>,
    pub client_id: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    pub order_id: Option<String>,
    /// The device's client (the order's client for a device on an order).
    pub client_id: Option<String>,
}

/// What a device belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceOwner {
    /// Brought in with this order (its client is the order's).
    Order(String),
    /// A client's device, with no order.
    Client(String),
}

/// The kinds of resource with an integer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericKind {
    Client,
    Order,
    Device,
}

/// What a stored `Idempotency-Key` says about a new request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// First use: the caller runs the request, then [`ResourceStore::finish_idempotent`].
    New,
    /// Same key and same request before: answer with what was answered then.
    Replay {
        status: u16,
        body: String,
        resource_path: Option<String>,
    },
    /// Same key, different request.
    Mismatch,
    /// Same key, first request still running.
    InProgress,
}

/// The sample data `test-data reset` installs.
pub use crate::domain::sample::SampleData;

#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn create_client(
        &self,
        scope: &Scope,
        id: &str,
        fields: &ClientFields,
        at: Timestamp,
    ) -> StoreResult<Client>;
    async fn get_client(&self, scope: &Scope, id: &str) -> StoreResult<Option<Client>>;
    /// `q` matches (case-insensitively, as a substring) names, business name,
    /// email, phone and mobile.
    async fn list_clients(
        &self,
        scope: &Scope,
        q: Option<&str>,
        query: &ListQuery,
    ) -> StoreResult<Paged<Client>> {
        let filter = ClientFilter {
            search: q.map(str::to_owned),
            email: None,
        };
        self.list_clients_where(scope, &filter, query).await
    }
    async fn list_clients_where(
        &self,
        scope: &Scope,
        filter: &ClientFilter,
        query: &ListQuery,
    ) -> StoreResult<Paged<Client>>;
    /// The string id of the resource of this kind with integer id `n` in
    /// `scope`, if any.
    async fn id_for_number(
        &self,
        scope: &Scope,
        kind: NumericKind,
        n: i64,
    ) -> StoreResult<Option<String>>;
    /// Replaces the data fields; `NotFound` if the client is not in `scope`.
    async fn update_client(
        &self,
        scope: &Scope,
        id: &str,
        fields: &ClientFields,
        at: Timestamp,
    ) -> StoreResult<Client>;
    /// `Conflict` (saying why) while the client has orders or devices.
    async fn delete_client(&self, scope: &Scope, id: &str) -> StoreResult<()>;

    /// Creates an order, first creating `new_client` (id, fields) when given,
    /// in one transaction, and gives it the scope's next reference
    /// (`RM-10001`, …). `NotFound` if `fields.client_id` is not in `scope`.
    async fn create_order(
        &self,
        scope: &Scope,
        id: &str,
        fields: &OrderFields,
        new_client: Option<(&str, &ClientFields)>,
        at: Timestamp,
    ) -> StoreResult<Order>;
    async fn get_order(&self, scope: &Scope, id: &str) -> StoreResult<Option<Order>>;
    async fn list_orders(
        &self,
        scope: &Scope,
        filter: &OrderFilter,
        query: &ListQuery,
    ) -> StoreResult<Paged<Order>>;
    /// `NotFound` if the order, or a changed `client_id`, is not in `scope`.
    async fn update_order(
        &self,
        scope: &Scope,
        id: &str,
        fields: &OrderFields,
        at: Timestamp,
    ) -> StoreResult<Order>;
    /// Deletes the order and its devices.
    async fn delete_order(&self, scope: &Scope, id: &str) -> StoreResult<()>;

    /// `NotFound` if the owner (order or client) is not in `scope`.
    async fn create_device(
        &self,
        scope: &Scope,
        owner: &DeviceOwner,
        id: &str,
        fields: &DeviceFields,
        at: Timestamp,
    ) -> StoreResult<Device>;
    async fn get_device(&self, scope: &Scope, id: &str) -> StoreResult<Option<Device>>;
    async fn list_devices(
        &self,
        scope: &Scope,
        filter: &DeviceFilter,
        query: &ListQuery,
    ) -> StoreResult<Paged<Device>>;
    async fn update_device(
        &self,
        scope: &Scope,
        id: &str,
        fields: &DeviceFields,
        at: Timestamp,
    ) -> StoreResult<Device>;
    async fn delete_device(&self, scope: &Scope, id: &str) -> StoreResult<()>;

    /// Replaces all test-environment data of `shop_id` with `sample`, in one
    /// transaction. Order references keep counting (they never repeat).
    async fn reset_test_data(
        &self,
        shop_id: &str,
        sample: &SampleData,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// Claims `key` for a request with this `fingerprint` (method, path and a
    /// hash of the body). Keys are kept 24 hours.
    async fn begin_idempotent(
        &self,
        scope: &Scope,
        key: &str,
        fingerprint: &str,
        at: Timestamp,
    ) -> StoreResult<Idempotency>;
    /// Stores the answer given to the request that claimed `key`.
    async fn finish_idempotent(
        &self,
        scope: &Scope,
        key: &str,
        status: u16,
        body: &str,
        resource_path: Option<&str>,
    ) -> StoreResult<()>;
    /// Releases a claim whose request failed before changing anything.
    async fn abandon_idempotent(&self, scope: &Scope, key: &str) -> StoreResult<()>;
}
