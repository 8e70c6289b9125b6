//! Server-rendered HTML pages. Every page comes from [`page`], which adds the
//! layout and the security headers (a strict Content-Security-Policy: no
//! inline script or style, nothing from other origins).

pub mod audit;
pub mod chart;
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

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A full page: `body` is trusted HTML built with [`esc`] around every value.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_with(status, title, body, false)
}

/// [`page`], optionally with a wide main column (documentation, tables).
pub fn page_with(status: StatusCode, title: &str, body: &str, wide: bool) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · latchkey</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><header class=\"top\"><span class=\"logo\">latchkey</span></header>\
         <main{class}>{body}</main></body></html>",
        esc(title),
        class = if wide { " class=\"wide\"" } else { "" },
    );
    html_response(status, html)
}

/// An HTML document with the security headers every page carries.
pub fn html_response(status: StatusCode, html: String) -> Response {
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

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
