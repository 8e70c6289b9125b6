//! Black-box HTTP tests of the key-management API (`/api/v1/keys…`,
//! `/api/v1/key-templates`, `/api/v1/me`, `/api/v1/audit-events`), the
//! authentication errors every keyed route shares, and the health endpoints.
mod common;

use axum::body::Body;
use axum::http::Request;
use common::{TestApp, TestResponse, assert_problem};
use latchkey::service::keys::NewKeyInput;
use serde_json::{Value, json};

/// Every permission docs/KEYS.md names.
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
    "keys:read",
    "keys:write",
];

/// The address `TestApp::peer` gives the router.
const PEER_IP: &str = "203.0.113.10";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The documented checksum (docs/KEYS.md), computed independently: CRC-32 (IEEE) of the 32 random
/// characters in base62, most significant digit first, padded to 6.
fn checksum(random: &str) -> String {
    let mut n = crc32fast::hash(random.as_bytes());
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// A well-formed key (right prefix, length, alphabet and checksum) that no
/// one issued.
fn made_up_key(environment: &str) -> String {
    let random = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    format!("lk_{environment}_{random}{}", checksum(random))
}

/// Sends a request with arbitrary headers and an optional (content type, body).
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> TestResponse {
    let mut req = Request::builder().method(method).uri(path);
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

/// A 401 other than `missing_key`: RFC 6750 `invalid_token` challenge.
fn assert_invalid_token(r: &TestResponse, code: &str) {
    assert_problem(r, 401, code);
    let challenge = r
        .header("www-authenticate")
        .expect("a 401 carries WWW-Authenticate");
    assert!(
        challenge
            .starts_with(r#"Bearer realm="latchkey", error="invalid_token", error_description=""#)
            && challenge.ends_with('"')
            && challenge.len()
                > r#"Bearer realm="latchkey", error="invalid_token", error_description="""#.len(),
        "{challenge}"
    );
}

/// A 403 `insufficient_permission` naming `permission`, in body and header.
fn assert_insufficient(r: &TestResponse, permission: &str) {
    assert_problem(r, 403, "insufficient_permission");
    assert_eq!(r.body["required_permission"], permission, "{}", r.text);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(r#"Bearer realm="latchkey", error="insufficient_scope", scope="{permission}""#)
                .as_str()
        )
    );
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

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

fn warning_codes(key: &Value) -> Vec<String> {
    key["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list: {key}"))
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect()
}

/// A key holding every permission (the harness's default name would be
/// over 100 characters), and the highest rate limit so that the keys it
/// makes may have any (restrictions are inherited); returns (id, secret).
async fn admin_in(app: &TestApp, shop_id: &str, environment: &str) -> (String, String) {
    app.key_with(
        shop_id,
        NewKeyInput {
            name: Some(format!("Key manager ({environment})")),
            permissions: Some(ALL.iter().map(|p| p.to_string()).collect()),
            environment: Some(environment.into()),
            rate_limit_per_minute: Some(10_000),
            ..Default::default()
        },
    )
    .await
}

/// `total_entries` of the caller's key list.
async fn key_count(app: &TestApp, key: &str) -> u64 {
    let r = app.get("/api/v1/keys?per_page=100", key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["meta"]["total_entries"].as_u64().unwrap()
}

/// Creates a key through the API; returns (id, secret).
async fn create(app: &TestApp, caller: &str, body: Value) -> (String, String) {
    let r = app.post("/api/v1/keys", caller, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["key"]["id"].as_str().unwrap().to_owned(),
        r.body["key"]["secret"].as_str().unwrap().to_owned(),
    )
}

/// POSTs `body` to `/api/v1/keys`, expects 422 naming `field`, and checks
/// nothing was created.
async fn assert_create_rejected(
    app: &TestApp,
    caller: &str,
    body: Value,
    field: &str,
) -> TestResponse {
    let before = key_count(app, caller).await;
    let r = app.post("/api/v1/keys", caller, body).await;
    assert_validation(&r, field);
    assert_eq!(
        key_count(app, caller).await,
        before,
        "nothing is created on error"
    );
    r
}

// ---------------------------------------------------------------------------
// Service endpoints

#[tokio::test]
async fn healthz_and_readyz_answer_200_without_a_key() {
    let app = TestApp::new().await;
    let r = app.call("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ok");
    assert!(r.header("x-request-id").is_some());
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-request-id").is_some());
}

// ---------------------------------------------------------------------------
// Templates

#[tokio::test]
async fn key_templates_lists_the_six_spec_templates_with_least_privilege_permissions() {
    let app = TestApp::new().await;
    let (_, reader) = app.key(&["keys:read"]).await;
    let r = app.get("/api/v1/key-templates", &reader).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let templates = r.body["templates"].as_array().expect("templates list");
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "website-contact-form",
            "Website Contact Form",
            &["clients:write", "orders:write"],
        ),
        (
            "zapier",
            "Zapier",
            &[
                "clients:read",
                "clients:write",
                "orders:read",
                "orders:write",
                "devices:read",
            ],
        ),
        (
            "it-glue",
            "IT Glue",
            &["clients:read", "devices:read", "devices:write"],
        ),
        (
            "ninja-rmm",
            "Ninja RMM",
            &[
                "clients:read",
                "devices:read",
                "devices:write",
                "orders:read",
                "orders:write",
            ],
        ),
        ("pax8", "Pax8", &["clients:read", "clients:write"]),
        (
            "read-only",
            "Read-only reporting",
            &["orders:read", "clients:read", "devices:read"],
        ),
    ];
    assert_eq!(templates.len(), expected.len(), "{}", r.text);
    for (id, name, permissions) in expected {
        let t = templates
            .iter()
            .find(|t| t["id"] == *id)
            .unwrap_or_else(|| panic!("template {id} missing: {}", r.text));
        assert_eq!(t["name"], *name);
        assert_eq!(strings(&t["permissions"]), sorted(permissions), "{id}");
        for p in strings(&t["permissions"]) {
            assert!(
                !p.ends_with(":delete") && !p.starts_with("keys:"),
                "{id} grants {p}"
            );
        }
    }
}

#[tokio::test]
async fn key_templates_need_keys_read() {
    let app = TestApp::new().await;
    let (_, writer) = app.key(&["keys:write", "orders:read"]).await;
    let r = app.get("/api/v1/key-templates", &writer).await;
    assert_insufficient(&r, "keys:read");
}

// ---------------------------------------------------------------------------
// Create

#[tokio::test]
async fn creating_from_a_template_fills_its_permissions_defaults_the_name_and_answers_201_with_location()
 {
    let app = TestApp::new().await;
    let (admin_id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .post("/api/v1/keys", &admin, json!({"template": "zapier"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = &r.body["key"];
    let id = key["id"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/keys/{id}").as_str())
    );
    assert_eq!(key["name"], "Zapier");
    assert_eq!(key["template"], "zapier");
    assert_eq!(
        strings(&key["permissions"]),
        sorted(&[
            "clients:read",
            "clients:write",
            "orders:read",
            "orders:write",
            "devices:read"
        ])
    );
    assert_eq!(key["environment"], "live");
    assert_eq!(key["kind"], "standard");
    assert_eq!(key["status"], "active");
    assert_eq!(key["allowed_ips"], json!([]));
    assert_eq!(key["rate_limit_per_minute"], 100);
    assert_eq!(key["expires_at"], Value::Null);
    assert_eq!(key["revoked_at"], Value::Null);
    assert_eq!(key["created_by"], admin_id.as_str());
    assert_eq!(key["warnings"], json!([]));

    // The secret: lk_live_ + 32 random base62 + 6 checksum characters.
    let secret = key["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 46);
    assert!(secret.starts_with("lk_live_"));
    assert!(secret[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        secret[40..],
        checksum(&secret[8..40]),
        "the documented checksum"
    );
    // Display form: prefix, first 4 and last 4.
    assert_eq!(
        key["display"],
        format!("lk_live_{}…{}", &secret[8..12], &secret[42..])
    );

    // The new key works at once, as itself.
    let me = app.get("/api/v1/me", secret).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["key"]["id"], id);
}

#[tokio::test]
async fn a_template_with_an_explicit_name_keeps_the_name() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"template": "pax8", "name": "Pax8 – EU tenant"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["name"], "Pax8 – EU tenant");
    assert_eq!(
        strings(&r.body["key"]["permissions"]),
        sorted(&["clients:read", "clients:write"])
    );
}

#[tokio::test]
async fn creating_from_a_permission_list_stores_ips_expiry_and_rate_limit() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({
                "name": "Ninja RMM alerts",
                "permissions": ["orders:read", "devices:write"],
                "allowed_ips": ["203.0.113.7", "2001:db8::1", "198.51.100.0/24", "2001:db8:1::/48"],
                "expires_at": "2027-06-30T17:00:00Z",
                "rate_limit_per_minute": 500
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = &r.body["key"];
    assert_eq!(key["name"], "Ninja RMM alerts");
    assert_eq!(
        strings(&key["permissions"]),
        sorted(&["orders:read", "devices:write"])
    );
    assert_eq!(key["template"], Value::Null);
    assert_eq!(
        key["allowed_ips"],
        json!([
            "203.0.113.7",
            "2001:db8::1",
            "198.51.100.0/24",
            "2001:db8:1::/48"
        ])
    );
    assert!(
        key["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2027-06-30T17:00:00"),
        "{}",
        r.text
    );
    assert_eq!(key["rate_limit_per_minute"], 500);
    assert_eq!(key["status"], "active");

    // Shown the same way afterwards.
    let id = key["id"].as_str().unwrap();
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    for field in [
        "name",
        "permissions",
        "allowed_ips",
        "expires_at",
        "rate_limit_per_minute",
        "environment",
    ] {
        assert_eq!(shown.body["key"][field], key[field], "{field}");
    }
}

#[tokio::test]
async fn a_test_key_creates_test_keys_and_a_live_key_may_not_create_one() {
    let app = TestApp::new().await;
    let (_, test_admin) = admin_in(&app, &app.shop_id, "test").await;
    let r = app
        .post(
            "/api/v1/keys",
            &test_admin,
            json!({"name": "Staging site form", "template": "website-contact-form", "environment": "test"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["environment"], "test");
    let secret = r.body["key"]["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("lk_test_") && secret.len() == 46,
        "{secret}"
    );
    assert!(
        r.body["key"]["display"]
            .as_str()
            .unwrap()
            .starts_with("lk_test_")
    );

    // Without `environment`, a test key's new key is a test key too.
    let r = app
        .post(
            "/api/v1/keys",
            &test_admin,
            json!({"name": "Staging Zapier", "template": "zapier"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["environment"], "test");

    // A live key manages only live keys.
    let (_, live_admin) = admin_in(&app, &app.shop_id, "live").await;
    let before = key_count(&app, &live_admin).await;
    let r = app
        .post(
            "/api/v1/keys",
            &live_admin,
            json!({"name": "Staging site form", "template": "website-contact-form", "environment": "test"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "insufficient_permission");
    assert_eq!(key_count(&app, &live_admin).await, before);
}

#[tokio::test]
async fn an_unknown_environment_is_422_naming_environment() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Website form", "template": "website-contact-form", "environment": "prod"}),
        "environment",
    )
    .await;
}

#[tokio::test]
async fn the_secret_appears_only_in_create_and_clone_answers() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let created = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "IT Glue sync", "template": "it-glue"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["key"]["id"].as_str().unwrap().to_owned();
    let secret = created.body["key"]["secret"].as_str().unwrap().to_owned();

    let no_secret = |r: &TestResponse, what: &str| {
        assert!(r.status.is_success(), "{what}: {}", r.text);
        assert!(
            !r.text.contains(&secret),
            "{what} leaks the secret: {}",
            r.text
        );
        assert!(
            !r.text.contains("\"secret\""),
            "{what} has a secret member: {}",
            r.text
        );
    };
    no_secret(
        &app.get(&format!("/api/v1/keys/{id}"), &admin).await,
        "show",
    );
    no_secret(&app.get("/api/v1/keys", &admin).await, "list");
    no_secret(&app.get("/api/v1/me", &secret).await, "me");
    no_secret(
        &app.patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"name": "IT Glue nightly sync"}),
        )
        .await,
        "patch",
    );
    no_secret(
        &app.get("/api/v1/audit-events", &admin).await,
        "audit events",
    );

    let clone = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/clone"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(clone.status, 201, "{}", clone.text);
    let clone_secret = clone.body["key"]["secret"]
        .as_str()
        .expect("clone answers carry the secret");
    assert_ne!(clone_secret, secret);
    assert!(
        !clone.text.contains(&secret),
        "a clone never shows the source's secret"
    );

    no_secret(
        &app.call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None,
        )
        .await,
        "revoke",
    );
}

#[tokio::test]
async fn a_vague_name_is_accepted_with_a_vague_name_warning() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "Key 1", "permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["name"], "Key 1");
    assert_eq!(warning_codes(&r.body["key"]), vec!["vague_name"]);
    let message = &r.body["key"]["warnings"][0]["message"];
    assert!(message.as_str().is_some_and(|m| !m.is_empty()));
    let id = r.body["key"]["id"].as_str().unwrap();
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert!(warning_codes(&shown.body["key"]).contains(&"vague_name".to_owned()));

    // Renaming it after the integration clears the warning.
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"name": "Shopify order sync"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["warnings"], json!([]));
}

// ---------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn an_empty_or_101_character_name_is_422_naming_name() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    for name in ["".to_owned(), "   ".to_owned(), "n".repeat(101)] {
        assert_create_rejected(
            &app,
            &admin,
            json!({"name": name, "permissions": ["orders:read"]}),
            "name",
        )
        .await;
    }
    // 100 characters is fine.
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "n".repeat(100), "permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_key_without_a_name_or_template_is_422_naming_name() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    assert_create_rejected(
        &app,
        &admin,
        json!({"permissions": ["orders:read"]}),
        "name",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_or_missing_permission_is_422_naming_permissions() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Report exporter", "permissions": ["orders:read", "orders:reed"]}),
        "permissions",
    )
    .await;
    assert!(
        r.text.contains("orders:reed"),
        "the message names the bad value: {}",
        r.text
    );
    assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Report exporter", "permissions": []}),
        "permissions",
    )
    .await;
    assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Report exporter"}),
        "permissions",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_template_is_422_naming_template() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r =
        assert_create_rejected(&app, &admin, json!({"template": "salesforce"}), "template").await;
    assert!(r.text.contains("salesforce"), "{}", r.text);
}

#[tokio::test]
async fn each_bad_allowed_ip_gets_its_own_error_entry() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = assert_create_rejected(
        &app,
        &admin,
        json!({
            "name": "Office router",
            "permissions": ["orders:read"],
            "allowed_ips": ["203.0.113.7", "300.1.2.3", "2001:db8::/32", "office", "10.0.0.0/33"]
        }),
        "allowed_ips[1]",
    )
    .await;
    let fields = error_fields(&r);
    let ip_errors: Vec<&String> = fields
        .iter()
        .filter(|f| f.starts_with("allowed_ips"))
        .collect();
    assert_eq!(ip_errors.len(), 3, "one error per bad entry: {}", r.text);
    for (field, bad) in [
        ("allowed_ips[1]", "300.1.2.3"),
        ("allowed_ips[3]", "office"),
        ("allowed_ips[4]", "10.0.0.0/33"),
    ] {
        let entry = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no error for {field}: {}", r.text));
        assert!(
            entry["message"].as_str().unwrap().contains(bad),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn an_expiry_in_the_past_or_not_rfc3339_is_422_naming_expires_at() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    for bad in [
        "2026-11-23T11:59:59Z", // a second before "now"
        "2026-11-23T12:00:00Z", // now is not the future
        "2020-01-01T00:00:00Z",
        "tomorrow",
        "2027-06-30",
        "30/06/2027 17:00",
    ] {
        assert_create_rejected(
            &app,
            &admin,
            json!({"name": "Contractor access", "permissions": ["orders:read"], "expires_at": bad}),
            "expires_at",
        )
        .await;
    }
}

#[tokio::test]
async fn rate_limits_of_0_and_10001_are_422_naming_rate_limit_per_minute() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    for bad in [0, 10_001, -1] {
        assert_create_rejected(
            &app,
            &admin,
            json!({"name": "Bulk importer", "permissions": ["orders:read"], "rate_limit_per_minute": bad}),
            "rate_limit_per_minute",
        )
        .await;
    }
    for good in [1, 10_000] {
        let r = app
            .post(
                "/api/v1/keys",
                &admin,
                json!({"name": "Bulk importer", "permissions": ["orders:read"], "rate_limit_per_minute": good}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["key"]["rate_limit_per_minute"], good);
    }
}

#[tokio::test]
async fn an_unknown_json_field_is_422_naming_it() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier", "scopes": ["orders:read"]}),
        "scopes",
    )
    .await;
    assert!(r.text.contains("scopes"));
}

#[tokio::test]
async fn a_wrong_json_type_is_422_naming_the_field() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    assert_create_rejected(
        &app,
        &admin,
        json!({"name": 42, "permissions": ["orders:read"]}),
        "name",
    )
    .await;
    assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Bulk importer", "permissions": ["orders:read"], "rate_limit_per_minute": "fast"}),
        "rate_limit_per_minute",
    )
    .await;
    assert_create_rejected(
        &app,
        &admin,
        json!({"name": "Bulk importer", "permissions": "orders:read"}),
        "permissions",
    )
    .await;
    // A body that is JSON but not an object.
    let before = key_count(&app, &admin).await;
    let r = app
        .post("/api/v1/keys", &admin, json!(["orders:read"]))
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert_eq!(key_count(&app, &admin).await, before);
}

#[tokio::test]
async fn several_invalid_fields_are_reported_together() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = assert_create_rejected(
        &app,
        &admin,
        json!({
            "name": "",
            "permissions": ["orders:reed"],
            "allowed_ips": ["nope"],
            "expires_at": "yesterday",
            "rate_limit_per_minute": 0
        }),
        "name",
    )
    .await;
    let fields = error_fields(&r);
    for field in [
        "name",
        "permissions",
        "allowed_ips[0]",
        "expires_at",
        "rate_limit_per_minute",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} missing: {}",
            r.text
        );
    }
}

// ---------------------------------------------------------------------------
// Bodies

#[tokio::test]
async fn broken_json_is_400_bad_request_and_creates_nothing() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let before = key_count(&app, &admin).await;
    let auth = format!("Bearer {admin}");
    for body in [
        &b"{\"name\": \"Zapier\", "[..],
        b"{\"name\": 'Zapier'}",
        b"{} trailing",
    ] {
        let r = send(
            &app,
            "POST",
            "/api/v1/keys",
            &[("authorization", &auth)],
            Some(("application/json", body.to_vec())),
        )
        .await;
        assert_problem(&r, 400, "bad_request");
    }
    assert_eq!(key_count(&app, &admin).await, before);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_unsupported_media_type() {
    let app = TestApp::new().await;
    let (id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let auth = format!("Bearer {admin}");
    let r = send(
        &app,
        "POST",
        "/api/v1/keys",
        &[("authorization", &auth)],
        Some((
            "text/plain",
            br#"{"name": "Zapier", "template": "zapier"}"#.to_vec(),
        )),
    )
    .await;
    assert_problem(&r, 415, "unsupported_media_type");
    let r = send(
        &app,
        "PATCH",
        &format!("/api/v1/keys/{id}"),
        &[("authorization", &auth)],
        Some(("application/x-www-form-urlencoded", b"name=Zapier".to_vec())),
    )
    .await;
    assert_problem(&r, 415, "unsupported_media_type");
    assert_eq!(key_count(&app, &admin).await, 1);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_payload_too_large() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let auth = format!("Bearer {admin}");
    let big =
        serde_json::to_vec(&json!({"name": "x".repeat(1024 * 1024 + 10), "template": "zapier"}))
            .unwrap();
    let r = send(
        &app,
        "POST",
        "/api/v1/keys",
        &[("authorization", &auth)],
        Some(("application/json", big)),
    )
    .await;
    assert_problem(&r, 413, "payload_too_large");
    assert_eq!(key_count(&app, &admin).await, 1);
}

#[tokio::test]
async fn patch_accepts_merge_patch_json_and_null_clears_the_expiry() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Contractor access", "permissions": ["orders:read"], "expires_at": "2027-01-01T00:00:00Z"}),
    )
    .await;
    let auth = format!("Bearer {admin}");
    let r = send(
        &app,
        "PATCH",
        &format!("/api/v1/keys/{id}"),
        &[("authorization", &auth)],
        Some((
            "application/merge-patch+json",
            br#"{"expires_at": null}"#.to_vec(),
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["expires_at"], Value::Null);
    assert_eq!(
        r.body["key"]["name"], "Contractor access",
        "absent fields stay as they are"
    );
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(shown.body["key"]["expires_at"], Value::Null);
}

#[tokio::test]
async fn patch_changes_only_the_fields_sent() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Website form", "template": "website-contact-form", "rate_limit_per_minute": 50}),
    )
    .await;
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({
                "name": "Website contact form (www)",
                "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
                "rate_limit_per_minute": 20,
                "expires_at": "2027-03-01T00:00:00Z",
                "permissions": ["clients:write", "orders:write", "orders:read"]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = &r.body["key"];
    assert_eq!(key["name"], "Website contact form (www)");
    assert_eq!(
        key["allowed_ips"],
        json!(["203.0.113.0/24", "2001:db8::/32"])
    );
    assert_eq!(key["rate_limit_per_minute"], 20);
    assert!(
        key["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2027-03-01T00:00:00")
    );
    assert_eq!(
        strings(&key["permissions"]),
        sorted(&["clients:write", "orders:write", "orders:read"])
    );
    assert_eq!(key["environment"], "live");

    // An empty patch changes nothing.
    let r = app
        .patch(&format!("/api/v1/keys/{id}"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["name"], "Website contact form (www)");

    // allowed_ips: null allows any address again; the key still works from the peer.
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"allowed_ips": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["allowed_ips"], json!([]));
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
}

#[tokio::test]
async fn patch_with_invalid_values_is_422_and_changes_nothing() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Pax8 sync", "template": "pax8"}),
    )
    .await;
    let path = format!("/api/v1/keys/{id}");
    let before = app.get(&path, &admin).await.body["key"].clone();
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "n".repeat(101)}), "name"),
        (json!({"permissions": ["clients:reed"]}), "permissions"),
        (json!({"permissions": []}), "permissions"),
        (json!({"allowed_ips": ["10.0.0.300"]}), "allowed_ips[0]"),
        (json!({"expires_at": "2020-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "soon"}), "expires_at"),
        (json!({"rate_limit_per_minute": 0}), "rate_limit_per_minute"),
        (
            json!({"rate_limit_per_minute": 10_001}),
            "rate_limit_per_minute",
        ),
        (json!({"name": ["Pax8"]}), "name"),
    ] {
        let r = app.patch(&path, &admin, body).await;
        assert_validation(&r, field);
    }
    let r = app
        .patch(&path, &admin, json!({"environment": "test"}))
        .await;
    assert_validation(&r, "environment");
    let after = app.get(&path, &admin).await.body["key"].clone();
    assert_eq!(after, before);
}

// ---------------------------------------------------------------------------
// List

#[tokio::test]
async fn list_is_newest_first_with_page_meta() {
    let app = TestApp::new().await;
    let (admin_id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let mut ids = vec![admin_id];
    for name in ["Zapier one", "Zapier two", "Zapier three", "Zapier four"] {
        app.clock.advance_seconds(1);
        ids.push(
            create(&app, &admin, json!({"name": name, "template": "zapier"}))
                .await
                .0,
        );
    }
    ids.reverse(); // newest first

    let r = app.get("/api/v1/keys", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["meta"],
        json!({"page": 1, "per_page": 25, "total_pages": 1, "total_entries": 5})
    );
    let listed: Vec<&str> = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);

    let r = app.get("/api/v1/keys?page=2&per_page=2", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["meta"],
        json!({"page": 2, "per_page": 2, "total_pages": 3, "total_entries": 5})
    );
    let listed: Vec<&str> = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids[2..4]);

    let r = app.get("/api/v1/keys?page=3&per_page=2", &admin).await;
    assert_eq!(r.body["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_page_past_the_end_is_200_with_an_empty_list() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app.get("/api/v1/keys?page=9&per_page=10", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["keys"], json!([]));
    assert_eq!(
        r.body["meta"],
        json!({"page": 9, "per_page": 10, "total_pages": 1, "total_entries": 1})
    );
}

#[tokio::test]
async fn per_page_over_100_is_422_and_not_a_number_is_400() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app.get("/api/v1/keys?per_page=101", &admin).await;
    assert_validation(&r, "per_page");
    let r = app.get("/api/v1/keys?per_page=100", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.get("/api/v1/keys?per_page=abc", &admin).await;
    assert_problem(&r, 400, "bad_request");
    let r = app.get("/api/v1/keys?page=two", &admin).await;
    assert_problem(&r, 400, "bad_request");
    let r = app.get("/api/v1/audit-events?per_page=101", &admin).await;
    assert_validation(&r, "per_page");
    let r = app.get("/api/v1/audit-events?per_page=abc", &admin).await;
    assert_problem(&r, 400, "bad_request");
}

#[tokio::test]
async fn list_filters_by_status_and_environment() {
    let app = TestApp::new().await;
    let (admin_id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (revoked, _) = create(
        &app,
        &admin,
        json!({"name": "Old Zapier", "template": "zapier"}),
    )
    .await;
    let (expiring, _) = create(
        &app,
        &admin,
        json!({"name": "Contractor", "template": "read-only", "expires_at": "2026-11-23T13:00:00Z"}),
    )
    .await;
    let (active, _) = create(
        &app,
        &admin,
        json!({"name": "IT Glue", "template": "it-glue"}),
    )
    .await;
    app.key_in(&app.shop_id, "test", &["orders:read"]).await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{revoked}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.clock.advance_seconds(3601);

    let ids = |r: &TestResponse| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text);
        let mut v: Vec<String> = r.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let mut want_active = vec![admin_id.clone(), active.clone()];
    want_active.sort();
    let r = app.get("/api/v1/keys?status=active", &admin).await;
    assert_eq!(ids(&r), want_active);
    assert_eq!(r.body["meta"]["total_entries"], 2);
    assert_eq!(
        ids(&app.get("/api/v1/keys?status=revoked", &admin).await),
        vec![revoked.clone()]
    );
    assert_eq!(
        ids(&app.get("/api/v1/keys?status=expired", &admin).await),
        vec![expiring.clone()]
    );
    assert_eq!(
        ids(&app.get("/api/v1/keys?status=retired", &admin).await),
        Vec::<String>::new()
    );

    // A live key lists live keys only; asking for test keys is an empty list.
    let r = app.get("/api/v1/keys", &admin).await;
    assert_eq!(ids(&r).len(), 4);
    assert!(
        r.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["environment"] == "live")
    );
    assert_eq!(
        ids(&app.get("/api/v1/keys?environment=live", &admin).await).len(),
        4
    );
    let r = app.get("/api/v1/keys?environment=test", &admin).await;
    assert_eq!(ids(&r), Vec::<String>::new());
    assert_eq!(r.body["meta"]["total_entries"], 0);
    let r = app
        .get("/api/v1/keys?environment=live&status=revoked", &admin)
        .await;
    assert_eq!(ids(&r), vec![revoked]);

    // Unknown filter values are bad query parameters.
    assert_problem(
        &app.get("/api/v1/keys?status=lost", &admin).await,
        400,
        "bad_request",
    );
    assert_problem(
        &app.get("/api/v1/keys?environment=prod", &admin).await,
        400,
        "bad_request",
    );
}

// ---------------------------------------------------------------------------
// Show, delete, revoke, clone

#[tokio::test]
async fn show_returns_the_key_object_with_every_spec_field() {
    let app = TestApp::new().await;
    let (admin_id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let r = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = r.body["key"].as_object().expect("{\"key\": {...}}");
    for field in [
        "id",
        "name",
        "environment",
        "kind",
        "display",
        "permissions",
        "allowed_ips",
        "rate_limit_per_minute",
        "expires_at",
        "status",
        "template",
        "created_at",
        "updated_at",
        "created_by",
        "last_used_at",
        "last_used_ip",
        "requests_24h",
        "revoked_at",
        "warnings",
    ] {
        assert!(key.contains_key(field), "missing {field}: {}", r.text);
    }
    assert!(!key.contains_key("secret"));
    assert_eq!(key["id"], id.as_str());
    assert_eq!(key["created_by"], admin_id.as_str());
    assert_eq!(
        key["display"],
        format!("{}…{}", &secret[..12], &secret[42..]).as_str()
    );
    assert!(
        key["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-23T12:00:00")
    );
}

#[tokio::test]
async fn delete_is_204_and_the_key_is_gone_and_stops_working() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Old IT Glue", "template": "it-glue"}),
    )
    .await;
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200); // warm the cache
    let r = app.delete(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_problem(
        &app.get(&format!("/api/v1/keys/{id}"), &admin).await,
        404,
        "not_found",
    );
    assert_problem(
        &app.delete(&format!("/api/v1/keys/{id}"), &admin).await,
        404,
        "not_found",
    );
    assert_eq!(key_count(&app, &admin).await, 1);
    assert_invalid_token(&app.get("/api/v1/me", &secret).await, "invalid_key");
}

#[tokio::test]
async fn revoke_is_200_idempotent_and_the_key_stays_listed_as_revoked() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Leaked Zapier", "template": "zapier"}),
    )
    .await;
    let path = format!("/api/v1/keys/{id}/revoke");
    let first = app.call("POST", &path, Some(&admin), None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["key"]["id"], id.as_str());
    assert_eq!(first.body["key"]["status"], "revoked");
    let revoked_at = first.body["key"]["revoked_at"].clone();
    assert!(
        revoked_at
            .as_str()
            .unwrap()
            .starts_with("2026-11-23T12:00:00")
    );

    app.clock.advance_seconds(60);
    let second = app.call("POST", &path, Some(&admin), None).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["key"]["status"], "revoked");
    assert_eq!(
        second.body["key"]["revoked_at"], revoked_at,
        "revoking again changes nothing"
    );

    let listed = app.get("/api/v1/keys", &admin).await;
    let entry = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .cloned();
    assert_eq!(
        entry.expect("revoked keys stay listed")["status"],
        "revoked"
    );
    assert_invalid_token(&app.get("/api/v1/me", &secret).await, "revoked_key");

    let events = app
        .get(
            &format!("/api/v1/audit-events?key_id={id}&action=key.revoked"),
            &admin,
        )
        .await;
    assert_eq!(
        events.body["audit_events"].as_array().unwrap().len(),
        1,
        "{}",
        events.text
    );
}

#[tokio::test]
async fn clone_without_a_body_copies_the_settings_with_a_new_name_and_a_new_secret() {
    let app = TestApp::new().await;
    let (admin_id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({
            "name": "Ninja RMM",
            "template": "ninja-rmm",
            "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
            "expires_at": "2027-01-31T00:00:00Z",
            "rate_limit_per_minute": 300
        }),
    )
    .await;
    let source = app.get(&format!("/api/v1/keys/{id}"), &admin).await.body["key"].clone();
    app.clock.advance_seconds(5);
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/clone"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let copy = &r.body["key"];
    let copy_id = copy["id"].as_str().unwrap();
    assert_ne!(copy_id, id);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/keys/{copy_id}").as_str())
    );
    assert_ne!(copy["name"], source["name"], "a clone has a new name");
    for field in [
        "permissions",
        "allowed_ips",
        "expires_at",
        "rate_limit_per_minute",
        "environment",
        "template",
    ] {
        assert_eq!(copy[field], source[field], "{field} is copied");
    }
    assert_eq!(copy["created_by"], admin_id.as_str());
    assert_eq!(copy["status"], "active");
    let copy_secret = copy["secret"].as_str().unwrap();
    assert_ne!(copy_secret, secret);
    assert!(copy_secret.starts_with("lk_live_") && copy_secret.len() == 46);
    let me = app.get("/api/v1/me", copy_secret).await;
    assert_eq!(me.body["key"]["id"], copy_id);
    // The source is untouched and keeps working.
    assert_eq!(
        app.get("/api/v1/me", &secret).await.body["key"]["id"],
        id.as_str()
    );
}

#[tokio::test]
async fn clone_with_a_name_uses_it_and_an_invalid_name_is_422() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/keys/{id}/clone"),
            &admin,
            json!({"name": "Zapier – second account"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["name"], "Zapier – second account");
    assert!(r.body["key"]["secret"].is_string());

    let before = key_count(&app, &admin).await;
    let r = app
        .post(
            &format!("/api/v1/keys/{id}/clone"),
            &admin,
            json!({"name": ""}),
        )
        .await;
    assert_validation(&r, "name");
    let r = app
        .post(
            &format!("/api/v1/keys/{id}/clone"),
            &admin,
            json!({"nmae": "typo"}),
        )
        .await;
    assert_validation(&r, "nmae");
    assert_eq!(key_count(&app, &admin).await, before);
}

// ---------------------------------------------------------------------------
// /me

#[tokio::test]
async fn me_shows_the_calling_key_and_its_shop() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read", "clients:read"]).await;
    let r = app.get("/api/v1/me", &secret).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["id"], id.as_str());
    assert_eq!(r.body["key"]["environment"], "live");
    assert_eq!(
        strings(&r.body["key"]["permissions"]),
        sorted(&["orders:read", "clients:read"])
    );
    assert_eq!(r.body["key"]["rate_limit_per_minute"], 100);
    assert!(r.body["key"]["name"].is_string());
    assert_eq!(r.body["shop"]["id"], app.shop_id.as_str());
    assert!(!r.text.contains(&secret));
}

#[tokio::test]
async fn any_key_may_revoke_itself_even_without_keys_permissions() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read"]).await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .call("POST", "/api/v1/me/revoke", Some(&secret), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["id"], id.as_str());
    assert_eq!(r.body["key"]["status"], "revoked");
    assert!(!r.text.contains(&secret));
    assert_invalid_token(&app.get("/api/v1/me", &secret).await, "revoked_key");
    assert_invalid_token(
        &app.call("POST", "/api/v1/me/revoke", Some(&secret), None)
            .await,
        "revoked_key",
    );

    let events = app
        .get(&format!("/api/v1/audit-events?key_id={id}"), &admin)
        .await;
    let event = events.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("key.revoked"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no revoke event: {}", events.text));
    assert_eq!(event["actor"], id.as_str());
}

// ---------------------------------------------------------------------------
// Audit events

#[tokio::test]
async fn audit_events_say_who_did_what_to_which_key_when_and_from_where() {
    let app = TestApp::new().await;
    let (admin_id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    app.clock.advance_seconds(60);
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"name": "Zapier – orders"}),
        )
        .await;
    assert_eq!(r.status, 200);
    app.clock.advance_seconds(60);
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/clone"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    let clone_id = r.body["key"]["id"].as_str().unwrap().to_owned();
    app.clock.advance_seconds(60);
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None
        )
        .await
        .status,
        200
    );
    app.clock.advance_seconds(60);
    assert_eq!(
        app.delete(&format!("/api/v1/keys/{clone_id}"), &admin)
            .await
            .status,
        204
    );

    let r = app
        .get(&format!("/api/v1/audit-events?key_id={id}"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.body["audit_events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["key.revoked", "key.updated", "key.created"],
        "newest first: {}",
        r.text
    );
    assert!(
        events.iter().all(|e| e["key_id"] == id.as_str()),
        "filtered by key_id"
    );
    assert_eq!(r.body["meta"]["total_entries"], 3);
    for e in events {
        assert_eq!(e["actor"], admin_id.as_str(), "who");
        assert_eq!(e["ip"], PEER_IP, "from where");
        assert!(e["id"].is_string());
    }
    let created = &events[2];
    assert!(
        created["at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-23T12:00:00"),
        "when: {created}"
    );
    let revoked = &events[0];
    assert!(
        revoked["at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-23T12:03:00"),
        "when: {revoked}"
    );

    let r = app
        .get(&format!("/api/v1/audit-events?key_id={clone_id}"), &admin)
        .await;
    let actions: Vec<&str> = r.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.deleted", "key.cloned"], "{}", r.text);

    let r = app
        .get("/api/v1/audit-events?key_id=key_doesnotexist", &admin)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["audit_events"], json!([]));
}

#[tokio::test]
async fn audit_events_need_keys_read() {
    let app = TestApp::new().await;
    let (_, secret) = app.key(&["orders:read", "keys:write"]).await;
    assert_insufficient(&app.get("/api/v1/audit-events", &secret).await, "keys:read");
}

// ---------------------------------------------------------------------------
// Authentication errors

#[tokio::test]
async fn no_key_is_401_missing_key_with_a_bare_bearer_challenge() {
    let app = TestApp::new().await;
    for (method, path) in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("GET", "/api/v1/key-templates"),
        ("GET", "/api/v1/audit-events"),
        ("POST", "/api/v1/me/revoke"),
    ] {
        let r = app.call(method, path, None, None).await;
        assert_problem(&r, 401, "missing_key");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="latchkey""#),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_basic_scheme_or_inner_whitespace_is_malformed_key() {
    let app = TestApp::new().await;
    let (_, secret) = app.key(&["orders:read"]).await;
    let with_space = format!("Bearer {} {}", &secret[..20], &secret[20..]);
    let basic = "Basic dXNlcjpwYXNzd29yZA==".to_owned();
    let basic_with_key = format!("Basic {secret}");
    for value in [basic, basic_with_key, with_space] {
        let r = send(
            &app,
            "GET",
            "/api/v1/me",
            &[("authorization", &value)],
            None,
        )
        .await;
        assert_invalid_token(&r, "malformed_key");
    }
    let spaced = format!("{} {}", &secret[..20], &secret[20..]);
    let r = send(&app, "GET", "/api/v1/me", &[("x-api-key", &spaced)], None).await;
    assert_invalid_token(&r, "malformed_key");
}

#[tokio::test]
async fn a_wrong_prefix_length_or_alphabet_is_malformed_key() {
    let app = TestApp::new().await;
    let (_, secret) = app.key(&["orders:read"]).await;
    let prod = secret.replacen("lk_live_", "lk_prod_", 1);
    let short = secret[..45].to_owned();
    let long = format!("{secret}A");
    let bad_alphabet = format!("{}_{}", &secret[..12], &secret[13..]);
    let lk_only = "lk_".to_owned();
    for value in [prod, short, long, bad_alphabet, lk_only] {
        let r = app.get("/api/v1/me", &value).await;
        assert_invalid_token(&r, "malformed_key");
    }
}

#[tokio::test]
async fn one_changed_character_fails_the_checksum_as_malformed_key() {
    let app = TestApp::new().await;
    let (_, secret) = app.key(&["orders:read"]).await;
    for position in [8, 20, 39, 40, 45] {
        let mut bytes = secret.clone().into_bytes();
        bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        let r = app.get("/api/v1/me", &changed).await;
        assert_invalid_token(&r, "malformed_key");
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("checksum"),
            "{}",
            r.text
        );
    }
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
}

#[tokio::test]
async fn garbage_is_malformed_key() {
    let app = TestApp::new().await;
    for value in [
        "hello",
        "!!!!!!!!!!!!!!!!!!!!!!!!",
        "Bearer",
        "{\"key\":1}",
        "x",
    ] {
        let r = send(&app, "GET", "/api/v1/me", &[("authorization", value)], None).await;
        assert_invalid_token(&r, "malformed_key");
    }
    let r = send(
        &app,
        "GET",
        "/api/v1/me",
        &[("x-api-key", "not-a-key!")],
        None,
    )
    .await;
    assert_invalid_token(&r, "malformed_key");
}

#[tokio::test]
async fn a_well_formed_unknown_key_is_invalid_key() {
    let app = TestApp::new().await;
    let made_up = made_up_key("live");
    let r = app.get("/api/v1/me", &made_up).await;
    assert_invalid_token(&r, "invalid_key");
    let r = app.get("/api/v1/keys", &made_up_key("test")).await;
    assert_invalid_token(&r, "invalid_key");
}

#[tokio::test]
async fn a_standard_key_in_the_url_is_refused_recorded_and_flagged_on_the_key() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read", "keys:read"]).await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .call("GET", &format!("/api/v1/me?api_key={secret}"), None, None)
        .await;
    assert_invalid_token(&r, "key_in_url");
    assert!(
        !r.text.contains(&secret),
        "the answer does not echo the key"
    );

    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(
        warning_codes(&shown.body["key"]).contains(&"sent_in_url".to_owned()),
        "{}",
        shown.text
    );

    let events = app
        .get(&format!("/api/v1/audit-events?key_id={id}"), &admin)
        .await;
    let event = events.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key.sent_in_url")
        .cloned()
        .unwrap_or_else(|| panic!("no key.sent_in_url event: {}", events.text));
    assert_eq!(event["ip"], PEER_IP);
    assert!(!events.text.contains(&secret));

    // A made-up key in the URL is refused the same way.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me?api_key={}", made_up_key("live")),
            None,
            None,
        )
        .await;
    assert_invalid_token(&r, "key_in_url");
    // The key itself still works from a header.
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
}

#[tokio::test]
async fn a_new_key_in_the_url_is_refused_and_recorded_even_beside_a_header_key() {
    let app = TestApp::new().await;
    let (_, header_key) = app.key(&["orders:read"]).await;
    let (url_id, url_key) = app.key(&["orders:read"]).await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    for header in ["authorization", "x-api-key"] {
        let value = if header == "authorization" {
            format!("Bearer {header_key}")
        } else {
            header_key.clone()
        };
        let r = send(
            &app,
            "GET",
            &format!("/api/v1/me?api_key={url_key}"),
            &[(header, &value)],
            None,
        )
        .await;
        assert_invalid_token(&r, "key_in_url");
        assert!(
            !r.text.contains(&url_key),
            "the answer does not echo the key"
        );
    }

    let shown = app.get(&format!("/api/v1/keys/{url_id}"), &admin).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(
        warning_codes(&shown.body["key"]).contains(&"sent_in_url".to_owned()),
        "the URL key carries the warning: {}",
        shown.text
    );
    let events = app
        .get(&format!("/api/v1/audit-events?key_id={url_id}"), &admin)
        .await;
    assert!(
        events.body["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "key.sent_in_url"),
        "no key.sent_in_url event for the URL key: {}",
        events.text
    );
    // Both keys still work from a header alone.
    assert_eq!(app.get("/api/v1/me", &header_key).await.status, 200);
    assert_eq!(app.get("/api/v1/me", &url_key).await.status, 200);
}

#[tokio::test]
async fn a_revoked_key_is_401_revoked_key() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None
        )
        .await
        .status,
        200
    );
    let r = app.get("/api/v1/me", &secret).await;
    assert_invalid_token(&r, "revoked_key");
}

#[tokio::test]
async fn an_expired_key_is_401_expired_key() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Contractor", "template": "read-only", "expires_at": "2026-11-23T13:00:00Z"}),
    )
    .await;
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert!(
        warning_codes(&shown.body["key"]).contains(&"expiring_soon".to_owned()),
        "{}",
        shown.text
    );
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    app.clock.advance_seconds(3599);
    assert_eq!(
        app.get("/api/v1/me", &secret).await.status,
        200,
        "still valid a second before"
    );
    app.clock.advance_seconds(1);
    let r = app.get("/api/v1/me", &secret).await;
    assert_invalid_token(&r, "expired_key");
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(shown.body["key"]["status"], "expired");
}

#[tokio::test]
async fn a_key_used_from_outside_its_allowed_ips_is_403_naming_the_client_ip() {
    let app = TestApp::new().await;
    assert_eq!(app.peer.ip().to_string(), PEER_IP);
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (_, fenced) = create(
        &app,
        &admin,
        json!({"name": "Office server", "template": "read-only", "allowed_ips": ["198.51.100.0/24", "2001:db8::/32"]}),
    )
    .await;
    let r = app.get("/api/v1/me", &fenced).await;
    assert_problem(&r, 403, "ip_not_allowed");
    assert_eq!(r.body["client_ip"], PEER_IP);

    let (_, inside) = create(
        &app,
        &admin,
        json!({"name": "Shop server", "template": "read-only", "allowed_ips": ["203.0.113.0/24"]}),
    )
    .await;
    assert_eq!(app.get("/api/v1/me", &inside).await.status, 200);
    let (_, exact) = create(
        &app,
        &admin,
        json!({"name": "Shop server exact", "template": "read-only", "allowed_ips": [PEER_IP]}),
    )
    .await;
    assert_eq!(app.get("/api/v1/me", &exact).await.status, 200);
}

#[tokio::test]
async fn a_key_without_the_route_permission_is_403_insufficient_scope() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read"]).await;
    assert_insufficient(&app.get("/api/v1/keys", &secret).await, "keys:read");
    assert_insufficient(
        &app.get(&format!("/api/v1/keys/{id}"), &secret).await,
        "keys:read",
    );
    assert_insufficient(
        &app.post(
            "/api/v1/keys",
            &secret,
            json!({"name": "Zapier", "template": "zapier"}),
        )
        .await,
        "keys:write",
    );
    assert_insufficient(
        &app.call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&secret),
            None,
        )
        .await,
        "keys:write",
    );
    assert_insufficient(
        &app.delete(&format!("/api/v1/keys/{id}"), &secret).await,
        "keys:write",
    );
    assert_insufficient(
        &app.patch(
            &format!("/api/v1/keys/{id}"),
            &secret,
            json!({"name": "Renamed"}),
        )
        .await,
        "keys:write",
    );
    assert_insufficient(
        &app.call(
            "POST",
            &format!("/api/v1/keys/{id}/clone"),
            Some(&secret),
            None,
        )
        .await,
        "keys:write",
    );
    // keys:read alone does not write.
    let (_, reader) = app.key(&["keys:read"]).await;
    assert_insufficient(
        &app.post(
            "/api/v1/keys",
            &reader,
            json!({"name": "Zapier", "template": "zapier"}),
        )
        .await,
        "keys:write",
    );
}

#[tokio::test]
async fn x_api_key_bare_authorization_and_lowercase_bearer_are_accepted() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read"]).await;
    let lower = format!("bearer {secret}");
    let upper = format!("BEARER {secret}");
    let bearer = format!("Bearer {secret}");
    for headers in [
        vec![("x-api-key", secret.as_str())],
        vec![("authorization", secret.as_str())],
        vec![("authorization", lower.as_str())],
        vec![("authorization", upper.as_str())],
        vec![
            ("authorization", bearer.as_str()),
            ("x-api-key", secret.as_str()),
        ],
    ] {
        let r = send(&app, "GET", "/api/v1/me", &headers, None).await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text);
        assert_eq!(r.body["key"]["id"], id.as_str());
    }
}

#[tokio::test]
async fn an_incoming_plain_request_id_is_echoed_as_the_problem_instance() {
    let app = TestApp::new().await;
    let r = send(
        &app,
        "GET",
        "/api/v1/me",
        &[("x-request-id", "trace-abc_123")],
        None,
    )
    .await;
    assert_problem(&r, 401, "missing_key");
    assert_eq!(r.header("x-request-id"), Some("trace-abc_123"));
    assert_eq!(r.body["instance"], "trace-abc_123");
}

// ---------------------------------------------------------------------------
// 404, 405, 409

#[tokio::test]
async fn unknown_ids_are_404_not_found_on_every_key_route() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    for id in [
        "key_doesnotexist0000000000",
        "not-an-id",
        "%20",
        "key_%27%3B--",
    ] {
        assert_problem(
            &app.get(&format!("/api/v1/keys/{id}"), &admin).await,
            404,
            "not_found",
        );
        assert_problem(
            &app.patch(
                &format!("/api/v1/keys/{id}"),
                &admin,
                json!({"name": "Renamed key"}),
            )
            .await,
            404,
            "not_found",
        );
        assert_problem(
            &app.delete(&format!("/api/v1/keys/{id}"), &admin).await,
            404,
            "not_found",
        );
        assert_problem(
            &app.call(
                "POST",
                &format!("/api/v1/keys/{id}/revoke"),
                Some(&admin),
                None,
            )
            .await,
            404,
            "not_found",
        );
        assert_problem(
            &app.call(
                "POST",
                &format!("/api/v1/keys/{id}/clone"),
                Some(&admin),
                None,
            )
            .await,
            404,
            "not_found",
        );
    }
}

#[tokio::test]
async fn a_live_keys_id_asked_with_a_test_key_is_404() {
    let app = TestApp::new().await;
    let (live_id, live_secret) = app.key(&["orders:read"]).await;
    let (_, test_admin) = admin_in(&app, &app.shop_id, "test").await;
    let path = format!("/api/v1/keys/{live_id}");
    assert_problem(&app.get(&path, &test_admin).await, 404, "not_found");
    assert_problem(
        &app.patch(&path, &test_admin, json!({"name": "Hijacked"}))
            .await,
        404,
        "not_found",
    );
    assert_problem(&app.delete(&path, &test_admin).await, 404, "not_found");
    assert_problem(
        &app.call("POST", &format!("{path}/revoke"), Some(&test_admin), None)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.call("POST", &format!("{path}/clone"), Some(&test_admin), None)
            .await,
        404,
        "not_found",
    );
    assert_eq!(
        app.get("/api/v1/me", &live_secret).await.status,
        200,
        "the live key is untouched"
    );
}

#[tokio::test]
async fn an_unsupported_method_is_405_with_allow() {
    let app = TestApp::new().await;
    let (id, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .call("PUT", "/api/v1/keys", Some(&admin), Some(json!({})))
        .await;
    assert_problem(&r, 405, "method_not_allowed");
    let allow = r
        .header("allow")
        .expect("405 carries Allow")
        .to_ascii_uppercase();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let r = app
        .call(
            "PUT",
            &format!("/api/v1/keys/{id}"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_problem(&r, 405, "method_not_allowed");
    let allow = r
        .header("allow")
        .expect("405 carries Allow")
        .to_ascii_uppercase();
    assert!(
        allow.contains("GET") && allow.contains("PATCH") && allow.contains("DELETE"),
        "{allow}"
    );

    let r = app
        .call(
            "GET",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_problem(&r, 405, "method_not_allowed");
    assert!(
        r.header("allow")
            .expect("Allow")
            .to_ascii_uppercase()
            .contains("POST")
    );
}

#[tokio::test]
async fn creating_or_cloning_past_max_keys_per_shop_is_409_conflict() {
    let app = TestApp::builder()
        .policy(|p| p.max_keys_per_shop = 2)
        .build()
        .await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (second, _) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "IT Glue", "template": "it-glue"}),
        )
        .await;
    assert_problem(&r, 409, "conflict");
    // The message names the environment whose keys are counted.
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("2 live keys") && detail.contains("test keys are counted apart"),
        "{detail}"
    );
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{second}/clone"),
            Some(&admin),
            None,
        )
        .await;
    assert_problem(&r, 409, "conflict");
    assert_eq!(key_count(&app, &admin).await, 2);
    // Deleting one makes room again.
    assert_eq!(
        app.delete(&format!("/api/v1/keys/{second}"), &admin)
            .await
            .status,
        204
    );
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "IT Glue", "template": "it-glue"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn patching_a_revoked_key_is_409_conflict() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None
        )
        .await
        .status,
        200
    );
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"name": "Zapier revived"}),
        )
        .await;
    assert_problem(&r, 409, "conflict");
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"expires_at": null}),
        )
        .await;
    assert_problem(&r, 409, "conflict");
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(shown.body["key"]["name"], "Zapier");
    assert_eq!(shown.body["key"]["status"], "revoked");
}

// ---------------------------------------------------------------------------
// The escalation rule

#[tokio::test]
async fn a_key_cannot_create_a_key_with_a_permission_it_lacks() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (_, weak) = app.key(&["keys:write", "orders:read"]).await;
    let before = key_count(&app, &admin).await;
    let r = app
        .post(
            "/api/v1/keys",
            &weak,
            json!({"name": "Reporting", "permissions": ["orders:read", "clients:read"]}),
        )
        .await;
    assert_insufficient(&r, "clients:read");
    assert!(r.body["detail"].as_str().unwrap().contains("clients:read"));
    // A template granting more than the caller holds is refused too.
    let r = app
        .post("/api/v1/keys", &weak, json!({"template": "zapier"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "insufficient_permission");
    // So is keys:read, which the caller does not hold.
    let r = app
        .post(
            "/api/v1/keys",
            &weak,
            json!({"name": "Auditor", "permissions": ["keys:read"]}),
        )
        .await;
    assert_insufficient(&r, "keys:read");
    assert_eq!(key_count(&app, &admin).await, before, "nothing created");
    // Within its own permissions it may create.
    let r = app
        .post(
            "/api/v1/keys",
            &weak,
            json!({"name": "Order export", "permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_key_cannot_patch_permissions_to_add_one_it_lacks() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (weak_id, weak) = app.key(&["keys:write", "orders:read"]).await;
    let (subset, _) = app.key(&["orders:read"]).await;
    let r = app
        .patch(
            &format!("/api/v1/keys/{subset}"),
            &weak,
            json!({"permissions": ["orders:read", "clients:read"]}),
        )
        .await;
    assert_insufficient(&r, "clients:read");
    let shown = app.get(&format!("/api/v1/keys/{subset}"), &admin).await;
    assert_eq!(
        strings(&shown.body["key"]["permissions"]),
        sorted(&["orders:read"])
    );
    // Nor upgrade itself.
    let r = app
        .patch(
            &format!("/api/v1/keys/{weak_id}"),
            &weak,
            json!({"permissions": ["keys:write", "orders:read", "keys:read"]}),
        )
        .await;
    assert_insufficient(&r, "keys:read");
}

#[tokio::test]
async fn a_key_cannot_revoke_delete_clone_or_patch_a_stronger_key() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (_, weak) = app.key(&["keys:write", "orders:read"]).await;
    let (strong, strong_secret) = app.key(&["orders:read", "clients:read"]).await;
    let before = key_count(&app, &admin).await;
    let path = format!("/api/v1/keys/{strong}");
    assert_insufficient(
        &app.call("POST", &format!("{path}/revoke"), Some(&weak), None)
            .await,
        "clients:read",
    );
    assert_insufficient(&app.delete(&path, &weak).await, "clients:read");
    let r = app
        .call("POST", &format!("{path}/clone"), Some(&weak), None)
        .await;
    assert_insufficient(&r, "clients:read");
    assert!(
        !r.text.contains("lk_live_"),
        "no secret leaks from a refused clone"
    );
    assert_insufficient(
        &app.post(&format!("{path}/clone"), &weak, json!({"name": "My copy"}))
            .await,
        "clients:read",
    );
    assert_insufficient(
        &app.patch(&path, &weak, json!({"name": "Renamed"})).await,
        "clients:read",
    );
    // Narrowing a stronger key is acting on it too.
    assert_insufficient(
        &app.patch(&path, &weak, json!({"permissions": ["orders:read"]}))
            .await,
        "clients:read",
    );

    let shown = app.get(&path, &admin).await;
    assert_eq!(shown.body["key"]["status"], "active");
    assert_eq!(
        strings(&shown.body["key"]["permissions"]),
        sorted(&["orders:read", "clients:read"])
    );
    assert_eq!(key_count(&app, &admin).await, before);
    assert_eq!(app.get("/api/v1/me", &strong_secret).await.status, 200);
}

#[tokio::test]
async fn a_key_can_revoke_delete_clone_and_patch_a_subset_key() {
    let app = TestApp::new().await;
    let (weak_id, weak) = app.key(&["keys:write", "orders:read"]).await;
    let (subset, subset_secret) = app.key(&["orders:read"]).await;
    let path = format!("/api/v1/keys/{subset}");

    let r = app
        .patch(&path, &weak, json!({"name": "Order export (nightly)"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["name"], "Order export (nightly)");

    let r = app
        .post(
            &format!("{path}/clone"),
            &weak,
            json!({"name": "Order export (hourly)"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        strings(&r.body["key"]["permissions"]),
        sorted(&["orders:read"])
    );
    assert_eq!(r.body["key"]["created_by"], weak_id.as_str());
    let clone_id = r.body["key"]["id"].as_str().unwrap().to_owned();

    let r = app
        .call("POST", &format!("{path}/revoke"), Some(&weak), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["status"], "revoked");
    assert_invalid_token(&app.get("/api/v1/me", &subset_secret).await, "revoked_key");

    let r = app.delete(&path, &weak).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.delete(&format!("/api/v1/keys/{clone_id}"), &weak).await;
    assert_eq!(r.status, 204, "{}", r.text);

    // An equal key (itself) is a subset too.
    let r = app
        .patch(
            &format!("/api/v1/keys/{weak_id}"),
            &weak,
            json!({"name": "Key manager"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_test_key_cannot_create_a_live_key_and_lists_only_test_keys() {
    let app = TestApp::new().await;
    let (_, live_admin) = admin_in(&app, &app.shop_id, "live").await;
    let (test_admin_id, test_admin) = admin_in(&app, &app.shop_id, "test").await;
    let (test_other, _) = app.key_in(&app.shop_id, "test", &["orders:read"]).await;
    let live_before = key_count(&app, &live_admin).await;

    let r = app
        .post(
            "/api/v1/keys",
            &test_admin,
            json!({"name": "Production Zapier", "template": "zapier", "environment": "live"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "insufficient_permission");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        key_count(&app, &live_admin).await,
        live_before,
        "no live key was created"
    );

    let r = app.get("/api/v1/keys", &test_admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys = r.body["keys"].as_array().unwrap();
    assert!(
        keys.iter().all(|k| k["environment"] == "test"),
        "{}",
        r.text
    );
    let mut ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![test_admin_id.as_str(), test_other.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(r.body["meta"]["total_entries"], 2);
    let r = app.get("/api/v1/keys?environment=live", &test_admin).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["keys"], json!([]));

    // Its audit view holds test-key events only.
    let r = app.get("/api/v1/audit-events", &test_admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["environment"] == "test"),
        "{}",
        r.text
    );
}

// ---------------------------------------------------------------------------
// Cross-shop isolation

#[tokio::test]
async fn another_shops_key_cannot_see_list_or_touch_this_shops_keys() {
    let app = TestApp::new().await;
    let (_, admin_a) = admin_in(&app, &app.shop_id, "live").await;
    let (victim, victim_secret) = create(
        &app,
        &admin_a,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let shop_b = app.new_shop("Other Repairs", "owner@other.example").await;
    let (_, admin_b) = admin_in(&app, &shop_b, "live").await;

    let path = format!("/api/v1/keys/{victim}");
    assert_problem(&app.get(&path, &admin_b).await, 404, "not_found");
    assert_problem(
        &app.patch(&path, &admin_b, json!({"name": "Mine now"}))
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.call("POST", &format!("{path}/revoke"), Some(&admin_b), None)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.call("POST", &format!("{path}/clone"), Some(&admin_b), None)
            .await,
        404,
        "not_found",
    );
    assert_problem(&app.delete(&path, &admin_b).await, 404, "not_found");

    let r = app.get("/api/v1/keys?per_page=100", &admin_b).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["meta"]["total_entries"], 1,
        "only shop B's own key: {}",
        r.text
    );
    assert!(!r.text.contains(&victim));

    // Shop A's key is intact and working.
    let shown = app.get(&path, &admin_a).await;
    assert_eq!(shown.body["key"]["name"], "Zapier");
    assert_eq!(shown.body["key"]["status"], "active");
    assert_eq!(app.get("/api/v1/me", &victim_secret).await.status, 200);
    assert_eq!(key_count(&app, &admin_a).await, 2);
}

#[tokio::test]
async fn another_shops_key_does_not_see_this_shops_audit_events() {
    let app = TestApp::new().await;
    let (admin_a_id, admin_a) = admin_in(&app, &app.shop_id, "live").await;
    let (victim, _) = create(
        &app,
        &admin_a,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{victim}/revoke"),
            Some(&admin_a),
            None
        )
        .await
        .status,
        200
    );
    let shop_b = app.new_shop("Other Repairs", "owner@other.example").await;
    let (_, admin_b) = admin_in(&app, &shop_b, "live").await;

    let r = app
        .get(&format!("/api/v1/audit-events?key_id={victim}"), &admin_b)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["audit_events"], json!([]));
    assert_eq!(r.body["meta"]["total_entries"], 0);
    let r = app.get("/api/v1/audit-events?per_page=100", &admin_b).await;
    assert!(
        !r.text.contains(&victim) && !r.text.contains(&admin_a_id),
        "{}",
        r.text
    );

    // Shop A sees its own.
    let r = app
        .get(&format!("/api/v1/audit-events?key_id={victim}"), &admin_a)
        .await;
    assert_eq!(r.body["meta"]["total_entries"], 2, "{}", r.text);
}

// ---------------------------------------------------------------------------
// Immediate effect with a warm cache

#[tokio::test]
async fn revoking_through_the_api_stops_a_cached_key_on_the_very_next_request() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200); // served from the cache
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None
        )
        .await
        .status,
        200
    );
    assert_invalid_token(&app.get("/api/v1/me", &secret).await, "revoked_key");
}

#[tokio::test]
async fn narrowing_allowed_ips_or_permissions_applies_to_a_cached_key_at_once() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (id, secret) = create(
        &app,
        &admin,
        json!({"name": "Reporting", "permissions": ["keys:read", "orders:read"]}),
    )
    .await;
    assert_eq!(app.get("/api/v1/keys", &secret).await.status, 200); // warm
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_insufficient(&app.get("/api/v1/keys", &secret).await, "keys:read");

    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"allowed_ips": ["198.51.100.0/24"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.get("/api/v1/me", &secret).await;
    assert_problem(&r, 403, "ip_not_allowed");
    assert_eq!(r.body["client_ip"], PEER_IP);
}

#[tokio::test]
async fn test_keys_filling_the_test_quota_never_block_live_create_roll_or_upgrade() {
    let app = TestApp::builder()
        .policy(|p| p.max_keys_per_shop = 4)
        .build()
        .await;
    let (_, test_admin) = admin_in(&app, &app.shop_id, "test").await;
    for i in 1..=3 {
        create(
            &app,
            &test_admin,
            json!({"name": format!("Sandbox {i}"), "template": "zapier"}),
        )
        .await;
    }
    let r = app
        .post(
            "/api/v1/keys",
            &test_admin,
            json!({"name": "Sandbox 4", "template": "zapier"}),
        )
        .await;
    assert_problem(&r, 409, "conflict");

    // The live quota is the live keys' own.
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let (live, _) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/keys/{live}/roll"),
            &admin,
            json!({"expire_old_in_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        app.delete(&format!("/api/v1/keys/{live}"), &admin)
            .await
            .status,
        204
    );
    let legacy = app
        .core
        .keys
        .import_legacy(
            &app.shop_id,
            "key,name\nlegacyAAAAbbbbCCCCdddd0001,Old form\n",
            false,
        )
        .await
        .unwrap()
        .keys[0]
        .id
        .clone();
    let r = app
        .post(&format!("/api/v1/keys/{legacy}/upgrade"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Now the live quota is full too.
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "One more", "template": "zapier"}),
        )
        .await;
    assert_problem(&r, 409, "conflict");
}

#[tokio::test]
async fn key_names_with_bidi_override_or_zero_width_characters_are_422_naming_name() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    for name in [
        "Zapier\u{202E}redro",
        "Za\u{200B}pier",
        "\u{2067}Zapier",
        "Zapier\u{2060}",
        "Zap\u{200D}ier",
    ] {
        assert_create_rejected(
            &app,
            &admin,
            json!({"name": name, "template": "zapier"}),
            "name",
        )
        .await;
    }
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"name": "Zapier\u{FEFF}"}),
        )
        .await;
    assert_problem(&r, 422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "name", "{}", r.text);
}

#[tokio::test]
async fn a_key_whose_permissions_no_longer_match_its_template_is_customized() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id, "live").await;
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "Zapier", "template": "zapier"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["template"], "zapier");
    assert_eq!(r.body["key"]["customized"], false, "{}", r.text);
    let id = r.body["key"]["id"].as_str().unwrap().to_owned();
    let template_permissions = r.body["key"]["permissions"].clone();

    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["template"], "zapier", "the template is kept");
    assert_eq!(r.body["key"]["customized"], true, "{}", r.text);
    let shown = app.get(&format!("/api/v1/keys/{id}"), &admin).await;
    assert_eq!(shown.body["key"]["customized"], true, "{}", shown.text);
    let listed = app.get("/api/v1/keys", &admin).await;
    let entry = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["customized"], true);

    // Back to exactly the template's permissions: no longer customized.
    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({"permissions": template_permissions}),
        )
        .await;
    assert_eq!(r.body["key"]["customized"], false, "{}", r.text);
    // A key made without a template is never customized.
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "Custom sync", "permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(r.body["key"]["customized"], false, "{}", r.text);
}

// ----- The contract: action bodies, integers, Rust-free messages -----

#[tokio::test]
async fn an_action_body_may_be_absent_or_empty_and_null_is_422_naming_the_body() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id.clone(), "live").await;
    let (id, _) = create(
        &app,
        &admin,
        json!({"name": "Clone source", "permissions": ["orders:read"]}),
    )
    .await;
    let absent = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/clone"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(absent.status, 201, "{}", absent.text);
    let empty = app
        .post(&format!("/api/v1/keys/{id}/clone"), &admin, json!({}))
        .await;
    assert_eq!(empty.status, 201, "{}", empty.text);
    let null = app
        .post(&format!("/api/v1/keys/{id}/clone"), &admin, Value::Null)
        .await;
    assert_validation(&null, "body");
    assert!(null.text.contains("must be a JSON object"), "{}", null.text);
}

#[tokio::test]
async fn a_fractional_rate_limit_is_422_saying_integer_and_a_whole_one_with_a_fraction_is_taken() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id.clone(), "live").await;
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "Fractional", "permissions": ["orders:read"], "rate_limit_per_minute": 60.5}),
        )
        .await;
    assert_validation(&r, "rate_limit_per_minute");
    assert!(r.text.contains("must be an integer"), "{}", r.text);
    for rust in ["i64", "u32", "usize", "invalid type:"] {
        assert!(!r.text.contains(rust), "{}", r.text);
    }
    let r = app
        .post(
            "/api/v1/keys",
            &admin,
            json!({"name": "Whole", "permissions": ["orders:read"], "rate_limit_per_minute": 60.0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["rate_limit_per_minute"], 60);
}

#[tokio::test]
async fn the_key_list_refuses_an_empty_filter_and_a_page_past_int32() {
    let app = TestApp::new().await;
    let (_, admin) = admin_in(&app, &app.shop_id.clone(), "live").await;
    let r = app.get("/api/v1/keys?status=", &admin).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("`status`"), "{}", r.text);
    let r = app
        .get("/api/v1/audit-events?page=2147483648", &admin)
        .await;
    assert_validation(&r, "page");
}

/// `/me` bodies are kept a moment for integrations that check their key
/// often (src/http/api/me.rs); what `/me` says still follows a change to the
/// key at once, and a warning that depends on the time follows the clock.
#[tokio::test]
async fn me_follows_a_rename_at_once_and_the_clock_within_a_second() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    // Expires 7 days and 30 seconds from now: not yet "expiring soon".
    let (id, secret) = create(
        &app,
        &admin,
        json!({
            "name": "Zapier – new orders",
            "permissions": ["orders:read"],
            "expires_at": "2026-11-30T12:00:30Z",
        }),
    )
    .await;
    let codes = |r: &TestResponse| -> Vec<String> {
        r.body["key"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app.get("/api/v1/me", &secret).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["key"]["name"], "Zapier – new orders");
    assert!(codes(&first).is_empty(), "{}", first.text);
    let again = app.get("/api/v1/me", &secret).await;
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("content-type"), Some("application/json"));

    let r = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            &admin,
            json!({ "name": "Zapier – paid orders" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let renamed = app.get("/api/v1/me", &secret).await;
    assert_eq!(renamed.body["key"]["name"], "Zapier – paid orders");

    // 31 s on, the key expires within 7 days: the warning is there.
    app.clock.advance_seconds(31);
    let later = app.get("/api/v1/me", &secret).await;
    assert_eq!(later.status, 200, "{}", later.text);
    assert_eq!(codes(&later), ["expiring_soon"], "{}", later.text);
}
