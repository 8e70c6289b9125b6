//! `latchkey keys`.

use super::*;

pub(super) fn print_key(
    core: &Core,
    key: &crate::domain::key::KeyRecord,
    secret: Option<&crate::domain::token::PlainKey>,
    json: bool,
) -> anyhow::Result<()> {
    let view = core.keys.view(key, secret);
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "key": view }))?
        );
        return Ok(());
    }
    out!("id:           {}", view.key.id);
    out!("name:         {}", view.key.name);
    out!("environment:  {}", view.key.environment);
    out!("status:       {}", view.key.status.as_str());
    out!("key:          {}", view.key.display);
    out!("permissions:  {}", key.permissions.to_names().join(" "));
    let ips = key.allowed_ips.to_strings();
    out!(
        "allowed_ips:  {}",
        if ips.is_empty() {
            "any".into()
        } else {
            ips.join(" ")
        }
    );
    out!("rate_limit:   {}/min", view.key.rate_limit_per_minute);
    out!(
        "expires_at:   {}",
        view.key
            .expires_at
            .map_or("never".into(), |t| t.to_string())
    );
    out!("created_at:   {}", view.key.created_at);
    for w in &view.key.warnings {
        out!("warning:      {}", w.message);
    }
    if let Some(s) = secret {
        out!();
        out!("secret:       {}", s.expose());
        out!("              Copy it now: it is shown only this once.");
    }
    Ok(())
}

pub(super) async fn keys(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let (core, _) = open_core(&settings).await?;
    let keys = core.keys.clone();
    let shop_exists = |id: String| {
        let keys = keys.clone();
        async move {
            match keys.shop_exists(&id).await {
                Ok(()) => Ok(()),
                Err(ServiceError::Validation(_)) => {
                    Err(anyhow::anyhow!("--shop: no shop with id `{id}`"))
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
    };
    match cmd {
        KeysCommand::Create {
            shop,
            name,
            template,
            permission,
            environment,
            allowed_ip,
            expires_at,
            rate_limit,
            json,
        } => {
            shop_exists(shop.clone()).await?;
            let input = NewKeyInput {
                name,
                template,
                permissions: (!permission.is_empty()).then_some(permission),
                environment: Some(environment),
                allowed_ips: Some(Some(allowed_ip)),
                expires_at: expires_at.map(Some),
                rate_limit_per_minute: rate_limit,
            };
            let new = keys
                .validate_new(input, Environment::Live)
                .map_err(service_err)?;
            let created = keys
                .create_key(&Principal::cli(&shop), new)
                .await
                .map_err(service_err)?;
            print_key(&core, &created.key, Some(&created.secret), json)
        }
        KeysCommand::List {
            shop,
            environment,
            status,
            json,
        } => {
            shop_exists(shop.clone()).await?;
            let environment = environment
                .map(|e| e.parse::<Environment>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--environment: {e}"))?;
            let status = status
                .map(|s| s.parse::<KeyStatus>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--status: {e}"))?;
            let cli = Principal::cli(&shop);
            let mut all = Vec::new();
            let mut page = PageRequest {
                page: 1,
                per_page: 100,
            };
            loop {
                let batch = keys
                    .list(&cli, environment, status, page)
                    .await
                    .map_err(service_err)?;
                let done = batch.items.len() < page.per_page as usize;
                all.extend(batch.items);
                if done {
                    break;
                }
                page.page += 1;
            }
            if json {
                let views: Vec<KeyView> = all.iter().map(|k| keys.view(k, None)).collect();
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "keys": views }))?
                );
            } else if all.is_empty() {
                out!("no keys");
            } else {
                out!(
                    "{:<29} {:<8} {:<8} {:<22} NAME",
                    "ID",
                    "ENV",
                    "STATUS",
                    "KEY"
                );
                for k in &all {
                    out!(
                        "{:<29} {:<8} {:<8} {:<22} {}",
                        k.id,
                        k.environment.as_str(),
                        keys.status_of(k).as_str(),
                        k.display,
                        k.name.as_str()
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Show { key_id, json } => {
            let key = find_key(&core, &key_id).await?;
            print_key(&core, &key, None, json)
        }
        KeysCommand::Revoke { key_id, json } => {
            let key = find_key(&core, &key_id).await?;
            let revoked = keys
                .revoke_key(&Principal::cli(&key.shop_id), &key_id, false)
                .await
                .map_err(service_err)?;
            print_key(&core, &revoked, None, json)
        }
        KeysCommand::Pause {
            shop,
            template,
            key,
            reason,
            json,
        } => {
            shop_exists(shop.clone()).await?;
            let input = PauseInput {
                template,
                key_ids: (!key.is_empty()).then_some(key),
                reason,
            };
            pause_or_resume(&keys, &shop, input, true, json).await
        }
        KeysCommand::Resume {
            shop,
            template,
            key,
            json,
        } => {
            shop_exists(shop.clone()).await?;
            let input = PauseInput {
                template,
                key_ids: (!key.is_empty()).then_some(key),
                reason: None,
            };
            pause_or_resume(&keys, &shop, input, false, json).await
        }
        KeysCommand::Delete { key_id, json } => {
            let key = find_key(&core, &key_id).await?;
            keys.delete_key(&Principal::cli(&key.shop_id), &key_id)
                .await
                .map_err(service_err)?;
            if json {
                out!("{}", serde_json::json!({"deleted": key_id}));
            } else {
                out!("deleted {key_id} ({})", key.name.as_str());
            }
            Ok(())
        }
        KeysCommand::Roll {
            key_id,
            expire_old_in,
            json,
        } => {
            let key = find_key(&core, &key_id).await?;
            let (c, old) = keys
                .roll_key(&Principal::cli(&key.shop_id), &key_id, expire_old_in)
                .await
                .map_err(service_err)?;
            if !json {
                out!(
                    "rolled {key_id}: it stops working at {}",
                    old.expires_at.map_or("once".into(), |t| t.to_string())
                );
                out!();
            }
            print_key(&core, &c.key, Some(&c.secret), json)
        }
        KeysCommand::Upgrade {
            key_id,
            retire_legacy,
            narrow_to_used,
            json,
        } => {
            let key = find_key(&core, &key_id).await?;
            let up = keys
                .upgrade_key(
                    &Principal::cli(&key.shop_id),
                    &key_id,
                    retire_legacy,
                    narrow_to_used,
                )
                .await
                .map_err(service_err)?;
            if !json {
                if retire_legacy {
                    out!("upgraded {key_id}; the legacy key is retired now");
                } else {
                    out!(
                        "upgraded {key_id}; the legacy key keeps working until {}",
                        core.policy.legacy_sunset
                    );
                }
                for w in &up.warnings {
                    out!("warning: {w}");
                }
                out!();
            }
            if json && !up.warnings.is_empty() {
                let mut view =
                    serde_json::to_value(keys.view(&up.created.key, Some(&up.created.secret)))?;
                if let Some(list) = view.get_mut("warnings").and_then(|w| w.as_array_mut()) {
                    for m in &up.warnings {
                        list.push(serde_json::json!({"code": "not_narrowed", "message": m}));
                    }
                }
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "key": view }))?
                );
                return Ok(());
            }
            print_key(&core, &up.created.key, Some(&up.created.secret), json)
        }
    }
}

async fn pause_or_resume(
    keys: &crate::service::keys::KeyService,
    shop: &str,
    input: PauseInput,
    pause: bool,
    json: bool,
) -> anyhow::Result<()> {
    let request = input.validate().map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| {
                    let flag = match e.field.as_str() {
                        "key_ids" => "--key",
                        "template" => "--template",
                        _ => "--reason",
                    };
                    format!("{flag}: {}", e.message)
                })
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let cli = Principal::cli(shop);
    let done = if pause {
        keys.pause_keys(&cli, &request).await
    } else {
        keys.resume_keys(&cli, &request).await
    }
    .map_err(service_err)?;
    let verb = if pause { "paused" } else { "resumed" };
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ verb: done.changed, "skipped": done.skipped })
            )?
        );
        return Ok(());
    }
    if done.changed.is_empty() && done.skipped.is_empty() {
        out!("no keys match");
    }
    for id in &done.changed {
        out!("{verb} {id}");
    }
    for s in &done.skipped {
        out!("skipped {} ({})", s.id, s.reason);
    }
    Ok(())
}

pub(super) async fn find_key(
    core: &Core,
    id: &str,
) -> anyhow::Result<crate::domain::key::KeyRecord> {
    match core.keys.get_any_shop(id).await {
        Ok(key) => Ok(key),
        Err(ServiceError::NotFound) => Err(anyhow::anyhow!("no key with id `{id}`")),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}
