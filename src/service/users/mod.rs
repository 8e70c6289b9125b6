//! Users of the web UI: who may manage them (the owner), one-time passwords,
//! logging in, changing one's own password, and login sessions. Every audit
//! event about a user is written here, whichever surface asked.

mod login;
mod manage;
mod session;

use std::net::IpAddr;
use std::sync::Arc;

pub use login::LoginOutcome;
pub use manage::OneTimePassword;
pub use session::{IDLE_SECONDS, MAX_AGE_SECONDS};

use crate::auth::secret::KeyHasher;
use crate::domain::clock::{Clock, Timestamp};
use crate::domain::key::Actor;
use crate::domain::new_id;
use crate::domain::user::Role;
use crate::service::ServiceError;
use crate::service::keys::KeyService;
use crate::store::users::UserStore;
use crate::store::{AuditEvent, AuditStore, User};

/// How long a one-time password works.
pub const ONE_TIME_SECONDS: i64 = 7 * 24 * 3600;

pub struct UserService {
    users: Arc<dyn UserStore>,
    audit: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
    /// Session tokens are stored as their keyed hash only.
    hasher: KeyHasher,
    /// Removing a user may revoke the keys they made: through the key
    /// lifecycle, so those revocations are audited and enforced at once like
    /// any other, and the removal stays one step of this service.
    keys: Arc<KeyService>,
}

/// Who acts on users from the web UI: a logged-in user, from an address.
#[derive(Clone, Copy, Debug)]
pub struct Acting<'a> {
    pub user: &'a User,
    pub ip: IpAddr,
}

impl UserService {
    pub fn new(
        users: Arc<dyn UserStore>,
        audit: Arc<dyn AuditStore>,
        clock: Arc<dyn Clock>,
        hasher: KeyHasher,
        keys: Arc<KeyService>,
    ) -> Self {
        UserService {
            users,
            audit,
            clock,
            hasher,
            keys,
        }
    }

    /// The rule for managing users (adding, changing roles, resetting
    /// passwords, removing): only the shop's owner does.
    pub fn may_manage(user: &User) -> bool {
        user.role == Role::Owner
    }

    /// The shop's users, oldest first (for naming who did what).
    pub async fn list(&self, shop_id: &str) -> Result<Vec<User>, ServiceError> {
        Ok(self.users.list_users(shop_id).await?)
    }

    /// The shop's users for the owner's user page.
    pub async fn list_for_manager(&self, by: &User) -> Result<Vec<User>, ServiceError> {
        only_owner(by)?;
        self.list(&by.shop_id).await
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// An audit event about user `target`, done by `actor`.
    fn event(
        &self,
        shop_id: &str,
        actor: Actor,
        ip: Option<IpAddr>,
        action: &str,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            id: new_id("evt"),
            shop_id: shop_id.to_owned(),
            at: self.now(),
            actor,
            action: action.to_owned(),
            key_id: None,
            environment: None,
            ip: ip.map(|ip| ip.to_string()),
            details,
        }
    }

    /// An audit event done by a web user.
    fn event_by(&self, by: Acting<'_>, action: &str, details: serde_json::Value) -> AuditEvent {
        self.event(
            &by.user.shop_id,
            Actor::User(by.user.id.clone()),
            Some(by.ip),
            action,
            details,
        )
    }
}

/// Users have no API permission of their own: managing them is the owner's
/// role, not something a key can hold, so the refusal names no permission.
fn only_owner(by: &User) -> Result<(), ServiceError> {
    if UserService::may_manage(by) {
        Ok(())
    } else {
        Err(ServiceError::Refused(
            "Only the owner manages users.".into(),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests;
