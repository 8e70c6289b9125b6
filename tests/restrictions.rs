//! "Restrictions are inherited" (docs/KEYS.md): a key bound to addresses, an expiry or
//! a rate limit can neither free itself nor mint, or take over, a freer key.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::Request;
use common::{T0, TestApp, TestResponse, assert_problem};
use latchkey::domain::clock::Timestamp;
use latchkey::service::keys::NewKeyInput;
use serde_json::{Value, json};

/// One hour after the test clock's start.
const IN_1H: &str = "2026-11-23T13:00:00Z";
const IN_2H: &str = "2026-11-23T14:00:00Z";
const FROM: &str = "10.9.9.9";

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str().map(|s| Timestamp::parse_rfc3339(s).unwrap())
}

fn at(s: &str) -> Option<Timestamp> {
    Some(Timestamp::parse_rfc3339(s).unwrap())
}

async fn call_from(
    app: &TestApp,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> TestResponse {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&b).unwrap()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let peer: SocketAddr = format!("{FROM}:40000").parse().unwrap();
    app.send_from(peer, req).await
}

/// The key: keys:write (and read), bound to 10.9.9.9, expiring in an
/// hour, 10 requests a minute.
async fn bound_key(app: &TestApp) -> (String, String) {
    app.key_with(
        &app.shop_id,
        NewKeyInput {
            name: Some("Integration with keys:write".into()),
            permissions: Some(vec![
                "keys:read".into(),
                "keys:write".into(),
                "orders:read".into(),
            ]),
            allowed_ips: Some(Some(vec![FROM.into()])),
            expires_at: Some(Some(IN_1H.into())),
            rate_limit_per_minute: Some(10),
            ..Default::default()
        },
    )
    .await
}

fn assert_not_inherited(r: &TestResponse, field: &str) {
    assert_problem(r, 403, "restriction_not_inherited");
    assert_eq!(r.body["field"], field, "{}", r.text);
}

#[tokio::test]
async fn a_bound_key_cannot_free_itself_by_patching_its_restrictions_away() {
    let app = TestApp::new().await;
    let (id, secret) = bound_key(&app).await;
    let r = call_from(
        &app,
        "PATCH",
        &format!("/api/v1/keys/{id}"),
        &secret,
        Some(json!({"allowed_ips": null, "expires_at": null, "rate_limit_per_minute": 10000})),
    )
    .await;
    assert_not_inherited(&r, "allowed_ips");
    for (body, field) in [
        (json!({"allowed_ips": []}), "allowed_ips"),
        (json!({"allowed_ips": ["10.0.0.0/8"]}), "allowed_ips"),
        (json!({"expires_at": null}), "expires_at"),
        (json!({"expires_at": IN_2H}), "expires_at"),
        (
            json!({"rate_limit_per_minute": 11}),
            "rate_limit_per_minute",
        ),
    ] {
        let r = call_from(
            &app,
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            &secret,
            Some(body.clone()),
        )
        .await;
        assert_not_inherited(&r, field);
    }
    let key = app.store.get_key(&app.shop_id, &id).await.unwrap().unwrap();
    assert_eq!(key.allowed_ips.to_strings(), [FROM]);
    assert_eq!(key.expires_at, at(IN_1H));
    assert_eq!(key.rate_limit_per_minute, 10);

    // Tightening itself further is allowed.
    let r = call_from(
        &app,
        "PATCH",
        &format!("/api/v1/keys/{id}"),
        &secret,
        Some(json!({"rate_limit_per_minute": 5, "expires_at": "2026-11-23T12:30:00Z"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_bound_key_creating_a_key_passes_its_restrictions_on_or_is_refused() {
    let app = TestApp::new().await;
    let (_, secret) = bound_key(&app).await;
    let r = call_from(
        &app,
        "POST",
        "/api/v1/keys",
        &secret,
        Some(json!({"name": "Child", "permissions": ["orders:read"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let child = &r.body["key"];
    assert_eq!(child["allowed_ips"], json!([FROM]));
    assert_eq!(ts(&child["expires_at"]), at(IN_1H));
    assert_eq!(child["rate_limit_per_minute"], 10);

    for (extra, field) in [
        (json!({"allowed_ips": []}), "allowed_ips"),
        (json!({"allowed_ips": null}), "allowed_ips"),
        (json!({"allowed_ips": ["192.0.2.1"]}), "allowed_ips"),
        (json!({"expires_at": null}), "expires_at"),
        (json!({"expires_at": IN_2H}), "expires_at"),
        (
            json!({"rate_limit_per_minute": 50}),
            "rate_limit_per_minute",
        ),
    ] {
        let mut body = json!({"name": "Unbound child", "permissions": ["orders:read"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = call_from(&app, "POST", "/api/v1/keys", &secret, Some(body)).await;
        assert_not_inherited(&r, field);
    }
    let all = app
        .core
        .keys
        .list_all(&latchkey::service::keys::Principal::cli(&app.shop_id))
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "only the bound key and its bound child exist");

    // Tighter values given explicitly are kept.
    let r = call_from(
        &app,
        "POST",
        "/api/v1/keys",
        &secret,
        Some(
            json!({"name": "Tighter", "permissions": ["orders:read"], "rate_limit_per_minute": 3}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["rate_limit_per_minute"], 3);
}

#[tokio::test]
async fn a_bound_key_cannot_act_on_a_less_restricted_key() {
    let app = TestApp::new().await;
    let (_, secret) = bound_key(&app).await;
    let (free, _) = app.key(&["orders:read"]).await;
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/keys/{free}"),
            Some(json!({"name": "Renamed"})),
        ),
        ("POST", format!("/api/v1/keys/{free}/revoke"), None),
        (
            "POST",
            format!("/api/v1/keys/{free}/clone"),
            Some(json!({"name": "Copy"})),
        ),
        (
            "POST",
            format!("/api/v1/keys/{free}/roll"),
            Some(json!({"expire_old_in_seconds": 0})),
        ),
        ("DELETE", format!("/api/v1/keys/{free}"), None),
    ] {
        let r = call_from(&app, method, &path, &secret, body).await;
        assert_not_inherited(&r, "allowed_ips");
    }
    let key = app
        .store
        .get_key(&app.shop_id, &free)
        .await
        .unwrap()
        .unwrap();
    assert!(key.revoked_at.is_none() && key.name.as_str() != "Renamed");
}

#[tokio::test]
async fn clone_roll_and_upgrade_carry_the_originals_restrictions() {
    let app = TestApp::new().await;
    let (owner_id, owner) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let _ = owner_id;
    let (orig, _) = app
        .key_with(
            &app.shop_id,
            NewKeyInput {
                name: Some("Bound".into()),
                permissions: Some(vec!["orders:read".into()]),
                allowed_ips: Some(Some(vec!["198.51.100.0/24".into()])),
                expires_at: Some(Some(IN_2H.into())),
                rate_limit_per_minute: Some(7),
                ..Default::default()
            },
        )
        .await;
    let check = |r: &TestResponse, exp: &str| {
        assert_eq!(r.status, 201, "{}", r.text);
        let k = &r.body["key"];
        assert_eq!(k["allowed_ips"], json!(["198.51.100.0/24"]), "{}", r.text);
        assert_eq!(k["rate_limit_per_minute"], 7, "{}", r.text);
        assert_eq!(ts(&k["expires_at"]), at(exp), "{}", r.text);
    };
    let r = app
        .post(
            &format!("/api/v1/keys/{orig}/clone"),
            &owner,
            json!({"name": "Copy"}),
        )
        .await;
    check(&r, IN_2H);
    // Roll: the new key keeps the expiry the grace period shortens on the old.
    let r = app
        .post(
            &format!("/api/v1/keys/{orig}/roll"),
            &owner,
            json!({"expire_old_in_seconds": 60}),
        )
        .await;
    check(&r, IN_2H);

    let legacy = app
        .core
        .keys
        .import_legacy(
            &app.shop_id,
            "key,name,permissions,allowed_ips\nlegacyAAAAbbbbCCCCdddd0001,Old form,orders:read,198.51.100.0/24\n",
            false,
        )
        .await
        .unwrap()
        .keys[0]
        .id
        .clone();
    let r = app
        .patch(
            &format!("/api/v1/keys/{legacy}"),
            &owner,
            json!({"expires_at": IN_2H, "rate_limit_per_minute": 7}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(&format!("/api/v1/keys/{legacy}/upgrade"), &owner, json!({}))
        .await;
    check(&r, IN_2H);
}

#[tokio::test]
async fn a_clone_of_an_expired_key_by_an_expiring_key_gets_the_callers_expiry() {
    let app = TestApp::new().await;
    let (_, secret) = bound_key(&app).await;
    let (old, _) = app
        .key_with(
            &app.shop_id,
            NewKeyInput {
                name: Some("Short-lived".into()),
                permissions: Some(vec!["orders:read".into()]),
                allowed_ips: Some(Some(vec![FROM.into()])),
                expires_at: Some(Some("2026-11-23T12:10:00Z".into())),
                rate_limit_per_minute: Some(10),
                ..Default::default()
            },
        )
        .await;
    app.clock
        .set(Timestamp::parse_rfc3339("2026-11-23T12:20:00Z").unwrap());
    let r = call_from(
        &app,
        "POST",
        &format!("/api/v1/keys/{old}/clone"),
        &secret,
        Some(json!({"name": "Copy"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(ts(&r.body["key"]["expires_at"]), at(IN_1H), "{T0}");
}
