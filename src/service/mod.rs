//! Services: every rule and every audit event, in one place, between the
//! surfaces (the JSON API, the web UI, the CLI) and the adapters (stores,
//! limiters). A service holds only the ports it uses; surfaces call services
//! and never a store.

pub mod audit;
pub mod idempotency;
pub mod keys;
pub mod leaks;
pub mod resources;
pub mod shops;
pub mod users;

#[cfg(test)]
pub(crate) mod testing;

use crate::domain::FieldError;
use crate::domain::permission::Permission;
use crate::store::StoreError;

/// A service's answer when it refuses or fails. Each surface maps it to its own
/// form (problem+json, an HTML message, a CLI line) in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("not found")]
    NotFound,
    #[error("{detail}")]
    Forbidden {
        permission: Permission,
        detail: String,
    },
    /// Not allowed whatever permissions the caller holds (a live key asking
    /// to reset test data): no permission to name, nothing to grant.
    #[error("{0}")]
    Refused(String),
    /// A key tried to free itself or another key of its own restrictions
    /// (allowed IPs, expiry, rate limit); `field` names the one.
    #[error("{detail}")]
    NotInherited { field: &'static str, detail: String },
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Store(other),
        }
    }
}
