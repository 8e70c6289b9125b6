//! The web UI in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) against latchkey served on 127.0.0.1:0. A person sets up the
//! shop, logs in, creates a key from the Zapier template, copies the secret
//! from the one-time page, uses it, and revokes it with the confirmation.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium`
//! and `chromium-driver`; `scripts/test.sh` installs them). Screenshots of
//! the pages go to `test-output/`.
mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use fantoccini::{Client, ClientBuilder, Locator};
use latchkey::service::keys::NewKeyInput;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/test.sh, which installs Debian's chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a screenshot of the whole page (the window grows to fit it).
async fn screenshot(c: &Client, name: &str) {
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(1000);
    let (width, _) = c.get_window_size().await.unwrap_or((1280, 1000));
    let _ = c
        .set_window_size(width as u32, (height + 120).clamp(600, 4000) as u32)
        .await;
    let _ = c.execute("window.scrollTo(0, 0);", vec![]).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(output_dir().join(name), png).unwrap();
    let _ = c.set_window_size(width as u32, 1000).await;
}

/// Finds an element, waiting up to 10 s: right after a click or a form
/// submission the next document may not be there yet.
async fn find(c: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.find(locator).await {
            Ok(e) => return e,
            Err(e) if Instant::now() > deadline => panic!("{locator:?} not found within 10 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = find(c, Locator::Css(css)).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    find(c, Locator::Css(css)).await.click().await.unwrap();
}

async fn body_text(c: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The body can vanish between find and text while a page loads.
        if let Ok(text) = find(c, Locator::Css("body")).await.text().await {
            return text;
        }
        if Instant::now() > deadline {
            panic!("the page's text could not be read within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the page shows `needle` (a submitted form's answer may take a
/// moment to replace the page).
async fn wait_for_text(c: &Client, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = body_text(c).await;
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {needle:?}; it shows:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_path(c: &Client, path_start: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.unwrap();
        if url.path().starts_with(path_start) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {path_start}, still at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn me(base: &str, secret: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_creates_copies_uses_and_revokes_a_key_in_chromium() {
    let app = TestApp::builder().empty().build().await;
    let server = app.spawn().await;
    let base = server.url.clone();
    let link = app.core.shops.setup_link().await.unwrap();
    let token = link.split("token=").nth(1).unwrap().to_owned();

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    // First run: the one-time setup link creates the shop and its owner.
    c.goto(&format!("{base}/setup?token={token}"))
        .await
        .unwrap();
    fill(&c, "#shop_name", "Fix-It Phones").await;
    fill(&c, "#email", "owner@fixit.example").await;
    fill(&c, "#password", "correct horse battery").await;
    fill(&c, "#password_confirm", "correct horse battery").await;
    click(&c, "button[type=submit]").await;
    wait_for_text(&c, "Your shop is set up").await;

    // Log in.
    click(&c, "a.button").await;
    wait_for_path(&c, "/login").await;
    screenshot(&c, "login.png").await;
    fill(&c, "#email", "owner@fixit.example").await;
    fill(&c, "#password", "correct horse battery").await;
    click(&c, "button[type=submit]").await;
    wait_for_path(&c, "/settings/api-keys/new").await;

    // Create a key from the Zapier template: the script fills the grid.
    click(&c, "input[name=template][value=zapier]").await;
    for (perm, wanted) in [
        ("clients:read", true),
        ("clients:write", true),
        ("orders:read", true),
        ("orders:write", true),
        ("devices:read", true),
        ("devices:write", false),
        ("keys:write", false),
    ] {
        let checked = c
            .find(Locator::Css(&format!(
                "input[name=permissions][value='{perm}']"
            )))
            .await
            .unwrap()
            .prop("checked")
            .await
            .unwrap();
        assert_eq!(checked.as_deref() == Some("true"), wanted, "{perm}");
    }
    fill(&c, "#name", "Zapier – new orders").await;
    fill(&c, "#allowed_ips", "127.0.0.1\n::1").await;
    screenshot(&c, "create.png").await;
    click(&c, ".key-form button[type=submit]").await;

    // The one-time secret page.
    let secret_field = c.wait().for_element(Locator::Css("#secret")).await.unwrap();
    let secret = secret_field.prop("value").await.unwrap().unwrap();
    assert!(
        secret.starts_with("lk_live_") && secret.len() == 46,
        "{secret}"
    );
    let text = body_text(&c).await;
    assert!(text.contains("You will not see this key again"), "{text}");
    assert!(
        c.find(Locator::Css("button[data-copy=secret]"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the copy button is shown when the script runs"
    );
    screenshot(&c, "secret.png").await;

    // The key works.
    let (status, body) = me(&base, &secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"]["name"], "Zapier – new orders", "{body}");

    // A few more keys so the list looks like a shop's.
    for (name, env, template, expires_at) in [
        ("Website contact form", "live", "website-contact-form", None),
        (
            "IT Glue sync",
            "live",
            "it-glue",
            Some("2026-11-26T00:00:00Z"),
        ),
        ("Ninja RMM – staging", "test", "ninja-rmm", None),
    ] {
        app.key_with(
            &app_shop(&app).await,
            NewKeyInput {
                name: Some(name.into()),
                template: Some(template.into()),
                environment: Some(env.into()),
                expires_at: expires_at.map(|t| Some(t.to_owned())),
                ..Default::default()
            },
        )
        .await;
    }

    // The list shows the key truncated, never in full.
    c.goto(&format!("{base}/settings/api-keys")).await.unwrap();
    let list = c.source().await.unwrap();
    assert!(list.contains("Zapier – new orders"));
    assert!(
        !list.contains(&secret),
        "the secret appears nowhere after its page"
    );
    assert!(list.contains(&format!("{}…", &secret[..12])));
    assert!(
        list.contains("“IT Glue sync” expires in 2 days"),
        "the warnings banner"
    );
    screenshot(&c, "list.png").await;
    c.set_window_size(390, 844).await.unwrap();
    screenshot(&c, "list-phone.png").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Details, then revoke with the confirmation.
    c.find(Locator::LinkText("Zapier – new orders"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, "/settings/api-keys/key_").await;
    screenshot(&c, "details.png").await;
    click(&c, "#revoke").await;
    c.accept_alert().await.unwrap();
    c.wait()
        .for_element(Locator::Css(".badge.status-revoked"))
        .await
        .unwrap();
    wait_for_text(&c, "The key is revoked").await;
    screenshot(&c, "details-revoked.png").await;

    // Revoked means now.
    let (status, body) = me(&base, &secret).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "revoked_key", "{body}");

    // The other settings pages, for the record.
    for (path, file) in [
        ("/settings/audit-log", "audit-log.png"),
        ("/settings/users", "users.png"),
        ("/settings/test-data", "test-data.png"),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        screenshot(&c, file).await;
    }
    // A form sent back with its errors.
    c.goto(&format!("{base}/settings/api-keys/new"))
        .await
        .unwrap();
    fill(&c, "#name", "Key 1").await;
    fill(&c, "#allowed_ips", "203.0.113.7\n10.0.0.300").await;
    click(&c, ".key-form button[type=submit]").await;
    c.wait()
        .for_element(Locator::Css("#permissions-error"))
        .await
        .unwrap();
    screenshot(&c, "create-errors.png").await;

    c.close().await.unwrap();
    server.stop().await;
}

/// The shop the setup page created.
async fn app_shop(app: &TestApp) -> String {
    app.store
        .find_user_by_email(&latchkey::domain::user::Email::parse("owner@fixit.example").unwrap())
        .await
        .unwrap()
        .unwrap()
        .shop_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_pauses_an_integration_from_the_keys_page_and_applies_a_suggestion_in_chromium() {
    let app = TestApp::new().await;
    let server = app.spawn().await;
    let base = server.url.clone();
    let (zap, zap_secret) = app
        .key_with(
            &app.shop_id.clone(),
            NewKeyInput {
                name: Some("Zapier – new orders".into()),
                template: Some("zapier".into()),
                ..Default::default()
            },
        )
        .await;
    // The integration reads orders, and nothing else.
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/orders"))
        .bearer_auth(&zap_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    app.core.usage.flush(app.store.as_ref()).await.unwrap();

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(&c, "#email", "owner@fixit.example").await;
    fill(&c, "#password", "correct horse battery").await;
    click(&c, "button[type=submit]").await;
    wait_for_path(&c, "/settings/api-keys").await;

    // Pause every Zapier key, with a reason.
    c.goto(&format!("{base}/settings/api-keys")).await.unwrap();
    fill(&c, "#reason-zapier", "Zapier security incident").await;
    screenshot(&c, "list-integrations.png").await;
    click(
        &c,
        "#integration-zapier form[action='/settings/api-keys/pause'] button",
    )
    .await;
    wait_for_text(&c, "Paused 1 key").await;
    screenshot(&c, "list-paused.png").await;
    let (status, body) = me(&base, &zap_secret).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "key_paused");
    assert_eq!(body["reason"], "Zapier security incident");

    click(
        &c,
        "#integration-zapier form[action='/settings/api-keys/resume'] button",
    )
    .await;
    wait_for_text(&c, "Resumed 1 key").await;
    assert_eq!(me(&base, &zap_secret).await.0, 200);

    // The key's page suggests dropping what it never needed; one click applies it.
    c.goto(&format!("{base}/settings/api-keys/{zap}"))
        .await
        .unwrap();
    wait_for_text(&c, "Suggestions").await;
    screenshot(&c, "details-suggestions.png").await;
    click(
        &c,
        "li.suggestion[data-kind=unused_permissions] button[type=submit]",
    )
    .await;
    wait_for_text(&c, "Suggestion applied").await;
    let key = app
        .store
        .get_key(&app.shop_id, &zap)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.permissions.to_names(), ["orders:read"]);

    c.close().await.unwrap();
    server.stop().await;
}
