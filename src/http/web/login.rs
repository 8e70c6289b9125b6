//! `/login`, `/logout` and `/settings/password`.
//!
//! The rules (checking the password, one-time passwords, sessions, the audit
//! events) are the users service's; this surface throttles failed logins per
//! (account, client network) and per client network through the limits
//! facade, and turns answers into pages and cookies. Failures from other
//! addresses never lock an account for its owner.

use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;

use super::form::{Errors, FormData};
use super::session::{
    Chrome, LOGIN_COOKIE, SESSION_COOKIE, WebUser, cookie, csrf_token, limits_unavailable, message,
    render, see_other, session_cookie, set_cookie, unavailable,
};
use super::view;
use crate::app::{AppState, Core};
use crate::domain::key::Actor;
use crate::domain::new_id;
use crate::domain::random_base62;
use crate::domain::user::Password;
use crate::http::auth::ClientIp;
use crate::http::error::ServiceError;
use crate::service::users::{Acting, LoginOutcome, UserService};
use crate::store::AuditEvent;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", get(confirm_logout).post(logout))
        .route(
            "/settings/password",
            get(password_form).post(change_password),
        )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    next: String,
    error: String,
    notice: String,
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
}

/// Where a login may lead: only a path on this site (a hardening rule):
/// one `/`, then neither `/` nor `\` (browsers read both as `//host`; a `\`
/// is refused anywhere, no page here has one), and no control character or
/// whitespace anywhere (browsers drop a tab, a line break splits the
/// header). Anything else leads to the keys page.
fn safe_next(next: &str) -> String {
    const KEYS_PAGE: &str = "/settings/api-keys";
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
        && next != "/login";
    if local {
        percent_encode_non_ascii(next)
    } else {
        KEYS_PAGE.to_owned()
    }
}

/// A `Location` header holds visible ASCII only; a path with other letters
/// (`/settings/api-keys?q=café`) is sent percent-encoded, as browsers do.
fn percent_encode_non_ascii(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The login cookie's value (made anew when missing) and its CSRF token.
fn login_cookie(core: &Core, headers: &HeaderMap) -> (Option<String>, String) {
    match cookie(headers, LOGIN_COOKIE) {
        Some(v) => (None, csrf_token(core, v)),
        None => {
            let v = random_base62(32);
            let csrf = csrf_token(core, &v);
            (Some(v), csrf)
        }
    }
}

fn login_page(
    core: &Core,
    status: StatusCode,
    new_cookie: Option<String>,
    page: LoginPage,
) -> Response {
    let mut r = render(status, &page);
    if let Some(v) = new_cookie {
        r.headers_mut()
            .append(header::SET_COOKIE, set_cookie(core, LOGIN_COOKIE, &v, 3600));
    }
    r
}

async fn show(
    State(core): State<crate::app::CoreRef>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let q = query.ok().map(|Query(q)| q).unwrap_or_default();
    let (new_cookie, csrf) = login_cookie(&core, &headers);
    let notice = match q.done.as_deref() {
        Some("logged_out") => "You are logged out.",
        Some("password_changed") => "Your password is changed. Log in with the new one.",
        _ => "",
    };
    login_page(
        &core,
        StatusCode::OK,
        new_cookie,
        LoginPage {
            chrome: Chrome::anonymous("Log in"),
            csrf,
            email: String::new(),
            next: safe_next(q.next.as_deref().unwrap_or("")),
            error: String::new(),
            notice: notice.into(),
        },
    )
}

async fn submit(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = FormData::parse(&body);
    let typed = f.get("email").trim().to_lowercase();
    let next = safe_next(f.get("next"));
    let now = core.clock.now();
    let (new_cookie, csrf) = login_cookie(&core, &headers);
    let again = |status: StatusCode, error: String| {
        login_page(
            &core,
            status,
            new_cookie.clone(),
            LoginPage {
                chrome: Chrome::anonymous("Log in"),
                csrf: csrf.clone(),
                email: typed.clone(),
                next: next.clone(),
                error,
                notice: String::new(),
            },
        )
    };
    match core.limits.login_blocked_until(&typed, ip, now).await {
        Ok(Some(until)) => return too_many(until, now),
        Ok(None) => {}
        Err(_) => return limits_unavailable(),
    }
    let password = f.get("password").to_owned();
    let token = match core.users.login(&typed, password, ip).await {
        Ok(LoginOutcome::LoggedIn { token, .. }) => token,
        Ok(LoginOutcome::WrongCredentials) => {
            match core.limits.record_login_failure(&typed, ip, now).await {
                Ok(Some(until)) => return too_many(until, now),
                Ok(None) => {}
                Err(_) => return limits_unavailable(),
            }
            return again(
                StatusCode::UNAUTHORIZED,
                "That email and password do not match an account. Check both and try again.".into(),
            );
        }
        Ok(LoginOutcome::OneTimeExpired) => {
            return again(
                StatusCode::UNAUTHORIZED,
                "This one-time password has expired. Ask the shop owner for a new one.".into(),
            );
        }
        Err(e) => return unavailable(&e),
    };
    // Signed in: this address's failures for the account are forgiven. A
    // failure to reach Redis here only leaves the entry to expire.
    let _ = core.limits.clear_login_failures(&typed, ip).await;
    let mut r = see_other(&next);
    r.headers_mut()
        .append(header::SET_COOKIE, session_cookie(&core, &token));
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&core, LOGIN_COOKIE, "", 0));
    r
}

fn too_many(
    until: crate::domain::clock::Timestamp,
    now: crate::domain::clock::Timestamp,
) -> Response {
    let wait = ((until.as_micros() - now.as_micros()) / 1_000_000).max(1);
    let mut r = message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "Too many login attempts",
        &format!(
            "To protect the account, logging in is paused for {}. Try again then, or ask the shop owner to reset your password.",
            if wait < 60 {
                format!("{wait} seconds")
            } else {
                view::relative(until, now).replace("in ", "")
            }
        ),
    );
    if let Ok(v) = wait.to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    chrome: Chrome,
}

async fn confirm_logout(user: WebUser) -> Response {
    render(
        StatusCode::OK,
        &LogoutPage {
            chrome: user.chrome("Log out", ""),
        },
    )
}

async fn logout(State(core): State<crate::app::CoreRef>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = core.users.end_session(token).await
    {
        return unavailable(&e);
    }
    let mut r = see_other("/login?done=logged_out");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&core, SESSION_COOKIE, "", 0));
    r
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    forced: bool,
    errors: Errors,
    min: usize,
}

async fn is_forced(users: &UserService, user: &WebUser) -> Result<bool, Response> {
    users
        .must_change_password(&user.user)
        .await
        .map_err(|e| unavailable(&e))
}

fn password_page(user: &WebUser, status: StatusCode, forced: bool, errors: Errors) -> Response {
    render(
        status,
        &PasswordPage {
            chrome: user.chrome("Change password", "password"),
            forced,
            errors,
            min: Password::MIN_LEN,
        },
    )
}

async fn password_form(State(users): State<Arc<UserService>>, user: WebUser) -> Response {
    match is_forced(&users, &user).await {
        Ok(forced) => password_page(&user, StatusCode::OK, forced, Errors::default()),
        Err(r) => r,
    }
}

async fn change_password(
    State(users): State<Arc<UserService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    body: Bytes,
) -> Response {
    let f = FormData::parse(&body);
    let by = Acting {
        user: &user.user,
        ip,
    };
    let changed = users
        .change_own_password(
            by,
            &user.token_hash,
            f.get("current_password"),
            f.get("password"),
            f.get("password_confirm"),
        )
        .await;
    match changed {
        Ok(()) => see_other("/settings/api-keys?done=password_changed"),
        Err(ServiceError::Validation(errors)) => match is_forced(&users, &user).await {
            Ok(forced) => password_page(
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                forced,
                Errors(errors),
            ),
            Err(r) => r,
        },
        Err(e) => unavailable(&e),
    }
}

/// An audit event about a user (`target`), done by `by`.
pub fn audit_user_event(
    core: &Core,
    by: &WebUser,
    ip: IpAddr,
    action: &str,
    target: &str,
) -> AuditEvent {
    AuditEvent {
        id: new_id("evt"),
        shop_id: by.user.shop_id.clone(),
        at: core.clock.now(),
        actor: Actor::User(by.user.id.clone()),
        action: action.to_owned(),
        key_id: None,
        environment: None,
        ip: Some(ip.to_string()),
        details: serde_json::json!({ "user_id": target }),
    }
}
