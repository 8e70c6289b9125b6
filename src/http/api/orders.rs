//! `/api/v1/orders`: repair orders (jobs).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Id;
use super::common::{idempotent, scope};
use super::paging::{ListParams, Meta};
use crate::app::AppState;
use crate::domain::order::{Order, OrderInput, OrderStatus};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::{JsonBody, JsonWithBytes, Query};
use crate::service::idempotency::IdempotencyService;
use crate::service::resources::{ResourceService, may_create_order};
use crate::store::resources::{Cursor, OrderFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<Order>,
    pub meta: Meta,
}

#[derive(Serialize, ToSchema)]
pub struct OrderEnvelope {
    pub order: Order,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilters {
    /// Only orders with this status.
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    /// Only this client's orders.
    pub client_id: Option<String>,
}

fn position(o: &Order) -> Cursor {
    Cursor {
        updated_at: o.updated_at,
        id: o.id.clone(),
    }
}

/// List orders.
#[utoipa::path(get, path = "/orders", tag = "Orders", operation_id = "listOrders",
    params(ListParams, OrderFilters),
    responses((status = 200, description = "A page of orders", body = OrderList)))]
async fn list(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Query(params): Query<ListParams>,
    Query(filters): Query<OrderFilters>,
) -> Result<Json<OrderList>, ApiError> {
    let query = params.parse()?;
    let status = match filters.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<OrderStatus>()
                .map_err(|m| ApiError::bad_request(format!("`status`: {m}")))?,
        ),
    };
    let filter = OrderFilter {
        statuses: status.into_iter().collect(),
        client_id: filters.client_id.filter(|c| !c.is_empty()),
    };
    let paged = resources
        .list_orders(&scope(&caller), &filter, &query)
        .await?;
    let meta = Meta::of_listing(&query, paged.total, &paged.items, position);
    Ok(Json(OrderList {
        orders: paged.items,
        meta,
    }))
}

/// Create an order.
///
/// Give `client_id`, or a new `client` to create with the order in one step
/// (what a website contact form does; this also needs `clients:write`).
/// Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/orders", tag = "Orders", operation_id = "createOrder",
    request_body(content = OrderInput, example = json!({
        "client": {"first_name": "Sam", "last_name": "Patel", "email": "sam@example.com", "phone": "+44 20 7946 0958"},
        "problem_description": "Cracked screen after a drop", "due_date": "2026-12-04", "estimate_cents": 8999})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body give the first answer (kept 24 h)")),
    responses((status = 201, description = "Created", body = OrderEnvelope,
        headers(("Location" = String, description = "The new order's URL")))))]
async fn create(
    State(resources): State<Arc<ResourceService>>,
    State(idempotency): State<Arc<IdempotencyService>>,
    caller: Caller,
    headers: HeaderMap,
    JsonWithBytes(input, bytes): JsonWithBytes<OrderInput>,
) -> Result<Response, ApiError> {
    // Before the key is claimed, so a refused request leaves it untouched.
    may_create_order(caller.key.permissions, &input)?;
    let scope = scope(&caller);
    idempotent(
        &idempotency,
        &scope,
        &headers,
        "/orders",
        &bytes,
        || async {
            let order = resources
                .create_order(&scope, caller.key.permissions, input)
                .await?;
            let location = format!("/api/v1/orders/{}", order.id);
            Ok((location, serde_json::json!({ "order": order })))
        },
    )
    .await
}

/// Get an order.
#[utoipa::path(get, path = "/orders/{id}", tag = "Orders", operation_id = "getOrder",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "The order", body = OrderEnvelope)))]
async fn show(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<OrderEnvelope>, ApiError> {
    let order = resources.get_order(&scope(&caller), &id).await?;
    Ok(Json(OrderEnvelope { order }))
}

/// Update an order (JSON merge patch: absent fields stay, `null` clears).
#[utoipa::path(patch, path = "/orders/{id}", tag = "Orders", operation_id = "updateOrder",
    params(("id" = String, Path, description = "Order id")),
    request_body(content = OrderInput, content_type = "application/merge-patch+json", example = json!({"status": "ready", "price_cents": 8999})),
    responses((status = 200, description = "The updated order", body = OrderEnvelope)))]
async fn update(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
    JsonBody(patch): JsonBody<OrderInput>,
) -> Result<Json<OrderEnvelope>, ApiError> {
    let order = resources.update_order(&scope(&caller), &id, patch).await?;
    Ok(Json(OrderEnvelope { order }))
}

/// Delete an order and its devices.
#[utoipa::path(delete, path = "/orders/{id}", tag = "Orders", operation_id = "deleteOrder",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 204, description = "Deleted, with its devices")))]
async fn delete(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    resources.delete_order(&scope(&caller), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
