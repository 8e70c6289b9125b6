//! The OpenAPI 3.1 document. Routes and their documentation are registered
//! together (utoipa-axum `routes!`), so they cannot drift; the error answers
//! every operation can give are added here, by rule, in one place.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::api::permissions::{self, Need};
use crate::http::error::FieldError;

/// An error answer (RFC 9457 problem details) as every endpoint sends it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes ApiError's JSON for the document")]
pub struct Problem {
    /// A link to this error's documentation.
    #[schema(example = "/settings/api-keys/docs#error-invalid_key")]
    #[serde(rename = "type")]
    pub type_: String,
    #[schema(example = "Invalid API key")]
    pub title: String,
    #[schema(example = 401)]
    pub status: u16,
    /// What happened and what to do about it.
    pub detail: String,
    /// The request id (also in the `X-Request-Id` header).
    #[schema(example = "req_AQPTe9MRzmXn2WpwpdMC")]
    pub instance: Option<String>,
    /// Stable machine-readable code.
    #[schema(example = "invalid_key")]
    pub code: String,
    /// With `insufficient_permission`.
    pub required_permission: Option<String>,
    /// With `ip_not_allowed`.
    pub client_ip: Option<String>,
    /// With `restriction_not_inherited`: `allowed_ips`, `expires_at` or
    /// `rate_limit_per_minute`.
    pub field: Option<String>,
    /// With `key_paused`: when the key was paused.
    pub paused_at: Option<String>,
    /// With `key_paused`: why, as the shop gave it (may be null).
    pub reason: Option<String>,
    /// With `rate_limited` and `too_many_failed_attempts`: seconds to wait.
    pub retry_after: Option<u64>,
    /// With `validation_failed`: one entry per invalid field.
    pub errors: Option<Vec<FieldError>>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "latchkey API",
        description = "The REST API of a repair shop's orders, clients and devices, and the management of its API keys.\n\n\
            Authenticate with `Authorization: Bearer <key>` (or `X-API-Key: <key>`). Keys are server-side secrets: \
            never put one in a web page's JavaScript. Every error is `application/problem+json` with a stable `code`.",
        license(name = "MIT")
    ),
    components(schemas(Problem, FieldError, crate::http::api::paging::SortParam)),
    tags(
        (name = "Key", description = "The calling key"),
        (name = "Keys", description = "Managing API keys (keys:read / keys:write)"),
        (name = "Clients", description = "The shop's clients"),
        (name = "Orders", description = "Repair orders"),
        (name = "Devices", description = "Devices brought in with orders"),
        (name = "Test data", description = "The test environment's sample data"),
        (name = "RepairShopr-compatible", description = "RepairShopr's customers, tickets and customer assets over the same data, keys and rules: integrations written for RepairShopr work unchanged (integer ids, RepairShopr's field names, JSON or form bodies, a bare `Authorization: <key>` header)"),
        (name = "Audit", description = "Who did what to which key"),
        (name = "Service", description = "Health and this document")
    )
)]
struct ApiDoc;

/// All of `/api/v1` plus the public service endpoints, with their docs.
/// The routes that need a key are wrapped in the verify middleware.
pub fn api_router() -> OpenApiRouter<AppState> {
    use super::api;
    let keyed = OpenApiRouter::new()
        .merge(api::me::router())
        .merge(api::keys::router())
        .merge(api::audit::router())
        .merge(api::clients::router())
        .merge(api::orders::router())
        .merge(api::devices::router())
        .merge(api::test_data::router())
        .merge(api::repairshopr::router())
        .route_layer(axum::middleware::from_fn(super::auth::require_key));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", keyed)
        .merge(api::health::router())
        .routes(routes!(openapi_json))
}

static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(build_document);

/// The document as derived from the routes; the one served (and shown on
/// the docs page) is [`document_json`].
pub fn document() -> &'static OpenApi {
    &DOCUMENT
}

fn build_document() -> OpenApi {
    let mut doc = api_router().into_openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("lk_live_… / lk_test_…")
                .description(Some(
                    "An API key from Settings → API Keys, as `Authorization: Bearer <key>`. \
                     `X-API-Key: <key>` and a bare `Authorization: <key>` are accepted too.",
                ))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_path_param = path.contains('{');
        for (method, op) in [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ] {
            let Some(op) = op else { continue };
            if let Some(keyed) = permissions::operation(method, path) {
                op.security = Some(security(keyed.need));
            }
            add_errors(op, has_path_param);
        }
    }
    doc
}

static EXACT: LazyLock<serde_json::Value> = LazyLock::new(|| {
    let mut value = serde_json::to_value(document()).expect("the document serialises");
    super::contract::tighten(&mut value);
    value
});

/// The document as served at `/openapi.json`: [`document`] made exactly as
/// strict as the server by [`super::contract::tighten`] (what the derive
/// cannot say).
pub fn document_json() -> &'static serde_json::Value {
    &EXACT
}

/// The `security` entry of a keyed operation, from the permission table:
/// the bearer scheme with the permission as its scope (one entry per
/// alternative; no scope for "any valid key").
fn security(need: Need) -> Vec<SecurityRequirement> {
    let scopes: Vec<Vec<String>> = match need {
        Need::AnyKey => vec![Vec::new()],
        Need::One(p) => vec![vec![p.as_str().to_owned()]],
        Need::AnyOf(ps) => ps.iter().map(|p| vec![p.as_str().to_owned()]).collect(),
    };
    scopes
        .into_iter()
        .map(|s| SecurityRequirement::new("bearer", s))
        .collect()
}

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// Adds the error answers an operation can give, by what it takes.
fn add_errors(op: &mut Operation, has_path_param: bool) {
    let keyed = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_query = op
        .parameters
        .as_ref()
        .is_some_and(|ps| {
            ps.iter().any(|p| {
                matches!(p, utoipa::openapi::RefOr::T(p) if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
            })
        });
    let idempotent = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "Idempotency-Key"))
    });
    let mut add = |status: &str, text: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(text).into());
    };
    if has_body || has_query {
        add(
            "400",
            "`bad_request`: the JSON or a query parameter could not be parsed",
        );
    }
    if keyed {
        add(
            "401",
            "`missing_key`, `malformed_key`, `key_in_url`, `invalid_key`, `revoked_key`, `expired_key` or `legacy_key_retired` (with `WWW-Authenticate`)",
        );
        add(
            "403",
            "`key_paused` (names when and why), `insufficient_permission` (names the permission), `ip_not_allowed` (names the client IP) or, managing keys, `restriction_not_inherited` (names the `field`)",
        );
    }
    if has_path_param {
        add(
            "404",
            "`not_found`: no such id for this key (unknown, deleted, another shop's or the other environment's)",
        );
    }
    if has_body {
        add("413", "`payload_too_large`: the body is over 1 MiB");
        add("415", "`unsupported_media_type`: the body is not JSON");
    }
    if idempotent {
        add(
            "409",
            "`conflict`: this Idempotency-Key was used for a different request, or that request is still running",
        );
    }
    if has_body || has_query {
        add(
            "422",
            "`validation_failed`: `errors` lists each invalid field",
        );
    }
    if keyed {
        op.responses.responses.entry("429".to_owned()).or_insert_with(|| {
            ResponseBuilder::new()
                .description("`rate_limited` (this key's limit) or `too_many_failed_attempts` (this IP's bad keys); wait `Retry-After` seconds")
                .header("Retry-After", utoipa::openapi::HeaderBuilder::new().schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Integer))).description(Some("Seconds to wait")).build())
                .content("application/problem+json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                .build()
                .into()
        });
    }
    let mut add = |status: &str, text: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(text).into());
    };
    add(
        "500",
        "`internal_error`: a bug; the request id finds it in the logs",
    );
    add(
        "503",
        "`unavailable`: the database is not answering; retry shortly",
    );
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "Service", operation_id = "getOpenApi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string_pretty(document_json()).expect("document serialises")
    });
    let mut r = JSON.as_str().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
