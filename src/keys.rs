//! The key lifecycle: the rules every way in (API, CLI, web UI) shares.
//! Validation of raw input, the escalation rule, and the mutations with their
//! audit events and cache evictions.

use std::sync::Arc;

use serde::Deserialize;

use crate::app::Core;
use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyKind, KeyName, KeyRecord, KeyStatus, validate_rate_limit};
use crate::domain::net::AllowedIps;
use crate::domain::new_id;
use crate::domain::permission::{self, Permission, PermissionSet};
use crate::domain::token::{self, Environment, PlainKey};
use crate::error::{FieldError, ServiceError};
use crate::store::{AuditEvent, KeyUpdate};

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

    fn may_grant(&self, wanted: PermissionSet) -> Result<(), ServiceError> {
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

    fn may_use_environment(&self, env: Environment) -> Result<(), ServiceError> {
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
    fn may_act_on(&self, key: &KeyRecord) -> Result<(), ServiceError> {
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

    /// Whether a key is visible at all (other shops' and environments' keys are
    /// not: they answer 404, not 403).
    pub fn can_see(&self, key: &KeyRecord) -> bool {
        key.shop_id == self.shop_id && self.environment.is_none_or(|e| e == key.environment)
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

/// A request to create a key, as it arrives (JSON, CLI flags or a form).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyInput {
    /// Where the key is used, 1–100 characters (default: the template's name).
    #[schema(example = "Zapier – new orders")]
    pub name: Option<String>,
    /// A template id from `/api/v1/key-templates`; fills `permissions`.
    #[schema(example = "zapier")]
    pub template: Option<String>,
    /// Overrides the template's permissions; at most what the caller holds.
    #[schema(value_type = Option<Vec<crate::http::api::keys::PermissionName>>)]
    pub permissions: Option<Vec<String>>,
    /// `live` or `test` (default: the caller's; a key creates only its own kind).
    #[schema(value_type = Option<crate::domain::token::Environment>)]
    pub environment: Option<String>,
    /// IPv4/IPv6 addresses and CIDR ranges; empty or absent allows any.
    #[schema(example = json!(["203.0.113.7", "198.51.100.0/24"]))]
    pub allowed_ips: Option<Vec<String>>,
    /// When the key stops working (RFC 3339, in the future).
    #[schema(format = DateTime, example = "2027-06-30T17:00:00Z")]
    pub expires_at: Option<String>,
    /// 1–10000 (default: the server's, 100).
    #[schema(minimum = 1, maximum = 10000, example = 100)]
    pub rate_limit_per_minute: Option<i64>,
}

/// A validated creation request.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub name: KeyName,
    pub template: Option<&'static str>,
    pub permissions: PermissionSet,
    pub environment: Environment,
    pub allowed_ips: AllowedIps,
    pub expires_at: Option<Timestamp>,
    pub rate_limit_per_minute: u32,
}

fn ips_errors(field: &str, errs: Vec<(usize, String)>) -> Vec<FieldError> {
    errs.into_iter()
        .map(|(line, message)| {
            FieldError::new(
                if line == 0 {
                    field.to_owned()
                } else {
                    format!("{field}[{}]", line - 1)
                },
                message,
            )
        })
        .collect()
}

fn future_instant(field: &str, raw: &str, now: Timestamp) -> Result<Timestamp, FieldError> {
    let t = Timestamp::parse_rfc3339(raw).map_err(|m| FieldError::new(field, m))?;
    if t <= now {
        return Err(FieldError::new(
            field,
            format!("must be in the future (it is now {now})"),
        ));
    }
    Ok(t)
}

impl NewKeyInput {
    /// Checks every field and reports every problem at once.
    pub fn validate(
        self,
        now: Timestamp,
        default_environment: Environment,
        default_rate_limit: u32,
    ) -> Result<NewKey, Vec<FieldError>> {
        let mut errors = Vec::new();
        let template = match self.template.as_deref() {
            None => None,
            Some(id) => match permission::template(id) {
                Some(t) => Some(t),
                None => {
                    let ids: Vec<&str> = permission::TEMPLATES.iter().map(|t| t.id).collect();
                    errors.push(FieldError::new(
                        "template",
                        format!(
                            "unknown template `{id}`: expected one of {}",
                            ids.join(", ")
                        ),
                    ));
                    None
                }
            },
        };
        let name = match (self.name.as_deref(), template) {
            (Some(n), _) => KeyName::parse(n)
                .map_err(|m| errors.push(FieldError::new("name", m)))
                .ok(),
            (None, Some(t)) => KeyName::parse(t.name).ok(),
            (None, None) => {
                errors.push(FieldError::new(
                    "name",
                    "give the key a name that says where it is used, e.g. \"Website contact form\"",
                ));
                None
            }
        };
        let permissions = match (&self.permissions, template) {
            (Some(list), _) => match PermissionSet::parse_list(list) {
                Ok(set) if set.is_empty() => {
                    errors.push(FieldError::new(
                        "permissions",
                        "give at least one permission",
                    ));
                    None
                }
                Ok(set) => Some(set),
                Err(m) => {
                    errors.push(FieldError::new("permissions", m));
                    None
                }
            },
            (None, Some(t)) => Some(t.permissions),
            (None, None) if self.template.is_none() => {
                errors.push(FieldError::new(
                    "permissions",
                    "choose a template or list the permissions the key needs",
                ));
                None
            }
            (None, None) => None,
        };
        let environment = match self.environment.as_deref() {
            None => Some(default_environment),
            Some(e) => e
                .parse()
                .map_err(|m| errors.push(FieldError::new("environment", m)))
                .ok(),
        };
        let allowed_ips = match &self.allowed_ips {
            None => Some(AllowedIps::default()),
            Some(list) => AllowedIps::parse(list)
                .map_err(|e| errors.extend(ips_errors("allowed_ips", e)))
                .ok(),
        };
        let expires_at = match self.expires_at.as_deref() {
            None => Some(None),
            Some(raw) => future_instant("expires_at", raw, now)
                .map(Some)
                .map_err(|e| errors.push(e))
                .ok(),
        };
        let rate_limit = match self.rate_limit_per_minute {
            None => Some(default_rate_limit),
            Some(n) => validate_rate_limit(n)
                .map_err(|m| errors.push(FieldError::new("rate_limit_per_minute", m)))
                .ok(),
        };
        match (
            name,
            permissions,
            environment,
            allowed_ips,
            expires_at,
            rate_limit,
        ) {
            (
                Some(name),
                Some(permissions),
                Some(environment),
                Some(allowed_ips),
                Some(expires_at),
                Some(rate_limit_per_minute),
            ) if errors.is_empty() => Ok(NewKey {
                name,
                template: template.map(|t| t.id),
                permissions,
                environment,
                allowed_ips,
                expires_at,
                rate_limit_per_minute,
            }),
            _ => Err(errors),
        }
    }
}

/// A change to a key as it arrives. Absent fields stay as they are; for
/// `expires_at`, `Some(None)` (JSON `null`) removes the expiry.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdateInput {
    pub name: Option<String>,
    /// `null` or `[]` allows any address.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Option<Vec<String>>>,
    /// `null` removes the expiry.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit_per_minute: Option<i64>,
    #[schema(value_type = Option<Vec<crate::http::api::keys::PermissionName>>)]
    pub permissions: Option<Vec<String>>,
}

impl KeyUpdateInput {
    pub fn validate(self, now: Timestamp) -> Result<KeyUpdate, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut update = KeyUpdate::default();
        if let Some(n) = self.name {
            update.name = KeyName::parse(&n)
                .map_err(|m| errors.push(FieldError::new("name", m)))
                .ok();
        }
        if let Some(ips) = self.allowed_ips {
            update.allowed_ips = AllowedIps::parse(&ips.unwrap_or_default())
                .map_err(|e| errors.extend(ips_errors("allowed_ips", e)))
                .ok();
        }
        if let Some(exp) = self.expires_at {
            update.expires_at = match exp {
                None => Some(None),
                Some(raw) => future_instant("expires_at", &raw, now)
                    .map(Some)
                    .map_err(|e| errors.push(e))
                    .ok(),
            };
        }
        if let Some(n) = self.rate_limit_per_minute {
            update.rate_limit_per_minute = validate_rate_limit(n)
                .map_err(|m| errors.push(FieldError::new("rate_limit_per_minute", m)))
                .ok();
        }
        if let Some(list) = self.permissions {
            update.permissions = match PermissionSet::parse_list(&list) {
                Ok(set) if set.is_empty() => {
                    errors.push(FieldError::new(
                        "permissions",
                        "give at least one permission",
                    ));
                    None
                }
                Ok(set) => Some(set),
                Err(m) => {
                    errors.push(FieldError::new("permissions", m));
                    None
                }
            };
        }
        if errors.is_empty() {
            Ok(update)
        } else {
            Err(errors)
        }
    }
}

/// A key together with its secret, returned once at creation.
pub struct Created {
    pub key: KeyRecord,
    pub secret: PlainKey,
}

impl Core {
    fn mint(&self, principal: &Principal, new: NewKey, now: Timestamp) -> Created {
        let secret = token::generate(new.environment);
        let key = KeyRecord {
            id: new_id("key"),
            shop_id: principal.shop_id.clone(),
            name: new.name,
            environment: new.environment,
            kind: KeyKind::Standard,
            display: token::display_form(secret.expose()),
            hash: self.hasher.hash(secret.expose()),
            permissions: new.permissions,
            allowed_ips: new.allowed_ips,
            rate_limit_per_minute: new.rate_limit_per_minute,
            expires_at: new.expires_at,
            revoked_at: None,
            retired_at: None,
            template: new.template.map(str::to_owned),
            created_at: now,
            updated_at: now,
            created_by: principal.actor.clone(),
            sent_in_url_at: None,
        };
        Created { key, secret }
    }

    async fn insert(&self, created: &Created, audit: AuditEvent) -> Result<(), ServiceError> {
        self.store
            .insert_key(&created.key, self.policy.max_keys_per_shop, &audit)
            .await?;
        self.cache.evict(&created.key.hash);
        Ok(())
    }

    /// Creates a key after the escalation and environment rules.
    pub async fn create_key(
        &self,
        principal: &Principal,
        new: NewKey,
    ) -> Result<Created, ServiceError> {
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        let now = self.clock.now();
        let created = self.mint(principal, new, now);
        let audit = principal.audit(
            now,
            "key.created",
            &created.key,
            serde_json::json!({
                "name": created.key.name.as_str(),
                "permissions": created.key.permissions,
                "template": created.key.template,
            }),
        );
        self.insert(&created, audit).await?;
        Ok(created)
    }

    /// A key visible to `principal`, or `NotFound`.
    pub async fn visible_key(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<KeyRecord, ServiceError> {
        match self.store.get_key(&principal.shop_id, id).await? {
            Some(key) if principal.can_see(&key) => Ok(key),
            _ => Err(ServiceError::NotFound),
        }
    }

    pub async fn update_key(
        &self,
        principal: &Principal,
        id: &str,
        update: KeyUpdate,
    ) -> Result<KeyRecord, ServiceError> {
        let key = self.visible_key(principal, id).await?;
        principal.may_act_on(&key)?;
        if let Some(p) = update.permissions {
            principal.may_grant(p)?;
        }
        if key.revoked_at.is_some() {
            return Err(ServiceError::Conflict(
                "This key is revoked; revoked keys cannot be changed. Create a new key instead."
                    .into(),
            ));
        }
        if update.is_empty() {
            return Ok(key);
        }
        let now = self.clock.now();
        let mut changes = serde_json::Map::new();
        if let Some(n) = &update.name {
            changes.insert(
                "name".into(),
                serde_json::json!({"from": key.name, "to": n}),
            );
        }
        if let Some(ips) = &update.allowed_ips {
            changes.insert(
                "allowed_ips".into(),
                serde_json::json!({"from": key.allowed_ips, "to": ips}),
            );
        }
        if let Some(exp) = &update.expires_at {
            changes.insert(
                "expires_at".into(),
                serde_json::json!({"from": key.expires_at, "to": exp}),
            );
        }
        if let Some(r) = update.rate_limit_per_minute {
            changes.insert(
                "rate_limit_per_minute".into(),
                serde_json::json!({"from": key.rate_limit_per_minute, "to": r}),
            );
        }
        if let Some(p) = update.permissions {
            changes.insert(
                "permissions".into(),
                serde_json::json!({"from": key.permissions, "to": p}),
            );
        }
        let audit = principal.audit(now, "key.updated", &key, serde_json::Value::Object(changes));
        let updated = self
            .store
            .update_key(&principal.shop_id, id, &update, now, &audit)
            .await?;
        self.cache.evict(&key.hash);
        Ok(updated)
    }

    /// Revokes a key; revoking a revoked key changes nothing and succeeds.
    /// `itself` is the `/me/revoke` path, where any key may revoke itself.
    pub async fn revoke_key(
        &self,
        principal: &Principal,
        id: &str,
        itself: bool,
    ) -> Result<KeyRecord, ServiceError> {
        let key = self.visible_key(principal, id).await?;
        if !itself {
            principal.may_act_on(&key)?;
        }
        let now = self.clock.now();
        let action = if itself {
            "key.revoked_itself"
        } else {
            "key.revoked"
        };
        let audit = principal.audit(now, action, &key, serde_json::json!({}));
        let revoked = self
            .store
            .revoke_key(&principal.shop_id, id, now, &audit)
            .await?;
        self.cache.evict(&key.hash);
        Ok(revoked)
    }

    pub async fn delete_key(&self, principal: &Principal, id: &str) -> Result<(), ServiceError> {
        let key = self.visible_key(principal, id).await?;
        principal.may_act_on(&key)?;
        let audit = principal.audit(
            self.clock.now(),
            "key.deleted",
            &key,
            serde_json::json!({"name": key.name, "display": key.display}),
        );
        self.store
            .delete_key(&principal.shop_id, id, &audit)
            .await?;
        self.cache.evict(&key.hash);
        Ok(())
    }

    /// A new key with the same settings as `id` and a new name. An expiry that
    /// has already passed is not copied (the copy would be born expired).
    pub async fn clone_key(
        &self,
        principal: &Principal,
        id: &str,
        name: Option<String>,
    ) -> Result<Created, ServiceError> {
        let source = self.visible_key(principal, id).await?;
        principal.may_act_on(&source)?;
        let now = self.clock.now();
        let name = match name {
            Some(n) => KeyName::parse(&n)
                .map_err(|m| ServiceError::Validation(vec![FieldError::new("name", m)]))?,
            None => {
                let copy: String = format!("{} (copy)", source.name.as_str());
                KeyName::parse(&copy.chars().take(100).collect::<String>())
                    .map_err(|m| ServiceError::Validation(vec![FieldError::new("name", m)]))?
            }
        };
        let new = NewKey {
            name,
            template: source
                .template
                .as_deref()
                .and_then(permission::template)
                .map(|t| t.id),
            permissions: source.permissions,
            environment: source.environment,
            allowed_ips: source.allowed_ips.clone(),
            expires_at: source.expires_at.filter(|t| *t > now),
            rate_limit_per_minute: source.rate_limit_per_minute,
        };
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        let created = self.mint(principal, new, now);
        let audit = principal.audit(
            now,
            "key.cloned",
            &created.key,
            serde_json::json!({"cloned_from": source.id, "name": created.key.name}),
        );
        self.insert(&created, audit).await?;
        Ok(created)
    }

    /// The status of a key now.
    pub fn status_of(&self, key: &KeyRecord) -> KeyStatus {
        key.status(self.clock.now(), self.policy.legacy_sunset)
    }

    /// Records that a standard key arrived in a URL: a warning on the key and an
    /// audit event, at most once an hour per key so a misconfigured poller
    /// cannot turn every request into a database write.
    pub async fn note_key_in_url(&self, key: &Arc<KeyRecord>, ip: std::net::IpAddr) {
        let now = self.clock.now();
        if key
            .sent_in_url_at
            .is_some_and(|t| t.plus_seconds(3600) > now)
        {
            return;
        }
        let principal = Principal::key(key, ip);
        let audit = principal.audit(now, "key.sent_in_url", key, serde_json::json!({}));
        match self.store.mark_key_sent_in_url(&key.id, &audit).await {
            Ok(()) => self.cache.evict(&key.hash),
            Err(e) => tracing::warn!(key_id = %key.id, error = %e, "could not record key_in_url"),
        }
    }
}

/// The longest grace period a roll may give the old key (7 days).
pub const MAX_ROLL_GRACE_SECONDS: i64 = 604_800;

/// The answer to an upgrade: the new key, the legacy key as it now is, and a
/// note when narrowing was asked for but could not narrow.
pub struct Upgraded {
    pub created: Created,
    pub legacy: KeyRecord,
    pub warnings: Vec<String>,
}

impl Core {
    /// Rolls key `id`: a replacement with the same name, permissions, IPs,
    /// rate limit and environment (and template; not the expiry — a key is
    /// often rolled because it is about to expire), and the old key expires
    /// `grace_seconds` from now (or earlier, if it already would). A key is
    /// rolled once: rolling it again is `Conflict`. Legacy keys are upgraded,
    /// not rolled.
    pub async fn roll_key(
        &self,
        principal: &Principal,
        id: &str,
        grace_seconds: i64,
    ) -> Result<(Created, KeyRecord), ServiceError> {
        if !(0..=MAX_ROLL_GRACE_SECONDS).contains(&grace_seconds) {
            return Err(ServiceError::Validation(vec![FieldError::new(
                "expire_old_in_seconds",
                format!(
                    "must be between 0 and {MAX_ROLL_GRACE_SECONDS} seconds (7 days); got {grace_seconds}"
                ),
            )]));
        }
        let source = self.visible_key(principal, id).await?;
        principal.may_act_on(&source)?;
        if source.kind == KeyKind::Legacy {
            return Err(ServiceError::Conflict(
                "Legacy keys are not rolled: upgrade this key instead (POST /api/v1/keys/{id}/upgrade).".into(),
            ));
        }
        let now = self.clock.now();
        match source.status(now, self.policy.legacy_sunset) {
            KeyStatus::Active => {}
            other => {
                return Err(ServiceError::Conflict(format!(
                    "This key is {}; only an active key can be rolled. Create a new key instead.",
                    other.as_str()
                )));
            }
        }
        if let Some(to) = self.store.rolled_to(&source.id).await? {
            return Err(ServiceError::Conflict(format!(
                "This key has already been rolled (to {to}); roll its replacement instead."
            )));
        }
        let new = NewKey {
            name: source.name.clone(),
            template: source
                .template
                .as_deref()
                .and_then(permission::template)
                .map(|t| t.id),
            permissions: source.permissions,
            environment: source.environment,
            allowed_ips: source.allowed_ips.clone(),
            expires_at: None,
            rate_limit_per_minute: source.rate_limit_per_minute,
        };
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        let created = self.mint(principal, new, now);
        let old_expires = now.plus_seconds(grace_seconds);
        let old_expires = match source.expires_at {
            Some(t) if t < old_expires => t,
            _ => old_expires,
        };
        let audits = [
            principal.audit(
                now,
                "key.rolled",
                &source,
                serde_json::json!({
                    "rolled_to": created.key.id,
                    "expire_old_in_seconds": grace_seconds,
                    "expires_at": old_expires,
                }),
            ),
            principal.audit(
                now,
                "key.created",
                &created.key,
                serde_json::json!({
                    "rolled_from": source.id,
                    "name": created.key.name,
                    "permissions": created.key.permissions,
                }),
            ),
        ];
        let change = crate::store::Replacement {
            mark_rolled: true,
            expires_at: Some(old_expires),
            retired_at: None,
        };
        let old = self
            .store
            .replace_key(
                &created.key,
                self.policy.max_keys_per_shop,
                &source.id,
                &change,
                &audits,
            )
            .await?;
        self.cache.evict(&source.hash);
        self.cache.evict(&created.key.hash);
        Ok((created, old))
    }

    /// Upgrades legacy key `id`: a new standard live key with its name,
    /// permissions (with `narrow_to_used`, only those of the endpoints it
    /// actually called — kept whole, with a warning, when it called none that
    /// need one) and allowed IPs. The legacy key keeps working until the
    /// cut-off unless `retire_legacy`, which retires it now. A key that is
    /// not legacy is a validation error (422); a revoked one a conflict.
    pub async fn upgrade_key(
        &self,
        principal: &Principal,
        id: &str,
        retire_legacy: bool,
        narrow_to_used: bool,
    ) -> Result<Upgraded, ServiceError> {
        let source = self.visible_key(principal, id).await?;
        principal.may_act_on(&source)?;
        if source.kind != KeyKind::Legacy {
            return Err(ServiceError::Validation(vec![FieldError::new(
                "id",
                "only legacy keys can be upgraded; this key is already a standard key (roll it to replace it)",
            )]));
        }
        if source.revoked_at.is_some() {
            return Err(ServiceError::Conflict(
                "This legacy key is revoked; create a new key instead.".into(),
            ));
        }
        let now = self.clock.now();
        let mut warnings = Vec::new();
        let mut permissions = source.permissions;
        if narrow_to_used {
            let usage = self.store.key_usage(&source.id, now).await?;
            let used = crate::legacy::permissions_used(&usage.endpoints);
            let narrowed: PermissionSet = source
                .permissions
                .iter()
                .filter(|p| used.contains(*p))
                .collect();
            if narrowed.is_empty() {
                warnings.push(
                    "The legacy key has not called any endpoint that needs a permission, so its permissions were kept as they are. Narrow them later by editing the new key."
                        .to_owned(),
                );
            } else {
                permissions = narrowed;
            }
        }
        let new = NewKey {
            name: source.name.clone(),
            template: None,
            permissions,
            environment: Environment::Live,
            allowed_ips: source.allowed_ips.clone(),
            expires_at: None,
            rate_limit_per_minute: source.rate_limit_per_minute,
        };
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        let created = self.mint(principal, new, now);
        let audits = [
            principal.audit(
                now,
                "key.upgraded",
                &source,
                serde_json::json!({
                    "upgraded_to": created.key.id,
                    "retire_legacy": retire_legacy,
                    "narrow_to_used": narrow_to_used,
                }),
            ),
            principal.audit(
                now,
                "key.created",
                &created.key,
                serde_json::json!({
                    "upgraded_from": source.id,
                    "name": created.key.name,
                    "permissions": created.key.permissions,
                }),
            ),
        ];
        let change = crate::store::Replacement {
            mark_rolled: false,
            expires_at: None,
            retired_at: retire_legacy.then_some(now),
        };
        let legacy = self
            .store
            .replace_key(
                &created.key,
                self.policy.max_keys_per_shop,
                &source.id,
                &change,
                &audits,
            )
            .await?;
        self.cache.evict(&source.hash);
        self.cache.evict(&created.key.hash);
        Ok(Upgraded {
            created,
            legacy,
            warnings,
        })
    }
}
