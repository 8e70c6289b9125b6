//! `/login`, `/logout` and `/settings/password`.
//!
//! A wrong email and a wrong password get the same answer after the same work
//! (an unknown email is checked against a dummy hash), so the form does not
//! tell who has an account. Failed logins are throttled per account and per
//! client network.

use std::net::IpAddr;
use std::sync::LazyLock;

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
    Chrome, LOGIN_COOKIE, SESSION_COOKIE, WebUser, cookie, csrf_token, message, render, see_other,
    set_cookie, start_session, unavailable,
};
use super::view;
use crate::app::{AppState, Core};
use crate::domain::key::Actor;
use crate::domain::new_id;
use crate::domain::random_base62;
use crate::domain::user::{Email, Password};
use crate::http::auth::ClientIp;
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

/// Verified against when the email is unknown, so that answer takes as long.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Password::parse("not a real password, only for timing".into())
        .expect("long enough")
        .hash()
});

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

/// Only a path on this site (never `//host` or a scheme) may follow a login.
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && next != "/login"
    {
        next.to_owned()
    } else {
        "/settings/api-keys".to_owned()
    }
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
    if let Some(until) = core.web.login_blocked_until(&typed, ip, now) {
        return too_many(until, now);
    }
    let user = match Email::parse(&typed) {
        Ok(email) => match core.store.find_user_by_email(&email).await {
            Ok(u) => u,
            Err(e) => return unavailable(&e),
        },
        Err(_) => None,
    };
    let password = f.get("password").to_owned();
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let verified = tokio::task::spawn_blocking(move || Password::verify(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        core.web.record_login_failure(&core, &typed, ip, now);
        if let Some(until) = core.web.login_blocked_until(&typed, ip, now) {
            return too_many(until, now);
        }
        return again(
            StatusCode::UNAUTHORIZED,
            "That email and password do not match an account. Check both and try again.".into(),
        );
    };
    match core.store.one_time_password_expiry(&user.id).await {
        Ok(Some(expiry)) if expiry <= now => {
            return again(
                StatusCode::UNAUTHORIZED,
                "This one-time password has expired. Ask the shop owner for a new one.".into(),
            );
        }
        Ok(_) => {}
        Err(e) => return unavailable(&e),
    }
    core.web.forget_login_failures(&typed);
    let session_cookie = match start_session(&core, &user, ip).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let audit = AuditEvent {
        id: new_id("evt"),
        shop_id: user.shop_id.clone(),
        at: now,
        actor: Actor::User(user.id.clone()),
        action: "user.logged_in".into(),
        key_id: None,
        environment: None,
        ip: Some(ip.to_string()),
        details: serde_json::json!({"email": user.email}),
    };
    if let Err(e) = core.store.append_audit(&audit).await {
        tracing::warn!(error = %e, "web: could not audit a login");
    }
    tracing::info!(user_id = %user.id, "web: logged in");
    let mut r = see_other(&next);
    r.headers_mut().append(header::SET_COOKIE, session_cookie);
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
        && let Err(e) = core.store.delete_session(&core.hasher.hash(token)).await
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

async fn is_forced(core: &Core, user: &WebUser) -> Result<bool, Response> {
    core.store
        .one_time_password_expiry(&user.user.id)
        .await
        .map(|e| e.is_some())
        .map_err(|e| unavailable(&e))
}

async fn password_form(State(core): State<crate::app::CoreRef>, user: WebUser) -> Response {
    let forced = match is_forced(&core, &user).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    render(
        StatusCode::OK,
        &PasswordPage {
            chrome: user.chrome("Change password", "password"),
            forced,
            errors: Errors::default(),
            min: Password::MIN_LEN,
        },
    )
}

async fn change_password(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    body: Bytes,
) -> Response {
    let f = FormData::parse(&body);
    let forced = match is_forced(&core, &user).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut errors = Errors::default();
    if !forced {
        let current = f.get("current_password").to_owned();
        let hash = user.user.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || Password::verify(&current, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            errors.add("current_password", "this is not your current password");
        }
    }
    let new = f.get("password");
    let password = match Password::parse(new.to_owned()) {
        Ok(_) if new != f.get("password_confirm") => {
            errors.add("password_confirm", "the two passwords differ");
            None
        }
        Ok(_) if Password::verify(new, &user.user.password_hash) => {
            errors.add(
                "password",
                "choose a password different from the current one",
            );
            None
        }
        Ok(p) => Some(p),
        Err(m) => {
            errors.add("password", m);
            None
        }
    };
    let Some(password) = password.filter(|_| errors.is_empty()) else {
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage {
                chrome: user.chrome("Change password", "password"),
                forced,
                errors,
                min: Password::MIN_LEN,
            },
        );
    };
    let hash = password.hash();
    let audit = audit_user_event(&core, &user, ip, "user.password_changed", &user.user.id);
    if let Err(e) = core
        .store
        .set_password(
            &user.user.shop_id,
            &user.user.id,
            &hash,
            None,
            Some(&user.token_hash),
            &audit,
        )
        .await
    {
        return unavailable(&e);
    }
    see_other("/settings/api-keys?done=password_changed")
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
