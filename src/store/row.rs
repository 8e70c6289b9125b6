//! Rows ↔ domain values, written once for every backend: only the SQL differs
//! between SQLite and PostgreSQL, never how a stored value is read back or
//! which text a domain value is stored as.
//!
//! Both schemas keep the same column names and portable types (TEXT, 64-bit
//! integers for counts and microsecond times, bytes for hashes), so one
//! [`RowExt`] over any `sqlx::Row` reads either backend's rows, and the
//! `*_from_row` functions below build the domain types from it.

use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::resources::Idempotency;
use super::usage::{Bucket, ClientSeen, EndpointUsage, Rejected, StoredTotals, UsageSummary};
use super::users::Session;
use super::{AuditEvent, KeyChange, Shop, StoreError, StoreResult, User};
use crate::domain::client::{Client, ClientFields};
use crate::domain::clock::Timestamp;
use crate::domain::device::{Device, DeviceFields, DeviceStatus, DeviceType, parse_enum};
use crate::domain::key::{Actor, KeyKind, KeyName, KeyRecord, Leak, Pause, PauseReason};
use crate::domain::net::AllowedIps;
use crate::domain::order::{Order, OrderFields, OrderStatus};
use crate::domain::permission::PermissionSet;
use crate::domain::token::Environment;
use crate::domain::user::{Email, Role};

/// Typed column reads that turn a missing column or a type mismatch into
/// [`StoreError::Internal`] (a schema bug, never the caller's fault).
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;

    /// A time stored as microseconds since the epoch.
    fn ts(&self, col: &str) -> StoreResult<Timestamp> {
        self.int(col).map(Timestamp::from_micros)
    }

    fn opt_ts(&self, col: &str) -> StoreResult<Option<Timestamp>> {
        Ok(self.opt_int(col)?.map(Timestamp::from_micros))
    }

    /// A count; a negative one (impossible by the schema) reads as 0.
    fn count(&self, col: &str) -> StoreResult<u64> {
        Ok(u64::try_from(self.int(col)?).unwrap_or(0))
    }

    /// A 32-byte hash (HMAC-SHA256).
    fn hash(&self, col: &str) -> StoreResult<[u8; 32]> {
        let bytes = self.bytes(col)?;
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(col, "(a hash of the wrong length)"))
    }
}

fn decode_err(e: sqlx::Error) -> StoreError {
    StoreError::Internal(format!("reading a row: {e}"))
}

impl<R> RowExt for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> StoreResult<String> {
        self.try_get(col).map_err(decode_err)
    }

    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(decode_err)
    }

    fn int(&self, col: &str) -> StoreResult<i64> {
        self.try_get(col).map_err(decode_err)
    }

    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.try_get(col).map_err(decode_err)
    }

    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        self.try_get(col).map_err(decode_err)
    }

    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).map_err(decode_err)
    }
}

/// A stored value the domain refuses: the database was edited by hand or by
/// a buggy version.
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} `{value}` does not parse"))
}

// ---------------------------------------------------------------------------
// Values in: how domain values are stored
// ---------------------------------------------------------------------------

/// Permissions as stored: names separated by spaces.
pub(crate) fn permissions_text(p: &PermissionSet) -> String {
    p.to_names().join(" ")
}

/// Allowed IPs as stored: entries separated by spaces.
pub(crate) fn allowed_ips_text(ips: &AllowedIps) -> String {
    ips.to_strings().join(" ")
}

/// The snake_case name serde gives a unit variant (what `parse_enum` reads
/// back). Computed here rather than with `DeviceType::as_str`, which leaks
/// one allocation per call.
pub(crate) fn enum_name<T: Serialize>(what: &str, v: &T) -> StoreResult<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Internal(format!("{what} has no name to store"))),
    }
}

/// Separates the fields in `clients.search_text`. Control characters other
/// than tab and line breaks never reach stored text (the field rules refuse
/// them), so a search cannot match across two fields.
pub(crate) const SEARCH_SEPARATOR: char = '\u{1}';

/// What `q` is matched against: the searchable fields, lower-cased by Rust
/// (full Unicode on every backend, unlike SQLite's ASCII-only `lower()`).
pub(crate) fn search_text(f: &ClientFields) -> String {
    [
        &f.first_name,
        &f.last_name,
        &f.business_name,
        &f.email,
        &f.phone,
        &f.mobile,
    ]
    .iter()
    .map(|v| v.as_deref().unwrap_or("").to_lowercase())
    .collect::<Vec<_>>()
    .join(&SEARCH_SEPARATOR.to_string())
}

/// A `LIKE … ESCAPE '\'` pattern matching `q` as a substring, with `%`, `_`
/// and `\` taken literally.
pub(crate) fn like_substring(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.to_lowercase().chars() {
        match c {
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            c if c == SEARCH_SEPARATOR => {}
            c => pattern.push(c),
        }
    }
    pattern.push('%');
    pattern
}

/// The "this shop is full" refusal, the same words on every backend.
pub(crate) fn shop_full(count: i64, environment: Environment, max_per_shop: u32) -> StoreError {
    StoreError::Conflict(format!(
        "this shop already has {count} {environment} keys, the most it may hold in one environment ({max_per_shop}); \
         delete {environment} keys that are no longer used (the {other} keys are counted apart)",
        other = match environment {
            Environment::Live => "test",
            Environment::Test => "live",
        }
    ))
}

// ---------------------------------------------------------------------------
// Values out: rows to domain values
// ---------------------------------------------------------------------------

/// The columns [`key_from_row`] reads, in insert order.
pub(crate) const KEY_COLUMNS: &str = "id, shop_id, name, environment, kind, display, key_hash, permissions, \
     allowed_ips, rate_limit_per_minute, expires_at, revoked_at, retired_at, template, \
     created_at, updated_at, created_by, sent_in_url_at, paused_at, paused_reason, paused_by, leaked_at, leak_url, leak_source";

pub(crate) fn key_from_row(row: &impl RowExt) -> StoreResult<KeyRecord> {
    let environment = row.text("environment")?;
    let kind = row.text("kind")?;
    let name = row.text("name")?;
    let permissions = row.text("permissions")?;
    let allowed_ips = row.text("allowed_ips")?;
    let rate = row.int("rate_limit_per_minute")?;
    let perm_names: Vec<&str> = permissions.split_whitespace().collect();
    let ip_entries: Vec<&str> = allowed_ips.split_whitespace().collect();
    Ok(KeyRecord {
        id: row.text("id")?,
        shop_id: row.text("shop_id")?,
        name: KeyName::parse(&name).map_err(|_| corrupt("key name", &name))?,
        environment: environment
            .parse()
            .map_err(|_| corrupt("environment", &environment))?,
        kind: KeyKind::parse(&kind).ok_or_else(|| corrupt("key kind", &kind))?,
        display: row.text("display")?,
        hash: row.hash("key_hash")?,
        permissions: PermissionSet::parse_list(&perm_names)
            .map_err(|_| corrupt("permissions", &permissions))?,
        allowed_ips: AllowedIps::parse(&ip_entries)
            .map_err(|_| corrupt("allowed IPs", &allowed_ips))?,
        rate_limit_per_minute: u32::try_from(rate)
            .map_err(|_| corrupt("rate limit", &rate.to_string()))?,
        expires_at: row.opt_ts("expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
        retired_at: row.opt_ts("retired_at")?,
        template: row.opt_text("template")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        created_by: Actor::parse(&row.text("created_by")?),
        sent_in_url_at: row.opt_ts("sent_in_url_at")?,
        paused: match row.opt_ts("paused_at")? {
            None => None,
            Some(at) => Some(Pause {
                at,
                reason: match row.opt_text("paused_reason")? {
                    Some(r) => PauseReason::parse(&r).map_err(|_| corrupt("pause reason", &r))?,
                    None => None,
                },
                by: Actor::parse(&row.opt_text("paused_by")?.unwrap_or_else(|| "cli".into())),
            }),
        },
        leaked: match row.opt_ts("leaked_at")? {
            None => None,
            Some(at) => Some(Leak {
                at,
                url: row.opt_text("leak_url")?.unwrap_or_default(),
                source: row.opt_text("leak_source")?.unwrap_or_default(),
            }),
        },
    })
}

pub(crate) fn shop_from_row(row: &impl RowExt) -> StoreResult<Shop> {
    Ok(Shop {
        id: row.text("id")?,
        name: row.text("name")?,
        created_at: row.ts("created_at")?,
    })
}

/// The recorded fingerprint of the server secret.
pub(crate) fn fingerprint_from_row(row: &impl RowExt) -> StoreResult<[u8; 32]> {
    row.hash("fingerprint")
}

pub(crate) fn user_from_row(row: &impl RowExt) -> StoreResult<User> {
    let email = row.text("email")?;
    let role = row.text("role")?;
    Ok(User {
        id: row.text("id")?,
        shop_id: row.text("shop_id")?,
        email: Email::parse(&email).map_err(|_| corrupt("email", &email))?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        password_hash: row.text("password_hash")?,
        created_at: row.ts("created_at")?,
    })
}

/// A session row joined as `find_session` selects it (`s_created_at` is the
/// session's own creation time beside the user's).
pub(crate) fn session_from_row(row: &impl RowExt) -> StoreResult<Session> {
    Ok(Session {
        token_hash: row.hash("token_hash")?,
        user_id: row.text("user_id")?,
        shop_id: row.text("shop_id")?,
        created_at: row.ts("s_created_at")?,
        last_seen_at: row.ts("last_seen_at")?,
        expires_at: row.ts("expires_at")?,
        ip: row.opt_text("ip")?,
    })
}

pub(crate) fn audit_from_row(row: &impl RowExt) -> StoreResult<AuditEvent> {
    let environment = row.opt_text("environment")?;
    let details = row.text("details")?;
    Ok(AuditEvent {
        id: row.text("id")?,
        shop_id: row.text("shop_id")?,
        at: row.ts("at")?,
        actor: Actor::parse(&row.text("actor")?),
        action: row.text("action")?,
        key_id: row.opt_text("key_id")?,
        environment: environment
            .map(|e| e.parse().map_err(|_| corrupt("environment", &e)))
            .transpose()?,
        ip: row.opt_text("ip")?,
        details: serde_json::from_str(&details).map_err(|_| corrupt("audit details", &details))?,
    })
}

pub(crate) fn key_change_from_row(row: &impl RowExt) -> StoreResult<KeyChange> {
    Ok(KeyChange {
        seq: row.int("seq")?,
        key_id: row.text("key_id")?,
        key_hash: row.hash("key_hash")?,
    })
}

/// The columns [`client_from_row`] reads (`numeric_id` is assigned by the
/// database on insert, so inserts name [`CLIENT_INSERT_COLUMNS`]).
pub(crate) const CLIENT_COLUMNS: &str = "id, numeric_id, first_name, last_name, business_name, email, phone, \
     mobile, address, address_2, city, state, postcode, country, notes, created_at, updated_at";

pub(crate) const CLIENT_INSERT_COLUMNS: &str = "id, first_name, last_name, business_name, email, phone, \
     mobile, address, address_2, city, state, postcode, country, notes, created_at, updated_at";

pub(crate) const ORDER_COLUMNS: &str = "id, numeric_id, reference, client_id, status, problem_description, \
     problem_type, technician, due_date, estimate_cents, price_cents, currency, notes, created_at, updated_at";

pub(crate) const ORDER_INSERT_COLUMNS: &str = "id, reference, client_id, status, problem_description, \
     problem_type, technician, due_date, estimate_cents, price_cents, currency, notes, created_at, updated_at";

/// The columns [`device_from_row`] reads, from [`DEVICE_ROWS`].
pub(crate) const DEVICE_COLUMNS: &str = "id, numeric_id, order_id, client_id, name, device_type, brand, model, \
     serial, imei, color, condition, fault, status, created_at, updated_at";

/// The data columns both device tables share, in insert order.
pub(crate) const DEVICE_DATA_COLUMNS: &str = "name, device_type, brand, model, serial, imei, color, condition, \
     fault, status, created_at, updated_at";

/// Every device, whatever it belongs to: the devices of orders (whose client
/// is the order's) and the devices of clients (`client_devices`, no order),
/// as one relation with the columns of [`DEVICE_COLUMNS`] plus `shop_id` and
/// `environment`. Used as a table (`FROM {DEVICE_ROWS}`).
pub(crate) const DEVICE_ROWS: &str = "(SELECT d.id, d.shop_id, d.environment, d.numeric_id, d.order_id, \
     o.client_id, d.name, d.device_type, d.brand, d.model, d.serial, d.imei, d.color, d.condition, d.fault, \
     d.status, d.created_at, d.updated_at FROM devices d JOIN orders o ON o.id = d.order_id \
     UNION ALL SELECT c.id, c.shop_id, c.environment, c.numeric_id, NULL, c.client_id, c.name, c.device_type, \
     c.brand, c.model, c.serial, c.imei, c.color, c.condition, c.fault, c.status, c.created_at, c.updated_at \
     FROM client_devices c) AS device_rows";

pub(crate) fn client_from_row(row: &impl RowExt) -> StoreResult<Client> {
    Ok(Client {
        id: row.text("id")?,
        numeric_id: row.int("numeric_id")?,
        fields: ClientFields {
            first_name: row.opt_text("first_name")?,
            last_name: row.opt_text("last_name")?,
            business_name: row.opt_text("business_name")?,
            email: row.opt_text("email")?,
            phone: row.opt_text("phone")?,
            mobile: row.opt_text("mobile")?,
            address: row.opt_text("address")?,
            address_2: row.opt_text("address_2")?,
            city: row.opt_text("city")?,
            state: row.opt_text("state")?,
            postcode: row.opt_text("postcode")?,
            country: row.opt_text("country")?,
            notes: row.opt_text("notes")?,
        },
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

pub(crate) fn order_from_row(row: &impl RowExt) -> StoreResult<Order> {
    let status = row.text("status")?;
    Ok(Order {
        id: row.text("id")?,
        reference: row.text("reference")?,
        numeric_id: row.int("numeric_id")?,
        fields: OrderFields {
            client_id: row.text("client_id")?,
            status: status
                .parse::<OrderStatus>()
                .map_err(|_| corrupt("order status", &status))?,
            problem_description: row.opt_text("problem_description")?,
            problem_type: row.opt_text("problem_type")?,
            technician: row.opt_text("technician")?,
            due_date: row.opt_text("due_date")?,
            estimate_cents: row.opt_int("estimate_cents")?,
            price_cents: row.opt_int("price_cents")?,
            currency: row.text("currency")?,
            notes: row.opt_text("notes")?,
        },
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

pub(crate) fn device_from_row(row: &impl RowExt) -> StoreResult<Device> {
    let device_type = row.text("device_type")?;
    let status = row.text("status")?;
    Ok(Device {
        id: row.text("id")?,
        numeric_id: row.int("numeric_id")?,
        order_id: row.opt_text("order_id")?,
        client_id: row.text("client_id")?,
        fields: DeviceFields {
            name: row.opt_text("name")?,
            device_type: parse_enum::<DeviceType>(&device_type)
                .ok_or_else(|| corrupt("device type", &device_type))?,
            brand: row.opt_text("brand")?,
            model: row.opt_text("model")?,
            serial: row.opt_text("serial")?,
            imei: row.opt_text("imei")?,
            color: row.opt_text("color")?,
            condition: row.opt_text("condition")?,
            fault: row.opt_text("fault")?,
            status: parse_enum::<DeviceStatus>(&status)
                .ok_or_else(|| corrupt("device status", &status))?,
        },
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// What a stored idempotency claim (`fingerprint, status, body,
/// resource_path`) says about a request with `fingerprint`.
pub(crate) fn idempotency_from_row(
    row: &impl RowExt,
    fingerprint: &str,
) -> StoreResult<Idempotency> {
    let stored = row.text("fingerprint")?;
    let status = row.opt_int("status")?;
    Ok(match status {
        _ if stored != fingerprint => Idempotency::Mismatch,
        None => Idempotency::InProgress,
        Some(status) => Idempotency::Replay {
            status: u16::try_from(status)
                .map_err(|_| corrupt("idempotent answer status", &status.to_string()))?,
            body: row.opt_text("body")?.unwrap_or_default(),
            resource_path: row.opt_text("resource_path")?,
        },
    })
}

pub(crate) fn endpoint_usage_from_row(row: &impl RowExt) -> StoreResult<EndpointUsage> {
    Ok(EndpointUsage {
        method: row.text("method")?,
        route: row.text("route")?,
        requests: row.count("requests")?,
        errors_4xx: row.count("errors_4xx")?,
        errors_5xx: row.count("errors_5xx")?,
        last_used_at: row.ts("last_used_at")?,
    })
}

pub(crate) fn client_seen_from_row(row: &impl RowExt) -> StoreResult<ClientSeen> {
    Ok(ClientSeen {
        ip: row.text("ip")?,
        user_agent: row.text("user_agent")?,
        requests: row.count("requests")?,
        last_used_at: row.ts("last_used_at")?,
    })
}

pub(crate) fn stored_totals_from_row(row: &impl RowExt) -> StoreResult<StoredTotals> {
    Ok(StoredTotals {
        requests: row.count("requests")?,
        errors_4xx: row.count("errors_4xx")?,
        errors_5xx: row.count("errors_5xx")?,
        rejected: Rejected {
            revoked: row.count("rejected_revoked")?,
            expired: row.count("rejected_expired")?,
            retired: row.count("rejected_retired")?,
            ip_denied: row.count("rejected_ip")?,
            rate_limited: row.count("rejected_rate")?,
            paused: row.count("rejected_paused")?,
        },
        // 0 is what an upsert without a sighting leaves: never used.
        last_used_at: row
            .opt_int("last_used_at")?
            .filter(|a| *a > 0)
            .map(Timestamp::from_micros),
        last_used_ip: row.opt_text("last_used_ip")?,
    })
}

/// A series bucket selected as `bucket, r, e` (start, requests, errors).
pub(crate) fn bucket_from_row(row: &impl RowExt) -> StoreResult<Bucket> {
    Ok((row.int("bucket")?, row.count("r")?, row.count("e")?))
}

/// One key's [`UsageSummary`] selected as `key_id, last_used_at, last_used_ip, day`.
pub(crate) fn usage_summary_from_row(row: &impl RowExt) -> StoreResult<(String, UsageSummary)> {
    Ok((
        row.text("key_id")?,
        UsageSummary {
            last_used_at: row
                .opt_int("last_used_at")?
                .filter(|a| *a > 0)
                .map(Timestamp::from_micros),
            last_used_ip: row.opt_text("last_used_ip")?,
            requests_24h: row.count("day")?,
        },
    ))
}
