//! First run: the one-time setup link creates the shop and its owner.
mod common;

use axum::body::Body;
use axum::http::Request;
use common::TestApp;
use latchkey::domain::user::{Email, Password};

fn form(pairs: &[(&str, &str)]) -> Request<Body> {
    let body = serde_urlencoded::to_string(pairs).unwrap();
    Request::post("/setup")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

async fn token(app: &TestApp) -> String {
    let link = app.core.shops.setup_link().await.unwrap();
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn the_setup_link_creates_the_shop_and_owner_once() {
    let app = TestApp::builder().empty().build().await;
    let token = token(&app).await;

    let page = app
        .call("GET", &format!("/setup?token={token}"), None, None)
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("name=\"shop_name\""));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let ok = app
        .send(form(&[
            ("token", &token),
            ("shop_name", "Fix-It Phones"),
            ("email", "Owner@Fixit.example"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse battery"),
        ]))
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert!(ok.text.contains("Fix-It Phones"));
    let owner = app
        .store
        .find_user_by_email(&Email::parse("owner@fixit.example").unwrap())
        .await
        .unwrap()
        .expect("owner created");
    assert!(Password::verify(
        "correct horse battery",
        &owner.password_hash
    ));
    assert!(owner.password_hash.starts_with("$argon2id$"));

    // The token works once.
    let again = app
        .send(form(&[
            ("token", &token),
            ("shop_name", "Second"),
            ("email", "other@fixit.example"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse battery"),
        ]))
        .await;
    assert_eq!(again.status, 403);
    assert_eq!(
        app.call("GET", &format!("/setup?token={token}"), None, None)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_every_printed_one_works() {
    let app = TestApp::builder().empty().build().await;
    let first = token(&app).await;
    let second = token(&app).await;
    assert_eq!(
        app.call("GET", "/setup?token=nope", None, None)
            .await
            .status,
        403
    );
    assert_eq!(app.call("GET", "/setup", None, None).await.status, 403);
    // Instances started together each print a link: each works.
    assert_eq!(
        app.call("GET", &format!("/setup?token={first}"), None, None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.call("GET", &format!("/setup?token={second}"), None, None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn setup_errors_are_shown_next_to_their_fields_with_the_input_kept() {
    let app = TestApp::builder().empty().build().await;
    let token = token(&app).await;
    let r = app
        .send(form(&[
            ("token", &token),
            ("shop_name", "<b>Fix</b>"),
            ("email", "not-an-email"),
            ("password", "short"),
            ("password_confirm", "short"),
        ]))
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.text.contains("value=\"&lt;b&gt;Fix&lt;/b&gt;\"")
            || r.text.contains("value=\"&#60;b&#62;Fix&#60;/b&#62;\""),
        "input kept and escaped (named or numeric entities, as askama writes them)"
    );
    assert!(!r.text.contains("<b>Fix</b>"), "never raw");
    assert!(r.text.contains("id=\"owner_email-error\""));
    assert!(r.text.contains("id=\"password-error\""));
    assert!(!app.store.has_shops().await.unwrap(), "nothing created");

    let mismatch = app
        .send(form(&[
            ("token", &token),
            ("shop_name", "Fix-It"),
            ("email", "a@b.example"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse batteries"),
        ]))
        .await;
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.text.contains("differ"));
}

#[tokio::test]
async fn no_setup_link_works_once_a_shop_exists() {
    let app = TestApp::new().await; // has a shop
    let token = token(&app).await;
    assert_eq!(
        app.call("GET", &format!("/setup?token={token}"), None, None)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn a_shop_name_with_markup_is_shown_escaped_once_created() {
    let app = TestApp::builder().empty().build().await;
    let token = token(&app).await;
    let r = app
        .send(form(&[
            ("token", &token),
            ("shop_name", "Fix <script>\"'& Co"),
            ("email", "owner@fixit.example"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse battery"),
        ]))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(!r.text.contains("<script>\""), "never raw: {}", r.text);
    assert!(
        r.text
            .contains("<h1>Fix &lt;script&gt;&quot;&#39;&amp; Co</h1>")
            || r.text
                .contains("<h1>Fix &#60;script&#62;&#34;&#39;&#38; Co</h1>"),
        "{}",
        r.text
    );
}
