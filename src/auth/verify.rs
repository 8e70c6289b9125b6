//! The path every keyed request takes, in the documented order (docs/ERRORS.md):
//! extract → parse → hash → cache/lookup → status (revoked, expired,
//! retired, paused) → allowed IPs
//! (then rate limit and permission, in the HTTP layer).

use std::net::IpAddr;
use std::sync::Arc;

use crate::app::Core;
use crate::domain::key::{KeyKind, KeyRecord, KeyStatus};
use crate::domain::token::{self, Malformed, Presented};
use crate::store::StoreError;

use super::cache::Cached;

/// Where the key came from. Only legacy keys may arrive in the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    Header,
    Query,
}

/// Why a request was not let through. Each maps to one error code of docs/ERRORS.md.
#[derive(Clone, Debug)]
pub enum AuthError {
    Missing,
    Malformed(Malformed),
    /// Both headers were sent with different values.
    Ambiguous,
    /// A bad `Authorization` scheme (e.g. `Basic`) or inner whitespace.
    BadScheme,
    /// A standard key in `?api_key=`; carries the key when it exists, so the
    /// caller can record the warning on it.
    KeyInUrl(Option<Arc<KeyRecord>>),
    Invalid,
    Revoked(Arc<KeyRecord>),
    Expired(Arc<KeyRecord>),
    Retired(Arc<KeyRecord>),
    /// Paused by the shop: 403, not 401, so an integration keeps its settings.
    Paused(Arc<KeyRecord>),
    /// A legacy key during a brownout window: it fails as if retired, with
    /// the real cut-off in the answer.
    Brownout(Arc<KeyRecord>, crate::domain::clock::Timestamp),
    IpNotAllowed(Arc<KeyRecord>, IpAddr),
    Unavailable(String),
}

impl AuthError {
    /// Failed attempts count against the client IP; a known key never does.
    pub fn is_failed_attempt(&self) -> bool {
        matches!(
            self,
            AuthError::Missing
                | AuthError::Malformed(_)
                | AuthError::Ambiguous
                | AuthError::BadScheme
                | AuthError::KeyInUrl(None)
                | AuthError::Invalid
        )
    }
}

impl Core {
    /// Finds the key a presented value names: cache first, then one indexed
    /// lookup by hash, remembered either way.
    pub async fn lookup(
        &self,
        presented: Presented<'_>,
    ) -> Result<Option<Arc<KeyRecord>>, AuthError> {
        let hash = self.hasher.hash(presented.secret());
        match self.cache.get(&hash) {
            Cached::Known(key) => Ok(Some(key)),
            Cached::Unknown => Ok(None),
            Cached::Miss(epoch) => {
                let found = self
                    .store
                    .find_key_by_hash(&hash)
                    .await
                    .map_err(|e| match e {
                        StoreError::Unavailable(m) => AuthError::Unavailable(m),
                        other => AuthError::Unavailable(other.to_string()),
                    })?;
                let found = found.map(Arc::new);
                self.cache.fill(hash, found.clone(), epoch);
                Ok(found)
            }
        }
    }

    /// Verifies a presented key value for a request from `client_ip`.
    pub async fn verify(
        &self,
        value: &str,
        source: KeySource,
        client_ip: IpAddr,
    ) -> Result<Arc<KeyRecord>, AuthError> {
        let presented = token::classify(value).map_err(AuthError::Malformed)?;
        if source == KeySource::Query
            && let Presented::Standard { .. } = presented
        {
            // Look it up only to warn its owner; the request fails either way.
            let found = self.lookup(presented).await.ok().flatten();
            return Err(AuthError::KeyInUrl(found));
        }
        let key = self.lookup(presented).await?.ok_or(AuthError::Invalid)?;
        // A standard key's environment is in its prefix; the stored record must
        // agree (it always does unless the database was edited by hand).
        if let Presented::Standard { environment, .. } = presented
            && environment != key.environment
        {
            return Err(AuthError::Invalid);
        }
        let now = self.clock.now();
        match key.status(now, self.policy.legacy_sunset) {
            KeyStatus::Active if key.kind == KeyKind::Legacy && self.policy.in_brownout(now) => {
                return Err(AuthError::Brownout(key, self.policy.legacy_sunset));
            }
            KeyStatus::Active => {}
            KeyStatus::Revoked => return Err(AuthError::Revoked(key)),
            KeyStatus::Expired => return Err(AuthError::Expired(key)),
            KeyStatus::Retired => return Err(AuthError::Retired(key)),
            KeyStatus::Paused => return Err(AuthError::Paused(key)),
        }
        if !key.allowed_ips.allows(client_ip) {
            return Err(AuthError::IpNotAllowed(key, client_ip));
        }
        Ok(key)
    }
}
