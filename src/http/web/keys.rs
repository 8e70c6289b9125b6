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
use super::form::{Errors, FormData, capitalise, lines};
use super::session::{Chrome, WebUser, not_found, render, see_other, unavailable, user_message};
use super::view::{self, GRID, Names};
use crate::app::{AppState, Core};
use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyKind, KeyName, KeyRecord, KeyStatus};
use crate::domain::permission::{PermissionSet, TEMPLATES};
use crate::error::{FieldError, ServiceError};
use crate::http::api::keys::KeyView;
use crate::keys::{Created, KeyUpdateInput, NewKeyInput};
use crate::store::usage::{KeyUsage, UsageSummary};
use crate::store::{AuditFilter, KeyFilter, PageRequest};
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/api-keys", get(list).post(create))
        .route("/settings/api-keys/new", get(new_form))
        .route("/settings/api-keys/{id}", get(details).post(edit))
        .route("/settings/api-keys/{id}/revoke", post(revoke))
        .route("/settings/api-keys/{id}/clone", post(clone))
        .route("/settings/api-keys/{id}/roll", post(roll))
        .route("/settings/api-keys/{id}/upgrade", post(upgrade))
        .route("/settings/api-keys/{id}/delete", post(delete))
}

const PER_PAGE: usize = 50;

// ---------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------

/// Every key of the shop this user may see: all of them for owners and
/// admins, their own for staff.
async fn visible_keys(core: &Core, user: &WebUser) -> Result<Vec<KeyRecord>, Response> {
    let filter = KeyFilter {
        environment: None,
        status: None,
        now: core.clock.now(),
        legacy_sunset: core.policy.legacy_sunset,
    };
    let page = PageRequest {
        page: 1,
        per_page: core.policy.max_keys_per_shop.max(1),
    };
    let keys = core
        .store
        .list_keys(&user.shop.id, &filter, page)
        .await
        .map_err(|e| unavailable(&e))?
        .items;
    let me = Actor::User(user.user.id.clone());
    Ok(keys
        .into_iter()
        .filter(|k| user.reads_all_keys() || k.created_by == me)
        .collect())
}

/// One key this user may see, or the page to answer instead.
async fn one_key(core: &Core, user: &WebUser, id: &str) -> Result<KeyRecord, Response> {
    match core.visible_key(&user.principal(), id).await {
        Ok(k) if user.reads_all_keys() || k.created_by == Actor::User(user.user.id.clone()) => {
            Ok(k)
        }
        Ok(_) | Err(ServiceError::NotFound) => Err(not_found(user, "key")),
        Err(e) => Err(service_error(user, e)),
    }
}

/// The page for a refusal of the key lifecycle.
fn service_error(user: &WebUser, e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound => not_found(user, "key"),
        ServiceError::Forbidden { detail, .. } | ServiceError::Refused(detail) => user_message(
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

async fn names(core: &Core, user: &WebUser, keys: &[KeyRecord]) -> Result<Names, Response> {
    let users = core
        .store
        .list_users(&user.shop.id)
        .await
        .map_err(|e| unavailable(&e))?;
    let mut names = Names::new(&users);
    for k in keys {
        names.add_key(&k.id, k.name.as_str());
    }
    Ok(names)
}

/// The field of the form that a lifecycle message belongs to, and the message
/// as the form shows it. `ip_lines` maps the n-th allowed IP back to its line.
fn form_error(e: FieldError, ip_lines: &[usize]) -> (String, String) {
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
fn expiry_from_date(raw: &str) -> Result<String, String> {
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

fn status_label(s: KeyStatus) -> &'static str {
    s.as_str()
}

// ---------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------

struct KeyRow {
    id: String,
    name: String,
    environment: &'static str,
    display: String,
    legacy: bool,
    permissions: String,
    status: &'static str,
    created_by: String,
    created: String,
    last_used: String,
    requests_24h: u64,
    expires: String,
    warning: bool,
}

struct Banner {
    level: &'static str,
    text: String,
    link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "keys/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<KeyRow>,
    banners: Vec<Banner>,
    notice: String,
    status: String,
    environment: String,
    /// Keys before filtering: tells "no keys yet" from "none match".
    total_keys: usize,
    matching: usize,
    page: usize,
    pages: usize,
    prev_href: String,
    next_href: String,
    staff: bool,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    environment: Option<String>,
    page: Option<String>,
    done: Option<String>,
}

fn banners(core: &Core, keys: &[KeyRecord], usage: &HashMap<String, UsageSummary>) -> Vec<Banner> {
    let now = core.clock.now();
    let sunset = core.policy.legacy_sunset;
    let mut out = Vec::new();
    let link = |k: &KeyRecord| {
        Some((
            format!("/settings/api-keys/{}", k.id),
            "Open key".to_owned(),
        ))
    };
    for k in keys {
        let v = KeyView::new(core, k, None).with_usage(usage.get(&k.id));
        let stopped_at = k.revoked_at.or(k.retired_at);
        if matches!(v.key.status, KeyStatus::Revoked | KeyStatus::Retired)
            && v.last_used_at
                .zip(stopped_at)
                .is_some_and(|(used, stopped)| used > stopped)
        {
            out.push(Banner {
                level: "bad",
                text: format!(
                    "“{}” is {} but something is still trying to use it (last try {}). Find the integration and give it a new key.",
                    k.name.as_str(),
                    v.key.status.as_str(),
                    v.last_used_at.map(|t| view::relative(t, now)).unwrap_or_default()
                ),
                link: link(k),
            });
        }
        for w in &v.key.warnings {
            match w.code {
                "expiring_soon" => out.push(Banner {
                    level: "warn",
                    text: format!(
                        "“{}” expires {} ({}). Create its replacement before then.",
                        k.name.as_str(),
                        k.expires_at.map(|t| view::relative(t, now)).unwrap_or_default(),
                        k.expires_at.map(view::time).unwrap_or_default()
                    ),
                    link: link(k),
                }),
                "sent_in_url" => out.push(Banner {
                    level: "bad",
                    text: format!(
                        "“{}” was sent in a URL, where it may have been logged. Replace it and send keys in the Authorization header.",
                        k.name.as_str()
                    ),
                    link: link(k),
                }),
                _ => {}
            }
        }
    }
    let legacy: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| k.kind == KeyKind::Legacy && k.status(now, sunset) == KeyStatus::Active)
        .collect();
    if !legacy.is_empty() {
        out.push(Banner {
            level: "warn",
            text: format!(
                "{} legacy key{} stop{} working on {} ({}). Replace {} with new keys before then.",
                legacy.len(),
                if legacy.len() == 1 { "" } else { "s" },
                if legacy.len() == 1 { "s" } else { "" },
                view::date(sunset),
                view::relative(sunset, now),
                if legacy.len() == 1 { "it" } else { "them" },
            ),
            link: Some((
                "/settings/api-keys/docs#legacy-keys".into(),
                "How to upgrade".into(),
            )),
        });
    }
    let vague: Vec<&str> = keys
        .iter()
        .filter(|k| k.status(now, sunset) == KeyStatus::Active && k.name.is_vague())
        .map(|k| k.name.as_str())
        .collect();
    if !vague.is_empty() {
        out.push(Banner {
            level: "info",
            text: format!(
                "Rename {}: a name like “{}” does not say where the key is used, which makes the right key hard to find in a hurry.",
                if vague.len() == 1 { "1 key".to_owned() } else { format!("{} keys", vague.len()) },
                vague[0]
            ),
            link: None,
        });
    }
    out
}

async fn list(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = query.ok().map(|Query(q)| q).unwrap_or_default();
    let keys = match visible_keys(&core, &user).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let names = match names(&core, &user, &keys).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = core.clock.now();
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    let usage = match core.store.usage_summaries(&ids, now).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let status = q.status.unwrap_or_default();
    let environment = q.environment.unwrap_or_default();
    let wanted_status: Option<KeyStatus> = status.parse().ok();
    let matching: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| wanted_status.is_none_or(|s| core.status_of(k) == s))
        .filter(|k| environment.is_empty() || k.environment.as_str() == environment)
        .collect();
    let pages = matching.len().div_ceil(PER_PAGE).max(1);
    let page = q
        .page
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let rows = matching
        .iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|k| {
            let v = KeyView::new(&core, k, None).with_usage(usage.get(&k.id));
            KeyRow {
                id: k.id.clone(),
                name: k.name.as_str().to_owned(),
                environment: k.environment.as_str(),
                display: k.display.clone(),
                legacy: k.kind == KeyKind::Legacy,
                permissions: view::permissions_summary(k.permissions),
                status: status_label(v.key.status),
                created_by: names.actor(&k.created_by),
                created: view::date(k.created_at),
                last_used: v
                    .last_used_at
                    .map_or_else(|| "Never".to_owned(), |t| view::relative(t, now)),
                requests_24h: v.requests_24h,
                expires: k
                    .expires_at
                    .filter(|_| v.key.status == KeyStatus::Active)
                    .map(|t| view::relative(t, now))
                    .unwrap_or_default(),
                warning: !v.key.warnings.is_empty(),
            }
        })
        .collect();
    let href = |p: usize| {
        format!(
            "/settings/api-keys?status={}&environment={}&page={p}",
            super::session::urlencode(&status),
            super::session::urlencode(&environment)
        )
    };
    let notice = match q.done.as_deref() {
        Some("deleted") => "The key is deleted. Anything still using it now gets 401 invalid_key.",
        Some("password_changed") => "Your password is changed.",
        _ => "",
    };
    render(
        StatusCode::OK,
        &ListPage {
            chrome: user.chrome("API keys", "keys"),
            banners: banners(&core, &keys, &usage),
            rows,
            notice: notice.into(),
            total_keys: keys.len(),
            matching: matching.len(),
            prev_href: if page > 1 {
                href(page - 1)
            } else {
                String::new()
            },
            next_href: if page < pages {
                href(page + 1)
            } else {
                String::new()
            },
            page,
            pages,
            status,
            environment,
            staff: !user.reads_all_keys(),
        },
    )
}

// ---------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------

/// The create form's values as typed, kept when the form comes back with errors.
#[derive(Default)]
struct KeyForm {
    name: String,
    template: String,
    /// The template the permission grid was last filled from; when the picked
    /// template differs (no script ran to refill the grid), the template wins.
    grid_for: String,
    permissions: PermissionSet,
    environment: String,
    expires_on: String,
    allowed_ips: String,
    rate_limit: String,
    accept_vague: bool,
    /// One id per form shown: a second POST of it shows the key the first made.
    form_id: String,
}

struct TemplateOption {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    permissions: String,
    summary: String,
    checked: bool,
}

struct GridCell {
    value: String,
    id: String,
    verb: &'static str,
    checked: bool,
    disabled: bool,
}

struct GridRow {
    label: &'static str,
    cells: Vec<Option<GridCell>>,
}

#[derive(Template)]
#[template(path = "keys/new.html")]
struct NewKeyPage {
    chrome: Chrome,
    f: KeyForm,
    errors: Errors,
    templates: Vec<TemplateOption>,
    grid: Vec<GridRow>,
    default_rate_limit: u32,
    min_date: String,
    vague: bool,
    staff: bool,
}

fn grid(set: PermissionSet, grantable: PermissionSet) -> Vec<GridRow> {
    GRID.iter()
        .map(|(slug, label, perms)| GridRow {
            label,
            cells: perms
                .iter()
                .zip(["read", "write", "delete"])
                .map(|(p, verb)| {
                    p.map(|p| GridCell {
                        value: p.as_str().to_owned(),
                        id: format!("perm-{slug}-{verb}"),
                        verb,
                        checked: set.contains(p),
                        disabled: !grantable.contains(p),
                    })
                })
                .collect(),
        })
        .collect()
}

fn new_page(core: &Core, user: &WebUser, f: KeyForm, errors: Errors, vague: bool) -> NewKeyPage {
    let grantable = user.user.role.permissions();
    NewKeyPage {
        chrome: user.chrome("New API key", "keys"),
        templates: TEMPLATES
            .iter()
            .map(|t| TemplateOption {
                id: t.id,
                name: t.name,
                description: t.description,
                permissions: t.permissions.to_names().join(" "),
                summary: view::permissions_summary(t.permissions),
                checked: f.template == t.id,
            })
            .collect(),
        grid: grid(f.permissions, grantable),
        default_rate_limit: core.policy.default_rate_limit,
        min_date: view::date(core.clock.now().plus_seconds(86_400)),
        staff: !user.reads_all_keys(),
        f,
        errors,
        vague,
    }
}

#[derive(Deserialize, Default)]
struct NewQuery {
    template: Option<String>,
    environment: Option<String>,
}

async fn new_form(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    query: Result<Query<NewQuery>, QueryRejection>,
) -> Response {
    let q = query.ok().map(|Query(q)| q).unwrap_or_default();
    let template = q
        .template
        .as_deref()
        .and_then(crate::domain::permission::template);
    let f = KeyForm {
        name: template.map(|t| t.name.to_owned()).unwrap_or_default(),
        template: template.map_or("custom", |t| t.id).to_owned(),
        grid_for: template.map_or("custom", |t| t.id).to_owned(),
        permissions: template.map(|t| t.permissions).unwrap_or_default(),
        environment: match q.environment.as_deref() {
            Some("test") => "test".into(),
            _ => "live".into(),
        },
        rate_limit: core.policy.default_rate_limit.to_string(),
        form_id: crate::domain::unique_base62(24),
        ..Default::default()
    };
    render(
        StatusCode::OK,
        &new_page(&core, &user, f, Errors::default(), false),
    )
}

fn read_key_form(f: &FormData) -> KeyForm {
    KeyForm {
        name: f.get("name").to_owned(),
        template: match f.get("template") {
            "" => "custom".into(),
            t => t.to_owned(),
        },
        grid_for: f.get("grid_for").to_owned(),
        permissions: f
            .all("permissions")
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect(),
        environment: f.get("environment").to_owned(),
        expires_on: f.get("expires_on").trim().to_owned(),
        allowed_ips: f.get("allowed_ips").to_owned(),
        rate_limit: f.get("rate_limit").trim().to_owned(),
        accept_vague: f.checked("accept_vague"),
        form_id: f.get("form_id").to_owned(),
    }
}

async fn create(State(core): State<crate::app::CoreRef>, user: WebUser, body: Bytes) -> Response {
    let data = FormData::parse(&body);
    let mut form = read_key_form(&data);
    let mut errors = Errors::default();
    let template = (form.template != "custom").then(|| form.template.clone());
    // Without the script, picking another template does not refill the grid:
    // then the picked template is what the user meant.
    let grid_is_stale = template.is_some() && form.grid_for != form.template;
    if grid_is_stale && let Some(t) = crate::domain::permission::template(&form.template) {
        form.permissions = t.permissions;
        if form.name.trim().is_empty() {
            form.name = t.name.to_owned();
        }
    }
    let ip_lines = lines(&form.allowed_ips);
    let expires_at = if form.expires_on.is_empty() {
        None
    } else {
        match expiry_from_date(&form.expires_on) {
            Ok(t) => Some(t),
            Err(m) => {
                errors.add("expires_on", m);
                None
            }
        }
    };
    let rate_limit = if form.rate_limit.is_empty() {
        None
    } else {
        match form.rate_limit.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(
                    "rate_limit",
                    "Enter a whole number of requests per minute, 1–10000.",
                );
                None
            }
        }
    };
    let raw_permissions: Vec<String> = if grid_is_stale {
        form.permissions
            .to_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        data.all("permissions")
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let input = NewKeyInput {
        name: Some(form.name.clone()).filter(|n| !n.trim().is_empty()),
        template: template.clone(),
        // The grid is what the user saw and chose, template or not.
        permissions: Some(raw_permissions),
        environment: Some(form.environment.clone()).filter(|e| !e.is_empty()),
        allowed_ips: Some(ip_lines.iter().map(|(_, l)| l.clone()).collect()),
        expires_at,
        rate_limit_per_minute: rate_limit,
    };
    let line_numbers: Vec<usize> = ip_lines.iter().map(|(n, _)| *n).collect();
    let validated = input.validate(
        core.clock.now(),
        crate::domain::token::Environment::Live,
        core.policy.default_rate_limit,
    );
    let new = match validated {
        Ok(new) if errors.is_empty() => Some(new),
        Ok(_) => None,
        Err(list) => {
            for e in list {
                let (field, message) = form_error(e, &line_numbers);
                errors.add(&field, message);
            }
            None
        }
    };
    let vague = new.as_ref().is_some_and(|n| n.name.is_vague())
        || KeyName::parse(&form.name).is_ok_and(|n| n.is_vague());
    if vague && !form.accept_vague && !errors.has("name") {
        errors.add(
            "name",
            "This name does not say where the key is used. Name it after the integration, e.g. “Zapier – new orders”, so the right key can be found and revoked quickly — or tick the box to keep it.",
        );
    }
    let Some(new) = new.filter(|_| errors.is_empty()) else {
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &new_page(&core, &user, form, errors, vague),
        );
    };
    let made = once_per_form(
        &core,
        &user,
        &form.form_id,
        core.create_key(&user.principal(), new),
    )
    .await;
    match made {
        Err(Repeated(response)) => response,
        Ok(Ok(created)) => secret_page(&core, &user, &created, None),
        Ok(Err(ServiceError::Forbidden { detail, .. })) => {
            errors.add("permissions", detail);
            render(
                StatusCode::FORBIDDEN,
                &new_page(&core, &user, form, errors, vague),
            )
        }
        Ok(Err(ServiceError::Validation(list))) => {
            for e in list {
                let (field, message) = form_error(e, &line_numbers);
                errors.add(&field, message);
            }
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &new_page(&core, &user, form, errors, vague),
            )
        }
        Ok(Err(e)) => service_error(&user, e),
    }
}

/// A key-making form sent a second time: the answer leads to the key the
/// first POST made, whose secret was shown then and cannot be shown again.
struct Repeated(Response);

/// Runs `make` (a create or clone) at most once per form: with the form's
/// one-time id held (see `WebState::submission`), a repeat of a form that
/// already made a key gets [`Repeated`] and `make` never runs; a success is
/// recorded. Forms without a usable id just run.
async fn once_per_form(
    core: &Core,
    user: &WebUser,
    form_id: &str,
    make: impl Future<Output = Result<Created, ServiceError>>,
) -> Result<Result<Created, ServiceError>, Repeated> {
    let Some(submission) = core.web.submission(&user.user.id, form_id) else {
        return Ok(make.await);
    };
    let mut made = submission.lock().await;
    if let Some(key_id) = made.as_deref() {
        return Err(Repeated(see_other(&format!(
            "/settings/api-keys/{key_id}?done=already_created"
        ))));
    }
    let result = make.await;
    if let Ok(created) = &result {
        *made = Some(created.key.id.clone());
    }
    Ok(result)
}

// ---------------------------------------------------------------------------
// The one-time secret
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "keys/secret.html")]
struct SecretPage {
    chrome: Chrome,
    id: String,
    name: String,
    environment: &'static str,
    display: String,
    secret: String,
    permissions: String,
    cloned_from: Option<(String, String)>,
    base_url: String,
}

fn secret_page(
    core: &Core,
    user: &WebUser,
    created: &Created,
    cloned_from: Option<&KeyRecord>,
) -> Response {
    let key = &created.key;
    let mut r = render(
        StatusCode::CREATED,
        &SecretPage {
            chrome: user.chrome("Copy your new key", "keys"),
            id: key.id.clone(),
            name: key.name.as_str().to_owned(),
            environment: key.environment.as_str(),
            display: key.display.clone(),
            secret: created.secret.expose().to_owned(),
            permissions: view::permissions_summary(key.permissions),
            cloned_from: cloned_from.map(|k| (k.id.clone(), k.name.as_str().to_owned())),
            base_url: core.policy.public_url.clone(),
        },
    );
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

// ---------------------------------------------------------------------------
// Details, edit and actions
// ---------------------------------------------------------------------------

struct KeyDetail {
    id: String,
    name: String,
    environment: &'static str,
    legacy: bool,
    display: String,
    status: &'static str,
    active: bool,
    permissions: Vec<&'static str>,
    allowed_ips: Vec<String>,
    rate_limit: u32,
    expires: String,
    template: String,
    created: String,
    created_by: String,
    last_used: String,
    last_used_ip: String,
    requests_24h: u64,
    revoked: String,
}

struct EditValues {
    name: String,
    allowed_ips: String,
    expires_on: String,
    no_expiry: bool,
    rate_limit: String,
}

pub(super) struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub ip: String,
    pub key: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "keys/details.html")]
struct DetailsPage {
    chrome: Chrome,
    k: KeyDetail,
    usage: UsageView,
    edit: EditValues,
    errors: Errors,
    warnings: Vec<String>,
    trail: Vec<AuditRow>,
    notice: String,
    can_manage: bool,
    min_date: String,
    clone_name: String,
    /// The clone form's one-time id (see `WebState::submission`).
    clone_form_id: String,
}

/// The usage section of the details page.
struct UsageView {
    total: u64,
    last_7d: u64,
    error_rate: String,
    errors_4xx: u64,
    errors_5xx: u64,
    /// Server-drawn SVG (numbers and escaped text only).
    hour_chart: String,
    week_chart: String,
    endpoints: Vec<EndpointRow>,
    rejected: Vec<(&'static str, u64)>,
    clients: Vec<ClientRow>,
}

struct EndpointRow {
    method: String,
    route: String,
    requests: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    last_used: String,
}

struct ClientRow {
    ip: String,
    user_agent: String,
    requests: u64,
    last_used: String,
}

fn usage_view(u: &KeyUsage, now: crate::domain::clock::Timestamp) -> UsageView {
    let label = |p: Option<&crate::store::usage::SeriesPoint>| {
        p.map(|p| view::time(p.at)).unwrap_or_default()
    };
    UsageView {
        total: u.requests.total,
        last_7d: u.requests.last_7d,
        error_rate: format!("{:.1} %", u.error_rate * 100.0),
        errors_4xx: u.errors.e4xx,
        errors_5xx: u.errors.e5xx,
        hour_chart: chart::requests_chart(
            &u.per_minute,
            "Requests per minute, last hour",
            &label(u.per_minute.first()),
            "now",
        ),
        week_chart: chart::requests_chart(
            &u.per_hour,
            "Requests per hour, last 7 days",
            &label(u.per_hour.first()),
            "now",
        ),
        endpoints: u
            .endpoints
            .iter()
            .map(|e| EndpointRow {
                method: e.method.clone(),
                route: e.route.clone(),
                requests: e.requests,
                errors_4xx: e.errors_4xx,
                errors_5xx: e.errors_5xx,
                last_used: view::relative(e.last_used_at, now),
            })
            .collect(),
        rejected: [
            ("Revoked", u.rejected.revoked),
            ("Expired", u.rejected.expired),
            ("Retired (legacy)", u.rejected.retired),
            ("IP not allowed", u.rejected.ip_denied),
            ("Rate limited", u.rejected.rate_limited),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect(),
        clients: u
            .clients
            .iter()
            .map(|c| ClientRow {
                ip: c.ip.clone(),
                user_agent: if c.user_agent.is_empty() {
                    "(none sent)".into()
                } else {
                    c.user_agent.clone()
                },
                requests: c.requests,
                last_used: view::relative(c.last_used_at, now),
            })
            .collect(),
    }
}

/// A person's words for an audit action.
pub(super) fn action_label(action: &str) -> String {
    match action {
        "key.created" => "Created".into(),
        "key.updated" => "Changed".into(),
        "key.revoked" => "Revoked".into(),
        "key.revoked_itself" => "Revoked itself".into(),
        "key.deleted" => "Deleted".into(),
        "key.cloned" => "Created as a copy".into(),
        "key.sent_in_url" => "Sent in a URL (refused)".into(),
        "key.rolled" => "Rolled".into(),
        "key.upgraded" => "Upgraded".into(),
        "key.imported" => "Imported".into(),
        "shop.created" => "Shop created".into(),
        "user.logged_in" => "Logged in".into(),
        "user.added" => "User added".into(),
        "user.removed" => "User removed".into(),
        "user.role_changed" => "Role changed".into(),
        "user.password_changed" => "Password changed".into(),
        "user.password_reset" => "One-time password issued".into(),
        "test_data.reset" => "Test data reset".into(),
        other => other.to_owned(),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "none".into(),
        serde_json::Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A one-line summary of an event's details.
pub(super) fn describe(details: &serde_json::Value) -> String {
    let Some(map) = details.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "user_id" | "owner_id"))
        .map(|(k, v)| {
            let label = k.replace('_', " ");
            match (v.get("from"), v.get("to")) {
                (Some(from), Some(to)) => format!("{label}: {} → {}", scalar(from), scalar(to)),
                _ => format!("{label}: {}", scalar(v)),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn may_manage(user: &WebUser, key: &KeyRecord) -> bool {
    key.permissions.is_subset_of(user.user.role.permissions())
        && (user.reads_all_keys() || key.created_by == Actor::User(user.user.id.clone()))
}

fn edit_values(key: &KeyRecord) -> EditValues {
    EditValues {
        name: key.name.as_str().to_owned(),
        allowed_ips: key.allowed_ips.to_strings().join("\n"),
        expires_on: key.expires_at.map(view::date).unwrap_or_default(),
        no_expiry: key.expires_at.is_none(),
        rate_limit: key.rate_limit_per_minute.to_string(),
    }
}

async fn details_page(
    core: &Core,
    user: &WebUser,
    key: &KeyRecord,
    edit: EditValues,
    errors: Errors,
    notice: &str,
) -> Response {
    let now = core.clock.now();
    let usage = match core.store.key_usage(&key.id, now).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let summary = UsageSummary {
        last_used_at: usage.last_used_at,
        last_used_ip: usage.last_used_ip.clone(),
        requests_24h: usage.requests.last_24h,
    };
    let v = KeyView::new(core, key, None).with_usage(Some(&summary));
    let mut names = match names(core, user, std::slice::from_ref(key)).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let filter = AuditFilter {
        key_id: Some(key.id.clone()),
        ..Default::default()
    };
    let events = match core
        .store
        .list_audit_events(
            &user.shop.id,
            &filter,
            PageRequest {
                page: 1,
                per_page: 100,
            },
        )
        .await
    {
        Ok(p) => p.items,
        Err(e) => return unavailable(&e),
    };
    for e in &events {
        if let Actor::Key(id) = &e.actor
            && let Ok(Some(k)) = core.store.get_key(&user.shop.id, id).await
        {
            names.add_key(id, k.name.as_str());
        }
    }
    let trail = events
        .iter()
        .map(|e| AuditRow {
            at: view::time(e.at),
            actor: names.actor(&e.actor),
            action: action_label(&e.action),
            detail: describe(&e.details),
            ip: e.ip.clone().unwrap_or_default(),
            key: None,
        })
        .collect();
    let status = v.key.status;
    let status_code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        status_code,
        &DetailsPage {
            chrome: user.chrome(key.name.as_str(), "keys"),
            k: KeyDetail {
                id: key.id.clone(),
                name: key.name.as_str().to_owned(),
                environment: key.environment.as_str(),
                legacy: key.kind == KeyKind::Legacy,
                display: key.display.clone(),
                status: status_label(status),
                active: status == KeyStatus::Active,
                permissions: key.permissions.to_names(),
                allowed_ips: key.allowed_ips.to_strings(),
                rate_limit: key.rate_limit_per_minute,
                expires: key.expires_at.map_or_else(
                    || "Never".to_owned(),
                    |t| format!("{} ({})", view::time(t), view::relative(t, now)),
                ),
                template: key
                    .template
                    .as_deref()
                    .and_then(crate::domain::permission::template)
                    .map(|t| t.name.to_owned())
                    .unwrap_or_default(),
                created: view::time(key.created_at),
                created_by: names.actor(&key.created_by),
                last_used: v.last_used_at.map_or_else(
                    || "Never".to_owned(),
                    |t| format!("{} ({})", view::time(t), view::relative(t, now)),
                ),
                last_used_ip: v.last_used_ip.clone().unwrap_or_default(),
                requests_24h: v.requests_24h,
                revoked: key.revoked_at.map(view::time).unwrap_or_default(),
            },
            warnings: v.key.warnings.iter().map(|w| w.message.clone()).collect(),
            edit,
            errors,
            trail,
            notice: notice.to_owned(),
            usage: usage_view(&usage, now),
            can_manage: may_manage(user, key),
            min_date: view::date(now.plus_seconds(86_400)),
            clone_form_id: crate::domain::unique_base62(24),
            clone_name: format!("{} (copy)", key.name.as_str())
                .chars()
                .take(100)
                .collect(),
        },
    )
}

#[derive(Deserialize, Default)]
struct DetailsQuery {
    done: Option<String>,
}

async fn details(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    query: Result<Query<DetailsQuery>, QueryRejection>,
) -> Response {
    let key = match one_key(&core, &user, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("revoked") => "The key is revoked. Every request with it now gets 401 revoked_key.",
        Some("saved") => "Changes saved. They apply to the next request.",
        Some("already_created") => {
            "This form was sent again, so no second key was made: this is the key the first one made. Its secret was shown once and cannot be shown again; if it was not copied, roll the key to get a new one."
        }
        _ => "",
    };
    let edit = edit_values(&key);
    details_page(&core, &user, &key, edit, Errors::default(), notice).await
}

async fn edit(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let key = match one_key(&core, &user, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let f = FormData::parse(&body);
    let typed = EditValues {
        name: f.get("name").to_owned(),
        allowed_ips: f.get("allowed_ips").to_owned(),
        expires_on: f.get("expires_on").trim().to_owned(),
        no_expiry: f.checked("no_expiry"),
        rate_limit: f.get("rate_limit").trim().to_owned(),
    };
    let current = edit_values(&key);
    let mut errors = Errors::default();
    let mut input = KeyUpdateInput::default();
    if typed.name.trim() != current.name {
        input.name = Some(typed.name.clone());
    }
    let ip_lines = lines(&typed.allowed_ips);
    let ips: Vec<String> = ip_lines.iter().map(|(_, l)| l.clone()).collect();
    if ips != key.allowed_ips.to_strings() {
        input.allowed_ips = Some(Some(ips));
    }
    if typed.no_expiry || typed.expires_on.is_empty() {
        if key.expires_at.is_some() {
            input.expires_at = Some(None);
        }
    } else if typed.expires_on != current.expires_on || current.no_expiry {
        match expiry_from_date(&typed.expires_on) {
            Ok(t) => input.expires_at = Some(Some(t)),
            Err(m) => errors.add("expires_on", m),
        }
    }
    if typed.rate_limit != current.rate_limit {
        match typed.rate_limit.parse::<i64>() {
            Ok(n) => input.rate_limit_per_minute = Some(n),
            Err(_) => errors.add(
                "rate_limit",
                "Enter a whole number of requests per minute, 1–10000.",
            ),
        }
    }
    let line_numbers: Vec<usize> = ip_lines.iter().map(|(n, _)| *n).collect();
    let update = match input.validate(core.clock.now()) {
        Ok(u) => Some(u),
        Err(list) => {
            for e in list {
                let (field, message) = form_error(e, &line_numbers);
                errors.add(&field, message);
            }
            None
        }
    };
    let Some(update) = update.filter(|_| errors.is_empty()) else {
        return details_page(&core, &user, &key, typed, errors, "").await;
    };
    match core.update_key(&user.principal(), &id, update).await {
        Ok(_) => see_other(&format!("/settings/api-keys/{id}?done=saved")),
        Err(e) => service_error(&user, e),
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub(super) struct ConfirmPage {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
    pub action: String,
    pub button: String,
    pub back: String,
}

async fn revoke(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let key = match one_key(&core, &user, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    if !FormData::parse(&body).checked("confirm") {
        return render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: user.chrome("Revoke key", "keys"),
                heading: format!("Revoke “{}”?", key.name.as_str()),
                text: "The key stops working at once: every request with it gets 401 revoked_key. This cannot be undone — to use the integration again you will need a new key.".into(),
                action: format!("/settings/api-keys/{id}/revoke"),
                button: "Revoke key".into(),
                back: format!("/settings/api-keys/{id}"),
            },
        );
    }
    match core.revoke_key(&user.principal(), &id, false).await {
        Ok(_) => see_other(&format!("/settings/api-keys/{id}?done=revoked")),
        Err(e) => service_error(&user, e),
    }
}

async fn delete(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let key = match one_key(&core, &user, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    if !FormData::parse(&body).checked("confirm") {
        return render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: user.chrome("Delete key", "keys"),
                heading: format!("Delete “{}”?", key.name.as_str()),
                text: "The key is removed from the list for good and stops working at once (requests get 401 invalid_key). Its audit trail stays in the audit log.".into(),
                action: format!("/settings/api-keys/{id}/delete"),
                button: "Delete key".into(),
                back: format!("/settings/api-keys/{id}"),
            },
        );
    }
    match core.delete_key(&user.principal(), &id).await {
        Ok(()) => see_other("/settings/api-keys?done=deleted"),
        Err(e) => service_error(&user, e),
    }
}

async fn clone(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let source = match one_key(&core, &user, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let f = FormData::parse(&body);
    let name = Some(f.get("name").to_owned()).filter(|n| !n.trim().is_empty());
    let made = once_per_form(
        &core,
        &user,
        f.get("form_id"),
        core.clone_key(&user.principal(), &id, name),
    )
    .await;
    match made {
        Err(Repeated(response)) => response,
        Ok(Ok(created)) => secret_page(&core, &user, &created, Some(&source)),
        Ok(Err(e)) => service_error(&user, e),
    }
}

async fn roll(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = one_key(&core, &user, &id).await {
        return r;
    }
    let f = FormData::parse(&body);
    let raw = f.get("expire_old_in_seconds").trim();
    let grace = if raw.is_empty() {
        Ok(0)
    } else {
        raw.parse::<i64>().map_err(|_| {
            crate::error::ServiceError::Validation(vec![crate::error::FieldError::new(
                "expire_old_in_seconds",
                format!("`{raw}` is not a whole number of seconds"),
            )])
        })
    };
    let result = match grace {
        Ok(g) => core.roll_key(&user.principal(), &id, g).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((created, _old)) => secret_page(&core, &user, &created, None),
        Err(e) => service_error(&user, e),
    }
}

async fn upgrade(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = one_key(&core, &user, &id).await {
        return r;
    }
    let f = FormData::parse(&body);
    match core
        .upgrade_key(
            &user.principal(),
            &id,
            f.checked("retire_legacy"),
            f.checked("narrow_to_used"),
        )
        .await
    {
        Ok(up) => secret_page(&core, &user, &up.created, None),
        Err(e) => service_error(&user, e),
    }
}
