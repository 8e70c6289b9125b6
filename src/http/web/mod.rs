//! Server-rendered HTML pages. Every page is an askama template (under
//! `templates/`, laid out like these modules) that extends `layout.html`, so
//! every value is escaped by the template engine and the header and navigation
//! are written once. [`session::render`] turns a page into a response through
//! [`html_response`], which adds the security headers (a strict
//! Content-Security-Policy: no inline script or style, nothing from other
//! origins).

pub mod audit;
pub mod chart;
mod confirm;
pub mod docs;
mod form;
pub mod keys;
pub mod login;
pub mod session;
pub mod setup;
pub mod test_data;
pub mod users;
mod view;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/app.css", get(stylesheet))
        .route("/assets/app.js", get(script))
        .merge(setup::router())
        .merge(docs::router())
        .merge(session::router())
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML document with the security headers every page carries; pages get
/// here through [`session::render`].
fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The little script the pages use: copy-to-clipboard, confirmations and the
/// template picker. Every page works without it.
async fn script() -> Response {
    let mut r = include_str!("../../../assets/app.js").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn stylesheet() -> Response {
    let mut r = include_str!("../../../assets/app.css").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}
