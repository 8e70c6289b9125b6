//! Key operations for a shop's worst days (SPEC v3): pausing and resuming an
//! integration's keys, leaked-key reports, least-privilege suggestions.
mod common;

use common::{TestApp, assert_problem};
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
    "keys:read",
    "keys:write",
];

/// Creates a key through the API with `body`; returns (id, secret).
async fn create(app: &TestApp, manager: &str, body: Value) -> (String, String) {
    let r = app.post("/api/v1/keys", manager, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["key"]["id"].as_str().unwrap().to_owned(),
        r.body["key"]["secret"].as_str().unwrap().to_owned(),
    )
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn skipped(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn status_of(app: &TestApp, manager: &str, id: &str) -> String {
    let r = app.get(&format!("/api/v1/keys/{id}"), manager).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["key"]["status"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// Pause and resume

#[tokio::test]
async fn pausing_by_template_pauses_every_key_made_from_it_customized_or_not_until_it_is_resumed() {
    let app = TestApp::new().await;
    let (_, manager) = app.key(ALL).await;
    let (zap1, zap1_secret) = create(
        &app,
        &manager,
        json!({"name": "Zapier – orders", "template": "zapier"}),
    )
    .await;
    let (zap2, zap2_secret) = create(
        &app,
        &manager,
        json!({"name": "Zapier – clients", "template": "zapier"}),
    )
    .await;
    // Customized: no longer exactly the template's permissions.
    let r = app
        .patch(
            &format!("/api/v1/keys/{zap2}"),
            &manager,
            json!({"permissions": ["clients:read"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["customized"], true);
    let (pax, pax_secret) = create(
        &app,
        &manager,
        json!({"name": "Pax8 billing", "template": "pax8"}),
    )
    .await;

    let r = app
        .post(
            "/api/v1/keys/pause",
            &manager,
            json!({"template": "zapier", "reason": "Zapier security incident"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ids(&r.body["paused"]),
        sorted(vec![zap1.clone(), zap2.clone()])
    );
    assert_eq!(r.body["skipped"], json!([]));

    // SPEC: 403 key_paused (not 401), naming when and why.
    for secret in [&zap1_secret, &zap2_secret] {
        let r = app.get("/api/v1/me", secret).await;
        assert_problem(&r, 403, "key_paused");
        assert_eq!(r.body["reason"], "Zapier security incident");
        let at = r.body["paused_at"].as_str().unwrap();
        assert!(at.starts_with("2026-11-23T12:00:00"), "{}", r.text);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("Zapier security incident") && detail.contains(at),
            "{detail}"
        );
        assert!(r.header("www-authenticate").is_none());
    }
    // Another integration's key goes on working.
    assert_eq!(app.get("/api/v1/me", &pax_secret).await.status, 200);
    assert_eq!(status_of(&app, &manager, &pax).await, "active");

    // The key object says so, with a warning, and the list filters by it.
    let r = app.get(&format!("/api/v1/keys/{zap1}"), &manager).await;
    assert_eq!(r.body["key"]["status"], "paused");
    let warnings = r.body["key"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["code"] == "paused"
            && w["message"]
                .as_str()
                .unwrap()
                .contains("Zapier security incident")),
        "{warnings:?}"
    );
    let r = app.get("/api/v1/keys?status=paused", &manager).await;
    let listed: Vec<String> = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(listed), sorted(vec![zap1.clone(), zap2.clone()]));

    // Pausing again changes nothing more.
    let r = app
        .post(
            "/api/v1/keys/pause",
            &manager,
            json!({"template": "zapier"}),
        )
        .await;
    assert_eq!(r.body["paused"], json!([]));
    assert_eq!(
        skipped(&r.body),
        sorted(vec![zap1.clone(), zap2.clone()])
            .into_iter()
            .map(|id| (id, "already_paused".to_owned()))
            .collect::<Vec<_>>()
    );

    // Audited, with the reason and the template.
    let r = app
        .get("/api/v1/audit-events?action=key.paused", &manager)
        .await;
    let events = r.body["audit_events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", r.text);
    assert_eq!(events[0]["details"]["reason"], "Zapier security incident");
    assert_eq!(events[0]["details"]["template"], "zapier");

    let r = app
        .post(
            "/api/v1/keys/resume",
            &manager,
            json!({"template": "zapier"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ids(&r.body["resumed"]),
        sorted(vec![zap1.clone(), zap2.clone()])
    );
    for secret in [&zap1_secret, &zap2_secret] {
        assert_eq!(app.get("/api/v1/me", secret).await.status, 200);
    }
    assert_eq!(status_of(&app, &manager, &zap1).await, "active");
    let r = app
        .get("/api/v1/audit-events?action=key.resumed", &manager)
        .await;
    assert_eq!(
        r.body["audit_events"].as_array().unwrap().len(),
        2,
        "{}",
        r.text
    );
    // Resuming a running key changes nothing.
    let r = app
        .post("/api/v1/keys/resume", &manager, json!({"key_ids": [pax]}))
        .await;
    assert_eq!(r.body["resumed"], json!([]));
    assert_eq!(skipped(&r.body), vec![(pax, "not_paused".to_owned())]);
}

#[tokio::test]
async fn pausing_by_ids_skips_unknown_invisible_stronger_looser_and_revoked_keys_and_changes_none_of_them()
 {
    let app = TestApp::new().await;
    let (_, owner_key) = app.key(ALL).await;
    // A manager that holds orders only, and only from one network.
    let (_, manager) = create(
        &app,
        &owner_key,
        json!({"name": "Order sync manager", "permissions": ["keys:read", "keys:write", "orders:read"],
               "allowed_ips": ["203.0.113.0/24"]}),
    )
    .await;
    let (weak, weak_secret) = create(
        &app,
        &owner_key,
        json!({"name": "Order reader", "permissions": ["orders:read"], "allowed_ips": ["203.0.113.10"]}),
    )
    .await;
    let (strong, strong_secret) = create(
        &app,
        &owner_key,
        json!({"name": "Client reader", "permissions": ["clients:read"], "allowed_ips": ["203.0.113.10"]}),
    )
    .await;
    let (free, free_secret) = create(
        &app,
        &owner_key,
        json!({"name": "Unbound order reader", "permissions": ["orders:read"]}),
    )
    .await;
    let (revoked, _) = create(
        &app,
        &owner_key,
        json!({"name": "Old order reader", "permissions": ["orders:read"], "allowed_ips": ["203.0.113.10"]}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/keys/{revoked}/revoke"),
            &owner_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let other_shop = app.new_shop("Other Shop", "owner@other.example").await;
    let (foreign, foreign_secret) = app.key_in(&other_shop, "live", &["orders:read"]).await;
    let (test_key, test_secret) = app.key_in(&app.shop_id, "test", &["orders:read"]).await;

    let r = app
        .post(
            "/api/v1/keys/pause",
            &manager,
            json!({"key_ids": [weak, strong, free, revoked, foreign, test_key, "key_nosuchkey"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["paused"], json!([weak]));
    let mut want = vec![
        (strong.clone(), "insufficient_permission".to_owned()),
        (free.clone(), "restriction_not_inherited".to_owned()),
        (revoked.clone(), "revoked".to_owned()),
        (foreign.clone(), "not_found".to_owned()),
        (test_key.clone(), "not_found".to_owned()),
        ("key_nosuchkey".to_owned(), "not_found".to_owned()),
    ];
    want.sort();
    assert_eq!(skipped(&r.body), want);

    assert_problem(
        &app.get("/api/v1/me", &weak_secret).await,
        403,
        "key_paused",
    );
    for secret in [&strong_secret, &free_secret, &foreign_secret, &test_secret] {
        let r = app.get("/api/v1/me", secret).await;
        assert_eq!(r.status, 200, "a skipped key still works: {}", r.text);
    }
    for id in [&strong, &free] {
        assert_eq!(status_of(&app, &owner_key, id).await, "active");
    }
    let test_record = app.core.keys.get_any_shop(&test_key).await.unwrap();
    assert!(test_record.paused.is_none());
    assert_eq!(status_of(&app, &owner_key, &revoked).await, "revoked");
    let r = app
        .get("/api/v1/audit-events?action=key.paused", &owner_key)
        .await;
    assert_eq!(
        r.body["audit_events"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );

    // A resume follows the same rules.
    let r = app
        .post(
            "/api/v1/keys/resume",
            &manager,
            json!({"key_ids": [weak, strong]}),
        )
        .await;
    assert_eq!(r.body["resumed"], json!([weak]));
    assert_eq!(
        skipped(&r.body),
        vec![(strong.clone(), "insufficient_permission".to_owned())]
    );
    assert_eq!(app.get("/api/v1/me", &weak_secret).await.status, 200);
}

#[tokio::test]
async fn a_test_key_pauses_only_test_keys_and_a_live_key_only_live_ones() {
    let app = TestApp::new().await;
    let (_, live_manager) = app.key(ALL).await;
    let (_, test_manager) = app.key_in(&app.shop_id, "test", ALL).await;
    let (live_zap, live_secret) = create(
        &app,
        &live_manager,
        json!({"name": "Zapier live", "template": "zapier"}),
    )
    .await;
    let (test_zap, test_secret) = create(
        &app,
        &test_manager,
        json!({"name": "Zapier test", "template": "zapier"}),
    )
    .await;

    let r = app
        .post(
            "/api/v1/keys/pause",
            &test_manager,
            json!({"template": "zapier"}),
        )
        .await;
    assert_eq!(r.body["paused"], json!([test_zap]), "{}", r.text);
    assert_eq!(r.body["skipped"], json!([]));
    assert_problem(
        &app.get("/api/v1/me", &test_secret).await,
        403,
        "key_paused",
    );
    assert_eq!(app.get("/api/v1/me", &live_secret).await.status, 200);

    // By id, the other environment's key is not there at all.
    let r = app
        .post(
            "/api/v1/keys/pause",
            &test_manager,
            json!({"key_ids": [live_zap]}),
        )
        .await;
    assert_eq!(r.body["paused"], json!([]));
    assert_eq!(
        skipped(&r.body),
        vec![(live_zap.clone(), "not_found".to_owned())]
    );
    let r = app
        .post(
            "/api/v1/keys/resume",
            &live_manager,
            json!({"key_ids": [test_zap]}),
        )
        .await;
    assert_eq!(
        skipped(&r.body),
        vec![(test_zap.clone(), "not_found".to_owned())]
    );
    assert_eq!(app.get("/api/v1/me", &live_secret).await.status, 200);
    assert_problem(
        &app.get("/api/v1/me", &test_secret).await,
        403,
        "key_paused",
    );
}

#[tokio::test]
async fn bad_pause_requests_are_refused_with_the_field_and_change_nothing() {
    let app = TestApp::new().await;
    let (_, manager) = app.key(ALL).await;
    let (zap, zap_secret) = create(
        &app,
        &manager,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    for (body, field) in [
        (json!({}), "template"),
        (json!({"template": "zapier", "key_ids": [zap]}), "template"),
        (json!({"template": "no-such-template"}), "template"),
        (json!({"key_ids": []}), "key_ids"),
        (
            json!({"template": "zapier", "reason": "x".repeat(201)}),
            "reason",
        ),
        (
            json!({"template": "zapier", "reason": "line\nbreak"}),
            "reason",
        ),
    ] {
        let r = app.post("/api/v1/keys/pause", &manager, body.clone()).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.text);
    }
    let r = app
        .post(
            "/api/v1/keys/pause",
            &manager,
            json!({"template": "zapier", "why": "?"}),
        )
        .await;
    assert_eq!(r.status, 422, "an unknown member is refused: {}", r.text);
    let r = app
        .post("/api/v1/keys/pause", &manager, json!({"key_ids": "key_x"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // keys:write is needed.
    let (_, reader) = app.key(&["keys:read", "orders:read"]).await;
    let r = app
        .post("/api/v1/keys/pause", &reader, json!({"template": "zapier"}))
        .await;
    assert_problem(&r, 403, "insufficient_permission");
    assert_eq!(r.body["required_permission"], "keys:write");
    assert_eq!(app.get("/api/v1/me", &zap_secret).await.status, 200);
    assert_eq!(status_of(&app, &manager, &zap).await, "active");
}

#[tokio::test]
async fn requests_refused_because_the_key_is_paused_are_counted_as_paused() {
    let app = TestApp::new().await;
    let (_, manager) = app.key(ALL).await;
    let (zap, zap_secret) = create(
        &app,
        &manager,
        json!({"name": "Zapier", "template": "zapier"}),
    )
    .await;
    let r = app
        .post("/api/v1/keys/pause", &manager, json!({"key_ids": [zap]}))
        .await;
    assert_eq!(r.body["paused"], json!([zap]));
    for _ in 0..3 {
        assert_problem(
            &app.get("/api/v1/orders", &zap_secret).await,
            403,
            "key_paused",
        );
    }
    app.core.usage.flush(app.store.as_ref()).await.unwrap();
    let r = app
        .get(&format!("/api/v1/keys/{zap}/usage"), &manager)
        .await;
    assert_eq!(r.body["usage"]["rejected"]["paused"], 3, "{}", r.text);
    assert_eq!(r.body["usage"]["requests"]["total"], 3);
}
