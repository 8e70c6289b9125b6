//! Who is acting, and the rules for what they may grant and touch.

use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyRecord};
use crate::domain::net::AllowedIps;
use crate::domain::new_id;
use crate::domain::permission::{Permission, PermissionSet};
use crate::domain::token::Environment;
use crate::service::ServiceError;
use crate::store::{AuditEvent, KeyUpdate};

use super::NewKey;

/// What a key is bound by, and passes on to every key it creates, changes
/// or acts on (docs/KEYS.md, "Restrictions are inherited"): a stolen IP-bound or
/// expiring key can neither free itself nor mint a freer key.
#[derive(Clone, Debug)]
pub struct Restrictions {
    pub allowed_ips: AllowedIps,
    pub expires_at: Option<Timestamp>,
    pub rate_limit_per_minute: u32,
}

impl Restrictions {
    fn of(key: &KeyRecord) -> Self {
        Restrictions {
            allowed_ips: key.allowed_ips.clone(),
            expires_at: key.expires_at,
            rate_limit_per_minute: key.rate_limit_per_minute,
        }
    }

    /// The first field in which `other` is looser than these restrictions,
    /// or `None` when it is at least as restricted.
    fn looser_field(&self, other: &Restrictions) -> Option<&'static str> {
        if !other.allowed_ips.within(&self.allowed_ips) {
            return Some("allowed_ips");
        }
        if let Some(limit) = self.expires_at
            && other.expires_at.is_none_or(|t| t > limit)
        {
            return Some("expires_at");
        }
        if other.rate_limit_per_minute > self.rate_limit_per_minute {
            return Some("rate_limit_per_minute");
        }
        None
    }
}

fn not_inherited(field: &'static str, what: &str) -> ServiceError {
    let rule = match field {
        "allowed_ips" => "allowed IPs inside the calling key's own ranges",
        "expires_at" => "an expiry no later than the calling key's own",
        _ => "a rate limit no higher than the calling key's own",
    };
    ServiceError::NotInherited {
        field,
        detail: format!(
            "{what} must stay at least as restricted as the calling key: `{field}` needs {rule}."
        ),
    }
}

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
    /// A key's own restrictions, which bound what it creates and acts on;
    /// `None` for users (bound by their role only) and the CLI.
    pub restrictions: Option<Restrictions>,
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
            restrictions: None,
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
            restrictions: Some(Restrictions::of(key)),
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
            restrictions: None,
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
        if let Some(own) = &self.restrictions
            && let Some(field) = own.looser_field(&Restrictions::of(key))
        {
            return Err(not_inherited(field, "A key you act on"));
        }
        Ok(())
    }

    /// Makes a key about to be created at least as restricted as this
    /// principal: fields the request left out take this key's restriction
    /// where it is tighter; a looser value given explicitly is refused.
    pub(crate) fn pass_restrictions_on(&self, new: &mut NewKey) -> Result<(), ServiceError> {
        let Some(own) = &self.restrictions else {
            return Ok(());
        };
        if !new.given.allowed_ips && !new.allowed_ips.within(&own.allowed_ips) {
            new.allowed_ips = own.allowed_ips.clone();
        }
        if !new.given.expires_at
            && let Some(limit) = own.expires_at
            && new.expires_at.is_none_or(|t| t > limit)
        {
            new.expires_at = Some(limit);
        }
        if !new.given.rate_limit_per_minute {
            new.rate_limit_per_minute = new.rate_limit_per_minute.min(own.rate_limit_per_minute);
        }
        let result = Restrictions {
            allowed_ips: new.allowed_ips.clone(),
            expires_at: new.expires_at,
            rate_limit_per_minute: new.rate_limit_per_minute,
        };
        match own.looser_field(&result) {
            Some(field) => Err(not_inherited(field, "A key you create")),
            None => Ok(()),
        }
    }

    /// Refuses a change that would leave `key` less restricted than this
    /// principal (a key freeing itself, or another key, of its bounds).
    pub(crate) fn may_change(
        &self,
        key: &KeyRecord,
        update: &KeyUpdate,
    ) -> Result<(), ServiceError> {
        let Some(own) = &self.restrictions else {
            return Ok(());
        };
        let result = Restrictions {
            allowed_ips: update
                .allowed_ips
                .clone()
                .unwrap_or_else(|| key.allowed_ips.clone()),
            expires_at: update.expires_at.unwrap_or(key.expires_at),
            rate_limit_per_minute: update
                .rate_limit_per_minute
                .unwrap_or(key.rate_limit_per_minute),
        };
        match own.looser_field(&result) {
            Some(field) => Err(not_inherited(field, "A key you change")),
            None => Ok(()),
        }
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
