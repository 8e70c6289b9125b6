//! `/api/v1/me`: the calling key, and `/api/v1/me/revoke`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::keys::KeyView;
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::{need, Authorized};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/me/revoke", post(revoke_itself))
}

async fn me(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::AnyKey>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let shop = core.store.get_shop(&caller.key.shop_id).await?;
    Ok(Json(serde_json::json!({
        "key": KeyView::new(&core, &caller.key, None),
        "shop": shop.map(|s| serde_json::json!({"id": s.id, "name": s.name})),
    })))
}

/// Any key may revoke itself, whatever its permissions: the first thing to do
/// with a key that leaked.
async fn revoke_itself(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::AnyKey>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = core.revoke_key(&caller.principal(), &caller.key.id, true).await?;
    Ok(Json(serde_json::json!({ "key": KeyView::new(&core, &key, None) })))
}
