//! Making a key: the create form, the guard against a form sent twice, and
//! the one-time secret page.

use super::*;
use crate::http::web::session::limits_unavailable;
use crate::limiter::FormStart;

/// The create form's values as typed, kept when the form comes back with errors.
#[derive(Default)]
pub(super) struct KeyForm {
    pub(super) name: String,
    pub(super) template: String,
    /// The template the permission grid was last filled from; when the picked
    /// template differs (no script ran to refill the grid), the template wins.
    pub(super) grid_for: String,
    pub(super) permissions: PermissionSet,
    pub(super) environment: String,
    pub(super) expires_on: String,
    pub(super) allowed_ips: String,
    pub(super) rate_limit: String,
    pub(super) accept_vague: bool,
    /// One id per form shown: a second POST of it shows the key the first made.
    pub(super) form_id: String,
}

pub(super) struct TemplateOption {
    pub(super) id: &'static str,
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) permissions: String,
    pub(super) summary: String,
    pub(super) checked: bool,
}

pub(super) struct GridCell {
    pub(super) value: String,
    pub(super) id: String,
    pub(super) verb: &'static str,
    pub(super) checked: bool,
    pub(super) disabled: bool,
}

pub(super) struct GridRow {
    pub(super) label: &'static str,
    pub(super) cells: Vec<Option<GridCell>>,
}

#[derive(Template)]
#[template(path = "keys/new.html")]
pub(super) struct NewKeyPage {
    pub(super) chrome: Chrome,
    pub(super) f: KeyForm,
    pub(super) errors: Errors,
    pub(super) templates: Vec<TemplateOption>,
    pub(super) grid: Vec<GridRow>,
    pub(super) default_rate_limit: u32,
    pub(super) min_date: String,
    pub(super) vague: bool,
    pub(super) staff: bool,
}

pub(super) fn grid(set: PermissionSet, grantable: PermissionSet) -> Vec<GridRow> {
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

pub(super) fn new_page(
    core: &Core,
    user: &WebUser,
    f: KeyForm,
    errors: Errors,
    vague: bool,
) -> NewKeyPage {
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
pub(super) struct NewQuery {
    pub(super) template: Option<String>,
    pub(super) environment: Option<String>,
}

pub(super) async fn new_form(
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

pub(super) fn read_key_form(f: &FormData) -> KeyForm {
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

pub(super) async fn create(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    body: Bytes,
) -> Response {
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
        allowed_ips: Some(Some(ip_lines.iter().map(|(_, l)| l.clone()).collect())),
        expires_at: expires_at.map(Some),
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
        core.keys.create_key(&user.principal(), new),
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
pub(super) struct Repeated(pub(super) Response);

/// Runs `make` (a create or clone) at most once per form, on every instance:
/// the form's one-time id is claimed first (see `Limits::start_form`). A
/// repeat of a form that already made a key gets [`Repeated`] leading to that
/// key and `make` never runs; a repeat while the first POST still acts waits
/// a moment for it, then says so. A success is recorded; a failure releases
/// the claim so the form can be sent again. Forms without a usable id just run.
pub(super) async fn once_per_form(
    core: &Core,
    user: &WebUser,
    form_id: &str,
    make: impl Future<Output = Result<Created, ServiceError>>,
) -> Result<Result<Created, ServiceError>, Repeated> {
    let claim = match core
        .limits
        .start_form(&user.user.id, form_id, core.clock.now())
        .await
    {
        Err(_) => return Err(Repeated(limits_unavailable())),
        Ok(None) => return Ok(make.await),
        Ok(Some(FormStart::Made(key_id))) => {
            return Err(Repeated(see_other(&format!(
                "/settings/api-keys/{key_id}?done=already_created"
            ))));
        }
        Ok(Some(FormStart::Busy)) => {
            return Err(Repeated(user_message(
                user,
                StatusCode::CONFLICT,
                "Already being processed",
                "This form was already sent and is still being processed. Look for the new key in the list of keys in a moment; its secret is shown only to the request that made it.",
                Some(("/settings/api-keys", "Back to API keys")),
            )));
        }
        Ok(Some(FormStart::Act(claim))) => claim,
    };
    let result = make.await;
    match &result {
        Ok(created) => {
            core.limits
                .finish_form(claim, &created.key.id, core.clock.now())
                .await;
        }
        Err(_) => core.limits.release_form(claim).await,
    }
    Ok(result)
}

// ---------------------------------------------------------------------------
// The one-time secret
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "keys/secret.html")]
pub(super) struct SecretPage {
    pub(super) chrome: Chrome,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) environment: &'static str,
    pub(super) display: String,
    pub(super) secret: String,
    pub(super) permissions: String,
    pub(super) cloned_from: Option<(String, String)>,
    pub(super) base_url: String,
}

pub(super) fn secret_page(
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
