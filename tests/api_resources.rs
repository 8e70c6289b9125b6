//! Black-box HTTP tests of the repair-shop resources under `/api/v1`:
//! clients, orders, devices and the test-data reset. Everything goes through
//! the router; nothing reads the store directly.
mod common;

use std::collections::{BTreeSet, HashSet};

use axum::body::Body;
use axum::http::Request;
use common::{TestApp, TestResponse, assert_problem};
use latchkey::service::keys::NewKeyInput;
use serde_json::{Value, json};

/// Every resource permission docs/KEYS.md names.
const RESOURCE_PERMISSIONS: &[&str] = &[
    "orders:read",
    "orders:write",
    "orders:delete",
    "clients:read",
    "clients:write",
    "clients:delete",
    "devices:read",
    "devices:write",
    "devices:delete",
];

/// A valid IMEI (15 digits, Luhn holds).
const IMEI: &str = "490154203237518";
/// Another valid IMEI.
const IMEI_2: &str = "356938035643809";

// ---------------------------------------------------------------------------
// Helpers

/// A key of `shop_id` in `environment` holding `permissions`, with a rate
/// limit high enough that no test here is throttled; returns the secret.
async fn key_for(app: &TestApp, shop_id: &str, environment: &str, permissions: &[&str]) -> String {
    app.key_with(
        shop_id,
        NewKeyInput {
            name: Some(format!("Resource tests ({environment})")),
            permissions: Some(permissions.iter().map(|p| p.to_string()).collect()),
            environment: Some(environment.into()),
            rate_limit_per_minute: Some(10_000),
            ..Default::default()
        },
    )
    .await
    .1
}

/// A key with every resource permission.
async fn full_key(app: &TestApp, shop_id: &str, environment: &str) -> String {
    key_for(app, shop_id, environment, RESOURCE_PERMISSIONS).await
}

/// A live key of the default shop with every resource permission.
async fn live_key(app: &TestApp) -> String {
    full_key(app, &app.shop_id.clone(), "live").await
}

/// Sends a request with a key, extra headers and an optional (content type, body).
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> TestResponse {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = match body {
        Some((content_type, bytes)) => req
            .header("content-type", content_type)
            .body(Body::from(bytes))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    app.send(req).await
}

/// POST with JSON and extra headers (e.g. `Idempotency-Key`).
async fn post_with(
    app: &TestApp,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> TestResponse {
    send(
        app,
        "POST",
        path,
        key,
        headers,
        Some(("application/json", serde_json::to_vec(body).unwrap())),
    )
    .await
}

fn assert_not_found(r: &TestResponse) {
    assert_problem(r, 404, "not_found");
}

/// The `field`s of a `validation_failed` answer.
fn error_fields(r: &TestResponse) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no `errors` list: {}", r.text))
        .iter()
        .map(|e| {
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{}",
                r.text
            );
            e["field"].as_str().expect("field is a string").to_owned()
        })
        .collect()
}

/// 422 `validation_failed` whose errors name `field`.
fn assert_validation(r: &TestResponse, field: &str) {
    assert_problem(r, 422, "validation_failed");
    let fields = error_fields(r);
    assert!(
        fields.iter().any(|f| f == field),
        "expected an error for `{field}`: {}",
        r.text
    );
}

/// The `id`s of a list answer's items, under `name`.
fn ids(r: &TestResponse, name: &str) -> Vec<String> {
    r.body[name]
        .as_array()
        .unwrap_or_else(|| panic!("no `{name}` list: {}", r.text))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {v}"))
        .to_owned()
}

/// `GET path` → 200; returns the answer.
async fn get_ok(app: &TestApp, path: &str, key: &str) -> TestResponse {
    let r = app.get(path, key).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r
}

/// `meta.total_entries` of a list (`clients`, `orders`, `devices`).
async fn total(app: &TestApp, key: &str, list: &str) -> u64 {
    let r = get_ok(app, &format!("/api/v1/{list}?per_page=1"), key).await;
    r.body["meta"]["total_entries"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total_entries: {}", r.text))
}

/// (clients, orders, devices) the key can see.
async fn counts(app: &TestApp, key: &str) -> (u64, u64, u64) {
    (
        total(app, key, "clients").await,
        total(app, key, "orders").await,
        total(app, key, "devices").await,
    )
}

async fn create_client(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/api/v1/clients", key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["client"].clone()
}

async fn create_order(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/api/v1/orders", key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["order"].clone()
}

async fn create_device(app: &TestApp, key: &str, order_id: &str, body: Value) -> Value {
    let r = app
        .post(&format!("/api/v1/orders/{order_id}/devices"), key, body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["device"].clone()
}

/// A client, an order for it and a device on the order; returns their ids.
async fn client_order_device(app: &TestApp, key: &str) -> (String, String, String) {
    let client = create_client(app, key, json!({"first_name": "Sam"})).await;
    let order = create_order(app, key, json!({"client_id": id_of(&client)})).await;
    let device = create_device(app, key, &id_of(&order), json!({"device_type": "phone"})).await;
    (id_of(&client), id_of(&order), id_of(&device))
}

/// Every member of `sent` is in `got` with the same value.
fn assert_has_fields(got: &Value, sent: &Value) {
    for (k, v) in sent.as_object().unwrap() {
        assert_eq!(&got[k], v, "field `{k}` of {got}");
    }
}

/// Percent-encodes everything but unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `RM-10042` → 10042.
fn reference_number(order: &Value) -> u64 {
    let r = order["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{order}"));
    r.strip_prefix("RM-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an RM- reference: {r}"))
}

// ---------------------------------------------------------------------------
// Clients: CRUD

#[tokio::test]
async fn a_client_is_created_with_every_field_then_read_listed_patched_and_deleted() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let sent = json!({
        "first_name": "Sam",
        "last_name": "Patel",
        "business_name": "Patel Lettings Ltd",
        "email": "sam@example.com",
        "phone": "+44 20 7946 0958",
        "address": "1 High Street",
        "city": "London",
        "postcode": "E1 6AN",
        "country": "GB",
        "notes": "Prefers email",
    });
    let r = app.post("/api/v1/clients", &key, sent.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let client = r.body["client"].clone();
    assert_has_fields(&client, &sent);
    let id = id_of(&client);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/clients/{id}").as_str())
    );
    assert!(client["created_at"].is_string() && client["updated_at"].is_string());
    assert_eq!(client["created_at"], client["updated_at"]);

    // GET one, at the Location.
    let r = get_ok(&app, r.header("location").unwrap(), &key).await;
    assert_eq!(r.body, json!({ "client": client }));

    // The list envelope.
    let r = get_ok(&app, "/api/v1/clients", &key).await;
    assert_eq!(r.body["clients"], json!([client]));
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 25, "total_pages": 1, "total_entries": 1})
    );

    // PATCH as merge-patch: absent keeps, null clears, a value sets.
    app.clock.advance_seconds(60);
    let r = send(
        &app,
        "PATCH",
        &format!("/api/v1/clients/{id}"),
        &key,
        &[],
        Some((
            "application/merge-patch+json",
            serde_json::to_vec(&json!({"phone": "+44 161 496 0000", "notes": null})).unwrap(),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let patched = r.body["client"].clone();
    assert_eq!(patched["phone"], "+44 161 496 0000");
    assert_eq!(patched["notes"], Value::Null);
    for field in [
        "first_name",
        "last_name",
        "business_name",
        "email",
        "address",
        "city",
        "postcode",
        "country",
    ] {
        assert_eq!(patched[field], sent[field], "{field} is kept");
    }
    assert_eq!(patched["id"], client["id"]);
    assert_eq!(patched["created_at"], client["created_at"]);
    assert_ne!(patched["updated_at"], client["updated_at"]);
    let r = get_ok(&app, &format!("/api/v1/clients/{id}"), &key).await;
    assert_eq!(r.body["client"], patched);

    // application/json is accepted for PATCH too.
    let r = app
        .patch(
            &format!("/api/v1/clients/{id}"),
            &key,
            json!({"city": "Manchester", "business_name": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["client"]["city"], "Manchester");
    assert_eq!(r.body["client"]["business_name"], Value::Null);
    assert_eq!(r.body["client"]["phone"], "+44 161 496 0000");

    // DELETE, then it is gone.
    let r = app.delete(&format!("/api/v1/clients/{id}"), &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    assert_not_found(&app.get(&format!("/api/v1/clients/{id}"), &key).await);
    assert_not_found(&app.delete(&format!("/api/v1/clients/{id}"), &key).await);
    assert_not_found(
        &app.patch(
            &format!("/api/v1/clients/{id}"),
            &key,
            json!({"notes": "x"}),
        )
        .await,
    );
    assert_eq!(total(&app, &key, "clients").await, 0);
}

#[tokio::test]
async fn a_patch_that_would_leave_a_client_without_name_email_or_phone_is_422() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"email": "only@example.com"})).await;
    let path = format!("/api/v1/clients/{}", id_of(&client));
    let r = app.patch(&path, &key, json!({"email": null})).await;
    assert_problem(&r, 422, "validation_failed");
    let r = get_ok(&app, &path, &key).await;
    assert_eq!(r.body["client"], client, "a refused patch changes nothing");
}

// ---------------------------------------------------------------------------
// Orders: CRUD

#[tokio::test]
async fn an_order_is_created_with_every_field_then_read_listed_patched_and_deleted() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let other = create_client(&app, &key, json!({"first_name": "Jo"})).await;
    let sent = json!({
        "client_id": id_of(&client),
        "status": "in_progress",
        "problem_description": "Cracked screen after a drop",
        "technician": "Alex",
        "due_date": "2026-12-04",
        "estimate_cents": 8999,
        "price_cents": 9499,
        "currency": "EUR",
        "notes": "Customer will collect",
    });
    let r = app.post("/api/v1/orders", &key, sent.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.body["order"].clone();
    assert_has_fields(&order, &sent);
    let id = id_of(&order);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/orders/{id}").as_str())
    );
    assert_eq!(order["reference"], "RM-10001");
    assert!(order["created_at"].is_string() && order["updated_at"].is_string());

    let r = get_ok(&app, &format!("/api/v1/orders/{id}"), &key).await;
    assert_eq!(r.body, json!({ "order": order }));

    let r = get_ok(&app, "/api/v1/orders", &key).await;
    assert_eq!(r.body["orders"], json!([order]));
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 25, "total_pages": 1, "total_entries": 1})
    );

    // Merge-patch: a value sets, null clears, absent keeps.
    app.clock.advance_seconds(60);
    let r = send(
        &app,
        "PATCH",
        &format!("/api/v1/orders/{id}"),
        &key,
        &[],
        Some((
            "application/merge-patch+json",
            serde_json::to_vec(&json!({
                "status": "ready",
                "client_id": id_of(&other),
                "technician": null,
                "due_date": null,
                "estimate_cents": null,
                "price_cents": 8999,
            }))
            .unwrap(),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let patched = r.body["order"].clone();
    assert_eq!(patched["status"], "ready");
    assert_eq!(patched["client_id"], other["id"]);
    assert_eq!(patched["technician"], Value::Null);
    assert_eq!(patched["due_date"], Value::Null);
    assert_eq!(patched["estimate_cents"], Value::Null);
    assert_eq!(patched["price_cents"], 8999);
    for field in ["problem_description", "currency", "notes"] {
        assert_eq!(patched[field], sent[field], "{field} is kept");
    }
    assert_eq!(
        patched["reference"], "RM-10001",
        "the reference never changes"
    );
    assert_eq!(patched["created_at"], order["created_at"]);
    assert_ne!(patched["updated_at"], order["updated_at"]);
    let r = get_ok(&app, &format!("/api/v1/orders/{id}"), &key).await;
    assert_eq!(r.body["order"], patched);

    // Required fields cannot be cleared.
    for field in ["status", "client_id", "currency"] {
        let r = app
            .patch(
                &format!("/api/v1/orders/{id}"),
                &key,
                json!({ field: null }),
            )
            .await;
        assert_validation(&r, field);
    }
    let r = get_ok(&app, &format!("/api/v1/orders/{id}"), &key).await;
    assert_eq!(r.body["order"], patched);

    let r = app.delete(&format!("/api/v1/orders/{id}"), &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_not_found(&app.get(&format!("/api/v1/orders/{id}"), &key).await);
    assert_not_found(&app.delete(&format!("/api/v1/orders/{id}"), &key).await);
    assert_eq!(total(&app, &key, "orders").await, 0);
    // Its clients stay.
    assert_eq!(total(&app, &key, "clients").await, 2);
}

#[tokio::test]
async fn an_order_defaults_to_awaiting_device_in_gbp() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let order = create_order(&app, &key, json!({"client_id": id_of(&client)})).await;
    assert_eq!(order["status"], "awaiting_device");
    assert_eq!(order["currency"], "GBP");
    for field in [
        "problem_description",
        "technician",
        "due_date",
        "estimate_cents",
        "price_cents",
        "notes",
    ] {
        assert_eq!(order[field], Value::Null, "{field}");
    }
}

#[tokio::test]
async fn order_references_count_from_rm_10001_per_shop_and_per_environment() {
    let app = TestApp::new().await;
    let live = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let shop_b = app
        .new_shop("Screen Doctors", "owner@screens.example")
        .await;
    let b_live = full_key(&app, &shop_b, "live").await;
    let b_test = full_key(&app, &shop_b, "test").await;

    let mut refs = Vec::new();
    for (key, label) in [
        (&live, "A live"),
        (&live, "A live"),
        (&test, "A test"),
        (&b_live, "B live"),
        (&live, "A live"),
        (&b_test, "B test"),
        (&test, "A test"),
    ] {
        let order = create_order(&app, key, json!({"client": {"first_name": "Sam"}})).await;
        refs.push(format!("{label} {}", order["reference"].as_str().unwrap()));
    }
    assert_eq!(
        refs,
        [
            "A live RM-10001",
            "A live RM-10002",
            "A test RM-10001",
            "B live RM-10001",
            "A live RM-10003",
            "B test RM-10001",
            "A test RM-10002",
        ]
    );

    // A deleted order's reference is not handed out again.
    let last = create_order(&app, &live, json!({"client": {"first_name": "Jo"}})).await;
    assert_eq!(last["reference"], "RM-10004");
    let r = app
        .delete(&format!("/api/v1/orders/{}", id_of(&last)), &live)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let next = create_order(&app, &live, json!({"client": {"first_name": "Jo"}})).await;
    assert_eq!(next["reference"], "RM-10005");
}

#[tokio::test]
async fn an_order_with_an_inline_client_creates_the_client_too() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let inline = json!({
        "first_name": "Aoife",
        "last_name": "Murphy",
        "email": "aoife@example.ie",
        "phone": "+353 1 555 0142",
        "country": "IE",
    });
    let order = create_order(
        &app,
        &key,
        json!({"client": inline, "problem_description": "Battery swelling"}),
    )
    .await;
    let client_id = order["client_id"]
        .as_str()
        .expect("the order names its new client")
        .to_owned();
    let r = get_ok(&app, &format!("/api/v1/clients/{client_id}"), &key).await;
    assert_has_fields(&r.body["client"], &inline);
    assert_eq!(total(&app, &key, "clients").await, 1);
    // The new client now has an order, so it cannot be deleted.
    let r = app
        .delete(&format!("/api/v1/clients/{client_id}"), &key)
        .await;
    assert_problem(&r, 409, "conflict");
}

#[tokio::test]
async fn an_order_with_both_client_id_and_client_is_422_and_creates_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let r = app
        .post(
            "/api/v1/orders",
            &key,
            json!({"client_id": id_of(&client), "client": {"first_name": "Jo"}}),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
    let fields = error_fields(&r);
    assert!(
        fields.iter().any(|f| f == "client" || f == "client_id"),
        "{}",
        r.text
    );
    assert_eq!(counts(&app, &key).await, (1, 0, 0));
}

#[tokio::test]
async fn an_order_without_a_client_is_422_naming_client_id() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let r = app
        .post("/api/v1/orders", &key, json!({"problem_description": "x"}))
        .await;
    assert_validation(&r, "client_id");
    let r = app
        .post("/api/v1/orders", &key, json!({"client_id": ""}))
        .await;
    assert_validation(&r, "client_id");
    assert_eq!(counts(&app, &key).await, (0, 0, 0));
}

#[tokio::test]
async fn an_order_for_a_client_this_key_cannot_see_is_422_naming_client_id() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let shop_b = app
        .new_shop("Screen Doctors", "owner@screens.example")
        .await;
    let b = full_key(&app, &shop_b, "live").await;
    let own = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let test_client = create_client(&app, &test, json!({"first_name": "Tess"})).await;
    let b_client = create_client(&app, &b, json!({"first_name": "Bea"})).await;

    for client_id in [
        "cli_doesnotexist".to_owned(),
        id_of(&test_client),
        id_of(&b_client),
    ] {
        let r = app
            .post("/api/v1/orders", &key, json!({"client_id": client_id}))
            .await;
        assert_validation(&r, "client_id");
    }
    assert_eq!(counts(&app, &key).await, (1, 0, 0));

    // Moving an order to such a client is refused the same way.
    let order = create_order(&app, &key, json!({"client_id": id_of(&own)})).await;
    let path = format!("/api/v1/orders/{}", id_of(&order));
    for client_id in [id_of(&test_client), id_of(&b_client)] {
        let r = app
            .patch(&path, &key, json!({"client_id": client_id}))
            .await;
        assert_validation(&r, "client_id");
    }
    let r = get_ok(&app, &path, &key).await;
    assert_eq!(r.body["order"], order);
}

#[tokio::test]
async fn orders_are_filtered_by_status_and_client_id() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let sam = id_of(&create_client(&app, &key, json!({"first_name": "Sam"})).await);
    let jo = id_of(&create_client(&app, &key, json!({"first_name": "Jo"})).await);
    let sam_ready =
        id_of(&create_order(&app, &key, json!({"client_id": sam, "status": "ready"})).await);
    let sam_waiting = id_of(&create_order(&app, &key, json!({"client_id": sam})).await);
    let jo_ready =
        id_of(&create_order(&app, &key, json!({"client_id": jo, "status": "ready"})).await);

    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    let list = |q: &str| format!("/api/v1/orders?{q}");
    let r = get_ok(&app, &list("status=ready"), &key).await;
    assert_eq!(
        set(ids(&r, "orders")),
        set(vec![sam_ready.clone(), jo_ready.clone()])
    );
    assert_eq!(r.body["meta"]["total_entries"], 2);
    let r = get_ok(&app, &list(&format!("client_id={sam}")), &key).await;
    assert_eq!(
        set(ids(&r, "orders")),
        set(vec![sam_ready.clone(), sam_waiting.clone()])
    );
    let r = get_ok(&app, &list(&format!("client_id={sam}&status=ready")), &key).await;
    assert_eq!(ids(&r, "orders"), vec![sam_ready.clone()]);
    assert_eq!(r.body["meta"]["total_entries"], 1);
    let r = get_ok(&app, &list("status=awaiting_device"), &key).await;
    assert_eq!(ids(&r, "orders"), vec![sam_waiting]);
    let r = get_ok(&app, &list("status=cancelled"), &key).await;
    assert_eq!(ids(&r, "orders"), Vec::<String>::new());
    let r = get_ok(&app, &list("client_id=cli_nobody"), &key).await;
    assert_eq!(ids(&r, "orders"), Vec::<String>::new());

    // A status that does not exist is a bad query parameter.
    let r = app.get(&list("status=fixed"), &key).await;
    assert_problem(&r, 400, "bad_request");
}

#[tokio::test]
async fn deleting_an_order_deletes_its_devices() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, device) = client_order_device(&app, &key).await;
    let second = create_device(&app, &key, &order, json!({"device_type": "tablet"})).await;
    // Another order's device stays.
    let other_order = create_order(&app, &key, json!({"client_id": client})).await;
    let kept = create_device(
        &app,
        &key,
        &id_of(&other_order),
        json!({"device_type": "watch"}),
    )
    .await;

    let r = app.delete(&format!("/api/v1/orders/{order}"), &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
    for gone in [device, id_of(&second)] {
        assert_not_found(&app.get(&format!("/api/v1/devices/{gone}"), &key).await);
    }
    assert_not_found(
        &app.get(&format!("/api/v1/orders/{order}/devices"), &key)
            .await,
    );
    let r = get_ok(&app, "/api/v1/devices", &key).await;
    assert_eq!(ids(&r, "devices"), vec![id_of(&kept)]);
}

#[tokio::test]
async fn deleting_a_client_with_orders_is_409_conflict_and_the_client_stays() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, _) = client_order_device(&app, &key).await;
    let r = app.delete(&format!("/api/v1/clients/{client}"), &key).await;
    assert_problem(&r, 409, "conflict");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("order"),
        "the detail says why (the client has orders): {detail}"
    );
    get_ok(&app, &format!("/api/v1/clients/{client}"), &key).await;
    get_ok(&app, &format!("/api/v1/orders/{order}"), &key).await;

    // Once its orders are gone, it can be deleted.
    let r = app.delete(&format!("/api/v1/orders/{order}"), &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.delete(&format!("/api/v1/clients/{client}"), &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
}

// ---------------------------------------------------------------------------
// Devices

#[tokio::test]
async fn a_device_is_added_with_every_field_then_read_listed_patched_and_deleted() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let order = id_of(&create_order(&app, &key, json!({"client_id": id_of(&client)})).await);
    let sent = json!({
        "device_type": "phone",
        "brand": "Apple",
        "model": "iPhone 13",
        "serial": "F2LXK0ABCD12",
        "imei": IMEI,
        "color": "Midnight",
        "condition": "Scuffed corners",
        "fault": "Screen cracked",
        "status": "diagnosing",
    });
    let r = app
        .post(
            &format!("/api/v1/orders/{order}/devices"),
            &key,
            sent.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let device = r.body["device"].clone();
    assert_has_fields(&device, &sent);
    assert_eq!(device["order_id"], order.as_str());
    let id = id_of(&device);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/devices/{id}").as_str())
    );
    assert!(device["created_at"].is_string() && device["updated_at"].is_string());

    let r = get_ok(&app, &format!("/api/v1/devices/{id}"), &key).await;
    assert_eq!(r.body, json!({ "device": device }));

    let r = get_ok(&app, "/api/v1/devices", &key).await;
    assert_eq!(r.body["devices"], json!([device]));
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 25, "total_pages": 1, "total_entries": 1})
    );
    let r = get_ok(&app, &format!("/api/v1/orders/{order}/devices"), &key).await;
    assert_eq!(r.body["devices"], json!([device]));
    assert_eq!(r.body["meta"]["total_entries"], 1);

    app.clock.advance_seconds(60);
    let r = send(
        &app,
        "PATCH",
        &format!("/api/v1/devices/{id}"),
        &key,
        &[],
        Some((
            "application/merge-patch+json",
            serde_json::to_vec(
                &json!({"status": "repaired", "imei": IMEI_2, "serial": null, "color": null}),
            )
            .unwrap(),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let patched = r.body["device"].clone();
    assert_eq!(patched["status"], "repaired");
    assert_eq!(patched["imei"], IMEI_2);
    assert_eq!(patched["serial"], Value::Null);
    assert_eq!(patched["color"], Value::Null);
    for field in ["device_type", "brand", "model", "condition", "fault"] {
        assert_eq!(patched[field], sent[field], "{field} is kept");
    }
    assert_eq!(patched["order_id"], order.as_str());
    assert_eq!(patched["created_at"], device["created_at"]);
    assert_ne!(patched["updated_at"], device["updated_at"]);
    let r = get_ok(&app, &format!("/api/v1/devices/{id}"), &key).await;
    assert_eq!(r.body["device"], patched);

    // device_type and status cannot be cleared.
    for field in ["device_type", "status"] {
        let r = app
            .patch(
                &format!("/api/v1/devices/{id}"),
                &key,
                json!({ field: null }),
            )
            .await;
        assert_validation(&r, field);
    }

    let r = app.delete(&format!("/api/v1/devices/{id}"), &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_not_found(&app.get(&format!("/api/v1/devices/{id}"), &key).await);
    assert_not_found(&app.delete(&format!("/api/v1/devices/{id}"), &key).await);
    assert_eq!(total(&app, &key, "devices").await, 0);
    // The order stays.
    get_ok(&app, &format!("/api/v1/orders/{order}"), &key).await;
}

#[tokio::test]
async fn a_device_defaults_to_received_and_needs_a_device_type() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (_, order, _) = client_order_device(&app, &key).await;
    let device = create_device(&app, &key, &order, json!({"device_type": "laptop"})).await;
    assert_eq!(device["status"], "received");
    let r = app
        .post(
            &format!("/api/v1/orders/{order}/devices"),
            &key,
            json!({"brand": "Dell"}),
        )
        .await;
    assert_validation(&r, "device_type");
    assert_eq!(total(&app, &key, "devices").await, 2);
}

#[tokio::test]
async fn devices_are_listed_per_order_and_across_the_shop_with_an_order_id_filter() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = id_of(&create_client(&app, &key, json!({"first_name": "Sam"})).await);
    let first = id_of(&create_order(&app, &key, json!({"client_id": client})).await);
    let second = id_of(&create_order(&app, &key, json!({"client_id": client})).await);
    let mut on_first = BTreeSet::new();
    for t in ["phone", "tablet", "laptop"] {
        on_first.insert(id_of(
            &create_device(&app, &key, &first, json!({"device_type": t})).await,
        ));
    }
    let on_second =
        id_of(&create_device(&app, &key, &second, json!({"device_type": "console"})).await);
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();

    let r = get_ok(&app, &format!("/api/v1/orders/{first}/devices"), &key).await;
    assert_eq!(set(ids(&r, "devices")), on_first);
    assert_eq!(r.body["meta"]["total_entries"], 3);
    let r = get_ok(&app, &format!("/api/v1/orders/{second}/devices"), &key).await;
    assert_eq!(ids(&r, "devices"), vec![on_second.clone()]);

    let r = get_ok(&app, "/api/v1/devices", &key).await;
    let mut all = on_first.clone();
    all.insert(on_second.clone());
    assert_eq!(set(ids(&r, "devices")), all);
    assert_eq!(r.body["meta"]["total_entries"], 4);

    let r = get_ok(&app, &format!("/api/v1/devices?order_id={first}"), &key).await;
    assert_eq!(set(ids(&r, "devices")), on_first);
    assert_eq!(r.body["meta"]["total_entries"], 3);
    let r = get_ok(&app, &format!("/api/v1/devices?order_id={second}"), &key).await;
    assert_eq!(ids(&r, "devices"), vec![on_second]);
    for d in r.body["devices"].as_array().unwrap() {
        assert_eq!(d["order_id"], second.as_str());
    }

    // Paging applies to an order's devices too.
    let r = get_ok(
        &app,
        &format!("/api/v1/orders/{first}/devices?per_page=2&page=2"),
        &key,
    )
    .await;
    assert_eq!(ids(&r, "devices").len(), 1);
    assert_eq!(
        r.body["meta"],
        json!({"page": 2, "per_page": 2, "total_pages": 2, "total_entries": 3})
    );
}

#[tokio::test]
async fn adding_or_listing_devices_of_an_unknown_order_is_404() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let r = app
        .post(
            "/api/v1/orders/ord_doesnotexist/devices",
            &key,
            json!({"device_type": "phone"}),
        )
        .await;
    assert_not_found(&r);
    assert_not_found(
        &app.get("/api/v1/orders/ord_doesnotexist/devices", &key)
            .await,
    );
    assert_eq!(total(&app, &key, "devices").await, 0);
}

// ---------------------------------------------------------------------------
// Lists

#[tokio::test]
async fn lists_default_to_25_per_page_and_take_up_to_100() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let mut created = BTreeSet::new();
    for i in 0..26 {
        created.insert(id_of(
            &create_client(&app, &key, json!({"first_name": format!("Client {i}")})).await,
        ));
    }
    let r = get_ok(&app, "/api/v1/clients", &key).await;
    let first = ids(&r, "clients");
    assert_eq!(first.len(), 25);
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 25, "total_pages": 2, "total_entries": 26})
    );
    let r = get_ok(&app, "/api/v1/clients?page=2", &key).await;
    let second = ids(&r, "clients");
    assert_eq!(second.len(), 1);
    assert_eq!(r.body["meta"]["page"], 2);
    let seen: BTreeSet<String> = first.into_iter().chain(second).collect();
    assert_eq!(seen, created, "two pages hold every client once");

    let r = get_ok(&app, "/api/v1/clients?per_page=100", &key).await;
    assert_eq!(ids(&r, "clients").len(), 26);
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 100, "total_pages": 1, "total_entries": 26})
    );
}

#[tokio::test]
async fn the_default_sort_is_newest_first_and_created_at_sorts_oldest_first() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(id_of(
            &create_client(&app, &key, json!({"first_name": format!("Client {i}")})).await,
        ));
        app.clock.advance_seconds(1);
    }
    let r = get_ok(&app, "/api/v1/clients", &key).await;
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(ids(&r, "clients"), newest_first);
    let r = get_ok(&app, "/api/v1/clients?sort=-created_at", &key).await;
    assert_eq!(ids(&r, "clients"), newest_first);
    let r = get_ok(&app, "/api/v1/clients?sort=created_at", &key).await;
    assert_eq!(ids(&r, "clients"), created);
    assert!(
        r.body["meta"].get("next_cursor").is_none(),
        "only sort=updated_at gives a cursor: {}",
        r.text
    );
}

#[tokio::test]
async fn out_of_range_paging_is_422_and_unparseable_list_parameters_are_400() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (_, order, _) = client_order_device(&app, &key).await;
    let lists = [
        "/api/v1/clients".to_owned(),
        "/api/v1/orders".to_owned(),
        "/api/v1/devices".to_owned(),
        format!("/api/v1/orders/{order}/devices"),
    ];
    for list in &lists {
        let r = app.get(&format!("{list}?per_page=101"), &key).await;
        assert_validation(&r, "per_page");
        let r = app.get(&format!("{list}?per_page=0"), &key).await;
        assert_validation(&r, "per_page");
        let r = app.get(&format!("{list}?page=0"), &key).await;
        assert_validation(&r, "page");
        for query in [
            "per_page=abc",
            "page=abc",
            "page=-1",
            "per_page=2.5",
            "sort=bogus",
            "sort=name",
            "updated_since=yesterday",
            "updated_since=2026-11-23",
            "updated_since=2026-13-01T00:00:00Z",
            "after=1.cli_x",
            "sort=-created_at&after=1.cli_x",
            "sort=updated_at&after=not-a-cursor",
        ] {
            let r = app.get(&format!("{list}?{query}"), &key).await;
            assert_problem(&r, 400, "bad_request");
            assert!(
                !r.body["detail"].as_str().unwrap().is_empty(),
                "{list}?{query}"
            );
        }
    }
}

#[tokio::test]
async fn a_page_past_the_end_is_200_with_an_empty_list() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (_, order, _) = client_order_device(&app, &key).await;
    for (list, name) in [
        ("/api/v1/clients".to_owned(), "clients"),
        ("/api/v1/orders".to_owned(), "orders"),
        ("/api/v1/devices".to_owned(), "devices"),
        (format!("/api/v1/orders/{order}/devices"), "devices"),
    ] {
        let r = get_ok(&app, &format!("{list}?page=5&per_page=10"), &key).await;
        assert_eq!(r.body[name], json!([]), "{list}");
        assert_eq!(
            r.body["meta"],
            json!({"page": 5, "per_page": 10, "total_pages": 1, "total_entries": 1}),
            "{list}"
        );
    }
    // An empty list has no pages, and its first page is still 200.
    let empty = full_key(&app, &app.shop_id, "test").await;
    let r = get_ok(&app, "/api/v1/clients", &empty).await;
    assert_eq!(r.body["clients"], json!([]));
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 25, "total_pages": 0, "total_entries": 0})
    );
}

#[tokio::test]
async fn updated_since_is_inclusive_and_keeps_microseconds() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let old = create_client(&app, &key, json!({"first_name": "Old"})).await;
    app.clock.advance_seconds(10);
    let new = create_client(&app, &key, json!({"first_name": "New"})).await;
    let since = new["updated_at"].as_str().unwrap();
    assert!(since.contains('.'), "timestamps keep microseconds: {since}");
    let r = get_ok(
        &app,
        &format!("/api/v1/clients?updated_since={}", enc(since)),
        &key,
    )
    .await;
    assert_eq!(ids(&r, "clients"), vec![id_of(&new)], "inclusive");
    assert_eq!(r.body["meta"]["total_entries"], 1);

    // A change brings the old one back in.
    app.clock.advance_seconds(10);
    let r = app
        .patch(
            &format!("/api/v1/clients/{}", id_of(&old)),
            &key,
            json!({"notes": "touched"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get_ok(
        &app,
        &format!(
            "/api/v1/clients?sort=updated_at&updated_since={}",
            enc(since)
        ),
        &key,
    )
    .await;
    assert_eq!(ids(&r, "clients"), vec![id_of(&new), id_of(&old)]);

    // Any offset is understood.
    let r = get_ok(
        &app,
        &format!(
            "/api/v1/clients?updated_since={}",
            enc("2026-11-23T13:00:00+01:00")
        ),
        &key,
    )
    .await;
    assert_eq!(r.body["meta"]["total_entries"], 2, "{}", r.text);
}

/// Walks `list` with `sort=updated_at&per_page=2`, following `next_cursor`;
/// runs `between` after the first page. Returns every (id, updated_at) seen.
async fn walk(
    app: &TestApp,
    key: &str,
    list: &str,
    name: &str,
    between: impl AsyncFnOnce(),
) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut between = Some(between);
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let path = match &cursor {
            None => format!("{list}?sort=updated_at&per_page=2"),
            Some(c) => format!("{list}?sort=updated_at&per_page=2&after={}", enc(c)),
        };
        let r = get_ok(app, &path, key).await;
        let items = r.body[name].as_array().unwrap().clone();
        if items.is_empty() {
            return seen;
        }
        assert!(items.len() <= 2, "{}", r.text);
        let mut previous: Option<(String, String)> = None;
        for item in &items {
            let pos = (item["updated_at"].as_str().unwrap().to_owned(), id_of(item));
            if let Some(p) = &previous {
                assert!(p < &pos, "a page is in updated_at, id order: {}", r.text);
            }
            previous = Some(pos);
            seen.push((id_of(item), item["updated_at"].as_str().unwrap().to_owned()));
        }
        cursor = Some(
            r.body["meta"]["next_cursor"]
                .as_str()
                .unwrap_or_else(|| panic!("sort=updated_at gives next_cursor: {}", r.text))
                .to_owned(),
        );
        if let Some(f) = between.take() {
            f().await;
        }
    }
    panic!("the walk did not end: {seen:?}");
}

#[tokio::test]
async fn sort_updated_at_with_after_visits_every_client_and_never_the_same_version_twice() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    // Four created in the same microsecond (the id breaks ties), three later.
    let mut created = Vec::new();
    for i in 0..7 {
        if i == 4 {
            app.clock.advance_seconds(1);
        }
        created.push(id_of(
            &create_client(&app, &key, json!({"first_name": format!("Client {i}")})).await,
        ));
    }
    let before = get_ok(&app, "/api/v1/clients?sort=updated_at&per_page=100", &key).await;
    let order = ids(&before, "clients");
    assert_eq!(order.len(), 7);
    let first_seen = order[0].clone();
    let last = order[6].clone();

    let seen = walk(&app, &key, "/api/v1/clients", "clients", async || {
        // Between pages: change one already seen and one not yet seen.
        app.clock.advance_seconds(5);
        for id in [&first_seen, &last] {
            let r = app
                .patch(
                    &format!("/api/v1/clients/{id}"),
                    &key,
                    json!({"notes": "changed during the walk"}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    })
    .await;

    let ids_seen: BTreeSet<&String> = seen.iter().map(|(id, _)| id).collect();
    let all: BTreeSet<&String> = created.iter().collect();
    assert_eq!(ids_seen, all, "every client is visited: {seen:?}");
    let versions: HashSet<&(String, String)> = seen.iter().collect();
    assert_eq!(versions.len(), seen.len(), "no version twice: {seen:?}");
    // The changed ones are seen in their changed version.
    let now = get_ok(&app, "/api/v1/clients?sort=updated_at&per_page=100", &key).await;
    for item in now.body["clients"].as_array().unwrap() {
        let pos = (id_of(item), item["updated_at"].as_str().unwrap().to_owned());
        assert!(seen.contains(&pos), "{pos:?} was not visited: {seen:?}");
    }
    // The one not yet seen when it changed is seen once.
    assert_eq!(seen.iter().filter(|(id, _)| id == &last).count(), 1);
}

#[tokio::test]
async fn orders_and_devices_walk_with_a_cursor_too() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = id_of(&create_client(&app, &key, json!({"first_name": "Sam"})).await);
    let mut orders = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for _ in 0..3 {
        let order = id_of(&create_order(&app, &key, json!({"client_id": client})).await);
        for _ in 0..2 {
            devices.insert(id_of(
                &create_device(&app, &key, &order, json!({"device_type": "phone"})).await,
            ));
        }
        orders.insert(order);
    }
    let seen = walk(&app, &key, "/api/v1/orders", "orders", async || {}).await;
    assert_eq!(
        seen.iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        orders
    );
    assert_eq!(seen.len(), 3);
    let seen = walk(&app, &key, "/api/v1/devices", "devices", async || {}).await;
    assert_eq!(
        seen.iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        devices
    );
    assert_eq!(seen.len(), 6);
}

#[tokio::test]
async fn clients_are_searched_by_name_business_name_email_and_phone() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let sam = id_of(
        &create_client(
            &app,
            &key,
            json!({"first_name": "Sam", "last_name": "Patel", "email": "sam.patel@example.com", "phone": "+44 20 7946 0958"}),
        )
        .await,
    );
    let jo = id_of(
        &create_client(
            &app,
            &key,
            json!({"first_name": "Jo", "last_name": "Williams", "business_name": "Williams Plumbing Ltd", "email": "jo@plumbing.example", "phone": "+44 161 496 0321"}),
        )
        .await,
    );
    let chris = id_of(
        &create_client(
            &app,
            &key,
            json!({"business_name": "Okafor Accountancy", "phone": "0113 496 0777", "city": "Patelton"}),
        )
        .await,
    );
    let search = async |q: &str| -> BTreeSet<String> {
        let r = get_ok(&app, &format!("/api/v1/clients?q={}", enc(q)), &key).await;
        let found: BTreeSet<String> = ids(&r, "clients").into_iter().collect();
        assert_eq!(r.body["meta"]["total_entries"], found.len(), "{q}");
        found
    };
    let set = |v: &[&String]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(search("patel").await, set(&[&sam]), "last name; not city");
    assert_eq!(search("PATEL").await, set(&[&sam]), "case-insensitive");
    assert_eq!(search("Sam").await, set(&[&sam]), "first name");
    assert_eq!(
        search("plumbing").await,
        set(&[&jo]),
        "business name and email"
    );
    assert_eq!(search("jo@plumbing.example").await, set(&[&jo]), "email");
    assert_eq!(search("accountancy").await, set(&[&chris]), "business name");
    assert_eq!(search("7946 0958").await, set(&[&sam]), "phone");
    assert_eq!(search("496").await, set(&[&jo, &chris]), "phone");
    assert_eq!(search("+44").await, set(&[&sam, &jo]), "phone");
    assert_eq!(search("nobody").await, set(&[]));
    // LIKE wildcards are plain characters.
    assert_eq!(search("%").await, set(&[]));
    assert_eq!(search("_").await, set(&[]));
    // No q is no filter; an empty one is refused (400), not ignored.
    let all = get_ok(&app, "/api/v1/clients", &key).await;
    assert_eq!(all.body["meta"]["total_entries"], 3);
    assert_eq!(app.get("/api/v1/clients?q=", &key).await.status, 400);
}

// ---------------------------------------------------------------------------
// Bad input

/// What each resource's create and update look like, for table tests:
/// (method, path, valid-looking body).
async fn write_endpoints(app: &TestApp, key: &str) -> Vec<(&'static str, String)> {
    let (client, order, device) = client_order_device(app, key).await;
    vec![
        ("POST", "/api/v1/clients".to_owned()),
        ("PATCH", format!("/api/v1/clients/{client}")),
        ("POST", "/api/v1/orders".to_owned()),
        ("PATCH", format!("/api/v1/orders/{order}")),
        ("POST", format!("/api/v1/orders/{order}/devices")),
        ("PATCH", format!("/api/v1/devices/{device}")),
    ]
}

/// The state every bad request must leave alone: every row of each list.
async fn snapshot(app: &TestApp, key: &str) -> Value {
    let mut all = serde_json::Map::new();
    for list in ["clients", "orders", "devices"] {
        let r = get_ok(app, &format!("/api/v1/{list}?per_page=100"), key).await;
        all.insert(list.into(), r.body[list].clone());
    }
    Value::Object(all)
}

#[tokio::test]
async fn broken_json_is_400_bad_request_and_changes_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let endpoints = write_endpoints(&app, &key).await;
    let before = snapshot(&app, &key).await;
    for (method, path) in &endpoints {
        let bodies: [&[u8]; 5] = [
            b"{\"first_name\": \"Sam\"",
            b"{first_name: 'Sam'}",
            b"",
            b"{\"notes\": \"x\"} trailing",
            b"\xff\xfe",
        ];
        for body in bodies {
            let r = send(
                &app,
                method,
                path,
                &key,
                &[],
                Some(("application/json", body.to_vec())),
            )
            .await;
            assert_problem(&r, 400, "bad_request");
        }
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_and_changes_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let endpoints = write_endpoints(&app, &key).await;
    let before = snapshot(&app, &key).await;
    let json_text = br#"{"first_name": "Sam", "device_type": "phone"}"#.to_vec();
    for (method, path) in &endpoints {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
        ] {
            let r = send(
                &app,
                method,
                path,
                &key,
                &[],
                Some((content_type, json_text.clone())),
            )
            .await;
            assert_problem(&r, 415, "unsupported_media_type");
        }
        // No Content-Type at all.
        let req = Request::builder()
            .method(*method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::from(json_text.clone()))
            .unwrap();
        assert_problem(&app.send(req).await, 415, "unsupported_media_type");
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn a_body_over_1_mib_is_413_and_changes_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let endpoints = write_endpoints(&app, &key).await;
    let before = snapshot(&app, &key).await;
    let big = serde_json::to_vec(&json!({
        "first_name": "Sam",
        "device_type": "phone",
        "notes": "x".repeat(1024 * 1024),
    }))
    .unwrap();
    assert!(big.len() > 1024 * 1024);
    for (method, path) in &endpoints {
        let r = send(
            &app,
            method,
            path,
            &key,
            &[],
            Some(("application/json", big.clone())),
        )
        .await;
        assert_problem(&r, 413, "payload_too_large");
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn an_unknown_field_is_422_naming_it_and_changes_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, device) = client_order_device(&app, &key).await;
    let before = snapshot(&app, &key).await;
    let cases = [
        (
            "POST",
            "/api/v1/clients".to_owned(),
            json!({"first_name": "Sam", "favourite_colour": "blue"}),
        ),
        (
            "PATCH",
            format!("/api/v1/clients/{client}"),
            json!({"favourite_colour": "blue"}),
        ),
        (
            "POST",
            "/api/v1/orders".to_owned(),
            json!({"client_id": client, "favourite_colour": "blue"}),
        ),
        (
            "PATCH",
            format!("/api/v1/orders/{order}"),
            json!({"favourite_colour": "blue"}),
        ),
        (
            "PATCH",
            format!("/api/v1/orders/{order}"),
            json!({"reference": "RM-1"}),
        ),
        (
            "POST",
            format!("/api/v1/orders/{order}/devices"),
            json!({"device_type": "phone", "favourite_colour": "blue"}),
        ),
        (
            "PATCH",
            format!("/api/v1/devices/{device}"),
            json!({"favourite_colour": "blue"}),
        ),
        (
            "PATCH",
            format!("/api/v1/devices/{device}"),
            json!({"order_id": order}),
        ),
    ];
    for (method, path, body) in cases {
        let r = app
            .call(method, &path, Some(&key), Some(body.clone()))
            .await;
        assert_problem(&r, 422, "validation_failed");
        let unknown = body
            .as_object()
            .unwrap()
            .keys()
            .find(|k| ["favourite_colour", "reference", "order_id"].contains(&k.as_str()))
            .unwrap()
            .clone();
        let named = r.body["errors"].as_array().unwrap().iter().any(|e| {
            e["field"] == unknown.as_str() || e["message"].as_str().unwrap_or("").contains(&unknown)
        });
        assert!(
            named,
            "{method} {path}: the error names `{unknown}`: {}",
            r.text
        );
    }
    // An unknown field inside an inline client is named too.
    let r = app
        .post(
            "/api/v1/orders",
            &key,
            json!({"client": {"first_name": "Jo", "favourite_colour": "blue"}}),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert!(r.text.contains("favourite_colour"), "{}", r.text);
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn a_wrong_type_is_422_naming_the_field_and_changes_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, device) = client_order_device(&app, &key).await;
    let before = snapshot(&app, &key).await;
    let cases = [
        (
            "POST",
            "/api/v1/clients".to_owned(),
            json!({"first_name": 42}),
            "first_name",
        ),
        (
            "PATCH",
            format!("/api/v1/clients/{client}"),
            json!({"email": ["a@b.example"]}),
            "email",
        ),
        (
            "POST",
            "/api/v1/orders".to_owned(),
            json!({"client_id": client, "estimate_cents": "lots"}),
            "estimate_cents",
        ),
        (
            "POST",
            "/api/v1/orders".to_owned(),
            json!({"client_id": client, "price_cents": 12.5}),
            "price_cents",
        ),
        (
            "POST",
            "/api/v1/orders".to_owned(),
            json!({"client_id": 7}),
            "client_id",
        ),
        (
            "PATCH",
            format!("/api/v1/orders/{order}"),
            json!({"status": 3}),
            "status",
        ),
        (
            "POST",
            format!("/api/v1/orders/{order}/devices"),
            json!({"device_type": 5}),
            "device_type",
        ),
        (
            "PATCH",
            format!("/api/v1/devices/{device}"),
            json!({"brand": {"name": "Apple"}}),
            "brand",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = app.call(method, &path, Some(&key), Some(body)).await;
        assert_validation(&r, field);
    }
    // The whole body of the wrong type.
    for (method, path) in [
        ("POST", "/api/v1/clients".to_owned()),
        ("POST", "/api/v1/orders".to_owned()),
        ("PATCH", format!("/api/v1/devices/{device}")),
    ] {
        for body in [
            json!([]),
            json!(["Sam", "Patel"]),
            json!("Sam"),
            json!(null),
        ] {
            let r = app.call(method, &path, Some(&key), Some(body)).await;
            assert_problem(&r, 422, "validation_failed");
        }
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn invalid_client_fields_are_422_naming_the_field_and_change_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let existing = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let path = format!("/api/v1/clients/{}", id_of(&existing));
    let before = snapshot(&app, &key).await;
    for (field, value) in [
        ("email", json!("not-an-email")),
        ("email", json!("sam@")),
        ("phone", json!("call me maybe")),
        ("phone", json!("0800 FIX IT")),
        ("phone", json!("1234")),
        ("phone", json!("1".repeat(33))),
        ("country", json!("UK")),
        ("country", json!("GBR")),
        ("first_name", json!("x".repeat(101))),
        ("notes", json!("bell\u{7}")),
    ] {
        let r = app
            .post(
                "/api/v1/clients",
                &key,
                json!({"first_name": "Sam", field: value.clone()}),
            )
            .await;
        assert_validation(&r, field);
        let r = app
            .patch(&path, &key, json!({ field: value.clone() }))
            .await;
        assert_validation(&r, field);
        // Inline in an order, the field is named under `client.`.
        let r = app
            .post(
                "/api/v1/orders",
                &key,
                json!({"client": {"first_name": "Sam", field: value}}),
            )
            .await;
        assert_validation(&r, &format!("client.{field}"));
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn a_client_with_no_name_email_or_phone_is_422_and_is_not_created() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    for body in [
        json!({}),
        json!({"city": "London", "country": "GB", "notes": "walk-in"}),
        json!({"first_name": "   ", "email": ""}),
        json!({"first_name": null}),
    ] {
        let r = app.post("/api/v1/clients", &key, body.clone()).await;
        assert_problem(&r, 422, "validation_failed");
        assert!(!error_fields(&r).is_empty(), "{}", r.text);
        let r = app
            .post("/api/v1/orders", &key, json!({ "client": body }))
            .await;
        assert_problem(&r, 422, "validation_failed");
    }
    assert_eq!(counts(&app, &key).await, (0, 0, 0));
}

#[tokio::test]
async fn invalid_order_fields_are_422_naming_the_field_and_change_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = id_of(&create_client(&app, &key, json!({"first_name": "Sam"})).await);
    let existing = create_order(&app, &key, json!({"client_id": client})).await;
    let path = format!("/api/v1/orders/{}", id_of(&existing));
    let before = snapshot(&app, &key).await;
    for (field, value) in [
        ("currency", json!("XYZ")),
        ("currency", json!("POUNDS")),
        ("due_date", json!("2026-02-30")),
        ("due_date", json!("04/12/2026")),
        ("due_date", json!("2026-12-04T10:00:00Z")),
        ("estimate_cents", json!(-1)),
        ("price_cents", json!(-8999)),
        ("status", json!("fixed")),
        ("status", json!("Ready")),
        ("technician", json!("x".repeat(101))),
    ] {
        let r = app
            .post(
                "/api/v1/orders",
                &key,
                json!({"client_id": client, field: value.clone()}),
            )
            .await;
        assert_validation(&r, field);
        let r = app.patch(&path, &key, json!({ field: value })).await;
        assert_validation(&r, field);
    }
    // An inline client is only for creating.
    let r = app
        .patch(&path, &key, json!({"client": {"first_name": "Jo"}}))
        .await;
    assert_validation(&r, "client");
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn invalid_device_fields_are_422_naming_the_field_and_change_nothing() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (_, order, device) = client_order_device(&app, &key).await;
    let path = format!("/api/v1/devices/{device}");
    let before = snapshot(&app, &key).await;
    for (field, value) in [
        ("imei", json!("490154203237519")), // the Luhn check digit is wrong
        ("imei", json!("49015420323751")),  // 14 digits
        ("imei", json!("4901542032375180")), // 16 digits
        ("imei", json!("49015420323751X")),
        ("device_type", json!("toaster")),
        ("device_type", json!("Phone")),
        ("status", json!("lost")),
        ("color", json!("x".repeat(51))),
    ] {
        let r = app
            .post(
                &format!("/api/v1/orders/{order}/devices"),
                &key,
                json!({"device_type": "phone", field: value.clone()}),
            )
            .await;
        assert_validation(&r, field);
        let r = app.patch(&path, &key, json!({ field: value })).await;
        assert_validation(&r, field);
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn several_bad_fields_are_all_listed() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, _) = client_order_device(&app, &key).await;
    let before = snapshot(&app, &key).await;
    let cases = [
        (
            "/api/v1/clients".to_owned(),
            json!({"first_name": "Sam", "email": "nope", "phone": "abc", "country": "UK"}),
            vec!["email", "phone", "country"],
        ),
        (
            "/api/v1/orders".to_owned(),
            json!({"client_id": client, "currency": "XYZ", "due_date": "2026-02-30", "estimate_cents": -1, "price_cents": -2}),
            vec!["currency", "due_date", "estimate_cents", "price_cents"],
        ),
        (
            "/api/v1/orders".to_owned(),
            json!({"client": {"email": "nope", "country": "UK"}, "currency": "XYZ"}),
            vec!["client.email", "client.country", "currency"],
        ),
        (
            format!("/api/v1/orders/{order}/devices"),
            json!({"device_type": "phone", "imei": "123", "color": "x".repeat(51)}),
            vec!["imei", "color"],
        ),
    ];
    for (path, body, fields) in cases {
        let r = app.post(&path, &key, body).await;
        assert_problem(&r, 422, "validation_failed");
        let got: BTreeSet<String> = error_fields(&r).into_iter().collect();
        for field in fields {
            assert!(
                got.contains(field),
                "{path}: `{field}` is listed: {}",
                r.text
            );
        }
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

// ---------------------------------------------------------------------------
// Tenancy and environments

/// Every endpoint that names one resource: (method, path, body).
fn one_resource_endpoints(
    client: &str,
    order: &str,
    device: &str,
) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("/api/v1/clients/{client}"), None),
        (
            "PATCH",
            format!("/api/v1/clients/{client}"),
            Some(json!({"notes": "hijacked"})),
        ),
        ("DELETE", format!("/api/v1/clients/{client}"), None),
        ("GET", format!("/api/v1/orders/{order}"), None),
        (
            "PATCH",
            format!("/api/v1/orders/{order}"),
            Some(json!({"status": "cancelled"})),
        ),
        ("GET", format!("/api/v1/orders/{order}/devices"), None),
        (
            "POST",
            format!("/api/v1/orders/{order}/devices"),
            Some(json!({"device_type": "phone"})),
        ),
        ("GET", format!("/api/v1/devices/{device}"), None),
        (
            "PATCH",
            format!("/api/v1/devices/{device}"),
            Some(json!({"status": "returned"})),
        ),
        ("DELETE", format!("/api/v1/devices/{device}"), None),
        // Last: deleting the order would take the device with it.
        ("DELETE", format!("/api/v1/orders/{order}"), None),
    ]
}

/// The owner's view of its three rows.
async fn rows(app: &TestApp, key: &str, client: &str, order: &str, device: &str) -> Value {
    json!([
        get_ok(app, &format!("/api/v1/clients/{client}"), key)
            .await
            .body,
        get_ok(app, &format!("/api/v1/orders/{order}"), key)
            .await
            .body,
        get_ok(app, &format!("/api/v1/devices/{device}"), key)
            .await
            .body,
        get_ok(app, &format!("/api/v1/orders/{order}/devices"), key)
            .await
            .body["devices"],
    ])
}

#[tokio::test]
async fn every_resource_endpoint_is_404_for_another_shops_ids_and_changes_nothing() {
    let app = TestApp::new().await;
    let a = live_key(&app).await;
    let shop_b = app
        .new_shop("Screen Doctors", "owner@screens.example")
        .await;
    let b = full_key(&app, &shop_b, "live").await;
    let b_test = full_key(&app, &shop_b, "test").await;
    // B has data of its own, so an empty answer is not the only way to pass.
    client_order_device(&app, &b).await;
    let (client, order, device) = client_order_device(&app, &a).await;
    let before = rows(&app, &a, &client, &order, &device).await;
    for key in [&b, &b_test] {
        for (method, path, body) in one_resource_endpoints(&client, &order, &device) {
            let r = app.call(method, &path, Some(key.as_str()), body).await;
            assert_not_found(&r);
        }
    }
    assert_eq!(rows(&app, &a, &client, &order, &device).await, before);
    assert_eq!(counts(&app, &b).await, (1, 1, 1));
}

#[tokio::test]
async fn every_resource_endpoint_is_404_for_the_other_environments_ids_and_changes_nothing() {
    let app = TestApp::new().await;
    let live = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let (lc, lo, ld) = client_order_device(&app, &live).await;
    let (tc, to, td) = client_order_device(&app, &test).await;
    let live_before = rows(&app, &live, &lc, &lo, &ld).await;
    let test_before = rows(&app, &test, &tc, &to, &td).await;
    // Live ids with a test key…
    for (method, path, body) in one_resource_endpoints(&lc, &lo, &ld) {
        assert_not_found(&app.call(method, &path, Some(test.as_str()), body).await);
    }
    // …and test ids with a live key.
    for (method, path, body) in one_resource_endpoints(&tc, &to, &td) {
        assert_not_found(&app.call(method, &path, Some(live.as_str()), body).await);
    }
    assert_eq!(rows(&app, &live, &lc, &lo, &ld).await, live_before);
    assert_eq!(rows(&app, &test, &tc, &to, &td).await, test_before);
}

#[tokio::test]
async fn lists_never_show_the_other_environments_or_another_shops_rows() {
    let app = TestApp::new().await;
    let live = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let shop_b = app
        .new_shop("Screen Doctors", "owner@screens.example")
        .await;
    let b = full_key(&app, &shop_b, "live").await;
    let b_test = full_key(&app, &shop_b, "test").await;
    let keys = [&live, &test, &b, &b_test];
    let mut owned = Vec::new();
    for key in keys {
        let (c, o, d) = client_order_device(&app, key).await;
        // A second order and device, so each list has several rows.
        let o2 = id_of(&create_order(&app, key, json!({"client_id": c})).await);
        let d2 = id_of(&create_device(&app, key, &o2, json!({"device_type": "tablet"})).await);
        owned.push((vec![c], vec![o, o2], vec![d, d2]));
    }
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    for (i, key) in keys.iter().enumerate() {
        let (c, o, d) = &owned[i];
        let r = get_ok(&app, "/api/v1/clients?per_page=100", key).await;
        assert_eq!(set(&ids(&r, "clients")), set(c), "key {i}");
        assert_eq!(r.body["meta"]["total_entries"], 1);
        let r = get_ok(&app, "/api/v1/orders?per_page=100", key).await;
        assert_eq!(set(&ids(&r, "orders")), set(o), "key {i}");
        assert_eq!(r.body["meta"]["total_entries"], 2);
        let r = get_ok(&app, "/api/v1/devices?per_page=100", key).await;
        assert_eq!(set(&ids(&r, "devices")), set(d), "key {i}");
        assert_eq!(r.body["meta"]["total_entries"], 2);
        let r = get_ok(&app, "/api/v1/clients?q=sam", key).await;
        assert_eq!(set(&ids(&r, "clients")), set(c), "key {i}");
        let r = get_ok(&app, "/api/v1/orders?sort=updated_at&per_page=100", key).await;
        assert_eq!(set(&ids(&r, "orders")), set(o), "key {i}");

        // Filters naming someone else's rows find nothing.
        for (j, (oc, oo, _)) in owned.iter().enumerate() {
            if i == j {
                continue;
            }
            let r = get_ok(&app, &format!("/api/v1/orders?client_id={}", oc[0]), key).await;
            assert_eq!(ids(&r, "orders"), Vec::<String>::new(), "key {i}, rows {j}");
            assert_eq!(r.body["meta"]["total_entries"], 0);
            let r = get_ok(&app, &format!("/api/v1/devices?order_id={}", oo[0]), key).await;
            assert_eq!(
                ids(&r, "devices"),
                Vec::<String>::new(),
                "key {i}, rows {j}"
            );
            assert_eq!(r.body["meta"]["total_entries"], 0);
        }
    }
}

// ---------------------------------------------------------------------------
// Idempotency-Key

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_first_answer_and_creates_one_row() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client_body = json!({"first_name": "Sam", "email": "sam@example.com"});
    let first = post_with(
        &app,
        "/api/v1/clients",
        &key,
        &[("idempotency-key", "c0ffee-1")],
        &client_body,
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    for _ in 0..2 {
        let again = post_with(
            &app,
            "/api/v1/clients",
            &key,
            &[("idempotency-key", "c0ffee-1")],
            &client_body,
        )
        .await;
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, first.body);
        assert_eq!(again.header("location"), first.header("location"));
        assert!(
            again
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{:?}",
            again.headers
        );
    }
    assert_eq!(total(&app, &key, "clients").await, 1);

    // Orders too, including the inline client: one order, one new client.
    let order_body = json!({"client": {"first_name": "Jo"}, "problem_description": "No power"});
    let first = post_with(
        &app,
        "/api/v1/orders",
        &key,
        &[("idempotency-key", "order-abc")],
        &order_body,
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = post_with(
        &app,
        "/api/v1/orders",
        &key,
        &[("idempotency-key", "order-abc")],
        &order_body,
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(counts(&app, &key).await, (2, 1, 0));

    // Without the header, the same body creates another.
    let r = app.post("/api/v1/clients", &key, client_body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(total(&app, &key, "clients").await, 3);
}

#[tokio::test]
async fn the_same_idempotency_key_with_a_different_body_is_409_conflict() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let r = post_with(
        &app,
        "/api/v1/clients",
        &key,
        &[("idempotency-key", "k-1")],
        &json!({"first_name": "Sam"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let client = id_of(&r.body["client"]);
    let r = post_with(
        &app,
        "/api/v1/clients",
        &key,
        &[("idempotency-key", "k-1")],
        &json!({"first_name": "Jo"}),
    )
    .await;
    assert_problem(&r, 409, "conflict");
    assert_eq!(total(&app, &key, "clients").await, 1);

    let r = post_with(
        &app,
        "/api/v1/orders",
        &key,
        &[("idempotency-key", "k-2")],
        &json!({"client_id": client}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post_with(
        &app,
        "/api/v1/orders",
        &key,
        &[("idempotency-key", "k-2")],
        &json!({"client_id": client, "status": "ready"}),
    )
    .await;
    assert_problem(&r, 409, "conflict");
    assert_eq!(total(&app, &key, "orders").await, 1);
}

#[tokio::test]
async fn a_failed_request_does_not_use_up_its_idempotency_key() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let r = post_with(
        &app,
        "/api/v1/clients",
        &key,
        &[("idempotency-key", "retry-me")],
        &json!({"first_name": "Sam", "email": "not-an-email"}),
    )
    .await;
    assert_validation(&r, "email");
    let r = post_with(
        &app,
        "/api/v1/clients",
        &key,
        &[("idempotency-key", "retry-me")],
        &json!({"first_name": "Sam", "email": "sam@example.com"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
    let client = id_of(&r.body["client"]);

    // An unknown client is found out by the store; the key is still free.
    let r = post_with(
        &app,
        "/api/v1/orders",
        &key,
        &[("idempotency-key", "order-retry")],
        &json!({"client_id": "cli_nobody"}),
    )
    .await;
    assert_validation(&r, "client_id");
    let r = post_with(
        &app,
        "/api/v1/orders",
        &key,
        &[("idempotency-key", "order-retry")],
        &json!({"client_id": client}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(counts(&app, &key).await, (1, 1, 0));
}

#[tokio::test]
async fn idempotency_keys_are_per_shop_and_per_environment() {
    let app = TestApp::new().await;
    let live = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let shop_b = app
        .new_shop("Screen Doctors", "owner@screens.example")
        .await;
    let b = full_key(&app, &shop_b, "live").await;
    let body = json!({"first_name": "Sam"});
    let mut seen = BTreeSet::new();
    for key in [&live, &test, &b] {
        let r = post_with(
            &app,
            "/api/v1/clients",
            key,
            &[("idempotency-key", "shared")],
            &body,
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.header("idempotent-replayed"), None, "{}", r.text);
        assert!(
            seen.insert(id_of(&r.body["client"])),
            "a new client each time"
        );
        assert_eq!(total(&app, key, "clients").await, 1);
    }
    // Each still replays its own.
    for key in [&live, &test, &b] {
        let r = post_with(
            &app,
            "/api/v1/clients",
            key,
            &[("idempotency-key", "shared")],
            &body,
        )
        .await;
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        let id = id_of(&r.body["client"]);
        get_ok(&app, &format!("/api/v1/clients/{id}"), key).await;
    }
}

#[tokio::test]
async fn an_idempotency_key_is_kept_for_24_hours() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let body = json!({"first_name": "Sam"});
    let headers = [("idempotency-key", "day-long")];
    let first = post_with(&app, "/api/v1/clients", &key, &headers, &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    app.clock.advance_seconds(23 * 3600);
    let r = post_with(&app, "/api/v1/clients", &key, &headers, &body).await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(r.body, first.body);
    app.clock.advance_seconds(2 * 3600);
    let r = post_with(&app, "/api/v1/clients", &key, &headers, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_ne!(r.body["client"]["id"], first.body["client"]["id"]);
}

#[tokio::test]
async fn an_unusable_idempotency_key_is_400() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let long = "k".repeat(256);
    for value in ["", "   ", long.as_str()] {
        let r = post_with(
            &app,
            "/api/v1/clients",
            &key,
            &[("idempotency-key", value)],
            &json!({"first_name": "Sam"}),
        )
        .await;
        assert_problem(&r, 400, "bad_request");
    }
    assert_eq!(total(&app, &key, "clients").await, 0);
}

// ---------------------------------------------------------------------------
// Test data

#[tokio::test]
async fn a_test_key_resets_test_data_to_the_sample_and_live_data_is_untouched() {
    let app = TestApp::new().await;
    let live = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let resetter = key_for(&app, &app.shop_id, "test", &["orders:write"]).await;
    let (lc, lo, ld) = client_order_device(&app, &live).await;
    let live_before = rows(&app, &live, &lc, &lo, &ld).await;
    let (tc, to, td) = client_order_device(&app, &test).await;

    let r = send(
        &app,
        "POST",
        "/api/v1/test-data/reset",
        &resetter,
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let summary = r.body["test_data"].clone();
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no count of {k}: {summary}"))
    };
    assert!(n("clients") >= 3, "{summary}");
    assert!(n("orders") >= 4, "{summary}");
    assert!(n("devices") >= 1, "{summary}");

    // The test lists hold exactly the sample.
    assert_eq!(
        counts(&app, &test).await,
        (n("clients"), n("orders"), n("devices"))
    );
    let r = get_ok(&app, "/api/v1/orders?per_page=100", &test).await;
    let statuses: BTreeSet<&str> = r.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.len() >= 4,
        "orders in several statuses: {statuses:?}"
    );
    // The sample is consistent: orders name sample clients, devices sample orders.
    let sample_clients: BTreeSet<String> = ids(
        &get_ok(&app, "/api/v1/clients?per_page=100", &test).await,
        "clients",
    )
    .into_iter()
    .collect();
    let sample_orders: BTreeSet<String> = ids(&r, "orders").into_iter().collect();
    for o in r.body["orders"].as_array().unwrap() {
        assert!(
            sample_clients.contains(o["client_id"].as_str().unwrap()),
            "{o}"
        );
    }
    let r = get_ok(&app, "/api/v1/devices?per_page=100", &test).await;
    for d in r.body["devices"].as_array().unwrap() {
        assert!(
            sample_orders.contains(d["order_id"].as_str().unwrap()),
            "{d}"
        );
    }
    // What was in test data before is gone.
    assert_not_found(&app.get(&format!("/api/v1/clients/{tc}"), &test).await);
    assert_not_found(&app.get(&format!("/api/v1/orders/{to}"), &test).await);
    assert_not_found(&app.get(&format!("/api/v1/devices/{td}"), &test).await);

    // Live data is untouched, and the sample is not visible to live keys.
    assert_eq!(rows(&app, &live, &lc, &lo, &ld).await, live_before);
    assert_eq!(counts(&app, &live).await, (1, 1, 1));
    for id in &sample_orders {
        assert_not_found(&app.get(&format!("/api/v1/orders/{id}"), &live).await);
    }

    // clients:write or devices:write alone also may reset.
    for perm in ["clients:write", "devices:write"] {
        let k = key_for(&app, &app.shop_id, "test", &[perm]).await;
        let r = send(&app, "POST", "/api/v1/test-data/reset", &k, &[], None).await;
        assert_eq!(r.status, 200, "{perm}: {}", r.text);
    }
}

#[tokio::test]
async fn resetting_again_replaces_the_sample_and_order_references_keep_counting() {
    let app = TestApp::new().await;
    let test = full_key(&app, &app.shop_id, "test").await;
    let live = live_key(&app).await;
    create_order(&app, &live, json!({"client": {"first_name": "Live"}})).await;
    let before_reset = create_order(&app, &test, json!({"client": {"first_name": "Tess"}})).await;
    assert_eq!(before_reset["reference"], "RM-10001");

    let mut highest = reference_number(&before_reset);
    let mut previous_ids: BTreeSet<String> = BTreeSet::new();
    let mut summary = Value::Null;
    for round in 0..2 {
        let r = send(&app, "POST", "/api/v1/test-data/reset", &test, &[], None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if round > 0 {
            assert_eq!(r.body, summary, "the counts are the same each time");
        }
        summary = r.body.clone();
        let counts_now = counts(&app, &test).await;
        assert_eq!(
            counts_now,
            (
                summary["test_data"]["clients"].as_u64().unwrap(),
                summary["test_data"]["orders"].as_u64().unwrap(),
                summary["test_data"]["devices"].as_u64().unwrap(),
            ),
            "replaced, not added to"
        );
        let r = get_ok(&app, "/api/v1/orders?per_page=100&sort=created_at", &test).await;
        let orders = r.body["orders"].as_array().unwrap();
        let numbers: Vec<u64> = orders.iter().map(reference_number).collect();
        assert!(
            numbers.iter().all(|n| *n > highest),
            "round {round}: references never repeat: {numbers:?} after {highest}"
        );
        let distinct: BTreeSet<&u64> = numbers.iter().collect();
        assert_eq!(distinct.len(), numbers.len(), "{numbers:?}");
        highest = *numbers.iter().max().unwrap();
        let now_ids: BTreeSet<String> = ids(&r, "orders").into_iter().collect();
        assert!(previous_ids.is_disjoint(&now_ids), "a reset makes new rows");
        previous_ids = now_ids;
    }
    // A new test order continues the sequence.
    let next = create_order(&app, &test, json!({"client": {"first_name": "Tess"}})).await;
    assert_eq!(reference_number(&next), highest + 1);
    // The live sequence was not advanced by the resets.
    let live_next = create_order(&app, &live, json!({"client": {"first_name": "Live"}})).await;
    assert_eq!(live_next["reference"], "RM-10002");
}

#[tokio::test]
async fn a_live_key_cannot_reset_test_data() {
    let app = TestApp::new().await;
    let live = live_key(&app).await;
    let test = full_key(&app, &app.shop_id, "test").await;
    client_order_device(&app, &live).await;
    client_order_device(&app, &test).await;
    let r = send(&app, "POST", "/api/v1/test-data/reset", &live, &[], None).await;
    assert_problem(&r, 403, "insufficient_permission");
    assert!(
        r.body["detail"].as_str().unwrap().contains("test key"),
        "the detail says a test key is needed: {}",
        r.text
    );
    assert_eq!(counts(&app, &live).await, (1, 1, 1));
    assert_eq!(counts(&app, &test).await, (1, 1, 1));
}

#[tokio::test]
async fn a_test_key_with_only_read_permissions_cannot_reset_test_data() {
    let app = TestApp::new().await;
    let test = full_key(&app, &app.shop_id, "test").await;
    client_order_device(&app, &test).await;
    for perms in [
        &["orders:read"][..],
        &[
            "orders:read",
            "clients:read",
            "devices:read",
            "orders:delete",
        ][..],
    ] {
        let reader = key_for(&app, &app.shop_id, "test", perms).await;
        let r = send(&app, "POST", "/api/v1/test-data/reset", &reader, &[], None).await;
        assert_problem(&r, 403, "insufficient_permission");
    }
    assert_eq!(counts(&app, &test).await, (1, 1, 1));
}

// ---------------------------------------------------------------------------
// Permissions

#[tokio::test]
async fn each_resource_endpoint_needs_its_permission() {
    let app = TestApp::new().await;
    let owner = live_key(&app).await;
    let (client, order, device) = client_order_device(&app, &owner).await;
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        ("GET", "/api/v1/clients".into(), None, "clients:read"),
        (
            "POST",
            "/api/v1/clients".into(),
            Some(json!({"first_name": "Jo"})),
            "clients:write",
        ),
        (
            "GET",
            format!("/api/v1/clients/{client}"),
            None,
            "clients:read",
        ),
        (
            "PATCH",
            format!("/api/v1/clients/{client}"),
            Some(json!({"notes": "x"})),
            "clients:write",
        ),
        (
            "DELETE",
            format!("/api/v1/clients/{client}"),
            None,
            "clients:delete",
        ),
        ("GET", "/api/v1/orders".into(), None, "orders:read"),
        (
            "POST",
            "/api/v1/orders".into(),
            Some(json!({"client_id": client})),
            "orders:write",
        ),
        (
            "GET",
            format!("/api/v1/orders/{order}"),
            None,
            "orders:read",
        ),
        (
            "PATCH",
            format!("/api/v1/orders/{order}"),
            Some(json!({"notes": "x"})),
            "orders:write",
        ),
        (
            "GET",
            format!("/api/v1/orders/{order}/devices"),
            None,
            "devices:read",
        ),
        (
            "POST",
            format!("/api/v1/orders/{order}/devices"),
            Some(json!({"device_type": "phone"})),
            "devices:write",
        ),
        ("GET", "/api/v1/devices".into(), None, "devices:read"),
        (
            "GET",
            format!("/api/v1/devices/{device}"),
            None,
            "devices:read",
        ),
        (
            "PATCH",
            format!("/api/v1/devices/{device}"),
            Some(json!({"color": "red"})),
            "devices:write",
        ),
        (
            "DELETE",
            format!("/api/v1/devices/{device}"),
            None,
            "devices:delete",
        ),
        (
            "DELETE",
            format!("/api/v1/orders/{order}"),
            None,
            "orders:delete",
        ),
    ];
    let before = snapshot(&app, &owner).await;
    for (method, path, body, needed) in cases {
        let others: Vec<&str> = RESOURCE_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| *p != needed)
            .collect();
        let k = key_for(&app, &app.shop_id, "live", &others).await;
        let r = app.call(method, &path, Some(k.as_str()), body).await;
        assert_problem(&r, 403, "insufficient_permission");
        assert_eq!(r.body["required_permission"], needed, "{method} {path}");
    }
    assert_eq!(snapshot(&app, &owner).await, before);
}

// ---------------------------------------------------------------------------
// Error format and odd ids

#[tokio::test]
async fn every_error_is_problem_json_with_instance_equal_to_the_request_id() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let reader = key_for(&app, &app.shop_id, "live", &["clients:read"]).await;
    let (client, _, _) = client_order_device(&app, &key).await;
    let huge = serde_json::to_vec(&json!({"notes": "x".repeat(1_100_000)})).unwrap();
    let cases: Vec<(TestResponse, u16, &str)> = vec![
        (
            app.call("GET", "/api/v1/clients", None, None).await,
            401,
            "missing_key",
        ),
        (
            app.post("/api/v1/clients", &reader, json!({"first_name": "Jo"}))
                .await,
            403,
            "insufficient_permission",
        ),
        (
            send(
                &app,
                "POST",
                "/api/v1/clients",
                &key,
                &[],
                Some(("application/json", b"{".to_vec())),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            app.get("/api/v1/clients?per_page=abc", &key).await,
            400,
            "bad_request",
        ),
        (
            app.get("/api/v1/clients/cli_nope", &key).await,
            404,
            "not_found",
        ),
        (
            app.get("/api/v1/no-such-thing", &key).await,
            404,
            "not_found",
        ),
        (
            send(&app, "PUT", "/api/v1/clients", &key, &[], None).await,
            405,
            "method_not_allowed",
        ),
        (
            app.delete(&format!("/api/v1/clients/{client}"), &key).await,
            409,
            "conflict",
        ),
        (
            send(
                &app,
                "POST",
                "/api/v1/clients",
                &key,
                &[],
                Some(("application/json", huge)),
            )
            .await,
            413,
            "payload_too_large",
        ),
        (
            send(
                &app,
                "POST",
                "/api/v1/clients",
                &key,
                &[],
                Some(("text/plain", b"Sam".to_vec())),
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            app.post("/api/v1/clients", &key, json!({"email": "x"}))
                .await,
            422,
            "validation_failed",
        ),
    ];
    let mut request_ids = HashSet::new();
    for (r, status, code) in &cases {
        assert_problem(r, *status, code);
        assert!(request_ids.insert(r.header("x-request-id").unwrap().to_owned()));
    }
    // The 405 says what is allowed.
    assert!(
        cases[6]
            .0
            .header("allow")
            .is_some_and(|a| a.contains("GET") && a.contains("POST"))
    );

    // A caller's own plain request id is echoed as the instance.
    let r = send(
        &app,
        "GET",
        "/api/v1/orders/ord_nope",
        &key,
        &[("x-request-id", "my-trace-123")],
        None,
    )
    .await;
    assert_not_found(&r);
    assert_eq!(r.header("x-request-id"), Some("my-trace-123"));
    assert_eq!(r.body["instance"], "my-trace-123");

    // Successes carry a request id too.
    let r = get_ok(&app, "/api/v1/clients", &key).await;
    assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn ids_with_odd_characters_are_404_not_500() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, device) = client_order_device(&app, &key).await;
    let before = snapshot(&app, &key).await;
    let long = "x".repeat(300);
    let long_ord = format!("ord_{}", "A".repeat(300));
    let odd = [
        "%00",
        "cli_%00",
        "..%2Fx",
        "%2E%2E%2Fx",
        "a%20b",
        "%27%20OR%201%3D1--",
        "%25",
        "%FF",
        "%F0%9F%94%91",
        "%E2%80%AE",
        long.as_str(),
        long_ord.as_str(),
        "null",
        "0",
        "-1",
        "*",
        "%2A",
        "_",
    ];
    let bodies = [
        ("clients", json!({"notes": "x"})),
        ("orders", json!({"notes": "x"})),
        ("devices", json!({"color": "red"})),
    ];
    for id in odd {
        for (resource, body) in &bodies {
            let path = format!("/api/v1/{resource}/{id}");
            assert_not_found(&app.get(&path, &key).await);
            assert_not_found(&app.patch(&path, &key, body.clone()).await);
            assert_not_found(&app.delete(&path, &key).await);
        }
        let path = format!("/api/v1/orders/{id}/devices");
        assert_not_found(&app.get(&path, &key).await);
        assert_not_found(&app.post(&path, &key, json!({"device_type": "phone"})).await);
    }
    // A path that walks up is no route at all: still a 404 problem.
    for path in [
        format!("/api/v1/clients/../orders/{order}"),
        format!("/api/v1/clients/{client}/x"),
        format!("/api/v1/devices/{device}/.."),
    ] {
        assert_not_found(&app.get(&path, &key).await);
    }
    // Filters with odd values are just filters.
    for q in [
        "client_id=%00",
        "client_id=%27%20OR%201%3D1--",
        &format!("client_id={long}"),
    ] {
        let r = get_ok(&app, &format!("/api/v1/orders?{q}"), &key).await;
        assert_eq!(r.body["orders"], json!([]), "{q}");
    }
    for q in ["order_id=%00", "order_id=%25", &format!("order_id={long}")] {
        let r = get_ok(&app, &format!("/api/v1/devices?{q}"), &key).await;
        assert_eq!(r.body["devices"], json!([]), "{q}");
    }
    assert_eq!(snapshot(&app, &key).await, before);
}

#[tokio::test]
async fn client_names_with_bidi_override_or_zero_width_characters_are_422_naming_the_field() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    for (field, value) in [
        ("first_name", "Ann\u{200B}a"),
        ("last_name", "Smith\u{202E}txt.exe"),
        ("business_name", "\u{2066}Fix-It\u{2069} Phones"),
        ("business_name", "Fix\u{FEFF}It"),
    ] {
        let r = app
            .post("/api/v1/clients", &key, json!({ field: value }))
            .await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    let client = create_client(&app, &key, json!({"business_name": "Fix-It Phones"})).await;
    let id = client["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/clients/{id}"),
            &key,
            json!({"business_name": "Fix-It\u{202D} Phones"}),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "business_name", "{}", r.text);
    assert_eq!(total(&app, &key, "clients").await, 1);
}

// ----- The contract: the server refuses exactly what the document refuses -----

#[tokio::test]
async fn an_empty_query_value_is_refused_naming_the_parameter_not_ignored() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    for (path, name) in [
        ("/api/v1/orders?updated_since=", "updated_since"),
        ("/api/v1/clients?q=", "q"),
        ("/api/v1/devices?order_id=", "order_id"),
        ("/api/v1/orders?status=&page=1", "status"),
        ("/api/v1/orders?page=", "page"),
    ] {
        let r = app.get(path, &key).await;
        assert_problem(&r, 400, "bad_request");
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("`{name}`")) && detail.contains("empty"),
            "{path}: {detail}"
        );
    }
    // Absent parameters still mean "no filter".
    get_ok(&app, "/api/v1/orders", &key).await;
}

#[tokio::test]
async fn page_is_a_32_bit_integer_and_a_larger_one_is_422_naming_page() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let r = get_ok(&app, "/api/v1/clients?page=2147483647", &key).await;
    assert_eq!(r.body["meta"]["page"], 2_147_483_647_u32);
    for path in [
        "/api/v1/clients?page=2147483648",
        "/api/v1/orders?page=4294967295",
    ] {
        let r = app.get(path, &key).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "page", "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer_and_no_message_names_a_rust_type() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    let order = create_order(
        &app,
        &key,
        json!({"client_id": client["id"], "estimate_cents": 100.0}),
    )
    .await;
    assert_eq!(
        order["estimate_cents"], 100,
        "JSON's 100.0 is the integer 100"
    );

    let id = order["id"].as_str().unwrap();
    for (body, field) in [
        (json!({"estimate_cents": 100.5}), "estimate_cents"),
        (json!({"price_cents": "12"}), "price_cents"),
        (json!({"price_cents": true}), "price_cents"),
        (json!({"notes": 5}), "notes"),
        (json!({"status": 3}), "status"),
    ] {
        let r = app
            .patch(&format!("/api/v1/orders/{id}"), &key, body.clone())
            .await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.text);
        for rust in ["i64", "u32", "usize", "invalid type:", "struct ", "Option"] {
            assert!(!r.text.contains(rust), "{body} answered {}", r.text);
        }
    }
    let r = app
        .patch(
            &format!("/api/v1/orders/{id}"),
            &key,
            json!({"estimate_cents": 100.5}),
        )
        .await;
    assert_eq!(
        r.body["errors"][0]["message"], "must be an integer (got the number 100.5)",
        "{}",
        r.text
    );
}

#[tokio::test]
async fn null_is_refused_where_the_document_says_a_field_is_not_nullable() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(&app, &key, json!({"first_name": "Sam"})).await;
    for (body, field) in [
        (json!({"client_id": client["id"], "status": null}), "status"),
        (json!({"client_id": client["id"], "client": null}), "client"),
        (
            json!({"client_id": null, "client": {"first_name": "Alex"}}),
            "client_id",
        ),
    ] {
        let r = app.post("/api/v1/orders", &key, body.clone()).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.text);
    }
    let order = create_order(&app, &key, json!({"client_id": client["id"]})).await;
    let r = app
        .patch(
            &format!("/api/v1/orders/{}", order["id"].as_str().unwrap()),
            &key,
            json!({"client": null}),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
}

#[tokio::test]
async fn a_control_character_is_refused_even_at_the_ends_of_a_value() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    for body in [
        json!({"first_name": "Sam", "city": "\u{000B}Leeds"}),
        json!({"first_name": "Sam", "email": "sam@example.com\u{001F}"}),
    ] {
        let r = app.post("/api/v1/clients", &key, body.clone()).await;
        assert_problem(&r, 422, "validation_failed");
        assert!(r.text.contains("control characters"), "{body}: {}", r.text);
    }
    // Ordinary blanks around a value are still trimmed.
    let c = create_client(&app, &key, json!({"first_name": "  Sam\t"})).await;
    assert_eq!(c["first_name"], "Sam");
}

// ---------------------------------------------------------------------------
// Integer ids, the new optional fields, devices of a client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn objects_show_numeric_ids_and_the_new_optional_fields() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let client = create_client(
        &app,
        &key,
        json!({"first_name": "Sam", "mobile": "+44 7700 900123", "address_2": "Flat 2", "state": "Kent"}),
    )
    .await;
    assert!(client["numeric_id"].as_i64().unwrap() > 0, "{client}");
    assert_has_fields(
        &client,
        &json!({"mobile": "+44 7700 900123", "address_2": "Flat 2", "state": "Kent"}),
    );
    // `mobile` follows the phone rules.
    let r = app
        .post(
            "/api/v1/clients",
            &key,
            json!({"first_name": "X", "mobile": "call me"}),
        )
        .await;
    assert_validation(&r, "mobile");
    let order = create_order(
        &app,
        &key,
        json!({"client_id": id_of(&client), "problem_type": "Screen"}),
    )
    .await;
    assert!(order["numeric_id"].as_i64().unwrap() > 0, "{order}");
    assert_eq!(order["problem_type"], "Screen");
    let device = create_device(
        &app,
        &key,
        &id_of(&order),
        json!({"device_type": "phone", "name": "Sam's phone"}),
    )
    .await;
    assert!(device["numeric_id"].as_i64().unwrap() > 0, "{device}");
    assert_eq!(
        (&device["name"], &device["client_id"], &device["order_id"]),
        (
            &json!("Sam's phone"),
            &json!(id_of(&client)),
            &json!(id_of(&order))
        )
    );
    let r = app
        .patch(
            &format!("/api/v1/orders/{}", id_of(&order)),
            &key,
            json!({"problem_type": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["order"]["problem_type"], Value::Null);
}

#[tokio::test]
async fn a_device_added_to_a_client_has_no_order_and_lists_under_the_client() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let (client, order, on_order) = client_order_device(&app, &key).await;
    let r = app
        .post(
            "/api/v1/devices",
            &key,
            json!({"client_id": client, "device_type": "laptop", "name": "Office laptop"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let own = r.body["device"].clone();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/devices/{}", id_of(&own)).as_str())
    );
    assert_eq!(
        (&own["order_id"], &own["client_id"]),
        (&Value::Null, &json!(client))
    );
    let listed = get_ok(&app, &format!("/api/v1/devices?client_id={client}"), &key).await;
    let ids: BTreeSet<String> = listed.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, BTreeSet::from([on_order.clone(), id_of(&own)]));
    let got = get_ok(&app, &format!("/api/v1/devices/{}", id_of(&own)), &key).await;
    assert_eq!(got.body["device"]["name"], "Office laptop");

    // Refusals: no client, an unknown one, a bad field, an unknown field.
    let r = app
        .post("/api/v1/devices", &key, json!({"device_type": "phone"}))
        .await;
    assert_validation(&r, "client_id");
    let r = app
        .post(
            "/api/v1/devices",
            &key,
            json!({"client_id": "cli_nope", "device_type": "phone"}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .post(
            "/api/v1/devices",
            &key,
            json!({"client_id": client, "device_type": "toaster"}),
        )
        .await;
    assert_validation(&r, "device_type");
    let r = app
        .post(
            "/api/v1/devices",
            &key,
            json!({"client_id": client, "device_type": "phone", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // Another shop's key cannot add to this client.
    let other_shop = app.new_shop("Other", "other@example.com").await;
    let other = full_key(&app, &other_shop, "live").await;
    let r = app
        .post(
            "/api/v1/devices",
            &other,
            json!({"client_id": client, "device_type": "phone"}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    // The client is not deleted from under its device.
    let r = app
        .delete(&format!("/api/v1/devices/{on_order}"), &key)
        .await;
    assert_eq!(r.status, 204);
    let r = app.delete(&format!("/api/v1/orders/{order}"), &key).await;
    assert_eq!(r.status, 204);
    let r = app.delete(&format!("/api/v1/clients/{client}"), &key).await;
    assert_problem(&r, 409, "conflict");
}
