//! Every JSON body the API takes, through the real router on a real SQLite
//! database: whatever the bytes, the answer is never a 5xx, every refusal is
//! a problem+json with a code, and a refused update changes nothing.
#![no_main]

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use latchkey::auth::secret::{KeyHasher, ServerSecret};
use latchkey::domain::clock::{Clock, ManualClock, Timestamp};
use latchkey::domain::token::Environment;
use latchkey::domain::user::Password;
use latchkey::service::keys::{NewKeyInput, Principal};
use latchkey::service::shops::NewShopInput;
use latchkey::store::sqlite::SqliteStore;
use latchkey::{AppState, Core, Policy, build_router};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    clock: Arc<ManualClock>,
    key: String,
    client: String,
    order: String,
    device: String,
    target_key: String,
    _dir: tempfile::TempDir,
}

async fn call(
    router: &axum::Router,
    key: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
    ct: &str,
) -> (StatusCode, String, Vec<u8>) {
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", ct)
        .body(Body::from(body))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, ct, bytes)
}

fn id_of(bytes: &[u8]) -> String {
    // Every answer is an envelope: `{"client": {...}}`, `{"key": {...}}`.
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let object = v.as_object().unwrap().values().next().unwrap();
    object["id"].as_str().unwrap().to_owned()
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-06-01T09:00:00Z").unwrap(),
    ));
    let (router, key) = rt.block_on(async {
        let store = Arc::new(
            SqliteStore::open_path(&dir.path().join("latchkey.db"))
                .await
                .unwrap(),
        );
        let secret = ServerSecret::new(b"fuzz-secret-fuzz-secret-fuzz-secret!".to_vec()).unwrap();
        let core = Arc::new(Core::new(
            store,
            clock.clone(),
            KeyHasher::new(&secret),
            Policy::default(),
        ));
        let shop = core
            .shops
            .create(NewShopInput {
                name: "Fuzz Repairs",
                owner_email: "owner@fuzz.example",
                password: Password::parse("correct horse battery".into()),
            })
            .await
            .unwrap();
        let input: NewKeyInput = serde_json::from_value(json!({
            "name": "fuzz", "permissions": ["orders:read", "orders:write", "orders:delete",
            "clients:read", "clients:write", "clients:delete", "devices:read", "devices:write",
            "devices:delete", "keys:read", "keys:write"], "rate_limit_per_minute": 10000
        }))
        .unwrap();
        let new = input.validate(clock.now(), Environment::Live, 100).unwrap();
        let created = core
            .keys
            .create_key(&Principal::cli(&shop.shop.id), new)
            .await
            .unwrap();
        let router = build_router(AppState::new(core)).layer(MockConnectInfo(
            "203.0.113.10:40000"
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        ));
        (router, created.secret.expose().to_owned())
    });
    let (client, order, device, target_key) = rt.block_on(async {
        let j = "application/json";
        let c = call(
            &router,
            &key,
            "POST",
            "/api/v1/clients",
            br#"{"first_name":"Sam","last_name":"Patel","email":"sam@example.com"}"#.to_vec(),
            j,
        )
        .await;
        assert_eq!(
            c.0,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&c.2)
        );
        let client = id_of(&c.2);
        let body = json!({"client_id": client, "problem_description": "Cracked screen"});
        let o = call(
            &router,
            &key,
            "POST",
            "/api/v1/orders",
            serde_json::to_vec(&body).unwrap(),
            j,
        )
        .await;
        assert_eq!(
            o.0,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&o.2)
        );
        let order = id_of(&o.2);
        let d = call(
            &router,
            &key,
            "POST",
            &format!("/api/v1/orders/{order}/devices"),
            br#"{"device_type":"phone","brand":"Apple","model":"iPhone 13"}"#.to_vec(),
            j,
        )
        .await;
        assert_eq!(
            d.0,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&d.2)
        );
        let k = call(
            &router,
            &key,
            "POST",
            "/api/v1/keys",
            br#"{"name":"target","permissions":["orders:read"]}"#.to_vec(),
            j,
        )
        .await;
        assert_eq!(
            k.0,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&k.2)
        );
        (client, order, id_of(&d.2), id_of(&k.2))
    });
    World {
        rt,
        router,
        clock,
        key,
        client,
        order,
        device,
        target_key,
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let w = &*WORLD;
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    // A second of the manual clock per input: the key's 10,000/min never runs dry.
    w.clock.advance_seconds(1);
    let merge = "application/merge-patch+json";
    let json_ct = "application/json";
    let (method, path, ct, read_back) = match pick % 11 {
        0 => ("POST", "/api/v1/clients".to_owned(), json_ct, None),
        1 => (
            "PATCH",
            format!("/api/v1/clients/{}", w.client),
            merge,
            Some(format!("/api/v1/clients/{}", w.client)),
        ),
        2 => ("POST", "/api/v1/orders".to_owned(), json_ct, None),
        3 => (
            "PATCH",
            format!("/api/v1/orders/{}", w.order),
            merge,
            Some(format!("/api/v1/orders/{}", w.order)),
        ),
        4 => (
            "POST",
            format!("/api/v1/orders/{}/devices", w.order),
            json_ct,
            None,
        ),
        5 => (
            "PATCH",
            format!("/api/v1/devices/{}", w.device),
            merge,
            Some(format!("/api/v1/devices/{}", w.device)),
        ),
        6 => ("POST", "/api/v1/keys".to_owned(), json_ct, None),
        7 => (
            "PATCH",
            format!("/api/v1/keys/{}", w.target_key),
            merge,
            Some(format!("/api/v1/keys/{}", w.target_key)),
        ),
        8 => (
            "POST",
            format!("/api/v1/keys/{}/clone", w.target_key),
            json_ct,
            None,
        ),
        9 => (
            "POST",
            format!("/api/v1/keys/{}/upgrade", w.target_key),
            json_ct,
            None,
        ),
        _ => ("POST", "/api/v1/test-data/reset".to_owned(), json_ct, None),
    };
    w.rt.block_on(async {
        let before = match &read_back {
            Some(p) => Some(
                call(&w.router, &w.key, "GET", p, Vec::new(), json_ct)
                    .await
                    .2,
            ),
            None => None,
        };
        let (status, ct_out, out) = call(&w.router, &w.key, method, &path, body.to_vec(), ct).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            !status.is_server_error(),
            "{method} {path} → {status}: {text}"
        );
        if status.is_client_error() {
            assert!(
                ct_out.starts_with("application/problem+json"),
                "{status} {ct_out}: {text}"
            );
            let problem: Value = serde_json::from_slice(&out).expect("a problem is JSON");
            assert!(problem["code"].is_string(), "{text}");
            // (Unless the body itself holds the word: a message may quote
            // an unknown field's name back.)
            let sent = String::from_utf8_lossy(body);
            for rust in ["i64", "u32", "u64", "usize", "i32", "invalid type:"]
                .into_iter()
                .filter(|w| !sent.contains(w))
            {
                assert!(
                    !problem["detail"].as_str().unwrap_or("").contains(rust),
                    "a Rust type in {text}"
                );
            }
            if let (Some(p), Some(before)) = (&read_back, before) {
                let after = call(&w.router, &w.key, "GET", p, Vec::new(), json_ct)
                    .await
                    .2;
                assert_eq!(
                    String::from_utf8_lossy(&before),
                    String::from_utf8_lossy(&after),
                    "a refused {method} {path} changed the resource"
                );
            }
        }
    });
});
