//! `/healthz` (the process answers) and `/readyz` (its database does too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(core): State<AppState>) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    core.store
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e.to_string()))?;
    Ok((StatusCode::OK, Json(serde_json::json!({"status": "ready", "database": "ok"}))))
}
