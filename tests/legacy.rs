//! Legacy keys: import, the ways of sending them, the deprecation headers,
//! the cut-off on a running app, brownouts, and upgrading.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{ClockExt, T0, TestApp};
use latchkey::domain::clock::Timestamp;
use latchkey::domain::legacy::ImportError;
use latchkey::store::AuditFilter;
use latchkey::store::PageRequest;

const KEY_A: &str = "legacyAAAAbbbbCCCCdddd0001";
const KEY_B: &str = "legacy.BBBB-cccc_DDDD0002";
const WEAK: &str = "shortlegacy00003";

async fn import(app: &TestApp, csv: &str) -> Vec<String> {
    let summary = app
        .core
        .keys
        .import_legacy(&app.shop_id, csv, false)
        .await
        .unwrap();
    summary.keys.into_iter().map(|k| k.id).collect()
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

async fn get_with(
    app: &TestApp,
    uri: &str,
    header: Option<(&str, String)>,
) -> common::TestResponse {
    let mut req = Request::builder().uri(uri);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn an_import_stores_hashed_legacy_live_keys_and_flags_weak_ones() {
    let app = TestApp::new().await;
    let csv = format!(
        "key,name,permissions,allowed_ips\n{KEY_A},Old website form,orders:read orders:write,\n{WEAK},\"Zapier, old\",,203.0.113.0/24\n"
    );
    let summary = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv, false)
        .await
        .unwrap();
    assert_eq!(summary.imported, 2);
    assert_eq!(summary.weak.len(), 1);
    assert_eq!(summary.weak[0].line, 3);
    let key = app
        .store
        .get_key(&app.shop_id, &summary.keys[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.kind.as_str(), "legacy");
    assert_eq!(key.environment.as_str(), "live");
    assert_eq!(key.display, "…0001");
    assert_eq!(
        key.permissions.to_names(),
        vec!["orders:read", "orders:write"]
    );
    assert_ne!(&key.hash[..], KEY_A.as_bytes());
    let second = app
        .store
        .get_key(&app.shop_id, &summary.keys[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.name.as_str(), "Zapier, old");
    assert_eq!(
        second.permissions,
        latchkey::domain::permission::PermissionSet::legacy_default()
    );
    assert_eq!(second.allowed_ips.to_strings(), vec!["203.0.113.0/24"]);
    let events = app
        .store
        .list_audit_events(
            &app.shop_id,
            &AuditFilter {
                action: Some("key.imported".into()),
                ..Default::default()
            },
            PageRequest {
                page: 1,
                per_page: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.total, 2);
}

#[tokio::test]
async fn a_bad_row_anywhere_stops_the_whole_import_with_line_numbers() {
    let app = TestApp::new().await;
    let csv = format!(
        "key,name,permissions,allowed_ips\n{KEY_A},Good,,\nlk_live_nope,Bad shape,,\n{KEY_B},,,\n{WEAK},Perms,orders:fly,\nlegacyIPIPIPIPIPIPIP,IPs,,999.1.1.1\n{KEY_A},Again,,\n"
    );
    let err = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv, false)
        .await
        .unwrap_err();
    let ImportError::Invalid(rows) = err else {
        panic!("expected invalid rows")
    };
    let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7], "{rows:?}");
    assert!(rows[0].reason.contains("not a legacy key"));
    assert!(rows[1].reason.contains("name"));
    assert!(rows[2].reason.contains("permissions"));
    assert!(rows[3].reason.contains("allowed_ips"));
    assert!(rows[4].reason.contains("earlier in the file"));
    // Nothing was written: the good row does not authenticate.
    let r = get_with(&app, "/api/v1/me", Some(("x-api-key", KEY_A.into()))).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn keys_already_stored_are_refused_and_skip_invalid_imports_the_rest() {
    let app = TestApp::new().await;
    import(&app, &format!("key,name\n{KEY_A},First import\n")).await;
    let csv = format!("key,name\n{KEY_A},Again\n{KEY_B},New one\n");
    let err = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv, false)
        .await
        .unwrap_err();
    let ImportError::Invalid(rows) = err else {
        panic!("expected invalid rows")
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].line, 2);
    assert!(rows[0].reason.contains("already stored"));
    let summary = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv, true)
        .await
        .unwrap();
    assert_eq!(summary.imported, 1);
    assert_eq!(summary.skipped, 1);
    assert_eq!(summary.keys[0].line, 3);
}

#[tokio::test]
async fn a_legacy_key_works_in_every_way_it_was_sent_before() {
    let app = TestApp::new().await;
    import(&app, &format!("key,name\n{KEY_A},Old integration\n")).await;
    for header in [
        Some(("authorization", format!("Bearer {KEY_A}"))),
        Some(("authorization", KEY_A.to_owned())),
        Some(("x-api-key", KEY_A.to_owned())),
        None,
    ] {
        let uri = if header.is_none() {
            format!("/api/v1/me?api_key={KEY_A}")
        } else {
            "/api/v1/me".to_owned()
        };
        let r = get_with(&app, &uri, header.clone()).await;
        assert_eq!(r.status, 200, "{header:?}: {}", r.text);
        assert!(r.header("deprecation").is_some());
    }
}

#[tokio::test]
async fn every_answer_to_a_legacy_key_carries_the_deprecation_headers_exactly() {
    let app = TestApp::new().await;
    import(
        &app,
        &format!("key,name,permissions\n{KEY_A},Reader,orders:read\n"),
    )
    .await;
    let created = ts(T0).unix_seconds();
    for uri in ["/api/v1/me", "/api/v1/clients"] {
        let r = get_with(&app, uri, Some(("x-api-key", KEY_A.into()))).await;
        assert_eq!(
            r.header("deprecation"),
            Some(format!("@{created}").as_str())
        );
        assert_eq!(r.header("sunset"), Some("Tue, 01 Dec 2026 00:00:00 GMT"));
        assert_eq!(
            r.header("link"),
            Some("</settings/api-keys/docs#legacy-keys>; rel=\"deprecation\"")
        );
    }
    // A standard key's answers carry none of them.
    let (_, std_key) = app.key(&["orders:read"]).await;
    let r = app.get("/api/v1/me", &std_key).await;
    assert!(r.header("deprecation").is_none());
    assert!(r.header("sunset").is_none());
}

#[tokio::test]
async fn the_cut_off_retires_legacy_keys_on_a_running_app_at_the_instant() {
    let app = TestApp::new().await;
    import(&app, &format!("key,name\n{KEY_A},Old integration\n")).await;
    let h = || Some(("x-api-key", KEY_A.to_owned()));
    app.clock.set(ts("2026-11-30T23:59:59.999999Z"));
    assert_eq!(get_with(&app, "/api/v1/me", h()).await.status, 200);
    app.clock.set(ts("2026-12-01T00:00:00Z"));
    let r = get_with(&app, "/api/v1/me", h()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "legacy_key_retired");
    assert!(r.body["detail"].as_str().unwrap().contains("Upgrade"));
    assert!(r.header("deprecation").is_none());
}

#[tokio::test]
async fn an_import_warns_when_the_cut_off_is_past_or_within_fourteen_days_and_imports_anyway() {
    // T0 is 2026-11-23, eight days before the default cut-off.
    let app = TestApp::new().await;
    let csv = |key: &str| format!("key,name\n{key},Old integration\n");
    let near = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv(KEY_A), false)
        .await
        .unwrap();
    assert_eq!(near.imported, 1);
    assert_eq!(near.warnings.len(), 1, "{near:?}");
    assert_eq!(near.warnings[0].code, "legacy_cutoff_near");
    assert!(
        near.warnings[0].message.contains("7 days away")
            && near.warnings[0].message.contains("2026-12-01"),
        "{}",
        near.warnings[0].message
    );
    let json = serde_json::to_value(&near).unwrap();
    assert_eq!(json["warnings"][0]["code"], "legacy_cutoff_near");

    app.clock.set(ts("2026-12-01T00:00:00Z"));
    let passed = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv(KEY_B), false)
        .await
        .unwrap();
    assert_eq!(passed.imported, 1, "imported all the same");
    assert_eq!(passed.warnings[0].code, "legacy_cutoff_passed");
    assert!(passed.warnings[0].message.contains("legacy_key_retired"));
    // What the warning says is so: the key just imported is refused.
    let r = get_with(&app, "/api/v1/me", Some(("x-api-key", KEY_B.to_owned()))).await;
    assert_eq!(r.code(), "legacy_key_retired");

    // Fifteen days ahead: nothing to say, and no `warnings` in the JSON.
    let far = TestApp::builder()
        .policy(|p| p.legacy_sunset = ts("2026-12-08T12:00:00.000001Z"))
        .build()
        .await;
    let quiet = far
        .core
        .keys
        .import_legacy(&far.shop_id, &csv(KEY_A), false)
        .await
        .unwrap();
    assert!(quiet.warnings.is_empty(), "{quiet:?}");
    assert!(
        serde_json::to_value(&quiet)
            .unwrap()
            .get("warnings")
            .is_none()
    );
    far.clock.set(ts("2026-11-24T12:00:00Z"));
    let fourteen = far
        .core
        .keys
        .import_legacy(&far.shop_id, &csv(KEY_B), false)
        .await
        .unwrap();
    assert_eq!(fourteen.warnings[0].code, "legacy_cutoff_near");
}

#[tokio::test]
async fn during_a_brownout_legacy_keys_fail_naming_the_real_cut_off() {
    let app = TestApp::builder()
        .policy(|p| {
            p.legacy_brownouts = vec![(ts("2026-11-24T14:00:00Z"), ts("2026-11-24T15:00:00Z"))];
        })
        .build()
        .await;
    import(&app, &format!("key,name\n{KEY_A},Old integration\n")).await;
    let (_, std_key) = app.key(&["orders:read"]).await;
    let h = || Some(("x-api-key", KEY_A.to_owned()));
    app.clock.set(ts("2026-11-24T13:59:59Z"));
    assert_eq!(get_with(&app, "/api/v1/me", h()).await.status, 200);
    app.clock.set(ts("2026-11-24T14:00:00Z"));
    let r = get_with(&app, "/api/v1/me", h()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "legacy_key_retired");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("2026-12-01"), "{detail}");
    assert!(detail.contains("brownout"), "{detail}");
    // Standard keys are untouched by brownouts.
    assert_eq!(app.get("/api/v1/me", &std_key).await.status, 200);
    app.clock.set(ts("2026-11-24T15:00:00Z"));
    assert_eq!(get_with(&app, "/api/v1/me", h()).await.status, 200);
}

#[test]
fn brownout_windows_parse_from_the_configuration() {
    assert!(latchkey::config::parse_brownout("2026-11-24T14:00:00Z/2026-11-24T15:00:00Z").is_ok());
    assert!(latchkey::config::parse_brownout("2026-11-24T15:00:00Z/2026-11-24T14:00:00Z").is_err());
    assert!(latchkey::config::parse_brownout("2026-11-24T14:00:00Z").is_err());
}

#[tokio::test]
async fn an_upgrade_copies_name_permissions_and_ips_and_keeps_the_legacy_key_working() {
    let app = TestApp::new().await;
    let ids = import(
        &app,
        &format!(
            "key,name,permissions,allowed_ips\n{KEY_A},Old website form,orders:read orders:write clients:read,203.0.113.0/24\n"
        ),
    )
    .await;
    let (_, admin) = app
        .key(&[
            "keys:read",
            "keys:write",
            "orders:read",
            "orders:write",
            "clients:read",
        ])
        .await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/upgrade", ids[0]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_id = r.body["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/keys/{new_id}").as_str())
    );
    assert_eq!(r.body["key"]["name"], "Old website form");
    assert_eq!(r.body["key"]["kind"], "standard");
    assert_eq!(r.body["key"]["environment"], "live");
    assert_eq!(
        r.body["key"]["permissions"],
        serde_json::json!(["orders:read", "orders:write", "clients:read"])
    );
    assert_eq!(
        r.body["key"]["allowed_ips"],
        serde_json::json!(["203.0.113.0/24"])
    );
    let secret = r.body["key"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("lk_live_"));
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    // The legacy key still works until the cut-off.
    let old = get_with(&app, "/api/v1/me", Some(("x-api-key", KEY_A.into()))).await;
    assert_eq!(old.status, 200);
    // The audit events link the two keys.
    let trail = app
        .get(&format!("/api/v1/audit-events?key_id={}", ids[0]), &admin)
        .await;
    let upgraded = trail.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key.upgraded")
        .expect("key.upgraded event");
    assert_eq!(upgraded["details"]["upgraded_to"], new_id.as_str());
    let trail = app
        .get(&format!("/api/v1/audit-events?key_id={new_id}"), &admin)
        .await;
    assert!(
        trail.body["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["upgraded_from"] == ids[0].as_str()),
        "{}",
        trail.text
    );
}

#[tokio::test]
async fn an_upgrade_can_narrow_to_the_permissions_actually_used() {
    let app = TestApp::new().await;
    let ids = import(
        &app,
        &format!("key,name,permissions\n{KEY_A},Old sync,orders:read orders:write clients:read clients:write\n{KEY_B},Old backup,orders:read orders:write clients:read clients:write\n"),
    )
    .await;
    let (_, admin) = app
        .key(&[
            "keys:read",
            "keys:write",
            "orders:read",
            "orders:write",
            "clients:read",
            "clients:write",
        ])
        .await;
    // Nothing used: the permissions are kept whole, with a warning. (A key
    // is upgraded once, so the unused one is another legacy key.)
    let r = app
        .post(
            &format!("/api/v1/keys/{}/upgrade", ids[1]),
            &admin,
            serde_json::json!({"narrow_to_used": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["key"]["permissions"].as_array().unwrap().len(), 4);
    assert!(
        r.body["key"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "not_narrowed")
    );
    for uri in ["/api/v1/orders", "/api/v1/clients", "/api/v1/me"] {
        let r = get_with(&app, uri, Some(("x-api-key", KEY_A.into()))).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.text);
    }
    app.core.usage.flush(app.store.as_ref()).await.unwrap();
    let r = app
        .post(
            &format!("/api/v1/keys/{}/upgrade", ids[0]),
            &admin,
            serde_json::json!({"narrow_to_used": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["key"]["permissions"],
        serde_json::json!(["orders:read", "clients:read"])
    );
}

#[tokio::test]
async fn retire_legacy_stops_the_legacy_key_at_once() {
    let app = TestApp::new().await;
    let ids = import(&app, &format!("key,name\n{KEY_A},Old sync\n")).await;
    let (_, admin) = app
        .key(&[
            "keys:read",
            "keys:write",
            "orders:read",
            "orders:write",
            "clients:read",
            "clients:write",
            "devices:read",
            "devices:write",
        ])
        .await;
    let r = app
        .post(
            &format!("/api/v1/keys/{}/upgrade", ids[0]),
            &admin,
            serde_json::json!({"retire_legacy": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let old = get_with(&app, "/api/v1/me", Some(("x-api-key", KEY_A.into()))).await;
    assert_eq!(old.status, 401);
    assert_eq!(old.code(), "legacy_key_retired");
    let shown = app.get(&format!("/api/v1/keys/{}", ids[0]), &admin).await;
    assert_eq!(shown.body["key"]["status"], "retired");
}

#[tokio::test]
async fn only_legacy_keys_can_be_upgraded_another_is_a_conflict() {
    let app = TestApp::new().await;
    let (admin_id, admin) = app.key(&["keys:read", "keys:write"]).await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{admin_id}/upgrade"),
            Some(&admin),
            None,
        )
        .await;
    // Well formed, but the key is in the wrong state for it: 409, as for
    // rolling a legacy key.
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "conflict");
}

#[tokio::test]
async fn a_weaker_key_cannot_upgrade_a_stronger_legacy_key() {
    let app = TestApp::new().await;
    let ids = import(
        &app,
        &format!("key,name,permissions\n{KEY_A},Old sync,orders:read orders:delete\n"),
    )
    .await;
    let (_, weak) = app.key(&["keys:read", "keys:write", "orders:read"]).await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/upgrade", ids[0]),
            Some(&weak),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[tokio::test]
async fn the_usage_of_a_legacy_key_names_its_clients() {
    let app = TestApp::new().await;
    let ids = import(&app, &format!("key,name\n{KEY_A},Old sync\n")).await;
    let req = Request::builder()
        .uri("/api/v1/orders")
        .header("x-api-key", KEY_A)
        .header("user-agent", "OldSync/1.2")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, 200);
    app.core.usage.flush(app.store.as_ref()).await.unwrap();
    let usage = app
        .store
        .key_usage(&ids[0], app.clock.now_ts())
        .await
        .unwrap();
    assert_eq!(usage.clients[0].user_agent, "OldSync/1.2");
    assert_eq!(usage.endpoints[0].route, "/api/v1/orders");
}

#[tokio::test]
async fn a_legacy_key_is_upgraded_at_most_once_the_second_try_is_409() {
    let app = TestApp::new().await;
    let ids = import(&app, &format!("key,name\n{KEY_A},Old sync\n")).await;
    let (_, admin) = app
        .key(&[
            "keys:read",
            "keys:write",
            "orders:read",
            "orders:write",
            "clients:read",
            "clients:write",
            "devices:read",
            "devices:write",
        ])
        .await;
    let path = format!("/api/v1/keys/{}/upgrade", ids[0]);
    let r = app.post(&path, &admin, serde_json::json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.body["key"]["id"].as_str().unwrap().to_owned();
    for body in [
        serde_json::json!({}),
        serde_json::json!({"retire_legacy": true}),
    ] {
        let r = app.post(&path, &admin, body).await;
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(r.code(), "conflict");
        assert!(
            r.text.contains(&first),
            "names the key it became: {}",
            r.text
        );
    }
    let all = app
        .core
        .keys
        .list_all(&latchkey::service::keys::Principal::cli(&app.shop_id))
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "admin, the legacy key and one upgrade");
    // The legacy key was not retired by the refused second try.
    let old = get_with(&app, "/api/v1/me", Some(("x-api-key", KEY_A.into()))).await;
    assert_eq!(old.status, 200, "{}", old.text);
}
