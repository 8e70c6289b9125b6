//! A key's page: its settings, usage charts, endpoints, clients and audit trail.

use super::*;

pub(super) struct KeyDetail {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) environment: &'static str,
    pub(super) legacy: bool,
    pub(super) display: String,
    pub(super) status: &'static str,
    pub(super) active: bool,
    pub(super) permissions: Vec<&'static str>,
    pub(super) allowed_ips: Vec<String>,
    pub(super) rate_limit: u32,
    pub(super) expires: String,
    pub(super) template: String,
    pub(super) created: String,
    pub(super) created_by: String,
    pub(super) last_used: String,
    pub(super) last_used_ip: String,
    pub(super) requests_24h: u64,
    pub(super) revoked: String,
}

/// A least-privilege suggestion as the key's page shows it.
pub(super) struct SuggestionRow {
    pub(super) kind: &'static str,
    pub(super) detail: String,
    /// The one-click apply button's label, when it has one.
    pub(super) apply: Option<&'static str>,
}

pub(super) struct EditValues {
    pub(super) name: String,
    pub(super) allowed_ips: String,
    pub(super) expires_on: String,
    pub(super) no_expiry: bool,
    pub(super) rate_limit: String,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub ip: String,
    pub key: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "keys/details.html")]
pub(super) struct DetailsPage {
    pub(super) chrome: Chrome,
    pub(super) k: KeyDetail,
    pub(super) usage: UsageView,
    pub(super) edit: EditValues,
    pub(super) errors: Errors,
    pub(super) warnings: Vec<String>,
    pub(super) trail: Vec<AuditRow>,
    pub(super) notice: String,
    pub(super) can_manage: bool,
    pub(super) min_date: String,
    pub(super) clone_name: String,
    /// The clone form's one-time id (see `Limits::start_form`).
    pub(super) clone_form_id: String,
    pub(super) suggestions: Vec<SuggestionRow>,
}

/// The usage section of the details page.
pub(super) struct UsageView {
    pub(super) total: u64,
    pub(super) last_7d: u64,
    pub(super) error_rate: String,
    pub(super) errors_4xx: u64,
    pub(super) errors_5xx: u64,
    /// Server-drawn SVG, escaped by its own template.
    pub(super) hour_chart: chart::Chart,
    pub(super) week_chart: chart::Chart,
    pub(super) endpoints: Vec<EndpointRow>,
    pub(super) rejected: Vec<(&'static str, u64)>,
    pub(super) clients: Vec<ClientRow>,
}

pub(super) struct EndpointRow {
    pub(super) method: String,
    pub(super) route: String,
    pub(super) requests: u64,
    pub(super) errors_4xx: u64,
    pub(super) errors_5xx: u64,
    pub(super) last_used: String,
}

pub(super) struct ClientRow {
    pub(super) ip: String,
    pub(super) user_agent: String,
    pub(super) requests: u64,
    pub(super) last_used: String,
}

pub(super) fn usage_view(u: &KeyUsage, now: crate::domain::clock::Timestamp) -> UsageView {
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
            ("Paused", u.rejected.paused),
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
pub fn action_label(action: &str) -> String {
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
        "key.paused" => "Paused".into(),
        "key.leaked" => "Reported found in public".into(),
        "key.resumed" => "Resumed".into(),
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

pub(super) fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "none".into(),
        serde_json::Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A one-line summary of an event's details.
pub fn describe(details: &serde_json::Value) -> String {
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

pub(super) fn may_manage(user: &WebUser, key: &KeyRecord) -> bool {
    user.principal().may_manage(key)
}

pub(super) fn edit_values(key: &KeyRecord) -> EditValues {
    EditValues {
        name: key.name.as_str().to_owned(),
        allowed_ips: key.allowed_ips.to_strings().join("\n"),
        expires_on: key.expires_at.map(view::date).unwrap_or_default(),
        no_expiry: key.expires_at.is_none(),
        rate_limit: key.rate_limit_per_minute.to_string(),
    }
}

pub(super) async fn details_page(
    core: &Core,
    user: &WebUser,
    key: &KeyRecord,
    edit: EditValues,
    errors: Errors,
    notice: &str,
) -> Response {
    let now = core.clock.now();
    let usage = match core.keys.usage(&user.principal(), &key.id).await {
        Ok(u) => u,
        Err(e) => return service_error(user, e),
    };
    let summary = UsageSummary {
        last_used_at: usage.last_used_at,
        last_used_ip: usage.last_used_ip.clone(),
        requests_24h: usage.requests.last_24h,
    };
    let v = core.keys.view(key, None).with_usage(Some(&summary));
    let mut names = match names(core, user, std::slice::from_ref(key)).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let events = match core.audit.trail(&user.principal(), &key.id).await {
        Ok(events) => events,
        Err(e) => return service_error(user, e),
    };
    match core.audit.key_names(&user.shop.id, &events).await {
        Ok(found) => {
            for (id, name) in found {
                if let Some(name) = name {
                    names.add_key(&id, &name);
                }
            }
        }
        Err(e) => return service_error(user, e),
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
    let suggestions = match core.keys.suggestions_for(key).await {
        Ok(s) => s
            .suggestions
            .iter()
            .map(|s| SuggestionRow {
                kind: s.kind(),
                detail: s.detail().to_owned(),
                apply: match s {
                    crate::service::keys::Suggestion::UnusedPermissions { .. } => {
                        Some("Remove these permissions")
                    }
                    crate::service::keys::Suggestion::RestrictIps { .. } => {
                        Some("Allow only these addresses")
                    }
                    _ => None,
                },
            })
            .collect(),
        Err(e) => return service_error(user, e),
    };
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
                    .map(|t| {
                        if key.is_customized() {
                            format!("{} (customized: its permissions differ)", t.name)
                        } else {
                            t.name.to_owned()
                        }
                    })
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
            suggestions,
            clone_name: format!("{} (copy)", key.name.as_str())
                .chars()
                .take(100)
                .collect(),
        },
    )
}

#[derive(Deserialize, Default)]
pub(super) struct DetailsQuery {
    pub(super) done: Option<String>,
}

pub(super) async fn details(
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
        Some("suggestion_applied") => {
            "Suggestion applied: the key is narrower from the next request on."
        }
        Some("already_created") => {
            "This form was sent again, so no second key was made: this is the key the first one made. Its secret was shown once and cannot be shown again; if it was not copied, roll the key to get a new one."
        }
        _ => "",
    };
    let edit = edit_values(&key);
    details_page(&core, &user, &key, edit, Errors::default(), notice).await
}
