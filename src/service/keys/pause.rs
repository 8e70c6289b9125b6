//! Pausing and resuming an integration's keys (docs/KEY_OPERATIONS.md):
//! every key made from a template, or a list of keys,
//! in one action. Each key goes through the same rule as any other action on
//! a key ([`Principal::may_act_on`]); a key the caller may not act on is
//! skipped with the reason and never changed. A pause is a key change like a
//! revoke: the store writes the feed row, and this instance's cache forgets
//! the key at once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{KeyService, Principal};
use crate::domain::FieldError;
use crate::domain::key::{KeyRecord, KeyStatus, Pause, PauseReason};
use crate::domain::permission;
use crate::service::ServiceError;

/// At most this many ids in one request.
pub const MAX_KEY_IDS: usize = 1000;

/// `POST /api/v1/keys/pause` and `/resume`: `template` or `key_ids`, exactly one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseInput {
    /// Every key made from this template (customized or not).
    #[schema(example = "zapier")]
    pub template: Option<String>,
    /// These keys.
    #[schema(max_items = 1000)]
    pub key_ids: Option<Vec<String>>,
    /// Why (at most 200 characters); shown to the integration in `key_paused`.
    /// Only for pause.
    #[schema(example = "Zapier security incident, 2026-12-04")]
    pub reason: Option<String>,
}

/// Which keys an action means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    Template(&'static str),
    Keys(Vec<String>),
}

/// A checked pause or resume request.
#[derive(Clone, Debug)]
pub struct PauseRequest {
    pub selection: Selection,
    pub reason: Option<PauseReason>,
}

impl PauseInput {
    pub fn validate(self) -> Result<PauseRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let selection = match (self.template, self.key_ids) {
            (Some(_), Some(_)) | (None, None) => {
                errors.push(FieldError::new(
                    "template",
                    "give exactly one of `template` (e.g. \"zapier\") or `key_ids` (a list of key ids)",
                ));
                None
            }
            (Some(t), None) => match permission::template(&t) {
                Some(t) => Some(Selection::Template(t.id)),
                None => {
                    errors.push(FieldError::new(
                        "template",
                        format!(
                            "no template `{t}`; templates are {}",
                            permission::TEMPLATES
                                .iter()
                                .map(|t| t.id)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    None
                }
            },
            (None, Some(ids)) => {
                if ids.is_empty() {
                    errors.push(FieldError::new("key_ids", "name at least one key id"));
                    None
                } else if ids.len() > MAX_KEY_IDS {
                    errors.push(FieldError::new(
                        "key_ids",
                        format!("at most {MAX_KEY_IDS} ids at once (got {})", ids.len()),
                    ));
                    None
                } else {
                    let mut seen = std::collections::HashSet::new();
                    let ids: Vec<String> = ids
                        .into_iter()
                        .map(|i| i.trim().to_owned())
                        .filter(|i| seen.insert(i.clone()))
                        .collect();
                    Some(Selection::Keys(ids))
                }
            }
        };
        let reason = match self.reason.as_deref().map(PauseReason::parse) {
            None => None,
            Some(Ok(r)) => r,
            Some(Err(m)) => {
                errors.push(FieldError::new("reason", m));
                None
            }
        };
        match selection {
            Some(selection) if errors.is_empty() => Ok(PauseRequest { selection, reason }),
            _ => Err(errors),
        }
    }
}

/// A key an action left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Skipped {
    pub id: String,
    /// `not_found`, `insufficient_permission`, `restriction_not_inherited`,
    /// `revoked`, `expired`, `retired`, `already_paused` or `not_paused`.
    #[schema(example = "already_paused")]
    pub reason: &'static str,
}

/// What a pause or resume did.
#[derive(Clone, Debug, Default)]
pub struct PauseOutcome {
    /// The ids of the keys changed.
    pub changed: Vec<String>,
    pub skipped: Vec<Skipped>,
}

fn refusal_code(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::NotFound => "not_found",
        ServiceError::NotInherited { .. } => "restriction_not_inherited",
        _ => "insufficient_permission",
    }
}

impl KeyService {
    /// The keys `selection` names, in order; ids `principal` cannot see
    /// come back as `Err(id)`.
    async fn selected(
        &self,
        principal: &Principal,
        selection: &Selection,
    ) -> Result<Vec<Result<KeyRecord, String>>, ServiceError> {
        match selection {
            Selection::Template(t) => {
                let mut keys: Vec<KeyRecord> = self
                    .list_all(principal)
                    .await?
                    .into_iter()
                    .filter(|k| k.template.as_deref() == Some(*t))
                    .collect();
                keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
                Ok(keys.into_iter().map(Ok).collect())
            }
            Selection::Keys(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.push(match self.get(principal, id).await {
                        Ok(k) => Ok(k),
                        Err(ServiceError::NotFound) => Err(id.clone()),
                        Err(e) => return Err(e),
                    });
                }
                Ok(out)
            }
        }
    }

    /// Pauses the keys `request` names that `principal` may act on.
    pub async fn pause_keys(
        &self,
        principal: &Principal,
        request: &PauseRequest,
    ) -> Result<PauseOutcome, ServiceError> {
        self.set_paused(principal, request, true).await
    }

    /// Resumes the paused keys `request` names that `principal` may act on.
    pub async fn resume_keys(
        &self,
        principal: &Principal,
        request: &PauseRequest,
    ) -> Result<PauseOutcome, ServiceError> {
        self.set_paused(principal, request, false).await
    }

    async fn set_paused(
        &self,
        principal: &Principal,
        request: &PauseRequest,
        pause: bool,
    ) -> Result<PauseOutcome, ServiceError> {
        let mut outcome = PauseOutcome::default();
        let mut skip = |id: &str, reason: &'static str| {
            outcome.skipped.push(Skipped {
                id: id.to_owned(),
                reason,
            });
        };
        let mut changed = Vec::new();
        for found in self.selected(principal, &request.selection).await? {
            let key = match found {
                Ok(k) => k,
                Err(id) => {
                    skip(&id, "not_found");
                    continue;
                }
            };
            if let Err(e) = principal.may_act_on(&key) {
                skip(&key.id, refusal_code(&e));
                continue;
            }
            let now = self.clock.now();
            let status = key.status(now, self.policy.legacy_sunset);
            let blocked = match (pause, status) {
                (_, KeyStatus::Revoked) => Some("revoked"),
                (true, KeyStatus::Expired) => Some("expired"),
                (true, KeyStatus::Retired) => Some("retired"),
                (true, KeyStatus::Paused) => Some("already_paused"),
                (false, _) if key.paused.is_none() => Some("not_paused"),
                _ => None,
            };
            if let Some(reason) = blocked {
                skip(&key.id, reason);
                continue;
            }
            let (action, details, new) = if pause {
                let p = Pause {
                    at: now,
                    reason: request.reason.clone(),
                    by: principal.actor.clone(),
                };
                let details = serde_json::json!({
                    "reason": request.reason,
                    "template": match &request.selection {
                        Selection::Template(t) => Some(*t),
                        Selection::Keys(_) => None,
                    },
                });
                ("key.paused", details, Some(p))
            } else {
                let details = serde_json::json!({
                    "paused_at": key.paused.as_ref().map(|p| p.at),
                    "reason": key.paused.as_ref().and_then(|p| p.reason.clone()),
                });
                ("key.resumed", details, None)
            };
            let audit = principal.audit(now, action, &key, details);
            match self
                .keys
                .set_paused(&principal.shop_id, &key.id, new.as_ref(), now, &audit)
                .await?
            {
                Some(k) => {
                    self.cache.evict(&k.hash);
                    changed.push(k.id);
                }
                // Changed by someone else in the meantime.
                None => skip(
                    &key.id,
                    if pause {
                        "already_paused"
                    } else {
                        "not_paused"
                    },
                ),
            }
        }
        outcome.changed = changed;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> PauseInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn exactly_one_of_template_or_key_ids() {
        assert!(input(serde_json::json!({})).validate().is_err());
        assert!(
            input(serde_json::json!({"template": "zapier", "key_ids": ["a"]}))
                .validate()
                .is_err()
        );
        assert_eq!(
            input(serde_json::json!({"template": "zapier"}))
                .validate()
                .unwrap()
                .selection,
            Selection::Template("zapier")
        );
        assert_eq!(
            input(serde_json::json!({"key_ids": ["a", "b", "a"]}))
                .validate()
                .unwrap()
                .selection,
            Selection::Keys(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn bad_templates_ids_and_reasons_name_their_field() {
        let field = |v| input(v).validate().unwrap_err()[0].field.clone();
        assert_eq!(field(serde_json::json!({"template": "nope"})), "template");
        assert_eq!(field(serde_json::json!({"key_ids": []})), "key_ids");
        assert_eq!(
            field(serde_json::json!({"template": "zapier", "reason": "a\nb"})),
            "reason"
        );
        assert_eq!(
            field(serde_json::json!({"template": "zapier", "reason": "x".repeat(201)})),
            "reason"
        );
        let blank = input(serde_json::json!({"template": "zapier", "reason": "  "}))
            .validate()
            .unwrap();
        assert!(blank.reason.is_none());
    }
}
