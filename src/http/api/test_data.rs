//! `POST /api/v1/test-data/reset`: replace the shop's test data with the
//! sample set. Test keys only.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::permission::Permission;
use crate::domain::sample::sample_data;
use crate::domain::token::Environment;
use crate::http::auth::{Authorized, need};
use crate::http::error::ApiError;

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

/// Reset test data to the sample set.
///
/// Needs a test key (`lk_test_…`) with `orders:write`, `clients:write` or
/// `devices:write`. Live data is never touched; a live key gets 403.
#[utoipa::path(post, path = "/test-data/reset", tag = "Test data", operation_id = "resetTestData",
    security(("bearer" = ["orders:write"]), ("bearer" = ["clients:write"]), ("bearer" = ["devices:write"])),
    responses((status = 200, description = "The test data now holds the sample set", body = ResetResponse)))]
async fn reset(
    State(core): State<crate::app::CoreRef>,
    Authorized(caller, ..): Authorized<need::AnyKey>,
) -> Result<Json<ResetResponse>, ApiError> {
    if caller.key.environment != Environment::Test {
        let mut e = ApiError::insufficient_permission(
            Permission::OrdersWrite,
            "Test data can only be reset with a test key (lk_test_…); live data is never reset.",
        );
        e.extra.remove("required_permission");
        return Err(e);
    }
    let perms = caller.key.permissions;
    if ![
        Permission::OrdersWrite,
        Permission::ClientsWrite,
        Permission::DevicesWrite,
    ]
    .iter()
    .any(|p| perms.contains(*p))
    {
        return Err(ApiError::insufficient_permission(
            Permission::OrdersWrite,
            "Resetting test data needs orders:write, clients:write or devices:write.",
        ));
    }
    let sample = sample_data();
    core.store
        .reset_test_data(&caller.key.shop_id, &sample, core.clock.now())
        .await?;
    Ok(Json(ResetResponse {
        test_data: ResetSummary {
            clients: sample.clients.len(),
            orders: sample.orders.len(),
            devices: sample.devices.len(),
        },
    }))
}
