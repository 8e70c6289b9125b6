//! The application: [`Core`] (store, clock, hasher, caches, policy) shared by
//! the server and the CLI, [`build_router`] and [`serve`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::cache::KeyCache;
use crate::auth::ratelimit::{FailedAttemptLimiter, KeyLimiter};
use crate::auth::secret::KeyHasher;
use crate::auth::usage::UsageRecorder;
use crate::domain::clock::Clock;
pub use crate::domain::policy::Policy;
use crate::service::idempotency::IdempotencyService;
use crate::service::keys::KeyService;
use crate::service::resources::ResourceService;
use crate::store::resources::ResourceStore;
use crate::store::{AuditStore, Store};

/// Everything a request or a CLI command works with.
pub struct Core {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub hasher: KeyHasher,
    pub cache: Arc<KeyCache>,
    pub limiter: KeyLimiter,
    pub usage: Arc<UsageRecorder>,
    pub failed_attempts: FailedAttemptLimiter,
    /// Shops by id, for answers that name the caller's shop. A shop is never
    /// renamed or deleted, so nothing invalidates these.
    pub shops: moka::sync::Cache<String, Arc<crate::store::Shop>>,
    /// Web UI state kept in memory: login throttling per account.
    pub web: crate::http::web::WebState,
    pub policy: Policy,
    /// The key lifecycle over the same store, clock, hasher and cache.
    pub keys: Arc<KeyService>,
}

/// Cached keys (known and unknown hashes, each).
pub const KEY_CACHE_CAPACITY: u64 = 200_000;
/// Cached shops.
pub const SHOP_CACHE_CAPACITY: u64 = 10_000;

impl Core {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: KeyHasher,
        policy: Policy,
    ) -> Self {
        let cache = Arc::new(KeyCache::new(KEY_CACHE_CAPACITY));
        let keys = Arc::new(KeyService::new(
            store.clone(),
            store.clone(),
            store.clone(),
            clock.clone(),
            hasher.clone(),
            cache.clone(),
            Arc::new(policy.clone()),
            crate::http::api::permissions::route_permission,
        ));
        Core {
            store,
            clock,
            hasher,
            cache,
            keys,
            limiter: KeyLimiter::new(KEY_CACHE_CAPACITY),
            usage: Arc::new(UsageRecorder::default()),
            failed_attempts: FailedAttemptLimiter::new(policy.failed_auth_limit),
            shops: moka::sync::Cache::new(SHOP_CACHE_CAPACITY),
            web: crate::http::web::WebState::default(),
            policy,
        }
    }

    /// A shop by id, from memory after the first lookup.
    pub async fn shop(
        &self,
        id: &str,
    ) -> Result<Option<Arc<crate::store::Shop>>, crate::store::StoreError> {
        if let Some(shop) = self.shops.get(id) {
            return Ok(Some(shop));
        }
        let found = self.store.get_shop(id).await?.map(Arc::new);
        if let Some(shop) = &found {
            self.shops.insert(shop.id.clone(), shop.clone());
        }
        Ok(found)
    }
}

/// The shared core, while handlers move to the services (transitional).
pub type CoreRef = Arc<Core>;

/// What handlers extract their part of (axum `FromRef`): each handler names
/// only the service it uses.
#[derive(Clone, axum::extract::FromRef)]
pub struct AppState {
    pub core: Arc<Core>,
    pub keys: Arc<KeyService>,
    pub resources: Arc<ResourceService>,
    pub idempotency: Arc<IdempotencyService>,
}

impl AppState {
    pub fn new(core: Arc<Core>) -> Self {
        let store: Arc<dyn ResourceStore> = core.store.clone();
        let audit: Arc<dyn AuditStore> = core.store.clone();
        AppState {
            keys: core.keys.clone(),
            resources: Arc::new(ResourceService::new(
                store.clone(),
                audit,
                core.clock.clone(),
            )),
            idempotency: Arc::new(IdempotencyService::new(store, core.clock.clone())),
            core,
        }
    }
}

pub use crate::http::build_router;

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight. Runs the key_changes feed alongside.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let feed = tokio::spawn(crate::auth::cache::run_feed(
        state.core.store.clone(),
        state.core.cache.clone(),
        state.core.clock.clone(),
        stop_rx,
    ));
    let flusher = tokio::spawn(crate::auth::usage::run_flusher(
        state.core.usage.clone(),
        state.core.store.clone(),
        state.core.clock.clone(),
        stop_tx.subscribe(),
    ));
    let router = build_router(state);
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    // Requests in flight have finished: the last usage flush sees them all.
    let _ = stop_tx.send(true);
    let _ = feed.await;
    let _ = flusher.await;
    result
}
