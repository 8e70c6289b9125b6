//! `/settings/audit-log`: who did what to which key, newest first. Owners and
//! admins only (it is what `keys:read` opens in the API).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::keys::{AuditRow, action_label, describe};
use super::session::{Chrome, WebUser, render, unavailable, user_message};
use super::view::{self, Names};
use crate::app::AppState;
use crate::http::error::ServiceError;
use crate::service::audit::AuditService;
use crate::service::users::UserService;
use crate::store::{AuditFilter, PageRequest};

pub fn router() -> Router<AppState> {
    Router::new().route("/settings/audit-log", get(log))
}

const PER_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditRow>,
    page: u32,
    pages: u32,
    prev_href: String,
    next_href: String,
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    page: Option<String>,
}

fn refused(user: &WebUser) -> Response {
    user_message(
        user,
        StatusCode::FORBIDDEN,
        "The audit log is for owners and admins",
        "Your role manages the keys you create; each of your keys shows its own history on its page.",
        Some(("/settings/api-keys", "Back to API keys")),
    )
}

async fn log(
    State(audit): State<Arc<AuditService>>,
    State(users): State<Arc<UserService>>,
    user: WebUser,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let page = query
        .ok()
        .and_then(|Query(q)| q.page)
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let events = match audit
        .list(
            &user.principal(),
            AuditFilter::default(),
            PageRequest {
                page,
                per_page: PER_PAGE,
            },
        )
        .await
    {
        Ok(p) => p,
        Err(ServiceError::Forbidden { .. }) => return refused(&user),
        Err(e) => return unavailable(&e),
    };
    let users = match users.list(&user.shop.id).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let key_names = match audit.key_names(&user.shop.id, &events.items).await {
        Ok(k) => k,
        Err(e) => return unavailable(&e),
    };
    let mut names = Names::new(&users);
    for (id, name) in &key_names {
        if let Some(n) = name {
            names.add_key(id, n);
        }
    }
    let rows = events
        .items
        .iter()
        .map(|e| AuditRow {
            at: view::time(e.at),
            actor: names.actor(&e.actor),
            action: action_label(&e.action),
            detail: describe(&e.details),
            ip: e.ip.clone().unwrap_or_default(),
            key: e
                .key_id
                .as_ref()
                .map(|id| match key_names.get(id).cloned().flatten() {
                    Some(name) => (format!("/settings/api-keys/{id}"), name),
                    None => (String::new(), format!("{id} (deleted)")),
                }),
        })
        .collect();
    let pages = u32::try_from(events.total.div_ceil(u64::from(PER_PAGE)))
        .unwrap_or(u32::MAX)
        .max(1);
    render(
        StatusCode::OK,
        &AuditPage {
            chrome: user.chrome("Audit log", "audit"),
            rows,
            prev_href: if page > 1 {
                format!("/settings/audit-log?page={}", page - 1)
            } else {
                String::new()
            },
            next_href: if page < pages {
                format!("/settings/audit-log?page={}", page + 1)
            } else {
                String::new()
            },
            page,
            pages,
        },
    )
}
