//! The key object: the one representation of a key every surface shows (the
//! API's JSON, the CLI's `--json`, the web UI's pages read it too).

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyKind, KeyRecord, KeyStatus, Warning};
use crate::domain::net::AllowedIps;
use crate::domain::permission::PermissionSet;
use crate::domain::token::{Environment, PlainKey};
use crate::store::usage::UsageSummary;

/// What a key is: every field of the key object except its usage figures.
/// `GET /me` answers with this alone, from memory.
#[derive(Serialize, ToSchema)]
#[schema(as = KeyIdentity)]
pub struct KeyIdentity<'a> {
    #[schema(example = "key_YtLkX1OQhXrisuV1L0CV1zX5")]
    pub id: &'a str,
    #[schema(example = "Zapier")]
    pub name: &'a str,
    pub environment: Environment,
    pub kind: KeyKind,
    /// The truncated form, safe to show.
    #[schema(example = "lk_live_LPXM…UwJw")]
    pub display: &'a str,
    #[schema(value_type = Vec<PermissionName>)]
    pub permissions: PermissionSet,
    /// Addresses and CIDR ranges; empty allows any.
    #[schema(value_type = Vec<String>, example = json!(["203.0.113.7", "2001:db8::/32"]))]
    pub allowed_ips: &'a AllowedIps,
    pub rate_limit_per_minute: u32,
    pub expires_at: Option<Timestamp>,
    pub status: KeyStatus,
    /// The template the key was made from, kept.
    pub template: Option<&'a str>,
    /// True when the key's permissions differ from its template's.
    pub customized: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The user id, key id, or `cli` that created the key.
    #[schema(value_type = String, example = "cli")]
    pub created_by: &'a Actor,
    pub revoked_at: Option<Timestamp>,
    pub warnings: Vec<Warning>,
}

impl<'a> KeyIdentity<'a> {
    pub fn new(key: &'a KeyRecord, now: Timestamp, sunset: Timestamp) -> Self {
        KeyIdentity {
            id: &key.id,
            name: key.name.as_str(),
            environment: key.environment,
            kind: key.kind,
            display: &key.display,
            permissions: key.permissions,
            allowed_ips: &key.allowed_ips,
            rate_limit_per_minute: key.rate_limit_per_minute,
            expires_at: key.expires_at,
            status: key.status(now, sunset),
            template: key.template.as_deref(),
            customized: key.is_customized(),
            created_at: key.created_at,
            updated_at: key.updated_at,
            created_by: &key.created_by,
            revoked_at: key.revoked_at,
            warnings: key.warnings(now, sunset),
        }
    }
}

/// An API key. `secret` appears only in create and clone answers.
#[derive(Serialize, ToSchema)]
#[schema(as = Key)]
pub struct KeyView<'a> {
    #[serde(flatten)]
    pub key: KeyIdentity<'a>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub requests_24h: u64,
    /// The full key: only in create and clone answers, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<&'a str>,
}

impl KeyView<'_> {
    /// Adds the key's usage figures (none yet: the defaults are exact).
    pub fn with_usage(mut self, summary: Option<&UsageSummary>) -> Self {
        if let Some(s) = summary {
            self.last_used_at = s.last_used_at;
            self.last_used_ip.clone_from(&s.last_used_ip);
            self.requests_24h = s.requests_24h;
        }
        self
    }
}

impl<'a> KeyView<'a> {
    pub fn new(
        key: &'a KeyRecord,
        now: Timestamp,
        sunset: Timestamp,
        secret: Option<&'a PlainKey>,
    ) -> Self {
        KeyView {
            key: KeyIdentity::new(key, now, sunset),
            // Filled from the usage store by `with_usage`.
            last_used_at: None,
            last_used_ip: None,
            requests_24h: 0,
            secret: secret.map(PlainKey::expose),
        }
    }
}

/// A permission.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the permission names for the document")]
pub enum PermissionName {
    #[schema(rename = "orders:read")]
    OrdersRead,
    #[schema(rename = "orders:write")]
    OrdersWrite,
    #[schema(rename = "orders:delete")]
    OrdersDelete,
    #[schema(rename = "clients:read")]
    ClientsRead,
    #[schema(rename = "clients:write")]
    ClientsWrite,
    #[schema(rename = "clients:delete")]
    ClientsDelete,
    #[schema(rename = "devices:read")]
    DevicesRead,
    #[schema(rename = "devices:write")]
    DevicesWrite,
    #[schema(rename = "devices:delete")]
    DevicesDelete,
    #[schema(rename = "keys:read")]
    KeysRead,
    #[schema(rename = "keys:write")]
    KeysWrite,
}
