//! `/api/v1/audit-events`: who did what to which key, when, from where.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::{need, Authorized};
use crate::http::json::{meta, RawQuery};
use crate::store::AuditFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit-events", get(list))
}

async fn list(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysRead>,
    query: RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = query.page()?;
    let filter = AuditFilter {
        // A key sees the events of its own environment's keys only.
        environment: Some(caller.key.environment),
        key_id: query.get("key_id").filter(|s| !s.is_empty()).map(str::to_owned),
        action: query.get("action").filter(|s| !s.is_empty()).map(str::to_owned),
    };
    let paged = core.store.list_audit_events(&caller.key.shop_id, &filter, page).await?;
    Ok(Json(serde_json::json!({
        "audit_events": paged.items,
        "meta": meta(page, paged.total),
    })))
}
