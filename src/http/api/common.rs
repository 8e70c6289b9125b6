//! What the resource endpoints share: list parameters and envelopes, the
//! caller's data scope, and `Idempotency-Key` handling for creates.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::app::Core;
use crate::domain::clock::Timestamp;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, FieldError};
use crate::store::PageRequest;
use crate::store::resources::{Cursor, Idempotency, ListQuery, Scope, Sort};

/// The caller's shop and environment: all the data it may see.
pub fn scope(caller: &Caller) -> Scope {
    Scope {
        shop_id: caller.key.shop_id.clone(),
        environment: caller.key.environment,
    }
}

/// Paging, sorting and sync parameters of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number, from 1.
    #[param(value_type = Option<u32>, minimum = 1, example = 1)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, example = 25)]
    pub per_page: Option<String>,
    /// `-created_at` (default, newest first), `created_at`, `updated_at`
    /// (oldest change first; use with `after` for sync) or `-updated_at`.
    #[param(value_type = Option<SortParam>)]
    pub sort: Option<String>,
    /// Only items changed at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-23T09:00:00Z")]
    pub updated_since: Option<String>,
    /// Continue a `sort=updated_at` listing after `meta.next_cursor`.
    #[param(value_type = Option<String>)]
    pub after: Option<String>,
}

/// The `sort` values.
#[derive(ToSchema)]
#[schema(as = SortParam)]
#[allow(dead_code, reason = "only describes the parameter's values")]
pub enum SortParam {
    #[schema(rename = "-created_at")]
    CreatedDesc,
    #[schema(rename = "created_at")]
    CreatedAsc,
    #[schema(rename = "updated_at")]
    UpdatedAsc,
    #[schema(rename = "-updated_at")]
    UpdatedDesc,
}

/// `meta` of every list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub page: u32,
    pub per_page: u32,
    pub total_pages: u64,
    pub total_entries: u64,
    /// With `sort=updated_at`: pass as `after` to continue from the last item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn encode_cursor(c: &Cursor) -> String {
    format!("{}.{}", c.updated_at.as_micros(), c.id)
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    let (micros, id) = s.split_once('.')?;
    let micros: i64 = micros.parse().ok()?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    Some(Cursor {
        updated_at: Timestamp::from_micros(micros),
        id: id.to_owned(),
    })
}

impl ListParams {
    /// Not a number or not a known value is 400; a number out of range 422.
    pub fn parse(&self) -> Result<ListQuery, ApiError> {
        let number = |name: &str, v: &Option<String>, default: u32| -> Result<u32, ApiError> {
            match v.as_deref() {
                None | Some("") => Ok(default),
                Some(v) => v.parse::<u32>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "`{name}` must be a positive whole number (got `{v}`)."
                    ))
                }),
            }
        };
        let page = number("page", &self.page, 1)?;
        let per_page = number("per_page", &self.per_page, 25)?;
        let mut errors = Vec::new();
        if page < 1 {
            errors.push(FieldError::new("page", "pages start at 1"));
        }
        if !(1..=100).contains(&per_page) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be between 1 and 100 (got {per_page})"),
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let sort = match self.sort.as_deref() {
            None | Some("") => Sort::CreatedDesc,
            Some(s) => Sort::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`sort` must be -created_at, created_at, updated_at or -updated_at (got `{s}`)."
                ))
            })?,
        };
        let updated_since = match self.updated_since.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                Timestamp::parse_rfc3339(s)
                    .map_err(|m| ApiError::bad_request(format!("`updated_since`: {m}")))?,
            ),
        };
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(s) => {
                if sort != Sort::UpdatedAsc {
                    return Err(ApiError::bad_request(
                        "`after` continues a `sort=updated_at` listing; add `sort=updated_at`.",
                    ));
                }
                Some(decode_cursor(s).ok_or_else(|| {
                    ApiError::bad_request("`after` is not a cursor from `meta.next_cursor`.")
                })?)
            }
        };
        Ok(ListQuery {
            page: PageRequest { page, per_page },
            sort,
            updated_since,
            after,
        })
    }
}

/// The `meta` for a page of `items`, with a cursor for `updated_at` listings.
pub fn meta<T>(
    query: &ListQuery,
    total: u64,
    items: &[T],
    position: impl Fn(&T) -> Cursor,
) -> Meta {
    let per = u64::from(query.page.per_page);
    let next_cursor = (query.sort == Sort::UpdatedAsc)
        .then(|| items.last().map(|i| encode_cursor(&position(i))))
        .flatten();
    Meta {
        page: query.page.page,
        per_page: query.page.per_page,
        total_pages: total.div_ceil(per),
        total_entries: total,
        next_cursor,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            updated_at: Timestamp::from_micros(1_700_000_000_123_456),
            id: "ord_abc".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for junk in ["", "x", "1.", ".ord", "a.ord", "1.ord abc", "1.ord'"] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }
}
