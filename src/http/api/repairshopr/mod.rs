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

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::domain::FieldError;
use crate::domain::client::Client;
use crate::http::error::ApiError;
use crate::service::ServiceError;
use crate::service::resources::{ResourceService, Scope};
use crate::store::resources::NumericKind;

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

/// The clients with these ids (what a ticket or an asset shows of its
/// customer), each looked up once. One deleted meanwhile is left out.
async fn clients_by_id<'a>(
    resources: &ResourceService,
    scope: &Scope,
    client_ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Client>, ApiError> {
    let mut out = HashMap::new();
    for id in client_ids {
        if out.contains_key(id) {
            continue;
        }
        match resources.get_client(scope, id).await {
            Ok(c) => {
                out.insert(id.to_owned(), c);
            }
            Err(ServiceError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The client id of the customer a body's or a query's `customer_id`
/// names: `Ok(Ok(None))` when no customer in `scope` has it, `Ok(Err(_))`
/// when it is not an integer id.
async fn customer_client_id(
    resources: &ResourceService,
    scope: &Scope,
    v: &Value,
) -> Result<Result<Option<String>, FieldError>, ApiError> {
    let n = match mapping::integer("customer_id", v) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    match resources.id_for_number(scope, NumericKind::Client, n).await {
        Ok(id) => Ok(Ok(Some(id))),
        Err(ServiceError::NotFound) => Ok(Ok(None)),
        Err(e) => Err(e.into()),
    }
}

/// The refusal of a `customer_id` that names no customer.
fn no_such_customer() -> FieldError {
    FieldError::new(
        "customer_id",
        "no customer has this id (for this key's shop and environment)",
    )
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
