//! `/settings/users`: the owner adds admins and staff (each with a one-time
//! password shown once), changes roles, issues new one-time passwords and
//! removes users — offering to revoke the keys a removed user created, through
//! the key lifecycle like any revocation.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::form::{Errors, FormData};
use super::login::audit_user_event;
use super::session::{Chrome, WebUser, render, see_other, unavailable, user_message};
use super::view;
use crate::app::{AppState, Core};
use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyRecord, KeyStatus};
use crate::domain::new_id;
use crate::domain::random_base62;
use crate::domain::user::{Email, Password, Role};
use crate::http::auth::ClientIp;
use crate::store::{KeyFilter, PageRequest, StoreError, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/users", get(list).post(add))
        .route("/settings/users/{id}/role", post(change_role))
        .route("/settings/users/{id}/password", post(reset_password))
        .route("/settings/users/{id}/remove", post(remove))
}

/// How long a one-time password works.
const ONE_TIME_SECONDS: i64 = 7 * 24 * 3600;

fn owner_only(user: &WebUser) -> Option<Response> {
    (user.role() != Role::Owner).then(|| {
        user_message(
            user,
            StatusCode::FORBIDDEN,
            "Only the owner manages users",
            "Ask the shop's owner to add, change or remove users.",
            Some(("/settings/api-keys", "Back to API keys")),
        )
    })
}

struct UserRow {
    id: String,
    email: String,
    role: &'static str,
    added: String,
    is_me: bool,
    is_owner: bool,
}

#[derive(Template)]
#[template(path = "users/list.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    email: String,
    role: String,
    errors: Errors,
    notice: String,
}

#[derive(Deserialize, Default)]
struct UsersQuery {
    done: Option<String>,
}

async fn users_page(
    core: &Core,
    user: &WebUser,
    email: String,
    role: String,
    errors: Errors,
    notice: &str,
) -> Response {
    let users = match core.store.list_users(&user.shop.id).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        status,
        &UsersPage {
            chrome: user.chrome("Users", "users"),
            users: users
                .iter()
                .map(|u| UserRow {
                    id: u.id.clone(),
                    email: u.email.as_str().to_owned(),
                    role: u.role.as_str(),
                    added: view::date(u.created_at),
                    is_me: u.id == user.user.id,
                    is_owner: u.role == Role::Owner,
                })
                .collect(),
            email,
            role,
            errors,
            notice: notice.to_owned(),
        },
    )
}

async fn list(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Response {
    if let Some(r) = owner_only(&user) {
        return r;
    }
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("removed") => "The user is removed and logged out everywhere.",
        Some("role") => "Role changed. It applies to the user's next page.",
        _ => "",
    };
    users_page(
        &core,
        &user,
        String::new(),
        "staff".into(),
        Errors::default(),
        notice,
    )
    .await
}

#[derive(Template)]
#[template(path = "users/password.html")]
struct OneTimePage {
    chrome: Chrome,
    email: String,
    password: String,
    until: String,
    is_new: bool,
}

fn one_time_page(
    user: &WebUser,
    email: &str,
    password: &str,
    until: Timestamp,
    is_new: bool,
) -> Response {
    let mut r = render(
        if is_new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &OneTimePage {
            chrome: user.chrome("One-time password", "users"),
            email: email.to_owned(),
            password: password.to_owned(),
            until: view::time(until),
            is_new,
        },
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A password easy to read out and type: four groups of five.
fn one_time_password() -> String {
    let raw = random_base62(20);
    raw.as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

async fn add(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    body: Bytes,
) -> Response {
    if let Some(r) = owner_only(&user) {
        return r;
    }
    let f = FormData::parse(&body);
    let typed_email = f.get("email").trim().to_owned();
    let typed_role = f.get("role").to_owned();
    let mut errors = Errors::default();
    let email = Email::parse(&typed_email)
        .map_err(|m| errors.add("email", m))
        .ok();
    let role = match Role::parse(&typed_role) {
        Some(r @ (Role::Admin | Role::Staff)) => Some(r),
        _ => {
            errors.add("role", "Choose admin or staff.");
            None
        }
    };
    let (Some(email), Some(role)) = (email, role) else {
        return users_page(&core, &user, typed_email, typed_role, errors, "").await;
    };
    let password = one_time_password();
    let now = core.clock.now();
    let new_user = User {
        id: new_id("usr"),
        shop_id: user.shop.id.clone(),
        email,
        role,
        password_hash: Password::parse(password.clone())
            .expect("generated passwords are long enough")
            .hash(),
        created_at: now,
    };
    let until = now.plus_seconds(ONE_TIME_SECONDS);
    let mut audit = audit_user_event(&core, &user, ip, "user.added", &new_user.id);
    audit.details =
        serde_json::json!({"user_id": new_user.id, "email": new_user.email, "role": role.as_str()});
    match core.store.insert_user(&new_user, Some(until), &audit).await {
        Ok(()) => one_time_page(&user, new_user.email.as_str(), &password, until, true),
        Err(StoreError::Conflict(m)) => {
            errors.add("email", m);
            users_page(&core, &user, typed_email, typed_role, errors, "").await
        }
        Err(e) => unavailable(&e),
    }
}

/// A user of this shop other than the owner, for the owner to change.
async fn target(core: &Core, user: &WebUser, id: &str) -> Result<User, Response> {
    if let Some(r) = owner_only(user) {
        return Err(r);
    }
    match core.store.get_shop_user(&user.shop.id, id).await {
        Ok(Some(u)) if u.role != Role::Owner => Ok(u),
        Ok(Some(_)) => Err(user_message(
            user,
            StatusCode::FORBIDDEN,
            "The owner cannot be changed here",
            "The owner's role stays, and the owner cannot be removed.",
            Some(("/settings/users", "Back to users")),
        )),
        Ok(None) => Err(user_message(
            user,
            StatusCode::NOT_FOUND,
            "No such user",
            "There is no such user in this shop. They may have been removed already.",
            Some(("/settings/users", "Back to users")),
        )),
        Err(e) => Err(unavailable(&e)),
    }
}

async fn change_role(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let who = match target(&core, &user, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let role = match Role::parse(FormData::parse(&body).get("role")) {
        Some(r @ (Role::Admin | Role::Staff)) => r,
        _ => {
            return user_message(
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose admin or staff",
                "A user's role is admin or staff; a shop has one owner.",
                Some(("/settings/users", "Back to users")),
            );
        }
    };
    if role == who.role {
        return see_other("/settings/users");
    }
    let mut audit = audit_user_event(&core, &user, ip, "user.role_changed", &who.id);
    audit.details = serde_json::json!({"user_id": who.id, "email": who.email, "role": {"from": who.role.as_str(), "to": role.as_str()}});
    match core
        .store
        .set_user_role(&user.shop.id, &who.id, role, core.clock.now(), &audit)
        .await
    {
        Ok(_) => see_other("/settings/users?done=role"),
        Err(e) => unavailable(&e),
    }
}

async fn reset_password(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    Path(id): Path<String>,
) -> Response {
    let who = match target(&core, &user, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let password = one_time_password();
    let hash = Password::parse(password.clone())
        .expect("generated passwords are long enough")
        .hash();
    let until = core.clock.now().plus_seconds(ONE_TIME_SECONDS);
    let mut audit = audit_user_event(&core, &user, ip, "user.password_reset", &who.id);
    audit.details = serde_json::json!({"user_id": who.id, "email": who.email});
    match core
        .store
        .set_password(&user.shop.id, &who.id, &hash, Some(until), None, &audit)
        .await
    {
        Ok(()) => one_time_page(&user, who.email.as_str(), &password, until, false),
        Err(e) => unavailable(&e),
    }
}

#[derive(Template)]
#[template(path = "users/remove.html")]
struct RemovePage {
    chrome: Chrome,
    id: String,
    email: String,
    active_keys: Vec<(String, String)>,
}

/// The keys `who` created that still work.
async fn active_keys_of(
    core: &Core,
    shop_id: &str,
    who: &User,
) -> Result<Vec<KeyRecord>, Response> {
    let filter = KeyFilter {
        environment: None,
        status: Some(KeyStatus::Active),
        now: core.clock.now(),
        legacy_sunset: core.policy.legacy_sunset,
    };
    let page = PageRequest {
        page: 1,
        per_page: core.policy.max_keys_per_shop.max(1),
    };
    let author = Actor::User(who.id.clone());
    core.store
        .list_keys(shop_id, &filter, page)
        .await
        .map(|p| {
            p.items
                .into_iter()
                .filter(|k| k.created_by == author)
                .collect()
        })
        .map_err(|e| unavailable(&e))
}

async fn remove(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let who = match target(&core, &user, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let keys = match active_keys_of(&core, &user.shop.id, &who).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let f = FormData::parse(&body);
    if !f.checked("confirm") {
        return render(
            StatusCode::OK,
            &RemovePage {
                chrome: user.chrome("Remove user", "users"),
                id: who.id.clone(),
                email: who.email.as_str().to_owned(),
                active_keys: keys
                    .iter()
                    .map(|k| (k.id.clone(), k.name.as_str().to_owned()))
                    .collect(),
            },
        );
    }
    if f.checked("revoke_keys") {
        let principal = user.principal();
        for k in &keys {
            if let Err(e) = core.keys.revoke_key(&principal, &k.id, false).await {
                tracing::error!(key_id = %k.id, error = %e, "web: could not revoke a removed user's key");
                return user_message(
                    &user,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not all keys could be revoked",
                    "The user was not removed. Try again in a moment.",
                    Some(("/settings/users", "Back to users")),
                );
            }
        }
    }
    let mut audit = audit_user_event(&core, &user, ip, "user.removed", &who.id);
    audit.details = serde_json::json!({
        "user_id": who.id,
        "email": who.email,
        "keys_revoked": if f.checked("revoke_keys") { keys.len() } else { 0 },
    });
    match core.store.delete_user(&user.shop.id, &who.id, &audit).await {
        Ok(()) | Err(StoreError::NotFound) => see_other("/settings/users?done=removed"),
        Err(e) => unavailable(&e),
    }
}
