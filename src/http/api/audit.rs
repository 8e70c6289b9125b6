//! `/api/v1/audit-events`: who did what to which key, when, from where.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::RawQuery;
use crate::service::audit::AuditService;
use crate::store::AuditFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventList {
    pub audit_events: Vec<crate::store::AuditEvent>,
    pub meta: super::paging::Meta,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page number, from 1.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 25).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
    /// Only events about this key.
    pub key_id: Option<String>,
    /// Only this action, e.g. `key.revoked`.
    pub action: Option<String>,
}

/// List audit events, newest first.
#[utoipa::path(get, path = "/audit-events", tag = "Audit", operation_id = "listAuditEvents",
    params(AuditParams),
    responses((status = 200, description = "A page of audit events", body = AuditEventList)))]
async fn list(
    State(audit): State<Arc<AuditService>>,
    caller: Caller,
    query: RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = query.page()?;
    let filter = AuditFilter {
        // The service keeps a key to its own environment's events.
        environment: None,
        key_id: query
            .get("key_id")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        action: query
            .get("action")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    };
    let paged = audit.list(&caller.principal(), filter, page).await?;
    Ok(Json(serde_json::json!({
        "audit_events": paged.items,
        "meta": super::paging::Meta::of(page, paged.total),
    })))
}
