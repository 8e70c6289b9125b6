//! What a key's page can do: edit, revoke, delete, clone, roll, upgrade.

use super::*;

pub(super) async fn edit(
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
    match core.keys.update_key(&user.principal(), &id, update).await {
        Ok(_) => see_other(&format!("/settings/api-keys/{id}?done=saved")),
        Err(e) => service_error(&user, e),
    }
}

/// The key actions that cannot be undone: each is confirmed first.
#[derive(Clone, Copy)]
enum Final {
    Revoke,
    Delete,
}

impl Final {
    fn ask(self, user: &WebUser, key: &KeyRecord) -> Response {
        let (verb, path, text) = match self {
            Final::Revoke => (
                "Revoke",
                "revoke",
                "The key stops working at once: every request with it gets 401 revoked_key. This cannot be undone — to use the integration again you will need a new key.",
            ),
            Final::Delete => (
                "Delete",
                "delete",
                "The key is removed from the list for good and stops working at once (requests get 401 invalid_key). Its audit trail stays in the audit log.",
            ),
        };
        let id = &key.id;
        confirm::ask(
            user,
            "keys",
            Question {
                button: &format!("{verb} key"),
                heading: format!("{verb} “{}”?", key.name.as_str()),
                text,
                action: format!("/settings/api-keys/{id}/{path}"),
                back: format!("/settings/api-keys/{id}"),
            },
        )
    }
}

pub(super) async fn revoke(
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
        return Final::Revoke.ask(&user, &key);
    }
    match core.keys.revoke_key(&user.principal(), &id, false).await {
        Ok(_) => see_other(&format!("/settings/api-keys/{id}?done=revoked")),
        Err(e) => service_error(&user, e),
    }
}

pub(super) async fn delete(
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
        return Final::Delete.ask(&user, &key);
    }
    match core.keys.delete_key(&user.principal(), &id).await {
        Ok(()) => see_other("/settings/api-keys?done=deleted"),
        Err(e) => service_error(&user, e),
    }
}

pub(super) async fn clone(
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
        core.keys.clone_key(&user.principal(), &id, name),
    )
    .await;
    match made {
        Err(Repeated(response)) => response,
        Ok(Ok(created)) => secret_page(&core, &user, &created, Some(&source)),
        Ok(Err(e)) => service_error(&user, e),
    }
}

pub(super) async fn roll(
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
            crate::http::error::ServiceError::Validation(vec![crate::http::error::FieldError::new(
                "expire_old_in_seconds",
                format!("`{raw}` is not a whole number of seconds"),
            )])
        })
    };
    let result = match grace {
        Ok(g) => core.keys.roll_key(&user.principal(), &id, g).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((created, _old)) => secret_page(&core, &user, &created, None),
        Err(e) => service_error(&user, e),
    }
}

/// One-click apply of a least-privilege suggestion, through the key service's
/// normal update rules.
pub(super) async fn apply_suggestion(
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
        .keys
        .apply_suggestion(&user.principal(), &id, f.get("kind"))
        .await
    {
        Ok(_) => see_other(&format!("/settings/api-keys/{id}?done=suggestion_applied")),
        Err(e) => service_error(&user, e),
    }
}

pub(super) async fn upgrade(
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
        .keys
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
