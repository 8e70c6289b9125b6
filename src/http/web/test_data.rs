//! `/settings/test-data`: what the shop's test data holds, and a reset to the
//! sample set (with a confirmation step). Live data is never touched.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::confirm::{self, Question};
use super::form::FormData;
use super::session::{Chrome, WebUser, render, see_other, unavailable};
use crate::app::AppState;
use crate::http::auth::ClientIp;
use crate::service::ServiceError;
use crate::service::resources::{ResetBy, ResourceService};
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/test-data", get(show))
        .route("/settings/test-data/reset", post(reset))
}

#[derive(Template)]
#[template(path = "test_data.html")]
struct TestDataPage {
    chrome: Chrome,
    clients: u64,
    orders: u64,
    devices: u64,
    notice: String,
}

#[derive(Deserialize, Default)]
struct TestDataQuery {
    done: Option<String>,
}

/// The page for a failure: a reset by a signed-in user has no rule to break,
/// so anything but the database failing is unexpected.
fn failed(e: ServiceError) -> Response {
    match e {
        ServiceError::Store(e) => unavailable(&e),
        other => unavailable(&StoreError::Internal(other.to_string())),
    }
}

async fn show(
    State(resources): State<Arc<ResourceService>>,
    user: WebUser,
    query: Result<Query<TestDataQuery>, QueryRejection>,
) -> Response {
    let counts = match resources.test_data_counts(&user.shop.id).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("reset") => "Test data is reset to the sample set.",
        _ => "",
    };
    render(
        StatusCode::OK,
        &TestDataPage {
            chrome: user.chrome("Test data", "test-data"),
            clients: counts.clients,
            orders: counts.orders,
            devices: counts.devices,
            notice: notice.into(),
        },
    )
}

async fn reset(
    State(resources): State<Arc<ResourceService>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    body: Bytes,
) -> Response {
    if !FormData::parse(&body).checked("confirm") {
        return confirm::ask(
            &user,
            "test-data",
            Question {
                button: "Reset test data",
                heading: "Reset the test data?".into(),
                text: "Every test client, order and device is replaced by the sample set. Live data is not touched.",
                action: "/settings/test-data/reset".into(),
                back: "/settings/test-data".into(),
            },
        );
    }
    let by = ResetBy::User {
        shop_id: &user.shop.id,
        user_id: &user.user.id,
        ip,
    };
    match resources.reset_test_data(by).await {
        Ok(_) => see_other("/settings/test-data?done=reset"),
        Err(e) => failed(e),
    }
}
