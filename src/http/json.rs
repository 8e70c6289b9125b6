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
    // JSON has one number type: `100.0` is the integer 100 (JSON Schema
    // agrees), so whole numbers written with a fraction are read as integers.
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("The body is not valid JSON: {e}")))?;
    whole_numbers(&mut value);
    let result: Result<T, _> = serde_path_to_error::deserialize(value);
    result.map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::validation(vec![FieldError::new(
            field,
            humanise(&err.into_inner().to_string()),
        )])
    })
}

/// Turns every number with a zero fraction that fits an `i64` (`100.0`)
/// into the integer it is.
fn whole_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
            {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "checked to be whole and in range"
                )]
                let whole = f as i64;
                *value = serde_json::Value::from(whole);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// serde's messages name Rust types (`expected i64`, `struct ClientInput`);
/// clients get what JSON calls them.
fn humanise(message: &str) -> String {
    let message = strip_position(message);
    let json_kind = |expected: &str| -> &'static str {
        let e = expected.trim();
        if [
            "i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128", "isize", "usize",
        ]
        .iter()
        .any(|t| e == *t || e.ends_with(&format!(" {t}")))
        {
            "an integer"
        } else if e == "f32" || e == "f64" {
            "a number"
        } else if e.contains("string") || e.contains("char") {
            "a string"
        } else if e.contains("bool") {
            "true or false"
        } else if e.contains("sequence") || e.contains("array") || e.contains("tuple") {
            "an array"
        } else if e.contains("map") || e.starts_with("struct ") || e.contains("object") {
            "an object"
        } else if e.contains("variant") || e.contains("enum") {
            "one of the documented values"
        } else {
            "of the documented type"
        }
    };
    let got_kind = |got: &str| -> String {
        let g = got.trim();
        if let Some(rest) = g.strip_prefix("floating point ") {
            format!("the number {}", rest.trim_matches('`'))
        } else if let Some(rest) = g.strip_prefix("integer ") {
            format!("the number {}", rest.trim_matches('`'))
        } else if g.starts_with("string ") {
            "a string".to_owned()
        } else if g.starts_with("boolean ") {
            "a boolean".to_owned()
        } else if g == "null" || g == "unit value" {
            "null".to_owned()
        } else if g == "sequence" {
            "an array".to_owned()
        } else if g == "map" {
            "an object".to_owned()
        } else {
            g.to_owned()
        }
    };
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!("must be {} (got {})", json_kind(expected), got_kind(got));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        let kind = json_kind(expected);
        if kind == "an integer" {
            return format!("{} is out of range", got_kind(got));
        }
        return format!("must be {kind} (got {})", got_kind(got));
    }
    message
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
        // No body means "no options", like `{}`. (`null` is not an object:
        // 422, as the document's non-null body schema says.)
        if bytes.trim_ascii().is_empty() {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

pub use crate::domain::present;

/// Query parameters, as raw strings; handlers parse the ones they know. A
/// parameter given with an empty value is 400 naming it.
pub struct RawQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_pairs(q).map(RawQuery)
    }
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
        .map_err(|e| ApiError::bad_request(format!("The query string is not valid: {e}")))?;
    if let Some((name, _)) = pairs.iter().find(|(_, v)| v.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "`{name}` is empty: give it a value, or leave it out of the query."
        )));
    }
    Ok(pairs)
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

/// Query parameters deserialised into `T`; a malformed query string, or a
/// parameter given with an empty value, is 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        // An empty value (`?updated_since=`) is refused rather than ignored.
        serde_urlencoded_pairs(q)?;
        serde_urlencoded::from_str(q)
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
