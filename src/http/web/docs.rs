//! `/settings/api-keys/docs`: the API documentation, rendered from the
//! OpenAPI document (so it cannot drift from the routes), plus the guides on
//! authentication, errors, rate limits and legacy keys. Served entirely by the
//! binary: no external script, style or font.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::{esc, page_with};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/settings/api-keys/docs", get(docs))
}

/// Every error code, in SPEC order, with its status and what to do.
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
        "insufficient_permission",
        403,
        "The key lacks the permission named in `required_permission`.",
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
        "A dependency (the database) is not answering; retry shortly.",
    ),
];

async fn docs(State(core): State<crate::app::CoreRef>) -> Response {
    static BODY: LazyLock<String> = LazyLock::new(|| render(crate::http::openapi::document()));
    let body = BODY
        .replace("{{BASE}}", &esc(&core.policy.public_url))
        .replace("{{SUNSET}}", &esc(&core.policy.legacy_sunset.to_string()));
    page_with(StatusCode::OK, "API documentation", &body, true)
}

fn render(doc: &utoipa::openapi::OpenApi) -> String {
    let doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    let mut nav = String::new();
    let mut reference = String::new();
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or("").to_owned(),
                        t["description"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (tag, description) in &tags {
        let anchor = slug(tag);
        let _ = write!(nav, "<li><a href=\"#{anchor}\">{}</a></li>", esc(tag));
        let _ = write!(
            reference,
            "<section id=\"{anchor}\"><h2>{}</h2><p class=\"lead\">{}</p>",
            esc(tag),
            esc(description)
        );
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in ["get", "post", "patch", "put", "delete"] {
                let op = &item[method];
                if op.is_null()
                    || !op["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|x| x == tag.as_str()))
                {
                    continue;
                }
                reference.push_str(&operation(&doc, method, path, op));
            }
        }
        reference.push_str("</section>");
    }
    format!(
        "<div class=\"docs\"><nav class=\"toc\" aria-label=\"Contents\"><h2>Contents</h2><ul>\
         <li><a href=\"#authentication\">Authentication</a></li><li><a href=\"#errors\">Errors</a></li>\
         <li><a href=\"#rate-limits\">Rate limits</a></li><li><a href=\"#environments\">Live and test</a></li>\
         <li><a href=\"#lists\">Lists and sync</a></li><li><a href=\"#legacy-keys\">Legacy keys</a></li>{nav}</ul>\
         <p><a href=\"/openapi.json\">OpenAPI 3.1 document</a></p></nav>\
         <article><h1>latchkey API</h1>\
         <p class=\"lead\">The REST API of your shop's orders, clients and devices. Base URL: <code>{{{{BASE}}}}/api/v1</code>. \
         Requests and answers are JSON.</p>{guides}{reference}</article></div>",
        guides = guides(),
    )
}

fn guides() -> String {
    let mut codes = String::from(
        "<table><thead><tr><th>Status</th><th>Code</th><th>Meaning and what to do</th></tr></thead><tbody>",
    );
    for (code, status, text) in ERROR_CODES {
        let _ = write!(
            codes,
            "<tr id=\"error-{code}\"><td>{status}</td><td><code>{code}</code></td><td>{}</td></tr>",
            inline_code(text)
        );
    }
    codes.push_str("</tbody></table>");
    format!(
        "<section id=\"authentication\"><h2>Authentication</h2>\
         <p>Create a key under <em>Settings → API Keys</em> and send it with every request:</p>\
         <pre>curl {{{{BASE}}}}/api/v1/me \\\n  -H \"Authorization: Bearer $LATCHKEY_KEY\"</pre>\
         <p><code>X-API-Key: &lt;key&gt;</code> and a bare <code>Authorization: &lt;key&gt;</code> work too. \
         Keys look like <code>lk_live_</code> or <code>lk_test_</code> followed by 38 letters and digits; the last six are a checksum, \
         so a mistyped key is refused at once with <code>malformed_key</code>.</p>\
         <p><strong>Keys are server-side secrets.</strong> Never put one in a web page's JavaScript or a mobile app: anyone could copy it. \
         The Website Contact Form template is for your site's <em>server-side</em> form handler. The API sends no CORS headers. \
         Never send a key in the URL (<code>?api_key=</code>): URLs are logged, so new keys are refused there.</p>\
         <p>Each key holds permissions (<code>orders:read</code>, <code>clients:write</code>, …); each operation below names the one it needs. \
         A key may also be limited to some IP addresses and may expire.</p></section>\
         <section id=\"errors\"><h2>Errors</h2>\
         <p>Every error is <code>application/problem+json</code> (RFC 9457) with a stable <code>code</code>, a <code>detail</code> saying what to do, \
         and <code>instance</code>, the request id (also in the <code>X-Request-Id</code> header of every answer). \
         401 answers carry <code>WWW-Authenticate</code> as RFC 6750 describes.</p>\
         <pre>{{\"type\": \"/settings/api-keys/docs#error-insufficient_permission\", \"title\": \"Insufficient permission\",\n \"status\": 403, \"code\": \"insufficient_permission\", \"required_permission\": \"orders:write\",\n \"detail\": \"This key lacks the `orders:write` permission this request needs. …\", \"instance\": \"req_AQPTe9MRzmXn2WpwpdMC\"}}</pre>\
         {codes}</section>\
         <section id=\"rate-limits\"><h2>Rate limits</h2>\
         <p>Each key may make 100 requests per minute unless the shop set another limit (1–10000). The whole minute's budget can be used \
         as a burst; it refills evenly. Answers carry <code>RateLimit-Policy</code>, <code>RateLimit</code> and \
         <code>X-RateLimit-Limit</code> / <code>-Remaining</code> / <code>-Reset</code>; past the limit the answer is 429 <code>rate_limited</code> \
         with <code>Retry-After</code> in seconds. Requests with a missing, malformed or unknown key count against the client IP \
         (30 per minute), never against a valid key.</p></section>\
         <section id=\"environments\"><h2>Live and test</h2>\
         <p>Every shop has two separate data sets. A <code>lk_test_</code> key reads and changes only test data, a <code>lk_live_</code> key only live data. \
         Reset the test data to a sample set with <code>POST /api/v1/test-data/reset</code> (test keys only).</p></section>\
         <section id=\"lists\"><h2>Lists and sync</h2>\
         <p>Lists take <code>page</code> (from 1) and <code>per_page</code> (default 25, at most 100), and answer \
         <code>{{\"orders\": […], \"meta\": {{\"page\", \"per_page\", \"total_pages\", \"total_entries\"}}}}</code>. A page past the end is an empty list. \
         To sync without missing or repeating an item, list with <code>sort=updated_at</code> and pass <code>meta.next_cursor</code> \
         as <code>after</code> to continue; <code>updated_since</code> (RFC 3339, inclusive) starts from an instant. \
         <code>POST</code> to create a client or order honours <code>Idempotency-Key</code>: a retry with the same key and body gets the first answer.</p></section>\
         <section id=\"legacy-keys\"><h2>Legacy keys</h2>\
         <p>Keys from the earlier scheme (without the <code>lk_</code> prefix) keep working until the cut-off, \
         <strong>{{{{SUNSET}}}}</strong>. Until then every answer to a legacy key carries <code>Deprecation</code>, <code>Sunset</code> and a \
         <code>Link</code> to this section; after it they fail with <code>legacy_key_retired</code>. To move on, open the key under \
         <em>Settings → API Keys</em> and choose <em>Upgrade</em>: you get a new key with the same name, permissions and allowed IPs. \
         Put it in your integration as <code>Authorization: Bearer lk_live_…</code>, then retire the legacy key.</p></section>"
    )
}

fn slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Escapes text and turns `backticks` into `<code>`.
fn inline_code(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
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

fn fields_table(doc: &Value, schema: &Value) -> String {
    let mut props = Vec::new();
    properties(doc, schema, &mut props);
    if props.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "<table><thead><tr><th>Field</th><th>Type</th><th>Description</th></tr></thead><tbody>",
    );
    for (name, prop, required) in props {
        let description = prop["description"]
            .as_str()
            .or_else(|| resolve(doc, &prop)["description"].as_str())
            .unwrap_or("");
        let _ = write!(
            t,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&name),
            if required {
                " <span class=\"req\">required</span>"
            } else {
                ""
            },
            esc(&type_name(doc, &prop)),
            inline_code(description)
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn operation(doc: &Value, method: &str, path: &str, op: &Value) -> String {
    let id = op["operationId"].as_str().unwrap_or("");
    let summary = op["summary"].as_str().unwrap_or(id);
    let description = op["description"].as_str().unwrap_or("");
    let permission = match op["security"].as_array() {
        None => "none (public)".to_owned(),
        Some(reqs) => {
            let scopes: Vec<String> = reqs
                .iter()
                .flat_map(|r| r["bearer"].as_array().cloned().unwrap_or_default())
                .filter_map(|s| s.as_str().map(|s| format!("<code>{}</code>", esc(s))))
                .collect();
            if scopes.is_empty() {
                "any valid key".to_owned()
            } else {
                scopes.join(" or ")
            }
        }
    };
    let mut html = format!(
        "<div class=\"op\" id=\"op-{id}\"><h3><span class=\"method {method}\">{}</span> <code>{}</code></h3>\
         <p><strong>{}</strong></p>{}<p>Permission: {permission}</p>",
        method.to_uppercase(),
        esc(path),
        esc(summary),
        if description.is_empty() {
            String::new()
        } else {
            format!("<p>{}</p>", inline_code(description))
        },
    );
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        html.push_str("<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr></thead><tbody>");
        for p in params {
            let _ = write!(
                html,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                if p["required"] == true {
                    " <span class=\"req\">required</span>"
                } else {
                    ""
                },
                esc(p["in"].as_str().unwrap_or("")),
                esc(&type_name(doc, &p["schema"])),
                inline_code(p["description"].as_str().unwrap_or(""))
            );
        }
        html.push_str("</tbody></table>");
    }
    let body = &op["requestBody"]["content"];
    let (content_type, media) = body
        .as_object()
        .and_then(|m| m.iter().next())
        .map_or(("", &Value::Null), |(k, v)| (k.as_str(), v));
    if !media.is_null() {
        let _ = write!(
            html,
            "<h4>Request body</h4>{}",
            fields_table(doc, &media["schema"])
        );
    }
    // A copy-able curl example.
    let url_path = path.replace("{id}", "$ID");
    let mut curl = format!(
        "curl -X {} \"{{{{BASE}}}}{}\"",
        method.to_uppercase(),
        url_path
    );
    if op["security"].is_array() {
        curl.push_str(" \\\n  -H \"Authorization: Bearer $LATCHKEY_KEY\"");
    }
    if !media["example"].is_null() {
        let json = serde_json::to_string(&media["example"])
            .unwrap_or_default()
            .replace('\'', "'\\''");
        let _ = write!(
            curl,
            " \\\n  -H \"Content-Type: {content_type}\" \\\n  -d '{json}'"
        );
    }
    let _ = write!(html, "<h4>Example</h4><pre>{}</pre>", esc(&curl));
    html.push_str(
        "<h4>Responses</h4><table><thead><tr><th>Status</th><th>Meaning</th></tr></thead><tbody>",
    );
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(status),
            inline_code(response["description"].as_str().unwrap_or(""))
        );
    }
    html.push_str("</tbody></table></div>");
    html
}
