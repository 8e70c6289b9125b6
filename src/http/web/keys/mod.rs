//! Settings → API Keys: the list, the create form, the one-time secret page
//! and a key's details with its actions. Every change goes through the key
//! lifecycle in `keys.rs` with the user's [`Principal`], so the web UI obeys
//! exactly the rules the API and the CLI do.
//!
//! The secret of a new key exists only in the answer to the POST that made it
//! (`Cache-Control: no-store`); it is never stored or put in a URL.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::chart;
use super::confirm::{self, Question};
use super::form::{Errors, FormData, capitalise, lines};
use super::session::{Chrome, WebUser, not_found, render, see_other, unavailable, user_message};
use super::view::{self, GRID, Names};
use crate::app::{AppState, Core};
use crate::domain::clock::Timestamp;
use crate::domain::key::{KeyKind, KeyName, KeyRecord, KeyStatus};
use crate::domain::permission::{PermissionSet, TEMPLATES};
use crate::http::error::{FieldError, ServiceError};
use crate::service::keys::{Created, KeyUpdateInput, NewKeyInput};
use crate::store::usage::{KeyUsage, UsageSummary};

use std::collections::HashMap;

mod actions;
mod details;
mod list;
mod new;

use actions::*;
use details::*;
pub use details::{AuditRow, action_label, describe};
use list::*;
use new::*;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/api-keys", get(list).post(create))
        .route("/settings/api-keys/new", get(new_form))
        .route("/settings/api-keys/pause", post(pause_template))
        .route("/settings/api-keys/resume", post(resume_template))
        .route("/settings/api-keys/{id}", get(details).post(edit))
        .route("/settings/api-keys/{id}/revoke", post(revoke))
        .route("/settings/api-keys/{id}/clone", post(clone))
        .route("/settings/api-keys/{id}/roll", post(roll))
        .route("/settings/api-keys/{id}/upgrade", post(upgrade))
        .route("/settings/api-keys/{id}/apply", post(apply_suggestion))
        .route("/settings/api-keys/{id}/delete", post(delete))
}

pub(super) const PER_PAGE: usize = 50;

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/// Every key of the shop this user may see: all of them for owners and
/// admins, their own for staff.
pub(super) async fn visible_keys(core: &Core, user: &WebUser) -> Result<Vec<KeyRecord>, Response> {
    core.keys
        .list_all(&user.principal())
        .await
        .map_err(|e| service_error(user, e))
}

/// One key this user may see, or the page to answer instead.
pub(super) async fn one_key(core: &Core, user: &WebUser, id: &str) -> Result<KeyRecord, Response> {
    match core.keys.get(&user.principal(), id).await {
        Ok(k) => Ok(k),
        Err(ServiceError::NotFound) => Err(not_found(user, "key")),
        Err(e) => Err(service_error(user, e)),
    }
}

/// The page for a refusal of the key lifecycle.
pub(super) fn service_error(user: &WebUser, e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound => not_found(user, "key"),
        ServiceError::Forbidden { detail, .. }
        | ServiceError::Refused(detail)
        | ServiceError::NotInherited { detail, .. } => user_message(
            user,
            StatusCode::FORBIDDEN,
            "Not allowed",
            &detail,
            Some(("/settings/api-keys", "Back to API keys")),
        ),
        ServiceError::Conflict(m) => user_message(
            user,
            StatusCode::CONFLICT,
            "That cannot be done now",
            &m,
            Some(("/settings/api-keys", "Back to API keys")),
        ),
        ServiceError::Validation(errors) => user_message(
            user,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check the form",
            &errors
                .iter()
                .map(|e| capitalise(&e.message))
                .collect::<Vec<_>>()
                .join(" "),
            None,
        ),
        ServiceError::Store(e) => unavailable(&e),
    }
}

pub(super) async fn names(
    core: &Core,
    user: &WebUser,
    keys: &[KeyRecord],
) -> Result<Names, Response> {
    let users = core
        .users
        .list(&user.shop.id)
        .await
        .map_err(|e| service_error(user, e))?;
    let mut names = Names::new(&users);
    for k in keys {
        names.add_key(&k.id, k.name.as_str());
    }
    Ok(names)
}

/// The field of the form that a lifecycle message belongs to, and the message
/// as the form shows it. `ip_lines` maps the n-th allowed IP back to its line.
pub(super) fn form_error(e: FieldError, ip_lines: &[usize]) -> (String, String) {
    let field = e.field.as_str();
    if let Some(index) = field
        .strip_prefix("allowed_ips[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse::<usize>().ok())
    {
        let line = ip_lines.get(index).copied().unwrap_or(index + 1);
        return (
            "allowed_ips".into(),
            format!("Line {line}: {}.", e.message.trim_end_matches('.')),
        );
    }
    let field = match field {
        "expires_at" => "expires_on",
        "rate_limit_per_minute" => "rate_limit",
        other => other,
    };
    (field.to_owned(), capitalise(&e.message))
}

/// `YYYY-MM-DD` from a date picker as the instant the key stops working:
/// 00:00 UTC that day.
pub(super) fn expiry_from_date(raw: &str) -> Result<String, String> {
    let ok_shape = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let rfc = format!("{raw}T00:00:00Z");
    if ok_shape && Timestamp::parse_rfc3339(&rfc).is_ok() {
        Ok(rfc)
    } else {
        Err(format!(
            "`{raw}` is not a date; pick one, or type it as YYYY-MM-DD"
        ))
    }
}

pub(super) fn status_label(s: KeyStatus) -> &'static str {
    s.as_str()
}

// ---------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------
