mod common;
use common::TestApp;

#[tokio::test]
async fn a_valid_key_reads_itself_and_a_missing_key_is_401() {
    let app = TestApp::new().await;
    let (id, secret) = app.key(&["orders:read"]).await;
    let r = app.get("/api/v1/me", &secret).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key"]["id"], id);
    let r = app.call("GET", "/api/v1/me", None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "missing_key");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="latchkey""#)
    );
}
