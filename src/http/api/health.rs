//! `/healthz` (the process answers) and `/readyz` (its database and Redis do too).

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

/// The process and its dependencies (the database, Redis) answer.
///
/// `redis` is reported when `--redis-url` is set. Redis down is 503 only with
/// `--redis-unavailable deny`; in `local` mode the instance serves with its
/// own limits, so it is ready.
#[utoipa::path(get, path = "/readyz", tag = "Service", operation_id = "readyz",
    responses((status = 200, description = "Ready. `redis` is `ok`, `not configured` (no `--redis-url`), or `unavailable` (Redis down, limits per instance under `--redis-unavailable local`)", body = serde_json::Value, example = json!({"status": "ready", "database": "ok", "redis": "ok"})),
        (status = 503, description = "`unavailable`: the database is not answering, or Redis is not answering under `--redis-unavailable deny`", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn readyz(
    State(shops): State<std::sync::Arc<crate::service::shops::ShopService>>,
    State(limits): State<std::sync::Arc<crate::limiter::Limits>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    shops
        .database_ready()
        .await
        .map_err(|e| ApiError::unavailable(&e.to_string()).with("database", "unavailable"))?;
    let redis = limits.redis_status().as_str();
    if !limits.ready() {
        return Err(ApiError::unavailable(
            "redis is not answering and --redis-unavailable is deny",
        )
        .with("database", "ok")
        .with("redis", redis));
    }
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"status": "ready", "database": "ok", "redis": redis})),
    ))
}
