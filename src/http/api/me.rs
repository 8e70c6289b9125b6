//! `/api/v1/me`: the calling key, and `/api/v1/me/revoke`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};

use crate::app::AppState;
use crate::domain::clock::Timestamp;
use crate::domain::key::KeyRecord;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::service::keys::{KeyIdentity, KeyService};
use crate::service::shops::ShopService;
use crate::store::Shop;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(revoke_itself))
}

#[derive(Serialize, ToSchema)]
pub struct ShopRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse<'a> {
    /// The key without its usage figures (those are at
    /// `GET /api/v1/keys/{id}/usage`, for keys with `keys:read`).
    pub key: KeyIdentity<'a>,
    pub shop: Option<ShopRef<'a>>,
}

/// Recently served `/me` bodies, so an integration that checks its key
/// often is not answered by serialising the same JSON again.
///
/// A fixed table of slots indexed by a hash of the key id, so its memory is
/// bounded (about 0.7 kB a slot) however many keys are in use: a key whose
/// slot another key took is serialised again, and takes it back. A body is
/// reused only for the same key record and shop record (every change to
/// either replaces the cached record, so a changed key or a renamed shop is
/// never answered from here) and for at most a second, since a key's
/// warnings depend on the time (a cut-off coming close, say).
pub struct MeBodies {
    slots: Box<[Mutex<Option<MeBody>>]>,
    hasher: foldhash::fast::RandomState,
}

struct MeBody {
    key: Arc<KeyRecord>,
    shop: Option<Arc<Shop>>,
    made_at: Timestamp,
    body: Bytes,
}

/// Slots in [`MeBodies`]: about 3 MB when all are full.
const ME_SLOTS: usize = 4096;

/// How long a body is reused, in the clock's seconds.
const ME_BODY_SECONDS: i64 = 1;

impl Default for MeBodies {
    fn default() -> Self {
        MeBodies {
            slots: (0..ME_SLOTS).map(|_| Mutex::new(None)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl MeBodies {
    fn slot(&self, key_id: &str) -> std::sync::MutexGuard<'_, Option<MeBody>> {
        let i = self.hasher.hash_one(key_id) as usize % self.slots.len();
        // A poisoned slot holds at worst a stale body that the checks refuse.
        self.slots[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The body for `key` and `shop` at `now`: reused, or made and kept.
    fn get_or_make(
        &self,
        key: &Arc<KeyRecord>,
        shop: Option<&Arc<Shop>>,
        now: Timestamp,
        make: impl FnOnce() -> Result<Vec<u8>, ApiError>,
    ) -> Result<Bytes, ApiError> {
        if let Some(kept) = &*self.slot(&key.id)
            && Arc::ptr_eq(&kept.key, key)
            && match (&kept.shop, shop) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
            && kept.made_at <= now
            && now < kept.made_at.plus_seconds(ME_BODY_SECONDS)
        {
            return Ok(kept.body.clone());
        }
        let body = Bytes::from(make()?);
        *self.slot(&key.id) = Some(MeBody {
            key: key.clone(),
            shop: shop.cloned(),
            made_at: now,
            body: body.clone(),
        });
        Ok(body)
    }
}

/// The calling key: id, name, environment, permissions, rate limit.
#[utoipa::path(get, path = "/me", tag = "Key", operation_id = "getMe",
    responses((status = 200, description = "The calling key and its shop", body = MeResponse)))]
async fn me(
    State(shops): State<Arc<ShopService>>,
    State(keys): State<Arc<KeyService>>,
    State(bodies): State<Arc<MeBodies>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    // Answered from memory: the verified key and the (cached) shop. This is
    // the cheapest keyed request there is, for integrations checking their key.
    let shop = shops.get(&caller.key.shop_id).await?;
    let now = keys.now();
    let body = bodies.get_or_make(&caller.key, shop.as_ref(), now, || {
        serde_json::to_vec(&MeResponse {
            key: KeyIdentity::new(&caller.key, now, keys.policy().legacy_sunset),
            shop: shop.as_deref().map(|s| ShopRef {
                id: &s.id,
                name: &s.name,
            }),
        })
        .map_err(|e| ApiError::internal(&e))
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(body),
    )
        .into_response())
}

/// Revoke the calling key.
///
/// For a key that leaked: it stops working at once, this call included.
/// Needs no permission beyond the key itself.
#[utoipa::path(post, path = "/me/revoke", tag = "Key", operation_id = "revokeMe",
    responses((status = 200, description = "The key, now revoked", body = super::keys::KeyEnvelope)))]
async fn revoke_itself(
    State(keys): State<Arc<KeyService>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = keys
        .revoke_key(&caller.principal(), &caller.key.id, true)
        .await?;
    Ok(Json(
        serde_json::json!({ "key": keys.view_json(&key).await? }),
    ))
}
