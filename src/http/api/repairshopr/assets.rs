//! `/api/v1/customer_assets`: devices under RepairShopr's names
//! ([`ASSET_FIELDS`], `properties` by [`ASSET_PROPERTIES`]), by integer id.
//! No DELETE (RepairShopr offers none either).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::mapping::{
    ASSET_FIELDS, ASSET_PROPERTIES, Field, RsBody, RsId, RsMeta, list_query, map_in, map_out,
    native_input, rs_errors,
};
use super::{TAG, clients_by_id, customer_client_id, no_such_customer};
use crate::app::AppState;
use crate::domain::device::{Device, DeviceInput, DeviceType};
use crate::http::api::common::scope;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, FieldError};
use crate::http::json::RawQuery;
use crate::service::ServiceError;
use crate::service::resources::{ResourceService, Scope};
use crate::store::resources::{DeviceFilter, NumericKind};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update))
}

const TABLES: &[(&[Field], &str)] = &[(ASSET_FIELDS, ""), (ASSET_PROPERTIES, "properties.")];

/// The device types, as an asset shows them (`Phone`); input takes any case.
pub const ASSET_TYPES: &[(&str, DeviceType)] = &[
    ("Phone", DeviceType::Phone),
    ("Tablet", DeviceType::Tablet),
    ("Laptop", DeviceType::Laptop),
    ("Desktop", DeviceType::Desktop),
    ("Console", DeviceType::Console),
    ("Watch", DeviceType::Watch),
    ("Other", DeviceType::Other),
];

fn asset_type_names() -> String {
    ASSET_TYPES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An asset's `properties`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON `asset_json` makes")]
pub struct AssetProperties {
    /// 15 digits, Luhn-checked.
    #[schema(example = "490154203237518")]
    pub imei: Option<String>,
    /// The device's `brand`.
    #[schema(example = "Apple")]
    pub make: Option<String>,
    #[schema(example = "iPhone 13")]
    pub model: Option<String>,
    pub color: Option<String>,
}

/// A customer asset (a latchkey device), as RepairShopr names its fields.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON `asset_json` makes")]
pub struct CustomerAsset {
    /// The device's `numeric_id`.
    #[schema(example = 877)]
    pub id: i64,
    #[schema(example = "Sam's iPhone")]
    pub name: Option<String>,
    /// The `numeric_id` of the device's client.
    #[schema(example = 1042)]
    pub customer_id: Option<i64>,
    /// The device type: `Phone`, `Tablet`, `Laptop`, `Desktop`, `Console`,
    /// `Watch` or `Other`.
    #[schema(example = "Phone")]
    pub asset_type: String,
    /// The device's `serial`.
    pub asset_serial: Option<String>,
    pub properties: AssetProperties,
    #[schema(example = "2026-12-01T10:00:00.000000Z")]
    pub created_at: String,
    #[schema(example = "2026-12-01T10:00:00.000000Z")]
    pub updated_at: String,
}

/// A customer asset as sent (JSON, or form-encoded with
/// `properties[imei]=…`); unknown fields are ignored.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the body the handlers read")]
pub struct CustomerAssetInput {
    /// Required on create; an asset stays with its customer.
    #[schema(example = 1042)]
    pub customer_id: Option<i64>,
    #[schema(example = "Sam's iPhone")]
    pub name: Option<String>,
    /// Required on create; any case (`Phone`, `phone`).
    #[schema(example = "Phone")]
    pub asset_type: Option<String>,
    pub asset_serial: Option<String>,
    pub properties: Option<AssetProperties>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON the handlers make")]
pub struct CustomerAssetList {
    pub customer_assets: Vec<CustomerAsset>,
    pub meta: RsMeta,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the JSON the handlers make")]
pub struct CustomerAssetEnvelope {
    pub customer_asset: CustomerAsset,
}

/// Filters of the asset list (other parameters are ignored).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "describes the parameters `list` reads")]
pub struct CustomerAssetParams {
    /// 1-based; 25 assets a page, in id order.
    pub page: Option<u32>,
    /// Only assets changed at or after this time (ISO 8601).
    pub since_updated_at: Option<String>,
    /// Only this customer's assets (its own and those on its tickets).
    pub customer_id: Option<i64>,
}

/// A device as a RepairShopr customer asset; `customer` is its client's
/// integer id.
pub fn asset_json(d: &Device, customer: Option<i64>) -> Value {
    let native = serde_json::to_value(d).unwrap_or_default();
    let mut out = Map::new();
    out.insert("id".into(), json!(d.numeric_id));
    map_out(&native, ASSET_FIELDS, &mut out);
    out.insert("customer_id".into(), json!(customer));
    let asset_type = ASSET_TYPES
        .iter()
        .find(|(_, t)| *t == d.fields.device_type)
        .map_or("Other", |(n, _)| n);
    out.insert("asset_type".into(), json!(asset_type));
    let mut properties = Map::new();
    map_out(&native, ASSET_PROPERTIES, &mut properties);
    out.insert("properties".into(), Value::Object(properties));
    out.insert("created_at".into(), json!(d.created_at));
    out.insert("updated_at".into(), json!(d.updated_at));
    Value::Object(out)
}

/// The integer ids of the clients with these ids.
async fn customer_numbers(
    resources: &ResourceService,
    scope: &Scope,
    client_ids: impl Iterator<Item = &str>,
) -> Result<HashMap<String, i64>, ApiError> {
    Ok(clients_by_id(resources, scope, client_ids)
        .await?
        .into_iter()
        .map(|(id, c)| (id, c.numeric_id))
        .collect())
}

async fn one_asset(
    resources: &ResourceService,
    scope: &Scope,
    d: &Device,
) -> Result<Json<Value>, ApiError> {
    let numbers = customer_numbers(resources, scope, std::iter::once(d.client_id.as_str())).await?;
    Ok(Json(
        json!({ "customer_asset": asset_json(d, numbers.get(&d.client_id).copied()) }),
    ))
}

/// A body under RepairShopr's names as the native device input, and the
/// client id its `customer_id` names (if sent).
async fn device_input(
    resources: &ResourceService,
    scope: &Scope,
    body: RsBody,
) -> Result<(DeviceInput, Option<String>), ApiError> {
    let body = body.fields("customer_asset");
    let mut native = Map::new();
    let mut errors: Vec<FieldError> = Vec::new();
    map_in(&body, ASSET_FIELDS, "", &mut native, &mut errors);
    match body.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            map_in(p, ASSET_PROPERTIES, "properties.", &mut native, &mut errors)
        }
        Some(_) => errors.push(FieldError::new(
            "properties",
            "must be an object (`imei`, `make`, `model`, `color`)",
        )),
    }
    match body.get("asset_type") {
        None => {}
        Some(Value::String(t)) => match ASSET_TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t.trim()))
        {
            Some((_, ty)) => {
                native.insert("device_type".into(), json!(ty.as_str()));
            }
            None => errors.push(FieldError::new(
                "asset_type",
                format!(
                    "unknown asset type `{t}`: expected one of {}",
                    asset_type_names()
                ),
            )),
        },
        Some(_) => errors.push(FieldError::new(
            "asset_type",
            format!("must be text: one of {}", asset_type_names()),
        )),
    }
    let client_id = match body.get("customer_id") {
        None => None,
        Some(Value::Null) => {
            errors.push(FieldError::new("customer_id", "cannot be null"));
            None
        }
        Some(v) => match customer_client_id(resources, scope, v).await? {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                errors.push(no_such_customer());
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok((native_input(native, TABLES)?, client_id))
}

/// The device id of asset `n` in the caller's scope (404 if none).
async fn device_id(resources: &ResourceService, scope: &Scope, n: i64) -> Result<String, ApiError> {
    Ok(resources
        .id_for_number(scope, NumericKind::Device, n)
        .await?)
}

/// List customer assets.
#[utoipa::path(get, path = "/customer_assets", tag = TAG, operation_id = "rsListCustomerAssets",
    params(CustomerAssetParams),
    responses((status = 200, description = "A page of customer assets (25 a page, in id order)", body = CustomerAssetList)))]
async fn list(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    q: RawQuery,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let query = list_query(&q)?;
    let mut filter = DeviceFilter::default();
    if let Some(c) = super::mapping::param(&q, "customer_id") {
        match customer_client_id(&resources, &scope, &json!(c)).await? {
            Ok(Some(id)) => filter.client_id = Some(id),
            // No such customer: no assets.
            Ok(None) => {
                return Ok(Json(
                    json!({"customer_assets": [], "meta": RsMeta::of(&query, 0)}),
                ));
            }
            Err(e) => return Err(ApiError::validation(vec![e])),
        }
    }
    let paged = resources.list_devices(&scope, &filter, &query).await?;
    let numbers = customer_numbers(
        &resources,
        &scope,
        paged.items.iter().map(|d| d.client_id.as_str()),
    )
    .await?;
    let assets: Vec<Value> = paged
        .items
        .iter()
        .map(|d| asset_json(d, numbers.get(&d.client_id).copied()))
        .collect();
    Ok(Json(json!({
        "customer_assets": assets,
        "meta": RsMeta::of(&query, paged.total),
    })))
}

/// Create a customer asset (a device of the customer, without a ticket).
#[utoipa::path(post, path = "/customer_assets", tag = TAG, operation_id = "rsCreateCustomerAsset",
    request_body(content(
        (CustomerAssetInput = "application/json", example = json!({"customer_id": 1042, "name": "Sam's iPhone", "asset_type": "Phone", "asset_serial": "F2LXK0AAHG7F", "properties": {"imei": "490154203237518", "make": "Apple", "model": "iPhone 13"}})),
        (CustomerAssetInput = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The new customer asset", body = CustomerAssetEnvelope)))]
async fn create(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    body: RsBody,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let (input, client_id) = device_input(&resources, &scope, body).await?;
    let Some(client_id) = client_id else {
        return Err(ApiError::validation(vec![FieldError::new(
            "customer_id",
            "is required: the id of the asset's customer",
        )]));
    };
    let device = resources
        .add_client_device(&scope, &client_id, input)
        .await
        .map_err(|e| match e {
            // The customer was deleted between the check and the insert.
            ServiceError::NotFound => ApiError::validation(vec![no_such_customer()]),
            e => rs_errors(e, TABLES),
        })?;
    one_asset(&resources, &scope, &device).await
}

/// Get a customer asset.
#[utoipa::path(get, path = "/customer_assets/{id}", tag = TAG, operation_id = "rsGetCustomerAsset",
    params(("id" = i64, Path, description = "Asset id (the device's numeric_id)")),
    responses((status = 200, description = "The customer asset", body = CustomerAssetEnvelope)))]
async fn show(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let id = device_id(&resources, &scope, n).await?;
    let device = resources.get_device(&scope, &id).await?;
    one_asset(&resources, &scope, &device).await
}

/// Update a customer asset: the fields sent change, the others stay. An
/// asset stays with its customer (`customer_id`, if sent, must be its own).
#[utoipa::path(put, path = "/customer_assets/{id}", tag = TAG, operation_id = "rsUpdateCustomerAsset",
    params(("id" = i64, Path, description = "Asset id (the device's numeric_id)")),
    request_body(content(
        (CustomerAssetInput = "application/json", example = json!({"properties": {"color": "Blue"}})),
        (CustomerAssetInput = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, description = "The updated customer asset", body = CustomerAssetEnvelope)))]
async fn update(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    RsId(n): RsId,
    body: RsBody,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&caller);
    let id = device_id(&resources, &scope, n).await?;
    let (patch, client_id) = device_input(&resources, &scope, body).await?;
    if let Some(client_id) = client_id {
        let current = resources.get_device(&scope, &id).await?;
        if current.client_id != client_id {
            return Err(ApiError::validation(vec![FieldError::new(
                "customer_id",
                "an asset stays with its customer: it cannot be moved to another",
            )]));
        }
    }
    let device = resources
        .update_device(&scope, &id, patch)
        .await
        .map_err(|e| rs_errors(e, TABLES))?;
    one_asset(&resources, &scope, &device).await
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema_properties;
    use super::*;
    use crate::domain::clock::Timestamp;
    use crate::domain::device::{DeviceFields, DeviceStatus};

    #[test]
    fn the_documented_asset_is_the_one_answered() {
        let d = Device {
            id: "dev_x".into(),
            numeric_id: 4,
            order_id: None,
            client_id: "cli_x".into(),
            fields: DeviceFields {
                name: None,
                device_type: DeviceType::Watch,
                brand: Some("Apple".into()),
                model: None,
                serial: None,
                imei: None,
                color: None,
                condition: None,
                fault: None,
                status: DeviceStatus::Received,
            },
            created_at: Timestamp::from_unix_seconds(0),
            updated_at: Timestamp::from_unix_seconds(0),
        };
        let answered = asset_json(&d, Some(2));
        assert_eq!(
            schema_properties::<CustomerAsset>(),
            answered.as_object().unwrap().keys().cloned().collect()
        );
        assert_eq!(
            schema_properties::<AssetProperties>(),
            answered["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        );
        assert_eq!(
            (&answered["asset_type"], &answered["properties"]["make"]),
            (&json!("Watch"), &json!("Apple"))
        );
        for t in [
            DeviceType::Phone,
            DeviceType::Tablet,
            DeviceType::Laptop,
            DeviceType::Desktop,
            DeviceType::Console,
            DeviceType::Watch,
            DeviceType::Other,
        ] {
            assert!(ASSET_TYPES.iter().any(|(_, a)| *a == t), "{t:?} has a name");
        }
    }
}
