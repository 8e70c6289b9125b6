//! Replacing a key: rolling a standard key, upgrading a legacy one.

use super::{Created, Given, KeyService, NewKey, Principal};
use crate::domain::FieldError;
use crate::domain::key::KeyRecord;
use crate::domain::key::{KeyKind, KeyStatus};
use crate::domain::permission::{self, PermissionSet};
use crate::domain::token::Environment;
use crate::service::ServiceError;
use crate::store::usage::EndpointUsage;

/// The longest grace period a roll may give the old key (7 days).
pub const MAX_ROLL_GRACE_SECONDS: i64 = 604_800;

/// The answer to an upgrade: the new key, the legacy key as it now is, and a
/// note when narrowing was asked for but could not narrow.
pub struct Upgraded {
    pub created: Created,
    pub legacy: KeyRecord,
    pub warnings: Vec<String>,
}

impl KeyService {
    /// Rolls key `id`: a replacement with the same name, permissions, IPs,
    /// rate limit, expiry (the one before the grace period shortens it) and
    /// environment (and template), and the old key expires
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
        let source = self.get(principal, id).await?;
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
        if let Some(to) = self.keys.rolled_to(&source.id).await? {
            return Err(ServiceError::Conflict(format!(
                "This key has already been rolled (to {to}); roll its replacement instead."
            )));
        }
        let mut new = NewKey {
            name: source.name.clone(),
            template: source
                .template
                .as_deref()
                .and_then(permission::template)
                .map(|t| t.id),
            permissions: source.permissions,
            environment: source.environment,
            allowed_ips: source.allowed_ips.clone(),
            expires_at: source.expires_at,
            rate_limit_per_minute: source.rate_limit_per_minute,
            given: Given::ALL,
        };
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        principal.pass_restrictions_on(&mut new)?;
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
            .keys
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
    /// need one), allowed IPs, rate limit and expiry. The legacy key keeps working until the
    /// cut-off unless `retire_legacy`, which retires it now. A key that is
    /// not legacy, a revoked one, or one already upgraded is a conflict (409):
    /// the request is well formed, the key is in the wrong state for it.
    pub async fn upgrade_key(
        &self,
        principal: &Principal,
        id: &str,
        retire_legacy: bool,
        narrow_to_used: bool,
    ) -> Result<Upgraded, ServiceError> {
        let source = self.get(principal, id).await?;
        principal.may_act_on(&source)?;
        if source.kind != KeyKind::Legacy {
            return Err(ServiceError::Conflict(
                "Only legacy keys can be upgraded; this key is already a standard key (roll it to replace it).".into(),
            ));
        }
        if source.revoked_at.is_some() {
            return Err(ServiceError::Conflict(
                "This legacy key is revoked; create a new key instead.".into(),
            ));
        }
        // A legacy key is upgraded once: the new key is recorded as its
        // replacement (`rolled_to`), which the store refuses to set twice,
        // so two upgrades racing cannot both make a key either.
        if let Some(to) = self.keys.rolled_to(&source.id).await? {
            return Err(ServiceError::Conflict(format!(
                "This legacy key has already been upgraded (to {to}); manage that key instead."
            )));
        }
        let now = self.clock.now();
        let mut warnings = Vec::new();
        let mut permissions = source.permissions;
        if narrow_to_used {
            let usage = self.usage.key_usage(&source.id, now).await?;
            let used = self.permissions_used(&usage.endpoints);
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
        let mut new = NewKey {
            name: source.name.clone(),
            template: None,
            permissions,
            environment: Environment::Live,
            allowed_ips: source.allowed_ips.clone(),
            expires_at: source.expires_at,
            rate_limit_per_minute: source.rate_limit_per_minute,
            given: Given::ALL,
        };
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        principal.pass_restrictions_on(&mut new)?;
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
            mark_rolled: true,
            expires_at: None,
            retired_at: retire_legacy.then_some(now),
        };
        let legacy = self
            .keys
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

impl KeyService {
    /// The permissions the endpoints in `used` need (routes the table does
    /// not know, and routes any key may call, add nothing).
    fn permissions_used(&self, used: &[EndpointUsage]) -> PermissionSet {
        used.iter()
            .filter(|e| e.requests > 0)
            .filter_map(|e| (self.route_permission)(&e.method.to_ascii_uppercase(), &e.route))
            .collect()
    }
}
