//! What the resource endpoints share: the caller's data scope, the 201
//! answer, and `Idempotency-Key` handling for creates. Paging is in
//! [`super::paging`].

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::service::idempotency::{
    Answer, IdempotencyKey, IdempotencyService, KeyedRequest, Outcome,
};
use crate::store::resources::Scope;

/// The caller's shop and environment: all the data it may see.
pub fn scope(caller: &Caller) -> Scope {
    Scope {
        shop_id: caller.key.shop_id.clone(),
        environment: caller.key.environment,
    }
}

/// A 201 answer with `Location`.
pub fn created(location: &str, body: &serde_json::Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location.to_owned())],
        axum::Json(body),
    )
        .into_response()
}

/// Runs a create under `Idempotency-Key` ([`IdempotencyService`]), if the
/// request has one; `route` is the route template (`/clients`). `create`
/// returns the new resource's location and body, answered as 201; a replay
/// answers what was answered then, marked `Idempotent-Replayed: true`.
pub async fn idempotent<F, Fut>(
    service: &IdempotencyService,
    scope: &Scope,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    create: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(String, serde_json::Value), ApiError>>,
{
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(raw) => Some(
            raw.to_str()
                .ok()
                .and_then(IdempotencyKey::parse)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "`Idempotency-Key` must be 1–255 visible ASCII characters (a UUID is ideal).",
                    )
                })?,
        ),
    };
    let request = key.as_ref().map(|key| KeyedRequest {
        key,
        method: "POST",
        route,
        body,
    });
    let outcome = service
        .run(scope, request, || async {
            let (location, json) = create().await?;
            Ok::<_, ApiError>(Answer {
                status: StatusCode::CREATED.as_u16(),
                body: json.to_string(),
                location: Some(location),
            })
        })
        .await?;
    let (answer, replayed) = match outcome {
        Outcome::Ran(answer) => (answer, false),
        Outcome::Replayed(answer) => (answer, true),
    };
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
