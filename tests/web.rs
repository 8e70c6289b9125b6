//! The web UI at the HTML level, through the router in-process: logins and
//! sessions, the CSRF guard, the key pages and their rules (roles, tenancy),
//! users, the audit log and test data.
mod common;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use common::{ClockExt, T0, TestApp, TestResponse};
use http_body_util::BodyExt;
use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::domain::key::Actor;
use latchkey::domain::new_id;
use latchkey::domain::user::{Email, Password, Role};
use latchkey::store::{AuditEvent, Store, User};
use latchkey::{Core, build_router};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const OWNER: &str = "owner@fixit.example";

/// A browser's view of the app: it keeps cookies between requests.
struct Web<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
    /// The browser's address (the app's default peer when `None`).
    peer: Option<std::net::SocketAddr>,
}

impl<'a> Web<'a> {
    fn new(app: &'a TestApp) -> Self {
        Web {
            app,
            cookies: HashMap::new(),
            peer: None,
        }
    }

    /// A browser at another address.
    fn at(app: &'a TestApp, ip: &str) -> Self {
        Web {
            peer: Some(format!("{ip}:41000").parse().unwrap()),
            ..Web::new(app)
        }
    }

    async fn send(&self, req: Request<Body>) -> TestResponse {
        match self.peer {
            Some(peer) => self.app.send_from(peer, req).await,
            None => self.app.send(req).await,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &TestResponse) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
    }

    async fn get(&mut self, path: &str) -> TestResponse {
        let req = Request::get(path)
            .header("cookie", self.cookie_header())
            .body(Body::empty())
            .unwrap();
        let r = self.send(req).await;
        self.keep_cookies(&r);
        r
    }

    /// Posts a form as it is, without adding a CSRF token.
    async fn post_raw(&mut self, path: &str, pairs: &[(&str, &str)]) -> TestResponse {
        let req = Request::post(path)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(serde_urlencoded::to_string(pairs).unwrap()))
            .unwrap();
        let r = self.send(req).await;
        self.keep_cookies(&r);
        r
    }

    /// Posts a form with the CSRF token of the page at `from`, as a browser
    /// submitting that page would.
    async fn post(&mut self, from: &str, path: &str, pairs: &[(&str, &str)]) -> TestResponse {
        let page = self.get(from).await;
        let token = csrf(&page.text);
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(pairs);
        self.post_raw(path, &all).await
    }

    async fn login(&mut self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    async fn logged_in(app: &'a TestApp, email: &str) -> Web<'a> {
        let mut web = Web::new(app);
        let r = web.login(email, PASSWORD).await;
        assert_eq!(r.status, 303, "login of {email}: {}", r.text);
        web
    }

    /// Creates a key through the form; returns (id, secret).
    async fn create_key(&mut self, pairs: &[(&str, &str)]) -> (String, String) {
        let r = self
            .post("/settings/api-keys/new", "/settings/api-keys", pairs)
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (key_id_in(&r.text), secret_in(&r.text))
    }
}

fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn csrf(html: &str) -> String {
    between(html, "name=\"csrf\" value=\"", "\"")
        .expect("the page has a form with a CSRF token")
        .to_owned()
}

fn secret_in(html: &str) -> String {
    between(html, "class=\"secret\" value=\"", "\"")
        .expect("a secret on the page")
        .to_owned()
}

fn key_id_in(html: &str) -> String {
    format!(
        "key_{}",
        between(html, "/settings/api-keys/key_", "\"").expect("a key link")
    )
}

/// Adds a user with [`PASSWORD`] (not one-time) to `shop_id`.
async fn add_user(app: &TestApp, shop_id: &str, email: &str, role: Role) -> String {
    let now = app.clock.now_ts();
    let user = User {
        id: new_id("usr"),
        shop_id: shop_id.into(),
        email: Email::parse(email).unwrap(),
        role,
        password_hash: Password::parse(PASSWORD.into()).unwrap().hash(),
        created_at: now,
    };
    let audit = AuditEvent {
        id: new_id("evt"),
        shop_id: shop_id.into(),
        at: now,
        actor: Actor::Cli,
        action: "user.added".into(),
        key_id: None,
        environment: None,
        ip: None,
        details: serde_json::json!({}),
    };
    app.store.insert_user(&user, None, &audit).await.unwrap();
    user.id
}

const ZAPIER: &[(&str, &str)] = &[
    ("name", "Zapier – new orders"),
    ("template", "zapier"),
    ("grid_for", "zapier"),
    ("permissions", "clients:read"),
    ("permissions", "clients:write"),
    ("permissions", "orders:read"),
    ("permissions", "orders:write"),
    ("permissions", "devices:read"),
    ("environment", "live"),
    ("rate_limit", "100"),
];

// ---------------------------------------------------------------------------
// Logging in
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pages_send_a_visitor_without_a_session_to_the_login_page() {
    let app = TestApp::new().await;
    let mut web = Web::new(&app);
    for path in [
        "/settings/api-keys",
        "/settings/api-keys/new",
        "/settings/audit-log",
        "/settings/users",
        "/settings/test-data",
    ] {
        let r = web.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert!(
            r.header("location")
                .unwrap()
                .starts_with("/login?next=%2Fsettings"),
            "{path}: {:?}",
            r.header("location")
        );
    }
    assert_eq!(
        web.get("/").await.header("location"),
        Some("/settings/api-keys")
    );
}

#[tokio::test]
async fn logging_in_sets_a_strict_http_only_session_cookie_and_follows_next() {
    let app = TestApp::new().await;
    let mut web = Web::new(&app);
    let page = web.get("/login?next=%2Fsettings%2Ftest-data").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text
            .contains("name=\"next\" value=\"/settings/test-data\"")
    );
    let pre = page.header("set-cookie").unwrap();
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );

    let r = web
        .post_raw(
            "/login",
            &[
                ("csrf", &csrf(&page.text)),
                ("email", "Owner@Fixit.example"),
                ("password", PASSWORD),
                ("next", "/settings/test-data"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/settings/test-data"));
    let session = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("latchkey_session="))
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    assert_eq!(web.get("/settings/api-keys").await.status, 200);
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_https() {
    let app = TestApp::builder()
        .policy(|p| p.public_url = "https://keys.fixit.example".into())
        .build()
        .await;
    let mut web = Web::new(&app);
    let r = web.login(OWNER, PASSWORD).await;
    assert_eq!(r.status, 303);
    let cookies: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("latchkey_session=") && c.contains("; Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn only_a_local_path_may_follow_a_login() {
    let app = TestApp::new().await;
    // Each as the browser sends it in the query, and as axum decodes it.
    for (query, evil) in [
        ("https%3A%2F%2Fevil.example%2F", "https://evil.example/"),
        ("%2F%2Fevil.example", "//evil.example"),
        ("//evil.example/x", "//evil.example/x"),
        ("/%5Cevil", "/\\evil"),
        ("/%09/evil.example/x", "/\t/evil.example/x"),
        ("/x%0d%0aSet-Cookie:a=b", "/x\r\nSet-Cookie:a=b"),
        ("/settings/api-keys%20x", "/settings/api-keys x"),
    ] {
        let mut web = Web::new(&app);
        let page = web.get(&format!("/login?next={query}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        assert!(
            page.text
                .contains("name=\"next\" value=\"/settings/api-keys\""),
            "{query}: the form carries the keys page, not the given next"
        );
        let r = web
            .post_raw(
                "/login",
                &[
                    ("csrf", &csrf(&page.text)),
                    ("email", OWNER),
                    ("password", PASSWORD),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{evil:?}: {}", r.text);
        assert_eq!(r.header("location"), Some("/settings/api-keys"), "{evil:?}");
        assert_eq!(
            r.headers.get_all("set-cookie").iter().count(),
            2,
            "{evil:?}: only the session and login cookies are set"
        );
    }
}

#[tokio::test]
async fn a_local_path_with_a_query_is_kept_after_login() {
    let app = TestApp::new().await;
    for (next, location) in [
        ("/settings/api-keys?x=1", "/settings/api-keys?x=1"),
        (
            "/settings/api-keys?q=café",
            "/settings/api-keys?q=caf%C3%A9",
        ),
    ] {
        let mut web = Web::new(&app);
        let r = web
            .post(
                "/login",
                "/login",
                &[("email", OWNER), ("password", PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!(r.status, 303, "{next}: {}", r.text);
        assert_eq!(r.header("location"), Some(location), "{next}");
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::new().await;
    let mut web = Web::new(&app);
    let wrong = web.login(OWNER, "not the password at all").await;
    let unknown = web.login("nobody@fixit.example", PASSWORD).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    let message = "That email and password do not match an account";
    assert!(wrong.text.contains(message) && unknown.text.contains(message));
    assert!(
        wrong.text.contains("value=\"owner@fixit.example\""),
        "the email is kept"
    );
    assert!(
        !wrong.text.contains("not the password"),
        "never the password"
    );
    assert_eq!(web.get("/settings/api-keys").await.status, 303);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_address() {
    let app = TestApp::new().await;
    let mut web = Web::new(&app);
    for i in 0..9 {
        let r = web.login(OWNER, "wrong password, again").await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let tenth = web.login(OWNER, "wrong password, again").await;
    assert_eq!(tenth.status, 429, "{}", tenth.text);
    // Now even the right password waits, from that address.
    let mut same_address = Web::new(&app);
    let r = same_address.login(OWNER, PASSWORD).await;
    assert_eq!(r.status, 429);
    assert!(r.text.contains("Too many login attempts"));
    assert!(r.header("retry-after").is_some());
    // Another account from the same address is not affected…
    add_user(
        &app,
        &app.shop_id.clone(),
        "admin@fixit.example",
        Role::Admin,
    )
    .await;
    assert_eq!(
        same_address
            .login("admin@fixit.example", PASSWORD)
            .await
            .status,
        303
    );
    // …and the account opens again after the window.
    app.clock.advance_seconds(15 * 60 + 1);
    assert_eq!(Web::new(&app).login(OWNER, PASSWORD).await.status, 303);
}

/// Hardening: failures count per (account, address); a correct
/// password from an address with no recent failures for the account signs
/// in while other addresses are throttled for it.
#[tokio::test]
async fn failures_from_other_addresses_never_lock_the_owner_out() {
    let app = TestApp::new().await;
    for i in 0..10 {
        let mut attacker = Web::at(&app, &format!("198.51.100.{}", i + 1));
        for _ in 0..10 {
            attacker.login(OWNER, "guessing the password").await;
        }
        let r = attacker.login(OWNER, PASSWORD).await;
        assert_eq!(r.status, 429, "address {i} is throttled for the account");
    }
    let mut owner = Web::at(&app, "192.0.2.44");
    let r = owner.login(OWNER, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(owner.get("/settings/api-keys").await.status, 200);
}

/// The owner signing in clears their own address's failures, not others'.
#[tokio::test]
async fn signing_in_clears_that_address_failures_for_the_account() {
    let app = TestApp::new().await;
    let mut owner = Web::at(&app, "192.0.2.50");
    for _ in 0..9 {
        assert_eq!(owner.login(OWNER, "a typo, again").await.status, 401);
    }
    assert_eq!(owner.login(OWNER, PASSWORD).await.status, 303);
    // Nine more typos from there are allowed again (counted from zero).
    let mut again = Web::at(&app, "192.0.2.50");
    for i in 0..9 {
        assert_eq!(again.login(OWNER, "a typo, again").await.status, 401, "{i}");
    }
}

/// Hardening: throttle memory is bounded, keyed by a hash, never by the
/// typed text: huge emails do not grow it.
#[tokio::test]
async fn huge_emails_do_not_grow_the_login_throttle() {
    let app = TestApp::builder()
        .policy(|p| p.failed_auth_limit = 100_000)
        .build()
        .await;
    let memory = app.core.limits.memory();
    let mut web = Web::new(&app);
    let page = web.get("/login").await;
    let token = csrf(&page.text);
    for i in 0..400 {
        // 60 KB: within the largest form, far beyond any email.
        let email = format!("{i}{}@fixit.example", "x".repeat(60 * 1024));
        let r = web
            .post_raw(
                "/login",
                &[
                    ("csrf", token.as_str()),
                    ("email", &email),
                    ("password", "nope"),
                ],
            )
            .await;
        assert_eq!(r.status, 401, "attempt {i}");
        assert!(!r.text.contains(&"x".repeat(1000)) || r.text.len() < 200_000);
    }
    assert_eq!(
        memory.login_entries(),
        0,
        "no account can have such an email: nothing is kept per account"
    );
    // Real emails get one fixed-size entry each.
    for i in 0..50 {
        web.login(&format!("user{i}@fixit.example"), "nope").await;
    }
    assert_eq!(memory.login_entries(), 50);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client_ip() {
    let app = TestApp::builder()
        .policy(|p| p.failed_auth_limit = 3)
        .build()
        .await;
    let mut web = Web::new(&app);
    for i in 0..3 {
        let r = web
            .login(&format!("guess{i}@fixit.example"), "wrong password")
            .await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let fourth = web.login("guess9@fixit.example", "wrong password").await;
    assert_eq!(fourth.status, 429);
    // The same address cannot log in to a real account either, for now.
    assert_eq!(web.login(OWNER, PASSWORD).await.status, 429);
    app.clock.advance_seconds(61);
    assert_eq!(web.login(OWNER, PASSWORD).await.status, 303);
}

#[tokio::test]
async fn a_session_survives_a_restart_of_the_app_on_the_same_database() {
    let app = TestApp::new().await;
    let web = Web::logged_in(&app, OWNER).await;
    let cookie = web.cookie_header();

    // A new process: a new store on the same file, the same server secret.
    let store: Arc<dyn Store> = app.reopen_store().await;
    let secret = ServerSecret::new(b"test-secret-test-secret-test-secret!".to_vec()).unwrap();
    let clock = Arc::new(latchkey::domain::clock::ManualClock::new(
        latchkey::domain::clock::Timestamp::parse_rfc3339(T0).unwrap(),
    ));
    let core = Arc::new(Core::new(
        store,
        clock,
        KeyHasher::new(&secret),
        latchkey::Policy::default(),
    ));
    let router = build_router(latchkey::AppState::new(core)).layer(MockConnectInfo(app.peer));
    let response = router
        .oneshot(
            Request::get("/settings/api-keys")
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains(OWNER));
}

#[tokio::test]
async fn sessions_are_stored_hashed() {
    let app = TestApp::new().await;
    let web = Web::logged_in(&app, OWNER).await;
    let token = web.cookies["latchkey_session"].clone();
    assert!(
        !app.database_contains(token.as_bytes()).await,
        "the cookie value is not in the database"
    );
}

#[tokio::test]
async fn a_session_ends_when_idle_too_long() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    app.clock.advance_seconds(11 * 3600);
    assert_eq!(
        web.get("/settings/api-keys").await.status,
        200,
        "still in use"
    );
    app.clock.advance_seconds(11 * 3600);
    assert_eq!(
        web.get("/settings/api-keys").await.status,
        200,
        "use moved it"
    );
    app.clock.advance_seconds(13 * 3600);
    assert_eq!(web.get("/settings/api-keys").await.status, 303, "idle 13 h");
}

#[tokio::test]
async fn logging_out_ends_the_session() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let cookie = web.cookies.clone();
    assert_eq!(web.get("/logout").await.status, 200, "a confirmation page");
    let r = web.post("/logout", "/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?done=logged_out"));
    // Even a copy of the old cookie no longer works.
    let mut copy = Web::new(&app);
    copy.cookies = cookie;
    assert_eq!(copy.get("/settings/api-keys").await.status, 303);
}

// ---------------------------------------------------------------------------
// Security headers and the CSRF guard
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_page_carries_a_strict_csp_and_the_usual_headers() {
    let app = TestApp::new().await;
    let (key_id, _) = app.key(&["orders:read"]).await;
    let mut web = Web::logged_in(&app, OWNER).await;
    for path in [
        "/login",
        "/logout",
        "/settings/api-keys",
        "/settings/api-keys/new",
        &format!("/settings/api-keys/{key_id}"),
        "/settings/audit-log",
        "/settings/test-data",
        "/settings/users",
        "/settings/password",
        "/settings/api-keys/docs",
    ] {
        let r = web.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
        assert!(!r.text.contains("<script>"), "{path}: no inline script");
        assert!(!r.text.contains("style=\""), "{path}: no inline style");
        assert!(
            !r.text.contains("src=\"http") && !r.text.contains("href=\"http"),
            "{path}: nothing from elsewhere"
        );
    }
    let js = web.get("/assets/app.js").await;
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[tokio::test]
async fn every_form_refuses_a_post_without_the_right_csrf_token() {
    let app = TestApp::new().await;
    let (key_id, secret) = app.key(&["orders:read"]).await;
    let staff = add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let key_paths = [
        format!("/settings/api-keys/{key_id}"),
        format!("/settings/api-keys/{key_id}/revoke"),
        format!("/settings/api-keys/{key_id}/clone"),
        format!("/settings/api-keys/{key_id}/delete"),
        format!("/settings/users/{staff}/role"),
        format!("/settings/users/{staff}/password"),
        format!("/settings/users/{staff}/remove"),
    ];
    let paths: Vec<&str> = [
        "/settings/api-keys",
        "/settings/api-keys/pause",
        "/settings/api-keys/resume",
        "/settings/users",
        "/settings/test-data/reset",
        "/settings/password",
        "/logout",
        "/login",
    ]
    .into_iter()
    .chain(key_paths.iter().map(String::as_str))
    .collect();
    for path in paths {
        for token in [None, Some("0123456789abcdef0123456789abcdef")] {
            let mut pairs = vec![
                ("confirm", "yes"),
                ("name", "Forged"),
                ("template", "zapier"),
                ("email", "forged@evil.example"),
                ("role", "admin"),
                ("revoke_keys", "yes"),
            ];
            if let Some(t) = token {
                pairs.push(("csrf", t));
            }
            let r = web.post_raw(path, &pairs).await;
            assert_eq!(r.status, 403, "{path} with {token:?}: {}", r.text);
            assert!(r.text.contains("This form has expired"), "{path}");
        }
    }
    // Nothing happened: the key works, the session lives, no key or user was added.
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    let list = web.get("/settings/api-keys").await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains("Forged"));
    assert_eq!(app.store.list_users(&app.shop_id).await.unwrap().len(), 2);

    // A token from another session does not pass either.
    let mut other = Web::logged_in(&app, OWNER).await;
    let foreign = csrf(&other.get("/settings/api-keys").await.text);
    let r = web
        .post_raw(
            &format!("/settings/api-keys/{key_id}/revoke"),
            &[("csrf", &foreign), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
}

// ---------------------------------------------------------------------------
// Keys: list, create, the one-time secret
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_list_says_what_to_do() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let r = web.get("/settings/api-keys").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("No API keys yet"));
    assert!(r.text.contains("href=\"/settings/api-keys/new\""));
}

#[tokio::test]
async fn the_secret_is_shown_once_in_the_answer_to_the_form_and_works() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let r = web
        .post("/settings/api-keys/new", "/settings/api-keys", ZAPIER)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.text.contains("You will not see this key again"));
    assert!(r.text.contains("data-copy=\"secret\""), "a copy button");
    let secret = secret_in(&r.text);
    let id = key_id_in(&r.text);
    assert!(secret.starts_with("lk_live_") && secret.len() == 46);

    let me = app.get("/api/v1/me", &secret).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["key"]["id"], id.as_str());
    assert_eq!(me.body["key"]["name"], "Zapier – new orders");

    // Afterwards only the truncated form exists anywhere.
    let key = app.store.get_key(&app.shop_id, &id).await.unwrap().unwrap();
    assert_eq!(key.created_by, Actor::User(owner_id(&app).await));
    assert_eq!(key.template.as_deref(), Some("zapier"));
    for path in [
        "/settings/api-keys".to_owned(),
        format!("/settings/api-keys/{id}"),
        "/settings/audit-log".to_owned(),
    ] {
        let page = web.get(&path).await;
        assert!(!page.text.contains(&secret), "{path}");
        assert!(
            path.contains("audit") || page.text.contains(&key.display),
            "{path}"
        );
    }
}

async fn owner_id(app: &TestApp) -> String {
    app.store
        .find_user_by_email(&Email::parse(OWNER).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn the_list_shows_each_key_with_its_badges_and_filters_by_status_and_environment() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (live, _) = web.create_key(ZAPIER).await;
    let mut test = ZAPIER.to_vec();
    test[0] = ("name", "IT Glue sandbox");
    test[8] = ("environment", "test");
    let (sandbox, _) = web.create_key(&test).await;
    web.post(
        &format!("/settings/api-keys/{live}"),
        &format!("/settings/api-keys/{live}/revoke"),
        &[("confirm", "yes")],
    )
    .await;

    let all = web.get("/settings/api-keys").await;
    for text in [
        "Zapier – new orders",
        "IT Glue sandbox",
        "badge env-live",
        "badge env-test",
        "badge status-revoked",
        "badge status-active",
        "Orders read/write · Clients read/write · Devices read",
        OWNER,
        "Never",
        "2 of 2 keys",
    ] {
        assert!(all.text.contains(text), "{text}");
    }
    let revoked = web.get("/settings/api-keys?status=revoked").await;
    assert!(revoked.text.contains(&live) && !revoked.text.contains(&sandbox));
    let tests = web.get("/settings/api-keys?environment=test").await;
    assert!(tests.text.contains(&sandbox) && !tests.text.contains(&live));
    let none = web
        .get("/settings/api-keys?status=expired&environment=live")
        .await;
    assert!(none.text.contains("No keys match"));
}

#[tokio::test]
async fn without_javascript_the_picked_template_applies_on_submit() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    // The grid was drawn for "custom" and still holds a stale choice.
    let (id, _) = web
        .create_key(&[
            ("name", ""),
            ("template", "it-glue"),
            ("grid_for", "custom"),
            ("permissions", "orders:delete"),
            ("environment", "live"),
            ("rate_limit", "100"),
        ])
        .await;
    let key = app.store.get_key(&app.shop_id, &id).await.unwrap().unwrap();
    assert_eq!(
        key.permissions.to_names(),
        ["clients:read", "devices:read", "devices:write"]
    );
    assert_eq!(key.name.as_str(), "IT Glue", "the template's name");

    // The form for a template, as drawn without a script.
    let page = web.get("/settings/api-keys/new?template=pax8").await;
    assert!(page.text.contains(
        "value=\"pax8\" data-permissions=\"clients:read clients:write\" data-name=\"Pax8\" checked"
    ));
    assert!(page.text.contains(
        "value=\"clients:write\" id=\"perm-clients-write\" aria-label=\"Clients: write\" checked"
    ));
}

#[tokio::test]
async fn form_errors_are_shown_next_to_their_fields_with_the_input_kept() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let r = web
        .post(
            "/settings/api-keys/new",
            "/settings/api-keys",
            &[
                ("name", "<b>Shop site</b>"),
                ("template", "custom"),
                ("grid_for", "custom"),
                ("environment", "live"),
                ("expires_on", "2020-01-01"),
                (
                    "allowed_ips",
                    "203.0.113.7\n\n10.0.0.300\nnot-an-ip\n2001:db8::/32",
                ),
                ("rate_limit", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("Nothing was created"));
    for field in ["permissions", "expires_on", "allowed_ips", "rate_limit"] {
        assert!(r.text.contains(&format!("id=\"{field}-error\"")), "{field}");
    }
    assert!(r.text.contains("Line 3:"), "the line of each bad address");
    assert!(r.text.contains("Line 4:"));
    assert!(!r.text.contains("Line 1:") && !r.text.contains("Line 5:"));
    assert!(r.text.contains("Give at least one permission"));
    assert!(r.text.contains("Must be in the future"));
    assert!(r.text.contains("between 1 and 10000"));
    // Input kept, escaped.
    assert!(
        r.text
            .contains("value=\"&#60;b&#62;Shop site&#60;/b&#62;\"")
            || r.text.contains("value=\"&lt;b&gt;Shop site&lt;/b&gt;\""),
        "{}",
        r.text
    );
    assert!(r.text.contains("10.0.0.300\nnot-an-ip"));
    assert!(r.text.contains("value=\"2020-01-01\""));
    let list = web.get("/settings/api-keys").await;
    assert!(list.text.contains("No API keys yet"));

    let bad_date = web
        .post(
            "/settings/api-keys/new",
            "/settings/api-keys",
            &[
                ("name", "Shop site"),
                ("template", "website-contact-form"),
                ("grid_for", "website-contact-form"),
                ("permissions", "clients:write"),
                ("expires_on", "next tuesday"),
                ("rate_limit", "lots"),
            ],
        )
        .await;
    assert_eq!(bad_date.status, 422);
    assert!(bad_date.text.contains("is not a date"));
    assert!(bad_date.text.contains("whole number"));
}

#[tokio::test]
async fn a_vague_name_is_questioned_until_the_user_keeps_it() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let mut form = ZAPIER.to_vec();
    form[0] = ("name", "Key 1");
    let r = web
        .post("/settings/api-keys/new", "/settings/api-keys", &form)
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text.contains("does not say where the key is used"));
    assert!(r.text.contains("name=\"accept_vague\""));
    form.push(("accept_vague", "yes"));
    let (id, _) = web.create_key(&form).await;
    let list = web.get("/settings/api-keys").await;
    assert!(
        list.text.contains("Rename 1 key"),
        "a banner asks to rename it"
    );
    assert!(
        web.get(&format!("/settings/api-keys/{id}"))
            .await
            .text
            .contains("This name does not say where the key is used")
    );
}

#[tokio::test]
async fn the_banner_warns_of_keys_expiring_within_a_week() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let mut form = ZAPIER.to_vec();
    form.push(("expires_on", "2026-11-27"));
    web.create_key(&form).await;
    let list = web.get("/settings/api-keys").await;
    assert!(list.text.contains("class=\"alert warn\""), "{}", list.text);
    assert!(list.text.contains("expires in 3 days"));
}

// ---------------------------------------------------------------------------
// Roles and tenancy
// ---------------------------------------------------------------------------

#[tokio::test]
async fn staff_cannot_grant_what_their_role_lacks() {
    let app = TestApp::new().await;
    add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut web = Web::logged_in(&app, "staff@fixit.example").await;
    let form = web.get("/settings/api-keys/new").await;
    assert!(form.text.contains(
        "value=\"keys:write\" id=\"perm-keys-write\" aria-label=\"API keys: write\" disabled"
    ));
    for perm in ["keys:read", "keys:write", "orders:delete"] {
        let r = web
            .post(
                "/settings/api-keys/new",
                "/settings/api-keys",
                &[
                    ("name", "Back office sync"),
                    ("template", "custom"),
                    ("grid_for", "custom"),
                    ("permissions", "orders:read"),
                    ("permissions", perm),
                ],
            )
            .await;
        assert_eq!(r.status, 403, "{perm}: {}", r.text);
        assert!(
            r.text.contains(&format!("You cannot grant `{perm}`")),
            "{perm}"
        );
        assert!(r.text.contains("id=\"permissions-error\""));
    }
    // Within the role it works.
    web.create_key(ZAPIER).await;
    assert_eq!(
        app.store
            .list_audit_events(
                &app.shop_id,
                &Default::default(),
                latchkey::store::PageRequest {
                    page: 1,
                    per_page: 100
                }
            )
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.action == "key.created")
            .count(),
        1
    );
}

#[tokio::test]
async fn staff_see_and_act_only_on_the_keys_they_created() {
    let app = TestApp::new().await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let (owners_key, owners_secret) = owner.create_key(ZAPIER).await;
    add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut staff = Web::logged_in(&app, "staff@fixit.example").await;
    let mut form = ZAPIER.to_vec();
    form[0] = ("name", "Front desk tablet");
    let (own, own_secret) = staff.create_key(&form).await;

    let list = staff.get("/settings/api-keys").await;
    assert!(list.text.contains(&own) && !list.text.contains(&owners_key));
    assert_eq!(
        staff
            .get(&format!("/settings/api-keys/{owners_key}"))
            .await
            .status,
        404
    );
    let token = csrf(&list.text);
    for action in ["revoke", "delete", "clone"] {
        let r = staff
            .post_raw(
                &format!("/settings/api-keys/{owners_key}/{action}"),
                &[("csrf", &token), ("confirm", "yes")],
            )
            .await;
        assert!(
            matches!(r.status.as_u16(), 403 | 404),
            "{action}: {}",
            r.status
        );
    }
    let r = staff
        .post_raw(
            &format!("/settings/api-keys/{owners_key}"),
            &[("csrf", &token), ("name", "Taken over")],
        )
        .await;
    assert!(matches!(r.status.as_u16(), 403 | 404));
    assert_eq!(app.get("/api/v1/me", &owners_secret).await.status, 200);
    assert_eq!(
        app.store
            .get_key(&app.shop_id, &owners_key)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        "Zapier – new orders"
    );

    // Their own key they manage, and the owner sees it too.
    let r = staff
        .post(
            &format!("/settings/api-keys/{own}"),
            &format!("/settings/api-keys/{own}/revoke"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        app.get("/api/v1/me", &own_secret).await.code(),
        "revoked_key"
    );
    assert!(owner.get("/settings/api-keys").await.text.contains(&own));
    // Staff have no audit log or users page.
    assert_eq!(staff.get("/settings/audit-log").await.status, 403);
    assert_eq!(staff.get("/settings/users").await.status, 403);
    assert!(!list.text.contains("href=\"/settings/audit-log\""));
}

#[tokio::test]
async fn the_keys_page_pauses_and_resumes_all_of_one_integrations_keys_with_a_reason() {
    let app = TestApp::new().await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let (zap1, zap1_secret) = owner.create_key(ZAPIER).await;
    let mut form = ZAPIER.to_vec();
    form[0] = ("name", "Zapier – invoices");
    let (_, zap2_secret) = owner.create_key(&form).await;
    let (_, other_secret) = app.key(&["orders:read"]).await;
    add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut staff = Web::logged_in(&app, "staff@fixit.example").await;
    form[0] = ("name", "Zapier – front desk");
    let (staffs, staffs_secret) = staff.create_key(&form).await;

    // One action per template in use.
    let list = owner.get("/settings/api-keys").await;
    assert!(list.text.contains("Pause all Zapier keys"), "{}", list.text);
    assert!(!list.text.contains("Pause all Pax8 keys"));
    assert!(!list.text.contains("Resume all Zapier keys"));

    // Staff pause only the keys they created.
    let r = staff
        .post(
            "/settings/api-keys",
            "/settings/api-keys/pause",
            &[("template", "zapier"), ("reason", "Front desk tablet lost")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/me", &staffs_secret).await.code(),
        "key_paused"
    );
    assert_eq!(app.get("/api/v1/me", &zap1_secret).await.status, 200);

    let r = owner
        .post(
            "/settings/api-keys",
            "/settings/api-keys/pause",
            &[
                ("template", "zapier"),
                ("reason", "Zapier security incident"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let to = r.header("location").unwrap().to_owned();
    assert!(to.starts_with("/settings/api-keys?done=paused"), "{to}");
    let page = owner.get(&to).await;
    assert!(
        page.text.contains("Paused 2 keys") && page.text.contains("1 key left as they were"),
        "the staff member's key was paused already: {}",
        page.text
    );
    assert!(page.text.contains("Resume all Zapier keys"));
    assert!(page.text.contains("status-paused"));
    for secret in [&zap1_secret, &zap2_secret] {
        let r = app.get("/api/v1/me", secret).await;
        assert_eq!(r.code(), "key_paused");
        assert_eq!(r.body["reason"], "Zapier security incident");
    }
    assert_eq!(app.get("/api/v1/me", &other_secret).await.status, 200);
    let details = owner.get(&format!("/settings/api-keys/{zap1}")).await;
    assert!(
        details.text.contains("Zapier security incident") && details.text.contains("Paused"),
        "the key page says why: {}",
        details.text
    );

    // A bad template changes nothing.
    let r = owner
        .post(
            "/settings/api-keys",
            "/settings/api-keys/resume",
            &[("template", "nope")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/me", &zap1_secret).await.code(),
        "key_paused"
    );

    let r = owner
        .post(
            "/settings/api-keys",
            "/settings/api-keys/resume",
            &[("template", "zapier")],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = owner.get(r.header("location").unwrap()).await;
    assert!(page.text.contains("Resumed 3 keys"), "{}", page.text);
    for secret in [&zap1_secret, &zap2_secret, &staffs_secret] {
        assert_eq!(app.get("/api/v1/me", secret).await.status, 200);
    }
    let trail = owner.get(&format!("/settings/api-keys/{staffs}")).await;
    assert!(trail.text.contains("Resumed") && trail.text.contains("Front desk tablet lost"));
}

#[tokio::test]
async fn a_key_reported_found_in_public_gets_a_banner_on_the_keys_page_and_a_warning_on_its_page() {
    let app = TestApp::new().await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let (id, secret) = owner.create_key(ZAPIER).await;
    let outcome = app
        .core
        .keys
        .report_leaked(
            &secret,
            "https://github.com/someone/repo/blob/abc123/zapier.env",
            "content",
            true,
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        latchkey::service::keys::LeakOutcome::Recorded(_)
    ));
    let list = owner.get("/settings/api-keys").await;
    assert!(
        list.text.contains("was found in public at https://github.com/someone/repo/blob/abc123/zapier.env (content) and was revoked"),
        "{}",
        list.text
    );
    let page = owner.get(&format!("/settings/api-keys/{id}")).await;
    assert!(
        page.text.contains("This key was found in public"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("Reported found in public")
            && page.text.contains("Secret scanning report")
    );
    assert_eq!(app.get("/api/v1/me", &secret).await.code(), "revoked_key");
}

#[tokio::test]
async fn a_keys_suggestions_are_shown_on_its_page_applied_in_one_click_and_filterable() {
    let app = TestApp::new().await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let (zap, zap_secret) = owner.create_key(ZAPIER).await;
    let (tidy, tidy_secret) = app
        .key_with(
            &app.shop_id.clone(),
            latchkey::service::keys::NewKeyInput {
                name: Some("Tidy order reader".into()),
                permissions: Some(vec!["orders:read".into()]),
                allowed_ips: Some(Some(vec![app.peer.ip().to_string()])),
                expires_at: Some(Some("2027-01-31T00:00:00Z".into())),
                ..Default::default()
            },
        )
        .await;
    for secret in [&zap_secret, &tidy_secret] {
        assert_eq!(app.get("/api/v1/orders", secret).await.status, 200);
    }
    app.core.usage.flush(app.store.as_ref()).await.unwrap();

    let page = owner.get(&format!("/settings/api-keys/{zap}")).await;
    assert!(page.text.contains("id=\"suggestions\""), "{}", page.text);
    assert!(
        page.text.contains("Remove these permissions")
            && page.text.contains("Allow only these addresses")
    );
    let tidy_page = owner.get(&format!("/settings/api-keys/{tidy}")).await;
    assert!(!tidy_page.text.contains("id=\"suggestions\""));

    let filtered = owner.get("/settings/api-keys?suggestions=yes").await;
    assert!(
        filtered.text.contains(&zap) && !filtered.text.contains(&tidy),
        "{}",
        filtered.text
    );
    assert!(owner.get("/settings/api-keys").await.text.contains(&tidy));

    let r = owner
        .post(
            &format!("/settings/api-keys/{zap}"),
            &format!("/settings/api-keys/{zap}/apply"),
            &[("kind", "unused_permissions")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let key = app
        .store
        .get_key(&app.shop_id, &zap)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.permissions.to_names(), ["orders:read"]);
    let r = owner
        .post(
            &format!("/settings/api-keys/{zap}"),
            &format!("/settings/api-keys/{zap}/apply"),
            &[("kind", "restrict_ips")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let key = app
        .store
        .get_key(&app.shop_id, &zap)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.allowed_ips.to_strings(), [app.peer.ip().to_string()]);
    assert_eq!(app.get("/api/v1/orders", &zap_secret).await.status, 200);
    assert_eq!(
        app.get("/api/v1/clients", &zap_secret).await.code(),
        "insufficient_permission"
    );
    // Nothing left to apply of that kind: refused, nothing changed.
    let r = owner
        .post(
            &format!("/settings/api-keys/{zap}"),
            &format!("/settings/api-keys/{zap}/apply"),
            &[("kind", "unused_permissions")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let trail = owner.get(&format!("/settings/api-keys/{zap}")).await;
    assert!(trail.text.contains("Suggestion applied") || trail.text.contains("Changed"));
}

#[tokio::test]
async fn a_user_of_another_shop_gets_404_for_this_shops_key() {
    let app = TestApp::new().await;
    let (key_id, secret) = app.key(&["orders:read"]).await;
    let other_shop = app.new_shop("Other Repairs", "owner@other.example").await;
    assert_ne!(other_shop, app.shop_id);
    let mut web = Web::logged_in(&app, "owner@other.example").await;
    let page = web.get(&format!("/settings/api-keys/{key_id}")).await;
    assert_eq!(page.status, 404);
    assert!(!page.text.contains("Test harness"));
    let list = web.get("/settings/api-keys").await;
    assert!(!list.text.contains(&key_id));
    let token = csrf(&list.text);
    for action in ["revoke", "delete", "clone"] {
        let r = web
            .post_raw(
                &format!("/settings/api-keys/{key_id}/{action}"),
                &[("csrf", &token), ("confirm", "yes")],
            )
            .await;
        assert_eq!(r.status, 404, "{action}");
    }
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    // Nor another shop's users.
    let staff = add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let r = web
        .post_raw(
            &format!("/settings/users/{staff}/remove"),
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(app.store.get_user(&staff).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------
// Key details and actions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn revoking_asks_first_then_stops_the_key_at_once() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, secret) = web.create_key(ZAPIER).await;
    let details = web.get(&format!("/settings/api-keys/{id}")).await;
    assert!(details.text.contains("data-confirm=\"Revoke"));
    let ask = web
        .post_raw(
            &format!("/settings/api-keys/{id}/revoke"),
            &[("csrf", &csrf(&details.text))],
        )
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.text.contains("Revoke “Zapier – new orders”?"));
    assert!(ask.text.contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200, "not yet");

    let done = web
        .post_raw(
            &format!("/settings/api-keys/{id}/revoke"),
            &[("csrf", &csrf(&ask.text)), ("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, 303);
    let me = app.get("/api/v1/me", &secret).await;
    assert_eq!((me.status.as_u16(), me.code()), (401, "revoked_key"));
    let after = web.get(done.header("location").unwrap()).await;
    assert!(after.text.contains("The key is revoked"));
    assert!(after.text.contains("badge status-revoked"));
    assert!(!after.text.contains("id=\"revoke\""), "no second revoke");
    assert!(after.text.contains("Revoked</td>"), "in the history");
}

#[tokio::test]
async fn a_key_name_with_markup_is_escaped_on_the_revoke_and_delete_confirmations() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, _) = app
        .key_with(
            &app.shop_id,
            latchkey::service::keys::NewKeyInput {
                name: Some("<script>\"'&".into()),
                permissions: Some(vec!["orders:read".into()]),
                ..Default::default()
            },
        )
        .await;
    let details = web.get(&format!("/settings/api-keys/{id}")).await;
    for action in ["revoke", "delete"] {
        let ask = web
            .post_raw(
                &format!("/settings/api-keys/{id}/{action}"),
                &[("csrf", &csrf(&details.text))],
            )
            .await;
        assert_eq!(ask.status, 200, "{action}");
        assert!(!ask.text.contains("<script>\""), "{action}: never raw");
        assert!(
            ask.text.contains("“&lt;script&gt;&quot;&#39;&amp;”?")
                || ask.text.contains("“&#60;script&#62;&#34;&#39;&#38;”?"),
            "{action}: {}",
            ask.text
        );
    }
}

#[tokio::test]
async fn editing_changes_name_ips_expiry_and_limit_and_records_each_change() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, secret) = web.create_key(ZAPIER).await;
    let path = format!("/settings/api-keys/{id}");
    let bad = web
        .post(
            &path,
            &path,
            &[
                ("name", "Zapier – orders"),
                ("allowed_ips", "198.51.100.0/24\nbogus"),
                ("expires_on", "2027-03-01"),
                ("rate_limit", "20000"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("Line 2:") && bad.text.contains("between 1 and 10000"));
    assert!(bad.text.contains("value=\"Zapier – orders\""), "input kept");
    assert!(bad.text.contains("Nothing was changed"));

    let ok = web
        .post(
            &path,
            &path,
            &[
                ("name", "Zapier – orders"),
                ("allowed_ips", "198.51.100.0/24\n"),
                ("expires_on", "2027-03-01"),
                ("rate_limit", "30"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    let key = app.store.get_key(&app.shop_id, &id).await.unwrap().unwrap();
    assert_eq!(key.name.as_str(), "Zapier – orders");
    assert_eq!(key.allowed_ips.to_strings(), ["198.51.100.0/24"]);
    assert_eq!(
        key.expires_at.unwrap().to_rfc3339(),
        "2027-03-01T00:00:00.000000Z"
    );
    assert_eq!(key.rate_limit_per_minute, 30);
    // The in-process client comes from 203.0.113.10: now refused.
    assert_eq!(
        app.get("/api/v1/me", &secret).await.code(),
        "ip_not_allowed"
    );
    let page = web.get(ok.header("location").unwrap()).await;
    assert!(page.text.contains("Changes saved"));
    assert!(
        page.text.contains("rate limit per minute: 100 → 30"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("name: Zapier – new orders → Zapier – orders")
    );

    // Never expires clears it; an unchanged form changes nothing.
    web.post(
        &path,
        &path,
        &[
            ("name", "Zapier – orders"),
            ("allowed_ips", ""),
            ("no_expiry", "yes"),
            ("rate_limit", "30"),
        ],
    )
    .await;
    let key = app.store.get_key(&app.shop_id, &id).await.unwrap().unwrap();
    assert!(key.expires_at.is_none() && key.allowed_ips.is_empty());
    let events_before = web.get(&path).await.text.matches("Changed</td>").count();
    web.post(
        &path,
        &path,
        &[
            ("name", "Zapier – orders"),
            ("allowed_ips", ""),
            ("rate_limit", "30"),
        ],
    )
    .await;
    assert_eq!(
        web.get(&path).await.text.matches("Changed</td>").count(),
        events_before
    );
}

#[tokio::test]
async fn cloning_shows_the_new_secret_once_and_deleting_asks_first() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, secret) = web.create_key(ZAPIER).await;
    let path = format!("/settings/api-keys/{id}");
    let copy = web
        .post(
            &path,
            &format!("{path}/clone"),
            &[("name", "Zapier – second account")],
        )
        .await;
    assert_eq!(copy.status, 201);
    assert_eq!(copy.header("cache-control"), Some("no-store"));
    assert!(copy.text.contains("Copy of “Zapier – new orders” created"));
    let copy_secret = secret_in(&copy.text);
    assert_ne!(copy_secret, secret);
    let me = app.get("/api/v1/me", &copy_secret).await;
    assert_eq!(me.body["key"]["name"], "Zapier – second account");

    let ask = web.post(&path, &format!("{path}/delete"), &[]).await;
    assert_eq!(ask.status, 200);
    assert!(ask.text.contains("Delete “Zapier – new orders”?"));
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    let done = web
        .post(&path, &format!("{path}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.header("location"),
        Some("/settings/api-keys?done=deleted")
    );
    assert_eq!(app.get("/api/v1/me", &secret).await.code(), "invalid_key");
    assert_eq!(web.get(&path).await.status, 404);
    assert!(
        web.get("/settings/api-keys?done=deleted")
            .await
            .text
            .contains("The key is deleted")
    );
}

#[tokio::test]
async fn the_details_page_shows_every_setting_and_the_slots_for_usage_and_rotation() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let mut form = ZAPIER.to_vec();
    form.push(("allowed_ips", "203.0.113.0/24"));
    form.push(("expires_on", "2027-06-30"));
    let (id, _) = web.create_key(&form).await;
    let page = web.get(&format!("/settings/api-keys/{id}")).await;
    for text in [
        "Zapier – new orders",
        &id,
        "orders:write",
        "203.0.113.0/24",
        "100 requests per minute",
        "2027-06-30 00:00 UTC",
        "Template</dt><dd>Zapier",
        "id=\"usage\"",
        "Requests, last 24 h",
        "id=\"actions\"",
        "id=\"audit-trail\"",
        "Created</td>",
    ] {
        assert!(page.text.contains(text), "{text}");
    }
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_owner_adds_a_user_who_must_replace_the_one_time_password() {
    let app = TestApp::new().await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let bad = owner
        .post(
            "/settings/users",
            "/settings/users",
            &[("email", "not an email"), ("role", "owner")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("id=\"email-error\"") && bad.text.contains("id=\"role-error\""));
    let taken = owner
        .post(
            "/settings/users",
            "/settings/users",
            &[("email", OWNER), ("role", "staff")],
        )
        .await;
    assert_eq!(taken.status, 422);
    assert!(taken.text.contains("cannot be used for a new user"));

    let added = owner
        .post(
            "/settings/users",
            "/settings/users",
            &[("email", "sam@fixit.example"), ("role", "staff")],
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.header("cache-control"), Some("no-store"));
    assert!(added.text.contains("You will not see this password again"));
    let one_time = secret_in(&added.text);
    assert!(one_time.len() >= 20);

    let mut sam = Web::new(&app);
    let r = sam.login("sam@fixit.example", &one_time).await;
    assert_eq!(r.status, 303);
    // Every page leads to choosing a password first.
    let keys = sam.get("/settings/api-keys").await;
    assert_eq!(keys.header("location"), Some("/settings/password"));
    let form = sam.get("/settings/password").await;
    assert!(form.text.contains("Choose your password"));
    let mismatch = sam
        .post(
            "/settings/password",
            "/settings/password",
            &[
                ("password", "sam's own long password"),
                ("password_confirm", "other"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 422);
    let done = sam
        .post(
            "/settings/password",
            "/settings/password",
            &[
                ("password", "sam's own long password"),
                ("password_confirm", "sam's own long password"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(sam.get("/settings/api-keys").await.status, 200);
    assert_eq!(
        Web::new(&app)
            .login("sam@fixit.example", &one_time)
            .await
            .status,
        401
    );
    assert_eq!(
        Web::new(&app)
            .login("sam@fixit.example", "sam's own long password")
            .await
            .status,
        303
    );
}

/// Issue 12 item 10: login is by email alone, so an address is one user's;
/// an owner adding an address already used in another shop learns no more
/// than "cannot be used" (the same answer as for one of their own users),
/// and after five such refusals in an hour every add waits, so addresses
/// cannot be tried in bulk.
#[tokio::test]
async fn adding_an_email_of_another_shop_reveals_nothing_and_is_throttled() {
    let app = TestApp::new().await;
    let other = app.new_shop("Rival Repairs", "boss@rival.example").await;
    add_user(&app, &other, "tech@rival.example", Role::Staff).await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let add = |email: &'static str| [("email", email), ("role", "staff")];

    let own = owner
        .post("/settings/users", "/settings/users", &add(OWNER))
        .await;
    let foreign = owner
        .post(
            "/settings/users",
            "/settings/users",
            &add("tech@rival.example"),
        )
        .await;
    assert_eq!((own.status.as_u16(), foreign.status.as_u16()), (422, 422));
    let message = |html: &str| between(html, "id=\"email-error\"", "</").map(str::to_owned);
    assert_eq!(
        message(&own.text),
        message(&foreign.text),
        "the same answer either way"
    );
    assert!(foreign.text.contains("cannot be used for a new user"));
    for word in ["Rival", "another shop", "already exists"] {
        assert!(!foreign.text.contains(word), "{word} in {}", foreign.text);
    }
    // Nothing was added to either shop.
    assert_eq!(app.store.list_users(&other).await.unwrap().len(), 2);

    for email in ["boss@rival.example", OWNER, "tech@rival.example"] {
        let r = owner
            .post("/settings/users", "/settings/users", &add(email))
            .await;
        assert_eq!(r.status, 422);
    }
    // Five refusals within the hour: now even a free address waits.
    let waits = owner
        .post(
            "/settings/users",
            "/settings/users",
            &add("new@fixit.example"),
        )
        .await;
    assert_eq!(waits.status, 422);
    assert!(waits.text.contains("try again after"), "{}", waits.text);
    assert!(
        app.store
            .find_user_by_email(&Email::parse("new@fixit.example").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    app.clock.advance_seconds(3601);
    let mut owner = Web::logged_in(&app, OWNER).await;
    let added = owner
        .post(
            "/settings/users",
            "/settings/users",
            &add("new@fixit.example"),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
}

#[tokio::test]
async fn a_one_time_password_expires_after_a_week() {
    let app = TestApp::new().await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let added = owner
        .post(
            "/settings/users",
            "/settings/users",
            &[("email", "sam@fixit.example"), ("role", "admin")],
        )
        .await;
    let one_time = secret_in(&added.text);
    app.clock.advance_seconds(7 * 24 * 3600 + 1);
    let r = Web::new(&app).login("sam@fixit.example", &one_time).await;
    assert_eq!(r.status, 401);
    assert!(r.text.contains("one-time password has expired"));
}

#[tokio::test]
async fn only_the_owner_manages_users_and_roles_apply_at_once() {
    let app = TestApp::new().await;
    let admin = add_user(
        &app,
        &app.shop_id.clone(),
        "admin@fixit.example",
        Role::Admin,
    )
    .await;
    let mut admin_web = Web::logged_in(&app, "admin@fixit.example").await;
    assert_eq!(admin_web.get("/settings/users").await.status, 403);
    let token = csrf(&admin_web.get("/settings/api-keys").await.text);
    let r = admin_web
        .post_raw(
            "/settings/users",
            &[
                ("csrf", &token),
                ("email", "x@fixit.example"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(admin_web.get("/settings/audit-log").await.status == 200);

    let mut owner = Web::logged_in(&app, OWNER).await;
    let r = owner
        .post(
            "/settings/users",
            &format!("/settings/users/{admin}/role"),
            &[("role", "staff")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        admin_web.get("/settings/audit-log").await.status,
        403,
        "now staff"
    );
    // The owner's own role cannot be changed.
    let owner_id = owner_id(&app).await;
    let r = owner
        .post(
            "/settings/users",
            &format!("/settings/users/{owner_id}/role"),
            &[("role", "staff")],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn removing_a_user_offers_to_revoke_the_keys_they_created() {
    let app = TestApp::new().await;
    let staff = add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut staff_web = Web::logged_in(&app, "staff@fixit.example").await;
    let (kept_id, kept) = staff_web.create_key(ZAPIER).await;
    let mut form = ZAPIER.to_vec();
    form[0] = ("name", "Front desk tablet");
    let (_, revoked) = staff_web.create_key(&form).await;
    // Revoke one of them first: it is not offered again.
    let mut owner = Web::logged_in(&app, OWNER).await;

    let ask = owner
        .post(
            "/settings/users",
            &format!("/settings/users/{staff}/remove"),
            &[],
        )
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.text.contains("They created 2 keys that still work"));
    assert!(ask.text.contains("Front desk tablet") && ask.text.contains(&kept_id));
    assert!(
        ask.text
            .contains("name=\"revoke_keys\" value=\"yes\" checked")
    );

    let done = owner
        .post(
            "/settings/users",
            &format!("/settings/users/{staff}/remove"),
            &[("confirm", "yes"), ("revoke_keys", "yes")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(app.store.get_user(&staff).await.unwrap().is_none());
    assert_eq!(
        staff_web.get("/settings/api-keys").await.status,
        303,
        "logged out"
    );
    for secret in [&kept, &revoked] {
        assert_eq!(app.get("/api/v1/me", secret).await.code(), "revoked_key");
    }
    let list = owner.get("/settings/api-keys").await;
    assert!(list.text.contains(&format!("Removed user ({staff})")));
    let log = owner.get("/settings/audit-log").await;
    assert!(log.text.contains("User removed"));
}

#[tokio::test]
async fn a_removed_users_keys_can_be_kept() {
    let app = TestApp::new().await;
    let staff = add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut staff_web = Web::logged_in(&app, "staff@fixit.example").await;
    let (_, secret) = staff_web.create_key(ZAPIER).await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let done = owner
        .post(
            "/settings/users",
            &format!("/settings/users/{staff}/remove"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
}

#[tokio::test]
async fn the_owner_can_issue_a_new_one_time_password() {
    let app = TestApp::new().await;
    let staff = add_user(
        &app,
        &app.shop_id.clone(),
        "staff@fixit.example",
        Role::Staff,
    )
    .await;
    let mut staff_web = Web::logged_in(&app, "staff@fixit.example").await;
    let mut owner = Web::logged_in(&app, OWNER).await;
    let r = owner
        .post(
            "/settings/users",
            &format!("/settings/users/{staff}/password"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let one_time = secret_in(&r.text);
    assert_eq!(
        staff_web.get("/settings/api-keys").await.status,
        303,
        "logged out"
    );
    assert_eq!(
        Web::new(&app)
            .login("staff@fixit.example", PASSWORD)
            .await
            .status,
        401
    );
    let mut again = Web::new(&app);
    again.login("staff@fixit.example", &one_time).await;
    assert_eq!(
        again.get("/settings/api-keys").await.header("location"),
        Some("/settings/password")
    );
}

#[tokio::test]
async fn changing_ones_own_password_needs_the_current_one() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let mut other = Web::logged_in(&app, OWNER).await;
    let wrong = web
        .post(
            "/settings/password",
            "/settings/password",
            &[
                ("current_password", "nope"),
                ("password", "a brand new passphrase"),
                ("password_confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.text.contains("id=\"current_password-error\""));
    let ok = web
        .post(
            "/settings/password",
            "/settings/password",
            &[
                ("current_password", PASSWORD),
                ("password", "a brand new passphrase"),
                ("password_confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(
        web.get("/settings/api-keys").await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        other.get("/settings/api-keys").await.status,
        303,
        "others end"
    );
}

// ---------------------------------------------------------------------------
// Audit log, test data, setup
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_lists_who_did_what_newest_first() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, _) = web.create_key(ZAPIER).await;
    web.post(
        &format!("/settings/api-keys/{id}"),
        &format!("/settings/api-keys/{id}/revoke"),
        &[("confirm", "yes")],
    )
    .await;
    let log = web.get("/settings/audit-log").await;
    assert_eq!(log.status, 200);
    let revoked = log.text.find("Revoked</td>").unwrap();
    let created = log.text.find("Created</td>").unwrap();
    assert!(revoked < created, "newest first");
    assert!(log.text.contains(&format!(
        "href=\"/settings/api-keys/{id}\">Zapier – new orders"
    )));
    assert!(log.text.contains("Logged in"));
    assert!(log.text.contains(OWNER));
    assert!(log.text.contains("203.0.113.10"));
}

#[tokio::test]
async fn test_data_is_reset_after_a_confirmation() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let page = web.get("/settings/test-data").await;
    assert!(page.text.contains("Empty. Reset it"));
    let ask = web
        .post("/settings/test-data", "/settings/test-data/reset", &[])
        .await;
    assert_eq!(ask.status, 200);
    assert!(ask.text.contains("Reset the test data?"));
    assert!(web.get("/settings/test-data").await.text.contains("Empty."));
    let done = web
        .post(
            "/settings/test-data",
            "/settings/test-data/reset",
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, 303);
    let after = web.get("/settings/test-data?done=reset").await;
    assert!(after.text.contains("Test data is reset"));
    assert!(!after.text.contains("Empty."));
    let (_, test_key) = app
        .key_in(&app.shop_id.clone(), "test", &["clients:read"])
        .await;
    let clients = app.get("/api/v1/clients", &test_key).await;
    assert!(clients.body["meta"]["total_entries"].as_u64().unwrap() > 0);
    let (_, live_key) = app.key(&["clients:read"]).await;
    let live = app.get("/api/v1/clients", &live_key).await;
    assert_eq!(live.body["meta"]["total_entries"], 0, "live data untouched");
}

#[tokio::test]
async fn the_setup_link_works_once_and_leads_to_the_login() {
    let app = TestApp::builder().empty().build().await;
    let link = app.core.shops.setup_link().await.unwrap();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let mut web = Web::new(&app);
    let form = [
        ("token", token.as_str()),
        ("shop_name", "Fix-It Phones"),
        ("email", OWNER),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ];
    let r = web.post_raw("/setup", &form).await;
    assert_eq!(r.status, 201);
    assert!(
        r.text
            .contains("href=\"/login?next=%2Fsettings%2Fapi-keys%2Fnew\"")
    );
    assert_eq!(web.post_raw("/setup", &form).await.status, 403, "once");
    let r = web.login(OWNER, PASSWORD).await;
    assert_eq!(r.status, 303);
    let page = web.get("/settings/api-keys").await;
    assert!(page.text.contains("Fix-It Phones"));
}

#[tokio::test]
async fn legacy_keys_show_their_badge_and_the_cut_off_countdown() {
    use latchkey::domain::key::{KeyKind, KeyName, KeyRecord};
    use latchkey::domain::permission::PermissionSet;
    use latchkey::domain::token::Environment;
    let app = TestApp::new().await;
    let now = app.clock.now_ts();
    let legacy = KeyRecord {
        id: new_id("key"),
        shop_id: app.shop_id.clone(),
        name: KeyName::parse("Old booking widget").unwrap(),
        environment: Environment::Live,
        kind: KeyKind::Legacy,
        display: "…a1b2".into(),
        hash: app.core.hasher.hash("legacy-key-0123456789-a1b2"),
        permissions: PermissionSet::legacy_default(),
        allowed_ips: Default::default(),
        rate_limit_per_minute: 100,
        expires_at: None,
        revoked_at: None,
        retired_at: None,
        template: None,
        created_at: now,
        updated_at: now,
        created_by: Actor::Cli,
        sent_in_url_at: None,
        paused: None,
        leaked: None,
    };
    let audit = AuditEvent {
        id: new_id("evt"),
        shop_id: app.shop_id.clone(),
        at: now,
        actor: Actor::Cli,
        action: "key.imported".into(),
        key_id: Some(legacy.id.clone()),
        environment: Some(Environment::Live),
        ip: None,
        details: serde_json::json!({}),
    };
    app.store.insert_key(&legacy, 1000, &audit).await.unwrap();
    let mut web = Web::logged_in(&app, OWNER).await;
    let list = web.get("/settings/api-keys").await;
    assert!(list.text.contains("badge legacy"));
    assert!(
        list.text
            .contains("1 legacy key stops working on 2026-12-01"),
        "{}",
        list.text
    );
    assert!(
        list.text
            .contains("href=\"/settings/api-keys/docs#legacy-keys\"")
    );
}

#[tokio::test]
async fn the_keys_page_warns_in_red_near_the_legacy_cut_off_and_says_when_it_has_passed() {
    use latchkey::domain::clock::Timestamp;
    let app = TestApp::new().await;
    // T0 is eight days before the default cut-off (2026-12-01).
    app.core
        .keys
        .import_legacy(
            &app.shop_id,
            "key,name\nlegacyWidgetKey0123456789,Old booking widget\n",
            false,
        )
        .await
        .unwrap();
    let mut web = Web::logged_in(&app, OWNER).await;
    let near = web.get("/settings/api-keys").await;
    let banner = |page: &str, needle: &str| {
        page.split("<div class=\"alert ")
            .find(|b| b.contains(needle))
            .map(|b| b.split('"').next().unwrap_or("").to_owned())
    };
    assert_eq!(
        banner(&near.text, "1 legacy key stops working").as_deref(),
        Some("bad"),
        "{}",
        near.text
    );
    assert!(!near.text.contains("cut-off passed"));

    app.clock
        .set(Timestamp::parse_rfc3339("2026-12-01T00:00:01Z").unwrap());
    // A week on, the session has ended: log in again.
    let mut web = Web::logged_in(&app, OWNER).await;
    let passed = web.get("/settings/api-keys").await;
    assert_eq!(
        banner(
            &passed.text,
            "The legacy cut-off passed on 2026-12-01: 1 legacy key is refused with legacy_key_retired"
        )
        .as_deref(),
        Some("bad"),
        "{}",
        passed.text
    );
    assert!(!passed.text.contains("stops working on"));

    // A cut-off months away is a plain (amber) countdown.
    let far = TestApp::builder()
        .policy(|p| p.legacy_sunset = Timestamp::parse_rfc3339("2027-06-30T00:00:00Z").unwrap())
        .build()
        .await;
    far.core
        .keys
        .import_legacy(
            &far.shop_id,
            "key,name\nlegacyWidgetKey0123456789,Old booking widget\n",
            false,
        )
        .await
        .unwrap();
    let mut web = Web::logged_in(&far, OWNER).await;
    let calm = web.get("/settings/api-keys").await;
    assert_eq!(
        banner(&calm.text, "1 legacy key stops working on 2027-06-30").as_deref(),
        Some("warn"),
        "{}",
        calm.text
    );

    // Without legacy keys there is nothing to say, cut-off or not.
    let none = TestApp::new().await;
    none.clock
        .set(Timestamp::parse_rfc3339("2026-12-02T00:00:00Z").unwrap());
    let mut web = Web::logged_in(&none, OWNER).await;
    let page = web.get("/settings/api-keys").await;
    assert!(
        !page.text.contains("cut-off") && !page.text.contains("legacy key"),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn the_docs_page_points_at_the_repositorys_reference_and_keeps_every_error_anchor() {
    let app = TestApp::new().await;
    let page = app.call("GET", "/settings/api-keys/docs", None, None).await;
    assert_eq!(page.status, 200);
    // The problem documents' `type` links land on these anchors.
    for (code, _, _) in latchkey::http::web::docs::ERROR_CODES {
        assert!(
            page.text.contains(&format!("id=\"error-{code}\"")),
            "no #error-{code}"
        );
    }
    // The repository's reference, named by path (the server does not serve
    // the repository's files), and each named file exists.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in [
        "docs/KEYS.md",
        "docs/ERRORS.md",
        "docs/RATE-LIMITS.md",
        "docs/LEGACY.md",
        "docs/CLI.md",
        "docs/CONFIGURATION.md",
    ] {
        assert!(
            page.text.contains(&format!("<code>{doc}</code>")),
            "the docs page does not name {doc}"
        );
        assert!(root.join(doc).exists(), "{doc} is missing");
    }
}

// ---------------------------------------------------------------------------
// Usage on the pages
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_used_key_shows_its_usage_chart_endpoints_and_clients_and_a_revoked_key_still_tried_is_flagged()
 {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, secret) = app.key(&["orders:read"]).await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    }
    assert_eq!(app.get("/api/v1/orders/nope", &secret).await.status, 404);
    app.core.usage.flush(app.store.as_ref()).await.unwrap();

    let page = web.get(&format!("/settings/api-keys/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("<svg class=\"chart\""),
        "server-drawn SVG chart"
    );
    assert!(
        page.text.contains("GET /api/v1/orders/{id}"),
        "endpoint table with route templates"
    );
    assert!(page.text.contains("25.0 %"), "error rate: 1 of 4");
    assert!(
        page.text.contains(&app.peer.ip().to_string()),
        "who uses it"
    );
    let list = web.get("/settings/api-keys").await;
    assert!(!list.text.contains(">Never<") || list.text.matches(">Never<").count() < 2);

    // Revoked, then still tried: the list warns.
    let (_, admin) = app.key(&["keys:write", "orders:read"]).await;
    let r = app
        .post(
            &format!("/api/v1/keys/{id}/revoke"),
            &admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    app.clock.advance_seconds(5);
    assert_eq!(app.get("/api/v1/me", &secret).await.code(), "revoked_key");
    app.core.usage.flush(app.store.as_ref()).await.unwrap();
    let list = web.get("/settings/api-keys").await;
    assert!(
        list.text.contains("still trying to use it"),
        "{}",
        list.text
    );
}

#[tokio::test]
async fn rolling_a_key_in_the_ui_shows_the_new_secret_once_and_the_old_key_keeps_its_grace() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let (id, old_secret) = web.create_key(ZAPIER).await;
    let page = format!("/settings/api-keys/{id}");
    let r = web
        .post(
            &page,
            &format!("{page}/roll"),
            &[("expire_old_in_seconds", "3600")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_secret = secret_in(&r.text);
    assert_ne!(new_secret, old_secret);
    assert_eq!(app.get("/api/v1/me", &new_secret).await.status, 200);
    assert_eq!(
        app.get("/api/v1/me", &old_secret).await.status,
        200,
        "grace period"
    );
    app.clock.advance_seconds(3601);
    assert_eq!(
        app.get("/api/v1/me", &old_secret).await.code(),
        "expired_key"
    );
    let details = web.get(&page).await;
    assert!(
        !details.text.contains(&new_secret),
        "the secret is never shown again"
    );
}

#[tokio::test]
async fn upgrading_a_legacy_key_in_the_ui_gives_a_new_key_and_can_retire_the_old_one() {
    let app = TestApp::new().await;
    let mut web = Web::logged_in(&app, OWNER).await;
    let legacy = "legacy-website-key-0123456789";
    let csv = format!("key,name,permissions\n{legacy},Old website,orders:write clients:write\n");
    let report = app
        .core
        .keys
        .import_legacy(&app.shop_id, &csv, false)
        .await
        .unwrap_or_else(|_| panic!("the import succeeds"));
    let id = report.keys[0].id.clone();
    assert_eq!(app.get("/api/v1/me", legacy).await.status, 200);
    let page = format!("/settings/api-keys/{id}");
    let r = web
        .post(
            &page,
            &format!("{page}/upgrade"),
            &[("retire_legacy", "on")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = secret_in(&r.text);
    assert!(secret.starts_with("lk_live_"));
    assert_eq!(app.get("/api/v1/me", &secret).await.status, 200);
    assert_eq!(
        app.get("/api/v1/me", legacy).await.code(),
        "legacy_key_retired"
    );
}

/// Reloading the secret page (the browser re-sends the POST), a double click
/// or "resend": the same create or clone form sent twice makes one key, and
/// the second answer leads to that key without its secret.
#[tokio::test]
async fn a_key_form_sent_twice_makes_one_key() {
    key_form_sent_twice_makes_one_key(TestApp::new().await).await;
}

/// The same with the form claims in Redis (shared by every instance).
#[tokio::test]
async fn a_key_form_sent_twice_makes_one_key_with_claims_in_redis() {
    let app = TestApp::builder()
        .redis(common::WhenUnavailable::Deny)
        .build()
        .await;
    key_form_sent_twice_makes_one_key(app).await;
}

async fn key_form_sent_twice_makes_one_key(app: TestApp) {
    let (_, reader) = app.key(&["keys:read"]).await;
    let count = || async {
        let r = app.get("/api/v1/keys?per_page=100", &reader).await;
        r.body["keys"].as_array().expect("keys").len()
    };
    let mut web = Web::logged_in(&app, OWNER).await;
    let before = count().await;

    let page = web.get("/settings/api-keys/new").await;
    let form_id = between(&page.text, "name=\"form_id\" value=\"", "\"")
        .expect("the form has a form id")
        .to_owned();
    let token = csrf(&page.text);
    let mut pairs = vec![("csrf", token.as_str()), ("form_id", form_id.as_str())];
    pairs.extend_from_slice(ZAPIER);
    let first = web.post_raw("/settings/api-keys", &pairs).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = key_id_in(&first.text);
    let secret = secret_in(&first.text);
    let again = web.post_raw("/settings/api-keys", &pairs).await;
    assert_eq!(again.status, 303, "{}", again.text);
    let to = format!("/settings/api-keys/{id}?done=already_created");
    assert_eq!(again.header("location"), Some(to.as_str()));
    assert_eq!(count().await, before + 1);
    let details = web.get(&to).await;
    assert!(details.text.contains("no second key was made"));
    assert!(!details.text.contains(&secret));
    // A new form (a new id) makes a new key.
    let (other, _) = web.create_key(ZAPIER).await;
    assert_ne!(other, id);
    assert_eq!(count().await, before + 2);

    // The clone form on the details page, likewise.
    let page = web.get(&format!("/settings/api-keys/{id}")).await;
    let clone_form = between(&page.text, "/clone\"", "</form>").expect("a clone form");
    let form_id = between(clone_form, "name=\"form_id\" value=\"", "\"")
        .expect("the clone form has a form id")
        .to_owned();
    let token = csrf(&page.text);
    let pairs = [
        ("csrf", token.as_str()),
        ("form_id", form_id.as_str()),
        ("name", "Zapier copy"),
    ];
    let path = format!("/settings/api-keys/{id}/clone");
    let first = web.post_raw(&path, &pairs).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let clone_id = key_id_in(&first.text);
    let again = web.post_raw(&path, &pairs).await;
    assert_eq!(again.status, 303);
    assert_eq!(
        again.header("location"),
        Some(format!("/settings/api-keys/{clone_id}?done=already_created").as_str())
    );
    assert_eq!(count().await, before + 3);
}

/// Expired sessions are refused at once and removed by the hourly upkeep, so
/// the sessions table does not grow with every login.
#[tokio::test]
async fn the_hourly_upkeep_removes_expired_sessions() {
    let app = TestApp::new().await;
    let mut first = Web::logged_in(&app, OWNER).await;
    assert_eq!(first.get("/settings/api-keys").await.status, 200);
    // Past the idle expiry: refused, but still stored until the upkeep runs.
    app.clock.advance_seconds(13 * 3600);
    assert_eq!(first.get("/settings/api-keys").await.status, 303);
    latchkey::auth::cache::housekeeping(app.store.as_ref(), app.clock.now_ts()).await;
    assert_eq!(
        app.store.prune_sessions(app.clock.now_ts()).await.unwrap(),
        0
    );

    // The control: a session that expires without the upkeep is still there
    // to be pruned (so the 0 above is the upkeep's doing).
    let mut second = Web::logged_in(&app, OWNER).await;
    assert_eq!(second.get("/settings/api-keys").await.status, 200);
    app.clock.advance_seconds(13 * 3600);
    assert_eq!(
        app.store.prune_sessions(app.clock.now_ts()).await.unwrap(),
        1
    );
    // A live session survives the upkeep.
    let mut third = Web::logged_in(&app, OWNER).await;
    latchkey::auth::cache::housekeeping(app.store.as_ref(), app.clock.now_ts()).await;
    assert_eq!(third.get("/settings/api-keys").await.status, 200);
}
