//! The RepairShopr-compatible API (`/api/v1/customers`, `/tickets`,
//! `/customer_assets`), black-box through the router: every operation and
//! filter, JSON and form bodies, the ticket status table both ways, tenancy,
//! environments, permissions, legacy keys and usage, paging while rows are
//! added, and a sync client walking it the way RepairShopr clients do.
mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::Request;
use common::{TestApp, TestResponse, assert_problem};
use latchkey::service::keys::NewKeyInput;
use serde_json::{Value, json};

const ALL: &[&str] = &[
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

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async fn key_for(app: &TestApp, shop_id: &str, environment: &str, permissions: &[&str]) -> String {
    app.key_with(
        shop_id,
        NewKeyInput {
            name: Some(format!("RepairShopr sync ({environment})")),
            permissions: Some(permissions.iter().map(|p| p.to_string()).collect()),
            environment: Some(environment.into()),
            rate_limit_per_minute: Some(10_000),
            ..Default::default()
        },
    )
    .await
    .1
}

async fn live_key(app: &TestApp) -> String {
    key_for(app, &app.shop_id.clone(), "live", ALL).await
}

async fn put(app: &TestApp, path: &str, key: &str, body: Value) -> TestResponse {
    app.call("PUT", path, Some(key), Some(body)).await
}

/// A form-encoded request.
async fn form(app: &TestApp, method: &str, path: &str, key: &str, body: &str) -> TestResponse {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.send(req).await
}

/// A GET with the key in a bare `Authorization: <key>` header, as
/// RepairShopr clients send it.
async fn bare_get(app: &TestApp, path: &str, key: &str) -> TestResponse {
    let req = Request::builder()
        .uri(path)
        .header("authorization", key)
        .body(Body::empty())
        .unwrap();
    app.send(req).await
}

fn ok(r: &TestResponse, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
}

/// 422 `validation_failed` naming `field`.
fn assert_validation(r: &TestResponse, field: &str) {
    assert_problem(r, 422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {}", r.text))
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&field), "expected `{field}`: {}", r.text);
}

async fn customer(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/api/v1/customers", key, body).await;
    ok(&r, "create customer");
    r.body["customer"].clone()
}

async fn ticket(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/api/v1/tickets", key, body).await;
    ok(&r, "create ticket");
    r.body["ticket"].clone()
}

async fn asset(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/api/v1/customer_assets", key, body).await;
    ok(&r, "create asset");
    r.body["customer_asset"].clone()
}

fn n(v: &Value) -> i64 {
    v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer id: {v}"))
}

/// The integer ids of a list answer's items under `name`.
fn ids(r: &TestResponse, name: &str) -> Vec<i64> {
    r.body[name]
        .as_array()
        .unwrap_or_else(|| panic!("no `{name}`: {}", r.text))
        .iter()
        .map(n)
        .collect()
}

// ---------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn customers_are_created_read_updated_in_part_and_deleted_under_repairshopr_names() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let sent = json!({
        "firstname": "Sam", "lastname": "Patel", "business_name": "Patel Repairs",
        "email": "sam@example.com", "phone": "+44 20 7946 0958", "mobile": "+44 7700 900123",
        "address": "1 High St", "address_2": "Flat 2", "city": "London", "state": "Greater London",
        "zip": "SW1A 1AA", "notes": "VIP",
        // RepairShopr fields latchkey has no home for are ignored.
        "referred_by": "Google", "get_sms": true, "tax_rate_id": 4
    });
    let made = customer(&app, &key, sent.clone()).await;
    let id = n(&made);
    assert!(id > 0);
    for (k, v) in sent.as_object().unwrap() {
        if ["referred_by", "get_sms", "tax_rate_id"].contains(&k.as_str()) {
            assert!(made.get(k).is_none(), "{k} is not answered: {made}");
        } else {
            assert_eq!(&made[k], v, "{k}: {made}");
        }
    }
    assert_eq!(made["fullname"], "Sam Patel");
    assert_eq!(made["business_and_full_name"], "Patel Repairs - Sam Patel");
    assert!(made["created_at"].is_string() && made["updated_at"].is_string());

    // The native client is the same record, by its numeric_id.
    let natives = app.get("/api/v1/clients", &key).await;
    let native = &natives.body["clients"][0];
    assert_eq!(
        (
            &native["numeric_id"],
            &native["postcode"],
            &native["first_name"]
        ),
        (&json!(id), &json!("SW1A 1AA"), &json!("Sam"))
    );

    let path = format!("/api/v1/customers/{id}");
    let got = app.get(&path, &key).await;
    ok(&got, "show");
    assert_eq!(got.body["customer"], made);

    // PUT changes what it sends; the rest stays; null or "" clears.
    let r = put(
        &app,
        &path,
        &key,
        json!({"mobile": "+44 7700 900999", "notes": null, "state": ""}),
    )
    .await;
    ok(&r, "update");
    let c = &r.body["customer"];
    assert_eq!(
        (
            &c["mobile"],
            &c["notes"],
            &c["state"],
            &c["firstname"],
            &c["zip"]
        ),
        (
            &json!("+44 7700 900999"),
            &Value::Null,
            &Value::Null,
            &json!("Sam"),
            &json!("SW1A 1AA")
        )
    );
    // Wrapped in the resource's name works too.
    let r = put(&app, &path, &key, json!({"customer": {"city": "Leeds"}})).await;
    ok(&r, "wrapped update");
    assert_eq!(r.body["customer"]["city"], "Leeds");

    // Errors name RepairShopr's fields; nothing changes.
    let r = put(
        &app,
        &path,
        &key,
        json!({"zip": "x".repeat(21), "phone": "call me"}),
    )
    .await;
    assert_validation(&r, "zip");
    assert_validation(&r, "phone");
    let r = app
        .post("/api/v1/customers", &key, json!({"notes": "no name"}))
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert!(r.text.contains("firstname"), "{}", r.text);
    assert!(!r.text.contains("first_name"), "{}", r.text);
    assert_eq!(app.get(&path, &key).await.body["customer"]["city"], "Leeds");

    // A whole number or a boolean stands for its text; a fraction (whose
    // text is not what was meant) and -2^63 (what a JSON number a little
    // below it reads as) are refused.
    let r = put(
        &app,
        &path,
        &key,
        json!({"zip": 90210, "mobile": 4477009001_i64, "notes": true}),
    )
    .await;
    ok(&r, "numbers as text");
    assert_eq!(
        (
            &r.body["customer"]["zip"],
            &r.body["customer"]["mobile"],
            &r.body["customer"]["notes"]
        ),
        (&json!("90210"), &json!("4477009001"), &json!("true"))
    );
    for bad in [json!({"zip": 1.5}), json!({"notes": i64::MIN})] {
        let r = put(&app, &path, &key, bad.clone()).await;
        let field = bad.as_object().unwrap().keys().next().unwrap().clone();
        assert_validation(&r, &field);
    }
    let req = Request::builder()
        .method("PUT")
        .uri(&path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"notes": -9223372036854775809}"#))
        .unwrap();
    assert_validation(&app.send(req).await, "notes");
    assert_eq!(app.get(&path, &key).await.body["customer"]["zip"], "90210");

    let r = app.delete(&path, &key).await;
    ok(&r, "delete");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains(&id.to_string())
    );
    assert_problem(&app.get(&path, &key).await, 404, "not_found");
    assert_problem(&app.delete(&path, &key).await, 404, "not_found");
    // Not an integer id: nothing by that name.
    for bad in ["abc", "0", "-1", "1.5", "cli_x"] {
        assert_problem(
            &app.get(&format!("/api/v1/customers/{bad}"), &key).await,
            404,
            "not_found",
        );
    }
}

#[tokio::test]
async fn a_customer_with_tickets_or_assets_is_not_deleted() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let a = customer(&app, &key, json!({"firstname": "A"})).await;
    let b = customer(&app, &key, json!({"firstname": "B"})).await;
    ticket(&app, &key, json!({"customer_id": n(&a), "subject": "x"})).await;
    asset(
        &app,
        &key,
        json!({"customer_id": n(&b), "asset_type": "Phone"}),
    )
    .await;
    for c in [&a, &b] {
        let r = app
            .delete(&format!("/api/v1/customers/{}", n(c)), &key)
            .await;
        assert_problem(&r, 409, "conflict");
    }
}

#[tokio::test]
async fn the_customer_list_pages_by_25_in_id_order_and_filters() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let mut made = Vec::new();
    for i in 0..27 {
        let c = customer(
            &app,
            &key,
            json!({"firstname": format!("Person{i:02}"), "email": format!("p{i}@example.com")}),
        )
        .await;
        made.push(n(&c));
    }
    let r = app.get("/api/v1/customers", &key).await;
    ok(&r, "page 1");
    assert_eq!(ids(&r, "customers"), made[..25].to_vec());
    assert_eq!(
        r.body["meta"],
        json!({"total_pages": 2, "total_entries": 27, "per_page": 25, "page": 1})
    );
    // Unknown parameters are ignored, as RepairShopr does; per_page is 25.
    let r = app
        .get(
            "/api/v1/customers?page=2&per_page=100&sort=name&utm_source=x",
            &key,
        )
        .await;
    ok(&r, "page 2");
    assert_eq!(ids(&r, "customers"), made[25..].to_vec());
    assert_eq!(r.body["meta"]["page"], 2);
    let r = app.get("/api/v1/customers?page=9", &key).await;
    ok(&r, "past the end");
    assert!(ids(&r, "customers").is_empty());
    // As the native lists and the OpenAPI document: a 32-bit page number.
    let r = app.get("/api/v1/customers?page=2147483647", &key).await;
    ok(&r, "the last page there can be");
    for bad in ["0", "x", "2147483648"] {
        let r = app
            .get(&format!("/api/v1/customers?page={bad}"), &key)
            .await;
        assert_validation(&r, "page");
    }

    // query: name, email or phone contains, any case.
    let r = app.get("/api/v1/customers?query=PERSON1", &key).await;
    assert_eq!(ids(&r, "customers"), made[10..20].to_vec());
    // email: the whole address, any case.
    let r = app
        .get("/api/v1/customers?email=P3@Example.com", &key)
        .await;
    assert_eq!(ids(&r, "customers"), vec![made[3]]);
    let r = app.get("/api/v1/customers?email=p3@example", &key).await;
    assert!(ids(&r, "customers").is_empty());

    // since_updated_at: inclusive, every way sync clients write it.
    app.clock.advance_seconds(3600);
    let changed = made[5];
    ok(
        &put(
            &app,
            &format!("/api/v1/customers/{changed}"),
            &key,
            json!({"city": "York"}),
        )
        .await,
        "touch",
    );
    let at = app
        .get(&format!("/api/v1/customers/{changed}"), &key)
        .await
        .body["customer"]["updated_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = latchkey::domain::clock::Timestamp::parse_rfc3339(&at).unwrap();
    let whole = t.unix_seconds();
    let plain = time_text(whole, "Z");
    for since in [
        at.clone(),
        plain.clone(),
        plain.replace('Z', ".000000Z"),
        time_text(whole + 3600, "+01:00"),
        plain.trim_end_matches('Z').to_owned(),
    ] {
        let r = app
            .get(
                &format!("/api/v1/customers?since_updated_at={}", encode(&since)),
                &key,
            )
            .await;
        ok(&r, &since);
        assert_eq!(ids(&r, "customers"), vec![changed], "since {since}");
    }
    let r = app
        .get("/api/v1/customers?since_updated_at=yesterday", &key)
        .await;
    assert_validation(&r, "since_updated_at");
}

/// `2026-11-23T12:00:00<zone>` for unix seconds `s` (shifted into the zone
/// by the caller).
fn time_text(s: i64, zone: &str) -> String {
    let t = latchkey::domain::clock::Timestamp::from_unix_seconds(s).to_rfc3339();
    format!("{}{zone}", &t[..19])
}

fn encode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn form_encoded_bodies_work_for_every_create_and_update() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let r = form(
        &app,
        "POST",
        "/api/v1/customers",
        &key,
        "firstname=Sam&lastname=O%27Neil&email=sam%40example.com&zip=12345&unknown=1",
    )
    .await;
    ok(&r, "form customer");
    let c = r.body["customer"].clone();
    assert_eq!(
        (&c["firstname"], &c["lastname"], &c["email"], &c["zip"]),
        (
            &json!("Sam"),
            &json!("O'Neil"),
            &json!("sam@example.com"),
            &json!("12345")
        )
    );
    let cid = n(&c);
    let r = form(
        &app,
        "PUT",
        &format!("/api/v1/customers/{cid}"),
        &key,
        "customer[city]=Leeds",
    )
    .await;
    ok(&r, "form update, wrapped");
    assert_eq!(r.body["customer"]["city"], "Leeds");

    let r = form(
        &app,
        "POST",
        "/api/v1/tickets",
        &key,
        &format!("customer_id={cid}&subject=No+power&status=In+Progress&due_date=2026-12-04T17:00:00.000-05:00"),
    )
    .await;
    ok(&r, "form ticket");
    let t = r.body["ticket"].clone();
    assert_eq!(
        (
            &t["subject"],
            &t["status"],
            &t["due_date"],
            &t["customer_id"]
        ),
        (
            &json!("No power"),
            &json!("In Progress"),
            &json!("2026-12-04"),
            &json!(cid)
        )
    );
    let r = form(
        &app,
        "PUT",
        &format!("/api/v1/tickets/{}", n(&t)),
        &key,
        "status=Ready",
    )
    .await;
    ok(&r, "form ticket update");
    assert_eq!(r.body["ticket"]["status"], "Ready");

    let r = form(
        &app,
        "POST",
        "/api/v1/customer_assets",
        &key,
        &format!(
            "customer_id={cid}&name=Sam%27s+phone&asset_type=phone&asset_serial=F2LX\
             &properties%5Bimei%5D={IMEI}&properties[make]=Apple&properties[model]=iPhone+13"
        ),
    )
    .await;
    ok(&r, "form asset");
    let a = r.body["customer_asset"].clone();
    assert_eq!(
        a["properties"],
        json!({"imei": IMEI, "make": "Apple", "model": "iPhone 13", "color": null})
    );
    assert_eq!(
        (&a["asset_type"], &a["asset_serial"]),
        (&json!("Phone"), &json!("F2LX"))
    );
    let r = form(
        &app,
        "PUT",
        &format!("/api/v1/customer_assets/{}", n(&a)),
        &key,
        "properties[color]=Blue",
    )
    .await;
    ok(&r, "form asset update");
    assert_eq!(r.body["customer_asset"]["properties"]["color"], "Blue");
    assert_eq!(r.body["customer_asset"]["properties"]["make"], "Apple");

    // A malformed nesting or another media type is refused.
    let r = form(&app, "POST", "/api/v1/customers", &key, "a[=1").await;
    assert_problem(&r, 422, "validation_failed");
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/customers")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/plain")
        .body(Body::from("firstname=Sam"))
        .unwrap();
    assert_problem(&app.send(req).await, 415, "unsupported_media_type");
}

// ---------------------------------------------------------------------------
// Tickets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tickets_map_to_orders_with_their_number_and_customer() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let c = customer(&app, &key, json!({"firstname": "Sam", "lastname": "Patel"})).await;
    let b = customer(
        &app,
        &key,
        json!({"business_name": "Acme Ltd", "firstname": "Jo"}),
    )
    .await;
    let t = ticket(
        &app,
        &key,
        json!({"customer_id": n(&c), "subject": "Cracked screen", "problem_type": "Screen",
               "due_date": "2026-12-04", "priority": "High"}),
    )
    .await;
    assert_eq!(
        (
            &t["subject"],
            &t["problem_type"],
            &t["status"],
            &t["customer_id"],
            &t["due_date"]
        ),
        (
            &json!("Cracked screen"),
            &json!("Screen"),
            &json!("New"),
            &json!(n(&c)),
            &json!("2026-12-04")
        )
    );
    assert_eq!(t["customer_business_then_name"], "Sam Patel");
    assert_eq!(t["comments"], json!([]));
    assert!(t.get("priority").is_none());
    // number = the reference's number; the native order is the same record.
    let orders = app.get("/api/v1/orders", &key).await;
    let order = &orders.body["orders"][0];
    let reference = order["reference"].as_str().unwrap();
    assert_eq!(
        t["number"],
        json!(reference.trim_start_matches("RM-").parse::<i64>().unwrap())
    );
    assert_eq!(order["numeric_id"], json!(n(&t)));
    assert_eq!(order["problem_description"], "Cracked screen");

    let path = format!("/api/v1/tickets/{}", n(&t));
    ok(&app.get(&path, &key).await, "show");
    // Moving a ticket to another customer, keeping the rest.
    let r = put(&app, &path, &key, json!({"customer_id": n(&b).to_string()})).await;
    ok(&r, "move");
    assert_eq!(
        (
            &r.body["ticket"]["customer_id"],
            &r.body["ticket"]["customer_business_then_name"],
            &r.body["ticket"]["subject"]
        ),
        (&json!(n(&b)), &json!("Acme Ltd"), &json!("Cracked screen"))
    );

    // Refusals name RepairShopr's fields and change nothing.
    let r = app
        .post("/api/v1/tickets", &key, json!({"subject": "no customer"}))
        .await;
    assert_validation(&r, "customer_id");
    let r = app
        .post(
            "/api/v1/tickets",
            &key,
            json!({"customer_id": 999_999, "subject": "x"}),
        )
        .await;
    assert_validation(&r, "customer_id");
    let r = app
        .post("/api/v1/tickets", &key, json!({"customer_id": "abc"}))
        .await;
    assert_validation(&r, "customer_id");
    let r = put(&app, &path, &key, json!({"due_date": "next week"})).await;
    assert_validation(&r, "due_date");
    let r = put(&app, &path, &key, json!({"status": "Done"})).await;
    assert_validation(&r, "status");
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    for allowed in [
        "New",
        "In Progress",
        "Waiting for Parts",
        "Waiting on Customer",
        "Ready",
        "Resolved",
        "Cancelled",
    ] {
        assert!(message.contains(allowed), "{message}");
    }
    assert_eq!(app.get(&path, &key).await.body["ticket"]["status"], "New");

    let r = app.delete(&path, &key).await;
    ok(&r, "delete");
    assert!(r.body["message"].is_string());
    assert_problem(&app.get(&path, &key).await, 404, "not_found");
}

/// The native id of the order whose numeric_id is `n`.
async fn order_of(app: &TestApp, key: &str, n: i64) -> String {
    let r = app.get("/api/v1/orders?per_page=100", key).await;
    r.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["numeric_id"] == n)
        .unwrap_or_else(|| panic!("no order {n}: {}", r.text))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Ticket status → order status, and order status → ticket status.
const TO_ORDER: &[(&str, &str)] = &[
    ("New", "awaiting_device"),
    ("In Progress", "in_progress"),
    ("Waiting for Parts", "waiting_for_parts"),
    ("Waiting on Customer", "awaiting_approval"),
    ("Ready", "ready"),
    ("Resolved", "collected"),
    ("Cancelled", "cancelled"),
];
const TO_TICKET: &[(&str, &str)] = &[
    ("awaiting_device", "New"),
    ("in_progress", "In Progress"),
    ("waiting_for_parts", "Waiting for Parts"),
    ("awaiting_approval", "Waiting on Customer"),
    ("ready", "Ready"),
    ("collected", "Resolved"),
    ("despatched", "Resolved"),
    ("cancelled", "Cancelled"),
];

#[tokio::test]
async fn the_status_table_holds_both_ways_and_filters() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let c = customer(&app, &key, json!({"firstname": "Sam"})).await;
    let t = ticket(&app, &key, json!({"customer_id": n(&c)})).await;
    let path = format!("/api/v1/tickets/{}", n(&t));
    let order_id = order_of(&app, &key, n(&t)).await;
    for (ticket_status, order_status) in TO_ORDER {
        let r = put(&app, &path, &key, json!({"status": ticket_status})).await;
        ok(&r, ticket_status);
        assert_eq!(r.body["ticket"]["status"], *ticket_status);
        let o = app.get(&format!("/api/v1/orders/{order_id}"), &key).await;
        assert_eq!(o.body["order"]["status"], *order_status, "{ticket_status}");
    }
    // Any case, as sent by hand-written clients.
    ok(
        &put(&app, &path, &key, json!({"status": "in progress"})).await,
        "lower case",
    );
    for (order_status, ticket_status) in TO_TICKET {
        let r = app
            .patch(
                &format!("/api/v1/orders/{order_id}"),
                &key,
                json!({"status": order_status}),
            )
            .await;
        ok(&r, order_status);
        assert_eq!(
            app.get(&path, &key).await.body["ticket"]["status"],
            *ticket_status,
            "{order_status}"
        );
    }

    // The status filter: Resolved is collected or despatched.
    let mut by_status: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let d = customer(&app, &key, json!({"firstname": "Kim"})).await;
    for (order_status, ticket_status) in TO_TICKET {
        let t = ticket(&app, &key, json!({"customer_id": n(&d)})).await;
        let native = order_of(&app, &key, n(&t)).await;
        ok(
            &app.patch(
                &format!("/api/v1/orders/{native}"),
                &key,
                json!({"status": order_status}),
            )
            .await,
            "set",
        );
        by_status.entry(ticket_status).or_default().push(n(&t));
    }
    for (ticket_status, expected) in &by_status {
        let r = app
            .get(
                &format!(
                    "/api/v1/tickets?customer_id={}&status={}",
                    n(&d),
                    ticket_status.replace(' ', "+")
                ),
                &key,
            )
            .await;
        ok(&r, ticket_status);
        assert_eq!(&ids(&r, "tickets"), expected, "{ticket_status}");
    }
    assert_eq!(by_status["Resolved"].len(), 2);
    let r = app.get("/api/v1/tickets?status=Done", &key).await;
    assert_validation(&r, "status");
}

#[tokio::test]
async fn the_ticket_list_filters_by_customer_and_time_in_id_order() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let a = customer(&app, &key, json!({"firstname": "A"})).await;
    let b = customer(&app, &key, json!({"firstname": "B"})).await;
    let mut of_a = Vec::new();
    for i in 0..3 {
        of_a.push(n(&ticket(
            &app,
            &key,
            json!({"customer_id": n(&a), "subject": format!("a{i}")}),
        )
        .await));
        ticket(&app, &key, json!({"customer_id": n(&b)})).await;
    }
    let r = app
        .get(&format!("/api/v1/tickets?customer_id={}", n(&a)), &key)
        .await;
    assert_eq!(ids(&r, "tickets"), of_a);
    assert_eq!(r.body["meta"]["total_entries"], 3);
    let r = app.get("/api/v1/tickets?customer_id=999999", &key).await;
    ok(&r, "unknown customer");
    assert!(ids(&r, "tickets").is_empty());
    let r = app.get("/api/v1/tickets?customer_id=abc", &key).await;
    assert_validation(&r, "customer_id");
    let r = app.get("/api/v1/tickets", &key).await;
    assert_eq!(r.body["meta"]["total_entries"], 6);
    let all = ids(&r, "tickets");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");

    app.clock.advance_seconds(60);
    let later = ticket(&app, &key, json!({"customer_id": n(&b)})).await;
    let since = later["created_at"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/tickets?since_updated_at={}", encode(since)),
            &key,
        )
        .await;
    assert_eq!(ids(&r, "tickets"), vec![n(&later)]);
}

// ---------------------------------------------------------------------------
// Customer assets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn customer_assets_are_devices_of_the_customer() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let c = customer(&app, &key, json!({"firstname": "Sam"})).await;
    let other = customer(&app, &key, json!({"firstname": "Kim"})).await;
    let a = asset(
        &app,
        &key,
        json!({"customer_id": n(&c), "name": "Sam's iPhone", "asset_type": "PHONE",
               "asset_serial": "F2LXK0AAHG7F",
               "properties": {"imei": IMEI, "make": "Apple", "model": "iPhone 13", "color": "Black", "storage": "128GB"},
               "asset_type_id": 17}),
    )
    .await;
    assert_eq!(
        (
            &a["name"],
            &a["customer_id"],
            &a["asset_type"],
            &a["asset_serial"]
        ),
        (
            &json!("Sam's iPhone"),
            &json!(n(&c)),
            &json!("Phone"),
            &json!("F2LXK0AAHG7F")
        )
    );
    assert_eq!(
        a["properties"],
        json!({"imei": IMEI, "make": "Apple", "model": "iPhone 13", "color": "Black"})
    );
    // The native device: the client's, with no order.
    let native = app.get("/api/v1/devices", &key).await.body["devices"][0].clone();
    assert_eq!(
        (
            &native["numeric_id"],
            &native["order_id"],
            &native["brand"],
            &native["device_type"]
        ),
        (
            &json!(n(&a)),
            &Value::Null,
            &json!("Apple"),
            &json!("phone")
        )
    );

    let path = format!("/api/v1/customer_assets/{}", n(&a));
    let got = app.get(&path, &key).await;
    ok(&got, "show");
    assert_eq!(got.body["customer_asset"], a);
    let r = put(
        &app,
        &path,
        &key,
        json!({"asset_type": "tablet", "properties": {"color": "Blue"}}),
    )
    .await;
    ok(&r, "update");
    let u = &r.body["customer_asset"];
    assert_eq!(
        (
            &u["asset_type"],
            &u["properties"]["color"],
            &u["properties"]["make"],
            &u["name"]
        ),
        (
            &json!("Tablet"),
            &json!("Blue"),
            &json!("Apple"),
            &json!("Sam's iPhone")
        )
    );
    // Its own customer is fine; another is refused.
    ok(
        &put(&app, &path, &key, json!({"customer_id": n(&c)})).await,
        "same customer",
    );
    let r = put(&app, &path, &key, json!({"customer_id": n(&other)})).await;
    assert_validation(&r, "customer_id");

    // Refusals name RepairShopr's fields.
    let r = put(&app, &path, &key, json!({"properties": {"imei": "123"}})).await;
    assert_validation(&r, "properties.imei");
    let r = put(&app, &path, &key, json!({"asset_type": "Toaster"})).await;
    assert_validation(&r, "asset_type");
    assert!(r.text.contains("Laptop"), "{}", r.text);
    let r = put(&app, &path, &key, json!({"properties": "imei"})).await;
    assert_validation(&r, "properties");
    let r = app
        .post(
            "/api/v1/customer_assets",
            &key,
            json!({"asset_type": "Phone"}),
        )
        .await;
    assert_validation(&r, "customer_id");
    let r = app
        .post(
            "/api/v1/customer_assets",
            &key,
            json!({"customer_id": n(&c)}),
        )
        .await;
    assert_validation(&r, "asset_type");
    // No DELETE, as docs/REPAIRSHOPR.md says.
    let r = app.delete(&path, &key).await;
    assert_eq!(r.status, 405, "{}", r.text);
    ok(&app.get(&path, &key).await, "still there");

    // The list: the customer's own assets and the devices on its tickets.
    let t = ticket(&app, &key, json!({"customer_id": n(&c)})).await;
    let order_id = app.get("/api/v1/orders", &key).await.body["orders"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get("/api/v1/orders", &key).await.body["orders"][0]["numeric_id"],
        n(&t)
    );
    let on_ticket = app
        .post(
            &format!("/api/v1/orders/{order_id}/devices"),
            &key,
            json!({"device_type": "laptop"}),
        )
        .await;
    assert_eq!(on_ticket.status, 201);
    let on_ticket_n = on_ticket.body["device"]["numeric_id"].as_i64().unwrap();
    asset(
        &app,
        &key,
        json!({"customer_id": n(&other), "asset_type": "Watch"}),
    )
    .await;
    let r = app
        .get(
            &format!("/api/v1/customer_assets?customer_id={}", n(&c)),
            &key,
        )
        .await;
    assert_eq!(ids(&r, "customer_assets"), vec![n(&a), on_ticket_n]);
    let r = app.get("/api/v1/customer_assets", &key).await;
    assert_eq!(r.body["meta"]["total_entries"], 3);
    let listed = &r.body["customer_assets"][1];
    assert_eq!(
        (&listed["customer_id"], &listed["asset_type"]),
        (&json!(n(&c)), &json!("Laptop"))
    );
    let r = app
        .get("/api/v1/customer_assets?customer_id=999999", &key)
        .await;
    assert!(ids(&r, "customer_assets").is_empty());
}

// ---------------------------------------------------------------------------
// Tenancy, environments, permissions, keys, usage
// ---------------------------------------------------------------------------

#[tokio::test]
async fn another_shops_integer_ids_are_not_found() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let c = customer(&app, &key, json!({"firstname": "Sam"})).await;
    let t = ticket(&app, &key, json!({"customer_id": n(&c)})).await;
    let a = asset(
        &app,
        &key,
        json!({"customer_id": n(&c), "asset_type": "Phone"}),
    )
    .await;
    let other_shop = app.new_shop("Elsewhere", "owner@elsewhere.example").await;
    let other = key_for(&app, &other_shop, "live", ALL).await;
    for path in [
        format!("/api/v1/customers/{}", n(&c)),
        format!("/api/v1/tickets/{}", n(&t)),
        format!("/api/v1/customer_assets/{}", n(&a)),
    ] {
        assert_problem(&app.get(&path, &other).await, 404, "not_found");
        assert_problem(
            &put(&app, &path, &other, json!({"name": "x"})).await,
            404,
            "not_found",
        );
        if !path.contains("assets") {
            assert_problem(&app.delete(&path, &other).await, 404, "not_found");
        }
    }
    // Nor can its key refer to this shop's customer in a body or a filter.
    let r = app
        .post("/api/v1/tickets", &other, json!({"customer_id": n(&c)}))
        .await;
    assert_validation(&r, "customer_id");
    let r = app
        .post(
            "/api/v1/customer_assets",
            &other,
            json!({"customer_id": n(&c), "asset_type": "Phone"}),
        )
        .await;
    assert_validation(&r, "customer_id");
    for list in ["customers", "tickets", "customer_assets"] {
        let r = app.get(&format!("/api/v1/{list}"), &other).await;
        ok(&r, list);
        assert_eq!(r.body["meta"]["total_entries"], 0, "{list}");
    }
    let r = app
        .get(&format!("/api/v1/tickets?customer_id={}", n(&c)), &other)
        .await;
    assert!(ids(&r, "tickets").is_empty());
    // And all of it is still there for its own shop.
    ok(
        &app.get(&format!("/api/v1/tickets/{}", n(&t)), &key).await,
        "own",
    );
}

#[tokio::test]
async fn a_test_key_sees_test_data_only() {
    let app = TestApp::new().await;
    let shop = app.shop_id.clone();
    let live = key_for(&app, &shop, "live", ALL).await;
    let test = key_for(&app, &shop, "test", ALL).await;
    let live_c = customer(&app, &live, json!({"firstname": "Live"})).await;
    let test_c = customer(&app, &test, json!({"firstname": "Test"})).await;
    assert_problem(
        &app.get(&format!("/api/v1/customers/{}", n(&live_c)), &test)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.get(&format!("/api/v1/customers/{}", n(&test_c)), &live)
            .await,
        404,
        "not_found",
    );
    let r = app.get("/api/v1/customers", &test).await;
    let names: Vec<&str> = r.body["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["firstname"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Test") && !names.contains(&"Live"),
        "{names:?}"
    );
    let r = app
        .post("/api/v1/tickets", &test, json!({"customer_id": n(&live_c)}))
        .await;
    assert_validation(&r, "customer_id");
}

#[tokio::test]
async fn permissions_are_those_of_the_native_resource() {
    let app = TestApp::new().await;
    let shop = app.shop_id.clone();
    let full = live_key(&app).await;
    let c = customer(&app, &full, json!({"firstname": "Sam"})).await;
    let reader = key_for(&app, &shop, "live", &["clients:read"]).await;
    ok(&app.get("/api/v1/customers", &reader).await, "read");
    ok(
        &app.get(&format!("/api/v1/customers/{}", n(&c)), &reader)
            .await,
        "read one",
    );
    for r in [
        app.post("/api/v1/customers", &reader, json!({"firstname": "X"}))
            .await,
        put(
            &app,
            &format!("/api/v1/customers/{}", n(&c)),
            &reader,
            json!({"firstname": "X"}),
        )
        .await,
        app.delete(&format!("/api/v1/customers/{}", n(&c)), &reader)
            .await,
        app.get("/api/v1/tickets", &reader).await,
        app.get("/api/v1/customer_assets", &reader).await,
    ] {
        assert_problem(&r, 403, "insufficient_permission");
    }
    let r = app
        .delete(&format!("/api/v1/customers/{}", n(&c)), &reader)
        .await;
    assert_eq!(r.body["required_permission"], "clients:delete");
    // No key: 401 as everywhere.
    let r = app.call("GET", "/api/v1/customers", None, None).await;
    assert_problem(&r, 401, "missing_key");
}

#[tokio::test]
async fn keys_travel_as_repairshopr_clients_send_them() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    // A bare Authorization header.
    ok(&bare_get(&app, "/api/v1/customers", &key).await, "bare");
    // A new key in the URL is refused and recorded, as everywhere.
    let r = app
        .send(
            Request::builder()
                .uri(format!("/api/v1/customers?api_key={key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_problem(&r, 401, "key_in_url");
    // A legacy key may use ?api_key= here, with the deprecation headers.
    let legacy = "legacyRSsyncAAAAbbbbCCCC0001";
    app.core
        .keys
        .import_legacy(
            &app.shop_id,
            &format!("key,name\n{legacy},Old sync\n"),
            false,
        )
        .await
        .unwrap();
    for req in [
        Request::builder().uri(format!("/api/v1/customers?api_key={legacy}&page=1")),
        Request::builder()
            .uri("/api/v1/tickets")
            .header("authorization", legacy),
    ] {
        let r = app.send(req.body(Body::empty()).unwrap()).await;
        ok(&r, "legacy");
        assert!(r.header("deprecation").is_some(), "{:?}", r.headers);
        assert!(r.header("sunset").is_some());
    }
}

#[tokio::test]
async fn usage_names_these_routes_by_their_templates() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read"]).await;
    let (id, key) = app.key(&["clients:read", "clients:write"]).await;
    let c = customer(&app, &key, json!({"firstname": "Sam"})).await;
    ok(
        &app.get(&format!("/api/v1/customers/{}", n(&c)), &key).await,
        "show",
    );
    assert_eq!(app.get("/api/v1/customers/999999", &key).await.status, 404);
    app.core.usage.flush(app.store.as_ref()).await.unwrap();
    let r = app.get(&format!("/api/v1/keys/{id}/usage"), &admin).await;
    ok(&r, "usage");
    let endpoints = r.body["usage"]["endpoints"].as_array().unwrap();
    let find = |method: &str, route: &str| {
        endpoints
            .iter()
            .find(|e| e["route"] == route && e["method"] == method)
            .unwrap_or_else(|| panic!("{method} {route} in {endpoints:?}"))
            .clone()
    };
    assert_eq!(find("POST", "/api/v1/customers")["requests"], 1);
    let one = find("GET", "/api/v1/customers/{id}");
    assert_eq!(
        (&one["requests"], &one["errors_4xx"]),
        (&json!(2), &json!(1))
    );
}

// ---------------------------------------------------------------------------
// Paging while rows are added, and a sync client end to end
// ---------------------------------------------------------------------------

#[tokio::test]
async fn walking_pages_while_customers_are_added_misses_and_repeats_none() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    let mut before = BTreeSet::new();
    for i in 0..60 {
        before.insert(n(&customer(
            &app,
            &key,
            json!({"firstname": format!("Before{i}")}),
        )
        .await));
    }
    // Another integration keeps adding customers while this one walks.
    let writer = {
        let app_core = app.core.clone();
        let shop = app.shop_id.clone();
        tokio::spawn(async move {
            let scope = latchkey::service::resources::Scope {
                shop_id: shop,
                environment: latchkey::domain::token::Environment::Live,
            };
            for i in 0..40 {
                let input: latchkey::domain::client::ClientInput =
                    serde_json::from_value(json!({"first_name": format!("During{i}")})).unwrap();
                app_core
                    .resources
                    .create_client(&scope, input)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let r = app
            .get(&format!("/api/v1/customers?page={page}"), &key)
            .await;
        ok(&r, "page");
        let got = ids(&r, "customers");
        if got.is_empty() {
            break;
        }
        seen.extend(got);
        page += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "no customer is listed twice: {seen:?}"
    );
    assert!(
        before.is_subset(&unique),
        "every customer that was there is listed"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in id order");
}

#[tokio::test]
async fn a_repairshopr_sync_client_walks_every_page_since_then_fetches_each() {
    let app = TestApp::new().await;
    let key = live_key(&app).await;
    for i in 0..30 {
        customer(&app, &key, json!({"firstname": format!("Old{i}")})).await;
    }
    // The client's last sync was at this time.
    app.clock.advance_seconds(600);
    let last_sync = time_text(
        latchkey::domain::clock::Timestamp::parse_rfc3339(common::T0)
            .unwrap()
            .unix_seconds()
            + 600,
        ".000000Z",
    );
    let mut changed = BTreeSet::new();
    for i in 0..28 {
        changed.insert(n(&customer(
            &app,
            &key,
            json!({"firstname": format!("New{i}"), "zip": format!("{i}")}),
        )
        .await));
    }
    for old in [1, 2] {
        let id = app.get("/api/v1/customers", &key).await.body["customers"][old]["id"]
            .as_i64()
            .unwrap();
        ok(
            &put(
                &app,
                &format!("/api/v1/customers/{id}"),
                &key,
                json!({"notes": "edited"}),
            )
            .await,
            "edit",
        );
        changed.insert(id);
    }

    // Walk every page since the last sync, with a bare Authorization header.
    let mut listed = Vec::new();
    let mut page = 1;
    loop {
        let r = bare_get(
            &app,
            &format!(
                "/api/v1/customers?since_updated_at={}&page={page}",
                encode(&last_sync)
            ),
            &key,
        )
        .await;
        ok(&r, "sync page");
        assert_eq!(r.body["meta"]["total_entries"], 30);
        assert_eq!(r.body["meta"]["total_pages"], 2);
        listed.extend(r.body["customers"].as_array().unwrap().iter().cloned());
        if page as u64 >= r.body["meta"]["total_pages"].as_u64().unwrap() {
            break;
        }
        page += 1;
    }
    let listed_ids: BTreeSet<i64> = listed.iter().map(n).collect();
    assert_eq!(listed_ids, changed);
    // Then fetch each by id: the same customer.
    for c in &listed {
        let r = bare_get(&app, &format!("/api/v1/customers/{}", n(c)), &key).await;
        ok(&r, "fetch");
        assert_eq!(&r.body["customer"], c);
    }
}
