//! Who is using the web UI: login sessions, the CSRF guard every POST passes,
//! and the pieces every page shares (the layout's chrome,
//! message pages).
//!
//! - The session cookie holds 32 random base62 characters; the store keeps
//!   only their keyed hash, so sessions survive a restart and a copy of the
//!   database opens none. `HttpOnly; SameSite=Strict; Path=/`, and `Secure`
//!   when the public URL is https.
//! - The CSRF token of a form is a keyed hash of the cookie it belongs to (the
//!   session, or before login a short-lived login cookie): nothing to store,
//!   and a page from another site can read neither. [`csrf_guard`] checks it
//!   on every POST before any handler runs.

use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;

use super::html_response;
use crate::app::{AppState, Core};
use crate::domain::permission::Permission;
use crate::domain::user::Role;
use crate::http::auth::ClientIp;
use crate::service::keys::Principal;
use crate::store::{Shop, User};

pub const SESSION_COOKIE: &str = "latchkey_session";
/// Set by the login page so its form can carry a CSRF token before any session exists.
pub const LOGIN_COOKIE: &str = "latchkey_login";
pub use crate::service::users::{IDLE_SECONDS, MAX_AGE_SECONDS};
/// The largest form any page sends.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The pages behind a login, with the CSRF guard in front of every POST.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/settings", get(home))
        .merge(super::login::router())
        .merge(super::keys::router())
        .merge(super::users::router())
        .merge(super::audit::router())
        .merge(super::test_data::router())
        .route_layer(from_fn(csrf_guard))
}

async fn home() -> Redirect {
    Redirect::to("/settings/api-keys")
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A `Set-Cookie` value with the attributes every cookie here has.
pub fn set_cookie(core: &Core, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if core.policy.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base62")
}

/// The CSRF token for forms shown to the holder of `cookie_value`.
pub fn csrf_token(core: &Core, cookie_value: &str) -> String {
    let mac = core.hasher.hash(&format!("csrf:{cookie_value}"));
    mac[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Set-Cookie` value carrying a new session's token.
pub fn session_cookie(core: &Core, token: &str) -> HeaderValue {
    set_cookie(core, SESSION_COOKIE, token, MAX_AGE_SECONDS)
}

/// Refuses every POST whose `csrf` field does not match the cookie it was
/// made for, before the handler runs.
async fn csrf_guard(req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(core) = req.extensions().get::<crate::app::CoreRef>().cloned() else {
        return next.run(req).await;
    };
    let expected: Vec<String> = [SESSION_COOKIE, LOGIN_COOKIE]
        .iter()
        .filter_map(|name| cookie(req.headers(), name))
        .map(|v| csrf_token(&core, v))
        .collect();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            "The form could not be read",
            "It was larger than any form here sends. Go back and try again.",
        );
    };
    let sent = super::form::FormData::parse(&bytes);
    let sent = sent.get("csrf");
    let ok = !sent.is_empty()
        && expected
            .iter()
            .any(|e| bool::from(e.as_bytes().ct_eq(sent.as_bytes())));
    if !ok {
        tracing::info!(
            path = parts.uri.path(),
            "web: form refused (missing or wrong CSRF token)"
        );
        return message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired",
            "For your safety, forms work only from the page that showed them, while you are logged in. \
             Go back, reload the page and submit it again.",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The logged-in user of a page. Extracting it sends a visitor without a
/// session to the login page.
#[derive(Clone, Debug)]
pub struct WebUser {
    pub user: User,
    pub shop: Arc<Shop>,
    pub token_hash: [u8; 32],
    pub csrf: String,
    pub ip: IpAddr,
}

impl WebUser {
    pub fn principal(&self) -> Principal {
        Principal::user(&self.user, self.ip)
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// May see every key of the shop and the audit log.
    pub fn reads_all_keys(&self) -> bool {
        self.user.role.permissions().contains(Permission::KeysRead)
    }

    pub fn chrome(&self, title: &str, active: &'static str) -> Chrome {
        Chrome {
            title: title.to_owned(),
            active,
            signed_in: true,
            email: self.user.email.as_str().to_owned(),
            role: self.user.role.as_str(),
            shop_name: self.shop.name.clone(),
            csrf: self.csrf.clone(),
            can_audit: self.reads_all_keys(),
            can_manage_users: self.user.role == Role::Owner,
        }
    }
}

fn login_redirect(parts: &Parts) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/settings/api-keys", |p| p.as_str());
    let next = if parts.method == Method::GET && path != "/" {
        format!("/login?next={}", urlencode(path))
    } else {
        "/login".to_owned()
    };
    Redirect::to(&next).into_response()
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|v| v[1..].to_owned())
        .unwrap_or_default()
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let core = &state.core;
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(login_redirect(parts));
        };
        let found = state
            .users
            .session(token)
            .await
            .map_err(|e| unavailable(&e))?;
        let Some(found) = found else {
            return Err(login_redirect(parts));
        };
        if found.must_change_password
            && !matches!(parts.uri.path(), "/settings/password" | "/logout")
        {
            return Err(Redirect::to("/settings/password").into_response());
        }
        let shop = state
            .shops
            .get(&found.user.shop_id)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| login_redirect(parts))?;
        let ip = parts
            .extensions
            .get::<ClientIp>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0);
        Ok(WebUser {
            token_hash: found.session.token_hash,
            user: found.user,
            shop,
            csrf: csrf_token(core, token),
            ip,
        })
    }
}

/// What the layout needs: the page title, the navigation and who is logged in.
pub struct Chrome {
    pub title: String,
    /// Which navigation entry is current.
    pub active: &'static str,
    pub signed_in: bool,
    pub email: String,
    pub role: &'static str,
    pub shop_name: String,
    pub csrf: String,
    pub can_audit: bool,
    pub can_manage_users: bool,
}

impl Chrome {
    /// For pages seen before logging in.
    pub fn anonymous(title: &str) -> Self {
        Chrome {
            title: title.to_owned(),
            active: "",
            signed_in: false,
            email: String::new(),
            role: "",
            shop_name: String::new(),
            csrf: String::new(),
            can_audit: false,
            can_manage_users: false,
        }
    }
}

/// Renders a template with the security headers, or a plain error page.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => html_response(status, html),
        Err(e) => {
            tracing::error!(error = %e, "web: template failed");
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Something went wrong. Try again.</p>".into(),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
    pub link: Option<(String, String)>,
}

/// A page that only says something (errors, refusals).
pub fn message(status: StatusCode, title: &str, heading: &str, text: &str) -> Response {
    render(
        status,
        &MessagePage {
            chrome: Chrome::anonymous(title),
            heading: heading.to_owned(),
            text: text.to_owned(),
            link: Some(("/settings/api-keys".into(), "Back to API keys".into())),
        },
    )
}

/// [`message`] inside the layout of a logged-in user.
pub fn user_message(
    user: &WebUser,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    render(
        status,
        &MessagePage {
            chrome: user.chrome(heading, ""),
            heading: heading.to_owned(),
            text: text.to_owned(),
            link: link.map(|(h, t)| (h.to_owned(), t.to_owned())),
        },
    )
}

/// The page for a failure the user can only retry (the database did not
/// answer, or something unexpected); the cause goes to the log.
pub fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web: store error");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "Something went wrong",
        "The database did not answer. Try again in a moment.",
    )
}

/// The page for a login or key form refused because the limits shared
/// between instances (Redis) are not answering and `--redis-unavailable deny`
/// says to refuse rather than fall back.
pub fn limits_unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "Try again in a moment",
        "A service latchkey depends on is not answering, so this form cannot be handled safely right now. Try again in a moment.",
    )
}

pub fn not_found(user: &WebUser, what: &str) -> Response {
    user_message(
        user,
        StatusCode::NOT_FOUND,
        &format!("No such {what}"),
        &format!(
            "There is no {what} with this id in {}. It may have been deleted.",
            user.shop.name
        ),
        Some(("/settings/api-keys", "Back to API keys")),
    )
}

/// A 303 to `to`: the answer to a form that changed something.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
