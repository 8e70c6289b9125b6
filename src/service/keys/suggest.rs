//! Least-privilege suggestions (docs/KEY_OPERATIONS.md): from the
//! key's requests per day, route and client address (the usage flush keeps
//! them 30 days), what the key could give up. Applying one is an ordinary
//! update through [`KeyService::update_key`], so every rule of who may change
//! what still holds, and a suggestion can only ever narrow a key.

use std::collections::BTreeSet;

use serde::Serialize;
use utoipa::ToSchema;

use super::{KeyService, Principal};
use crate::domain::FieldError;
use crate::domain::clock::Timestamp;
use crate::domain::key::{KeyRecord, KeyStatus};
use crate::domain::net::AllowedIps;
use crate::domain::permission::PermissionSet;
use crate::service::ServiceError;
use crate::store::KeyUpdate;
use crate::store::usage::{DAY, ROUTE_USE_DAYS};

/// Addresses at most, for a `restrict_ips` suggestion.
pub const MAX_SUGGESTED_IPS: usize = 3;
/// A key unused this long is suggested for revocation.
const UNUSED_DAYS: i64 = 30;
/// A key never used is suggested for revocation once this old.
const NEVER_USED_DAYS: i64 = 7;

/// One suggestion.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Suggestion {
    /// Permissions held that no request needed.
    UnusedPermissions {
        #[schema(value_type = Vec<super::view::PermissionName>)]
        permissions: PermissionSet,
        detail: String,
    },
    /// No allow-list, and every request came from these few addresses.
    RestrictIps {
        seen_ips: Vec<String>,
        detail: String,
    },
    /// Not used for 30 days (or never, once a week old).
    UnusedKey {
        last_used_at: Option<Timestamp>,
        detail: String,
    },
    /// The key never expires.
    AddExpiry { detail: String },
}

impl Suggestion {
    pub fn kind(&self) -> &'static str {
        match self {
            Suggestion::UnusedPermissions { .. } => "unused_permissions",
            Suggestion::RestrictIps { .. } => "restrict_ips",
            Suggestion::UnusedKey { .. } => "unused_key",
            Suggestion::AddExpiry { .. } => "add_expiry",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Suggestion::UnusedPermissions { detail, .. }
            | Suggestion::RestrictIps { detail, .. }
            | Suggestion::UnusedKey { detail, .. }
            | Suggestion::AddExpiry { detail } => detail,
        }
    }
}

/// `GET /api/v1/keys/{id}/suggestions`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Suggestions {
    pub suggestions: Vec<Suggestion>,
    /// The start of what the suggestions are based on: the key's creation,
    /// at most 30 days back.
    pub observed_since: Timestamp,
}

impl KeyService {
    /// The suggestions for a key `principal` may see.
    pub async fn suggestions(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Suggestions, ServiceError> {
        let key = self.get(principal, id).await?;
        self.suggestions_for(&key).await
    }

    /// The suggestions for `key` (already checked visible).
    pub async fn suggestions_for(&self, key: &KeyRecord) -> Result<Suggestions, ServiceError> {
        let now = self.clock.now();
        let window_start = Timestamp::from_micros(now.as_micros() - ROUTE_USE_DAYS * DAY);
        let observed_since = key.created_at.max(window_start);
        let mut out = Vec::new();
        if !matches!(
            key.status(now, self.policy.legacy_sunset),
            KeyStatus::Active | KeyStatus::Paused
        ) {
            return Ok(Suggestions {
                suggestions: out,
                observed_since,
            });
        }
        let uses = self.usage.route_uses(&key.id, observed_since).await?;
        let summary = self
            .usage
            .usage_summaries(std::slice::from_ref(&key.id), now)
            .await?
            .remove(&key.id)
            .unwrap_or_default();
        if !uses.is_empty() {
            let needed: PermissionSet = uses
                .iter()
                .filter_map(|u| (self.route_permission)(&u.method, &u.route))
                .collect();
            let unused: PermissionSet = key
                .permissions
                .iter()
                .filter(|p| !needed.contains(*p))
                .collect();
            if !unused.is_empty() {
                let names = unused.to_names().join(", ");
                out.push(Suggestion::UnusedPermissions {
                    permissions: unused,
                    detail: format!(
                        "No request since {} needed {names}; remove {} so a stolen copy of this key can do less.",
                        observed_since,
                        if unused.iter().count() == 1 { "it" } else { "them" }
                    ),
                });
            }
            let ips: BTreeSet<&str> = uses.iter().map(|u| u.ip.as_str()).collect();
            if key.allowed_ips.is_empty()
                && ips.len() <= MAX_SUGGESTED_IPS
                && !ips.contains(crate::auth::usage::OTHER_ADDRESSES)
            {
                let seen: Vec<String> = ips.into_iter().map(str::to_owned).collect();
                out.push(Suggestion::RestrictIps {
                    detail: format!(
                        "Every request since {observed_since} came from {}; allow only {} so the key is useless anywhere else.",
                        seen.join(", "),
                        if seen.len() == 1 { "that address" } else { "those addresses" }
                    ),
                    seen_ips: seen,
                });
            }
        }
        let age_days = (now.as_micros() - key.created_at.as_micros()) / DAY;
        match summary.last_used_at {
            Some(last) if now.as_micros() - last.as_micros() >= UNUSED_DAYS * DAY => {
                out.push(Suggestion::UnusedKey {
                    last_used_at: Some(last),
                    detail: format!(
                        "Not used since {last}. If nothing needs it any more, revoke it: an unused key is only a risk."
                    ),
                });
            }
            None if age_days >= NEVER_USED_DAYS => out.push(Suggestion::UnusedKey {
                last_used_at: None,
                detail: format!(
                    "Never used in the {age_days} days since it was made. If nothing needs it, revoke it."
                ),
            }),
            _ => {}
        }
        if key.expires_at.is_none() {
            out.push(Suggestion::AddExpiry {
                detail: "This key never expires. Give it an expiry (and a reminder to roll it) so a forgotten copy stops working by itself.".into(),
            });
        }
        Ok(Suggestions {
            suggestions: out,
            observed_since,
        })
    }

    /// Applies the `kind` suggestion (`unused_permissions` or
    /// `restrict_ips`) as it stands now, through the normal update rules.
    pub async fn apply_suggestion(
        &self,
        principal: &Principal,
        id: &str,
        kind: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let key = self.get(principal, id).await?;
        let current = self.suggestions_for(&key).await?;
        let found = current.suggestions.into_iter().find(|s| s.kind() == kind);
        let update = match found {
            Some(Suggestion::UnusedPermissions { permissions, .. }) => {
                let kept: PermissionSet = key
                    .permissions
                    .iter()
                    .filter(|p| !permissions.contains(*p))
                    .collect();
                KeyUpdate {
                    permissions: Some(kept),
                    ..KeyUpdate::default()
                }
            }
            Some(Suggestion::RestrictIps { seen_ips, .. }) => {
                let ips = AllowedIps::parse(&seen_ips).map_err(|_| {
                    ServiceError::Conflict(
                        "The addresses seen cannot be made an allow-list.".into(),
                    )
                })?;
                KeyUpdate {
                    allowed_ips: Some(ips),
                    ..KeyUpdate::default()
                }
            }
            Some(_) => {
                return Err(ServiceError::Validation(vec![FieldError::new(
                    "kind",
                    format!("`{kind}` has no one-click apply; change the key by hand"),
                )]));
            }
            None => {
                return Err(ServiceError::Conflict(format!(
                    "There is no `{kind}` suggestion for this key any more; nothing was changed."
                )));
            }
        };
        self.update_key(principal, id, update).await
    }
}
