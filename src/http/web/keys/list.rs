//! The keys list: filters, paging and the warnings banner.

use super::*;
use crate::domain::policy::CutoffNotice;

pub(super) struct KeyRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) environment: &'static str,
    pub(super) display: String,
    pub(super) legacy: bool,
    pub(super) permissions: String,
    pub(super) status: &'static str,
    pub(super) created_by: String,
    pub(super) created: String,
    pub(super) last_used: String,
    pub(super) requests_24h: u64,
    pub(super) expires: String,
    pub(super) warning: bool,
}

/// One template in use among the keys shown: the pause and resume actions.
pub(super) struct Integration {
    pub(super) template: &'static str,
    pub(super) name: &'static str,
    pub(super) keys: usize,
    pub(super) running: usize,
    pub(super) paused: usize,
}

pub(super) struct Banner {
    pub(super) level: &'static str,
    pub(super) text: String,
    pub(super) link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "keys/list.html")]
pub(super) struct ListPage {
    pub(super) chrome: Chrome,
    pub(super) rows: Vec<KeyRow>,
    pub(super) banners: Vec<Banner>,
    pub(super) notice: String,
    pub(super) status: String,
    pub(super) environment: String,
    /// Keys before filtering: tells "no keys yet" from "none match".
    pub(super) total_keys: usize,
    pub(super) matching: usize,
    pub(super) page: usize,
    pub(super) pages: usize,
    pub(super) prev_href: String,
    pub(super) next_href: String,
    pub(super) staff: bool,
    pub(super) integrations: Vec<Integration>,
    pub(super) with_suggestions: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    pub(super) status: Option<String>,
    pub(super) environment: Option<String>,
    pub(super) page: Option<String>,
    pub(super) done: Option<String>,
    /// `yes`: only keys with least-privilege suggestions.
    pub(super) suggestions: Option<String>,
    /// After a pause or resume: how many keys changed and were skipped.
    pub(super) changed: Option<String>,
    pub(super) skipped: Option<String>,
}

/// The templates the keys were made from, with how many are running and paused.
pub(super) fn integrations(core: &Core, keys: &[KeyRecord]) -> Vec<Integration> {
    crate::domain::permission::TEMPLATES
        .iter()
        .filter_map(|t| {
            let made: Vec<&KeyRecord> = keys
                .iter()
                .filter(|k| k.template.as_deref() == Some(t.id))
                .collect();
            if made.is_empty() {
                return None;
            }
            let count = |s: KeyStatus| made.iter().filter(|k| core.keys.status_of(k) == s).count();
            Some(Integration {
                template: t.id,
                name: t.name,
                keys: made.len(),
                running: count(KeyStatus::Active),
                paused: made
                    .iter()
                    .filter(|k| k.paused.is_some() && k.revoked_at.is_none())
                    .count(),
            })
        })
        .collect()
}

/// `POST /settings/api-keys/pause` and `/resume`: one template's keys, through
/// the key service with the user's principal (staff: only their own keys).
pub(super) async fn pause_template(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    body: Bytes,
) -> Response {
    pause_or_resume(&core, &user, &body, true).await
}

pub(super) async fn resume_template(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    body: Bytes,
) -> Response {
    pause_or_resume(&core, &user, &body, false).await
}

async fn pause_or_resume(core: &Core, user: &WebUser, body: &[u8], pause: bool) -> Response {
    let f = FormData::parse(body);
    let input = crate::service::keys::PauseInput {
        template: Some(f.get("template").to_owned()),
        key_ids: None,
        reason: pause.then(|| f.get("reason").to_owned()),
    };
    let request = match input.validate() {
        Ok(r) => r,
        Err(errors) => return service_error(user, ServiceError::Validation(errors)),
    };
    let done = if pause {
        core.keys.pause_keys(&user.principal(), &request).await
    } else {
        core.keys.resume_keys(&user.principal(), &request).await
    };
    match done {
        Ok(done) => see_other(&format!(
            "/settings/api-keys?done={}&changed={}&skipped={}",
            if pause { "paused" } else { "resumed" },
            done.changed.len(),
            done.skipped.len()
        )),
        Err(e) => service_error(user, e),
    }
}

pub(super) fn banners(
    core: &Core,
    keys: &[KeyRecord],
    usage: &HashMap<String, UsageSummary>,
) -> Vec<Banner> {
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
        let v = core.keys.view(k, None).with_usage(usage.get(&k.id));
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
                "leaked" => out.push(Banner {
                    level: "bad",
                    text: match &k.leaked {
                        Some(leak) if k.revoked_at.is_some() => format!(
                            "“{}” was found in public at {} ({}) and was revoked. Give the integration a new key and remove the old one from where it was found.",
                            k.name.as_str(),
                            leak.url,
                            leak.source
                        ),
                        Some(leak) => format!(
                            "“{}” was found in public at {} ({}). Anyone may be using it: roll or revoke it now.",
                            k.name.as_str(),
                            leak.url,
                            leak.source
                        ),
                        None => String::new(),
                    },
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
    let notice = core.policy.legacy_cutoff_notice(now);
    if !legacy.is_empty() {
        out.push(Banner {
            // Red within the last LEGACY_CUTOFF_WARNING_DAYS.
            level: if notice.is_some() { "bad" } else { "warn" },
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
    // After the cut-off: the legacy keys it stopped (not those revoked or
    // retired by an upgrade, which were stopped on purpose).
    let stopped: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| k.kind == KeyKind::Legacy && k.revoked_at.is_none() && k.retired_at.is_none())
        .collect();
    if matches!(notice, Some(CutoffNotice::Passed { .. })) && !stopped.is_empty() {
        out.push(Banner {
            level: "bad",
            text: format!(
                "The legacy cut-off passed on {}: {} legacy key{} refused with legacy_key_retired. Upgrade {} to a new key (Upgrade on the key's page) and put the new key in the integration.",
                view::date(sunset),
                stopped.len(),
                if stopped.len() == 1 { " is" } else { "s are" },
                if stopped.len() == 1 { "it" } else { "each" },
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

pub(super) async fn list(
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
    let usage = match core.keys.summaries(&keys.iter().collect::<Vec<_>>()).await {
        Ok(u) => u,
        Err(e) => return service_error(&user, e),
    };
    let status = q.status.unwrap_or_default();
    let environment = q.environment.unwrap_or_default();
    let wanted_status: Option<KeyStatus> = status.parse().ok();
    let mut matching: Vec<&KeyRecord> = keys
        .iter()
        .filter(|k| wanted_status.is_none_or(|s| core.keys.status_of(k) == s))
        .filter(|k| environment.is_empty() || k.environment.as_str() == environment)
        .collect();
    let with_suggestions = q.suggestions.as_deref() == Some("yes");
    if with_suggestions {
        let mut kept = Vec::with_capacity(matching.len());
        for k in matching {
            match core.keys.suggestions_for(k).await {
                Ok(s) if !s.suggestions.is_empty() => kept.push(k),
                Ok(_) => {}
                Err(e) => return service_error(&user, e),
            }
        }
        matching = kept;
    }
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
            let v = core.keys.view(k, None).with_usage(usage.get(&k.id));
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
            "/settings/api-keys?status={}&environment={}{}&page={p}",
            crate::http::web::session::urlencode(&status),
            crate::http::web::session::urlencode(&environment),
            if with_suggestions {
                "&suggestions=yes"
            } else {
                ""
            }
        )
    };
    let count = |v: &Option<String>| {
        v.as_deref()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let (changed, skipped) = (count(&q.changed), count(&q.skipped));
    let keys_word = |n: usize| {
        if n == 1 {
            "1 key".to_owned()
        } else {
            format!("{n} keys")
        }
    };
    let skipped_text = if skipped == 0 {
        String::new()
    } else {
        format!(
            " {} left as they were (revoked, expired, already in that state, or not yours to manage).",
            keys_word(skipped)
        )
    };
    let notice = match q.done.as_deref() {
        Some("deleted") => {
            "The key is deleted. Anything still using it now gets 401 invalid_key.".to_owned()
        }
        Some("password_changed") => "Your password is changed.".to_owned(),
        Some("paused") => format!(
            "Paused {}: every request with {} now gets 403 key_paused until you resume.{skipped_text}",
            keys_word(changed),
            if changed == 1 { "it" } else { "them" }
        ),
        Some("resumed") => format!(
            "Resumed {}: {} again at once.{skipped_text}",
            keys_word(changed),
            if changed == 1 {
                "it works"
            } else {
                "they work"
            }
        ),
        _ => String::new(),
    };
    render(
        StatusCode::OK,
        &ListPage {
            chrome: user.chrome("API keys", "keys"),
            banners: banners(&core, &keys, &usage),
            rows,
            notice,
            integrations: integrations(&core, &keys),
            with_suggestions,
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
