//! `/settings/users`: the owner adds admins and staff (each with a one-time
//! password shown once), changes roles, issues new one-time passwords and
//! removes users — offering to revoke the keys a removed user created, through
//! the key lifecycle like any revocation.

use std::sync::Arc;

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
use super::session::{Chrome, WebUser, render, see_other, unavailable, user_message};
use super::view;
use crate::app::AppState;
use crate::domain::user::Role;
use crate::http::auth::ClientIp;
use crate::http::error::ServiceError;
use crate::service::users::{Acting, OneTimePassword, UserService};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/users", get(list).post(add))
        .route("/settings/users/{id}/role", post(change_role))
        .route("/settings/users/{id}/password", post(reset_password))
        .route("/settings/users/{id}/remove", post(remove))
}

fn owner_only(user: &WebUser) -> Option<Response> {
    (!UserService::may_manage(&user.user)).then(|| {
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
    users: &UserService,
    user: &WebUser,
    email: String,
    role: String,
    errors: Errors,
    notice: &str,
) -> Response {
    let users = match users.list_for_manager(&user.user).await {
        Ok(u) => u,
        Err(e) => return refused(user, e),
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
    State(users): State<Arc<UserService>>,
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
        &users,
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

fn one_time_page(user: &WebUser, issued: &OneTimePassword, is_new: bool) -> Response {
    let OneTimePassword {
        user: who,
        password,
        until,
    } = issued;
    let mut r = render(
        if is_new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &OneTimePage {
            chrome: user.chrome("One-time password", "users"),
            email: who.email.as_str().to_owned(),
            password: password.clone(),
            until: view::time(*until),
            is_new,
        },
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn add(
    State(users): State<Arc<UserService>>,
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
    let by = Acting {
        user: &user.user,
        ip,
    };
    match users.add(by, &typed_email, &typed_role).await {
        Ok(issued) => one_time_page(&user, &issued, true),
        Err(ServiceError::Validation(errors)) => {
            users_page(&users, &user, typed_email, typed_role, Errors(errors), "").await
        }
        Err(e) => refused(&user, e),
    }
}

/// The page for a refusal of the users service. The owner check runs before
/// (see [`owner_only`]), so `Forbidden` here is about the user acted on.
fn refused(user: &WebUser, e: ServiceError) -> Response {
    match e {
        ServiceError::Forbidden { .. }
        | ServiceError::Refused(_)
        | ServiceError::NotInherited { .. } => user_message(
            user,
            StatusCode::FORBIDDEN,
            "The owner cannot be changed here",
            "The owner's role stays, and the owner cannot be removed.",
            Some(("/settings/users", "Back to users")),
        ),
        ServiceError::NotFound => user_message(
            user,
            StatusCode::NOT_FOUND,
            "No such user",
            "There is no such user in this shop. They may have been removed already.",
            Some(("/settings/users", "Back to users")),
        ),
        ServiceError::Validation(_) => user_message(
            user,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose admin or staff",
            "A user's role is admin or staff; a shop has one owner.",
            Some(("/settings/users", "Back to users")),
        ),
        ServiceError::Conflict(m) => unavailable(&m),
        ServiceError::Store(e) => unavailable(&e),
    }
}

async fn change_role(
    State(users): State<Arc<UserService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = owner_only(&user) {
        return r;
    }
    let by = Acting {
        user: &user.user,
        ip,
    };
    let role = FormData::parse(&body).get("role").to_owned();
    match users.change_role(by, &id, &role).await {
        Ok(true) => see_other("/settings/users?done=role"),
        Ok(false) => see_other("/settings/users"),
        Err(e) => refused(&user, e),
    }
}

async fn reset_password(
    State(users): State<Arc<UserService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = owner_only(&user) {
        return r;
    }
    let by = Acting {
        user: &user.user,
        ip,
    };
    match users.reset_password(by, &id).await {
        Ok(issued) => one_time_page(&user, &issued, false),
        Err(e) => refused(&user, e),
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

async fn remove(
    State(users): State<Arc<UserService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = owner_only(&user) {
        return r;
    }
    let by = Acting {
        user: &user.user,
        ip,
    };
    let f = FormData::parse(&body);
    if !f.checked("confirm") {
        let (who, keys) = match users.removal(by, &id).await {
            Ok(found) => found,
            Err(e) => return refused(&user, e),
        };
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
    let revoke_keys = f.checked("revoke_keys");
    match users.remove(by, &id, revoke_keys).await {
        Ok(_) => see_other("/settings/users?done=removed"),
        Err(ServiceError::Store(_)) if revoke_keys => user_message(
            &user,
            StatusCode::SERVICE_UNAVAILABLE,
            "Not all keys could be revoked",
            "The user was not removed. Try again in a moment.",
            Some(("/settings/users", "Back to users")),
        ),
        Err(e) => refused(&user, e),
    }
}
