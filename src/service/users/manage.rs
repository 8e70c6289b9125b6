//! The owner manages the shop's users: adds admins and staff (each with a
//! one-time password), changes roles, issues new one-time passwords, removes
//! users (optionally revoking the keys they made). The command line may reset
//! anyone's password, the way back in for an owner who forgot theirs.

use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyRecord, KeyStatus};
use crate::domain::user::{Email, Password, Role};
use crate::domain::{FieldError, new_id, random_base62};
use crate::service::ServiceError;
use crate::service::keys::Principal;
use crate::store::{AuditFilter, PageRequest, StoreError, User};

use super::{Acting, ONE_TIME_SECONDS, UserService, only_owner};

/// A one-time password just issued: shown once, works until `until`.
#[derive(Debug)]
pub struct OneTimePassword {
    pub user: User,
    pub password: String,
    pub until: Timestamp,
}

/// A password easy to read out and type: four groups of five.
fn one_time_password() -> String {
    let raw = random_base62(20);
    raw.as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A one-time password and its argon2id hash.
fn new_one_time() -> Result<(String, String), ServiceError> {
    let password = one_time_password();
    let parsed = Password::parse(password.clone()).map_err(|m| {
        ServiceError::Store(StoreError::Internal(format!(
            "a generated password was refused: {m}"
        )))
    })?;
    Ok((password, parsed.hash()))
}

/// What the owner is told when the email is taken, in this shop or in
/// another: login is by email alone, so an address belongs to one user of one
/// shop, but which shop (or that it is another shop) is never said.
pub const EMAIL_UNAVAILABLE: &str = "This email cannot be used for a new user. \
    Ask the person for another address (for example their address at this shop).";

/// Refused adds of unusable emails a shop may make per hour.
pub const UNAVAILABLE_PER_HOUR: u32 = 5;

/// The roles the owner gives: a shop has exactly one owner.
fn given_role(typed: &str) -> Result<Role, FieldError> {
    match Role::parse(typed) {
        Some(r @ (Role::Admin | Role::Staff)) => Ok(r),
        _ => Err(FieldError::new("role", "Choose admin or staff.")),
    }
}

impl UserService {
    /// Adds an admin or staff user with a one-time password. Every field
    /// problem is reported at once; a taken email is a problem of `email`.
    pub async fn add(
        &self,
        by: Acting<'_>,
        email: &str,
        role: &str,
    ) -> Result<OneTimePassword, ServiceError> {
        only_owner(by.user)?;
        let mut errors = Vec::new();
        let email = Email::parse(email)
            .map_err(|m| errors.push(FieldError::new("email", m)))
            .ok();
        let role = given_role(role).map_err(|e| errors.push(e)).ok();
        let (Some(email), Some(role)) = (email, role) else {
            return Err(ServiceError::Validation(errors));
        };
        let now = self.now();
        if let Some(until) = self.adding_throttled_until(&by.user.shop_id, now).await? {
            return Err(ServiceError::Validation(vec![FieldError::new(
                "email",
                format!(
                    "{UNAVAILABLE_PER_HOUR} emails that cannot be used were tried in the last hour; \
                     try again after {} UTC.",
                    until.to_rfc3339().get(11..16).unwrap_or("an hour")
                ),
            )]));
        }
        let (password, hash) = new_one_time()?;
        let user = User {
            id: new_id("usr"),
            shop_id: by.user.shop_id.clone(),
            email,
            role,
            password_hash: hash,
            created_at: now,
        };
        let until = now.plus_seconds(ONE_TIME_SECONDS);
        let audit = self.event_by(
            by,
            "user.added",
            serde_json::json!({"user_id": user.id, "email": user.email, "role": role.as_str()}),
        );
        match self.users.insert_user(&user, Some(until), &audit).await {
            Ok(()) => Ok(OneTimePassword {
                user,
                password,
                until,
            }),
            Err(StoreError::Conflict(_)) => {
                // The same answer whether the address is a user of this shop
                // or of another: the other shop is never named, and the
                // refusal is audited and counted (see `adding_throttled_until`).
                let refused = self.event_by(
                    by,
                    "user.add_refused",
                    serde_json::json!({"email": user.email, "reason": "email_unavailable"}),
                );
                self.audit.append_audit(&refused).await?;
                Err(ServiceError::Validation(vec![FieldError::new(
                    "email",
                    EMAIL_UNAVAILABLE,
                )]))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Until when adding users is refused: after [`UNAVAILABLE_PER_HOUR`]
    /// refusals of unusable emails within an hour, every add is refused (a
    /// free email too, or the throttle itself would tell which addresses are
    /// taken) until the oldest of them is an hour old. Counted from the
    /// shop's audit log, so it holds across restarts and instances.
    async fn adding_throttled_until(
        &self,
        shop_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, ServiceError> {
        let recent = self
            .audit
            .list_audit_events(
                shop_id,
                &AuditFilter {
                    action: Some("user.add_refused".into()),
                    ..AuditFilter::default()
                },
                PageRequest {
                    page: 1,
                    per_page: UNAVAILABLE_PER_HOUR,
                },
            )
            .await?;
        let hour_ago = now.plus_seconds(-3600);
        let in_hour: Vec<Timestamp> = recent
            .items
            .iter()
            .map(|e| e.at)
            .filter(|at| *at > hour_ago)
            .collect();
        Ok((in_hour.len() >= UNAVAILABLE_PER_HOUR as usize)
            .then(|| in_hour.iter().min().map(|t| t.plus_seconds(3600)))
            .flatten())
    }

    /// A user of the owner's shop other than the owner: the ones the owner
    /// changes. `NotFound` for no such user; `Refused` for the owner.
    pub async fn manageable(&self, by: &User, id: &str) -> Result<User, ServiceError> {
        only_owner(by)?;
        match self.users.get_shop_user(&by.shop_id, id).await? {
            Some(u) if u.role != Role::Owner => Ok(u),
            Some(_) => Err(ServiceError::Refused(
                "The owner's role stays, and the owner cannot be removed.".into(),
            )),
            None => Err(ServiceError::NotFound),
        }
    }

    /// Changes a user's role to admin or staff; `Ok(false)` when it already
    /// was that role (nothing written).
    pub async fn change_role(
        &self,
        by: Acting<'_>,
        id: &str,
        role: &str,
    ) -> Result<bool, ServiceError> {
        let who = self.manageable(by.user, id).await?;
        let role = given_role(role).map_err(|e| ServiceError::Validation(vec![e]))?;
        if role == who.role {
            return Ok(false);
        }
        let audit = self.event_by(
            by,
            "user.role_changed",
            serde_json::json!({"user_id": who.id, "email": who.email, "role": {"from": who.role.as_str(), "to": role.as_str()}}),
        );
        self.users
            .set_user_role(&who.shop_id, &who.id, role, self.now(), &audit)
            .await?;
        Ok(true)
    }

    /// Gives a user a new one-time password; their sessions end.
    pub async fn reset_password(
        &self,
        by: Acting<'_>,
        id: &str,
    ) -> Result<OneTimePassword, ServiceError> {
        let who = self.manageable(by.user, id).await?;
        let audit = self.event_by(
            by,
            "user.password_reset",
            serde_json::json!({"user_id": who.id, "email": who.email}),
        );
        self.issue_one_time(who, &audit).await
    }

    /// The command line's reset (`latchkey users reset-password`): any user,
    /// the owner too, found by email.
    pub async fn reset_password_by_email(
        &self,
        email: &str,
    ) -> Result<OneTimePassword, ServiceError> {
        let email = Email::parse(email)
            .map_err(|m| ServiceError::Validation(vec![FieldError::new("email", m)]))?;
        let who = self
            .users
            .find_user_by_email(&email)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let audit = self.event(
            &who.shop_id,
            Actor::Cli,
            None,
            "user.password_reset",
            serde_json::json!({"user_id": who.id, "email": who.email}),
        );
        self.issue_one_time(who, &audit).await
    }

    async fn issue_one_time(
        &self,
        who: User,
        audit: &crate::store::AuditEvent,
    ) -> Result<OneTimePassword, ServiceError> {
        let (password, hash) = new_one_time()?;
        let until = self.now().plus_seconds(ONE_TIME_SECONDS);
        self.users
            .set_password(&who.shop_id, &who.id, &hash, Some(until), None, audit)
            .await?;
        Ok(OneTimePassword {
            user: who,
            password,
            until,
        })
    }

    /// A user the owner may remove, and the keys they made that still work
    /// (what the removal offers to revoke).
    pub async fn removal(
        &self,
        by: Acting<'_>,
        id: &str,
    ) -> Result<(User, Vec<KeyRecord>), ServiceError> {
        let who = self.manageable(by.user, id).await?;
        let keys = self.active_keys_of(by, &who).await?;
        Ok((who, keys))
    }

    async fn active_keys_of(
        &self,
        by: Acting<'_>,
        who: &User,
    ) -> Result<Vec<KeyRecord>, ServiceError> {
        let author = Actor::User(who.id.clone());
        Ok(self
            .keys
            .list_all(&Principal::user(by.user, by.ip))
            .await?
            .into_iter()
            .filter(|k| k.created_by == author && self.keys.status_of(k) == KeyStatus::Active)
            .collect())
    }

    /// Removes a user and ends their sessions; with `revoke_keys`, first
    /// revokes the keys they made that still work (if one cannot be revoked,
    /// the user stays). Returns how many keys were revoked. Removing a user
    /// already gone succeeds.
    pub async fn remove(
        &self,
        by: Acting<'_>,
        id: &str,
        revoke_keys: bool,
    ) -> Result<usize, ServiceError> {
        let (who, keys) = self.removal(by, id).await?;
        let mut revoked = 0;
        if revoke_keys {
            let principal = Principal::user(by.user, by.ip);
            for k in &keys {
                match self.keys.revoke_key(&principal, &k.id, false).await {
                    Ok(_) => revoked += 1,
                    // Deleted meanwhile: nothing left to revoke.
                    Err(ServiceError::NotFound) => {}
                    Err(e) => {
                        tracing::error!(key_id = %k.id, error = %e, "could not revoke a removed user's key");
                        return Err(e);
                    }
                }
            }
        }
        let audit = self.event_by(
            by,
            "user.removed",
            serde_json::json!({
                "user_id": who.id,
                "email": who.email,
                "keys_revoked": if revoke_keys { keys.len() } else { 0 },
            }),
        );
        match self.users.delete_user(&who.shop_id, &who.id, &audit).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(revoked),
            Err(e) => Err(e.into()),
        }
    }
}
