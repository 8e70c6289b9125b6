//! Creating a shop and its owner: shared by `latchkey shop create` and the
//! first-run `/setup` page.

use crate::domain::FieldError;
use crate::domain::clock::Timestamp;
use crate::domain::key::Actor;
use crate::domain::new_id;
use crate::domain::user::{Email, Password, Role};
use crate::store::{AuditEvent, Shop, User};

/// A validated shop, its owner and the audit event recording both.
pub struct NewShop {
    pub shop: Shop,
    pub owner: User,
    pub audit: AuditEvent,
}

/// A shop name: trimmed, 1–100 characters, no control characters.
pub fn parse_shop_name(input: &str) -> Result<String, String> {
    let name = input.trim();
    match name.chars().count() {
        0 => Err("give the shop a name".into()),
        n if n > 100 => Err(format!("at most 100 characters (this one has {n})")),
        _ if name.chars().any(char::is_control) => Err("no control characters".into()),
        _ => Ok(name.to_owned()),
    }
}

/// Validates every field and reports every problem at once. The password is
/// hashed (argon2id) only once everything else is valid.
pub fn prepare(
    name: &str,
    owner_email: &str,
    password: Result<Password, String>,
    actor: Actor,
    now: Timestamp,
) -> Result<NewShop, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = parse_shop_name(name).map_err(|m| errors.push(FieldError::new("name", m)));
    let email =
        Email::parse(owner_email).map_err(|m| errors.push(FieldError::new("owner_email", m)));
    let password = password.map_err(|m| errors.push(FieldError::new("password", m)));
    let (Ok(name), Ok(email), Ok(password)) = (name, email, password) else {
        return Err(errors);
    };
    let shop = Shop {
        id: new_id("shop"),
        name,
        created_at: now,
    };
    let owner = User {
        id: new_id("usr"),
        shop_id: shop.id.clone(),
        email,
        role: Role::Owner,
        password_hash: password.hash(),
        created_at: now,
    };
    let audit = AuditEvent {
        id: new_id("evt"),
        shop_id: shop.id.clone(),
        at: now,
        actor,
        action: "shop.created".into(),
        key_id: None,
        environment: None,
        ip: None,
        details: serde_json::json!({"name": shop.name, "owner_id": owner.id, "owner_email": owner.email}),
    };
    Ok(NewShop { shop, owner, audit })
}
