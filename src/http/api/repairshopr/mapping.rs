//! What the three RepairShopr-compatible resources share: the field tables
//! (RepairShopr's name ↔ the native field, one table per resource, used in
//! both directions), the ticket status table, request bodies (JSON or form
//! encoding, `properties[imei]=…` nested), integer path ids, list parameters
//! and `meta`, and the renaming of validation errors back to RepairShopr's
//! field names.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::clock::Timestamp;
use crate::domain::order::OrderStatus;
use crate::http::error::{ApiError, FieldError};
use crate::http::json::{MAX_BODY, RawQuery, parse_json};
use crate::service::ServiceError;
use crate::store::PageRequest;
use crate::store::resources::{ListQuery, Sort};

/// One field: RepairShopr's name and the native field it is stored as.
pub type Field = (&'static str, &'static str);

/// customer ↔ client.
pub const CUSTOMER_FIELDS: &[Field] = &[
    ("firstname", "first_name"),
    ("lastname", "last_name"),
    ("business_name", "business_name"),
    ("email", "email"),
    ("phone", "phone"),
    ("mobile", "mobile"),
    ("address", "address"),
    ("address_2", "address_2"),
    ("city", "city"),
    ("state", "state"),
    ("zip", "postcode"),
    ("notes", "notes"),
];

/// ticket ↔ order (besides `status`, [`TICKET_STATUSES`], and
/// `customer_id` ↔ `client_id`, an integer id).
pub const TICKET_FIELDS: &[Field] = &[
    ("subject", "problem_description"),
    ("problem_type", "problem_type"),
    ("due_date", "due_date"),
];

/// customer_asset ↔ device (besides `asset_type` ↔ `device_type` and
/// `customer_id` ↔ the device's client).
pub const ASSET_FIELDS: &[Field] = &[("name", "name"), ("asset_serial", "serial")];

/// customer_asset `properties.*` ↔ device.
pub const ASSET_PROPERTIES: &[Field] = &[
    ("imei", "imei"),
    ("make", "brand"),
    ("model", "model"),
    ("color", "color"),
];

/// Ticket status ↔ order status. A ticket status given as input becomes the
/// first order status it is listed with; an order status always shows as its
/// one ticket status; a status filter matches every order status listed
/// with it (`Resolved` is collected or despatched).
pub const TICKET_STATUSES: &[(&str, OrderStatus)] = &[
    ("New", OrderStatus::AwaitingDevice),
    ("In Progress", OrderStatus::InProgress),
    ("Waiting for Parts", OrderStatus::WaitingForParts),
    ("Waiting on Customer", OrderStatus::AwaitingApproval),
    ("Ready", OrderStatus::Ready),
    ("Resolved", OrderStatus::Collected),
    ("Resolved", OrderStatus::Despatched),
    ("Cancelled", OrderStatus::Cancelled),
];

/// The ticket status an order status shows as.
pub fn ticket_status(status: OrderStatus) -> &'static str {
    TICKET_STATUSES
        .iter()
        .find(|(_, s)| *s == status)
        .map_or("New", |(t, _)| t)
}

/// The ticket statuses, each once, in table order.
pub fn ticket_status_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for (t, _) in TICKET_STATUSES {
        if !names.contains(t) {
            names.push(t);
        }
    }
    names
}

/// Every order status a ticket status (case-insensitive) stands for; the
/// first is the one a ticket is given. Unknown: the message naming the
/// allowed values.
pub fn order_statuses(ticket: &str) -> Result<Vec<OrderStatus>, String> {
    let wanted = ticket.trim();
    let found: Vec<OrderStatus> = TICKET_STATUSES
        .iter()
        .filter(|(t, _)| t.eq_ignore_ascii_case(wanted))
        .map(|(_, s)| *s)
        .collect();
    if found.is_empty() {
        Err(format!(
            "unknown ticket status `{wanted}`: expected one of {}",
            ticket_status_names().join(", ")
        ))
    } else {
        Ok(found)
    }
}

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/// A POST or PUT body as a JSON object: sent as JSON, or form-encoded with
/// `a[b]=c` nesting (`properties[imei]=…`). Wrapped in the resource's own
/// name (`{"customer": {...}}`, `customer[firstname]=…`) works too. An empty
/// body is an empty object.
pub struct RsBody(pub Map<String, Value>);

impl RsBody {
    /// The fields, unwrapped from `{"<resource>": {...}}` when that is all
    /// the body holds.
    pub fn fields(self, resource: &str) -> Map<String, Value> {
        let mut map = self.0;
        if map.len() == 1
            && let Some(Value::Object(inner)) = map.remove(resource)
        {
            return inner;
        }
        map
    }
}

impl<S: Send + Sync> FromRequest<S> for RsBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let mime = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Payload too large",
                    format!("Request bodies are limited to {MAX_BODY} bytes (1 MiB)."),
                )
            } else {
                ApiError::bad_request(format!("The request body could not be read: {rejection}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(RsBody(Map::new()));
        }
        if mime == "application/json"
            || (mime.starts_with("application/") && mime.ends_with("+json"))
        {
            return parse_json(&bytes).map(RsBody);
        }
        if mime == "application/x-www-form-urlencoded" {
            return form_object(&bytes).map(RsBody);
        }
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "Send the body as JSON (`Content-Type: application/json`) or form-encoded \
             (`Content-Type: application/x-www-form-urlencoded`).",
        ))
    }
}

/// `a=1&b[c]=2` → `{"a": "1", "b": {"c": "2"}}`. A name that is both a value
/// and a group, or a malformed bracket, is refused naming it.
pub fn form_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::bad_request(format!("The form body is not valid: {e}")))?;
    let mut out = Map::new();
    for (name, value) in pairs {
        let path = form_path(&name).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                name.clone(),
                "is not a valid form field name (use `name` or `group[name]`)",
            )])
        })?;
        let mut target = &mut out;
        let (last, groups) = path.split_last().expect("a path has one part at least");
        for g in groups {
            let slot = target
                .entry(g.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            target = match slot {
                Value::Object(m) => m,
                _ => {
                    return Err(ApiError::validation(vec![FieldError::new(
                        g.clone(),
                        "is given both as a value and as a group",
                    )]));
                }
            };
        }
        if matches!(target.get(last), Some(Value::Object(_))) {
            return Err(ApiError::validation(vec![FieldError::new(
                last.clone(),
                "is given both as a value and as a group",
            )]));
        }
        target.insert(last.clone(), Value::String(value));
    }
    Ok(out)
}

/// `a[b][c]` → `["a", "b", "c"]`; `None` if malformed.
fn form_path(name: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match name.find('[') {
        None => return (!name.is_empty()).then(|| vec![name.to_owned()]),
        Some(i) => (&name[..i], &name[i..]),
    };
    if head.is_empty() {
        return None;
    }
    let mut parts = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let part = &inner[..end];
        if part.is_empty() || part.contains('[') {
            return None;
        }
        parts.push(part.to_owned());
        rest = &inner[end + 1..];
    }
    Some(parts)
}

/// A text field's value as sent: text as is, whole numbers and booleans as
/// their text (some clients send `zip` or `phone` as a number), `null`
/// clears. A fraction is refused: its text (`1e-7`) is not what was meant,
/// and the OpenAPI document can only bound text it can predict.
pub fn text_value(field: &str, v: &Value) -> Result<Value, FieldError> {
    match v {
        Value::Null | Value::String(_) => Ok(v.clone()),
        // Not -2^63: that is also what a JSON number a little below it reads as.
        Value::Number(n) if n.as_i64().is_some_and(|i| i != i64::MIN) => {
            Ok(Value::String(n.to_string()))
        }
        Value::Bool(b) => Ok(Value::String(b.to_string())),
        Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            Err(FieldError::new(field, "must be text (or a whole number)"))
        }
    }
}

/// Copies the fields of `table` present in `body` (RepairShopr's names) into
/// `native` under the native names. Fields not in the table are ignored.
pub fn map_in(
    body: &Map<String, Value>,
    table: &[Field],
    prefix: &str,
    native: &mut Map<String, Value>,
    errors: &mut Vec<FieldError>,
) {
    for (rs, to) in table {
        if let Some(v) = body.get(*rs) {
            match text_value(&format!("{prefix}{rs}"), v) {
                Ok(v) => {
                    native.insert((*to).to_owned(), v);
                }
                Err(e) => errors.push(e),
            }
        }
    }
}

/// Copies the native fields of `table` from `native` (a serialised native
/// object) into `out` under RepairShopr's names; absent ones are `null`.
pub fn map_out(native: &Value, table: &[Field], out: &mut Map<String, Value>) {
    for (rs, from) in table {
        out.insert(
            (*rs).to_owned(),
            native.get(*from).cloned().unwrap_or(Value::Null),
        );
    }
}

/// A positive integer id as sent (a JSON number or its text).
pub fn integer(field: &str, v: &Value) -> Result<i64, FieldError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.filter(|n| *n > 0)
        .ok_or_else(|| FieldError::new(field, "must be a positive whole number (an id)"))
}

/// A native body as the domain input it stands for. The errors name
/// RepairShopr's fields (see [`rs_errors`]).
pub fn native_input<T: serde::de::DeserializeOwned>(
    native: Map<String, Value>,
    tables: &[(&[Field], &str)],
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&Value::Object(native)).map_err(|e| ApiError::internal(&e))?;
    parse_json(&bytes).map_err(|e| rename_api_error(e, tables))
}

/// A service error with validation errors renamed to RepairShopr's fields.
pub fn rs_errors(e: ServiceError, tables: &[(&[Field], &str)]) -> ApiError {
    match e {
        ServiceError::Validation(errors) => {
            ApiError::validation(errors.into_iter().map(|f| rename(f, tables)).collect())
        }
        other => other.into(),
    }
}

fn rename_api_error(e: ApiError, tables: &[(&[Field], &str)]) -> ApiError {
    if e.code != "validation_failed" {
        return e;
    }
    let Some(Value::Array(list)) = e.extra.get("errors") else {
        return e;
    };
    let errors: Vec<FieldError> = list
        .iter()
        .map(|v| {
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            rename(FieldError::new(text("field"), text("message")), tables)
        })
        .collect();
    ApiError::validation(errors)
}

/// The RepairShopr name of a native field (with its prefix, e.g.
/// `properties.imei`), and native names in the message replaced likewise.
fn rename(f: FieldError, tables: &[(&[Field], &str)]) -> FieldError {
    let lookup = |native: &str| -> Option<String> {
        tables.iter().find_map(|(table, prefix)| {
            table
                .iter()
                .find(|(_, n)| *n == native)
                .map(|(rs, _)| format!("{prefix}{rs}"))
        })
    };
    let field = lookup(&f.field).unwrap_or_else(|| match f.field.as_str() {
        "client_id" => "customer_id".to_owned(),
        "device_type" => "asset_type".to_owned(),
        other => other.to_owned(),
    });
    let message: String = f
        .message
        .split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|piece| {
            let word = piece.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            let tail = &piece[word.len()..];
            match lookup(word) {
                Some(rs) => format!("{rs}{tail}"),
                None => piece.to_owned(),
            }
        })
        .collect();
    FieldError::new(field, message)
}

// ---------------------------------------------------------------------------
// Path ids and lists
// ---------------------------------------------------------------------------

/// An integer path id. Anything else names nothing: 404.
pub struct RsId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for RsId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        raw.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(RsId)
            .ok_or_else(ApiError::not_found)
    }
}

/// The last page a list may ask for (as on the native lists: a 32-bit
/// integer).
pub const MAX_PAGE: u32 = i32::MAX as u32;

/// Items per page on every RepairShopr-compatible list.
pub const RS_PER_PAGE: u32 = 25;

/// `meta` of a RepairShopr-compatible list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RsMeta {
    #[schema(example = 4)]
    pub total_pages: u64,
    #[schema(example = 87)]
    pub total_entries: u64,
    #[schema(example = 25)]
    pub per_page: u32,
    #[schema(example = 1)]
    pub page: u32,
}

impl RsMeta {
    pub fn of(query: &ListQuery, total: u64) -> RsMeta {
        RsMeta {
            total_pages: total.div_ceil(u64::from(query.page.per_page)),
            total_entries: total,
            per_page: query.page.per_page,
            page: query.page.page,
        }
    }
}

/// `page` and `since_updated_at` of a list, in integer-id order (rows made
/// while a client walks the pages come after it: none is missed or seen
/// twice). Other parameters are the resource's, or ignored.
pub fn list_query(q: &RawQuery) -> Result<ListQuery, ApiError> {
    let page = match q.get("page").map(str::trim) {
        None | Some("") => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=MAX_PAGE).contains(p))
            .ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(
                    "page",
                    format!("must be a whole number from 1 to {MAX_PAGE} (got `{v}`)"),
                )])
            })?,
    };
    let updated_since = match q.get("since_updated_at").map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(
            since(v)
                .map_err(|m| ApiError::validation(vec![FieldError::new("since_updated_at", m)]))?,
        ),
    };
    Ok(ListQuery {
        page: PageRequest {
            page,
            per_page: RS_PER_PAGE,
        },
        sort: Sort::NumericAsc,
        updated_since,
        after: None,
    })
}

/// ISO 8601 as sync clients send it: `2026-12-01T10:00:00.000000Z`, without
/// the fraction, with an offset, without a zone (UTC), or a date alone
/// (midnight UTC).
pub fn since(v: &str) -> Result<Timestamp, String> {
    let v = v.replace(' ', "T");
    let bad = || {
        format!(
            "`{v}` is not an ISO 8601 date-time (e.g. 2026-12-01T10:00:00Z or 2026-12-01T10:00:00.000000+01:00)"
        )
    };
    if let Ok(t) = Timestamp::parse_rfc3339(&v) {
        return Ok(t);
    }
    let with_zone = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        format!("{v}Z")
    };
    Timestamp::parse_rfc3339(&with_zone).map_err(|_| bad())
}

/// The text of a query parameter, trimmed; empty is absent.
pub fn param<'q>(q: &'q RawQuery, name: &str) -> Option<&'q str> {
    q.get(name).map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_status_shows_as_one_ticket_status_and_each_ticket_status_maps_back() {
        for s in OrderStatus::ALL {
            let t = ticket_status(s);
            assert!(
                order_statuses(t).unwrap().contains(&s),
                "{s:?} shows as {t}, which stands for it"
            );
        }
        for t in ticket_status_names() {
            let first = order_statuses(t).unwrap()[0];
            assert_eq!(ticket_status(first), t, "{t} round-trips");
        }
        assert_eq!(
            ticket_status_names(),
            vec![
                "New",
                "In Progress",
                "Waiting for Parts",
                "Waiting on Customer",
                "Ready",
                "Resolved",
                "Cancelled"
            ]
        );
        let e = order_statuses("Done").unwrap_err();
        assert!(e.contains("Waiting on Customer"), "{e}");
        assert_eq!(
            order_statuses("in progress").unwrap(),
            vec![OrderStatus::InProgress]
        );
    }

    #[test]
    fn form_bodies_nest_with_brackets() {
        let m = form_object(
            b"firstname=Sam&properties%5Bimei%5D=490154203237518&properties[make]=Apple",
        )
        .unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"firstname": "Sam", "properties": {"imei": "490154203237518", "make": "Apple"}})
        );
        for bad in ["a[=1", "[a]=1", "a[]=1", "a=1&a[b]=2", "a[b]=2&a=1"] {
            assert!(form_object(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn since_takes_what_sync_clients_send() {
        let z = since("2026-12-01T10:00:00Z").unwrap();
        assert_eq!(since("2026-12-01T10:00:00.000000Z").unwrap(), z);
        assert_eq!(since("2026-12-01T11:00:00+01:00").unwrap(), z);
        assert_eq!(since("2026-12-01T10:00:00").unwrap(), z);
        assert_eq!(since("2026-12-01 10:00:00").unwrap(), z);
        assert_eq!(
            since("2026-12-01").unwrap(),
            since("2026-12-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            since("2026-12-01T10:00:00.5Z").unwrap().as_micros(),
            z.as_micros() + 500_000
        );
        assert!(since("yesterday").is_err());
    }

    #[test]
    fn errors_are_renamed_to_repairshopr_fields() {
        let f = rename(
            FieldError::new("postcode", "at most 20 characters"),
            &[(CUSTOMER_FIELDS, "")],
        );
        assert_eq!(
            (f.field.as_str(), f.message.as_str()),
            ("zip", "at most 20 characters")
        );
        let f = rename(
            FieldError::new(
                "body",
                "a client needs at least one of first_name, last_name, business_name, email or phone",
            ),
            &[(CUSTOMER_FIELDS, "")],
        );
        assert_eq!(
            f.message,
            "a client needs at least one of firstname, lastname, business_name, email or phone"
        );
        let f = rename(
            FieldError::new("imei", "not a valid IMEI"),
            &[(ASSET_FIELDS, ""), (ASSET_PROPERTIES, "properties.")],
        );
        assert_eq!(f.field, "properties.imei");
    }
}
