//! The OpenAPI document: pinned by a snapshot, and checked against the
//! routes' real behaviour so the permissions it documents cannot drift.
mod common;

use axum::body::Body;
use axum::http::Request;
use common::TestApp;
use latchkey::domain::permission::Permission;
use serde_json::Value;

const SNAPSHOT: &str = "tests/snapshots/openapi.json";

#[test]
fn the_openapi_document_matches_its_snapshot() {
    let actual =
        serde_json::to_string_pretty(latchkey::http::openapi::document_json()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        actual == expected,
        "the OpenAPI document changed; review the diff and run `UPDATE_SNAPSHOTS=1 cargo test --test openapi` to accept it"
    );
}

fn operations() -> Vec<(String, String, Value)> {
    let doc = latchkey::http::openapi::document_json().clone();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

fn scopes(op: &Value) -> Option<Vec<String>> {
    let reqs = op["security"].as_array()?;
    Some(
        reqs.iter()
            .flat_map(|r| r["bearer"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
    )
}

async fn call(app: &TestApp, method: &str, path: &str, key: &str) -> common::TestResponse {
    let uri = path.replace("{id}", "nonexistent");
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"));
    let body = if matches!(method, "POST" | "PATCH") {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    } else {
        Body::empty()
    };
    app.send(req.body(body).unwrap()).await
}

#[test]
fn every_keyed_operation_is_in_the_permission_table_and_every_entry_is_routed() {
    use latchkey::http::api::permissions::{OPERATIONS, operation};
    let documented: Vec<(String, String)> = operations()
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/api/v1/"))
        .map(|(m, p, _)| (m, p))
        .collect();
    for (method, path) in &documented {
        assert!(
            operation(method, path).is_some(),
            "{method} {path} is routed under /api/v1 but has no permission table entry"
        );
    }
    for op in OPERATIONS {
        assert!(
            documented
                .iter()
                .any(|(m, p)| m == op.method && p == op.route),
            "the permission table names {} {}, which no route serves",
            op.method,
            op.route
        );
    }
}

#[tokio::test]
async fn every_documented_permission_is_the_one_the_route_enforces() {
    let app = TestApp::new().await;
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let mut checked = 0;
    for (method, path, op) in operations() {
        let Some(scopes) = scopes(&op) else { continue };
        if scopes.len() != 1 {
            continue; // any key (`/me`) or alternatives (test-data reset): tested elsewhere
        }
        let scope = &scopes[0];
        let without: Vec<&str> = all.iter().copied().filter(|p| p != scope).collect();
        let (_, weak) = app.key(&without).await;
        let r = call(&app, &method, &path, &weak).await;
        assert_eq!(r.status, 403, "{method} {path} without {scope}: {}", r.text);
        assert_eq!(
            r.body["required_permission"],
            scope.as_str(),
            "{method} {path}"
        );

        let (_, only) = app.key(&[scope.as_str()]).await;
        let r = call(&app, &method, &path, &only).await;
        assert!(
            !(r.status == 403 && r.code() == "insufficient_permission"),
            "{method} {path} with only {scope} was refused: {}",
            r.text
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} operations checked");
}

#[tokio::test]
async fn every_keyed_operation_documents_the_auth_errors_and_every_answer_is_documented() {
    for (method, path, op) in operations() {
        let responses = op["responses"].as_object().unwrap();
        // Public operations say `security: []`; keyed ones name the scheme.
        let keyed = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if keyed {
            for status in ["401", "403", "429", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{method} {path} lacks 404");
        }
        if !op["requestBody"].is_null() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_served_at_openapi_json_and_the_docs_page_lists_every_operation() {
    let app = TestApp::new().await;
    let r = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());

    let page = app.call("GET", "/settings/api-keys/docs", None, None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for (_, _, op) in operations() {
        let id = op["operationId"].as_str().unwrap();
        assert!(
            page.text.contains(&format!("id=\"op-{id}\"")),
            "docs page lacks {id}"
        );
    }
    for anchor in [
        "authentication",
        "errors",
        "rate-limits",
        "legacy-keys",
        "error-invalid_key",
    ] {
        assert!(
            page.text.contains(&format!("id=\"{anchor}\"")),
            "docs page lacks #{anchor}"
        );
    }
    assert!(
        !page.text.contains("http://") || !page.text.contains("<script src=\"http"),
        "no external scripts"
    );
    assert!(
        !page.text.contains("<link rel=\"stylesheet\" href=\"http"),
        "no external styles"
    );
}

#[test]
fn the_document_says_what_the_server_checks() {
    let doc = latchkey::http::openapi::document_json();
    assert_eq!(doc["servers"][0]["url"], "/");
    assert_eq!(doc["info"]["license"]["identifier"], "MIT");
    for (_, path, op) in operations() {
        assert!(op["summary"].is_string(), "{path} has no summary");
        assert!(
            op["security"].is_array(),
            "{path} does not say its security"
        );
    }
    let public: Vec<String> = operations()
        .into_iter()
        .filter(|(_, _, op)| op["security"] == serde_json::json!([]))
        .map(|(_, path, _)| path)
        .collect();
    assert_eq!(public, ["/healthz", "/readyz", "/openapi.json"]);

    let schemas = &doc["components"]["schemas"];
    // Creates say what they need; the order's client is one or the other.
    assert_eq!(
        schemas["NewDevice"]["required"],
        serde_json::json!(["device_type"])
    );
    assert_eq!(schemas["NewOrder"]["oneOf"].as_array().unwrap().len(), 2);
    assert_eq!(
        schemas["NewOrderForClient"]["required"],
        serde_json::json!(["client_id"])
    );
    assert_eq!(
        schemas["NewOrderWithNewClient"]["required"],
        serde_json::json!(["client"])
    );
    assert!(schemas["NewClient"]["not"].is_object());
    // Not nullable where null is refused.
    assert_eq!(
        schemas["OrderInput"]["properties"]["status"]["$ref"],
        "#/components/schemas/OrderStatus"
    );
    assert_eq!(
        schemas["DeviceInput"]["properties"]["status"]["$ref"],
        "#/components/schemas/DeviceStatus"
    );
    assert_eq!(
        schemas["NewKeyWithPermissions"]["properties"]["permissions"]["minItems"],
        1
    );
    assert!(schemas["ClientInput"]["properties"]["phone"]["anyOf"][0]["pattern"].is_string());

    let op = |id: &str| {
        operations()
            .into_iter()
            .find(|(_, _, op)| op["operationId"] == id)
            .map(|(_, _, op)| op)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    for id in ["cloneKey", "rollKey", "upgradeKey"] {
        let body = &op(id)["requestBody"];
        assert_eq!(body["required"], false, "{id}");
        assert!(
            body["content"]["application/json"]["schema"]["$ref"].is_string(),
            "{id}: {body}"
        );
    }
    let page = op("listKeys")["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "page")
        .cloned()
        .unwrap();
    assert_eq!(page["schema"]["format"], "int32");
    assert_eq!(page["schema"]["maximum"], 2_147_483_647);
    let idempotency = op("createOrder")["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .cloned()
        .unwrap();
    assert!(idempotency["schema"]["pattern"].is_string());
    // Each create links to the read, update and delete of what it made.
    for (create, targets) in [
        (
            "createClient",
            &["getClient", "updateClient", "deleteClient"][..],
        ),
        (
            "createOrder",
            &["getOrder", "updateOrder", "deleteOrder"][..],
        ),
        (
            "addOrderDevice",
            &["getDevice", "updateDevice", "deleteDevice"][..],
        ),
        (
            "createKey",
            &["getKey", "updateKey", "revokeKey", "deleteKey"][..],
        ),
    ] {
        let links = op(create)["responses"]["201"]["links"].clone();
        for target in targets {
            assert!(
                links
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|l| l["operationId"] == *target),
                "{create} has no link to {target}: {links}"
            );
        }
    }
}
