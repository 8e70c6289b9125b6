//! `/healthz` (the process answers) and `/readyz` (its database does too).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "Service", operation_id = "healthz",
    responses((status = 200, description = "Up", body = serde_json::Value, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The process and its database answer.
#[utoipa::path(get, path = "/readyz", tag = "Service", operation_id = "readyz",
    responses((status = 200, description = "Ready", body = serde_json::Value, example = json!({"status": "ready", "database": "ok"})),
        (status = 503, description = "`unavailable`: the database is not answering", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn readyz(
    State(shops): State<std::sync::Arc<crate::service::shops::ShopService>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    shops
        .database_ready()
        .await
        .map_err(|e| ApiError::unavailable(&e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"status": "ready", "database": "ok"})),
    ))
}
