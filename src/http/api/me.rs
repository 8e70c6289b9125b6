//! `/api/v1/me`: the calling key, and `/api/v1/me/revoke`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::keys::view_json;
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::{Authorized, need};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(revoke_itself))
}

#[derive(Serialize, ToSchema)]
pub struct ShopRef {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse<'a> {
    pub key: super::keys::KeyView<'a>,
    pub shop: Option<ShopRef>,
}

/// The calling key: id, name, environment, permissions, rate limit.
#[utoipa::path(get, path = "/me", tag = "Key", operation_id = "getMe",
    security(("bearer" = [])),
    responses((status = 200, description = "The calling key and its shop", body = MeResponse)))]
async fn me(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::AnyKey>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let shop = core.store.get_shop(&caller.key.shop_id).await?;
    Ok(Json(serde_json::json!({
        "key": view_json(&core, &caller.key).await?,
        "shop": shop.map(|s| serde_json::json!({"id": s.id, "name": s.name})),
    })))
}

/// Revoke the calling key.
///
/// Any key may revoke itself, whatever its permissions: the first thing to do
/// with a key that leaked.
#[utoipa::path(post, path = "/me/revoke", tag = "Key", operation_id = "revokeMe",
    security(("bearer" = [])),
    responses((status = 200, description = "The key, now revoked", body = super::keys::KeyEnvelope)))]
async fn revoke_itself(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::AnyKey>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = core
        .revoke_key(&caller.principal(), &caller.key.id, true)
        .await?;
    Ok(Json(
        serde_json::json!({ "key": view_json(&core, &key).await? }),
    ))
}
