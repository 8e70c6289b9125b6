//! Login sessions. The browser holds 32 random base62 characters; the store
//! keeps only their keyed hash, so sessions survive a restart and a copy of
//! the database opens none.

use std::net::IpAddr;

use crate::domain::random_base62;
use crate::service::ServiceError;
use crate::store::User;
use crate::store::users::{Session, SessionUser};

use super::UserService;

/// A session ends after this long unused…
pub const IDLE_SECONDS: i64 = 12 * 3600;
/// …and at the latest this long after login.
pub const MAX_AGE_SECONDS: i64 = 7 * 24 * 3600;
/// Use of a session is written down at most this often.
const TOUCH_EVERY_SECONDS: i64 = 300;

impl UserService {
    /// Starts a session for `user` and returns its token (for the cookie).
    pub async fn start_session(&self, user: &User, ip: IpAddr) -> Result<String, ServiceError> {
        let token = random_base62(32);
        let now = self.now();
        self.users
            .create_session(&Session {
                token_hash: self.hasher.hash(&token),
                user_id: user.id.clone(),
                shop_id: user.shop_id.clone(),
                created_at: now,
                last_seen_at: now,
                expires_at: now.plus_seconds(IDLE_SECONDS),
                ip: Some(ip.to_string()),
            })
            .await?;
        Ok(token)
    }

    /// The live session holding `token`, and its user. Use moves the idle
    /// expiry forward (written at most every few minutes, never past the
    /// session's maximum age).
    pub async fn session(&self, token: &str) -> Result<Option<SessionUser>, ServiceError> {
        let hash = self.hasher.hash(token);
        let now = self.now();
        let Some(found) = self.users.find_session(&hash, now).await? else {
            return Ok(None);
        };
        let session = &found.session;
        if now.as_micros() - session.last_seen_at.as_micros() > TOUCH_EVERY_SECONDS * 1_000_000 {
            let limit = session.created_at.plus_seconds(MAX_AGE_SECONDS);
            let expires = now.plus_seconds(IDLE_SECONDS).min(limit);
            if let Err(e) = self.users.touch_session(&hash, now, expires).await {
                tracing::warn!(error = %e, "could not record session use");
            }
        }
        Ok(Some(found))
    }

    /// Ends the session holding `token` (logging out).
    pub async fn end_session(&self, token: &str) -> Result<(), ServiceError> {
        Ok(self.users.delete_session(&self.hasher.hash(token)).await?)
    }
}
