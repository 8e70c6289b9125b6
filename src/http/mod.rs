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

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::{AppState, CoreRef};
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
        .route_layer(TagRouteLayer)
        .fallback(no_such_route)
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(RequestContextLayer(state.core.clone()))
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

/// Tags each routed response with its route template. Hand-written rather
/// than `from_fn`, which boxes a future and clones the route's service per
/// request: this only clones the template (reference counted) and wraps the
/// route's own future.
#[derive(Clone, Copy)]
struct TagRouteLayer;

impl<S> Layer<S> for TagRouteLayer {
    type Service = TagRoute<S>;
    fn layer(&self, inner: S) -> TagRoute<S> {
        TagRoute(inner)
    }
}

#[derive(Clone)]
struct TagRoute<S>(S);

impl<S> Service<Request> for TagRoute<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tagged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        Tagged {
            inner: self.0.call(req),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    struct Tagged<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for Tagged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(route) = this.route.take() {
            response.extensions_mut().insert(RouteTemplate(route));
        }
        Poll::Ready(Ok(response))
    }
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
///
/// Hand-written rather than `from_fn`: every request passes here, and this
/// wraps the route's own future instead of boxing one and cloning the route.
#[derive(Clone)]
struct RequestContextLayer(CoreRef);

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;
    fn layer(&self, inner: S) -> RequestContext<S> {
        RequestContext {
            core: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct RequestContext<S> {
    core: CoreRef,
    inner: S,
}

/// What the request log line and the response headers need once the
/// response is there.
struct RequestInfo {
    started: Instant,
    id: String,
    method: Method,
    client_ip: IpAddr,
}

impl<S> Service<Request> for RequestContext<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = InContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
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
        let client_ip = self.core.policy.trusted_proxies.client_ip(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        req.extensions_mut().insert(ClientIp(client_ip));
        req.extensions_mut().insert(self.core.clone());
        let method = req.method().clone();
        InContext {
            inner: REQUEST_ID.scope(id.clone(), self.inner.call(req)),
            context: Some(RequestInfo {
                started,
                id,
                method,
                client_ip,
            }),
        }
    }
}

pin_project_lite::pin_project! {
    struct InContext<F> {
        #[pin]
        inner: TaskLocalFuture<String, F>,
        context: Option<RequestInfo>,
    }
}

impl<F, E> Future for InContext<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let Some(context) = this.context.take() else {
            // Polled again after it was ready: tower's contract says never.
            return Poll::Ready(Ok(
                ApiError::internal(&"a request future was polled twice").into_response()
            ));
        };
        Poll::Ready(Ok(finish(response, context)))
    }
}

/// The 405 body, the common headers and the request log line.
fn finish(response: Response, context: RequestInfo) -> Response {
    let RequestInfo {
        started,
        id,
        method,
        client_ip,
    } = context;
    let mut response = if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        // The router's bare 405 gets the problem body; what was put on it
        // (`Allow`, and for a valid key the rate-limit and deprecation
        // headers) is kept.
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let mut problem = REQUEST_ID.sync_scope(id.clone(), || {
            ApiError::method_not_allowed().into_response()
        });
        let headers = problem.headers_mut();
        for name in parts.headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &parts.headers {
            headers.append(name, value.clone());
        }
        *problem.extensions_mut() = parts.extensions;
        problem
    } else {
        response
    };

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
