//! Logging in and choosing one's own password.
//!
//! A wrong email and a wrong password get the same answer after the same work
//! (an unknown email is checked against a dummy hash), so logging in does not
//! tell who has an account. Throttling failed logins is the surface's part for
//! now (in memory, per instance).

use std::net::IpAddr;
use std::sync::LazyLock;

use crate::domain::FieldError;
use crate::domain::key::Actor;
use crate::domain::user::{Email, Password};
use crate::service::ServiceError;
use crate::store::User;

use super::{Acting, UserService};

/// Verified against when the email is unknown, so that answer takes as long.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(
        || match Password::parse("not a real password, only for timing".into()) {
            Ok(p) => p.hash(),
            Err(_) => String::new(),
        },
    );

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A session started: `token` goes into the session cookie.
    LoggedIn { user: User, token: String },
    /// No account with this email and password (which one is wrong is not said).
    WrongCredentials,
    /// The right one-time password, but too late.
    OneTimeExpired,
}

/// Checks `candidate` against a stored hash off the async threads (argon2
/// takes tens of milliseconds).
async fn verify(candidate: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || Password::verify(&candidate, &hash))
        .await
        .unwrap_or(false)
}

impl UserService {
    /// Checks an email and password and starts a session, auditing the login.
    pub async fn login(
        &self,
        typed_email: &str,
        password: String,
        ip: IpAddr,
    ) -> Result<LoginOutcome, ServiceError> {
        let user = match Email::parse(typed_email) {
            Ok(email) => self.users.find_user_by_email(&email).await?,
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
        let verified = verify(password, hash).await;
        let Some(user) = user.filter(|_| verified) else {
            return Ok(LoginOutcome::WrongCredentials);
        };
        if let Some(expiry) = self.users.one_time_password_expiry(&user.id).await?
            && expiry <= self.now()
        {
            return Ok(LoginOutcome::OneTimeExpired);
        }
        let token = self.start_session(&user, ip).await?;
        let audit = self.event(
            &user.shop_id,
            Actor::User(user.id.clone()),
            Some(ip),
            "user.logged_in",
            serde_json::json!({"email": user.email}),
        );
        if let Err(e) = self.audit.append_audit(&audit).await {
            tracing::warn!(error = %e, "could not audit a login");
        }
        tracing::info!(user_id = %user.id, "logged in");
        Ok(LoginOutcome::LoggedIn { user, token })
    }

    /// Whether the user holds a one-time password and must choose their own
    /// before anything else.
    pub async fn must_change_password(&self, user: &User) -> Result<bool, ServiceError> {
        Ok(self
            .users
            .one_time_password_expiry(&user.id)
            .await?
            .is_some())
    }

    /// The user chooses a new password. The current one is asked for unless
    /// they logged in with a one-time password; every other session of theirs
    /// ends. Every problem is reported at once, by field.
    pub async fn change_own_password(
        &self,
        by: Acting<'_>,
        keep_session: &[u8; 32],
        current: &str,
        new: &str,
        confirm: &str,
    ) -> Result<(), ServiceError> {
        let forced = self.must_change_password(by.user).await?;
        let mut errors = Vec::new();
        if !forced && !verify(current.to_owned(), by.user.password_hash.clone()).await {
            errors.push(FieldError::new(
                "current_password",
                "this is not your current password",
            ));
        }
        let password = match Password::parse(new.to_owned()) {
            Ok(_) if new != confirm => {
                errors.push(FieldError::new(
                    "password_confirm",
                    "the two passwords differ",
                ));
                None
            }
            Ok(_) if verify(new.to_owned(), by.user.password_hash.clone()).await => {
                errors.push(FieldError::new(
                    "password",
                    "choose a password different from the current one",
                ));
                None
            }
            Ok(p) => Some(p),
            Err(m) => {
                errors.push(FieldError::new("password", m));
                None
            }
        };
        let Some(password) = password.filter(|_| errors.is_empty()) else {
            return Err(ServiceError::Validation(errors));
        };
        let hash = tokio::task::spawn_blocking(move || password.hash())
            .await
            .map_err(|e| {
                ServiceError::Store(crate::store::StoreError::Internal(format!(
                    "hashing a password failed: {e}"
                )))
            })?;
        let audit = self.event_by(
            by,
            "user.password_changed",
            serde_json::json!({ "user_id": by.user.id }),
        );
        self.users
            .set_password(
                &by.user.shop_id,
                &by.user.id,
                &hash,
                None,
                Some(keep_session),
                &audit,
            )
            .await?;
        Ok(())
    }
}
