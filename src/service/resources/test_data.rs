//! The test-data reset: who may replace a shop's test data with the sample
//! set, and what the shop's test data holds. Live data is never touched.

use std::net::IpAddr;

use serde::Serialize;

use super::ResourceService;
use crate::domain::key::Actor;
use crate::domain::new_id;
use crate::domain::permission::{Permission, PermissionSet};
use crate::domain::sample::{SampleData, sample_data};
use crate::domain::token::Environment;
use crate::service::ServiceError;
use crate::store::resources::{DeviceFilter, ListQuery, OrderFilter, Scope, Sort};
use crate::store::{AuditEvent, PageRequest};

/// Who asks for a reset; each may do it under its own rule.
#[derive(Clone, Copy, Debug)]
pub enum ResetBy<'a> {
    /// An API key: a test key only (a live key is refused whatever it may
    /// do), holding one of the write permissions on the shop's data.
    Key {
        scope: &'a Scope,
        permissions: PermissionSet,
    },
    /// A signed-in user of the web UI; the reset is audited under the user.
    User {
        shop_id: &'a str,
        user_id: &'a str,
        ip: IpAddr,
    },
    /// The operator, through the CLI (who can reach the database anyway).
    Operator { shop_id: &'a str },
}

/// The permissions any one of which lets a test key reset the test data.
pub const RESET_PERMISSIONS: [Permission; 3] = [
    Permission::OrdersWrite,
    Permission::ClientsWrite,
    Permission::DevicesWrite,
];

/// How many clients, orders and devices a data set holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DataCounts {
    pub clients: u64,
    pub orders: u64,
    pub devices: u64,
}

impl DataCounts {
    fn of(sample: &SampleData) -> Self {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        DataCounts {
            clients: count(sample.clients.len()),
            orders: count(sample.orders.len()),
            devices: count(sample.devices.len()),
        }
    }
}

/// Whether a key may reset test data: test keys only, with a write permission.
fn may_reset_with_key(scope: &Scope, permissions: PermissionSet) -> Result<(), ServiceError> {
    if scope.environment != Environment::Test {
        return Err(ServiceError::Refused(
            "Test data can only be reset with a test key (lk_test_…); live data is never reset."
                .into(),
        ));
    }
    if !RESET_PERMISSIONS.iter().any(|p| permissions.contains(*p)) {
        return Err(ServiceError::Forbidden {
            permission: Permission::OrdersWrite,
            detail: "Resetting test data needs orders:write, clients:write or devices:write."
                .into(),
        });
    }
    Ok(())
}

impl ResourceService {
    /// Replaces the shop's test data with the sample set, if `by` may, and
    /// says what the sample holds.
    pub async fn reset_test_data(&self, by: ResetBy<'_>) -> Result<DataCounts, ServiceError> {
        let shop_id = match by {
            ResetBy::Key { scope, permissions } => {
                may_reset_with_key(scope, permissions)?;
                scope.shop_id.as_str()
            }
            ResetBy::User { shop_id, .. } | ResetBy::Operator { shop_id } => shop_id,
        };
        let sample = sample_data();
        let now = self.clock.now();
        self.store.reset_test_data(shop_id, &sample, now).await?;
        let counts = DataCounts::of(&sample);
        if let ResetBy::User { user_id, ip, .. } = by {
            let event = AuditEvent {
                id: new_id("evt"),
                shop_id: shop_id.to_owned(),
                at: now,
                actor: Actor::User(user_id.to_owned()),
                action: "test_data.reset".into(),
                key_id: None,
                environment: Some(Environment::Test),
                ip: Some(ip.to_string()),
                details: serde_json::json!(counts),
            };
            // The reset is done and cannot be undone: a lost audit line is
            // logged rather than reported as a failed reset.
            if let Err(e) = self.audit.append_audit(&event).await {
                tracing::warn!(error = %e, "could not audit a test-data reset");
            }
        }
        Ok(counts)
    }

    /// How many clients, orders and devices the shop's test data holds.
    pub async fn test_data_counts(&self, shop_id: &str) -> Result<DataCounts, ServiceError> {
        let scope = Scope {
            shop_id: shop_id.to_owned(),
            environment: Environment::Test,
        };
        // Only the totals are wanted: one item per page is the cheapest ask.
        let one = ListQuery {
            page: PageRequest {
                page: 1,
                per_page: 1,
            },
            sort: Sort::CreatedDesc,
            updated_since: None,
            after: None,
        };
        let clients = self.store.list_clients(&scope, None, &one).await?;
        let orders = self
            .store
            .list_orders(&scope, &OrderFilter::default(), &one)
            .await?;
        let devices = self
            .store
            .list_devices(&scope, &DeviceFilter::default(), &one)
            .await?;
        Ok(DataCounts {
            clients: clients.total,
            orders: orders.total,
            devices: devices.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, permissions};
    use super::*;
    use crate::store::AuditFilter;

    #[tokio::test]
    async fn a_live_key_is_refused_whatever_it_may_do() {
        let f = fixture().await;
        let live = f.scope(Environment::Live);
        let refused = f
            .service
            .reset_test_data(ResetBy::Key {
                scope: &live,
                permissions: PermissionSet::all(),
            })
            .await;
        assert!(
            matches!(refused, Err(ServiceError::Refused(_))),
            "{refused:?}"
        );
        assert_eq!(
            f.service
                .test_data_counts(&f.shop_id)
                .await
                .unwrap()
                .clients,
            0
        );
    }

    #[tokio::test]
    async fn a_test_key_needs_one_write_permission_on_the_data() {
        let f = fixture().await;
        let test = f.scope(Environment::Test);
        let readers = permissions(&[
            Permission::OrdersRead,
            Permission::ClientsRead,
            Permission::DevicesRead,
            Permission::OrdersDelete,
            Permission::KeysWrite,
        ]);
        let refused = f
            .service
            .reset_test_data(ResetBy::Key {
                scope: &test,
                permissions: readers,
            })
            .await;
        assert!(
            matches!(refused, Err(ServiceError::Forbidden { .. })),
            "{refused:?}"
        );
        for p in RESET_PERMISSIONS {
            let counts = f
                .service
                .reset_test_data(ResetBy::Key {
                    scope: &test,
                    permissions: permissions(&[p]),
                })
                .await
                .unwrap();
            assert_eq!(
                f.service.test_data_counts(&f.shop_id).await.unwrap(),
                counts
            );
        }
    }

    #[tokio::test]
    async fn a_reset_by_a_user_is_audited_and_one_by_the_operator_is_not() {
        let f = fixture().await;
        let ip: IpAddr = "203.0.113.10".parse().unwrap();
        let by_user = ResetBy::User {
            shop_id: &f.shop_id,
            user_id: "usr_1",
            ip,
        };
        let counts = f.service.reset_test_data(by_user).await.unwrap();
        f.service
            .reset_test_data(ResetBy::Operator {
                shop_id: &f.shop_id,
            })
            .await
            .unwrap();
        let filter = AuditFilter {
            environment: None,
            key_id: None,
            action: Some("test_data.reset".into()),
        };
        let page = PageRequest {
            page: 1,
            per_page: 10,
        };
        let events = f
            .store
            .list_audit_events(&f.shop_id, &filter, page)
            .await
            .unwrap();
        assert_eq!(events.total, 1);
        let event = &events.items[0];
        assert_eq!(event.actor, Actor::User("usr_1".into()));
        assert_eq!(event.ip.as_deref(), Some("203.0.113.10"));
        assert_eq!(event.details, serde_json::json!(counts));
    }
}
