//! The permission table: which permission each keyed operation needs. It is
//! the only place a route's permission is written; the key middleware checks
//! requests against it and the OpenAPI document's `security` entries are
//! produced from it, so the two cannot drift apart.

use crate::domain::permission::Permission;

/// What an operation asks of the calling key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any valid key.
    AnyKey,
    /// This permission.
    One(Permission),
    /// Any one of these (e.g. resetting test data).
    AnyOf(&'static [Permission]),
}

impl Need {
    /// Whether a key holding `held` may call the operation; otherwise the
    /// permission to name in the refusal.
    pub fn missing_from(
        self,
        held: crate::domain::permission::PermissionSet,
    ) -> Option<Permission> {
        match self {
            Need::AnyKey => None,
            Need::One(p) => (!held.contains(p)).then_some(p),
            Need::AnyOf(ps) => (!ps.iter().any(|p| held.contains(*p))).then(|| ps[0]),
        }
    }

    /// The one permission an operation needs, for narrowing a key to what it
    /// used (operations any key may call, or with a choice, add nothing).
    pub fn single(self) -> Option<Permission> {
        match self {
            Need::One(p) => Some(p),
            Need::AnyKey | Need::AnyOf(_) => None,
        }
    }
}

/// One keyed operation: method, full route template, operation id, need.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    pub method: &'static str,
    pub route: &'static str,
    pub operation_id: &'static str,
    pub need: Need,
}

const fn op(
    method: &'static str,
    route: &'static str,
    operation_id: &'static str,
    need: Need,
) -> Operation {
    Operation {
        method,
        route,
        operation_id,
        need,
    }
}

use Need::{AnyKey, AnyOf, One};
use Permission::*;

/// Every operation under `/api/v1` that takes a key.
pub const OPERATIONS: &[Operation] = &[
    op("GET", "/api/v1/me", "getMe", AnyKey),
    op("POST", "/api/v1/me/revoke", "revokeMe", AnyKey),
    op("GET", "/api/v1/keys", "listKeys", One(KeysRead)),
    op("POST", "/api/v1/keys", "createKey", One(KeysWrite)),
    op("GET", "/api/v1/keys/{id}", "getKey", One(KeysRead)),
    op("POST", "/api/v1/keys/pause", "pauseKeys", One(KeysWrite)),
    op("POST", "/api/v1/keys/resume", "resumeKeys", One(KeysWrite)),
    op("PATCH", "/api/v1/keys/{id}", "updateKey", One(KeysWrite)),
    op("DELETE", "/api/v1/keys/{id}", "deleteKey", One(KeysWrite)),
    op(
        "POST",
        "/api/v1/keys/{id}/revoke",
        "revokeKey",
        One(KeysWrite),
    ),
    op(
        "POST",
        "/api/v1/keys/{id}/clone",
        "cloneKey",
        One(KeysWrite),
    ),
    op("POST", "/api/v1/keys/{id}/roll", "rollKey", One(KeysWrite)),
    op(
        "POST",
        "/api/v1/keys/{id}/upgrade",
        "upgradeKey",
        One(KeysWrite),
    ),
    op(
        "GET",
        "/api/v1/keys/{id}/suggestions",
        "getKeySuggestions",
        One(KeysRead),
    ),
    op(
        "GET",
        "/api/v1/keys/{id}/usage",
        "getKeyUsage",
        One(KeysRead),
    ),
    op(
        "GET",
        "/api/v1/key-templates",
        "listKeyTemplates",
        One(KeysRead),
    ),
    op(
        "GET",
        "/api/v1/audit-events",
        "listAuditEvents",
        One(KeysRead),
    ),
    op("GET", "/api/v1/clients", "listClients", One(ClientsRead)),
    op("POST", "/api/v1/clients", "createClient", One(ClientsWrite)),
    op("GET", "/api/v1/clients/{id}", "getClient", One(ClientsRead)),
    op(
        "PATCH",
        "/api/v1/clients/{id}",
        "updateClient",
        One(ClientsWrite),
    ),
    op(
        "DELETE",
        "/api/v1/clients/{id}",
        "deleteClient",
        One(ClientsDelete),
    ),
    op("GET", "/api/v1/orders", "listOrders", One(OrdersRead)),
    op("POST", "/api/v1/orders", "createOrder", One(OrdersWrite)),
    op("GET", "/api/v1/orders/{id}", "getOrder", One(OrdersRead)),
    op(
        "PATCH",
        "/api/v1/orders/{id}",
        "updateOrder",
        One(OrdersWrite),
    ),
    op(
        "DELETE",
        "/api/v1/orders/{id}",
        "deleteOrder",
        One(OrdersDelete),
    ),
    op(
        "GET",
        "/api/v1/orders/{id}/devices",
        "listOrderDevices",
        One(DevicesRead),
    ),
    op(
        "POST",
        "/api/v1/orders/{id}/devices",
        "addOrderDevice",
        One(DevicesWrite),
    ),
    op("GET", "/api/v1/devices", "listDevices", One(DevicesRead)),
    op(
        "POST",
        "/api/v1/devices",
        "addClientDevice",
        One(DevicesWrite),
    ),
    op("GET", "/api/v1/devices/{id}", "getDevice", One(DevicesRead)),
    op(
        "PATCH",
        "/api/v1/devices/{id}",
        "updateDevice",
        One(DevicesWrite),
    ),
    op(
        "DELETE",
        "/api/v1/devices/{id}",
        "deleteDevice",
        One(DevicesDelete),
    ),
    // The RepairShopr-compatible surface (http::api::repairshopr): the same
    // permissions as the native resource each maps to.
    op(
        "GET",
        "/api/v1/customers",
        "rsListCustomers",
        One(ClientsRead),
    ),
    op(
        "POST",
        "/api/v1/customers",
        "rsCreateCustomer",
        One(ClientsWrite),
    ),
    op(
        "GET",
        "/api/v1/customers/{id}",
        "rsGetCustomer",
        One(ClientsRead),
    ),
    op(
        "PUT",
        "/api/v1/customers/{id}",
        "rsUpdateCustomer",
        One(ClientsWrite),
    ),
    op(
        "DELETE",
        "/api/v1/customers/{id}",
        "rsDeleteCustomer",
        One(ClientsDelete),
    ),
    op("GET", "/api/v1/tickets", "rsListTickets", One(OrdersRead)),
    op(
        "POST",
        "/api/v1/tickets",
        "rsCreateTicket",
        One(OrdersWrite),
    ),
    op(
        "GET",
        "/api/v1/tickets/{id}",
        "rsGetTicket",
        One(OrdersRead),
    ),
    op(
        "PUT",
        "/api/v1/tickets/{id}",
        "rsUpdateTicket",
        One(OrdersWrite),
    ),
    op(
        "DELETE",
        "/api/v1/tickets/{id}",
        "rsDeleteTicket",
        One(OrdersDelete),
    ),
    op(
        "GET",
        "/api/v1/customer_assets",
        "rsListCustomerAssets",
        One(DevicesRead),
    ),
    op(
        "POST",
        "/api/v1/customer_assets",
        "rsCreateCustomerAsset",
        One(DevicesWrite),
    ),
    op(
        "GET",
        "/api/v1/customer_assets/{id}",
        "rsGetCustomerAsset",
        One(DevicesRead),
    ),
    op(
        "PUT",
        "/api/v1/customer_assets/{id}",
        "rsUpdateCustomerAsset",
        One(DevicesWrite),
    ),
    op(
        "POST",
        "/api/v1/test-data/reset",
        "resetTestData",
        AnyOf(&[OrdersWrite, ClientsWrite, DevicesWrite]),
    ),
];

/// The operation at `method` and `route` (a full route template).
pub fn operation(method: &str, route: &str) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|o| o.route == route && o.method.eq_ignore_ascii_case(method))
}

/// The one permission the operation at `method` and `route` needs, if any.
pub fn route_permission(method: &str, route: &str) -> Option<Permission> {
    operation(method, route).and_then(|o| o.need.single())
}

/// Whether `route` is a keyed route (under any method).
pub fn has_route(route: &str) -> bool {
    OPERATIONS.iter().any(|o| o.route == route)
}
