//! `/api/v1/me`: the calling key, and `/api/v1/me/revoke`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::sync::Arc;

use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::service::keys::{KeyIdentity, KeyService};
use crate::service::shops::ShopService;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(revoke_itself))
}

#[derive(Serialize, ToSchema)]
pub struct ShopRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse<'a> {
    /// The key without its usage figures (those are at
    /// `GET /api/v1/keys/{id}/usage`, for keys with `keys:read`).
    pub key: KeyIdentity<'a>,
    pub shop: Option<ShopRef<'a>>,
}

/// The calling key: id, name, environment, permissions, rate limit.
#[utoipa::path(get, path = "/me", tag = "Key", operation_id = "getMe",
    responses((status = 200, description = "The calling key and its shop", body = MeResponse)))]
async fn me(
    State(shops): State<Arc<ShopService>>,
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    // Answered from memory: the verified key and the (cached) shop. This is
    // the cheapest keyed request there is, for integrations checking their key.
    let shop = shops.get(&caller.key.shop_id).await?;
    Ok(Json(MeResponse {
        key: KeyIdentity::new(&caller.key, keys.now(), keys.policy().legacy_sunset),
        shop: shop.as_deref().map(|s| ShopRef {
            id: &s.id,
            name: &s.name,
        }),
    })
    .into_response())
}

/// Revoke the calling key.
///
/// For a key that leaked: it stops working at once, this call included.
/// Needs no permission beyond the key itself.
#[utoipa::path(post, path = "/me/revoke", tag = "Key", operation_id = "revokeMe",
    responses((status = 200, description = "The key, now revoked", body = super::keys::KeyEnvelope)))]
async fn revoke_itself(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = keys
        .revoke_key(&caller.principal(), &caller.key.id, true)
        .await?;
    Ok(Json(
        serde_json::json!({ "key": keys.view_json(&key).await? }),
    ))
}
