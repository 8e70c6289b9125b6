//! The RepairShopr-compatible surface: `/api/v1/customers`, `/tickets` and
//! `/customer_assets`, so integrations written for RepairShopr work against
//! latchkey unchanged. A second surface over the same services as the native
//! clients, orders and devices (same validation, permissions, tenancy,
//! environments, usage, rate limits and problem+json errors); only the wire
//! format differs: integer ids, RepairShopr's field names (one table per
//! resource, [`mapping`]), JSON or form-encoded bodies, 25-a-page lists with
//! RepairShopr's `meta`, and unknown fields and query parameters ignored.

pub mod assets;
pub mod customers;
pub mod mapping;
pub mod tickets;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// The OpenAPI tag of these operations.
pub const TAG: &str = "RepairShopr-compatible";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(customers::router())
        .merge(tickets::router())
        .merge(assets::router())
}

/// The answer to a delete.
#[derive(Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "Customer 1042 deleted.")]
    pub message: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    /// The property names `T`'s schema documents.
    pub fn schema_properties<T: utoipa::ToSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            _ => panic!("not an object schema: {}", T::name()),
        }
    }
}
