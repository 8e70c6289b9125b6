//! Key requests as they arrive (JSON, CLI flags, a form), and their validation.

use serde::Deserialize;

use crate::domain::FieldError;
use crate::domain::clock::Timestamp;
use crate::domain::key::{KeyName, validate_rate_limit};
use crate::domain::net::AllowedIps;
use crate::domain::permission::{self, PermissionSet};
use crate::domain::token::Environment;
use crate::store::KeyUpdate;

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
    #[schema(value_type = Option<Vec<super::view::PermissionName>>)]
    pub permissions: Option<Vec<String>>,
    /// `live` or `test` (default: the caller's; a key creates only its own kind).
    #[schema(value_type = Option<crate::domain::token::Environment>)]
    pub environment: Option<String>,
    /// IPv4/IPv6 addresses and CIDR ranges; empty or `null` allows any.
    /// Absent: any, or the calling key's own list when it has one.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["203.0.113.7", "198.51.100.0/24"]))]
    pub allowed_ips: Option<Option<Vec<String>>>,
    /// When the key stops working (RFC 3339, in the future); `null` never.
    /// Absent: never, or the calling key's own expiry when it has one.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2027-06-30T17:00:00Z")]
    pub expires_at: Option<Option<String>>,
    /// 1–10000 (default: the server's, 100, or the calling key's own limit
    /// when that is lower).
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
    /// Which restrictions the request gave (the rest are defaults, which a
    /// restricted calling key tightens to its own).
    pub given: Given,
}

/// Which of a new key's restrictions were given explicitly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Given {
    pub allowed_ips: bool,
    pub expires_at: bool,
    pub rate_limit_per_minute: bool,
}

impl Given {
    /// Every restriction given: a key copied from another (clone, roll,
    /// upgrade) carries the original's.
    pub const ALL: Given = Given {
        allowed_ips: true,
        expires_at: true,
        rate_limit_per_minute: true,
    };
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
        let given = Given {
            allowed_ips: self.allowed_ips.is_some(),
            expires_at: self.expires_at.is_some(),
            rate_limit_per_minute: self.rate_limit_per_minute.is_some(),
        };
        let allowed_ips = match self.allowed_ips.flatten() {
            None => Some(AllowedIps::default()),
            Some(list) => AllowedIps::parse(&list)
                .map_err(|e| errors.extend(ips_errors("allowed_ips", e)))
                .ok(),
        };
        let expires_at = match self.expires_at.flatten().as_deref() {
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
                given,
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
    #[schema(value_type = Option<Vec<super::view::PermissionName>>)]
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
