//! What the resource endpoints share: the caller's data scope, the 201
//! answer, and `Idempotency-Key` handling for creates. Paging is in
//! [`super::paging`].

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::app::Core;
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::store::resources::{Idempotency, Scope};

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

/// Runs a create under `Idempotency-Key`, if the request has one: the first
/// request runs `create` and its answer is kept 24 hours; the same key with
/// the same request replays that answer; with a different request it is 409.
/// `create` returns the new resource's location and body.
pub async fn idempotent<F, Fut>(
    core: &Core,
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
    let Some(raw) = headers.get("idempotency-key") else {
        let (location, json) = create().await?;
        return Ok(created(&location, &json));
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "`Idempotency-Key` must be 1–255 visible ASCII characters (a UUID is ideal).",
            )
        })?;
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let fingerprint: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match core
        .store
        .begin_idempotent(scope, key, &fingerprint, core.clock.now())
        .await?
    {
        Idempotency::New => match create().await {
            Ok((location, json)) => {
                let text = json.to_string();
                if let Err(e) = core
                    .store
                    .finish_idempotent(scope, key, 201, &text, Some(&location))
                    .await
                {
                    tracing::warn!(error = %e, "could not store the idempotent answer");
                }
                Ok(created(&location, &json))
            }
            Err(e) => {
                if let Err(e) = core.store.abandon_idempotent(scope, key).await {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
                Err(e)
            }
        },
        Idempotency::Replay {
            status,
            body,
            resource_path,
        } => {
            let mut response = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            if let Some(loc) = resource_path.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert(header::LOCATION, loc);
            }
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        Idempotency::Mismatch => Err(ApiError::conflict(
            "This Idempotency-Key was already used for a different request. Use a new key for a new request.",
        )),
        Idempotency::InProgress => Err(ApiError::conflict(
            "A request with this Idempotency-Key is still being processed. Retry in a moment.",
        )),
    }
}
