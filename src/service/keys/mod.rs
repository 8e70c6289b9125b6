//! The key lifecycle: the rules every way in (the API, the web UI, the CLI)
//! shares. Who may see and act on which key, validation of raw input, the
//! mutations with their audit events, and the cache evictions that make a
//! change take effect at once on this instance.

mod import;
mod input;
mod leak;
mod lifecycle;
mod pause;
mod principal;
mod replace;
mod suggest;
mod view;

use std::collections::HashMap;
use std::sync::Arc;

pub use input::{Given, KeyUpdateInput, NewKey, NewKeyInput};
pub use leak::LeakOutcome;
pub use lifecycle::Created;
pub use pause::{MAX_KEY_IDS, PauseInput, PauseOutcome, PauseRequest, Selection, Skipped};
pub use principal::Principal;
pub use replace::{MAX_ROLL_GRACE_SECONDS, Upgraded};
pub use suggest::{MAX_SUGGESTED_IPS, Suggestion, Suggestions};
pub use view::{KeyIdentity, KeyView, PermissionName};

use crate::auth::cache::KeyCache;
use crate::auth::secret::KeyHasher;
use crate::domain::clock::{Clock, Timestamp};
use crate::domain::key::{KeyRecord, KeyStatus};
use crate::domain::permission::Permission;
use crate::domain::policy::Policy;
use crate::domain::token::Environment;
use crate::service::ServiceError;
use crate::store::usage::{KeyUsage, UsageStore, UsageSummary};
use crate::store::{KeyFilter, KeyStore, PageRequest, Paged, ShopStore};

/// Which permission an API operation needs, by method and full route
/// template (`GET`, `/api/v1/orders/{id}`): the surface's permission table,
/// handed in so the upgrade's narrowing reads the same table the routes
/// enforce. `None` for routes any key may call or that do not exist.
pub type RoutePermission = fn(method: &str, route: &str) -> Option<Permission>;

pub struct KeyService {
    keys: Arc<dyn KeyStore>,
    shops: Arc<dyn ShopStore>,
    usage: Arc<dyn UsageStore>,
    clock: Arc<dyn Clock>,
    hasher: KeyHasher,
    /// Evicted on every change, so a change is enforced here at once; other
    /// instances learn of it from the `key_changes` feed.
    cache: Arc<KeyCache>,
    policy: Arc<Policy>,
    route_permission: RoutePermission,
}

impl KeyService {
    #[expect(clippy::too_many_arguments, reason = "one port or setting each")]
    pub fn new(
        keys: Arc<dyn KeyStore>,
        shops: Arc<dyn ShopStore>,
        usage: Arc<dyn UsageStore>,
        clock: Arc<dyn Clock>,
        hasher: KeyHasher,
        cache: Arc<KeyCache>,
        policy: Arc<Policy>,
        route_permission: RoutePermission,
    ) -> Self {
        KeyService {
            keys,
            shops,
            usage,
            clock,
            hasher,
            cache,
            policy,
            route_permission,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `Ok` when the shop exists (the CLI names shops by id).
    pub async fn shop_exists(&self, shop_id: &str) -> Result<(), ServiceError> {
        match self.shops.get_shop(shop_id).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::Validation(vec![
                crate::domain::FieldError::new("shop", format!("no shop with id {shop_id}")),
            ])),
        }
    }

    /// Checks a creation request; `environment` is the default when the
    /// request names none (the calling key's own, or live).
    pub fn validate_new(
        &self,
        input: NewKeyInput,
        environment: Environment,
    ) -> Result<NewKey, ServiceError> {
        input
            .validate(self.now(), environment, self.policy.default_rate_limit)
            .map_err(ServiceError::Validation)
    }

    /// Checks a change request.
    pub fn validate_update(
        &self,
        input: KeyUpdateInput,
    ) -> Result<crate::store::KeyUpdate, ServiceError> {
        input.validate(self.now()).map_err(ServiceError::Validation)
    }

    /// A key visible to `principal`, or `NotFound`.
    pub async fn get(&self, principal: &Principal, id: &str) -> Result<KeyRecord, ServiceError> {
        match self.keys.get_key(&principal.shop_id, id).await? {
            Some(key) if principal.can_see(&key) => Ok(key),
            _ => Err(ServiceError::NotFound),
        }
    }

    /// A key by id in any shop: the operator's view (the CLI), where key ids
    /// are unique across shops.
    pub async fn get_any_shop(&self, id: &str) -> Result<KeyRecord, ServiceError> {
        self.keys
            .get_key_any_shop(id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// A page of the keys `principal` may see, newest first. Asking for the
    /// other environment than a key's own is an empty page, not an error.
    pub async fn list(
        &self,
        principal: &Principal,
        environment: Option<Environment>,
        status: Option<KeyStatus>,
        page: PageRequest,
    ) -> Result<Paged<KeyRecord>, ServiceError> {
        let environment = match (principal.environment, environment) {
            (Some(own), Some(asked)) if own != asked => {
                return Ok(Paged {
                    items: Vec::new(),
                    total: 0,
                });
            }
            (own, asked) => asked.or(own),
        };
        let filter = KeyFilter {
            environment,
            status,
            now: self.now(),
            legacy_sunset: self.policy.legacy_sunset,
        };
        if principal.own_keys_only {
            // Staff see the keys they created: filter the whole shop's list
            // (bounded by the per-shop maximum), then page.
            let everything = self.all_visible(principal, &filter).await?;
            let total = everything.len() as u64;
            let items = everything
                .into_iter()
                .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
                .take(page.per_page as usize)
                .collect();
            return Ok(Paged { items, total });
        }
        Ok(self
            .keys
            .list_keys(&principal.shop_id, &filter, page)
            .await?)
    }

    /// Every key `principal` may see (the web UI's list filters in memory).
    pub async fn list_all(&self, principal: &Principal) -> Result<Vec<KeyRecord>, ServiceError> {
        let filter = KeyFilter {
            environment: principal.environment,
            status: None,
            now: self.now(),
            legacy_sunset: self.policy.legacy_sunset,
        };
        self.all_visible(principal, &filter).await
    }

    async fn all_visible(
        &self,
        principal: &Principal,
        filter: &KeyFilter,
    ) -> Result<Vec<KeyRecord>, ServiceError> {
        // Both environments together may hold twice the per-shop maximum.
        let page = PageRequest {
            page: 1,
            per_page: self.policy.max_keys_per_shop.max(1).saturating_mul(2),
        };
        let keys = self
            .keys
            .list_keys(&principal.shop_id, filter, page)
            .await?
            .items;
        Ok(keys.into_iter().filter(|k| principal.can_see(k)).collect())
    }

    /// The status of a key now.
    pub fn status_of(&self, key: &KeyRecord) -> KeyStatus {
        key.status(self.now(), self.policy.legacy_sunset)
    }

    /// The key object of `key`, without usage figures.
    pub fn view<'a>(
        &self,
        key: &'a KeyRecord,
        secret: Option<&'a crate::domain::token::PlainKey>,
    ) -> KeyView<'a> {
        KeyView::new(key, self.now(), self.policy.legacy_sunset, secret)
    }

    /// Usage summaries (last use, 24 h requests) of `keys`, by key id.
    pub async fn summaries(
        &self,
        keys: &[&KeyRecord],
    ) -> Result<HashMap<String, UsageSummary>, ServiceError> {
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        Ok(self.usage.usage_summaries(&ids, self.now()).await?)
    }

    /// The key objects of `keys`, with their usage figures.
    pub async fn views<'a>(&self, keys: &'a [KeyRecord]) -> Result<Vec<KeyView<'a>>, ServiceError> {
        let usage = self.summaries(&keys.iter().collect::<Vec<_>>()).await?;
        Ok(keys
            .iter()
            .map(|k| self.view(k, None).with_usage(usage.get(&k.id)))
            .collect())
    }

    /// The key object of one key, with its usage, as JSON.
    pub async fn view_json(&self, key: &KeyRecord) -> Result<serde_json::Value, ServiceError> {
        let views = self.views(std::slice::from_ref(key)).await?;
        Ok(serde_json::to_value(&views[0]).unwrap_or_default())
    }

    /// The usage of a key `principal` may see.
    pub async fn usage(&self, principal: &Principal, id: &str) -> Result<KeyUsage, ServiceError> {
        let key = self.get(principal, id).await?;
        Ok(self.usage.key_usage(&key.id, self.now()).await?)
    }
}
