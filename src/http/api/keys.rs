//! `/api/v1/keys…` and `/api/v1/key-templates`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::sync::Arc;

use super::Id;
use crate::app::AppState;
use crate::domain::key::{KeyRecord, KeyStatus};
use crate::domain::permission::TEMPLATES;
use crate::domain::token::Environment;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::{JsonBody, OptionalJson, RawQuery};
use crate::service::keys::{
    Created, KeyService, KeyUpdateInput, KeyView, NewKeyInput, PauseInput, PermissionName, Skipped,
    Suggestions,
};
use crate::store::usage::KeyUsage;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(revoke))
        .routes(routes!(clone))
        .routes(routes!(roll))
        .routes(routes!(upgrade))
        .routes(routes!(templates))
        .routes(routes!(usage))
        .routes(routes!(suggestions))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// One `{"key": …}` answer.
#[derive(Serialize, ToSchema)]
pub struct KeyEnvelope<'a> {
    pub key: KeyView<'a>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList<'a> {
    pub keys: Vec<KeyView<'a>>,
    pub meta: super::paging::Meta,
}

#[derive(Serialize, ToSchema)]
pub struct TemplateList {
    #[schema(value_type = Vec<TemplateSchema>)]
    pub templates: &'static [crate::domain::permission::Template],
}

/// A prebuilt key.
#[derive(ToSchema)]
#[schema(as = Template)]
#[allow(dead_code, reason = "describes Template's JSON for the document")]
pub struct TemplateSchema {
    #[schema(example = "zapier")]
    id: String,
    #[schema(example = "Zapier")]
    name: String,
    description: String,
    permissions: Vec<PermissionName>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyListParams {
    /// Page number, from 1.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 25).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
    /// Only keys of this environment (a key sees only its own).
    #[param(value_type = Option<Environment>)]
    pub environment: Option<String>,
    /// Only keys with this status.
    #[param(value_type = Option<KeyStatus>)]
    pub status: Option<String>,
}

async fn one(keys: &KeyService, key: &KeyRecord) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "key": keys.view_json(key).await? }),
    ))
}

fn created(keys: &KeyService, c: &Created) -> impl IntoResponse + use<> {
    let body = serde_json::json!({ "key": keys.view(&c.key, Some(&c.secret)) });
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/keys/{}", c.key.id))],
        Json(body),
    )
}

/// List keys.
#[utoipa::path(get, path = "/keys", tag = "Keys", operation_id = "listKeys",
    params(KeyListParams),
    responses((status = 200, description = "A page of keys (newest first)", body = KeyList)))]
async fn list(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    query: RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = query.page()?;
    let environment: Option<Environment> = query.parse_opt("environment")?;
    let status: Option<KeyStatus> = query.parse_opt("status")?;
    let paged = keys
        .list(&caller.principal(), environment, status, page)
        .await?;
    let views = keys.views(&paged.items).await?;
    Ok(Json(
        serde_json::json!({ "keys": views, "meta": super::paging::Meta::of(page, paged.total) }),
    ))
}

/// Create a key.
///
/// From a `template` or a list of `permissions` (never more than the calling
/// key holds). The answer carries `secret`, the full key: the only time it is shown.
#[utoipa::path(post, path = "/keys", tag = "Keys", operation_id = "createKey",
    request_body(content = NewKeyInput, example = json!({"name": "Zapier – new orders", "template": "zapier", "allowed_ips": ["203.0.113.0/24"]})),
    responses((status = 201, description = "Created; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL"))),
        (status = 409, description = "`conflict`: the shop holds the most keys it may", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn create(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    JsonBody(input): JsonBody<NewKeyInput>,
) -> Result<impl IntoResponse, ApiError> {
    let new = keys.validate_new(input, caller.key.environment)?;
    let c = keys.create_key(&caller.principal(), new).await?;
    Ok(created(&keys, &c))
}

/// Get a key.
#[utoipa::path(get, path = "/keys/{id}", tag = "Keys", operation_id = "getKey",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key", body = KeyEnvelope)))]
async fn show(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = keys.get(&caller.principal(), &id).await?;
    one(&keys, &key).await
}

/// Update a key's name, allowed IPs, expiry, rate limit or permissions.
#[utoipa::path(patch, path = "/keys/{id}", tag = "Keys", operation_id = "updateKey",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = KeyUpdateInput, content_type = "application/merge-patch+json", example = json!({"name": "Zapier – orders", "expires_at": null})),
    responses((status = 200, description = "The updated key", body = KeyEnvelope),
        (status = 409, description = "`conflict`: the key is revoked", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn update(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
    JsonBody(input): JsonBody<KeyUpdateInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let update = keys.validate_update(input)?;
    let key = keys.update_key(&caller.principal(), &id, update).await?;
    one(&keys, &key).await
}

/// Delete a key for good.
#[utoipa::path(delete, path = "/keys/{id}", tag = "Keys", operation_id = "deleteKey",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Deleted")))]
async fn delete(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    keys.delete_key(&caller.principal(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a key: it stops working at once. Revoking twice changes nothing.
#[utoipa::path(post, path = "/keys/{id}/revoke", tag = "Keys", operation_id = "revokeKey",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The revoked key", body = KeyEnvelope)))]
async fn revoke(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = keys.revoke_key(&caller.principal(), &id, false).await?;
    one(&keys, &key).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CloneInput {
    /// The copy's name (default: "<name> (copy)").
    name: Option<String>,
}

/// Clone a key: a new key with the same settings and a new name.
#[utoipa::path(post, path = "/keys/{id}/clone", tag = "Keys", operation_id = "cloneKey",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<CloneInput>, example = json!({"name": "Zapier – second account"})),
    responses((status = 201, description = "Created; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL")))))]
async fn clone(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
    OptionalJson(input): OptionalJson<CloneInput>,
) -> Result<impl IntoResponse, ApiError> {
    let name = input.and_then(|i| i.name);
    let c = keys.clone_key(&caller.principal(), &id, name).await?;
    Ok(created(&keys, &c))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RollInput {
    /// How long the old key keeps working, 0–604800 seconds (7 days);
    /// default 0: the old key expires at once.
    #[schema(minimum = 0, maximum = 604800, example = 86400)]
    expire_old_in_seconds: Option<i64>,
}

/// Roll a key: a replacement with the same name, permissions, allowed IPs,
/// rate limit and environment. The old key keeps working for
/// `expire_old_in_seconds` (default 0), then fails with `expired_key`. A key
/// is rolled once; rolling it again is 409.
#[utoipa::path(post, path = "/keys/{id}/roll", tag = "Keys", operation_id = "rollKey",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<RollInput>, example = json!({"expire_old_in_seconds": 86400})),
    responses((status = 201, description = "The replacement; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL"))),
        (status = 409, description = "`conflict`: the key was already rolled, is not active, or is a legacy key", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn roll(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
    OptionalJson(input): OptionalJson<RollInput>,
) -> Result<impl IntoResponse, ApiError> {
    let grace = input.and_then(|i| i.expire_old_in_seconds).unwrap_or(0);
    let (c, _old) = keys.roll_key(&caller.principal(), &id, grace).await?;
    Ok(created(&keys, &c))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpgradeInput {
    /// Retire the legacy key now instead of at the cut-off (default false).
    retire_legacy: Option<bool>,
    /// Give the new key only the permissions of the endpoints the legacy key
    /// actually called (default false). When it called none that need one,
    /// its permissions are kept whole and the answer carries a warning.
    narrow_to_used: Option<bool>,
}

/// Upgrade a legacy key: a new standard live key with its name, permissions
/// and allowed IPs. The legacy key keeps working until the cut-off unless
/// `retire_legacy`. 409 for a key that is not legacy.
#[utoipa::path(post, path = "/keys/{id}/upgrade", tag = "Keys", operation_id = "upgradeKey",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<UpgradeInput>, example = json!({"retire_legacy": false, "narrow_to_used": true})),
    responses((status = 201, description = "The new key; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL"))),
        (status = 409, description = "`conflict`: the key is not a legacy key, is revoked, or was already upgraded", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn upgrade(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
    OptionalJson(input): OptionalJson<UpgradeInput>,
) -> Result<impl IntoResponse, ApiError> {
    let (retire, narrow) = input.map_or((false, false), |i| {
        (
            i.retire_legacy.unwrap_or(false),
            i.narrow_to_used.unwrap_or(false),
        )
    });
    let up = keys
        .upgrade_key(&caller.principal(), &id, retire, narrow)
        .await?;
    let mut view = serde_json::to_value(keys.view(&up.created.key, Some(&up.created.secret)))
        .unwrap_or_default();
    if let Some(warnings) = view.get_mut("warnings").and_then(|w| w.as_array_mut()) {
        for message in &up.warnings {
            warnings.push(serde_json::json!({"code": "not_narrowed", "message": message}));
        }
    }
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/v1/keys/{}", up.created.key.id),
        )],
        Json(serde_json::json!({ "key": view })),
    ))
}

/// List the prebuilt key templates.
#[utoipa::path(get, path = "/key-templates", tag = "Keys", operation_id = "listKeyTemplates",
    responses((status = 200, description = "The templates", body = TemplateList)))]
async fn templates(_: Caller) -> Json<TemplateList> {
    Json(TemplateList {
        templates: TEMPLATES,
    })
}

#[derive(Serialize, ToSchema)]
pub struct UsageEnvelope {
    pub usage: KeyUsage,
}

/// A key's usage: request counts, last use, endpoints, errors, series, and
/// requests refused before their handler, by reason. Figures include
/// requests up to 2 seconds old.
#[utoipa::path(get, path = "/keys/{id}/usage", tag = "Keys", operation_id = "getKeyUsage",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key's usage", body = UsageEnvelope)))]
async fn usage(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<UsageEnvelope>, ApiError> {
    let usage = keys.usage(&caller.principal(), &id).await?;
    Ok(Json(UsageEnvelope { usage }))
}

/// Least-privilege suggestions for a key.
///
/// From the key's requests since it was created, at most the last 30 days:
/// permissions it never needed (`unused_permissions`), the few addresses it
/// was used from when it has no allow-list (`restrict_ips`), whether it is
/// unused (`unused_key`), and whether it lacks an expiry (`add_expiry`).
/// Apply them with `PATCH /keys/{id}`.
#[utoipa::path(get, path = "/keys/{id}/suggestions", tag = "Keys", operation_id = "getKeySuggestions",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key's suggestions", body = Suggestions)))]
async fn suggestions(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Suggestions>, ApiError> {
    Ok(Json(keys.suggestions(&caller.principal(), &id).await?))
}

/// What `POST /keys/pause` did.
#[derive(Serialize, ToSchema)]
pub struct Paused {
    /// The ids of the keys paused now.
    pub paused: Vec<String>,
    /// Keys left alone, each with the reason.
    pub skipped: Vec<Skipped>,
}

/// What `POST /keys/resume` did.
#[derive(Serialize, ToSchema)]
pub struct Resumed {
    /// The ids of the keys resumed now.
    pub resumed: Vec<String>,
    /// Keys left alone, each with the reason.
    pub skipped: Vec<Skipped>,
}

/// Pause an integration's keys.
///
/// Every key made from a `template`, or the keys in `key_ids` (exactly one
/// of the two). Requests with a paused key get 403 `key_paused`
/// naming when and why, on every instance within a second, until it is
/// resumed. Keys the calling key may not act on are skipped, never changed;
/// ids it cannot see are skipped as `not_found`.
#[utoipa::path(post, path = "/keys/pause", tag = "Keys", operation_id = "pauseKeys",
    request_body(content = PauseInput, example = json!({"template": "zapier", "reason": "Zapier security incident"})),
    responses((status = 200, description = "The keys paused and those skipped", body = Paused)))]
async fn pause(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    JsonBody(input): JsonBody<PauseInput>,
) -> Result<Json<Paused>, ApiError> {
    let request = input.validate().map_err(ApiError::validation)?;
    let done = keys.pause_keys(&caller.principal(), &request).await?;
    Ok(Json(Paused {
        paused: done.changed,
        skipped: done.skipped,
    }))
}

/// Resume paused keys.
///
/// Every paused key made from a `template`, or the keys in `key_ids`
/// (exactly one of the two). They work again at once.
#[utoipa::path(post, path = "/keys/resume", tag = "Keys", operation_id = "resumeKeys",
    request_body(content = PauseInput, example = json!({"template": "zapier"})),
    responses((status = 200, description = "The keys resumed and those skipped", body = Resumed)))]
async fn resume(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
    JsonBody(input): JsonBody<PauseInput>,
) -> Result<Json<Resumed>, ApiError> {
    let request = input.validate().map_err(ApiError::validation)?;
    let done = keys.resume_keys(&caller.principal(), &request).await?;
    Ok(Json(Resumed {
        resumed: done.changed,
        skipped: done.skipped,
    }))
}
