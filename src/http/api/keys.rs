//! `/api/v1/keys…` and `/api/v1/key-templates`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Id;
use crate::app::{AppState, Core};
use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyKind, KeyRecord, KeyStatus, Warning};
use crate::domain::net::AllowedIps;
use crate::domain::permission::{PermissionSet, TEMPLATES};
use crate::domain::token::{Environment, PlainKey};
use crate::error::ApiError;
use crate::http::auth::{Authorized, need};
use crate::http::json::{JsonBody, OptionalJson, RawQuery};
use crate::keys::{Created, KeyUpdateInput, NewKeyInput};
use crate::store::KeyFilter;
use crate::store::usage::{KeyUsage, UsageSummary};
use std::collections::HashMap;

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
}

/// What a key is: every field of the key object except its usage figures.
/// `GET /me` answers with this alone, from memory.
#[derive(Serialize, ToSchema)]
#[schema(as = KeyIdentity)]
pub struct KeyIdentity<'a> {
    #[schema(example = "key_YtLkX1OQhXrisuV1L0CV1zX5")]
    pub id: &'a str,
    #[schema(example = "Zapier")]
    pub name: &'a str,
    pub environment: Environment,
    pub kind: KeyKind,
    /// The truncated form, safe to show.
    #[schema(example = "lk_live_LPXM…UwJw")]
    pub display: &'a str,
    #[schema(value_type = Vec<PermissionName>)]
    pub permissions: PermissionSet,
    /// Addresses and CIDR ranges; empty allows any.
    #[schema(value_type = Vec<String>, example = json!(["203.0.113.7", "2001:db8::/32"]))]
    pub allowed_ips: &'a AllowedIps,
    pub rate_limit_per_minute: u32,
    pub expires_at: Option<Timestamp>,
    pub status: KeyStatus,
    pub template: Option<&'a str>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The user id, key id, or `cli` that created the key.
    #[schema(value_type = String, example = "cli")]
    pub created_by: &'a Actor,
    pub revoked_at: Option<Timestamp>,
    pub warnings: Vec<Warning>,
}

impl<'a> KeyIdentity<'a> {
    pub fn new(core: &Core, key: &'a KeyRecord) -> Self {
        let now = core.clock.now();
        let sunset = core.policy.legacy_sunset;
        KeyIdentity {
            id: &key.id,
            name: key.name.as_str(),
            environment: key.environment,
            kind: key.kind,
            display: &key.display,
            permissions: key.permissions,
            allowed_ips: &key.allowed_ips,
            rate_limit_per_minute: key.rate_limit_per_minute,
            expires_at: key.expires_at,
            status: key.status(now, sunset),
            template: key.template.as_deref(),
            created_at: key.created_at,
            updated_at: key.updated_at,
            created_by: &key.created_by,
            revoked_at: key.revoked_at,
            warnings: key.warnings(now, sunset),
        }
    }
}

/// An API key. `secret` appears only in create and clone answers.
#[derive(Serialize, ToSchema)]
#[schema(as = Key)]
pub struct KeyView<'a> {
    #[serde(flatten)]
    pub key: KeyIdentity<'a>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub requests_24h: u64,
    /// The full key: only in create and clone answers, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'a str>,
}

impl KeyView<'_> {
    /// Adds the key's usage figures (none yet: the defaults are exact).
    pub fn with_usage(mut self, summary: Option<&UsageSummary>) -> Self {
        if let Some(s) = summary {
            self.last_used_at = s.last_used_at;
            self.last_used_ip.clone_from(&s.last_used_ip);
            self.requests_24h = s.requests_24h;
        }
        self
    }
}

/// Usage summaries for `keys`, for their key objects.
pub async fn summaries(
    core: &Core,
    keys: &[&KeyRecord],
) -> Result<HashMap<String, UsageSummary>, ApiError> {
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    Ok(core.store.usage_summaries(&ids, core.clock.now()).await?)
}

/// The key object of one key, with its usage.
pub async fn view_json(core: &Core, key: &KeyRecord) -> Result<serde_json::Value, ApiError> {
    let usage = summaries(core, &[key]).await?;
    Ok(
        serde_json::to_value(KeyView::new(core, key, None).with_usage(usage.get(&key.id)))
            .unwrap_or_default(),
    )
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

/// A permission.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the permission names for the document")]
pub enum PermissionName {
    #[schema(rename = "orders:read")]
    OrdersRead,
    #[schema(rename = "orders:write")]
    OrdersWrite,
    #[schema(rename = "orders:delete")]
    OrdersDelete,
    #[schema(rename = "clients:read")]
    ClientsRead,
    #[schema(rename = "clients:write")]
    ClientsWrite,
    #[schema(rename = "clients:delete")]
    ClientsDelete,
    #[schema(rename = "devices:read")]
    DevicesRead,
    #[schema(rename = "devices:write")]
    DevicesWrite,
    #[schema(rename = "devices:delete")]
    DevicesDelete,
    #[schema(rename = "keys:read")]
    KeysRead,
    #[schema(rename = "keys:write")]
    KeysWrite,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyListParams {
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
    /// Only keys of this environment (a key sees only its own).
    #[param(value_type = Option<Environment>)]
    pub environment: Option<String>,
    /// Only keys with this status.
    #[param(value_type = Option<KeyStatus>)]
    pub status: Option<String>,
}

impl<'a> KeyView<'a> {
    pub fn new(core: &Core, key: &'a KeyRecord, secret: Option<&'a PlainKey>) -> Self {
        KeyView {
            key: KeyIdentity::new(core, key),
            // Filled from the usage store by `with_usage`.
            last_used_at: None,
            last_used_ip: None,
            requests_24h: 0,
            secret: secret.map(PlainKey::expose),
        }
    }
}

async fn one(core: &Core, key: &KeyRecord) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "key": view_json(core, key).await? }),
    ))
}

fn created(core: &Core, c: &Created) -> impl IntoResponse + use<> {
    let body = serde_json::json!({ "key": KeyView::new(core, &c.key, Some(&c.secret)) });
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/keys/{}", c.key.id))],
        Json(body),
    )
}

/// List keys.
#[utoipa::path(get, path = "/keys", tag = "Keys", operation_id = "listKeys",
    params(KeyListParams),
    security(("bearer" = ["keys:read"])),
    responses((status = 200, description = "A page of keys (newest first)", body = KeyList)))]
async fn list(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysRead>,
    query: RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = query.page()?;
    let requested: Option<Environment> = query.parse_opt("environment")?;
    let status: Option<KeyStatus> = query.parse_opt("status")?;
    let own = caller.key.environment;
    let filter = KeyFilter {
        environment: Some(own),
        status,
        now: core.clock.now(),
        legacy_sunset: core.policy.legacy_sunset,
    };
    // A key sees only its own environment's keys: asking for the other is an
    // empty list, not an error, so a generic client need not special-case it.
    let paged = if requested.is_some_and(|e| e != own) {
        crate::store::Paged {
            items: Vec::new(),
            total: 0,
        }
    } else {
        core.store
            .list_keys(&caller.key.shop_id, &filter, page)
            .await?
    };
    let usage = summaries(&core, &paged.items.iter().collect::<Vec<_>>()).await?;
    let keys: Vec<KeyView> = paged
        .items
        .iter()
        .map(|k| KeyView::new(&core, k, None).with_usage(usage.get(&k.id)))
        .collect();
    Ok(Json(
        serde_json::json!({ "keys": keys, "meta": super::paging::Meta::of(page, paged.total) }),
    ))
}

/// Create a key.
///
/// From a `template` or a list of `permissions` (never more than the calling
/// key holds). The answer carries `secret`, the full key: the only time it is shown.
#[utoipa::path(post, path = "/keys", tag = "Keys", operation_id = "createKey",
    request_body(content = NewKeyInput, example = json!({"name": "Zapier – new orders", "template": "zapier", "allowed_ips": ["203.0.113.0/24"]})),
    security(("bearer" = ["keys:write"])),
    responses((status = 201, description = "Created; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL"))),
        (status = 409, description = "`conflict`: the shop holds the most keys it may", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn create(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    JsonBody(input): JsonBody<NewKeyInput>,
) -> Result<impl IntoResponse, ApiError> {
    let new = input
        .validate(
            core.clock.now(),
            caller.key.environment,
            core.policy.default_rate_limit,
        )
        .map_err(ApiError::validation)?;
    let c = core.create_key(&caller.principal(), new).await?;
    Ok(created(&core, &c))
}

/// Get a key.
#[utoipa::path(get, path = "/keys/{id}", tag = "Keys", operation_id = "getKey",
    params(("id" = String, Path, description = "Key id")),
    security(("bearer" = ["keys:read"])),
    responses((status = 200, description = "The key", body = KeyEnvelope)))]
async fn show(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysRead>,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = core.visible_key(&caller.principal(), &id).await?;
    one(&core, &key).await
}

/// Update a key's name, allowed IPs, expiry, rate limit or permissions.
#[utoipa::path(patch, path = "/keys/{id}", tag = "Keys", operation_id = "updateKey",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = KeyUpdateInput, content_type = "application/merge-patch+json", example = json!({"name": "Zapier – orders", "expires_at": null})),
    security(("bearer" = ["keys:write"])),
    responses((status = 200, description = "The updated key", body = KeyEnvelope),
        (status = 409, description = "`conflict`: the key is revoked", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn update(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
    JsonBody(input): JsonBody<KeyUpdateInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let update = input
        .validate(core.clock.now())
        .map_err(ApiError::validation)?;
    let key = core.update_key(&caller.principal(), &id, update).await?;
    one(&core, &key).await
}

/// Delete a key for good.
#[utoipa::path(delete, path = "/keys/{id}", tag = "Keys", operation_id = "deleteKey",
    params(("id" = String, Path, description = "Key id")),
    security(("bearer" = ["keys:write"])),
    responses((status = 204, description = "Deleted")))]
async fn delete(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    core.delete_key(&caller.principal(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a key: it stops working at once. Revoking twice changes nothing.
#[utoipa::path(post, path = "/keys/{id}/revoke", tag = "Keys", operation_id = "revokeKey",
    params(("id" = String, Path, description = "Key id")),
    security(("bearer" = ["keys:write"])),
    responses((status = 200, description = "The revoked key", body = KeyEnvelope)))]
async fn revoke(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = core.revoke_key(&caller.principal(), &id, false).await?;
    one(&core, &key).await
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
    security(("bearer" = ["keys:write"])),
    responses((status = 201, description = "Created; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL")))))]
async fn clone(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
    OptionalJson(input): OptionalJson<CloneInput>,
) -> Result<impl IntoResponse, ApiError> {
    let name = input.and_then(|i| i.name);
    let c = core.clone_key(&caller.principal(), &id, name).await?;
    Ok(created(&core, &c))
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
    security(("bearer" = ["keys:write"])),
    responses((status = 201, description = "The replacement; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL"))),
        (status = 409, description = "`conflict`: the key was already rolled, is not active, or is a legacy key", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn roll(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
    OptionalJson(input): OptionalJson<RollInput>,
) -> Result<impl IntoResponse, ApiError> {
    let grace = input.and_then(|i| i.expire_old_in_seconds).unwrap_or(0);
    let (c, _old) = core.roll_key(&caller.principal(), &id, grace).await?;
    Ok(created(&core, &c))
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
/// `retire_legacy`. 422 for a key that is not legacy.
#[utoipa::path(post, path = "/keys/{id}/upgrade", tag = "Keys", operation_id = "upgradeKey",
    params(("id" = String, Path, description = "Key id")),
    request_body(content = Option<UpgradeInput>, example = json!({"retire_legacy": false, "narrow_to_used": true})),
    security(("bearer" = ["keys:write"])),
    responses((status = 201, description = "The new key; `secret` is shown this once", body = KeyEnvelope,
        headers(("Location" = String, description = "The new key's URL"))),
        (status = 409, description = "`conflict`: the legacy key is revoked", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn upgrade(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
    OptionalJson(input): OptionalJson<UpgradeInput>,
) -> Result<impl IntoResponse, ApiError> {
    let (retire, narrow) = input.map_or((false, false), |i| {
        (
            i.retire_legacy.unwrap_or(false),
            i.narrow_to_used.unwrap_or(false),
        )
    });
    let up = core
        .upgrade_key(&caller.principal(), &id, retire, narrow)
        .await?;
    let mut view = serde_json::to_value(KeyView::new(
        &core,
        &up.created.key,
        Some(&up.created.secret),
    ))
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
    security(("bearer" = ["keys:read"])),
    responses((status = 200, description = "The templates", body = TemplateList)))]
async fn templates(_: Authorized<need::KeysRead>) -> Json<TemplateList> {
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
    security(("bearer" = ["keys:read"])),
    responses((status = 200, description = "The key's usage", body = UsageEnvelope)))]
async fn usage(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::KeysRead>,
    Id(id): Id,
) -> Result<Json<UsageEnvelope>, ApiError> {
    let key = core.visible_key(&caller.principal(), &id).await?;
    let usage = core.store.key_usage(&key.id, core.clock.now()).await?;
    Ok(Json(UsageEnvelope { usage }))
}
