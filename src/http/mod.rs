//! HTTP: the router, the request context (request id, client IP, request
//! log, security headers) and the JSON API under `/api/v1`.

pub mod api;
pub mod auth;
pub mod contract;
pub mod error;
pub mod json;
pub mod leaks;
pub mod openapi;
pub mod web;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::domain::unique_base62;
use crate::http::error::{ApiError, REQUEST_ID};
use auth::{ClientIp, LoggedKeyId};

/// Builds the whole application's router.
pub fn build_router(state: AppState) -> Router {
    let (api, _document) = openapi::api_router().split_for_parts();
    Router::new()
        .merge(api)
        .merge(web::router())
        .merge(leaks::router())
        .route_layer(from_fn(tag_route))
        .fallback(no_such_route)
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

async fn no_such_route() -> ApiError {
    let mut e = ApiError::not_found();
    e.detail = "There is no endpoint at this path. The API reference is at /settings/api-keys/docs and /openapi.json.".into();
    e
}

/// The route template, carried out to the request log.
#[derive(Clone)]
struct RouteTemplate(MatchedPath);

async fn tag_route(req: Request, next: Next) -> Response {
    // A reference-counted clone, not a copy of the string.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(r) = route {
        response.extensions_mut().insert(RouteTemplate(r));
    }
    response
}

/// An incoming `X-Request-Id` is kept when it is short and plain (so a
/// caller can correlate), otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", unique_base62(20)))
}

/// Around every request: request id, client IP, uniform error bodies for
/// 405, security headers, and one structured log line (route template, status,
/// latency, key id; never the key, never the query string).
async fn request_context(
    State(state): State<crate::app::CoreRef>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        // What the ConnectInfo extractor also falls back to (in-process tests).
        .or_else(|| {
            req.extensions()
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        })
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let client_ip = state.policy.trusted_proxies.client_ip(
        peer,
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(ClientIp(client_ip));
    req.extensions_mut().insert(state.clone());
    let method = req.method().clone();

    let mut response = REQUEST_ID
        .scope(id.clone(), async move {
            let response = next.run(req).await;
            if response.status() == StatusCode::METHOD_NOT_ALLOWED
                && !response.headers().contains_key(header::CONTENT_TYPE)
            {
                // The router's bare 405 gets the problem body; what was put
                // on it (`Allow`, and for a valid key the rate-limit and
                // deprecation headers) is kept.
                let (mut parts, _) = response.into_parts();
                parts.headers.remove(header::CONTENT_LENGTH);
                let mut problem = ApiError::method_not_allowed().into_response();
                let headers = problem.headers_mut();
                for name in parts.headers.keys() {
                    headers.remove(name);
                }
                for (name, value) in &parts.headers {
                    headers.append(name, value.clone());
                }
                *problem.extensions_mut() = parts.extensions;
                return problem;
            }
            response
        })
        .await;

    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));

    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("(no route)", |r| r.0.as_str());
    let key_id = response
        .extensions()
        .get::<LoggedKeyId>()
        .map(|k| k.0.id.as_str());
    tracing::info!(
        request_id = %id,
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        key_id,
        client_ip = %client_ip,
        "request"
    );
    response
}
