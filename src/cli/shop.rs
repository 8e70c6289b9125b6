//! `latchkey shop`.

use super::*;

pub(super) async fn shop(settings: Settings, cmd: ShopCommand) -> anyhow::Result<()> {
    let (name, owner_email, password_stdin, json) = match cmd {
        ShopCommand::Create {
            name,
            owner_email,
            password_stdin,
            json,
        } => (name, owner_email, password_stdin, json),
        ShopCommand::List { json } => return shop_list(settings, json).await,
    };
    let (password, generated) = if password_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read the password from standard input")?;
        (
            Password::parse(input.trim_end_matches(['\n', '\r']).to_owned()),
            None,
        )
    } else {
        let p = random_base62(20);
        (Password::parse(p.clone()), Some(p))
    };
    let (core, _) = open_core(&settings).await?;
    let input = NewShopInput {
        name: &name,
        owner_email: &owner_email,
        password,
    };
    let CreatedShop { shop, owner } = core.shops.create(input).await.map_err(service_err)?;
    if json {
        let mut out = serde_json::json!({
            "shop_id": shop.id, "shop_name": shop.name, "owner_id": owner.id, "owner_email": owner.email,
        });
        if let Some(p) = &generated {
            out["password"] = serde_json::Value::String(p.clone());
        }
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("shop_id:     {}", shop.id);
        out!("shop_name:   {}", shop.name);
        out!("owner_id:    {}", owner.id);
        out!("owner_email: {}", owner.email.as_str());
        if let Some(p) = &generated {
            out!("password:    {p}   (shown once; change it after logging in)");
        }
    }
    Ok(())
}

/// `latchkey shop list`: how to find a shop id that was not noted.
async fn shop_list(settings: Settings, json: bool) -> anyhow::Result<()> {
    let (core, _) = open_core(&settings).await?;
    let shops = core.shops.list().await.map_err(service_err)?;
    if json {
        let list: Vec<serde_json::Value> = shops
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.shop.id,
                    "name": s.shop.name,
                    "owner_email": s.owner_email,
                    "created_at": s.shop.created_at,
                })
            })
            .collect();
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "shops": list }))?
        );
    } else if shops.is_empty() {
        out!(
            "no shops yet: create one with `latchkey shop create` or the setup link `serve` prints"
        );
    } else {
        out!("{:<30} {:<27} {:<32} NAME", "ID", "CREATED", "OWNER");
        for s in &shops {
            out!(
                "{:<30} {:<27} {:<32} {}",
                s.shop.id,
                s.shop.created_at.to_string(),
                s.owner_email.as_deref().unwrap_or("-"),
                s.shop.name
            );
        }
    }
    Ok(())
}
