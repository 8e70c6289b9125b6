mod common;
use common::TestApp;

#[tokio::test]
async fn a_valid_key_reads_itself_and_a_missing_key_is_401() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read"]).await;
    let r = app.get("/api/v1/me", &secret).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["id"], id);
    // What docs/KEYS.md names for /me, and the shop; no usage figures (those need a
    // database query, and /me answers from memory).
    let key = &r.body["key"];
    assert_eq!(key["environment"], "live");
    assert_eq!(key["permissions"], serde_json::json!(["orders:read"]));
    assert_eq!(key["rate_limit_per_minute"], 100);
    assert!(key["name"].is_string() && key["status"] == "active");
    assert!(key.get("requests_24h").is_none() && key.get("secret").is_none());
    assert!(
        r.body["shop"]["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("shop_"))
    );
    assert!(r.body["shop"]["name"].is_string());
    let r = app.call("GET", "/api/v1/me", None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "missing_key");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="latchkey""#)
    );
}
