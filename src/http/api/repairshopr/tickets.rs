//! `/api/v1/tickets`: orders under RepairShopr's names ([`TICKET_FIELDS`],
//! statuses by [`TICKET_STATUSES`](super::mapping::TICKET_STATUSES)), by
//! integer id.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::customers::business_then_name;
use super::mapping::{
    Field, RsBody, RsId, RsMeta, TICKET_FIELDS, list_query, map_in, map_out, native_input,
    order_statuses, param, rs_errors, ticket_status, ticket_status_names,
};
use super::{Message, TAG, clients_by_id, customer_client_id, no_such_customer};
use crate::app::AppState;
use crate::domain::order::{Order, OrderInput};
use crate::http::api::common::scope;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, FieldError};
use crate::http::json::RawQuery;
use crate::service::ServiceError;
use crate::service::resources::{ResourceService, Scope};
use crate::store::resources::{NumericKind, OrderFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
}

const TABLES: &[(&[Field], &str)] = &[(TICKET_FIELDS, "")];

/// A ticket (a latchkey order), as RepairShopr names its fields.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON `ticket_json` makes")]
pub struct Ticket {
    /// The order's `numeric_id`.
    #[schema(example = 5120)]
    pub id: i64,
    /// The number of the order's reference (`RM-10042` → 10042).
    #[schema(example = 10042)]
    pub number: Option<i64>,
    /// The order's `problem_description`.
    #[schema(example = "Cracked screen")]
    pub subject: Option<String>,
    #[schema(example = "Screen")]
    pub problem_type: Option<String>,
    /// `New`, `In Progress`, `Waiting for Parts`, `Waiting on Customer`,
    /// `Ready`, `Resolved` or `Cancelled`.
    #[schema(example = "In Progress")]
    pub status: String,
    /// The client's `numeric_id`.
    #[schema(example = 1042)]
    pub customer_id: Option<i64>,
    /// The customer's business name, else its full name.
    #[schema(example = "Sam Patel")]
    pub customer_business_then_name: Option<String>,
    /// `YYYY-MM-DD`
    #[schema(example = "2026-12-04")]
    pub due_date: Option<String>,
    #[schema(example = "2026-12-01T10:00:00.000000Z")]
    pub created_at: String,
    #[schema(example = "2026-12-01T10:00:00.000000Z")]
    pub updated_at: String,
    /// Always empty: latchkey keeps no ticket comments.
    pub comments: Vec<Value>,
}

/// A ticket as sent (JSON or form-encoded); unknown fields are ignored.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the body the handlers read")]
pub struct TicketInput {
    /// Required on create.
    #[schema(example = 1042)]
    pub customer_id: Option<i64>,
    #[schema(example = "Cracked screen")]
    pub subject: Option<String>,
    #[schema(example = "Screen")]
    pub problem_type: Option<String>,
    /// One of the ticket statuses (case-insensitive); default `New`.
    #[schema(example = "New")]
    pub status: Option<String>,
    /// `YYYY-MM-DD` (a date-time is cut to its date).
    #[schema(example = "2026-12-04")]
    pub due_date: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON the handlers make")]
pub struct TicketList {
    pub tickets: Vec<Ticket>,
    pub meta: RsMeta,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON the handlers make")]
pub struct TicketEnvelope {
    pub ticket: Ticket,
}

/// Filters of the ticket list (other parameters are ignored).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "describes the parameters `list` reads")]
pub struct TicketParams {
    /// 1-based; 25 tickets a page, in id order.
    pub page: Option<u32>,
    /// Only tickets changed at or after this time (ISO 8601).
    pub since_updated_at: Option<String>,
    /// Only this customer's tickets.
    pub customer_id: Option<i64>,
    /// Only tickets in this status (`Resolved` is collected or despatched).
    pub status: Option<String>,
}

/// What a ticket shows of its customer: integer id and name.
type CustomerInfo = (i64, Option<String>);

/// The customers of orders with these client ids.
async fn customers_of(
    resources: &ResourceService,
    scope: &Scope,
    client_ids: impl Iterator<Item = &str>,
) -> Result<HashMap<String, CustomerInfo>, ApiError> {
    Ok(clients_by_id(resources, scope, client_ids)
        .await?
        .into_iter()
        .map(|(id, c)| (id, (c.numeric_id, business_then_name(&c.fields))))
        .collect())
}

/// `RM-10042` → 10042.
pub fn reference_number(reference: &str) -> Option<i64> {
    reference.rsplit('-').next()?.parse().ok()
}

/// An order as a RepairShopr ticket.
pub fn ticket_json(o: &Order, customer: Option<&CustomerInfo>) -> Value {
    let native = serde_json::to_value(o).unwrap_or_default();
    let mut out = Map::new();
    out.insert("id".into(), json!(o.numeric_id));
    out.insert("number".into(), json!(reference_number(&o.reference)));
    map_out(&native, TICKET_FIELDS, &mut out);
    out.insert("status".into(), json!(ticket_status(o.fields.status)));
    out.insert("customer_id".into(), json!(customer.map(|c| c.0)));
    out.insert(
        "customer_business_then_name".into(),
        json!(customer.and_then(|c| c.1.clone())),
    );
    out.insert("created_at".into(), json!(o.created_at));
    out.insert("updated_at".into(), json!(o.updated_at));
    out.insert("comments".into(), json!([]));
    Value::Object(out)
}

async fn one_ticket(
    resources: &ResourceService,
    scope: &Scope,
    o: &Order,
) -> Result<Json<Value>, ApiError> {
    let customers = customers_of(
        resources,
        scope,
        std::iter::once(o.fields.client_id.as_str()),
    )
    .await?;
    Ok(Json(
        json!({ "ticket": ticket_json(o, customers.get(&o.fields.client_id)) }),
    ))
}

/// A body under RepairShopr's names as the native order input.
async fn order_input(
    resources: &ResourceService,
    scope: &Scope,
    body: RsBody,
    creating: bool,
) -> Result<OrderInput, ApiError> {
    let body = body.fields("ticket");
    let mut native = Map::new();
    let mut errors: Vec<FieldError> = Vec::new();
    map_in(&body, TICKET_FIELDS, "", &mut native, &mut errors);
    // RepairShopr sends due dates as date-times; an order keeps the date.
    if let Some(Value::String(d)) = native.get_mut("due_date")
        && d.len() > 10
        && matches!(d.as_bytes()[10], b'T' | b' ')
    {
        d.truncate(10);
    }
    match body.get("status") {
        None => {}
        Some(Value::String(s)) => match order_statuses(s) {
            Ok(statuses) => {
                native.insert("status".into(), json!(statuses[0].as_str()));
            }
            Err(m) => errors.push(FieldError::new("status", m)),
        },
        Some(_) => errors.push(FieldError::new(
            "status",
            format!("must be text: one of {}", ticket_status_names().join(", ")),
        )),
    }
    match body.get("customer_id") {
        None | Some(Value::Null) if creating => errors.push(FieldError::new(
            "customer_id",
            "is required: the id of the ticket's customer",
        )),
        None => {}
        Some(Value::Null) => errors.push(FieldError::new("customer_id", "cannot be null")),
        Some(v) => match customer_client_id(resources, scope, v).await? {
            Ok(Some(id)) => {
                native.insert("client_id".into(), json!(id));
            }
            Ok(None) => errors.push(no_such_customer()),
            Err(e) => errors.push(e),
        },
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    native_input(native, TABLES)
}

/// The order id of ticket `n` in the caller's scope (404 if none).
async fn order_id(resources: &ResourceService, scope: &Scope, n: i64) -> Result<String, ApiError> {
    Ok(resources
        .id_for_number(scope, NumericKind::Order, n)
        .await?)
}

/// List tickets.
#[utoipa::path(get, path = "/tickets", tag = TAG, operation_id = "rsListTickets",
    params(TicketParams),
    responses((status = 200, description = "A page of tickets (25 a page, in id order)", body = TicketList)))]
async fn list(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    q: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let query = list_query(&q)?;
    let mut filter = OrderFilter::default();
    if let Some(s) = param(&q, "status") {
        filter.statuses = order_statuses(s)
            .map_err(|m| ApiError::validation(vec![FieldError::new("status", m)]))?;
    }
    if let Some(c) = param(&q, "customer_id") {
        match customer_client_id(&resources, &scope, &json!(c)).await? {
            Ok(Some(id)) => filter.client_id = Some(id),
            // No such customer: no tickets.
            Ok(None) => {
                return Ok(Json(json!({"tickets": [], "meta": RsMeta::of(&query, 0)})));
            }
            Err(e) => return Err(ApiError::validation(vec![e])),
        }
    }
    let paged = resources.list_orders(&scope, &filter, &query).await?;
    let customers = customers_of(
        &resources,
        &scope,
        paged.items.iter().map(|o| o.fields.client_id.as_str()),
    )
    .await?;
    let tickets: Vec<Value> = paged
        .items
        .iter()
        .map(|o| ticket_json(o, customers.get(&o.fields.client_id)))
        .collect();
    Ok(Json(json!({
        "tickets": tickets,
        "meta": RsMeta::of(&query, paged.total),
    })))
}

/// Create a ticket.
#[utoipa::path(post, path = "/tickets", tag = TAG, operation_id = "rsCreateTicket",
    request_body(content(
        (TicketInput = "application/json", example = json!({"customer_id": 1042, "subject": "Cracked screen", "problem_type": "Screen", "status": "New"})),
        (TicketInput = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The new ticket", body = TicketEnvelope)))]
async fn create(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    body: RsBody,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let input = order_input(&resources, &scope, body, true).await?;
    let order = resources
        .create_order(&scope, caller.key.permissions, input)
        .await
        .map_err(|e| match e {
            // The customer was deleted between the check and the insert.
            ServiceError::NotFound => ApiError::validation(vec![no_such_customer()]),
            e => rs_errors(e, TABLES),
        })?;
    one_ticket(&resources, &scope, &order).await
}

/// Get a ticket.
#[utoipa::path(get, path = "/tickets/{id}", tag = TAG, operation_id = "rsGetTicket",
    params(("id" = i64, Path, description = "Ticket id (the order's numeric_id)")),
    responses((status = 200, description = "The ticket", body = TicketEnvelope)))]
async fn show(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let id = order_id(&resources, &scope, n).await?;
    let order = resources.get_order(&scope, &id).await?;
    one_ticket(&resources, &scope, &order).await
}

/// Update a ticket: the fields sent change, the others stay.
#[utoipa::path(put, path = "/tickets/{id}", tag = TAG, operation_id = "rsUpdateTicket",
    params(("id" = i64, Path, description = "Ticket id (the order's numeric_id)")),
    request_body(content(
        (TicketInput = "application/json", example = json!({"status": "Resolved"})),
        (TicketInput = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The updated ticket", body = TicketEnvelope)))]
async fn update(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
    body: RsBody,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let id = order_id(&resources, &scope, n).await?;
    let patch = order_input(&resources, &scope, body, false).await?;
    let order = resources
        .update_order(&scope, &id, patch)
        .await
        .map_err(|e| rs_errors(e, TABLES))?;
    one_ticket(&resources, &scope, &order).await
}

/// Delete a ticket (and the devices that came in with it).
#[utoipa::path(delete, path = "/tickets/{id}", tag = TAG, operation_id = "rsDeleteTicket",
    params(("id" = i64, Path, description = "Ticket id (the order's numeric_id)")),
    responses((status = 200, description = "Deleted", body = Message)))]
async fn delete(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
) -> Result<Json<Message>, ApiError> {
    let scope = scope(&caller);
    let id = order_id(&resources, &scope, n).await?;
    resources.delete_order(&scope, &id).await?;
    Ok(Json(Message {
        message: format!("Ticket {n} deleted."),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema_properties;
    use super::*;
    use crate::domain::clock::Timestamp;
    use crate::domain::order::{OrderFields, OrderStatus};

    #[test]
    fn the_documented_ticket_is_the_one_answered() {
        let o = Order {
            id: "ord_x".into(),
            reference: "RM-10042".into(),
            numeric_id: 3,
            fields: OrderFields {
                client_id: "cli_x".into(),
                status: OrderStatus::Despatched,
                problem_description: None,
                problem_type: None,
                technician: None,
                due_date: None,
                estimate_cents: None,
                price_cents: None,
                currency: "GBP".into(),
                notes: None,
            },
            created_at: Timestamp::from_unix_seconds(0),
            updated_at: Timestamp::from_unix_seconds(0),
        };
        let answered = ticket_json(&o, Some(&(9, Some("Sam".into()))));
        assert_eq!(
            schema_properties::<Ticket>(),
            answered.as_object().unwrap().keys().cloned().collect()
        );
        assert_eq!(
            (
                &answered["number"],
                &answered["status"],
                &answered["customer_id"]
            ),
            (&json!(10042), &json!("Resolved"), &json!(9))
        );
        assert_eq!(reference_number("RM-7"), Some(7));
    }
}
