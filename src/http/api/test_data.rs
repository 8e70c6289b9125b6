//! `POST /api/v1/test-data/reset`: replace the shop's test data with the
//! sample set. Test keys only.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::scope;
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::service::resources::{DataCounts, ResetBy, ResourceService};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reset))
}

#[derive(Serialize, ToSchema)]
pub struct ResetSummary {
    pub clients: usize,
    pub orders: usize,
    pub devices: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ResetResponse {
    pub test_data: ResetSummary,
}

impl From<DataCounts> for ResetSummary {
    fn from(c: DataCounts) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        ResetSummary {
            clients: size(c.clients),
            orders: size(c.orders),
            devices: size(c.devices),
        }
    }
}

/// Reset test data to the sample set.
///
/// Needs a test key (`lk_test_…`) with `orders:write`, `clients:write` or
/// `devices:write`. Live data is never touched; a live key gets 403.
#[utoipa::path(post, path = "/test-data/reset", tag = "Test data", operation_id = "resetTestData",
    responses((status = 200, description = "The test data now holds the sample set", body = ResetResponse)))]
async fn reset(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
) -> Result<Json<ResetResponse>, ApiError> {
    let counts = resources
        .reset_test_data(ResetBy::Key {
            scope: &scope(&caller),
            permissions: caller.key.permissions,
        })
        .await?;
    Ok(Json(ResetResponse {
        test_data: counts.into(),
    }))
}
