//! Request-body and query extractors whose rejections are SPEC problems:
//! broken JSON is 400, a body that is not JSON 415, over 1 MiB 413, and a
//! well-formed body with unknown fields or wrong types 422 naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, FieldError};

/// The largest body any endpoint takes.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON body. Accepts `application/json` and any `application/*+json`
/// (such as `application/merge-patch+json`).
pub struct JsonBody<T>(pub T);

/// A JSON body that may be absent (actions whose fields are all optional).
pub struct OptionalJson<T>(pub Option<T>);

fn is_json(parts_ct: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = parts_ct.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let json = is_json(req.headers().get(header::CONTENT_TYPE));
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
    Ok((json, bytes))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Unsupported media type",
        "Send the body as JSON with `Content-Type: application/json`.",
    )
}

/// Parses JSON, telling syntax errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object; serde would take `[]` or `["Sam"]` as a
    // struct's fields in order.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(v) => v,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            // serde stops at the first problem: a broken body may first show
            // an unknown field, and a number where an enum is due reads as a
            // syntax error. Whether the JSON itself is well formed decides.
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(ApiError::bad_request(format!(
                    "The body is not valid JSON: {e}"
                )));
            }
            let field = if path == "." { "body".to_owned() } else { path };
            return Err(match inner.classify() {
                serde_json::error::Category::Data => ApiError::validation(vec![FieldError::new(
                    field,
                    strip_position(&inner.to_string()),
                )]),
                _ => ApiError::validation(vec![FieldError::new(
                    field,
                    "has the wrong type: see the API reference for the values it takes",
                )]),
            });
        }
    };
    de.end()
        .map_err(|e| ApiError::bad_request(format!("The body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 17" to data errors; the field path
/// already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read_body(req, state).await?;
        if !json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

pub use crate::domain::present;

/// Query parameters, as raw strings; handlers parse the ones they know.
pub struct RawQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_pairs(q).map(RawQuery)
    }
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(q)
        .map_err(|e| ApiError::bad_request(format!("The query string is not valid: {e}")))
}

impl RawQuery {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `page` and `per_page`, parsed by the one paging parser
    /// ([`crate::http::api::paging::page_request`]).
    pub fn page(&self) -> Result<crate::store::PageRequest, ApiError> {
        crate::http::api::paging::page_request(self.get("page"), self.get("per_page"))
    }

    /// An optional enumerated parameter; an unknown value is 400 naming the choices.
    pub fn parse_opt<T: std::str::FromStr<Err = String>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|m| ApiError::bad_request(format!("`{name}`: {m}"))),
        }
    }
}

/// Query parameters deserialised into `T`; a malformed query string is 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("The query string is not valid: {e}")))
    }
}

/// A JSON body together with its bytes (for idempotency fingerprints).
pub struct JsonWithBytes<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonWithBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read_body(req, state).await?;
        if !json {
            return Err(unsupported_media_type());
        }
        let value = parse_json(&bytes)?;
        Ok(JsonWithBytes(value, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct T {
        name: String,
        n: Option<u32>,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422_naming_the_field() {
        assert_eq!(
            parse_json::<T>(b"{").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_json::<T>(br#"{"name": "a"} x"#).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let e = parse_json::<T>(br#"{"name": "a", "n": "x"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.extra["errors"][0]["field"], "n");
        let e = parse_json::<T>(br#"{"name": "a", "bogus": 1}"#).unwrap_err();
        assert!(
            e.extra["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("bogus")
        );
    }

    #[test]
    fn json_content_types() {
        let v = |s: &'static str| header::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("application/merge-patch+json"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(None));
    }
}
