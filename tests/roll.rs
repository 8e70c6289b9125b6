//! Rolling keys: a replacement, a grace period, once only, linked in the audit log.

mod common;

use common::TestApp;

fn events(r: &common::TestResponse) -> Vec<serde_json::Value> {
    r.body["audit_events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_roll_with_no_grace_replaces_the_key_and_expires_the_old_one_at_once() {
    let app = TestApp::new().await;
    let (admin_id, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (old_id, old) = app
        .key_with(
            &app.shop_id,
            latchkey::service::keys::NewKeyInput {
                name: Some("Zapier – new orders".into()),
                permissions: Some(vec!["orders:read".into()]),
                allowed_ips: Some(Some(vec!["203.0.113.0/24".into()])),
                rate_limit_per_minute: Some(42),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .post(
            &format!("/api/v1/keys/{old_id}/roll"),
            &admin,
            serde_json::json!({"expire_old_in_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_id = r.body["key"]["id"].as_str().unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/keys/{new_id}").as_str())
    );
    assert_eq!(r.body["key"]["name"], "Zapier – new orders");
    assert_eq!(
        r.body["key"]["permissions"],
        serde_json::json!(["orders:read"])
    );
    assert_eq!(
        r.body["key"]["allowed_ips"],
        serde_json::json!(["203.0.113.0/24"])
    );
    assert_eq!(r.body["key"]["rate_limit_per_minute"], 42);
    assert_eq!(r.body["key"]["environment"], "live");
    let secret = r.body["key"]["secret"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", secret).await.status, 200);
    let refused = app.get("/api/v1/me", &old).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code(), "expired_key");
    let _ = admin_id;
}

#[tokio::test]
async fn a_roll_with_grace_keeps_the_old_key_until_the_grace_ends() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (old_id, old) = app.key(&["orders:read"]).await;
    let r = app
        .post(
            &format!("/api/v1/keys/{old_id}/roll"),
            &admin,
            serde_json::json!({"expire_old_in_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.get("/api/v1/me", &old).await.status, 200);
    app.clock.advance_seconds(3599);
    assert_eq!(app.get("/api/v1/me", &old).await.status, 200);
    app.clock.advance_seconds(1);
    let refused = app.get("/api/v1/me", &old).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code(), "expired_key");
}

#[tokio::test]
async fn a_roll_without_a_body_expires_the_old_key_at_once() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (old_id, old) = app.key(&["orders:read"]).await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{old_id}/roll"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.get("/api/v1/me", &old).await.code(), "expired_key");
}

#[tokio::test]
async fn a_grace_period_outside_zero_to_seven_days_is_refused() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (old_id, _) = app.key(&["orders:read"]).await;
    for bad in [-1, 604_801] {
        let r = app
            .post(
                &format!("/api/v1/keys/{old_id}/roll"),
                &admin,
                serde_json::json!({"expire_old_in_seconds": bad}),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn rolling_a_key_twice_is_refused() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (old_id, _) = app.key(&["orders:read"]).await;
    let body = serde_json::json!({"expire_old_in_seconds": 600});
    let url = format!("/api/v1/keys/{old_id}/roll");
    assert_eq!(app.post(&url, &admin, body.clone()).await.status, 201);
    let again = app.post(&url, &admin, body).await;
    assert_eq!(again.status, 409, "{}", again.text);
}

#[tokio::test]
async fn the_audit_events_of_a_roll_link_both_keys() {
    let app = TestApp::new().await;
    let (_, admin) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (old_id, _) = app.key(&["orders:read"]).await;
    let r = app
        .post(
            &format!("/api/v1/keys/{old_id}/roll"),
            &admin,
            serde_json::json!({"expire_old_in_seconds": 60}),
        )
        .await;
    let new_id = r.body["key"]["id"].as_str().unwrap().to_owned();
    let old_trail = app
        .get(&format!("/api/v1/audit-events?key_id={old_id}"), &admin)
        .await;
    assert!(
        events(&old_trail)
            .iter()
            .any(|e| e["action"] == "key.rolled" && e["details"]["rolled_to"] == new_id.as_str()),
        "{}",
        old_trail.text
    );
    let new_trail = app
        .get(&format!("/api/v1/audit-events?key_id={new_id}"), &admin)
        .await;
    assert!(
        events(&new_trail)
            .iter()
            .any(|e| e["details"]["rolled_from"] == old_id.as_str()),
        "{}",
        new_trail.text
    );
}

#[tokio::test]
async fn a_weaker_key_cannot_roll_a_stronger_one() {
    let app = TestApp::new().await;
    let (_, weak) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let (strong_id, strong) = app.key(&["orders:read", "orders:delete"]).await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{strong_id}/roll"),
            Some(&weak),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(app.get("/api/v1/me", &strong).await.status, 200);
}

#[tokio::test]
async fn the_cli_rolls_and_upgrades_through_the_same_rules() {
    let app = TestApp::new().await;
    let (old_id, _) = app.key(&["orders:read"]).await;
    let principal = latchkey::service::keys::Principal::cli(&app.shop_id);
    let (created, old) = app
        .core
        .keys
        .roll_key(&principal, &old_id, 30)
        .await
        .unwrap();
    assert_eq!(created.key.name.as_str(), old.name.as_str());
    assert!(old.expires_at.is_some());
    assert!(
        app.core
            .keys
            .roll_key(&principal, &old_id, 30)
            .await
            .is_err()
    );
    assert!(
        app.core
            .keys
            .upgrade_key(&principal, &created.key.id, false, false)
            .await
            .is_err()
    );
}
