//! `/settings/api-keys/docs`: the API documentation, rendered from the
//! OpenAPI document (so it cannot drift from the routes), plus the guides on
//! authentication, errors, rate limits and legacy keys. Served entirely by the
//! binary: no external script, style or font.

use std::fmt::Write as _;
use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::session::{Chrome, render};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/settings/api-keys/docs", get(docs))
}

/// Every error code, in the order of docs/ERRORS.md, with its status and what to do.
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    (
        "missing_key",
        401,
        "No key was sent. Send `Authorization: Bearer <key>`.",
    ),
    (
        "malformed_key",
        401,
        "The value is not a key: wrong scheme (e.g. Basic), spaces, wrong prefix, length or characters, or a checksum that does not match (a typo). Copy the whole key again.",
    ),
    (
        "key_in_url",
        401,
        "A key was sent as `?api_key=` in the URL, where it ends up in logs. Send it in the Authorization header and roll the key.",
    ),
    (
        "invalid_key",
        401,
        "Well formed, but no such key exists (deleted, or from another system).",
    ),
    (
        "revoked_key",
        401,
        "The key was revoked. Ask the shop for a new one.",
    ),
    (
        "expired_key",
        401,
        "The key passed its expiry (or the end of its grace period after a roll).",
    ),
    (
        "legacy_key_retired",
        401,
        "A legacy key after the cut-off date. Upgrade it to a new key under Settings → API Keys.",
    ),
    (
        "key_paused",
        403,
        "The shop paused the key (for example during an incident at the integration's vendor); `paused_at` and `reason` say when and why. Keep your settings: the key works again as soon as the shop resumes it.",
    ),
    (
        "invalid_signature",
        401,
        "A leaked-key report (`POST /secret-scanning/reports`) whose Github-Public-Key-Identifier is unknown or whose Github-Public-Key-Signature does not verify; nothing was changed.",
    ),
    (
        "insufficient_permission",
        403,
        "The key lacks the permission named in `required_permission`.",
    ),
    (
        "restriction_not_inherited",
        403,
        "A key tried to make or change a key less restricted than itself (or to act on one): `field` names the allowed IPs, expiry or rate limit that would be looser.",
    ),
    (
        "ip_not_allowed",
        403,
        "The key may not be used from the client IP named in `client_ip`.",
    ),
    (
        "rate_limited",
        429,
        "Too many requests for this key; wait `Retry-After` seconds.",
    ),
    (
        "too_many_failed_attempts",
        429,
        "Too many missing, malformed or unknown keys from this IP; wait `Retry-After` seconds.",
    ),
    (
        "bad_request",
        400,
        "The JSON or a query parameter could not be parsed.",
    ),
    (
        "not_found",
        404,
        "No such thing for this key: unknown, deleted, another shop's or the other environment's id.",
    ),
    (
        "method_not_allowed",
        405,
        "The path exists but not with this method; see the `Allow` header.",
    ),
    (
        "conflict",
        409,
        "The current state forbids it (e.g. deleting a client with orders, or reusing an Idempotency-Key).",
    ),
    ("payload_too_large", 413, "The body is over 1 MiB."),
    (
        "unsupported_media_type",
        415,
        "The body is not JSON; send `Content-Type: application/json`.",
    ),
    (
        "validation_failed",
        422,
        "Some fields are invalid; `errors` lists each with a message.",
    ),
    (
        "internal_error",
        500,
        "A bug on our side; quote the `instance` (request id).",
    ),
    (
        "unavailable",
        503,
        "A dependency (the database, or Redis with `--redis-unavailable deny`) is not answering; retry shortly.",
    ),
];

/// The documentation drawn from the OpenAPI document, built once: only the
/// base URL and the legacy cut-off change between installations.
struct Reference {
    errors: Vec<ErrorRow>,
    tags: Vec<Tag>,
}

struct ErrorRow {
    code: &'static str,
    status: u16,
    meaning: Vec<Span>,
}

struct Tag {
    anchor: String,
    name: String,
    description: String,
    operations: Vec<Operation>,
}

struct Operation {
    id: String,
    /// Lower case, also the CSS class.
    method: &'static str,
    method_upper: String,
    path: String,
    summary: String,
    description: Vec<Span>,
    /// `None`: public; otherwise the permissions any one of which suffices
    /// (none listed: any valid key).
    permission: Option<Vec<String>>,
    params: Vec<Param>,
    /// The request body's fields, when the operation takes a body.
    body: Option<Vec<Field>>,
    /// The curl example after `curl -X METHOD "<base URL>`.
    curl_rest: String,
    responses: Vec<ResponseRow>,
}

struct Param {
    name: String,
    required: bool,
    location: String,
    type_name: String,
    description: Vec<Span>,
}

struct Field {
    name: String,
    required: bool,
    type_name: String,
    description: Vec<Span>,
}

struct ResponseRow {
    status: String,
    meaning: Vec<Span>,
}

/// A piece of prose: plain text, or a `backticked` name shown as code.
struct Span {
    code: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "docs.html")]
struct DocsPage<'a> {
    chrome: Chrome,
    base: &'a str,
    sunset: String,
    doc: &'a Reference,
}

async fn docs(State(core): State<crate::app::CoreRef>) -> Response {
    static REFERENCE: LazyLock<Reference> =
        LazyLock::new(|| reference(crate::http::openapi::document_json()));
    render(
        StatusCode::OK,
        &DocsPage {
            chrome: Chrome::anonymous("API documentation"),
            base: &core.policy.public_url,
            sunset: core.policy.legacy_sunset.to_string(),
            doc: &REFERENCE,
        },
    )
}

/// From the document as served (`/openapi.json`, exactly as strict as the
/// server), so the page and the document never disagree.
fn reference(doc: &Value) -> Reference {
    let errors = ERROR_CODES
        .iter()
        .map(|&(code, status, text)| ErrorRow {
            code,
            status,
            meaning: inline_code(text),
        })
        .collect();
    let tags = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let name = t["name"].as_str().unwrap_or("").to_owned();
            let mut operations = Vec::new();
            for (path, item) in doc["paths"].as_object().into_iter().flatten() {
                for method in ["get", "post", "patch", "put", "delete"] {
                    let op = &item[method];
                    if op.is_null()
                        || !op["tags"]
                            .as_array()
                            .is_some_and(|t| t.iter().any(|x| x == name.as_str()))
                    {
                        continue;
                    }
                    operations.push(operation(doc, method, path, op));
                }
            }
            Tag {
                anchor: slug(&name),
                description: t["description"].as_str().unwrap_or("").to_owned(),
                name,
                operations,
            }
        })
        .collect();
    Reference { errors, tags }
}

fn slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Splits prose at backticks: every other piece is code.
fn inline_code(text: &str) -> Vec<Span> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| Span {
            code: i % 2 == 1,
            text: part.to_owned(),
        })
        .collect()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

fn type_name(doc: &Value, schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        let target = resolve(doc, schema);
        if let Some(values) = target["enum"].as_array() {
            return values
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | ");
        }
        return name.to_owned();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let names: Vec<String> = options
                .iter()
                .filter(|o| o["type"] != "null")
                .map(|o| type_name(doc, o))
                .collect();
            return names.join(" | ");
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let t = match &schema["type"] {
        Value::String(s) => s.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "object".into(),
    };
    if t == "array" {
        format!("array of {}", type_name(doc, &schema["items"]))
    } else if let Some(f) = schema["format"].as_str() {
        format!("{t} ({f})")
    } else {
        t
    }
}

/// Properties of an object schema, following `allOf` (flattened structs).
fn properties(doc: &Value, schema: &Value, out: &mut Vec<(String, Value, bool)>) {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            properties(doc, part, out);
        }
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        out.push((
            name.clone(),
            prop.clone(),
            required.contains(&name.as_str()),
        ));
    }
}

fn fields(doc: &Value, schema: &Value) -> Vec<Field> {
    let mut props = Vec::new();
    properties(doc, schema, &mut props);
    props
        .into_iter()
        .map(|(name, prop, required)| Field {
            description: inline_code(
                prop["description"]
                    .as_str()
                    .or_else(|| resolve(doc, &prop)["description"].as_str())
                    .unwrap_or(""),
            ),
            type_name: type_name(doc, &prop),
            name,
            required,
        })
        .collect()
}

fn operation(doc: &Value, method: &'static str, path: &str, op: &Value) -> Operation {
    let id = op["operationId"].as_str().unwrap_or("");
    let permission = op["security"].as_array().map(|reqs| {
        reqs.iter()
            .flat_map(|r| r["bearer"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    });
    let params = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Param {
            name: p["name"].as_str().unwrap_or("").to_owned(),
            required: p["required"] == true,
            location: p["in"].as_str().unwrap_or("").to_owned(),
            type_name: type_name(doc, &p["schema"]),
            description: inline_code(p["description"].as_str().unwrap_or("")),
        })
        .collect();
    let body = &op["requestBody"]["content"];
    let (content_type, media) = body
        .as_object()
        .and_then(|m| m.iter().next())
        .map_or(("", &Value::Null), |(k, v)| (k.as_str(), v));
    // A copy-able curl example.
    let mut curl_rest = format!("{}\"", path.replace("{id}", "$ID"));
    if op["security"].is_array() {
        curl_rest.push_str(" \\\n  -H \"Authorization: Bearer $LATCHKEY_KEY\"");
    }
    if !media["example"].is_null() {
        let json = serde_json::to_string(&media["example"])
            .unwrap_or_default()
            .replace('\'', "'\\''");
        let _ = write!(
            curl_rest,
            " \\\n  -H \"Content-Type: {content_type}\" \\\n  -d '{json}'"
        );
    }
    Operation {
        id: id.to_owned(),
        method,
        method_upper: method.to_uppercase(),
        path: path.to_owned(),
        summary: op["summary"].as_str().unwrap_or(id).to_owned(),
        description: inline_code(op["description"].as_str().unwrap_or("")),
        permission,
        params,
        body: (!media.is_null()).then(|| fields(doc, &media["schema"])),
        curl_rest,
        responses: op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(status, response)| ResponseRow {
                status: status.clone(),
                meaning: inline_code(response["description"].as_str().unwrap_or("")),
            })
            .collect(),
    }
}
