//! `/settings/test-data`: what the shop's test data holds, and a reset to the
//! sample set (with a confirmation step). Live data is never touched.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::form::FormData;
use super::keys::ConfirmPage;
use super::login::audit_user_event;
use super::session::{Chrome, WebUser, render, see_other, unavailable};
use crate::app::{AppState, Core};
use crate::domain::sample::sample_data;
use crate::domain::token::Environment;
use crate::http::auth::ClientIp;
use crate::store::PageRequest;
use crate::store::resources::{DeviceFilter, ListQuery, OrderFilter, Scope, Sort};

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

/// How many clients, orders and devices the shop's test data holds.
async fn counts(core: &Core, shop_id: &str) -> Result<(u64, u64, u64), Response> {
    let scope = Scope {
        shop_id: shop_id.to_owned(),
        environment: Environment::Test,
    };
    let one = ListQuery {
        page: PageRequest {
            page: 1,
            per_page: 1,
        },
        sort: Sort::CreatedDesc,
        updated_since: None,
        after: None,
    };
    let clients = core.store.list_clients(&scope, None, &one).await;
    let orders = core
        .store
        .list_orders(&scope, &OrderFilter::default(), &one)
        .await;
    let devices = core
        .store
        .list_devices(&scope, &DeviceFilter::default(), &one)
        .await;
    match (clients, orders, devices) {
        (Ok(c), Ok(o), Ok(d)) => Ok((c.total, o.total, d.total)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(unavailable(&e)),
    }
}

async fn show(
    State(core): State<crate::app::CoreRef>,
    user: WebUser,
    query: Result<Query<TestDataQuery>, QueryRejection>,
) -> Response {
    let (clients, orders, devices) = match counts(&core, &user.shop.id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("reset") => "Test data is reset to the sample set.",
        _ => "",
    };
    render(
        StatusCode::OK,
        &TestDataPage {
            chrome: user.chrome("Test data", "test-data"),
            clients,
            orders,
            devices,
            notice: notice.into(),
        },
    )
}

async fn reset(
    State(core): State<crate::app::CoreRef>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    user: WebUser,
    body: Bytes,
) -> Response {
    if !FormData::parse(&body).checked("confirm") {
        return render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: user.chrome("Reset test data", "test-data"),
                heading: "Reset the test data?".into(),
                text: "Every test client, order and device is replaced by the sample set. Live data is not touched.".into(),
                action: "/settings/test-data/reset".into(),
                button: "Reset test data".into(),
                back: "/settings/test-data".into(),
            },
        );
    }
    let sample = sample_data();
    let now = core.clock.now();
    if let Err(e) = core
        .store
        .reset_test_data(&user.shop.id, &sample, now)
        .await
    {
        return unavailable(&e);
    }
    let mut audit = audit_user_event(&core, &user, ip, "test_data.reset", &user.user.id);
    audit.environment = Some(Environment::Test);
    audit.details = serde_json::json!({
        "clients": sample.clients.len(),
        "orders": sample.orders.len(),
        "devices": sample.devices.len(),
    });
    if let Err(e) = core.store.append_audit(&audit).await {
        tracing::warn!(error = %e, "web: could not audit a test-data reset");
    }
    see_other("/settings/test-data?done=reset")
}
