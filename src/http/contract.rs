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
        "address": text(500),
        "city": text(100),
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
    key_schemas(schemas);
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

/// Each create's links: from the new resource's `id` to the operations on it.
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
];

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
            "description": "Which keys: a `template` or `key_ids`, exactly one.",
            "oneOf": [
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
    for (create, resource, targets) in LINKS {
        let links: Map<String, Value> = targets
            .iter()
            .map(|target| {
                (
                    format!("{}{}", &target[..1].to_uppercase(), &target[1..]),
                    json!({
                        "operationId": target,
                        "parameters": {"id": format!("$response.body#/{resource}/id")},
                        "description": format!("`{target}` on the {resource} this call created"),
                    }),
                )
            })
            .collect();
        operation(doc, create, |op| {
            let created = op["responses"]["201"].as_object_mut();
            if let Some(created) = created {
                created.insert("links".into(), Value::Object(links));
            }
        });
    }
}
