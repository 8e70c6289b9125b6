//! Shops: creating one with its owner (`latchkey shop create` and the
//! first-run `/setup` page share the rules), the one-time setup link, and the
//! cached lookup every answer naming the caller's shop uses.

use std::sync::Arc;

use crate::auth::secret::KeyHasher;
use crate::domain::clock::Clock;
use crate::domain::key::Actor;
use crate::domain::user::{Email, Password, Role};
use crate::domain::{FieldError, new_id, random_base62};
use crate::service::ServiceError;
use crate::store::{AuditEvent, Shop, ShopListing, ShopStore, User};

/// Cached shops.
pub const SHOP_CACHE_CAPACITY: u64 = 10_000;

/// What a new shop is made from. The password arrives already parsed (or with
/// the reason it was refused, e.g. a mistyped confirmation), so every problem
/// of the form is reported at once.
pub struct NewShopInput<'a> {
    pub name: &'a str,
    pub owner_email: &'a str,
    pub password: Result<Password, String>,
}

/// A shop just made, and its owner.
#[derive(Debug)]
pub struct CreatedShop {
    pub shop: Shop,
    pub owner: User,
}

pub struct ShopService {
    shops: Arc<dyn ShopStore>,
    clock: Arc<dyn Clock>,
    /// Setup tokens are stored as their keyed hash only.
    hasher: KeyHasher,
    /// The external URL the setup link starts with.
    public_url: String,
    /// A shop is never renamed or deleted, so nothing invalidates these.
    cache: moka::sync::Cache<String, Arc<Shop>, foldhash::fast::RandomState>,
}

impl ShopService {
    pub fn new(
        shops: Arc<dyn ShopStore>,
        clock: Arc<dyn Clock>,
        hasher: KeyHasher,
        public_url: String,
    ) -> Self {
        ShopService {
            shops,
            clock,
            hasher,
            public_url,
            // Keyed by ids the server made: a fast hasher, not SipHash.
            cache: moka::sync::Cache::builder()
                .max_capacity(SHOP_CACHE_CAPACITY)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// Whether the database answers (readiness).
    pub async fn database_ready(&self) -> Result<(), ServiceError> {
        Ok(self.shops.ping().await?)
    }

    pub async fn has_shops(&self) -> Result<bool, ServiceError> {
        Ok(self.shops.has_shops().await?)
    }

    /// Every shop, oldest first (`latchkey shop list`, and `serve`'s check
    /// for legacy keys at start).
    pub async fn list(&self) -> Result<Vec<ShopListing>, ServiceError> {
        Ok(self.shops.list_shops().await?)
    }

    /// A shop by id, from memory after the first lookup.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<Shop>>, ServiceError> {
        if let Some(shop) = self.cache.get(id) {
            return Ok(Some(shop));
        }
        let found = self.shops.get_shop(id).await?.map(Arc::new);
        if let Some(shop) = &found {
            self.cache.insert(shop.id.clone(), shop.clone());
        }
        Ok(found)
    }

    /// Creates a shop and its owner (the command line's way; the CLI is the
    /// actor of the audit event).
    pub async fn create(&self, input: NewShopInput<'_>) -> Result<CreatedShop, ServiceError> {
        let (shop, owner, audit) = prepare(input, Actor::Cli, self.clock.now())?;
        self.shops.create_shop(&shop, &owner, &audit).await?;
        Ok(CreatedShop { shop, owner })
    }

    /// Makes a new setup token and returns the link to `/setup`. Every link
    /// printed while no shop exists works (instances started together each
    /// print one) until one of them creates the shop.
    pub async fn setup_link(&self) -> Result<String, ServiceError> {
        let token = random_base62(32);
        self.shops
            .put_setup_token(&self.hasher.hash(&token), self.clock.now())
            .await?;
        Ok(format!("{}/setup?token={token}", self.public_url))
    }

    /// Whether `token` is the unused setup token and no shop exists yet.
    pub async fn setup_token_valid(&self, token: &str) -> Result<bool, ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(false);
        }
        Ok(self
            .shops
            .setup_token_valid(&self.hasher.hash(token))
            .await?)
    }

    /// Uses the setup token and creates the first shop and its owner. The
    /// owner, not the command line, is the actor. `NotFound` when the token is
    /// unknown or used, or a shop exists already.
    pub async fn complete_setup(
        &self,
        token: &str,
        input: NewShopInput<'_>,
    ) -> Result<CreatedShop, ServiceError> {
        let (shop, owner, mut audit) = prepare(input, Actor::Cli, self.clock.now())?;
        audit.actor = Actor::User(owner.id.clone());
        self.shops
            .complete_setup(&self.hasher.hash(token), &shop, &owner, &audit)
            .await?;
        Ok(CreatedShop { shop, owner })
    }
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
fn prepare(
    input: NewShopInput<'_>,
    actor: Actor,
    now: crate::domain::clock::Timestamp,
) -> Result<(Shop, User, AuditEvent), ServiceError> {
    let mut errors = Vec::new();
    let name = parse_shop_name(input.name).map_err(|m| errors.push(FieldError::new("name", m)));
    let email =
        Email::parse(input.owner_email).map_err(|m| errors.push(FieldError::new("owner_email", m)));
    let password = input
        .password
        .map_err(|m| errors.push(FieldError::new("password", m)));
    let (Ok(name), Ok(email), Ok(password)) = (name, email, password) else {
        return Err(ServiceError::Validation(errors));
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
    Ok((shop, owner, audit))
}

#[cfg(test)]
mod tests {
    use crate::domain::user::Password;
    use crate::service::ServiceError;
    use crate::service::shops::NewShopInput;
    use crate::service::testing::fixture;

    fn input<'a>(name: &'a str, email: &'a str) -> NewShopInput<'a> {
        NewShopInput {
            name,
            owner_email: email,
            password: Password::parse("a long enough password".into()),
        }
    }

    #[tokio::test]
    async fn a_new_shop_reports_every_bad_field_at_once() {
        let f = fixture().await;
        let bad = NewShopInput {
            name: "  ",
            owner_email: "nope",
            password: Err("the two passwords differ".into()),
        };
        let Err(ServiceError::Validation(errors)) = f.core.shops.create(bad).await else {
            panic!("a shop without a name was made");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "owner_email", "password"]);
    }

    #[tokio::test]
    async fn every_setup_link_works_until_one_creates_the_shop() {
        let (core, _clock, _dir) = crate::service::testing::empty().await;
        let token_of = |link: String| link.split("token=").nth(1).unwrap().to_owned();
        let old = token_of(core.shops.setup_link().await.unwrap());
        let new = token_of(core.shops.setup_link().await.unwrap());
        assert!(core.shops.setup_token_valid(&old).await.unwrap());
        assert!(core.shops.setup_token_valid(&new).await.unwrap());
        assert!(!core.shops.has_shops().await.unwrap());

        let made = core
            .shops
            .complete_setup(&new, input("Fix-It Phones", "owner@fixit.example"))
            .await
            .unwrap();
        assert_eq!(made.owner.role, crate::domain::user::Role::Owner);
        assert!(core.shops.has_shops().await.unwrap());
        let again = core
            .shops
            .complete_setup(&new, input("Second", "second@fixit.example"))
            .await;
        assert!(matches!(again, Err(ServiceError::NotFound)), "{again:?}");
        assert!(!core.shops.setup_token_valid(&new).await.unwrap());
        assert!(
            !core.shops.setup_token_valid(&old).await.unwrap(),
            "the other link ends with the shop"
        );
        assert!(!core.shops.setup_token_valid("").await.unwrap());
    }

    #[tokio::test]
    async fn a_shop_is_found_by_id_and_cached() {
        let f = fixture().await;
        let shop = f.core.shops.get(&f.owner.shop_id).await.unwrap().unwrap();
        assert_eq!(shop.name, "Fix-It Phones");
        assert!(f.core.shops.get("shop_missing").await.unwrap().is_none());
    }
}
