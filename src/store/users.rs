//! Users of the web UI and their login sessions. Every method that names a
//! user by id also takes the shop, so no path can reach another shop's users.

use async_trait::async_trait;

use super::{AuditEvent, StoreResult, User};
use crate::domain::clock::Timestamp;
use crate::domain::user::Email;
use crate::domain::user::Role;

/// A login session. The browser holds a random value; only its keyed hash is
/// stored.
#[derive(Clone, Debug)]
pub struct Session {
    pub token_hash: [u8; 32],
    pub user_id: String,
    pub shop_id: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// Idle expiry; moved forward as the session is used.
    pub expires_at: Timestamp,
    pub ip: Option<String>,
}

/// A live session with its user, as one lookup finds them.
#[derive(Clone, Debug)]
pub struct SessionUser {
    pub session: Session,
    pub user: User,
    /// The user logged in with a one-time password and must choose their own.
    pub must_change_password: bool,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;
    /// The shop's users, oldest first.
    async fn list_users(&self, shop_id: &str) -> StoreResult<Vec<User>>;
    /// A user of `shop_id`; another shop's user is `None`.
    async fn get_shop_user(&self, shop_id: &str, id: &str) -> StoreResult<Option<User>>;
    /// Adds a user whose password is one-time until `one_time_until` (when
    /// given). `Conflict` when the email is taken (by a user of any shop).
    async fn insert_user(
        &self,
        user: &User,
        one_time_until: Option<Timestamp>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Changes a user's role and returns the user as it now is.
    async fn set_user_role(
        &self,
        shop_id: &str,
        id: &str,
        role: Role,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<User>;
    /// Replaces a user's password. With `one_time_until` the new password is
    /// one-time (an owner's reset); without, any one-time mark is cleared (the
    /// user chose it). Every session of the user except `keep_session` ends.
    /// The change is dated `audit.at`.
    async fn set_password(
        &self,
        shop_id: &str,
        id: &str,
        password_hash: &str,
        one_time_until: Option<Timestamp>,
        keep_session: Option<&[u8; 32]>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// When a user's one-time password stops working, if they hold one.
    async fn one_time_password_expiry(&self, user_id: &str) -> StoreResult<Option<Timestamp>>;
    /// Removes a user and ends their sessions. Keys they created stay (their
    /// `created_by` keeps the id); revoking them is the caller's choice.
    async fn delete_user(&self, shop_id: &str, id: &str, audit: &AuditEvent) -> StoreResult<()>;

    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// The session with this hash and its user, if the session has not expired
    /// at `now`.
    async fn find_session(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<SessionUser>>;
    /// Records use of a session and moves its idle expiry.
    async fn touch_session(
        &self,
        token_hash: &[u8; 32],
        at: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    async fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()>;
    /// Drops sessions that expired before `before`.
    async fn prune_sessions(&self, before: Timestamp) -> StoreResult<u64>;
}
