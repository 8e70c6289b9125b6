//! The application: [`Core`] (store, clock, hasher, caches, policy) shared by
//! the server and the CLI, [`build_router`] and [`serve`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::cache::KeyCache;
use crate::auth::secret::KeyHasher;
use crate::auth::usage::UsageRecorder;
use crate::domain::clock::Clock;
pub use crate::domain::policy::Policy;
use crate::limiter::Limits;
use crate::service::audit::AuditService;
use crate::service::idempotency::IdempotencyService;
use crate::service::keys::KeyService;
use crate::service::leaks::LeakService;
use crate::service::resources::ResourceService;
use crate::service::shops::ShopService;
use crate::service::users::UserService;
use crate::store::Store;

/// Everything a request or a CLI command works with.
pub struct Core {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub hasher: KeyHasher,
    pub cache: Arc<KeyCache>,
    pub usage: Arc<UsageRecorder>,
    /// Rate limits, failed attempts, login throttles and form claims: in
    /// memory, or shared through Redis.
    pub limits: Arc<Limits>,
    pub policy: Policy,
    /// The key lifecycle over the same store, clock, hasher and cache.
    pub keys: Arc<KeyService>,
    /// Shops, their owners and the setup link.
    pub shops: Arc<ShopService>,
    /// Users of the web UI, their logins and sessions.
    pub users: Arc<UserService>,
    /// Reading the audit log.
    pub audit: Arc<AuditService>,
    /// The shop's clients, orders and devices, and test data.
    pub resources: Arc<ResourceService>,
    /// `Idempotency-Key` for creates.
    pub idempotency: Arc<IdempotencyService>,
    /// Leaked-key reports from secret scanners.
    pub leaks: Arc<LeakService>,
}

/// Cached keys (known and unknown hashes, each).
pub const KEY_CACHE_CAPACITY: u64 = 200_000;

impl Core {
    /// A core whose limits live in this process only.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: KeyHasher,
        policy: Policy,
    ) -> Self {
        let limits = Arc::new(Limits::in_memory(hasher.clone(), policy.failed_auth_limit));
        Self::with_limits(store, clock, hasher, policy, limits)
    }

    /// A core over `limits` (e.g. shared through Redis).
    pub fn with_limits(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: KeyHasher,
        policy: Policy,
        limits: Arc<Limits>,
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
        let shops = Arc::new(ShopService::new(
            store.clone(),
            clock.clone(),
            hasher.clone(),
            policy.public_url.clone(),
        ));
        let users = Arc::new(UserService::new(
            store.clone(),
            store.clone(),
            clock.clone(),
            hasher.clone(),
            keys.clone(),
        ));
        let audit = Arc::new(AuditService::new(store.clone(), store.clone()));
        let resources = Arc::new(ResourceService::new(
            store.clone(),
            store.clone(),
            clock.clone(),
        ));
        let idempotency = Arc::new(IdempotencyService::new(store.clone(), clock.clone()));
        let leaks = Arc::new(LeakService::new(
            keys.clone(),
            policy.leak_report_keys.clone(),
            policy.leak_action,
        ));
        Core {
            leaks,
            resources,
            idempotency,
            store,
            clock,
            hasher,
            cache,
            keys,
            shops,
            users,
            audit,
            usage: Arc::new(UsageRecorder::default()),
            limits,
            policy,
        }
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
    pub shops: Arc<ShopService>,
    pub users: Arc<UserService>,
    pub audit: Arc<AuditService>,
    pub limits: Arc<Limits>,
    pub leaks: Arc<LeakService>,
    /// Recently served `/api/v1/me` bodies.
    pub me_bodies: Arc<crate::http::api::me::MeBodies>,
}

impl AppState {
    pub fn new(core: Arc<Core>) -> Self {
        AppState {
            keys: core.keys.clone(),
            shops: core.shops.clone(),
            users: core.users.clone(),
            audit: core.audit.clone(),
            resources: core.resources.clone(),
            idempotency: core.idempotency.clone(),
            limits: core.limits.clone(),
            leaks: core.leaks.clone(),
            me_bodies: Arc::default(),
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
