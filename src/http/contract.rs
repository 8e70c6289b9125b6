//! Makes the derived OpenAPI document exactly as strict as the server: what
//! the derive cannot say (which fields a create needs, `client` versus
//! `client_id`, the patterns the services check, which `null`s are
//! refused), the `servers` entry, `security: []` on public operations, the
//! optional action bodies, and the links from each create to the read,
//! update and delete of what it made.
//!
//! Every rule here restates a check in `src/domain` or `src/service`; the
//! HTTP suites and schemathesis (`scripts/schemathesis.sh`, which sends what
//! the document allows and expects it accepted, and what it forbids and
//! expects it refused) hold the two together.

use serde_json::{Map, Value, json};

use crate::domain::codes;
use crate::domain::net::MAX_ALLOWED_IPS;
use crate::domain::permission::TEMPLATES;
use crate::http::api::repairshopr::assets::ASSET_TYPES;
use crate::http::api::repairshopr::mapping as rs;

/// What Rust's `str::trim` removes, less the control characters (which are
/// refused before trimming): the blanks around a value that do not count.
macro_rules! ws {
    () => {
        r"\t\n\r \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// Free text: no control characters but tab, line feed and carriage return
/// (`fields::text`).
const TEXT: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";
/// A person's or business's name: free text without bidirectional-override
/// or zero-width characters (`fields::name`).
const NAME: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u200B-\u200D\u2060\u202A-\u202E\u2066-\u2069\uFEFF]*$";
/// A key's name: something besides blanks, no control characters at all, no
/// bidirectional-override or zero-width characters (`KeyName::parse`).
const KEY_NAME: &str = r"^[^\u0000-\u001F\u007F-\u009F\u200B-\u200D\u2060\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\u0000-\u001F\u007F-\u009F\u200B-\u200D\u2060\u202A-\u202E\u2066-\u2069\uFEFF][^\u0000-\u001F\u007F-\u009F\u200B-\u200D\u2060\u202A-\u202E\u2066-\u2069\uFEFF]*$";
/// Text with no control, bidirectional-override or zero-width characters at
/// all, blank allowed (`PauseReason::parse`).
const KEY_NAME_CHARS: &str =
    r"^[^\u0000-\u001F\u007F-\u009F\u200B-\u200D\u2060\u202A-\u202E\u2066-\u2069\uFEFF]*$";
/// Only blanks: clears an optional field.
const BLANK: &str = concat!(r"^[", ws!(), r"]*$");
/// More than blanks.
const NOT_BLANK: &str = concat!(r"[^", ws!(), r"]");
/// `fields::phone`: 5–32 of digits, spaces and `+-().`, at least 5 digits.
const PHONE: &str = concat!(
    r"^[",
    ws!(),
    r"]*(?=(?:[^0-9]*[0-9]){5})[0-9 +().\-]{5,32}[",
    ws!(),
    r"]*$"
);
/// `Email::parse`: something, `@`, a domain with a dot inside it.
const EMAIL: &str = concat!(
    r"^[",
    ws!(),
    r"]*",
    r"[^@\s\u0000-\u001F\u007F-\u009F]+@[^@\s.\u0000-\u001F\u007F-\u009F][^@\s\u0000-\u001F\u007F-\u009F]*\.[^@\s\u0000-\u001F\u007F-\u009F]*[^@\s.\u0000-\u001F\u007F-\u009F]",
    "[",
    ws!(),
    r"]*$"
);
/// `fields::imei`: 15 digits, spaces and dashes allowed between them.
const IMEI: &str = r"^(?=(?:[^0-9]*[0-9]){15}[^0-9]*$)[0-9 \-]{15,20}$";
/// `IdempotencyKey::parse`: 1–255 visible ASCII characters.
const IDEMPOTENCY_KEY: &str = r"^[!-~]{1,255}$";
/// An IPv4 CIDR range (`AllowedIp::parse`; host bits must be zero).
const CIDR4: &str = r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/(?:3[0-2]|[12]?[0-9])$";
/// An IPv6 CIDR range (host bits must be zero).
const CIDR6: &str = r"^(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|(?:[0-9a-fA-F]{1,4}:){1,7}:|(?:[0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|(?:[0-9a-fA-F]{1,4}:){1,5}(?::[0-9a-fA-F]{1,4}){1,2}|(?:[0-9a-fA-F]{1,4}:){1,4}(?::[0-9a-fA-F]{1,4}){1,3}|(?:[0-9a-fA-F]{1,4}:){1,3}(?::[0-9a-fA-F]{1,4}){1,4}|(?:[0-9a-fA-F]{1,4}:){1,2}(?::[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(?::[0-9a-fA-F]{1,4}){1,6}|:(?:(?::[0-9a-fA-F]{1,4}){1,7}|:))/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])$";
/// The largest amount in minor units (`fields::money`).
const MAX_MONEY: i64 = 1_000_000_000_000;

/// Optional free text of at most `max` characters; `null` or blanks clear it.
fn text(max: usize) -> Value {
    json!({"type": ["string", "null"], "maxLength": max, "pattern": TEXT})
}

fn name(max: usize) -> Value {
    json!({"type": ["string", "null"], "maxLength": max, "pattern": NAME})
}

/// Optional text checked by a rule (`pattern`), or blanks or `null` to clear it.
fn checked(rule: Value, description: &str) -> Value {
    json!({"anyOf": [rule, {"type": "string", "pattern": BLANK}, {"type": "null"}], "description": description})
}

fn codes_enum(list: &str) -> Value {
    Value::from(list.split_whitespace().collect::<Vec<_>>())
}

fn money(description: &str) -> Value {
    json!({"type": ["integer", "null"], "format": "int64", "minimum": 0, "maximum": MAX_MONEY, "description": description})
}

fn client_properties() -> Map<String, Value> {
    let props = json!({
        "first_name": name(100),
        "last_name": name(100),
        "business_name": name(200),
        "email": checked(json!({"type": "string", "maxLength": 254, "pattern": EMAIL}), "An email address (stored in lower case)"),
        "phone": checked(json!({"type": "string", "maxLength": 32, "pattern": PHONE}), "5–32 characters of digits, spaces and + - ( ) . with at least 5 digits"),
        "mobile": checked(json!({"type": "string", "maxLength": 32, "pattern": PHONE}), "As `phone`"),
        "address": text(500),
        "address_2": text(500),
        "city": text(100),
        "state": text(100),
        "postcode": text(20),
        "country": checked(json!({"type": "string", "enum": codes_enum(codes::COUNTRIES)}), "ISO 3166-1 alpha-2 (upper or lower case)"),
        "notes": text(10_000),
    });
    let Value::Object(mut props) = props else {
        unreachable!()
    };
    props["first_name"]["example"] = json!("Sam");
    props["last_name"]["example"] = json!("Patel");
    props["email"]["example"] = json!("sam@example.com");
    props["phone"]["example"] = json!("+44 20 7946 0958");
    props["country"]["example"] = json!("GB");
    props
}

/// A client as sent on PATCH: any field; `null` or blanks clear one.
fn client_patch() -> Value {
    json!({
        "type": "object",
        "description": "A change to a client (JSON merge patch): absent fields stay, `null` or blanks clear one. The client must keep a name, business name, email or phone.",
        "properties": client_properties(),
        "additionalProperties": false,
    })
}

/// A new client: at least one of a name, business name, email or phone.
fn new_client() -> Value {
    // "Not every one of them absent, `null` or blank".
    let unset = json!({"anyOf": [{"type": "null"}, {"type": "string", "pattern": BLANK}]});
    let all_unset: Map<String, Value> =
        ["first_name", "last_name", "business_name", "email", "phone"]
            .iter()
            .map(|f| ((*f).to_owned(), unset.clone()))
            .collect();
    json!({
        "type": "object",
        "description": "A new client: every field is optional, but at least one of first_name, last_name, business_name, email or phone must hold more than blanks.",
        "properties": client_properties(),
        "additionalProperties": false,
        "not": {"properties": all_unset},
    })
}

fn order_properties(with_client: bool) -> Map<String, Value> {
    let mut props = json!({
        "client_id": {"type": "string", "pattern": NOT_BLANK, "description": "The order's client (an id from `/api/v1/clients`); never `null`", "example": "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne"},
        "status": {"$ref": "#/components/schemas/OrderStatus"},
        "problem_description": text(10_000),
        "problem_type": text(100),
        "technician": text(100),
        "due_date": checked(json!({"type": "string", "format": "date", "maxLength": 10}), "`YYYY-MM-DD`"),
        "estimate_cents": money("In minor units (pence, cents), 0–1000000000000"),
        "price_cents": money("In minor units (pence, cents), 0–1000000000000"),
        "currency": {"type": "string", "enum": codes_enum(codes::CURRENCIES), "description": "ISO 4217 (upper or lower case); default GBP; never `null`", "example": "GBP"},
        "notes": text(10_000),
    });
    props["due_date"]["example"] = json!("2026-12-04");
    let Value::Object(mut props) = props else {
        unreachable!()
    };
    if with_client {
        props.insert(
            "client".into(),
            json!({"$ref": "#/components/schemas/NewClient", "description": "A new client to create with the order (needs `clients:write` too)"}),
        );
    }
    props
}

fn device_properties() -> Value {
    json!({
        "name": text(100),
        "device_type": {"$ref": "#/components/schemas/DeviceType"},
        "brand": text(100),
        "model": text(100),
        "serial": text(100),
        "imei": checked(json!({"type": "string", "pattern": IMEI}), "15 digits (spaces and dashes between them are dropped) whose Luhn check digit holds"),
        "color": text(50),
        "condition": text(1000),
        "fault": text(10_000),
        "status": {"$ref": "#/components/schemas/DeviceStatus"},
    })
}

fn allowed_ips(description: &str) -> Value {
    json!({
        "type": ["array", "null"],
        "maxItems": MAX_ALLOWED_IPS,
        "items": {"anyOf": [
            {"type": "string", "format": "ipv4"},
            {"type": "string", "format": "ipv6"},
            {"type": "string", "pattern": CIDR4},
            {"type": "string", "pattern": CIDR6},
        ]},
        "description": description,
        "example": ["203.0.113.7", "198.51.100.0/24"],
    })
}

fn permissions(description: &str) -> Value {
    json!({"type": ["array", "null"], "minItems": 1, "uniqueItems": true, "items": {"$ref": "#/components/schemas/PermissionName"}, "description": description})
}

fn rate_limit(description: &str) -> Value {
    json!({"type": ["integer", "null"], "format": "int32", "minimum": 1, "maximum": 10000, "description": description, "example": 100})
}

fn key_schemas(schemas: &mut Map<String, Value>) {
    let templates: Vec<&str> = TEMPLATES.iter().map(|t| t.id).collect();
    let properties = json!({
        "name": {"type": ["string", "null"], "maxLength": 100, "pattern": KEY_NAME, "description": "Where the key is used, 1–100 characters (default: the template's name).", "example": "Zapier – new orders"},
        "template": {"oneOf": [{"$ref": "#/components/schemas/TemplateId"}, {"type": "null"}], "description": "A template id from `/api/v1/key-templates`; fills `permissions`."},
        "permissions": permissions("Overrides the template's permissions; at most what the caller holds."),
        "environment": {"oneOf": [{"$ref": "#/components/schemas/Environment"}, {"type": "null"}], "description": "`live` or `test` (default: the caller's; a key creates only its own kind)."},
        "allowed_ips": allowed_ips("IPv4/IPv6 addresses and CIDR ranges (host bits zero); empty or `null` allows any.\nAbsent: any, or the calling key's own list when it has one."),
        "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "When the key stops working (RFC 3339, in the future); `null` never.\nAbsent: never, or the calling key's own expiry when it has one.", "example": "2027-06-30T17:00:00Z"},
        "rate_limit_per_minute": rate_limit("1–10000 (default: the server's, 100, or the calling key's own limit\nwhen that is lower)."),
    });
    schemas.insert(
        "TemplateId".into(),
        json!({"type": "string", "enum": templates, "description": "A key template (`/api/v1/key-templates`)", "example": "zapier"}),
    );
    let mut from_template = properties.clone();
    from_template["template"] = json!({"$ref": "#/components/schemas/TemplateId"});
    schemas.insert("NewKeyFromTemplate".into(), json!({
        "type": "object",
        "description": "A new key from a template, which gives its name and permissions unless they are given too.",
        "properties": from_template,
        "required": ["template"],
        "additionalProperties": false,
    }));
    let mut from_permissions = properties;
    from_permissions["name"]["type"] = json!("string");
    from_permissions["permissions"]["type"] = json!("array");
    schemas.insert(
        "NewKeyWithPermissions".into(),
        json!({
            "type": "object",
            "description": "A new key with a name and a list of permissions.",
            "properties": from_permissions,
            "required": ["name", "permissions"],
            "additionalProperties": false,
        }),
    );
    schemas.insert("NewKeyInput".into(), json!({
        "description": "A new key: a `template`, or a `name` and `permissions` (a template fills whichever is absent).",
        "anyOf": [
            {"$ref": "#/components/schemas/NewKeyFromTemplate"},
            {"$ref": "#/components/schemas/NewKeyWithPermissions"},
        ],
    }));
    schemas.insert("KeyUpdateInput".into(), json!({
        "type": "object",
        "description": "A change to a key. Absent (or `null`) fields stay as they are, except `expires_at` and `allowed_ips`, where `null` removes the expiry or the address list.",
        "properties": {
            "name": {"type": ["string", "null"], "maxLength": 100, "pattern": KEY_NAME},
            "allowed_ips": allowed_ips("`null` or `[]` allows any address."),
            "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "In the future; `null` removes the expiry."},
            "rate_limit_per_minute": rate_limit("1–10000"),
            "permissions": permissions("At least one; at most what the caller holds."),
        },
        "additionalProperties": false,
    }));
    schemas.insert("CloneInput".into(), json!({
        "type": "object",
        "properties": {"name": {"type": ["string", "null"], "maxLength": 100, "pattern": KEY_NAME, "description": "The copy's name (default: \"<name> (copy)\")."}},
        "additionalProperties": false,
    }));
    if let Some(roll) = schemas.get_mut("RollInput") {
        roll["properties"]["expire_old_in_seconds"]["format"] = json!("int32");
    }
}

/// The schemas the derive gets looser than the server.
fn schemas(schemas: &mut Map<String, Value>) {
    pause_input(schemas);
    schemas.insert("ClientInput".into(), client_patch());
    schemas.insert("NewClient".into(), new_client());
    schemas.insert(
        "OrderInput".into(),
        json!({
            "type": "object",
            "description": "A change to an order (JSON merge patch): absent fields stay, `null` or blanks clear an optional one. `client_id`, `status` and `currency` cannot be cleared; an inline `client` is for creates only.",
            "properties": order_properties(false),
            "additionalProperties": false,
        }),
    );
    let mut for_client = order_properties(false);
    if let Some(c) = for_client.get_mut("client_id") {
        c["description"] = json!("The order's client (an id from `/api/v1/clients`)");
    }
    schemas.insert(
        "NewOrderForClient".into(),
        json!({
            "type": "object",
            "description": "A new order for an existing client.",
            "properties": for_client,
            "required": ["client_id"],
            "additionalProperties": false,
        }),
    );
    let mut with_client = order_properties(true);
    with_client.remove("client_id");
    schemas.insert(
        "NewOrderWithNewClient".into(),
        json!({
            "type": "object",
            "description": "A new order together with its new client (needs `clients:write` too).",
            "properties": with_client,
            "required": ["client"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "NewOrder".into(),
        json!({
            "description": "A new order: give `client_id`, or a new `client` to create with it, not both.",
            "oneOf": [
                {"$ref": "#/components/schemas/NewOrderForClient"},
                {"$ref": "#/components/schemas/NewOrderWithNewClient"},
            ],
        }),
    );
    schemas.insert(
        "DeviceInput".into(),
        json!({
            "type": "object",
            "description": "A change to a device (JSON merge patch): absent fields stay, `null` or blanks clear an optional one; `device_type` and `status` cannot be cleared.",
            "properties": device_properties(),
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "NewDevice".into(),
        json!({
            "type": "object",
            "description": "A new device: `device_type` is required; `status` defaults to `received`.",
            "properties": device_properties(),
            "additionalProperties": false,
            "required": ["device_type"],
        }),
    );
    let mut for_client = device_properties();
    for_client["client_id"] = json!({"type": "string", "pattern": NOT_BLANK, "description": "The device's client (an id from `/api/v1/clients`)", "example": "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne"});
    schemas.insert(
        "ClientDeviceInput".into(),
        json!({
            "type": "object",
            "description": "A device added to a client, without an order: `client_id` and the device's fields; `status` defaults to `received`.",
            "properties": for_client,
            "additionalProperties": false,
            "required": ["client_id", "device_type"],
        }),
    );
    key_schemas(schemas);
    repairshopr_schemas(schemas);
}

// ---------------------------------------------------------------------------
// The RepairShopr-compatible surface
// ---------------------------------------------------------------------------

/// The smallest and largest whole number taken as text (`-2^63` is refused:
/// it is also what a JSON number a little below it reads as).
const MIN_INT: i64 = i64::MIN + 1;
const MAX_INT: i64 = i64::MAX;

/// A date-time whose first ten characters are a date (`due_date`: a
/// RepairShopr date-time is cut to its date).
const DATE_THEN_TIME: &str = r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])[T ]";
/// `since_updated_at` (`mapping::since`): a date, or a date and time with or
/// without a fraction and a zone, `T` or a space between.
const SINCE: &str = r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?$";
/// A form field's name that is not a `group[name]`.
const FORM_NAME: &str = r"^[^\[]+$";
/// The name of a field in a form group: `group[name]`.
const FORM_GROUP_NAME: &str = r"^[^\[\]]+$";

/// The native rule of a field as RepairShopr clients may send it: free text
/// also as a whole number or a boolean (`mapping::text_value` takes their
/// text; `maxLength` and `pattern` bind strings only, and a whole number's
/// text is at most 20 characters, which every free-text field allows), a
/// phone number also as a whole number of 5 digits or more.
fn lenient(native: &Value) -> Value {
    let mut rule = native.clone();
    if rule["type"] == json!(["string", "null"]) {
        rule["type"] = json!(["string", "integer", "boolean", "null"]);
        rule["minimum"] = json!(MIN_INT);
        rule["maximum"] = json!(MAX_INT);
    } else if rule["anyOf"][0]["pattern"] == json!(PHONE)
        && let Some(alts) = rule["anyOf"].as_array_mut()
    {
        alts.push(json!({"type": "integer", "minimum": 10_000, "maximum": MAX_INT}));
        alts.push(json!({"type": "integer", "minimum": MIN_INT, "maximum": -10_000}));
    }
    rule
}

/// The properties of `table` (RepairShopr's name → native field), each with
/// the native field's rule made [`lenient`].
fn mapped(table: &[rs::Field], native: &Map<String, Value>) -> Map<String, Value> {
    let props = table
        .iter()
        .map(|(name, field)| {
            let rule = native.get(*field).map_or_else(|| json!({}), lenient);
            ((*name).to_owned(), rule)
        })
        .collect();
    with_examples(props)
}

/// An example of every field of the RepairShopr bodies (schemathesis draws
/// a value for a field without one, which is slow and, for some, crashed it).
const RS_EXAMPLES: &[(&str, &str)] = &[
    ("firstname", "Sam"),
    ("lastname", "Patel"),
    ("business_name", "Patel Repairs Ltd"),
    ("email", "sam@example.com"),
    ("phone", "+44 20 7946 0958"),
    ("mobile", "+44 7700 900123"),
    ("address", "1 High Street"),
    ("address_2", "Flat 2"),
    ("city", "Leeds"),
    ("state", "West Yorkshire"),
    ("zip", "LS1 1AA"),
    ("notes", "Prefers email"),
    ("subject", "Cracked screen"),
    ("problem_type", "Screen"),
    ("due_date", "2026-12-04"),
    ("name", "Sam's iPhone"),
    ("asset_serial", "F2LXK0AAHG7F"),
    ("imei", "490154203237518"),
    ("make", "Apple"),
    ("model", "iPhone 13"),
    ("color", "Blue"),
];

fn with_examples(mut props: Map<String, Value>) -> Map<String, Value> {
    for (name, rule) in &mut props {
        if let Some((_, example)) = RS_EXAMPLES.iter().find(|(n, _)| n == name) {
            rule["example"] = json!(example);
        }
    }
    props
}

fn rs_customer_id(description: &str) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_INT, "description": description, "example": 1042})
}

/// A RepairShopr body: the fields, and any other (ignored).
fn rs_body(description: &str, properties: Map<String, Value>) -> Value {
    json!({"type": "object", "description": description, "properties": properties, "additionalProperties": true})
}

fn repairshopr_schemas(schemas: &mut Map<String, Value>) {
    let note = " JSON or form-encoded; fields not listed are ignored; \
                a field may also come wrapped in the resource's name when it is the only one \
                (`{\"customer\": {...}}`, `customer[firstname]=…`).";
    // Customers.
    let customer = mapped(rs::CUSTOMER_FIELDS, &client_properties());
    schemas.insert(
        "CustomerInput".into(),
        rs_body(
            &format!("A change to a customer: absent fields stay, `null` or blanks clear one; the customer must keep a name, business name, email or phone.{note}"),
            customer.clone(),
        ),
    );
    let unset = json!({"anyOf": [{"type": "null"}, {"type": "string", "pattern": BLANK}]});
    let all_unset: Map<String, Value> =
        ["firstname", "lastname", "business_name", "email", "phone"]
            .iter()
            .map(|f| ((*f).to_owned(), unset.clone()))
            .collect();
    let mut new_customer = rs_body(
        &format!(
            "A new customer: every field is optional, but at least one of firstname, lastname, business_name, email or phone must hold more than blanks.{note}"
        ),
        customer,
    );
    new_customer["not"] = json!({"properties": all_unset});
    schemas.insert("NewCustomer".into(), new_customer);

    // Tickets.
    let mut ticket = mapped(rs::TICKET_FIELDS, &order_properties(false));
    if let Some(alts) = ticket["due_date"]["anyOf"].as_array_mut() {
        alts.insert(1, json!({"type": "string", "pattern": DATE_THEN_TIME}));
    }
    ticket["due_date"]["description"] = json!("`YYYY-MM-DD`; a date-time is cut to its date");
    ticket.insert("status".into(), json!({"type": "string", "enum": rs::ticket_status_names(), "description": "A ticket status (any case); default `New`; never `null`", "example": "New"}));
    ticket.insert(
        "customer_id".into(),
        rs_customer_id("The ticket's customer (its `id`); never `null`"),
    );
    schemas.insert(
        "TicketInput".into(),
        rs_body(&format!("A change to a ticket: absent fields stay, `null` or blanks clear an optional one.{note}"), ticket.clone()),
    );
    let mut new_ticket = rs_body(
        &format!("A new ticket: `customer_id` is required.{note}"),
        ticket,
    );
    new_ticket["required"] = json!(["customer_id"]);
    schemas.insert("NewTicket".into(), new_ticket);

    // Customer assets.
    let device = device_properties();
    let device = device.as_object().cloned().unwrap_or_default();
    let mut asset = mapped(rs::ASSET_FIELDS, &device);
    let types: Vec<&str> = ASSET_TYPES.iter().map(|(n, _)| *n).collect();
    asset.insert("asset_type".into(), json!({"type": "string", "enum": types, "description": "The device type (any case); never `null`", "example": "Phone"}));
    let mut properties = json!({
        "type": ["object", "null"],
        "description": "`imei`, `make` (the device's brand), `model`, `color`; other fields are ignored. Form-encoded: `properties[imei]=…`.",
        "properties": mapped(rs::ASSET_PROPERTIES, &device),
        "additionalProperties": true,
        "example": {"imei": "490154203237518", "make": "Apple", "model": "iPhone 13"},
    });
    // An IMEI is text: a number loses nothing, but the document keeps one rule.
    properties["properties"]["imei"] = device["imei"].clone();
    properties["properties"]["imei"]["example"] = json!("490154203237518");
    asset.insert("properties".into(), properties);
    asset.insert("customer_id".into(), rs_customer_id("The asset's customer (its `id`); on a change, only its own: an asset stays with its customer"));
    schemas.insert(
        "CustomerAssetInput".into(),
        rs_body(&format!("A change to a customer asset: absent fields stay, `null` or blanks clear an optional one.{note}"), asset.clone()),
    );
    let mut new_asset = rs_body(
        &format!("A new customer asset: `customer_id` and `asset_type` are required.{note}"),
        asset,
    );
    new_asset["required"] = json!(["customer_id", "asset_type"]);
    schemas.insert("NewCustomerAsset".into(), new_asset);
}

/// The same rule for a form-encoded body, which has no `null` (a form sends
/// text; an empty value clears) and whose field names are not `group[name]`
/// (that is how `properties` is sent, see its `encoding`).
fn form_rule(rule: &Value) -> Value {
    let mut form = form_rule_in(rule, FORM_NAME);
    numbers_as_text(&mut form);
    form
}

/// In a form every value is text, so a number given for a free-text field
/// is taken as its digits: what bounds it is the field's length, not the
/// JSON integer range. Integer alternatives of a field that also takes
/// text lose the JSON integer range, and a plain free-text field takes any
/// number too.
fn numbers_as_text(rule: &mut Value) {
    // The field's own length rule bounds the digits; the JSON integer
    // range does not apply (a number far longer than the field is the one
    // case the document leaves to the server's length check).
    fn text_bounds(alt: &mut Map<String, Value>, _len: i32) {
        if alt.get("maximum") == Some(&json!(MAX_INT)) {
            alt.remove("maximum");
        }
        if alt.get("minimum") == Some(&json!(-MAX_INT)) {
            alt.remove("minimum");
        }
    }
    let Value::Object(m) = rule else {
        if let Value::Array(items) = rule {
            items.iter_mut().for_each(numbers_as_text);
        }
        return;
    };
    let len = |m: &Map<String, Value>| m.get("maxLength").and_then(Value::as_i64);
    if let Some(Value::Array(types)) = m.get("type")
        && types.contains(&json!("string"))
        && types.contains(&json!("integer"))
        && let Some(l) = len(m)
    {
        let l = i32::try_from(l).unwrap_or(i32::MAX);
        if let Some(Value::Array(types)) = m.get_mut("type")
            && !types.contains(&json!("number"))
        {
            types.push(json!("number"));
        }
        text_bounds(m, l);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = m.get_mut(key) {
            let l = alts
                .iter()
                .filter(|a| a.get("type") == Some(&json!("string")))
                .filter_map(|a| a.get("maxLength").and_then(Value::as_i64))
                .max();
            if let Some(l) = l {
                let l = i32::try_from(l).unwrap_or(i32::MAX);
                for alt in alts.iter_mut() {
                    if let Value::Object(a) = alt
                        && a.get("type") == Some(&json!("integer"))
                    {
                        text_bounds(a, l);
                    }
                }
            }
        }
    }
    m.values_mut().for_each(numbers_as_text);
}

fn form_rule_in(rule: &Value, names: &str) -> Value {
    match rule {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("type", Value::Array(types)) => {
                        let kept: Vec<Value> =
                            types.iter().filter(|t| *t != "null").cloned().collect();
                        out.insert(k.clone(), Value::Array(kept));
                    }
                    ("anyOf" | "oneOf", Value::Array(alts)) => {
                        let kept: Vec<Value> = alts
                            .iter()
                            .filter(|a| a.get("type") != Some(&json!("null")))
                            .map(|a| form_rule_in(a, names))
                            .collect();
                        match <[Value; 1]>::try_from(kept) {
                            // One alternative left: that rule itself.
                            Ok([Value::Object(only)]) => out.extend(only),
                            Ok([other]) => {
                                out.insert(k.clone(), Value::Array(vec![other]));
                            }
                            Err(kept) => {
                                out.insert(k.clone(), Value::Array(kept));
                            }
                        }
                    }
                    ("properties", Value::Object(props)) => {
                        let props: Map<String, Value> = props
                            .iter()
                            .map(|(n, r)| (n.clone(), form_rule_in(r, FORM_GROUP_NAME)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    ("not", v) => {
                        out.insert(k.clone(), form_rule_in(v, names));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            if out.get("type") == Some(&json!("object"))
                || out.get("type") == Some(&json!(["object"]))
            {
                out.insert("propertyNames".into(), json!({"pattern": names}));
                // Other fields are ignored; a form spells a value or a list
                // of them (a group of groups is `a[b][c]`, not described).
                out.insert(
                    "additionalProperties".into(),
                    json!({
                        "type": ["string", "integer", "number", "boolean", "null", "array"],
                        "items": {"type": ["string", "integer", "number", "boolean", "null"]},
                    }),
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The RepairShopr-compatible operations: each body schema as JSON and as a
/// form, `PUT` bodies optional (none changes nothing), and the list
/// parameters as `mapping::list_query` and the handlers read them (an empty
/// value is absent there, as RepairShopr does).
const RS_BODIES: &[(&str, &str, bool)] = &[
    ("rsCreateCustomer", "NewCustomer", true),
    ("rsUpdateCustomer", "CustomerInput", false),
    ("rsCreateTicket", "NewTicket", true),
    ("rsUpdateTicket", "TicketInput", false),
    ("rsCreateCustomerAsset", "NewCustomerAsset", true),
    ("rsUpdateCustomerAsset", "CustomerAssetInput", false),
];

fn repairshopr_operations(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    for (id, schema, required) in RS_BODIES {
        let form = form_rule(&schemas[*schema]);
        operation(doc, id, |op| {
            let body = &mut op["requestBody"];
            body["required"] = json!(required);
            if !required {
                body["description"] = json!("Optional: no body changes nothing.");
            }
            if let Some(content) = body["content"].as_object_mut() {
                for (media, m) in content.iter_mut() {
                    if media == "application/x-www-form-urlencoded" {
                        m["schema"] = form.clone();
                        if form["properties"].get("properties").is_some() {
                            m["encoding"] =
                                json!({"properties": {"style": "deepObject", "explode": true}});
                        }
                    } else {
                        m["schema"] = json!({"$ref": format!("#/components/schemas/{schema}")});
                    }
                }
            }
        });
    }
    for op in operations(doc) {
        let is_rs = op
            .get("operationId")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("rs"));
        if !is_rs {
            continue;
        }
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut().filter(|p| p["in"] == "query") {
            let schema = match p["name"].as_str().unwrap_or_default() {
                "page" => {
                    json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": rs::MAX_PAGE})
                }
                "customer_id" => {
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_INT})
                }
                "status" => json!({"type": "string", "enum": rs::ticket_status_names()}),
                "since_updated_at" => json!({"type": "string", "pattern": SINCE}),
                // Empty is refused (400), as everywhere.
                _ => json!({"type": "string", "minLength": 1}),
            };
            p["schema"] = schema;
        }
    }
}

/// The create operations whose body is the stricter `New…` schema.
const CREATES: &[(&str, &str)] = &[
    ("createClient", "NewClient"),
    ("createOrder", "NewOrder"),
    ("addOrderDevice", "NewDevice"),
];

/// Actions whose body is optional: absent and `{}` both mean "the defaults".
/// The body is a non-null object (`null` is 422): a generated client sends no
/// body for an unset one, where `oneOf [X, null]` made it send garbage.
const OPTIONAL_BODIES: &[&str] = &["cloneKey", "rollKey", "upgradeKey"];

/// Each create's links: from the new resource's `id` (`$response.body#/<resource>/id`)
/// to the operations on it.
const LINKS: &[(&str, &str, &[&str])] = &[
    (
        "createClient",
        "client",
        &["getClient", "updateClient", "deleteClient"],
    ),
    (
        "createOrder",
        "order",
        &[
            "getOrder",
            "updateOrder",
            "deleteOrder",
            "listOrderDevices",
            "addOrderDevice",
        ],
    ),
    (
        "addOrderDevice",
        "device",
        &["getDevice", "updateDevice", "deleteDevice"],
    ),
    (
        "addClientDevice",
        "device",
        &["getDevice", "updateDevice", "deleteDevice"],
    ),
    (
        "createKey",
        "key",
        &[
            "getKey",
            "updateKey",
            "getKeyUsage",
            "cloneKey",
            "rollKey",
            "revokeKey",
            "deleteKey",
        ],
    ),
    (
        "rsCreateCustomer",
        "customer",
        &["rsGetCustomer", "rsUpdateCustomer", "rsDeleteCustomer"],
    ),
    (
        "rsCreateTicket",
        "ticket",
        &["rsGetTicket", "rsUpdateTicket", "rsDeleteTicket"],
    ),
    (
        "rsCreateCustomerAsset",
        "customer_asset",
        &["rsGetCustomerAsset", "rsUpdateCustomerAsset"],
    ),
];

/// Links that put a new resource's `id` into a body field of another create:
/// (create, resource, target, field).
const BODY_LINKS: &[(&str, &str, &str, &str)] = &[
    ("createClient", "client", "addClientDevice", "client_id"),
    (
        "rsCreateCustomer",
        "customer",
        "rsCreateTicket",
        "customer_id",
    ),
    (
        "rsCreateCustomer",
        "customer",
        "rsCreateCustomerAsset",
        "customer_id",
    ),
];

/// The success response of an operation (`201`, or `200` on the RepairShopr
/// surface).
fn success(op: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let responses = op.get_mut("responses")?.as_object_mut()?;
    let code = ["201", "200"]
        .into_iter()
        .find(|c| responses.contains_key(*c))?;
    responses.get_mut(code)?.as_object_mut()
}

fn link_name(target: &str, suffix: &str) -> String {
    format!("{}{}{suffix}", &target[..1].to_uppercase(), &target[1..])
}

fn operations(doc: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(Value::as_object_mut)
}

fn operation(doc: &mut Value, operation_id: &str, f: impl FnOnce(&mut Map<String, Value>)) {
    if let Some(op) = operations(doc).find(|op| op.get("operationId") == Some(&json!(operation_id)))
    {
        f(op);
    }
}

/// Applies every rule above to the derived document.
/// `POST /api/v1/keys/pause` and `/resume` (`PauseInput::validate`): a
/// template or a list of key ids, exactly one (the other absent or null),
/// and an optional reason of at most 200 characters without control,
/// bidirectional-override or zero-width characters.
fn pause_input(schemas: &mut Map<String, Value>) {
    let reason = json!({
        "oneOf": [
            {"type": "string", "maxLength": 200, "pattern": KEY_NAME_CHARS},
            {"type": "null"},
        ],
        "description": "Why (at most 200 characters); shown to the integration in `key_paused`. Only for pause; blank means none.",
        "example": "Zapier security incident, 2026-12-04",
    });
    schemas.insert(
        "PauseByTemplate".into(),
        json!({
            "type": "object",
            "description": "Every key made from this template, customized or not.",
            "properties": {
                "template": {"$ref": "#/components/schemas/TemplateId"},
                "key_ids": {"type": "null"},
                "reason": reason,
            },
            "required": ["template"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "PauseByKeys".into(),
        json!({
            "type": "object",
            "description": "These keys (ids the caller cannot see are skipped as `not_found`).",
            "properties": {
                "key_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": crate::service::keys::MAX_KEY_IDS},
                "template": {"type": "null"},
                "reason": reason,
            },
            "required": ["key_ids"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "PauseInput".into(),
        json!({
            "description": "Which keys: a `template` or `key_ids`, exactly one (the two alternatives exclude each other: each has the other's member absent or null).",
            "anyOf": [
                {"$ref": "#/components/schemas/PauseByTemplate"},
                {"$ref": "#/components/schemas/PauseByKeys"},
            ],
        }),
    );
}

pub fn tighten(doc: &mut Value) {
    doc["servers"] = json!([{"url": "/", "description": "This latchkey server"}]);
    doc["info"]["license"] = json!({"name": "MIT", "identifier": "MIT"});
    if let Some(s) = doc["components"]["schemas"].as_object_mut() {
        schemas(s);
    }
    for op in operations(doc) {
        // Public operations say so: no key needed.
        op.entry("security").or_insert_with(|| json!([]));
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            if name == "Idempotency-Key" {
                p["schema"] = json!({"type": "string", "pattern": IDEMPOTENCY_KEY});
            } else if p["in"] == "query" && p["schema"]["type"] == json!("string") {
                // An empty value is refused (400), not taken as absent.
                p["schema"]["minLength"] = json!(1);
            }
        }
    }
    for (id, schema) in CREATES {
        operation(doc, id, |op| {
            if let Some(content) = op["requestBody"]["content"].as_object_mut() {
                for media in content.values_mut() {
                    media["schema"] = json!({"$ref": format!("#/components/schemas/{schema}")});
                }
            }
        });
    }
    for id in OPTIONAL_BODIES {
        operation(doc, id, |op| {
            let body = &mut op["requestBody"];
            body["required"] = json!(false);
            body["description"] = json!("Optional: no body and `{}` both mean the defaults.");
            if let Some(content) = body["content"].as_object_mut() {
                for media in content.values_mut() {
                    // `oneOf [X, null]` becomes X.
                    let reference = media["schema"]["oneOf"]
                        .as_array()
                        .and_then(|alts| alts.iter().find(|a| a.get("$ref").is_some()))
                        .cloned();
                    if let Some(reference) = reference {
                        media["schema"] = reference;
                    }
                }
            }
        });
    }
    repairshopr_operations(doc);
    for (create, resource, targets) in LINKS {
        let mut links: Map<String, Value> = targets
            .iter()
            .map(|target| {
                (
                    link_name(target, ""),
                    json!({
                        "operationId": target,
                        "parameters": {"id": format!("$response.body#/{resource}/id")},
                        "description": format!("`{target}` on the {resource} this call created"),
                    }),
                )
            })
            .collect();
        for (_, _, target, field) in BODY_LINKS.iter().filter(|(c, ..)| c == create) {
            links.insert(
                link_name(target, "ForIt"),
                json!({
                    "operationId": target,
                    "requestBody": {(*field): format!("$response.body#/{resource}/id")},
                    "description": format!("`{target}` with `{field}` the {resource} this call created"),
                }),
            );
        }
        operation(doc, create, |op| {
            if let Some(created) = success(op) {
                created.insert("links".into(), Value::Object(links));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RepairShopr field takes its native field's rule: a field the
    /// native rules lack would be documented as anything.
    #[test]
    fn every_repairshopr_field_has_its_native_rule() {
        let mut schemas = Map::new();
        repairshopr_schemas(&mut schemas);
        let device = device_properties().as_object().cloned().unwrap();
        for (schema, tables) in [
            ("CustomerInput", vec![rs::CUSTOMER_FIELDS]),
            ("TicketInput", vec![rs::TICKET_FIELDS]),
            ("CustomerAssetInput", vec![rs::ASSET_FIELDS]),
        ] {
            let props = schemas[schema]["properties"].as_object().unwrap();
            for (name, _) in tables.into_iter().flatten() {
                let rule = &props[*name];
                assert!(
                    rule.get("type").is_some() || rule.get("anyOf").is_some(),
                    "{schema}.{name}: {rule}"
                );
            }
        }
        let nested = &schemas["CustomerAssetInput"]["properties"]["properties"]["properties"];
        for (name, native) in rs::ASSET_PROPERTIES {
            assert!(device.contains_key(*native), "{native}");
            assert!(
                nested[*name].get("type").is_some() || nested[*name].get("anyOf").is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn free_text_also_takes_whole_numbers_and_booleans_and_a_phone_number_five_digits() {
        let text = lenient(&text(20));
        assert_eq!(
            text["type"],
            json!(["string", "integer", "boolean", "null"])
        );
        assert_eq!(
            (text["minimum"].as_i64(), text["maximum"].as_i64()),
            (Some(i64::MIN + 1), Some(i64::MAX))
        );
        // A whole number's text fits the shortest free-text field.
        assert!(i64::MIN.to_string().len() <= 20);
        let phone = lenient(&client_properties()["phone"]);
        let alts = phone["anyOf"].as_array().unwrap();
        assert!(alts.contains(&json!({"type": "integer", "minimum": 10_000, "maximum": i64::MAX})));
        assert!(
            alts.contains(&json!({"type": "integer", "minimum": i64::MIN + 1, "maximum": -10_000}))
        );
        // A checked field other than a phone number takes text only.
        assert_eq!(
            lenient(&client_properties()["email"]),
            client_properties()["email"]
        );
    }

    #[test]
    fn a_form_has_no_null_and_no_bracketed_names() {
        let mut schemas = Map::new();
        repairshopr_schemas(&mut schemas);
        let form = form_rule(&schemas["NewCustomerAsset"]);
        let mut rules: Vec<(&String, &Value)> =
            form["properties"].as_object().unwrap().iter().collect();
        rules.extend(
            form["properties"]["properties"]["properties"]
                .as_object()
                .unwrap(),
        );
        for (name, rule) in rules {
            if name != "properties" {
                assert!(!rule.to_string().contains("\"null\""), "{name}: {rule}");
            }
        }
        assert_eq!(form["properties"]["properties"]["type"], json!(["object"]));
        assert_eq!(form["propertyNames"]["pattern"], json!(FORM_NAME));
        assert_eq!(
            form["properties"]["properties"]["propertyNames"]["pattern"],
            json!(FORM_GROUP_NAME)
        );
        // In a form a number is text: any number, not only whole ones.
        assert_eq!(
            form["properties"]["name"]["type"],
            json!(["string", "integer", "boolean", "number"])
        );
    }
}
