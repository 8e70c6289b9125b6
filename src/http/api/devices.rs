//! Devices: added to an order (`/api/v1/orders/{id}/devices`), listed per
//! order and across the shop (`/api/v1/devices`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Id;
use super::common::{created, scope};
use super::paging::{ListParams, Meta};
use crate::app::AppState;
use crate::domain::device::{Device, DeviceInput, DeviceStatus, DeviceType};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::error::FieldError;
use crate::http::json::{JsonBody, Query, parse_json};
use crate::service::resources::ResourceService;
use crate::store::Paged;
use crate::store::resources::{Cursor, DeviceFilter, ListQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_for_order, create))
        .routes(routes!(list, create_for_client))
        .routes(routes!(show, update, delete))
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<Device>,
    pub meta: Meta,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceEnvelope {
    pub device: Device,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceFilters {
    /// Only devices of this order.
    pub order_id: Option<String>,
    /// Only devices of this client (its own, and those of its orders).
    pub client_id: Option<String>,
}

fn position(d: &Device) -> Cursor {
    Cursor {
        updated_at: d.updated_at,
        id: d.id.clone(),
    }
}

/// The answer for a page of devices.
fn device_list(query: &ListQuery, paged: Paged<Device>) -> Json<DeviceList> {
    let meta = Meta::of_listing(query, paged.total, &paged.items, position);
    Json(DeviceList {
        devices: paged.items,
        meta,
    })
}

/// List all devices of the shop.
#[utoipa::path(get, path = "/devices", tag = "Devices", operation_id = "listDevices",
    params(ListParams, DeviceFilters),
    responses((status = 200, description = "A page of devices", body = DeviceList)))]
async fn list(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Query(params): Query<ListParams>,
    Query(filters): Query<DeviceFilters>,
) -> Result<Json<DeviceList>, ApiError> {
    let query = params.parse()?;
    let filter = DeviceFilter {
        order_id: filters.order_id.filter(|o| !o.is_empty()),
        client_id: filters.client_id.filter(|c| !c.is_empty()),
    };
    let paged = resources
        .list_devices(&scope(&caller), &filter, &query)
        .await?;
    Ok(device_list(&query, paged))
}

/// A device added to a client, without an order: `client_id` and the
/// device's fields (those of [`DeviceInput`]; a test keeps the two equal).
/// Written out rather than `flatten`ed: an `allOf` with `DeviceInput`, which
/// allows no other property, would allow no `client_id` either.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the body `create_for_client` reads")]
pub struct ClientDeviceInput {
    #[schema(example = "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne")]
    pub client_id: String,
    #[schema(example = "Office laptop")]
    pub name: Option<String>,
    pub device_type: DeviceType,
    #[schema(example = "Dell")]
    pub brand: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// 15 digits, Luhn-checked.
    #[schema(example = "490154203237518")]
    pub imei: Option<String>,
    pub color: Option<String>,
    pub condition: Option<String>,
    pub fault: Option<String>,
    /// Default `received`.
    pub status: Option<DeviceStatus>,
}

/// Add a device to a client (without an order).
#[utoipa::path(post, path = "/devices", tag = "Devices", operation_id = "addClientDevice",
    request_body(content = ClientDeviceInput, example = json!({"client_id": "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne", "device_type": "laptop", "name": "Office laptop", "brand": "Dell"})),
    responses((status = 201, description = "Created", body = DeviceEnvelope,
        headers(("Location" = String, description = "The new device's URL"))),
        (status = 404, description = "`not_found`: no such client for this key", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn create_for_client(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    JsonBody(body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    // Not `ClientDeviceInput` itself: serde's `flatten` would silently drop
    // unknown fields, which every other body refuses.
    let mut body = body;
    let client_id = match body.remove("client_id") {
        Some(serde_json::Value::String(c)) if !c.trim().is_empty() => c,
        Some(serde_json::Value::String(_)) | None => {
            return Err(ApiError::validation(vec![FieldError::new(
                "client_id",
                "give the client the device belongs to",
            )]));
        }
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "client_id",
                "must be a string (a client id)",
            )]));
        }
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let input: DeviceInput = parse_json(&bytes)?;
    let device = resources
        .add_client_device(&scope(&caller), &client_id, input)
        .await?;
    let location = format!("/api/v1/devices/{}", device.id);
    Ok(created(&location, &serde_json::json!({ "device": device })))
}

/// List an order's devices.
#[utoipa::path(get, path = "/orders/{id}/devices", tag = "Devices", operation_id = "listOrderDevices",
    params(("id" = String, Path, description = "Order id"), ListParams),
    responses((status = 200, description = "A page of the order's devices", body = DeviceList)))]
async fn list_for_order(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(order_id): Id,
    Query(params): Query<ListParams>,
) -> Result<Json<DeviceList>, ApiError> {
    let query = params.parse()?;
    let paged = resources
        .list_order_devices(&scope(&caller), &order_id, &query)
        .await?;
    Ok(device_list(&query, paged))
}

/// Add a device to an order.
#[utoipa::path(post, path = "/orders/{id}/devices", tag = "Devices", operation_id = "addOrderDevice",
    params(("id" = String, Path, description = "Order id")),
    request_body(content = DeviceInput, example = json!({"device_type": "phone", "brand": "Apple", "model": "iPhone 13", "imei": "490154203237518", "fault": "Screen cracked"})),
    responses((status = 201, description = "Created", body = DeviceEnvelope,
        headers(("Location" = String, description = "The new device's URL")))))]
async fn create(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(order_id): Id,
    JsonBody(input): JsonBody<DeviceInput>,
) -> Result<Response, ApiError> {
    let device = resources
        .add_device(&scope(&caller), &order_id, input)
        .await?;
    let location = format!("/api/v1/devices/{}", device.id);
    Ok(created(&location, &serde_json::json!({ "device": device })))
}

/// Get a device.
#[utoipa::path(get, path = "/devices/{id}", tag = "Devices", operation_id = "getDevice",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 200, description = "The device", body = DeviceEnvelope)))]
async fn show(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<DeviceEnvelope>, ApiError> {
    let device = resources.get_device(&scope(&caller), &id).await?;
    Ok(Json(DeviceEnvelope { device }))
}

/// Update a device (JSON merge patch).
#[utoipa::path(patch, path = "/devices/{id}", tag = "Devices", operation_id = "updateDevice",
    params(("id" = String, Path, description = "Device id")),
    request_body(content = DeviceInput, content_type = "application/merge-patch+json", example = json!({"status": "repaired"})),
    responses((status = 200, description = "The updated device", body = DeviceEnvelope)))]
async fn update(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
    JsonBody(patch): JsonBody<DeviceInput>,
) -> Result<Json<DeviceEnvelope>, ApiError> {
    let device = resources.update_device(&scope(&caller), &id, patch).await?;
    Ok(Json(DeviceEnvelope { device }))
}

/// Delete a device.
#[utoipa::path(delete, path = "/devices/{id}", tag = "Devices", operation_id = "deleteDevice",
    params(("id" = String, Path, description = "Device id")),
    responses((status = 204, description = "Deleted")))]
async fn delete(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    resources.delete_device(&scope(&caller), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    use super::*;

    fn properties<T: utoipa::ToSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            _ => panic!("{} is not an object schema", T::name()),
        }
    }

    #[test]
    fn a_client_device_body_is_a_device_body_and_client_id() {
        let mut expected = properties::<DeviceInput>();
        expected.insert("client_id".into());
        assert_eq!(properties::<ClientDeviceInput>(), expected);
    }
}
