//! The keyed-request middleware and the permission extractor.
//!
//! [`require_key`] runs extract → verify (parse, hash, cache/lookup, status,
//! allowed IPs) → rate limit → permission for every route under `/api/v1`
//! that needs a key. The permission comes from the permission table
//! (`http/api/permissions.rs`); handlers take the verified [`Caller`].

use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::usage::Hit;
use crate::auth::verify::{AuthError, KeySource};
use crate::domain::key::KeyRecord;
use crate::domain::permission::Permission;
use crate::domain::token;
use crate::http::api::permissions;
use crate::http::error::ApiError;
use crate::limiter::Decision;
use crate::service::keys::Principal;
use crate::store::usage::Rejection;

/// The client address of this request (TCP peer, or per `--trusted-proxies`).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// The verified key of this request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: Arc<KeyRecord>,
    pub ip: IpAddr,
}

impl Caller {
    pub fn principal(&self) -> Principal {
        Principal::key(&self.key, self.ip)
    }
}

/// The verified key, for handlers. Its permission was checked against the
/// permission table before the handler runs.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal(&"a keyed handler is routed without the key middleware")
        })
    }
}

/// Put on responses so the request log can name the key (never the secret).
#[derive(Clone, Debug)]
pub struct LoggedKeyId(pub Arc<KeyRecord>);

/// Finds the presented key. `Authorization: Bearer <key>` (any case), a bare
/// `Authorization: <key>`, or `X-API-Key: <key>`; a legacy `?api_key=` only
/// when no header carries one. A new-format key in `?api_key=` is what the
/// request presents whatever the headers say, so the verify path refuses it
/// as `key_in_url` and warns its owner: it has leaked into URLs and logs.
pub fn extract_key(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(String, KeySource), AuthError> {
    // Most keyed requests carry no `api_key` parameter: the query string is
    // only parsed when it can hold one (spelled out, or percent-encoded).
    let in_query = query
        .filter(|q| q.contains("api_key") || q.contains('%'))
        .and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "api_key")
                .map(|(_, v)| v)
        });
    if let Some(v) = &in_query
        && matches!(token::classify(v), Ok(token::Presented::Standard { .. }))
    {
        return Ok((v.clone(), KeySource::Query));
    }
    let single = |name: header::HeaderName| -> Result<Option<String>, AuthError> {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::Ambiguous);
        }
        let s = first.to_str().map_err(|_| AuthError::BadScheme)?.trim();
        Ok(Some(s.to_owned()))
    };
    let from_authorization = match single(header::AUTHORIZATION)? {
        None => None,
        Some(value) => Some(match value.split_once(char::is_whitespace) {
            None => value,
            Some((scheme, rest)) => {
                let rest = rest.trim_start();
                if !scheme.eq_ignore_ascii_case("bearer") || rest.contains(char::is_whitespace) {
                    return Err(AuthError::BadScheme);
                }
                rest.to_owned()
            }
        }),
    };
    let from_x_api_key = match single(header::HeaderName::from_static("x-api-key"))? {
        Some(v) if v.contains(char::is_whitespace) => return Err(AuthError::BadScheme),
        other => other,
    };
    match (from_authorization, from_x_api_key) {
        (Some(a), Some(x)) if a != x => Err(AuthError::Ambiguous),
        (Some(a), _) | (None, Some(a)) => Ok((a, KeySource::Header)),
        (None, None) => in_query
            .map(|v| (v, KeySource::Query))
            .ok_or(AuthError::Missing),
    }
}

/// Verifies the request's key; on success the handler finds a [`Caller`] in
/// the request extensions.
pub async fn require_key(
    Extension(state): Extension<crate::app::CoreRef>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0);
    let verdict = match extract_key(req.headers(), req.uri().query()) {
        Ok((value, source)) => state.verify(&value, source, ip).await,
        Err(e) => Err(e),
    };
    // What usage needs after the request has been handed on (cheap clones).
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let agent = req.headers().get(header::USER_AGENT).cloned();
    let record = |key_id: &str, status: StatusCode, rejection: Option<Rejection>| {
        state.usage.record(Hit {
            key_id,
            at: state.clock.now(),
            method: &method,
            route: route.as_ref().map_or("(unmatched)", MatchedPath::as_str),
            status: status.as_u16(),
            rejection,
            ip,
            user_agent: agent.as_ref().and_then(|a| a.to_str().ok()),
        });
    };
    match verdict {
        Ok(key) => {
            // Rate limit before permission: every answer past the IP check
            // carries the headers, and a key hammering a route it may not use
            // is throttled too.
            let checked = state
                .limits
                .check_key(&key.id, key.rate_limit_per_minute, state.clock.now())
                .await;
            let Ok(decision) = checked else {
                let mut response = limits_unavailable().into_response();
                response.extensions_mut().insert(LoggedKeyId(key));
                return response;
            };
            let mut response = if decision.allowed {
                match permission_check(&method, route.as_ref(), &key) {
                    Ok(()) => {
                        req.extensions_mut().insert(Caller {
                            key: key.clone(),
                            ip,
                        });
                        let response = next.run(req).await;
                        record(&key.id, response.status(), None);
                        response
                    }
                    Err(e) => {
                        let response = e.into_response();
                        record(&key.id, response.status(), None);
                        response
                    }
                }
            } else {
                record(
                    &key.id,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(Rejection::RateLimited),
                );
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Rate limit exceeded",
                    format!(
                        "This key may make {} requests per minute. Retry after {} s; spread requests out, or ask the shop to raise the key's limit.",
                        decision.limit, decision.retry_after_secs
                    ),
                )
                .with("retry_after", decision.retry_after_secs);
                e.retry_after = Some(decision.retry_after_secs);
                e.into_response()
            };
            rate_limit_headers(response.headers_mut(), &decision);
            // Every answer to a working legacy key says when it stops working.
            if key.kind == crate::domain::key::KeyKind::Legacy {
                for (name, value) in deprecation_headers(&key, &state.policy) {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        response.headers_mut().insert(name, v);
                    }
                }
            }
            response.extensions_mut().insert(LoggedKeyId(key));
            response
        }
        Err(err) if err.is_failed_attempt() => {
            let Ok(decision) = state
                .limits
                .record_failed_attempt(ip, state.clock.now())
                .await
            else {
                return limits_unavailable().into_response();
            };
            if decision.allowed {
                return ApiError::from(err).into_response();
            }
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_attempts",
                "Too many failed attempts",
                format!(
                    "Too many requests from {ip} with a missing, malformed or unknown API key. Fix the key, then retry after {} s.",
                    decision.retry_after_secs
                ),
            )
            .with("retry_after", decision.retry_after_secs)
            .with("client_ip", ip.to_string());
            e.retry_after = Some(decision.retry_after_secs);
            e.into_response()
        }
        Err(err) => {
            // A known key that was refused: counted against that key, with
            // the reason, so the shop sees a revoked key still being tried.
            let (key, rejection) = match &err {
                AuthError::KeyInUrl(Some(k)) => {
                    state.keys.note_key_in_url(k, ip).await;
                    (Some(k.clone()), None)
                }
                AuthError::Revoked(k) => (Some(k.clone()), Some(Rejection::Revoked)),
                AuthError::Expired(k) => (Some(k.clone()), Some(Rejection::Expired)),
                AuthError::Retired(k) | AuthError::Brownout(k, _) => {
                    (Some(k.clone()), Some(Rejection::Retired))
                }
                AuthError::Paused(k) => (Some(k.clone()), Some(Rejection::Paused)),
                AuthError::IpNotAllowed(k, _) => (Some(k.clone()), Some(Rejection::IpDenied)),
                _ => (None, None),
            };
            let mut response = ApiError::from(err).into_response();
            if let Some(key) = key {
                record(&key.id, response.status(), rejection);
                response.extensions_mut().insert(LoggedKeyId(key));
            }
            response
        }
    }
}

/// Redis is down and `--redis-unavailable deny` says to refuse.
fn limits_unavailable() -> ApiError {
    ApiError::unavailable(
        "the shared rate limits (Redis) are not answering; --redis-unavailable deny",
    )
}

/// Where the deprecation `Link` points.
pub const LEGACY_DOCS_PATH: &str = "/settings/api-keys/docs#legacy-keys";

/// The three headers every answer to a working legacy key carries:
/// `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and `Link`.
pub fn deprecation_headers(
    key: &KeyRecord,
    policy: &crate::domain::policy::Policy,
) -> [(&'static str, String); 3] {
    [
        ("deprecation", format!("@{}", key.created_at.unix_seconds())),
        (
            "sunset",
            crate::domain::clock::http_date(policy.legacy_sunset),
        ),
        ("link", format!("<{LEGACY_DOCS_PATH}>; rel=\"deprecation\"")),
    ]
}

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The IETF draft headers and the customary `X-RateLimit-*` ones. On every
/// keyed answer, so built without parsing header names.
fn rate_limit_headers(h: &mut HeaderMap, d: &Decision) {
    if let Ok(v) = HeaderValue::try_from(format!("\"key\";q={};w=60", d.limit)) {
        h.insert(RATELIMIT_POLICY.clone(), v);
    }
    if let Ok(v) = HeaderValue::try_from(format!("\"key\";r={};t={}", d.remaining, d.reset_secs)) {
        h.insert(RATELIMIT.clone(), v);
    }
    h.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(d.limit));
    h.insert(
        X_RATELIMIT_REMAINING.clone(),
        HeaderValue::from(d.remaining),
    );
    h.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(d.reset_secs));
}

/// The last check before the handler: the permission the route needs, from
/// the permission table. A method the route does not have passes on (the
/// router answers 405, which keeps the rate-limit headers put on it here:
/// see `request_context`); a keyed route missing from the table is refused, so a
/// route can never be reachable without a permission check.
fn permission_check(
    method: &axum::http::Method,
    route: Option<&MatchedPath>,
    key: &KeyRecord,
) -> Result<(), ApiError> {
    let route = route.map_or("", MatchedPath::as_str);
    match permissions::operation(method.as_str(), route) {
        Some(op) => match op.need.missing_from(key.permissions) {
            None => Ok(()),
            Some(p) => Err(missing_permission(p)),
        },
        None if permissions::has_route(route) => Ok(()),
        None => Err(ApiError::internal(&format!(
            "{method} {route} has no entry in the permission table"
        ))),
    }
}

fn missing_permission(p: Permission) -> ApiError {
    ApiError::insufficient_permission(
        p,
        format!(
            "This key lacks the `{p}` permission this request needs. Edit the key's permissions or use a key that has it."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepted_ways_of_sending_a_key() {
        for h in [
            headers(&[("authorization", "Bearer abc")]),
            headers(&[("authorization", "bearer   abc")]),
            headers(&[("authorization", "BEARER abc")]),
            headers(&[("authorization", "abc")]),
            headers(&[("x-api-key", "abc")]),
            headers(&[("authorization", "Bearer abc"), ("x-api-key", "abc")]),
        ] {
            assert_eq!(
                extract_key(&h, None).unwrap(),
                ("abc".to_owned(), KeySource::Header)
            );
        }
        assert_eq!(
            extract_key(&HeaderMap::new(), Some("x=1&api_key=abc")).unwrap(),
            ("abc".to_owned(), KeySource::Query)
        );
        // A percent-encoded parameter name is the same parameter.
        assert_eq!(
            extract_key(&HeaderMap::new(), Some("x=1&api%5Fkey=abc")).unwrap(),
            ("abc".to_owned(), KeySource::Query)
        );
    }

    #[test]
    fn a_new_key_in_the_url_is_what_is_presented_even_beside_a_header_key() {
        let url_key = format!("api_key={}", made_up_standard_key());
        for h in [
            HeaderMap::new(),
            headers(&[("authorization", "Bearer abc")]),
            headers(&[("x-api-key", "abc")]),
            headers(&[("authorization", "a"), ("x-api-key", "b")]),
        ] {
            let (value, source) = extract_key(&h, Some(&url_key)).unwrap();
            assert_eq!(source, KeySource::Query, "{h:?}");
            assert_eq!(format!("api_key={value}"), url_key);
        }
        // Anything else in the URL beside a header key is left alone.
        assert_eq!(
            extract_key(&headers(&[("x-api-key", "abc")]), Some("api_key=zzz")).unwrap(),
            ("abc".to_owned(), KeySource::Header)
        );
    }

    fn made_up_standard_key() -> String {
        token::generate(token::Environment::Live)
            .expose()
            .to_owned()
    }

    #[test]
    fn refused_ways() {
        assert!(matches!(
            extract_key(&HeaderMap::new(), None),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            extract_key(&headers(&[("authorization", "Basic abc")]), None),
            Err(AuthError::BadScheme)
        ));
        assert!(matches!(
            extract_key(&headers(&[("authorization", "Bearer a b")]), None),
            Err(AuthError::BadScheme)
        ));
        assert!(matches!(
            extract_key(&headers(&[("x-api-key", "a b")]), None),
            Err(AuthError::BadScheme)
        ));
        assert!(matches!(
            extract_key(
                &headers(&[("authorization", "a"), ("x-api-key", "b")]),
                None
            ),
            Err(AuthError::Ambiguous)
        ));
        assert!(matches!(
            extract_key(
                &headers(&[("authorization", "a"), ("authorization", "b")]),
                None
            ),
            Err(AuthError::Ambiguous)
        ));
    }
}
