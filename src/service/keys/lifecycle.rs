//! Creating, changing, revoking, deleting and cloning keys.

use std::sync::Arc;

use super::{Given, KeyService, NewKey, Principal};
use crate::domain::FieldError;
use crate::domain::clock::Timestamp;
use crate::domain::key::{KeyKind, KeyName, KeyRecord};
use crate::domain::new_id;
use crate::domain::permission;
use crate::domain::token::{self, PlainKey};
use crate::service::ServiceError;
use crate::store::{AuditEvent, KeyUpdate};

/// A key together with its secret, returned once at creation.
pub struct Created {
    pub key: KeyRecord,
    pub secret: PlainKey,
}

impl KeyService {
    pub(super) fn mint(&self, principal: &Principal, new: NewKey, now: Timestamp) -> Created {
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
            paused: None,
            leaked: None,
        };
        Created { key, secret }
    }

    pub(super) async fn insert(
        &self,
        created: &Created,
        audit: AuditEvent,
    ) -> Result<(), ServiceError> {
        self.keys
            .insert_key(&created.key, self.policy.max_keys_per_shop, &audit)
            .await?;
        self.cache.evict(&created.key.hash);
        Ok(())
    }

    /// Creates a key after the escalation and environment rules.
    pub async fn create_key(
        &self,
        principal: &Principal,
        mut new: NewKey,
    ) -> Result<Created, ServiceError> {
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        principal.pass_restrictions_on(&mut new)?;
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

    pub async fn update_key(
        &self,
        principal: &Principal,
        id: &str,
        update: KeyUpdate,
    ) -> Result<KeyRecord, ServiceError> {
        let key = self.get(principal, id).await?;
        principal.may_act_on(&key)?;
        if let Some(p) = update.permissions {
            principal.may_grant(p)?;
        }
        principal.may_change(&key, &update)?;
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
            .keys
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
        let key = self.get(principal, id).await?;
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
            .keys
            .revoke_key(&principal.shop_id, id, now, &audit)
            .await?;
        self.cache.evict(&key.hash);
        Ok(revoked)
    }

    pub async fn delete_key(&self, principal: &Principal, id: &str) -> Result<(), ServiceError> {
        let key = self.get(principal, id).await?;
        principal.may_act_on(&key)?;
        let audit = principal.audit(
            self.clock.now(),
            "key.deleted",
            &key,
            serde_json::json!({"name": key.name, "display": key.display}),
        );
        self.keys.delete_key(&principal.shop_id, id, &audit).await?;
        self.cache.evict(&key.hash);
        Ok(())
    }

    /// A new key with the same settings as `id` and a new name. An expiry that
    /// has already passed is not copied (the copy would be born expired); a
    /// restricted calling key then gives the copy its own expiry.
    pub async fn clone_key(
        &self,
        principal: &Principal,
        id: &str,
        name: Option<String>,
    ) -> Result<Created, ServiceError> {
        let source = self.get(principal, id).await?;
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
        let expires_at = source.expires_at.filter(|t| *t > now);
        let mut new = NewKey {
            name,
            template: source
                .template
                .as_deref()
                .and_then(permission::template)
                .map(|t| t.id),
            permissions: source.permissions,
            environment: source.environment,
            allowed_ips: source.allowed_ips.clone(),
            expires_at,
            rate_limit_per_minute: source.rate_limit_per_minute,
            given: Given {
                expires_at: expires_at.is_some(),
                ..Given::ALL
            },
        };
        principal.may_use_environment(new.environment)?;
        principal.may_grant(new.permissions)?;
        principal.pass_restrictions_on(&mut new)?;
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
        match self.keys.mark_key_sent_in_url(&key.id, &audit).await {
            Ok(()) => self.cache.evict(&key.hash),
            Err(e) => tracing::warn!(key_id = %key.id, error = %e, "could not record key_in_url"),
        }
    }
}
