//! Key operations for a shop's worst days (docs/KEY_OPERATIONS.md): pausing and resuming an
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

    // Documented: 403 key_paused (not 401), naming when and why.
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
        // As the OpenAPI document says: the reason is checked as sent (a
        // tab at its end, 200 characters and a blank), and a template id
        // is exact.
        (
            json!({"template": "zapier", "reason": "incident\t"}),
            "reason",
        ),
        (
            json!({"template": "zapier", "reason": format!("{} ", "x".repeat(200))}),
            "reason",
        ),
        (json!({"template": " zapier"}), "template"),
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

// ---------------------------------------------------------------------------
// Leaked-key reports

mod leaks {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use base64::Engine;
    use common::TestResponse;
    use latchkey::domain::policy::LeakAction;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use std::path::{Path, PathBuf};

    /// A report as sent: what it tries, body, identifier, signature.
    type Attempt = (&'static str, Vec<u8>, Option<String>, Option<String>);

    const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";
    const LEGACY: &str = "legacy_Fix1tPh0nes_0ld_Sync_Key";

    pub struct Scanner {
        pub signing: SigningKey,
        pub id: String,
    }

    impl Scanner {
        pub fn new(id: &str) -> Self {
            Scanner {
                signing: SigningKey::random(&mut rand_core::OsRng),
                id: id.to_owned(),
            }
        }

        pub fn pem(&self) -> String {
            self.signing
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
        }

        pub fn sign(&self, body: &[u8]) -> String {
            let sig: Signature = self.signing.sign(body);
            base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
        }
    }

    /// Writes GitHub's public keys document for `scanners`.
    pub fn write_keys(path: &Path, scanners: &[&Scanner]) {
        let keys: Vec<Value> = scanners
            .iter()
            .map(|s| json!({"key_identifier": s.id, "key": s.pem(), "is_current": true}))
            .collect();
        std::fs::write(
            path,
            serde_json::to_vec(&json!({"public_keys": keys})).unwrap(),
        )
        .unwrap();
    }

    /// An app taking reports signed by `scanner`, the keys file's path, and
    /// the directory holding it (removed when dropped).
    async fn app_with(
        scanner: &Scanner,
        action: LeakAction,
    ) -> (TestApp, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("github-keys.json");
        write_keys(&path, &[scanner]);
        let file = path.clone();
        let app = TestApp::builder()
            .policy(move |p| {
                p.leak_report_keys = Some(file);
                p.leak_action = action;
            })
            .build()
            .await;
        (app, path, dir)
    }

    async fn send_report(
        app: &TestApp,
        body: &[u8],
        identifier: Option<&str>,
        signature: Option<&str>,
    ) -> TestResponse {
        let mut req =
            Request::post("/secret-scanning/reports").header("content-type", "application/json");
        if let Some(i) = identifier {
            req = req.header("Github-Public-Key-Identifier", i);
        }
        if let Some(s) = signature {
            req = req.header("Github-Public-Key-Signature", s);
        }
        app.send(req.body(Body::from(body.to_vec())).unwrap()).await
    }

    async fn signed(app: &TestApp, scanner: &Scanner, body: &Value) -> TestResponse {
        let bytes = serde_json::to_vec(body).unwrap();
        send_report(app, &bytes, Some(&scanner.id), Some(&scanner.sign(&bytes))).await
    }

    fn found(token: &str) -> Value {
        json!({"token": token, "type": "latchkey_api_key",
               "url": "https://github.com/someone/repo/blob/abc123/config.yml", "source": "content"})
    }

    async fn leaked_events(app: &TestApp, manager: &str) -> Vec<Value> {
        let r = app
            .get("/api/v1/audit-events?action=key.leaked", manager)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["audit_events"].as_array().unwrap().clone()
    }

    #[tokio::test]
    async fn a_signed_report_revokes_the_keys_it_names_in_any_shop_and_environment_and_labels_every_token()
     {
        let scanner = Scanner::new(KEY_ID);
        let (app, _, _dir) = app_with(&scanner, LeakAction::Revoke).await;
        let (_, manager) = app.key(ALL).await;
        let (live, live_secret) = app.key(&["orders:read"]).await;
        let other = app.new_shop("Other Shop", "owner@other.example").await;
        let (_, other_manager) = app.key_in(&other, "test", ALL).await;
        let (foreign_test, foreign_secret) = app.key_in(&other, "test", &["orders:read"]).await;
        app.core
            .keys
            .import_legacy(
                &other,
                &format!("key,name\n{LEGACY},Old order sync\n"),
                false,
            )
            .await
            .unwrap();
        let legacy = app
            .core
            .keys
            .find_reported(LEGACY)
            .await
            .unwrap()
            .unwrap()
            .id;
        let (_, other_legacy_manager) = app.key_in(&other, "live", ALL).await;
        // Cached as valid before the report: the revoke must evict it.
        for secret in [&live_secret, &foreign_secret] {
            assert_eq!(app.get("/api/v1/me", secret).await.status, 200);
        }
        // Well formed (right checksum) but no such key, and something else.
        let made_up = latchkey::domain::token::generate(latchkey::domain::token::Environment::Live);
        let body = json!([
            found(&live_secret),
            found(&foreign_secret),
            found(LEGACY),
            found(made_up.expose()),
            {"token": "ghp_notoursatall", "type": "other", "url": "https://x.example", "source": "commit"},
        ]);
        let r = signed(&app, &scanner, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let labels: Vec<(&str, &str, &str)> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["token_raw"].as_str().unwrap(),
                    l["token_type"].as_str().unwrap(),
                    l["label"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            vec![
                (live_secret.as_str(), "latchkey_api_key", "true_positive"),
                (foreign_secret.as_str(), "latchkey_api_key", "true_positive"),
                (LEGACY, "latchkey_api_key", "true_positive"),
                (made_up.expose(), "latchkey_api_key", "false_positive"),
                ("ghp_notoursatall", "other", "false_positive"),
            ]
        );
        assert!(r.header("www-authenticate").is_none());

        // Revoked at once, with the place on the key.
        for secret in [&live_secret, &foreign_secret] {
            assert_problem(&app.get("/api/v1/me", secret).await, 401, "revoked_key");
        }
        assert_problem(&app.get("/api/v1/me", LEGACY).await, 401, "revoked_key");
        let r = app.get(&format!("/api/v1/keys/{live}"), &manager).await;
        assert_eq!(r.body["key"]["status"], "revoked");
        let warning = r.body["key"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["code"] == "leaked")
            .unwrap_or_else(|| panic!("a leaked warning: {}", r.text))
            .clone();
        let message = warning["message"].as_str().unwrap();
        assert!(
            message.contains("https://github.com/someone/repo/blob/abc123/config.yml")
                && message.contains("content"),
            "{message}"
        );
        // Audited in each key's own shop, by the scanner.
        let events = leaked_events(&app, &manager).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["key_id"], live.as_str());
        assert_eq!(events[0]["actor"], "secret_scanning");
        assert_eq!(
            events[0]["details"],
            json!({"url": "https://github.com/someone/repo/blob/abc123/config.yml", "source": "content", "action": "revoked"})
        );
        let events = leaked_events(&app, &other_manager).await;
        assert_eq!(
            events.len(),
            1,
            "a test key sees its environment's: {events:?}"
        );
        assert_eq!(events[0]["key_id"], foreign_test.as_str());
        let events = leaked_events(&app, &other_legacy_manager).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["key_id"], legacy.as_str());

        // The same report again: the same answer, nothing more changed.
        let before = app.core.keys.get_any_shop(&live).await.unwrap();
        let r = signed(&app, &scanner, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body[0]["label"], "true_positive");
        assert_eq!(r.body[2]["label"], "true_positive");
        assert_eq!(leaked_events(&app, &manager).await.len(), 1);
        assert_eq!(leaked_events(&app, &other_manager).await.len(), 1);
        let after = app.core.keys.get_any_shop(&live).await.unwrap();
        assert_eq!(
            (after.revoked_at, after.updated_at),
            (before.revoked_at, before.updated_at)
        );
        assert_eq!(after.leaked, before.leaked);

        // Tokens are never written to the database (only their hashes).
        assert!(!app.database_contains(live_secret.as_bytes()).await);
    }

    #[tokio::test]
    async fn with_leak_action_flag_a_reported_key_is_flagged_and_keeps_working() {
        let scanner = Scanner::new(KEY_ID);
        let (app, _, _dir) = app_with(&scanner, LeakAction::Flag).await;
        let (_, manager) = app.key(ALL).await;
        let (id, secret) = app.key(&["orders:read"]).await;
        let r = signed(&app, &scanner, &json!([found(&secret)])).await;
        assert_eq!(r.body[0]["label"], "true_positive", "{}", r.text);
        assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
        let r = app.get(&format!("/api/v1/keys/{id}"), &manager).await;
        assert_eq!(r.body["key"]["status"], "active");
        assert!(
            r.body["key"]["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["code"] == "leaked"),
            "{}",
            r.text
        );
        let events = leaked_events(&app, &manager).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["details"]["action"], "flagged");
        // Again: nothing more.
        signed(&app, &scanner, &json!([found(&secret)])).await;
        assert_eq!(leaked_events(&app, &manager).await.len(), 1);
    }

    #[tokio::test]
    async fn a_report_with_a_bad_signature_wrong_key_or_identifier_or_a_tampered_body_is_401_and_changes_nothing()
     {
        let scanner = Scanner::new(KEY_ID);
        let (app, _, _dir) = app_with(&scanner, LeakAction::Revoke).await;
        let (_, manager) = app.key(ALL).await;
        let (_, secret) = app.key(&["orders:read"]).await;
        let body = serde_json::to_vec(&json!([found(&secret)])).unwrap();
        let stranger = Scanner::new(KEY_ID);
        let tampered = serde_json::to_vec(&json!([found(&secret), found("lk_live_x")])).unwrap();
        let cases: Vec<Attempt> = vec![
            (
                "signed by another key",
                body.clone(),
                Some(KEY_ID.into()),
                Some(stranger.sign(&body)),
            ),
            (
                "an unknown identifier",
                body.clone(),
                Some("not-a-known-key".into()),
                Some(scanner.sign(&body)),
            ),
            (
                "a tampered body",
                tampered,
                Some(KEY_ID.into()),
                Some(scanner.sign(&body)),
            ),
            ("no signature", body.clone(), Some(KEY_ID.into()), None),
            (
                "no identifier",
                body.clone(),
                None,
                Some(scanner.sign(&body)),
            ),
            (
                "a signature that is not base64",
                body.clone(),
                Some(KEY_ID.into()),
                Some("%%%".into()),
            ),
            (
                "a signature that is not DER",
                body.clone(),
                Some(KEY_ID.into()),
                Some("AAAA".into()),
            ),
        ];
        for (what, bytes, id, sig) in cases {
            let r = send_report(&app, &bytes, id.as_deref(), sig.as_deref()).await;
            assert_problem(&r, 401, "invalid_signature");
            assert!(r.header("www-authenticate").is_none(), "{what}");
            assert_eq!(app.get("/api/v1/me", &secret).await.status, 200, "{what}");
        }
        assert!(leaked_events(&app, &manager).await.is_empty());
        // Many refused reports from one address are not failed key attempts:
        // a keyed request from there is still answered on its merits.
        for _ in 0..40 {
            send_report(&app, &body, Some("nope"), Some("AAAA")).await;
        }
        let made_up = latchkey::domain::token::generate(latchkey::domain::token::Environment::Live);
        assert_problem(
            &app.get("/api/v1/me", made_up.expose()).await,
            401,
            "invalid_key",
        );
    }

    #[tokio::test]
    async fn a_body_over_a_mebibyte_is_413_and_without_a_keys_file_the_path_is_404() {
        let scanner = Scanner::new(KEY_ID);
        let (app, _, _dir) = app_with(&scanner, LeakAction::Revoke).await;
        let (_, secret) = app.key(&["orders:read"]).await;
        let mut big = serde_json::to_vec(&json!([found(&secret)])).unwrap();
        big.pop();
        big.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
        big.push(b']');
        let r = send_report(&app, &big, Some(KEY_ID), Some(&scanner.sign(&big))).await;
        assert_problem(&r, 413, "payload_too_large");
        assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);

        let plain = TestApp::new().await;
        let (_, secret) = plain.key(&["orders:read"]).await;
        let body = serde_json::to_vec(&json!([found(&secret)])).unwrap();
        let r = send_report(&plain, &body, Some(KEY_ID), Some(&scanner.sign(&body))).await;
        assert_problem(&r, 404, "not_found");
        assert_eq!(plain.get("/api/v1/me", &secret).await.status, 200);
    }

    #[tokio::test]
    async fn the_keys_file_is_read_again_when_it_changes_so_a_rotated_key_is_accepted() {
        let old = Scanner::new(KEY_ID);
        let (app, path, _dir) = app_with(&old, LeakAction::Revoke).await;
        let (_, a) = app.key(&["orders:read"]).await;
        let (_, b) = app.key(&["orders:read"]).await;
        let rotated =
            Scanner::new("bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c");
        write_keys(&path, &[&rotated]);
        // A later modification time, whatever the file system's resolution.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let r = signed(&app, &old, &json!([found(&a)])).await;
        assert_problem(&r, 401, "invalid_signature");
        assert_eq!(app.get("/api/v1/me", &a).await.status, 200);
        let r = signed(&app, &rotated, &json!([found(&b)])).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_problem(&app.get("/api/v1/me", &b).await, 401, "revoked_key");

        // A signed body that is not a report is refused and changes nothing.
        let r = signed(&app, &rotated, &json!({"token": a})).await;
        assert_problem(&r, 422, "validation_failed");
        assert_eq!(app.get("/api/v1/me", &a).await.status, 200);
    }
}

// ---------------------------------------------------------------------------
// Least-privilege suggestions

mod suggestions {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use common::ClockExt;

    const DAY: i64 = 86_400;

    async fn get_from(app: &TestApp, ip: &str, path: &str, key: &str) -> u16 {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let peer = format!("{ip}:40000").parse().unwrap();
        app.send_from(peer, req).await.status.as_u16()
    }

    async fn flush(app: &TestApp) {
        app.core.usage.flush(app.store.as_ref()).await.unwrap();
    }

    async fn suggestions_of(app: &TestApp, manager: &str, id: &str) -> Value {
        let r = app
            .get(&format!("/api/v1/keys/{id}/suggestions"), manager)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    fn kinds(v: &Value) -> Vec<String> {
        v["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    fn of_kind<'a>(v: &'a Value, kind: &str) -> &'a Value {
        v["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind} suggestion in {v}"))
    }

    #[tokio::test]
    async fn a_key_that_used_some_permissions_from_two_addresses_is_told_what_to_drop_and_where_to_allow()
     {
        let app = TestApp::new().await;
        let (_, manager) = app.key(ALL).await;
        let (zap, zap_secret) = create(
            &app,
            &manager,
            json!({"name": "Zapier – orders", "template": "zapier"}),
        )
        .await;
        for ip in ["198.51.100.7", "198.51.100.8", "198.51.100.7"] {
            assert_eq!(get_from(&app, ip, "/api/v1/orders", &zap_secret).await, 200);
        }
        assert_eq!(
            get_from(&app, "198.51.100.8", "/api/v1/clients", &zap_secret).await,
            200
        );
        // A route the key may not call does not count as needing anything it holds.
        assert_eq!(
            get_from(&app, "198.51.100.8", "/api/v1/keys", &zap_secret).await,
            403
        );
        flush(&app).await;
        // The next day, once more from a known address.
        app.clock.advance_seconds(DAY);
        assert_eq!(
            get_from(&app, "198.51.100.7", "/api/v1/orders", &zap_secret).await,
            200
        );
        flush(&app).await;

        let s = suggestions_of(&app, &manager, &zap).await;
        assert_eq!(
            kinds(&s),
            ["unused_permissions", "restrict_ips", "add_expiry"],
            "{s}"
        );
        let mut unused: Vec<&str> = of_kind(&s, "unused_permissions")["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        unused.sort();
        assert_eq!(unused, ["clients:write", "devices:read", "orders:write"]);
        assert_eq!(
            of_kind(&s, "restrict_ips")["seen_ips"],
            json!(["198.51.100.7", "198.51.100.8"])
        );
        for k in s["suggestions"].as_array().unwrap() {
            assert!(k["detail"].as_str().is_some_and(|d| d.len() > 20), "{k}");
        }
        let since = s["observed_since"].as_str().unwrap();
        assert!(
            since.starts_with("2026-11-23T12:00:00"),
            "the key's creation: {since}"
        );

        // Four addresses: no allow-list suggested.
        for ip in ["203.0.113.1", "203.0.113.2"] {
            get_from(&app, ip, "/api/v1/orders", &zap_secret).await;
        }
        flush(&app).await;
        let s = suggestions_of(&app, &manager, &zap).await;
        assert_eq!(kinds(&s), ["unused_permissions", "add_expiry"], "{s}");

        // A key without keys:read may not ask; another shop's key is 404.
        let r = app
            .get(&format!("/api/v1/keys/{zap}/suggestions"), &zap_secret)
            .await;
        assert_problem(&r, 403, "insufficient_permission");
        let other = app.new_shop("Other", "o@other.example").await;
        let (_, foreign_manager) = app.key_in(&other, "live", ALL).await;
        let r = app
            .get(&format!("/api/v1/keys/{zap}/suggestions"), &foreign_manager)
            .await;
        assert_problem(&r, 404, "not_found");
    }

    #[tokio::test]
    async fn a_crowd_of_addresses_adds_a_bounded_number_of_rows_and_refused_requests_add_none() {
        let app = TestApp::new().await;
        let (_, manager) = app.key(ALL).await;
        let (busy, busy_secret) = create(
            &app,
            &manager,
            json!({"name": "Busy order reader", "permissions": ["orders:read"]}),
        )
        .await;
        for n in 1..=12 {
            let ip = format!("198.51.100.{n}");
            assert_eq!(
                get_from(&app, &ip, "/api/v1/orders", &busy_secret).await,
                200
            );
        }
        flush(&app).await;
        let uses = app
            .store
            .route_uses(&busy, app.clock.now_ts().plus_seconds(-DAY))
            .await
            .unwrap();
        let ips: std::collections::BTreeSet<&str> = uses.iter().map(|u| u.ip.as_str()).collect();
        assert_eq!(
            ips.len(),
            latchkey::auth::usage::DAILY_ADDRESSES + 1,
            "the first addresses by name, the rest as one: {ips:?}"
        );
        assert!(ips.contains(latchkey::auth::usage::OTHER_ADDRESSES));
        assert_eq!(
            uses.iter().map(|u| u.requests).sum::<u64>(),
            12,
            "every request counted"
        );
        let s = suggestions_of(&app, &manager, &busy).await;
        assert!(!kinds(&s).contains(&"restrict_ips".to_owned()), "{s}");

        // A revoked key tried from many addresses adds no rows at all.
        let (gone, gone_secret) = create(
            &app,
            &manager,
            json!({"name": "Old reader", "permissions": ["orders:read"]}),
        )
        .await;
        app.post(&format!("/api/v1/keys/{gone}/revoke"), &manager, json!({}))
            .await;
        for n in 1..=5 {
            let ip = format!("203.0.113.{n}");
            assert_eq!(
                get_from(&app, &ip, "/api/v1/orders", &gone_secret).await,
                401
            );
        }
        flush(&app).await;
        let uses = app
            .store
            .route_uses(&gone, app.clock.now_ts().plus_seconds(-DAY))
            .await
            .unwrap();
        assert!(uses.is_empty(), "{uses:?}");
    }

    #[tokio::test]
    async fn unused_and_never_used_keys_are_pointed_out_and_old_use_falls_out_of_the_window() {
        let app = TestApp::new().await;
        let (_, manager) = app.key(ALL).await;
        let (used, used_secret) = create(
            &app,
            &manager,
            json!({"name": "Order reader", "permissions": ["orders:read"], "expires_at": "2027-06-01T00:00:00Z"}),
        )
        .await;
        let (never, _) = create(
            &app,
            &manager,
            json!({"name": "Never used", "permissions": ["orders:read"], "allowed_ips": ["203.0.113.5"],
                   "expires_at": "2027-06-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(
            get_from(&app, "198.51.100.7", "/api/v1/orders", &used_secret).await,
            200
        );
        flush(&app).await;
        let s = suggestions_of(&app, &manager, &used).await;
        assert_eq!(kinds(&s), ["restrict_ips"], "{s}");
        // A brand-new key that is not used yet is no cause for alarm.
        assert_eq!(
            kinds(&suggestions_of(&app, &manager, &never).await),
            Vec::<String>::new()
        );

        app.clock.advance_seconds(8 * DAY);
        let s = suggestions_of(&app, &manager, &never).await;
        assert_eq!(kinds(&s), ["unused_key"], "{s}");
        assert_eq!(of_kind(&s, "unused_key")["last_used_at"], Value::Null);

        app.clock.advance_seconds(23 * DAY);
        app.store.roll_up_usage(app.clock.now_ts()).await.unwrap();
        let s = suggestions_of(&app, &manager, &used).await;
        assert_eq!(
            kinds(&s),
            ["unused_key"],
            "31 days later only the unused key remains: {s}"
        );
        assert!(
            of_kind(&s, "unused_key")["last_used_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-23")),
            "{s}"
        );
        let since = s["observed_since"].as_str().unwrap();
        assert!(
            since.starts_with("2026-11-24"),
            "at most 30 days back: {since}"
        );

        // A revoked key has nothing to suggest.
        app.post(&format!("/api/v1/keys/{never}/revoke"), &manager, json!({}))
            .await;
        assert_eq!(
            kinds(&suggestions_of(&app, &manager, &never).await),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn applying_a_suggestion_goes_through_the_update_rules() {
        let app = TestApp::new().await;
        let (_, manager) = app.key(ALL).await;
        let (zap, zap_secret) = create(
            &app,
            &manager,
            json!({"name": "Zapier – orders", "template": "zapier"}),
        )
        .await;
        get_from(&app, "198.51.100.7", "/api/v1/orders", &zap_secret).await;
        flush(&app).await;
        let owner = latchkey::service::keys::Principal::cli(&app.shop_id);
        let narrowed = app
            .core
            .keys
            .apply_suggestion(&owner, &zap, "unused_permissions")
            .await
            .unwrap();
        assert_eq!(narrowed.permissions.to_names(), ["orders:read"]);
        let limited = app
            .core
            .keys
            .apply_suggestion(&owner, &zap, "restrict_ips")
            .await
            .unwrap();
        assert_eq!(limited.allowed_ips.to_strings(), ["198.51.100.7"]);
        assert_eq!(
            get_from(&app, "198.51.100.7", "/api/v1/orders", &zap_secret).await,
            200
        );
        assert_eq!(
            get_from(&app, "198.51.100.9", "/api/v1/orders", &zap_secret).await,
            403
        );
        // Applied already: nothing more to apply.
        let again = app
            .core
            .keys
            .apply_suggestion(&owner, &zap, "unused_permissions")
            .await;
        assert!(again.is_err());
        // A weaker principal cannot use a suggestion to act on a stronger key.
        let (_, strong_secret) = create(
            &app,
            &manager,
            json!({"name": "Everything", "permissions": ["orders:read", "orders:delete"]}),
        )
        .await;
        let strong = app
            .core
            .keys
            .find_reported(&strong_secret)
            .await
            .unwrap()
            .unwrap();
        get_from(&app, "198.51.100.7", "/api/v1/orders", &strong_secret).await;
        flush(&app).await;
        let weak = app
            .core
            .keys
            .find_reported(&zap_secret)
            .await
            .unwrap()
            .unwrap();
        let as_weak =
            latchkey::service::keys::Principal::key(&weak, "198.51.100.7".parse().unwrap());
        let refused = app
            .core
            .keys
            .apply_suggestion(&as_weak, &strong.id, "unused_permissions")
            .await;
        assert!(refused.is_err(), "{refused:?}");
        let after = app.core.keys.get_any_shop(&strong.id).await.unwrap();
        assert_eq!(
            after.permissions.to_names(),
            ["orders:read", "orders:delete"]
        );
    }
}
