//! The shop's data (clients, orders, devices) and its test-data reset: every
//! rule a surface must not repeat. The native API and the RepairShopr-compatible
//! one both call this; neither touches the store.
//!
//! Methods take the caller's [`Scope`] (shop and environment) and, where a rule
//! depends on it, the caller's [`PermissionSet`]. Inputs are the domain's merge
//! patches (`ClientInput`, `OrderInput`, `DeviceInput`): the service applies
//! them (to empty fields on create, to the stored ones on update), so
//! validation, ids and timestamps are decided here and nowhere else.

mod clients;
mod devices;
mod orders;
mod test_data;

use std::sync::Arc;

use crate::domain::clock::Clock;
use crate::store::AuditStore;
use crate::store::resources::ResourceStore;

pub use crate::store::resources::Scope;
pub use orders::may_create_order;
pub use test_data::{DataCounts, RESET_PERMISSIONS, ResetBy};

use super::ServiceError;

/// The rules over the shop's data, over the ports they need.
pub struct ResourceService {
    store: Arc<dyn ResourceStore>,
    /// Only for the audit event of a reset made by a person (web UI).
    audit: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
}

impl ResourceService {
    pub fn new(
        store: Arc<dyn ResourceStore>,
        audit: Arc<dyn AuditStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        ResourceService {
            store,
            audit,
            clock,
        }
    }
}

/// `Ok(Some(x))` → `x`; `Ok(None)` → [`ServiceError::NotFound`].
fn found<T>(got: Result<Option<T>, crate::store::StoreError>) -> Result<T, ServiceError> {
    got?.ok_or(ServiceError::NotFound)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fresh SQLite store with one shop, behind the service, for the rule tests.

    use std::sync::Arc;

    use super::ResourceService;
    use crate::domain::clock::{ManualClock, Timestamp};
    use crate::domain::key::Actor;
    use crate::domain::permission::{Permission, PermissionSet};
    use crate::domain::token::Environment;
    use crate::domain::user::{Email, Role};
    use crate::store::resources::Scope;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{AuditEvent, Shop, ShopStore, Store, User};

    pub struct Fixture {
        pub service: ResourceService,
        pub store: Arc<dyn Store>,
        pub shop_id: String,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        pub fn scope(&self, environment: Environment) -> Scope {
            Scope {
                shop_id: self.shop_id.clone(),
                environment,
            }
        }
    }

    pub fn permissions(list: &[Permission]) -> PermissionSet {
        list.iter().copied().collect()
    }

    pub async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sqlite = SqliteStore::open_path(&dir.path().join("latchkey.db"))
            .await
            .expect("a fresh SQLite store");
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let at = Timestamp::from_unix_seconds(1_800_000_000);
        let shop_id = crate::domain::new_id("shop");
        let owner = User {
            id: crate::domain::new_id("usr"),
            shop_id: shop_id.clone(),
            email: Email::parse("owner@example.com").expect("an email"),
            role: Role::Owner,
            password_hash: String::new(),
            created_at: at,
        };
        let audit = AuditEvent {
            id: crate::domain::new_id("evt"),
            shop_id: shop_id.clone(),
            at,
            actor: Actor::Cli,
            action: "shop.created".into(),
            key_id: None,
            environment: None,
            ip: None,
            details: serde_json::json!({}),
        };
        let shop = Shop {
            id: shop_id.clone(),
            name: "Fixit".into(),
            created_at: at,
        };
        ShopStore::create_shop(&*store, &shop, &owner, &audit)
            .await
            .expect("a shop");
        let service =
            ResourceService::new(store.clone(), store.clone(), Arc::new(ManualClock::new(at)));
        Fixture {
            service,
            store,
            shop_id,
            _dir: dir,
        }
    }
}
