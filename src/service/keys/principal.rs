//! Who is acting, and the rules for what they may grant and touch.

use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyRecord};
use crate::domain::new_id;
use crate::domain::permission::{Permission, PermissionSet};
use crate::domain::token::Environment;
use crate::service::ServiceError;
use crate::store::AuditEvent;

/// Who is acting, and what they may grant and touch.
#[derive(Clone, Debug)]
pub struct Principal {
    pub shop_id: String,
    pub actor: Actor,
    /// The most this principal may grant, and the bound on keys it may act on.
    pub permissions: PermissionSet,
    /// A key manages only keys of its own environment; users and the CLI both.
    pub environment: Option<Environment>,
    /// Staff act only on keys they created.
    pub own_keys_only: bool,
    pub ip: Option<String>,
}

impl Principal {
    /// The command line: the operator of the machine, who may do anything.
    pub fn cli(shop_id: &str) -> Self {
        Principal {
            shop_id: shop_id.to_owned(),
            actor: Actor::Cli,
            permissions: PermissionSet::all(),
            environment: None,
            own_keys_only: false,
            ip: None,
        }
    }

    /// A request authenticated with `key`.
    pub fn key(key: &KeyRecord, ip: std::net::IpAddr) -> Self {
        Principal {
            shop_id: key.shop_id.clone(),
            actor: Actor::Key(key.id.clone()),
            permissions: key.permissions,
            environment: Some(key.environment),
            own_keys_only: false,
            ip: Some(ip.to_string()),
        }
    }

    /// A user of the web UI: what their role holds; staff act only on the
    /// keys they created. Users manage both environments.
    pub fn user(user: &crate::store::User, ip: std::net::IpAddr) -> Self {
        Principal {
            shop_id: user.shop_id.clone(),
            actor: Actor::User(user.id.clone()),
            permissions: user.role.permissions(),
            environment: None,
            own_keys_only: user.role == crate::domain::user::Role::Staff,
            ip: Some(ip.to_string()),
        }
    }

    pub(crate) fn may_grant(&self, wanted: PermissionSet) -> Result<(), ServiceError> {
        match wanted.first_missing_from(self.permissions) {
            None => Ok(()),
            Some(p) => Err(ServiceError::Forbidden {
                permission: p,
                detail: format!(
                    "You cannot grant `{p}`: a key can only be given permissions its creator holds."
                ),
            }),
        }
    }

    pub(crate) fn may_use_environment(&self, env: Environment) -> Result<(), ServiceError> {
        match self.environment {
            Some(own) if own != env => Err(ServiceError::Forbidden {
                permission: Permission::KeysWrite,
                detail: format!("A {own} key manages only {own} keys; this one is {env}."),
            }),
            _ => Ok(()),
        }
    }

    /// The rule for acting on an existing key: it must be visible to this
    /// principal and hold nothing the principal lacks, so a weaker key can
    /// never revoke, edit, or take a copy of a stronger one.
    pub(crate) fn may_act_on(&self, key: &KeyRecord) -> Result<(), ServiceError> {
        if !self.can_see(key) {
            return Err(ServiceError::NotFound);
        }
        if let Some(p) = key.permissions.first_missing_from(self.permissions) {
            return Err(ServiceError::Forbidden {
                permission: p,
                detail: format!(
                    "This key holds `{p}`, which you do not: you can only manage keys whose permissions you hold yourself."
                ),
            });
        }
        if self.own_keys_only && key.created_by != self.actor {
            return Err(ServiceError::Forbidden {
                permission: Permission::KeysWrite,
                detail: "Staff can manage only the keys they created.".into(),
            });
        }
        Ok(())
    }

    /// Whether a key is visible at all: other shops' and environments' keys
    /// are not (they answer 404, not 403), and staff see only the keys they
    /// created.
    pub fn can_see(&self, key: &KeyRecord) -> bool {
        key.shop_id == self.shop_id
            && self.environment.is_none_or(|e| e == key.environment)
            && (!self.own_keys_only || key.created_by == self.actor)
    }

    /// Whether this principal may act on `key` (see [`Self::may_act_on`]).
    pub fn may_manage(&self, key: &KeyRecord) -> bool {
        self.may_act_on(key).is_ok()
    }

    pub(crate) fn audit(
        &self,
        at: Timestamp,
        action: &str,
        key: &KeyRecord,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            id: new_id("evt"),
            shop_id: self.shop_id.clone(),
            at,
            actor: self.actor.clone(),
            action: action.to_owned(),
            key_id: Some(key.id.clone()),
            environment: Some(key.environment),
            ip: self.ip.clone(),
            details,
        }
    }
}
