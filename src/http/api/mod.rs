//! The JSON API under `/api/v1`, one file per resource, each with its
//! `router()`. The permission each route needs is in one table,
//! [`permissions::OPERATIONS`], which the key middleware enforces and the
//! OpenAPI document's `security` entries are made from.

pub mod audit;
pub mod clients;
pub mod common;
pub mod devices;
pub mod health;
pub mod keys;
pub mod me;
pub mod orders;
pub mod paging;
pub mod permissions;
pub mod repairshopr;
pub mod test_data;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::http::error::ApiError;

/// A path id. Ids are opaque: one that does not parse names nothing, so it is
/// 404 like any other unknown id.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|_| ApiError::not_found())
    }
}
