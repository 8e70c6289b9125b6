//! `/api/v1/keys…` and `/api/v1/key-templates`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Id;
use crate::app::{AppState, Core};
use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyKind, KeyRecord, KeyStatus, Warning};
use crate::domain::net::AllowedIps;
use crate::domain::permission::{PermissionSet, TEMPLATES};
use crate::domain::token::{Environment, PlainKey};
use crate::error::ApiError;
use crate::http::auth::{need, Authorized};
use crate::http::json::{meta, JsonBody, OptionalJson, RawQuery};
use crate::keys::{Created, KeyUpdateInput, NewKeyInput};
use crate::store::KeyFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list).post(create))
        .route("/keys/{id}", get(show).patch(update).delete(delete))
        .route("/keys/{id}/revoke", post(revoke))
        .route("/keys/{id}/clone", post(clone))
        .route("/key-templates", get(templates))
}

/// The key object of SPEC. `secret` appears only in create and clone answers.
#[derive(Serialize)]
pub struct KeyView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub environment: Environment,
    pub kind: KeyKind,
    pub display: &'a str,
    pub permissions: PermissionSet,
    pub allowed_ips: &'a AllowedIps,
    pub rate_limit_per_minute: u32,
    pub expires_at: Option<Timestamp>,
    pub status: KeyStatus,
    pub template: Option<&'a str>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: &'a Actor,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub requests_24h: u64,
    pub revoked_at: Option<Timestamp>,
    pub warnings: Vec<Warning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'a str>,
}

impl<'a> KeyView<'a> {
    pub fn new(core: &Core, key: &'a KeyRecord, secret: Option<&'a PlainKey>) -> Self {
        let now = core.clock.now();
        let sunset = core.policy.legacy_sunset;
        KeyView {
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
            // Usage figures arrive with usage monitoring; until a key is used
            // they are exactly these.
            last_used_at: None,
            last_used_ip: None,
            requests_24h: 0,
            revoked_at: key.revoked_at,
            warnings: key.warnings(now, sunset),
            secret: secret.map(PlainKey::expose),
        }
    }
}

fn one(core: &Core, key: &KeyRecord) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "key": KeyView::new(core, key, None) }))
}

fn created(core: &Core, c: &Created) -> impl IntoResponse + use<> {
    let body = serde_json::json!({ "key": KeyView::new(core, &c.key, Some(&c.secret)) });
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/keys/{}", c.key.id))],
        Json(body),
    )
}

async fn list(
    State(core): State<AppState>,
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
        crate::store::Paged { items: Vec::new(), total: 0 }
    } else {
        core.store.list_keys(&caller.key.shop_id, &filter, page).await?
    };
    let keys: Vec<KeyView> = paged.items.iter().map(|k| KeyView::new(&core, k, None)).collect();
    Ok(Json(serde_json::json!({ "keys": keys, "meta": meta(page, paged.total) })))
}

async fn create(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    JsonBody(input): JsonBody<NewKeyInput>,
) -> Result<impl IntoResponse, ApiError> {
    let new = input
        .validate(core.clock.now(), caller.key.environment, core.policy.default_rate_limit)
        .map_err(ApiError::validation)?;
    let c = core.create_key(&caller.principal(), new).await?;
    Ok(created(&core, &c))
}

async fn show(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysRead>,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = core.visible_key(&caller.principal(), &id).await?;
    Ok(one(&core, &key))
}

async fn update(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
    JsonBody(input): JsonBody<KeyUpdateInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let update = input.validate(core.clock.now()).map_err(ApiError::validation)?;
    let key = core.update_key(&caller.principal(), &id, update).await?;
    Ok(one(&core, &key))
}

async fn delete(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    core.delete_key(&caller.principal(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = core.revoke_key(&caller.principal(), &id, false).await?;
    Ok(one(&core, &key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloneInput {
    name: Option<String>,
}

async fn clone(
    State(core): State<AppState>,
    Authorized(caller, ..): Authorized<need::KeysWrite>,
    Id(id): Id,
    OptionalJson(input): OptionalJson<CloneInput>,
) -> Result<impl IntoResponse, ApiError> {
    let name = input.and_then(|i| i.name);
    let c = core.clone_key(&caller.principal(), &id, name).await?;
    Ok(created(&core, &c))
}

async fn templates(_: Authorized<need::KeysRead>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "templates": TEMPLATES }))
}
