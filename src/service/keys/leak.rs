//! A leaked-key report's effect on one key: found by its keyed hash (the
//! lookup verify uses), in any shop and either environment; flagged, and
//! revoked when the operator says so, through the same store mutation, audit
//! event, feed row and cache eviction as every other key change.

use super::{KeyService, Principal};
use crate::domain::key::{Actor, KeyRecord, Leak};
use crate::domain::permission::PermissionSet;
use crate::domain::token::{self, Presented};
use crate::service::ServiceError;

/// Kept of a reported URL or source, in characters.
const MAX_REPORTED_TEXT: usize = 2000;

/// What a reported token turned out to be.
#[derive(Clone, Debug)]
pub enum LeakOutcome {
    /// Not a latchkey key (malformed, or no such key).
    NotOurs,
    /// A key, changed by this report (flagged, and revoked if asked).
    Recorded(Box<KeyRecord>),
    /// A key this report adds nothing to (reported before).
    AlreadyRecorded,
}

fn bounded(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_REPORTED_TEXT)
        .collect()
}

impl KeyService {
    /// The key a reported token is, if any.
    pub async fn find_reported(&self, token: &str) -> Result<Option<KeyRecord>, ServiceError> {
        let Ok(presented) = token::classify(token) else {
            return Ok(None);
        };
        let hash = self.hasher.hash(presented.secret());
        let Some(key) = self.keys.find_key_by_hash(&hash).await? else {
            return Ok(None);
        };
        if let Presented::Standard { environment, .. } = presented
            && environment != key.environment
        {
            return Ok(None);
        }
        Ok(Some(key))
    }

    /// Records a report that `token` was found at `url` (`source`), and
    /// revokes the key when `revoke`.
    pub async fn report_leaked(
        &self,
        token: &str,
        url: &str,
        source: &str,
        revoke: bool,
        ip: Option<String>,
    ) -> Result<LeakOutcome, ServiceError> {
        let Some(key) = self.find_reported(token).await? else {
            return Ok(LeakOutcome::NotOurs);
        };
        let already_done = key.leaked.is_some() && (!revoke || key.revoked_at.is_some());
        if already_done {
            return Ok(LeakOutcome::AlreadyRecorded);
        }
        let leak = Leak {
            at: self.clock.now(),
            url: bounded(url),
            source: bounded(source),
        };
        let scanner = Principal {
            shop_id: key.shop_id.clone(),
            actor: Actor::SecretScanner,
            permissions: PermissionSet::all(),
            environment: None,
            own_keys_only: false,
            ip,
            restrictions: None,
        };
        let audit = scanner.audit(
            leak.at,
            "key.leaked",
            &key,
            serde_json::json!({
                "url": leak.url,
                "source": leak.source,
                "action": if revoke { "revoked" } else { "flagged" },
            }),
        );
        match self
            .keys
            .mark_key_leaked(&key.id, &leak, revoke, &audit)
            .await?
        {
            Some(changed) => {
                self.cache.evict(&changed.hash);
                Ok(LeakOutcome::Recorded(Box::new(changed)))
            }
            None => Ok(LeakOutcome::AlreadyRecorded),
        }
    }
}
