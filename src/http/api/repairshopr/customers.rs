//! `/api/v1/customers`: clients under RepairShopr's names
//! ([`CUSTOMER_FIELDS`]), by integer id.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::mapping::{
    CUSTOMER_FIELDS, Field, RsBody, RsId, RsMeta, list_query, map_in, map_out, native_input, param,
    rs_errors,
};
use super::{Message, TAG};
use crate::app::AppState;
use crate::domain::client::{Client, ClientFields, ClientInput};
use crate::http::api::common::scope;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, FieldError};
use crate::http::json::RawQuery;
use crate::service::resources::ResourceService;
use crate::store::resources::{ClientFilter, NumericKind};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
}

const TABLES: &[(&[Field], &str)] = &[(CUSTOMER_FIELDS, "")];

/// A customer (a latchkey client), as RepairShopr names its fields.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON `customer_json` makes")]
pub struct Customer {
    /// The client's `numeric_id`.
    #[schema(example = 1042)]
    pub id: i64,
    #[schema(example = "Sam")]
    pub firstname: Option<String>,
    #[schema(example = "Patel")]
    pub lastname: Option<String>,
    /// `firstname lastname`.
    #[schema(example = "Sam Patel")]
    pub fullname: Option<String>,
    pub business_name: Option<String>,
    /// `business_name - fullname`, or whichever of them there is.
    #[schema(example = "Sam Patel")]
    pub business_and_full_name: Option<String>,
    #[schema(example = "sam@example.com")]
    pub email: Option<String>,
    #[schema(example = "+44 20 7946 0958")]
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub address: Option<String>,
    pub address_2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// The client's `postcode`.
    pub zip: Option<String>,
    pub notes: Option<String>,
    #[schema(example = "2026-12-01T10:00:00.000000Z")]
    pub created_at: String,
    #[schema(example = "2026-12-01T10:00:00.000000Z")]
    pub updated_at: String,
}

/// A customer as sent (JSON or form-encoded): every field optional, `null`
/// or empty clears on `PUT`; unknown fields are ignored. A new customer
/// needs at least one of a name, business name, email or phone.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the body the handlers read")]
pub struct CustomerInput {
    #[schema(example = "Sam")]
    pub firstname: Option<String>,
    #[schema(example = "Patel")]
    pub lastname: Option<String>,
    pub business_name: Option<String>,
    #[schema(example = "sam@example.com")]
    pub email: Option<String>,
    /// 5–32 characters of digits, spaces and `+-().`
    #[schema(example = "+44 20 7946 0958")]
    pub phone: Option<String>,
    /// As `phone`.
    pub mobile: Option<String>,
    pub address: Option<String>,
    pub address_2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub notes: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON the handlers make")]
pub struct CustomerList {
    pub customers: Vec<Customer>,
    pub meta: RsMeta,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON the handlers make")]
pub struct CustomerEnvelope {
    pub customer: Customer,
}

/// Filters of the customer list (other parameters are ignored).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "describes the parameters `list` reads")]
pub struct CustomerParams {
    /// 1-based; 25 customers a page, in id order.
    pub page: Option<u32>,
    /// Only customers changed at or after this time (ISO 8601: with or
    /// without a fraction, `Z` or an offset).
    pub since_updated_at: Option<String>,
    /// Name, business name, email, phone or mobile contains this
    /// (case-insensitive).
    pub query: Option<String>,
    /// Only the customer with this email (whole, case-insensitive).
    pub email: Option<String>,
}

/// `firstname lastname`, when there is either.
fn full_name(f: &ClientFields) -> Option<String> {
    let parts: Vec<&str> = [&f.first_name, &f.last_name]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The business name, else the full name: what a ticket shows of its
/// customer.
pub fn business_then_name(f: &ClientFields) -> Option<String> {
    f.business_name.clone().or_else(|| full_name(f))
}

/// A client as a RepairShopr customer.
pub fn customer_json(c: &Client) -> Value {
    let native = serde_json::to_value(c).unwrap_or_default();
    let mut out = Map::new();
    out.insert("id".into(), json!(c.numeric_id));
    map_out(&native, CUSTOMER_FIELDS, &mut out);
    let full = full_name(&c.fields);
    let both = match (&c.fields.business_name, &full) {
        (Some(b), Some(f)) => Some(format!("{b} - {f}")),
        (b, f) => b.clone().or_else(|| f.clone()),
    };
    out.insert("fullname".into(), json!(full));
    out.insert("business_and_full_name".into(), json!(both));
    out.insert("created_at".into(), json!(c.created_at));
    out.insert("updated_at".into(), json!(c.updated_at));
    Value::Object(out)
}

/// A body under RepairShopr's names as the native client input.
fn client_input(body: RsBody) -> Result<ClientInput, ApiError> {
    let body = body.fields("customer");
    let mut native = Map::new();
    let mut errors: Vec<FieldError> = Vec::new();
    map_in(&body, CUSTOMER_FIELDS, "", &mut native, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    native_input(native, TABLES)
}

/// The client id of customer `n` in the caller's scope (404 if none).
async fn client_id(
    resources: &ResourceService,
    caller: &Caller,
    n: i64,
) -> Result<String, ApiError> {
    Ok(resources
        .id_for_number(&scope(caller), NumericKind::Client, n)
        .await?)
}

/// List customers.
#[utoipa::path(get, path = "/customers", tag = TAG, operation_id = "rsListCustomers",
    params(CustomerParams),
    responses((status = 200, description = "A page of customers (25 a page, in id order)", body = CustomerList)))]
async fn list(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    q: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = list_query(&q)?;
    let filter = ClientFilter {
        search: param(&q, "query").map(str::to_owned),
        email: param(&q, "email").map(str::to_owned),
    };
    let paged = resources
        .list_clients_where(&scope(&caller), &filter, &query)
        .await?;
    let customers: Vec<Value> = paged.items.iter().map(customer_json).collect();
    Ok(Json(json!({
        "customers": customers,
        "meta": RsMeta::of(&query, paged.total),
    })))
}

/// Create a customer.
#[utoipa::path(post, path = "/customers", tag = TAG, operation_id = "rsCreateCustomer",
    request_body(content(
        (CustomerInput = "application/json", example = json!({"firstname": "Sam", "lastname": "Patel", "email": "sam@example.com", "zip": "SW1A 1AA"})),
        (CustomerInput = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The new customer", body = CustomerEnvelope)))]
async fn create(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    body: RsBody,
) -> Result<Json<Value>, ApiError> {
    let input = client_input(body)?;
    let client = resources
        .create_client(&scope(&caller), input)
        .await
        .map_err(|e| rs_errors(e, TABLES))?;
    Ok(Json(json!({ "customer": customer_json(&client) })))
}

/// Get a customer.
#[utoipa::path(get, path = "/customers/{id}", tag = TAG, operation_id = "rsGetCustomer",
    params(("id" = i64, Path, description = "Customer id (the client's numeric_id)")),
    responses((status = 200, description = "The customer", body = CustomerEnvelope)))]
async fn show(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
) -> Result<Json<Value>, ApiError> {
    let id = client_id(&resources, &caller, n).await?;
    let client = resources.get_client(&scope(&caller), &id).await?;
    Ok(Json(json!({ "customer": customer_json(&client) })))
}

/// Update a customer: the fields sent change, the others stay.
#[utoipa::path(put, path = "/customers/{id}", tag = TAG, operation_id = "rsUpdateCustomer",
    params(("id" = i64, Path, description = "Customer id (the client's numeric_id)")),
    request_body(content(
        (CustomerInput = "application/json", example = json!({"mobile": "+44 7700 900123"})),
        (CustomerInput = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The updated customer", body = CustomerEnvelope)))]
async fn update(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
    body: RsBody,
) -> Result<Json<Value>, ApiError> {
    let id = client_id(&resources, &caller, n).await?;
    let patch = client_input(body)?;
    let client = resources
        .update_client(&scope(&caller), &id, patch)
        .await
        .map_err(|e| rs_errors(e, TABLES))?;
    Ok(Json(json!({ "customer": customer_json(&client) })))
}

/// Delete a customer (refused while it has tickets or assets).
#[utoipa::path(delete, path = "/customers/{id}", tag = TAG, operation_id = "rsDeleteCustomer",
    params(("id" = i64, Path, description = "Customer id (the client's numeric_id)")),
    responses((status = 200, description = "Deleted", body = Message),
        (status = 409, description = "`conflict`: the customer still has tickets or assets", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn delete(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
) -> Result<Json<Message>, ApiError> {
    let id = client_id(&resources, &caller, n).await?;
    resources.delete_client(&scope(&caller), &id).await?;
    Ok(Json(Message {
        message: format!("Customer {n} deleted."),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema_properties;
    use super::*;
    use crate::domain::clock::Timestamp;

    #[test]
    fn the_documented_customer_is_the_one_answered() {
        let c = Client {
            id: "cli_x".into(),
            numeric_id: 7,
            fields: ClientFields::default(),
            created_at: Timestamp::from_unix_seconds(0),
            updated_at: Timestamp::from_unix_seconds(0),
        };
        let answered: Vec<String> = customer_json(&c)
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            schema_properties::<Customer>(),
            answered.into_iter().collect()
        );
        let input: std::collections::BTreeSet<String> = CUSTOMER_FIELDS
            .iter()
            .map(|(rs, _)| (*rs).to_owned())
            .collect();
        assert_eq!(schema_properties::<CustomerInput>(), input);
    }
}
