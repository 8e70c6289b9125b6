//! `POST /secret-scanning/reports`: leaked-key reports from secret scanners.
//! Outside the keyed API: no key, no `WWW-Authenticate`, and not counted by
//! the failed-attempt limiter (the signature is the authentication).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::app::AppState;
use crate::http::auth::ClientIp;
use crate::http::error::{ApiError, FieldError};
use crate::http::json::MAX_BODY;
use crate::service::leaks::{LeakService, ReportError, ReportedToken};

pub const PATH: &str = "/secret-scanning/reports";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(report))
}

fn invalid_signature(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "Invalid signature",
        detail,
    )
}

async fn report(
    State(leaks): State<Arc<LeakService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !leaks.enabled() {
        return ApiError::not_found().into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                format!("Request bodies are limited to {MAX_BODY} bytes (1 MiB)."),
            )
            .into_response();
        }
        Err(r) => {
            return ApiError::bad_request(format!("The request body could not be read: {r}"))
                .into_response();
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = leaks.verify(
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
        &body,
    ) {
        return match e {
            ReportError::Disabled => ApiError::not_found().into_response(),
            ReportError::BadSignature(detail) => invalid_signature(detail).into_response(),
        };
    }
    let tokens: Vec<ReportedToken> = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return ApiError::bad_request("The body is not JSON.").into_response();
        }
        Err(_) => {
            return ApiError::validation(vec![FieldError::new(
                "body",
                "must be a JSON array of {\"token\", \"type\", \"url\", \"source\"} with `token` a string",
            )])
            .into_response();
        }
    };
    match leaks.report(tokens, Some(ip.to_string())).await {
        Ok(labels) => axum::Json(labels).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
