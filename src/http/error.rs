//! Errors, by layer:
//!
//! - [`crate::store::StoreError`]: what a store reports (not found, conflict,
//!   unavailable, internal). Stores never pick HTTP codes.
//! - [`ServiceError`]: a service's answer (`service/`): validation, refusals,
//!   conflicts. Shared by the API, the CLI and the web UI.
//! - [`crate::domain::FieldError`]: one invalid field, made by domain parsers.
//! - [`ApiError`]: the HTTP answer, rendered as `application/problem+json`
//!   (RFC 9457) in exactly one place, [`ApiError::into_response`]. Internal causes
//!   are logged under the request id and never shown.
//!
//! `anyhow` is used only at start-up and in the CLI.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::verify::AuthError;
use crate::domain::permission::Permission;
use crate::store::StoreError;

pub use crate::domain::FieldError;

pub use crate::service::ServiceError;

tokio::task_local! {
    /// The id of the request being served, for `instance` and log lines.
    pub static REQUEST_ID: String;
}

fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Boxed to keep `Result<_, ApiError>` small on the happy path.
    pub extra: Box<serde_json::Map<String, serde_json::Value>>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
}

const REALM: &str = r#"Bearer realm="latchkey""#;

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Box::default(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    fn unauthorized(code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, code, title, detail.clone());
        // RFC 6750 allows only printable ASCII (no `"` or `\`) here; a header
        // value that is not ASCII would be dropped, taking the challenge with it.
        let description: String = detail
            .replace('→', "->")
            .replace('…', "...")
            .chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                ' ' => ' ',
                c if c.is_ascii_graphic() => c,
                _ => '?',
            })
            .collect();
        e.www_authenticate = Some(format!(
            r#"{REALM}, error="invalid_token", error_description="{description}""#
        ));
        e
    }

    pub fn not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "Nothing with this id exists for this key. Ids come from list and create responses.",
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad request",
            detail,
        )
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid; see `errors`.", many.len()),
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
            detail,
        )
        .with("errors", serde_json::to_value(errors).unwrap_or_default())
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn insufficient_permission(permission: Permission, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_permission",
            "Insufficient permission",
            detail,
        )
        .with("required_permission", permission.as_str());
        e.www_authenticate = Some(format!(
            r#"{REALM}, error="insufficient_scope", scope="{permission}""#
        ));
        e
    }

    /// 403 for a request no permission would allow (so none is named).
    pub fn refused(detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_permission",
            "Insufficient permission",
            detail,
        );
        e.www_authenticate = Some(format!(r#"{REALM}, error="insufficient_scope""#));
        e
    }

    pub fn unavailable(cause: &str) -> Self {
        tracing::error!(
            request_id = current_request_id(),
            cause,
            "dependency unavailable"
        );
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "A service latchkey depends on is not answering. Retry in a few seconds.",
        )
    }

    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(request_id = current_request_id(), %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "Something went wrong on our side. The request id identifies it in our logs.",
        )
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "This path does not support this method; the Allow header lists the ones it does.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Unavailable(m) => ApiError::unavailable(&m),
            StoreError::Internal(m) => ApiError::internal(&m),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError::not_found(),
            ServiceError::Forbidden { permission, detail } => {
                ApiError::insufficient_permission(permission, detail)
            }
            ServiceError::Refused(detail) => ApiError::refused(detail),
            ServiceError::NotInherited { field, detail } => ApiError::new(
                StatusCode::FORBIDDEN,
                "restriction_not_inherited",
                "Restriction not inherited",
                detail,
            )
            .with("field", field),
            ServiceError::Conflict(m) => ApiError::conflict(m),
            ServiceError::Validation(errors) => ApiError::validation(errors),
            ServiceError::Store(s) => s.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => {
                let mut e = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_key",
                    "API key required",
                    "Send your API key in the Authorization header: `Authorization: Bearer lk_live_…` (or `X-API-Key: lk_live_…`). Create keys under Settings → API Keys.",
                );
                e.www_authenticate = Some(REALM.to_owned());
                e
            }
            AuthError::Malformed(m) => ApiError::unauthorized("malformed_key", "Malformed API key", m.detail()),
            AuthError::BadScheme => ApiError::unauthorized(
                "malformed_key",
                "Malformed API key",
                "Use `Authorization: Bearer <key>` (or the bare key, or `X-API-Key: <key>`); other schemes such as Basic are not accepted, and the key has no spaces.",
            ),
            AuthError::Ambiguous => ApiError::unauthorized(
                "malformed_key",
                "Malformed API key",
                "The Authorization and X-API-Key headers carry different values; send the key in one of them.",
            ),
            AuthError::KeyInUrl(_) => ApiError::unauthorized(
                "key_in_url",
                "API key in URL",
                "API keys must not be sent in the URL, where they end up in logs. Send it as `Authorization: Bearer <key>`, and roll this key: it may have been exposed.",
            ),
            AuthError::Invalid => ApiError::unauthorized(
                "invalid_key",
                "Invalid API key",
                "No such API key. Check that you copied the whole key and that it belongs to this shop; create a new one under Settings → API Keys.",
            ),
            AuthError::Revoked(k) => ApiError::unauthorized(
                "revoked_key",
                "API key revoked",
                format!("This API key ({}) was revoked. Ask the shop for a new key.", k.display),
            ),
            AuthError::Expired(k) => ApiError::unauthorized(
                "expired_key",
                "API key expired",
                format!(
                    "This API key ({}) expired at {}. Ask the shop for a new key.",
                    k.display,
                    k.expires_at.map(|t| t.to_string()).unwrap_or_default()
                ),
            ),
            AuthError::Brownout(k, sunset) => ApiError::unauthorized(
                "legacy_key_retired",
                "Legacy API key retired",
                format!(
                    "This legacy API key ({}) is failing on purpose for a short brownout, to warn that legacy keys stop working for good at {} ({}). Upgrade it now under Settings → API Keys (the Upgrade action, or `POST /api/v1/keys/{{id}}/upgrade`), then send the new key as `Authorization: Bearer lk_live_…`.",
                    k.display,
                    sunset,
                    crate::domain::clock::http_date(sunset)
                ),
            ),
            AuthError::Retired(k) => ApiError::unauthorized(
                "legacy_key_retired",
                "Legacy API key retired",
                format!(
                    "This legacy API key ({}) is retired. Upgrade it to a new key under Settings → API Keys (the Upgrade action), then send the new key as `Authorization: Bearer lk_live_…`.",
                    k.display
                ),
            ),
            AuthError::Paused(k) => {
                let pause = k.paused.as_ref();
                let at = pause.map(|p| p.at.to_string()).unwrap_or_default();
                let reason = pause.and_then(|p| p.reason.as_ref()).map(|r| r.as_str().to_owned());
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "key_paused",
                    "API key paused",
                    format!(
                        "This API key ({}) was paused by the shop at {at}{}. Keep your settings: requests work again as soon as the shop resumes the key.",
                        k.display,
                        reason.as_deref().map(|r| format!(", reason: {r}")).unwrap_or_default()
                    ),
                )
                .with("paused_at", at)
                .with("reason", reason)
            }
            AuthError::IpNotAllowed(_, ip) => ApiError::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                "IP address not allowed",
                format!("This key may not be used from {ip}. Add the address to the key's allowed IPs under Settings → API Keys."),
            )
            .with("client_ip", ip.to_string()),
            AuthError::Unavailable(m) => ApiError::unavailable(&m),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    instance: Option<String>,
    code: &'a str,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            type_: format!("/settings/api-keys/docs#error-{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            instance: current_request_id(),
            code: self.code,
            extra: &self.extra,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(v) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}
