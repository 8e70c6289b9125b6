//! The audit log: who may read which events, and the names of the keys they
//! mention. Events are written by the services that act (keys, users, shops);
//! this one only reads.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::key::Actor;
use crate::domain::permission::Permission;
use crate::service::ServiceError;
use crate::service::keys::Principal;
use crate::store::{AuditEvent, AuditFilter, AuditStore, KeyStore, PageRequest, Paged};

/// The most events a key's trail shows.
pub const TRAIL_LENGTH: u32 = 100;

pub struct AuditService {
    audit: Arc<dyn AuditStore>,
    /// Only to name the keys events mention.
    keys: Arc<dyn KeyStore>,
}

impl AuditService {
    pub fn new(audit: Arc<dyn AuditStore>, keys: Arc<dyn KeyStore>) -> Self {
        AuditService { audit, keys }
    }

    /// A page of the shop's log, newest first. Reading the log is what
    /// `keys:read` opens: staff, who hold no key permission, see each of their
    /// keys' trails instead. A key sees only its own environment's events.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Paged<AuditEvent>, ServiceError> {
        if !principal.permissions.contains(Permission::KeysRead) {
            return Err(ServiceError::Forbidden {
                permission: Permission::KeysRead,
                detail: "The audit log is for owners and admins.".into(),
            });
        }
        let filter = AuditFilter {
            environment: principal.environment.or(filter.environment),
            ..filter
        };
        Ok(self
            .audit
            .list_audit_events(&principal.shop_id, &filter, page)
            .await?)
    }

    /// The newest events about one key `principal` can see (its details
    /// page), whatever the principal's role: a key's own history is part of
    /// seeing the key. `NotFound` for a key it cannot see.
    pub async fn trail(
        &self,
        principal: &Principal,
        key_id: &str,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        match self.keys.get_key(&principal.shop_id, key_id).await? {
            Some(key) if principal.can_see(&key) => {}
            _ => return Err(ServiceError::NotFound),
        }
        let filter = AuditFilter {
            key_id: Some(key_id.to_owned()),
            ..Default::default()
        };
        let page = PageRequest {
            page: 1,
            per_page: TRAIL_LENGTH,
        };
        Ok(self
            .audit
            .list_audit_events(&principal.shop_id, &filter, page)
            .await?
            .items)
    }

    /// The names of the keys `events` mention (acted on, or acting), by id;
    /// `None` for a key deleted since.
    pub async fn key_names(
        &self,
        shop_id: &str,
        events: &[AuditEvent],
    ) -> Result<HashMap<String, Option<String>>, ServiceError> {
        let mut names = HashMap::new();
        for e in events {
            let acting = match &e.actor {
                Actor::Key(k) => Some(k.as_str()),
                _ => None,
            };
            for id in [e.key_id.as_deref(), acting].into_iter().flatten() {
                if names.contains_key(id) {
                    continue;
                }
                let name = self
                    .keys
                    .get_key(shop_id, id)
                    .await?
                    .map(|k| k.name.as_str().to_owned());
                names.insert(id.to_owned(), name);
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::domain::key::KeyRecord;
    use crate::domain::token::Environment;
    use crate::service::ServiceError;
    use crate::service::keys::{NewKeyInput, Principal};
    use crate::service::testing::{Fixture, fixture};
    use crate::service::users::Acting;
    use crate::store::{AuditFilter, PageRequest};

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const PAGE: PageRequest = PageRequest {
        page: 1,
        per_page: 50,
    };

    async fn key(f: &Fixture, by: &Principal, name: &str, env: Environment) -> KeyRecord {
        let input = NewKeyInput {
            name: Some(name.into()),
            permissions: Some(vec!["orders:read".into(), "keys:read".into()]),
            ..Default::default()
        };
        let new = f.core.keys.validate_new(input, env).unwrap();
        f.core.keys.create_key(by, new).await.unwrap().key
    }

    #[tokio::test]
    async fn staff_cannot_list_the_shops_log_but_see_their_keys_trail() {
        let f = fixture().await;
        let acting = Acting {
            user: &f.owner,
            ip: IP,
        };
        let staff = f
            .core
            .users
            .add(acting, "staff@fixit.example", "staff")
            .await
            .unwrap()
            .user;
        let staff = Principal::user(&staff, IP);
        let refused = f
            .core
            .audit
            .list(&staff, AuditFilter::default(), PAGE)
            .await;
        assert!(
            matches!(refused, Err(ServiceError::Forbidden { .. })),
            "{refused:?}"
        );

        let mut input_key = NewKeyInput {
            name: Some("Front desk".into()),
            permissions: Some(vec!["orders:read".into()]),
            ..Default::default()
        };
        input_key.environment = None;
        let new = f
            .core
            .keys
            .validate_new(input_key, Environment::Live)
            .unwrap();
        let made = f.core.keys.create_key(&staff, new).await.unwrap().key;
        let trail = f.core.audit.trail(&staff, &made.id).await.unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].action, "key.created");
    }

    #[tokio::test]
    async fn a_key_sees_only_its_own_environments_events() {
        let f = fixture().await;
        let cli = Principal::cli(&f.owner.shop_id);
        let live = key(&f, &cli, "Live reader", Environment::Live).await;
        let test = key(&f, &cli, "Test reader", Environment::Test).await;

        for (caller, env) in [(&live, Environment::Live), (&test, Environment::Test)] {
            let seen = f
                .core
                .audit
                .list(&Principal::key(caller, IP), AuditFilter::default(), PAGE)
                .await
                .unwrap();
            assert_eq!(seen.total, 1, "{env:?}");
            assert!(seen.items.iter().all(|e| e.environment == Some(env)));
            // Asking for the other environment does not widen it.
            let other = AuditFilter {
                environment: Some(match env {
                    Environment::Live => Environment::Test,
                    Environment::Test => Environment::Live,
                }),
                ..Default::default()
            };
            let seen = f
                .core
                .audit
                .list(&Principal::key(caller, IP), other, PAGE)
                .await
                .unwrap();
            assert!(seen.items.iter().all(|e| e.environment == Some(env)));
        }

        let trail = f
            .core
            .audit
            .trail(&Principal::key(&live, IP), &test.id)
            .await;
        assert!(matches!(trail, Err(ServiceError::NotFound)), "{trail:?}");
    }

    #[tokio::test]
    async fn key_names_mark_deleted_keys() {
        let f = fixture().await;
        let cli = Principal::cli(&f.owner.shop_id);
        let kept = key(&f, &cli, "Kept", Environment::Live).await;
        let gone = key(&f, &cli, "Gone", Environment::Live).await;
        f.core.keys.delete_key(&cli, &gone.id).await.unwrap();
        let events = f
            .core
            .audit
            .list(&cli, AuditFilter::default(), PAGE)
            .await
            .unwrap()
            .items;
        let names = f
            .core
            .audit
            .key_names(&f.owner.shop_id, &events)
            .await
            .unwrap();
        assert_eq!(names[&kept.id].as_deref(), Some("Kept"));
        assert_eq!(names[&gone.id], None);
    }
}
