//! The store contract: what every `Store` implementation promises its callers.
//!
//! Each contract is an `async fn contract_…(store: Arc<dyn Store>)` written
//! against the trait alone, so the same suite pins SQLite and PostgreSQL
//! (the ports in `src/store/mod.rs`). The `contracts!` list at the bottom turns every
//! contract into one `#[tokio::test]` per backend (`sqlite::contract_…` and
//! `postgres::contract_…`; see `tests/common/backends.rs`).
//!
//! A backend hands each test a fresh, empty store: contracts may assume no
//! shops, keys, feed rows or audit events exist when they start.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey::domain::clock::Timestamp;
use latchkey::domain::key::{
    Actor, KeyKind, KeyName, KeyRecord, KeyStatus, Leak, Pause, PauseReason,
};
use latchkey::domain::net::AllowedIps;
use latchkey::domain::new_id;
use latchkey::domain::permission::{Permission, PermissionSet};
use latchkey::domain::token::Environment;
use latchkey::domain::user::{Email, Role};
use latchkey::store::{
    AuditEvent, AuditFilter, KeyChange, KeyFilter, KeyUpdate, PageRequest, Shop, Store, StoreError,
    User,
};
use serde_json::json;
use sha2::{Digest, Sha256};

#[path = "common/backends.rs"]
mod backends;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The instant the fixtures start at; odd microseconds, so a store that rounds
/// to milliseconds or seconds is caught.
fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T12:00:00.123457Z").unwrap()
}

/// `t0` plus `s` seconds.
fn at(s: i64) -> Timestamp {
    t0().plus_seconds(s)
}

fn micros_after(t: Timestamp, us: i64) -> Timestamp {
    Timestamp::from_micros(t.as_micros() + us)
}

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// A generous limit, for inserts that are not about the limit.
const NO_LIMIT: u32 = 10_000;

fn all_pages() -> PageRequest {
    PageRequest {
        page: 1,
        per_page: 1000,
    }
}

fn page(page: u32, per_page: u32) -> PageRequest {
    PageRequest { page, per_page }
}

/// Creates a shop with its owner; returns both.
async fn new_shop(store: &dyn Store, name: &str, email: &str) -> (Shop, User) {
    let (shop, owner, audit) = shop_parts(name, email, t0());
    store.create_shop(&shop, &owner, &audit).await.unwrap();
    (shop, owner)
}

fn shop_parts(name: &str, email: &str, now: Timestamp) -> (Shop, User, AuditEvent) {
    let shop = Shop {
        id: new_id("shop"),
        name: name.into(),
        created_at: now,
    };
    let owner = User {
        id: new_id("usr"),
        shop_id: shop.id.clone(),
        email: Email::parse(email).unwrap(),
        role: Role::Owner,
        // Any PHC string: the store keeps it, it does not check it.
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${}", new_id("h")),
        created_at: now,
    };
    let audit = AuditEvent {
        id: new_id("evt"),
        shop_id: shop.id.clone(),
        at: now,
        actor: Actor::Cli,
        action: "shop.created".into(),
        key_id: None,
        environment: None,
        ip: None,
        details: json!({ "name": name }),
    };
    (shop, owner, audit)
}

/// Any distinct 32 bytes will do for a stored hash.
fn hash_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A plain live key of `shop_id`, created at `created_at`.
fn key(shop_id: &str, name: &str, created_at: Timestamp) -> KeyRecord {
    let id = new_id("key");
    KeyRecord {
        hash: hash_of(&id),
        display: format!("lk_live_…{}", &id[id.len() - 4..]),
        id,
        shop_id: shop_id.into(),
        name: KeyName::parse(name).unwrap(),
        environment: Environment::Live,
        kind: KeyKind::Standard,
        permissions: [Permission::OrdersRead].into_iter().collect(),
        allowed_ips: AllowedIps::default(),
        rate_limit_per_minute: 60,
        expires_at: None,
        revoked_at: None,
        retired_at: None,
        template: None,
        created_at,
        updated_at: created_at,
        created_by: Actor::Cli,
        sent_in_url_at: None,
        paused: None,
        leaked: None,
    }
}

/// A change made to a fixture key.
type Edit = Box<dyn Fn(&mut KeyRecord)>;

fn ips(entries: &[&str]) -> AllowedIps {
    AllowedIps::parse(entries).unwrap()
}

fn audit_for(key: &KeyRecord, action: &str, at: Timestamp) -> AuditEvent {
    AuditEvent {
        id: new_id("evt"),
        shop_id: key.shop_id.clone(),
        at,
        actor: Actor::Cli,
        action: action.into(),
        key_id: Some(key.id.clone()),
        environment: Some(key.environment),
        ip: None,
        details: json!({}),
    }
}

async fn insert(store: &dyn Store, key: &KeyRecord) {
    store
        .insert_key(
            key,
            NO_LIMIT,
            &audit_for(key, "key.created", key.created_at),
        )
        .await
        .unwrap_or_else(|e| panic!("insert {}: {e:?}", key.name.as_str()));
}

/// Every audit event of `shop_id` matching `filter`, newest first.
async fn events(store: &dyn Store, shop_id: &str, filter: AuditFilter) -> Vec<AuditEvent> {
    let paged = store
        .list_audit_events(shop_id, &filter, all_pages())
        .await
        .unwrap();
    assert_eq!(
        paged.total,
        paged.items.len() as u64,
        "a full page's total is its length"
    );
    paged.items
}

async fn events_of_key(store: &dyn Store, shop_id: &str, key_id: &str) -> Vec<AuditEvent> {
    events(
        store,
        shop_id,
        AuditFilter {
            key_id: Some(key_id.into()),
            ..Default::default()
        },
    )
    .await
}

fn actions(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.action.as_str()).collect()
}

/// Every feed row after `seq`.
async fn feed_after(store: &dyn Store, seq: i64) -> Vec<KeyChange> {
    store.key_changes_since(seq, 100_000).await.unwrap()
}

fn feed_ids(rows: &[KeyChange]) -> Vec<&str> {
    rows.iter().map(|r| r.key_id.as_str()).collect()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected StoreError::NotFound, got {other:?}"),
    }
}

/// Field-by-field equality of two key records. The destructuring has no `..`,
/// so a new field on `KeyRecord` does not compile until it is compared here.
#[track_caller]
fn assert_same_key(actual: &KeyRecord, expected: &KeyRecord, context: &str) {
    let KeyRecord {
        id,
        shop_id,
        name,
        environment,
        kind,
        display,
        hash,
        permissions,
        allowed_ips,
        rate_limit_per_minute,
        expires_at,
        revoked_at,
        retired_at,
        template,
        created_at,
        updated_at,
        created_by,
        sent_in_url_at,
        paused,
        leaked,
    } = expected;
    assert_eq!(&actual.id, id, "{context}: id");
    assert_eq!(&actual.shop_id, shop_id, "{context}: shop_id");
    assert_eq!(&actual.name, name, "{context}: name");
    assert_eq!(&actual.environment, environment, "{context}: environment");
    assert_eq!(&actual.kind, kind, "{context}: kind");
    assert_eq!(&actual.display, display, "{context}: display");
    assert_eq!(&actual.hash, hash, "{context}: hash");
    assert_eq!(&actual.permissions, permissions, "{context}: permissions");
    assert_eq!(&actual.allowed_ips, allowed_ips, "{context}: allowed_ips");
    assert_eq!(
        &actual.rate_limit_per_minute, rate_limit_per_minute,
        "{context}: rate_limit_per_minute"
    );
    assert_eq!(&actual.expires_at, expires_at, "{context}: expires_at");
    assert_eq!(&actual.revoked_at, revoked_at, "{context}: revoked_at");
    assert_eq!(&actual.retired_at, retired_at, "{context}: retired_at");
    assert_eq!(&actual.template, template, "{context}: template");
    assert_eq!(&actual.created_at, created_at, "{context}: created_at");
    assert_eq!(&actual.updated_at, updated_at, "{context}: updated_at");
    assert_eq!(&actual.created_by, created_by, "{context}: created_by");
    assert_eq!(
        &actual.sent_in_url_at, sent_in_url_at,
        "{context}: sent_in_url_at"
    );
    assert_eq!(&actual.paused, paused, "{context}: paused");
    assert_eq!(&actual.leaked, leaked, "{context}: leaked");
}

#[track_caller]
fn assert_same_user(actual: &User, expected: &User, context: &str) {
    let User {
        id,
        shop_id,
        email,
        role,
        password_hash,
        created_at,
    } = expected;
    assert_eq!(&actual.id, id, "{context}: id");
    assert_eq!(&actual.shop_id, shop_id, "{context}: shop_id");
    assert_eq!(&actual.email, email, "{context}: email");
    assert_eq!(&actual.role, role, "{context}: role");
    assert_eq!(
        &actual.password_hash, password_hash,
        "{context}: password_hash"
    );
    assert_eq!(&actual.created_at, created_at, "{context}: created_at");
}

#[track_caller]
fn assert_same_event(actual: &AuditEvent, expected: &AuditEvent, context: &str) {
    let AuditEvent {
        id,
        shop_id,
        at,
        actor,
        action,
        key_id,
        environment,
        ip,
        details,
    } = expected;
    assert_eq!(&actual.id, id, "{context}: id");
    assert_eq!(&actual.shop_id, shop_id, "{context}: shop_id");
    assert_eq!(&actual.at, at, "{context}: at");
    assert_eq!(&actual.actor, actor, "{context}: actor");
    assert_eq!(&actual.action, action, "{context}: action");
    assert_eq!(&actual.key_id, key_id, "{context}: key_id");
    assert_eq!(&actual.environment, environment, "{context}: environment");
    assert_eq!(&actual.ip, ip, "{context}: ip");
    assert_eq!(&actual.details, details, "{context}: details");
}

// ---------------------------------------------------------------------------
// Shops and users
// ---------------------------------------------------------------------------

async fn contract_has_shops_is_false_on_an_empty_store_and_true_once_a_shop_exists(
    store: Arc<dyn Store>,
) {
    store.ping().await.unwrap();
    assert!(
        !store.has_shops().await.unwrap(),
        "a fresh store has no shop"
    );
    new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    assert!(store.has_shops().await.unwrap());
}

async fn contract_list_shops_is_oldest_first_with_the_owner_and_the_legacy_keys_the_cut_off_stops(
    store: Arc<dyn Store>,
) {
    assert!(store.list_shops().await.unwrap().is_empty());
    let (first, first_owner, audit) = shop_parts("Fix-It Phones", "owner@fixit.example", at(0));
    store
        .create_shop(&first, &first_owner, &audit)
        .await
        .unwrap();
    let (second, second_owner, audit) =
        shop_parts("Screen Savers", "boss@screensavers.example", at(5));
    store
        .create_shop(&second, &second_owner, &audit)
        .await
        .unwrap();

    // Legacy keys of the first shop: one live, one revoked, one retired by
    // an upgrade; and a standard key, which never counts.
    let legacy = |name: &str| {
        let mut k = key(&first.id, name, at(1));
        k.kind = KeyKind::Legacy;
        k
    };
    let live = legacy("Old website");
    let revoked = legacy("Old Zapier");
    let mut retired = legacy("Old RMM");
    retired.retired_at = Some(at(2));
    for k in [&live, &revoked, &retired] {
        insert(&*store, k).await;
    }
    insert(&*store, &key(&first.id, "New website", at(1))).await;
    store
        .revoke_key(
            &first.id,
            &revoked.id,
            at(3),
            &audit_for(&revoked, "key.revoked", at(3)),
        )
        .await
        .unwrap();

    let shops = store.list_shops().await.unwrap();
    assert_eq!(shops.len(), 2, "{shops:?}");
    assert_eq!(shops[0].shop.id, first.id, "oldest first");
    assert_eq!(shops[0].shop.name, "Fix-It Phones");
    assert_eq!(shops[0].shop.created_at, at(0));
    assert_eq!(shops[0].owner_email.as_deref(), Some("owner@fixit.example"));
    assert_eq!(shops[0].legacy_keys, 1, "only the live legacy key");
    assert_eq!(shops[1].shop.id, second.id);
    assert_eq!(
        shops[1].owner_email.as_deref(),
        Some("boss@screensavers.example")
    );
    assert_eq!(shops[1].legacy_keys, 0);
}

async fn contract_create_shop_stores_the_shop_its_owner_and_its_audit_event(store: Arc<dyn Store>) {
    let (shop, owner, audit) = shop_parts("Fix-It Phones", "owner@fixit.example", t0());
    store.create_shop(&shop, &owner, &audit).await.unwrap();

    let stored = store.get_shop(&shop.id).await.unwrap().expect("the shop");
    assert_eq!(stored.id, shop.id);
    assert_eq!(stored.name, shop.name);
    assert_eq!(stored.created_at, shop.created_at);

    let by_email = store
        .find_user_by_email(&Email::parse("owner@fixit.example").unwrap())
        .await
        .unwrap()
        .expect("the owner by email");
    assert_same_user(&by_email, &owner, "find_user_by_email");
    let by_id = store
        .get_user(&owner.id)
        .await
        .unwrap()
        .expect("the owner by id");
    assert_same_user(&by_id, &owner, "get_user");

    let trail = events(&*store, &shop.id, AuditFilter::default()).await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_same_event(&trail[0], &audit, "shop.created event");

    assert!(store.get_shop("shop_unknown").await.unwrap().is_none());
    assert!(store.get_user("usr_unknown").await.unwrap().is_none());
    assert!(
        store
            .find_user_by_email(&Email::parse("nobody@fixit.example").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

async fn contract_a_second_shop_whose_owner_email_is_taken_is_a_conflict_and_leaves_no_shop_behind(
    store: Arc<dyn Store>,
) {
    let (first, first_owner) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;

    let (second, second_owner, audit) = shop_parts("Second Shop", "Owner@Fixit.example", at(60));
    assert_conflict(
        store.create_shop(&second, &second_owner, &audit).await,
        "create_shop with a taken owner email",
    );

    assert!(
        store.get_shop(&second.id).await.unwrap().is_none(),
        "the shop whose owner could not be created must not exist"
    );
    assert!(store.get_user(&second_owner.id).await.unwrap().is_none());
    assert!(
        events(&*store, &second.id, AuditFilter::default())
            .await
            .is_empty(),
        "no audit event for a shop that was not created"
    );
    let still = store
        .find_user_by_email(&first_owner.email)
        .await
        .unwrap()
        .expect("the first owner");
    assert_same_user(&still, &first_owner, "the first owner is untouched");
    assert!(store.get_shop(&first.id).await.unwrap().is_some());

    // The store is still usable for a shop with a free email.
    let (third, third_owner, audit) = shop_parts("Third Shop", "third@fixit.example", at(120));
    store
        .create_shop(&third, &third_owner, &audit)
        .await
        .unwrap();
    assert!(store.get_shop(&third.id).await.unwrap().is_some());
}

async fn contract_setup_tokens_work_once_each_until_a_shop_exists(store: Arc<dyn Store>) {
    let stale = [9u8; 32];
    let old = [1u8; 32];
    let new = [2u8; 32];
    let day = latchkey::store::SETUP_TOKEN_PRUNE_SECONDS;
    store.put_setup_token(&stale, at(-day - 10)).await.unwrap();
    store.put_setup_token(&old, at(0)).await.unwrap();
    assert!(store.setup_token_valid(&old).await.unwrap());
    assert!(
        !store.setup_token_valid(&stale).await.unwrap(),
        "an unused link older than a day is pruned"
    );
    store.put_setup_token(&new, at(1)).await.unwrap();
    assert!(
        store.setup_token_valid(&old).await.unwrap(),
        "a link printed by another instance (or an earlier start) still works"
    );
    assert!(store.setup_token_valid(&new).await.unwrap());
    assert!(!store.setup_token_valid(&[3u8; 32]).await.unwrap());
    assert!(!store.has_shops().await.unwrap());

    let (shop, owner, audit) = shop_parts("Fix-It Phones", "owner@fixit.example", at(2));

    store
        .complete_setup(&new, &shop, &owner, &audit)
        .await
        .unwrap();
    assert!(store.get_shop(&shop.id).await.unwrap().is_some());
    assert!(store.get_user(&owner.id).await.unwrap().is_some());
    assert!(!store.setup_token_valid(&new).await.unwrap(), "used once");
    assert!(
        !store.setup_token_valid(&old).await.unwrap(),
        "the other links stop working once a shop exists"
    );
    let (late, late_owner, late_audit) = shop_parts("Late", "late@fixit.example", at(2));
    assert_not_found(
        store
            .complete_setup(&old, &late, &late_owner, &late_audit)
            .await,
        "complete_setup with another link once a shop exists",
    );

    let (again, again_owner, again_audit) = shop_parts("Another", "another@fixit.example", at(3));
    assert_not_found(
        store
            .complete_setup(&new, &again, &again_owner, &again_audit)
            .await,
        "complete_setup with a used token",
    );
    assert!(store.get_shop(&again.id).await.unwrap().is_none());

    // A fresh token is useless once a shop exists.
    store.put_setup_token(&[4u8; 32], at(4)).await.unwrap();
    assert!(!store.setup_token_valid(&[4u8; 32]).await.unwrap());
    assert_not_found(
        store
            .complete_setup(&[4u8; 32], &again, &again_owner, &again_audit)
            .await,
        "complete_setup while a shop exists",
    );
    assert!(store.get_shop(&again.id).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

async fn contract_an_inserted_key_reads_back_identical_by_id_by_any_shop_id_and_by_hash(
    store: Arc<dyn Store>,
) {
    let (shop, owner) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;

    // Every optional field set, odd microseconds everywhere.
    let mut full = key(&shop.id, "Zapier – new orders", micros_after(at(0), 1));
    full.environment = Environment::Test;
    full.kind = KeyKind::Legacy;
    full.display = "lk_test_…wXyZ".into();
    full.permissions = [
        Permission::OrdersRead,
        Permission::ClientsWrite,
        Permission::DevicesDelete,
        Permission::KeysWrite,
    ]
    .into_iter()
    .collect();
    full.allowed_ips = ips(&[
        "203.0.113.7",
        "198.51.100.0/24",
        "2001:db8::1",
        "2001:db8:abcd::/48",
    ]);
    full.rate_limit_per_minute = 10_000;
    full.expires_at = Some(micros_after(at(30 * DAY), 999_999));
    full.revoked_at = Some(micros_after(at(10), 3));
    full.retired_at = Some(micros_after(at(20), 5));
    full.template = Some("orders-sync".into());
    full.updated_at = micros_after(at(10), 7);
    full.created_by = Actor::Cli;
    full.sent_in_url_at = Some(micros_after(at(5), 11));
    full.paused = Some(Pause {
        at: micros_after(at(6), 13),
        reason: PauseReason::parse("Zapier incident – “all keys”").unwrap(),
        by: Actor::User("usr_pauser".into()),
    });
    full.leaked = Some(Leak {
        at: micros_after(at(7), 17),
        url: "https://github.com/example/repo/blob/abc/config.yml".into(),
        source: "content".into(),
    });

    // Every optional field empty; made by another key.
    let mut bare = key(&shop.id, "IT Glue sync", micros_after(at(1), 2));
    bare.permissions = PermissionSet::EMPTY;
    bare.rate_limit_per_minute = 1;
    bare.created_by = Actor::Key(full.id.clone());

    // Made by a user.
    let mut by_user = key(&shop.id, "Website contact form", micros_after(at(2), 3));
    by_user.permissions = PermissionSet::all();
    by_user.allowed_ips = ips(&["10.0.0.0/8"]);
    by_user.created_by = Actor::User(owner.id.clone());

    for k in [&full, &bare, &by_user] {
        insert(&*store, k).await;
    }
    for k in [&full, &bare, &by_user] {
        let what = k.name.as_str();
        let got = store.get_key(&shop.id, &k.id).await.unwrap();
        assert_same_key(
            got.as_ref().expect("get_key"),
            k,
            &format!("{what}: get_key"),
        );
        let got = store.get_key_any_shop(&k.id).await.unwrap();
        assert_same_key(
            got.as_ref().expect("get_key_any_shop"),
            k,
            &format!("{what}: get_key_any_shop"),
        );
        let got = store.find_key_by_hash(&k.hash).await.unwrap();
        assert_same_key(
            got.as_ref().expect("find_key_by_hash"),
            k,
            &format!("{what}: find_key_by_hash"),
        );
    }

    let listed = store
        .list_keys(
            &shop.id,
            &KeyFilter {
                environment: None,
                status: None,
                now: at(0),
                legacy_sunset: at(365 * DAY),
            },
            all_pages(),
        )
        .await
        .unwrap();
    assert_eq!(listed.total, 3);
    for (got, want) in listed.items.iter().zip([&by_user, &bare, &full]) {
        assert_same_key(got, want, &format!("{}: list_keys", want.name.as_str()));
    }
}

async fn contract_a_key_is_invisible_through_another_shops_id(store: Arc<dyn Store>) {
    let (a, _) = new_shop(&*store, "Shop A", "a@fixit.example").await;
    let (b, _) = new_shop(&*store, "Shop B", "b@fixit.example").await;
    let ka = key(&a.id, "Shop A sync", at(1));
    insert(&*store, &ka).await;

    assert!(
        store.get_key(&b.id, &ka.id).await.unwrap().is_none(),
        "shop B must not see shop A's key"
    );
    assert!(store.get_key(&a.id, &ka.id).await.unwrap().is_some());
    assert!(
        store.get_key_any_shop(&ka.id).await.unwrap().is_some(),
        "the CLI's view sees every shop"
    );
    assert!(store.get_key(&a.id, "key_unknown").await.unwrap().is_none());
    assert!(
        store
            .get_key_any_shop("key_unknown")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_key_by_hash(&[0xAB; 32]).await.unwrap().is_none());
}

async fn contract_a_duplicate_key_hash_is_a_conflict_and_inserts_nothing(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let (other, _) = new_shop(&*store, "Other", "other@fixit.example").await;
    let first = key(&shop.id, "Legacy import one", at(1));
    insert(&*store, &first).await;
    let seq = store.last_key_change().await.unwrap();

    // Same hash, another id, even in another shop.
    for shop_id in [&shop.id, &other.id] {
        let mut twin = key(shop_id, "Legacy import twin", at(2));
        twin.hash = first.hash;
        let audit = audit_for(&twin, "key.created", at(2));
        assert_conflict(
            store.insert_key(&twin, NO_LIMIT, &audit).await,
            "insert_key with a taken hash",
        );
        assert!(store.get_key_any_shop(&twin.id).await.unwrap().is_none());
        assert!(
            events_of_key(&*store, shop_id, &twin.id).await.is_empty(),
            "a refused insert writes no audit event"
        );
    }
    let by_hash = store.find_key_by_hash(&first.hash).await.unwrap().unwrap();
    assert_same_key(&by_hash, &first, "the hash still finds the first key");
    assert!(
        feed_after(&*store, seq).await.is_empty(),
        "a refused insert writes no feed row"
    );
}

async fn contract_a_shop_at_max_per_shop_is_a_conflict_and_inserts_nothing(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let (other, _) = new_shop(&*store, "Other", "other@fixit.example").await;
    let max = 2;
    for i in 0..max {
        let k = key(&shop.id, &format!("Integration {i}"), at(i64::from(i)));
        store
            .insert_key(&k, max, &audit_for(&k, "key.created", k.created_at))
            .await
            .unwrap();
    }
    let seq = store.last_key_change().await.unwrap();
    let over = key(&shop.id, "One too many", at(10));
    assert_conflict(
        store
            .insert_key(&over, max, &audit_for(&over, "key.created", at(10)))
            .await,
        "insert_key past max_per_shop",
    );
    assert!(store.get_key(&shop.id, &over.id).await.unwrap().is_none());
    assert!(store.find_key_by_hash(&over.hash).await.unwrap().is_none());
    assert!(events_of_key(&*store, &shop.id, &over.id).await.is_empty());
    assert!(feed_after(&*store, seq).await.is_empty());
    let filter = KeyFilter {
        environment: None,
        status: None,
        now: at(10),
        legacy_sunset: at(365 * DAY),
    };
    let listed = store
        .list_keys(&shop.id, &filter, all_pages())
        .await
        .unwrap();
    assert_eq!(listed.total, u64::from(max));

    // The limit is per shop.
    let elsewhere = key(&other.id, "Other shop's first", at(11));
    store
        .insert_key(
            &elsewhere,
            max,
            &audit_for(&elsewhere, "key.created", at(11)),
        )
        .await
        .unwrap();
}

async fn contract_max_per_shop_counts_live_and_test_keys_apart(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let max = 2;
    let test_key = |name: &str, t: i64| {
        let mut k = key(&shop.id, name, at(t));
        k.environment = Environment::Test;
        k.display = format!("lk_test_…{}", &k.id[k.id.len() - 4..]);
        k
    };
    for i in 0..max {
        let k = test_key(&format!("Sandbox {i}"), i64::from(i));
        store
            .insert_key(&k, max, &audit_for(&k, "key.created", k.created_at))
            .await
            .unwrap();
    }
    let over = test_key("One test key too many", 5);
    assert_conflict(
        store
            .insert_key(&over, max, &audit_for(&over, "key.created", at(5)))
            .await,
        "a test key past the test quota",
    );
    // A full test quota blocks no live key: create, batch insert, replace.
    let live = key(&shop.id, "Live integration", at(10));
    store
        .insert_key(&live, max, &audit_for(&live, "key.created", at(10)))
        .await
        .expect("a live key beside a full test quota");
    let replacement = key(&shop.id, "Live integration", at(11));
    store
        .replace_key(
            &replacement,
            max,
            &live.id,
            &latchkey::store::Replacement {
                mark_rolled: true,
                expires_at: Some(at(100)),
                retired_at: None,
            },
            &[audit_for(&replacement, "key.created", at(11))],
        )
        .await
        .expect("a live roll beside a full test quota");
    let third = key(&shop.id, "Live three", at(12));
    assert_conflict(
        store
            .insert_keys(std::slice::from_ref(&third), max, &[])
            .await,
        "a live key past the live quota",
    );
    store
        .delete_key(
            &shop.id,
            &replacement.id,
            &audit_for(&replacement, "key.deleted", at(13)),
        )
        .await
        .unwrap();
    store
        .insert_keys(std::slice::from_ref(&third), max, &[])
        .await
        .expect("a batch of live keys beside a full test quota");
}

async fn contract_concurrent_inserts_never_exceed_max_per_shop(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let max = 3;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let k = key(&shop.id, &format!("Integration {i}"), at(i));
        tasks.push(tokio::spawn(async move {
            let audit = audit_for(&k, "key.created", k.created_at);
            store.insert_key(&k, max, &audit).await
        }));
    }
    let mut inserted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => inserted += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a racing insert failed with {e:?}, not Conflict"),
        }
    }
    assert_eq!(inserted, max, "exactly max_per_shop inserts win the race");
    let (_, total) = listed_ids(&*store, &shop.id, &any_status(at(DAY)), all_pages()).await;
    assert_eq!(total, u64::from(max));
    let created = events(
        &*store,
        &shop.id,
        AuditFilter {
            action: Some("key.created".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        created.len(),
        max as usize,
        "one audit event per inserted key"
    );
    assert_eq!(feed_after(&*store, 0).await.len(), max as usize);
}

// ---------------------------------------------------------------------------
// list_keys
// ---------------------------------------------------------------------------

fn any_status(now: Timestamp) -> KeyFilter {
    KeyFilter {
        environment: None,
        status: None,
        now,
        legacy_sunset: at(365 * DAY),
    }
}

async fn listed_ids(
    store: &dyn Store,
    shop_id: &str,
    filter: &KeyFilter,
    page: PageRequest,
) -> (Vec<String>, u64) {
    let paged = store.list_keys(shop_id, filter, page).await.unwrap();
    (
        paged.items.iter().map(|k| k.id.clone()).collect(),
        paged.total,
    )
}

async fn contract_list_keys_is_newest_first_and_paginates_with_the_total(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let (other, _) = new_shop(&*store, "Other", "other@fixit.example").await;
    // Inserted out of order: listing order is creation time, not insertion.
    let mut keys = Vec::new();
    for s in [3, 0, 6, 1, 5, 2, 4] {
        let k = key(
            &shop.id,
            &format!("Integration {s}"),
            micros_after(at(s), 1),
        );
        insert(&*store, &k).await;
        keys.push(k);
    }
    insert(&*store, &key(&other.id, "Other shop's key", at(100))).await;
    keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    let newest_first: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();

    let filter = any_status(at(DAY));
    let (all, total) = listed_ids(&*store, &shop.id, &filter, all_pages()).await;
    assert_eq!(total, 7);
    assert_eq!(all, newest_first, "newest first, other shop's key absent");

    let (p1, t1) = listed_ids(&*store, &shop.id, &filter, page(1, 3)).await;
    let (p2, t2) = listed_ids(&*store, &shop.id, &filter, page(2, 3)).await;
    let (p3, t3) = listed_ids(&*store, &shop.id, &filter, page(3, 3)).await;
    let (p4, t4) = listed_ids(&*store, &shop.id, &filter, page(4, 3)).await;
    assert_eq!((t1, t2, t3, t4), (7, 7, 7, 7), "total counts every page");
    assert_eq!(p1, newest_first[0..3]);
    assert_eq!(p2, newest_first[3..6]);
    assert_eq!(p3, newest_first[6..7]);
    assert!(p4.is_empty(), "past the end: no items, still the total");

    let (nothing, zero) = listed_ids(&*store, "shop_unknown", &filter, all_pages()).await;
    assert!(nothing.is_empty());
    assert_eq!(zero, 0);
}

async fn contract_list_keys_pages_are_stable_when_keys_share_a_creation_time(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let mut ids = BTreeSet::new();
    for i in 0..7 {
        // Three share one instant, the rest another.
        let created = if i < 3 { at(1) } else { at(2) };
        let k = key(&shop.id, &format!("Integration {i}"), created);
        insert(&*store, &k).await;
        ids.insert(k.id);
    }
    let filter = any_status(at(DAY));
    let (full, _) = listed_ids(&*store, &shop.id, &filter, all_pages()).await;
    let mut paged = Vec::new();
    for p in 1..=4 {
        let (items, total) = listed_ids(&*store, &shop.id, &filter, page(p, 2)).await;
        assert_eq!(total, 7);
        paged.extend(items);
    }
    assert_eq!(paged, full, "pages put together are the full listing");
    assert_eq!(
        paged.iter().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every key exactly once"
    );
    assert_eq!(paged.len(), ids.len(), "no key twice");
}

async fn contract_list_keys_filters_by_environment(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let mut live = Vec::new();
    let mut test = Vec::new();
    for i in 0..5 {
        let mut k = key(&shop.id, &format!("Integration {i}"), at(i));
        if i % 2 == 1 {
            k.environment = Environment::Test;
            test.push(k.id.clone());
        } else {
            live.push(k.id.clone());
        }
        insert(&*store, &k).await;
    }
    live.reverse();
    test.reverse();
    for (env, want) in [(Environment::Live, &live), (Environment::Test, &test)] {
        let filter = KeyFilter {
            environment: Some(env),
            ..any_status(at(DAY))
        };
        let (got, total) = listed_ids(&*store, &shop.id, &filter, all_pages()).await;
        assert_eq!(&got, want, "{env:?}");
        assert_eq!(total, want.len() as u64, "{env:?}");
        let (first, total) = listed_ids(&*store, &shop.id, &filter, page(1, 1)).await;
        assert_eq!(first, want[..1], "{env:?}, one per page");
        assert_eq!(total, want.len() as u64, "{env:?}: the filtered total");
    }
}

async fn contract_list_keys_status_filter_agrees_with_key_record_status(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let (other, _) = new_shop(&*store, "Other", "other@fixit.example").await;
    let now = at(30 * DAY);
    let before = move |s: i64| now.plus_seconds(-s);
    let after = move |s: i64| now.plus_seconds(s);

    let shapes: Vec<(&str, Edit)> = vec![
        ("never expires", Box::new(|_| {})),
        (
            "expires a microsecond after now",
            Box::new(move |k| k.expires_at = Some(micros_after(now, 1))),
        ),
        (
            "expires exactly now",
            Box::new(move |k| k.expires_at = Some(now)),
        ),
        (
            "expired a day ago",
            Box::new(move |k| k.expires_at = Some(before(DAY))),
        ),
        (
            "revoked an hour ago",
            Box::new(move |k| k.revoked_at = Some(before(HOUR))),
        ),
        (
            "revoked exactly now",
            Box::new(move |k| k.revoked_at = Some(now)),
        ),
        (
            "revoked a microsecond after now",
            Box::new(move |k| k.revoked_at = Some(micros_after(now, 1))),
        ),
        (
            "revoked, retired and expired",
            Box::new(move |k| {
                k.revoked_at = Some(before(HOUR));
                k.retired_at = Some(before(HOUR));
                k.expires_at = Some(before(DAY));
            }),
        ),
        (
            "retired an hour ago",
            Box::new(move |k| k.retired_at = Some(before(HOUR))),
        ),
        (
            "retired exactly now",
            Box::new(move |k| k.retired_at = Some(now)),
        ),
        (
            "retired in an hour, expired already",
            Box::new(move |k| {
                k.retired_at = Some(after(HOUR));
                k.expires_at = Some(before(HOUR));
            }),
        ),
        (
            "retired and expired",
            Box::new(move |k| {
                k.retired_at = Some(before(HOUR));
                k.expires_at = Some(before(DAY));
            }),
        ),
        ("legacy", Box::new(|k| k.kind = KeyKind::Legacy)),
        (
            "paused",
            Box::new(move |k| {
                k.paused = Some(Pause {
                    at: before(HOUR),
                    reason: None,
                    by: Actor::Cli,
                })
            }),
        ),
        (
            "paused and expired",
            Box::new(move |k| {
                k.paused = Some(Pause {
                    at: before(HOUR),
                    reason: None,
                    by: Actor::Cli,
                });
                k.expires_at = Some(before(DAY));
            }),
        ),
        (
            "paused and revoked",
            Box::new(move |k| {
                k.paused = Some(Pause {
                    at: before(HOUR),
                    reason: None,
                    by: Actor::Cli,
                });
                k.revoked_at = Some(before(DAY));
            }),
        ),
        (
            "legacy, expired",
            Box::new(move |k| {
                k.kind = KeyKind::Legacy;
                k.expires_at = Some(before(HOUR));
            }),
        ),
        (
            "legacy, expires in an hour",
            Box::new(move |k| {
                k.kind = KeyKind::Legacy;
                k.expires_at = Some(after(HOUR));
            }),
        ),
        (
            "legacy, revoked",
            Box::new(move |k| {
                k.kind = KeyKind::Legacy;
                k.revoked_at = Some(before(HOUR));
            }),
        ),
        (
            "legacy, retired by hand",
            Box::new(move |k| {
                k.kind = KeyKind::Legacy;
                k.retired_at = Some(before(HOUR));
            }),
        ),
        (
            "test key, never expires",
            Box::new(|k| k.environment = Environment::Test),
        ),
        (
            "test key, expired",
            Box::new(move |k| {
                k.environment = Environment::Test;
                k.expires_at = Some(before(HOUR));
            }),
        ),
        (
            "test key, revoked",
            Box::new(move |k| {
                k.environment = Environment::Test;
                k.revoked_at = Some(before(HOUR));
            }),
        ),
        (
            "test key, legacy",
            Box::new(|k| {
                k.environment = Environment::Test;
                k.kind = KeyKind::Legacy;
            }),
        ),
    ];
    let mut keys = Vec::new();
    for (i, (label, shape)) in shapes.iter().enumerate() {
        let mut k = key(&shop.id, label, at(i as i64));
        shape(&mut k);
        insert(&*store, &k).await;
        keys.push(k);
    }
    // Another shop's keys of every kind never show up.
    for (i, (label, shape)) in shapes.iter().enumerate() {
        let mut k = key(&other.id, label, at(i as i64));
        shape(&mut k);
        insert(&*store, &k).await;
    }
    keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));

    // (now, legacy sunset): the records stay put, the filter's clock moves.
    let scenarios = [
        ("now, sunset in a month", now, after(30 * DAY)),
        ("now, sunset exactly now", now, now),
        ("now, sunset a microsecond later", now, micros_after(now, 1)),
        ("now, sunset a month ago", now, before(30 * DAY)),
        ("two hours later", after(2 * HOUR), after(30 * DAY)),
        ("two days earlier", before(2 * DAY), after(30 * DAY)),
    ];
    let statuses = [
        None,
        Some(KeyStatus::Active),
        Some(KeyStatus::Expired),
        Some(KeyStatus::Revoked),
        Some(KeyStatus::Retired),
        Some(KeyStatus::Paused),
    ];
    let environments = [None, Some(Environment::Live), Some(Environment::Test)];
    let mut seen = BTreeSet::new();
    for (scenario, now, sunset) in scenarios {
        for k in &keys {
            seen.insert(k.status(now, sunset).as_str());
        }
        for status in statuses {
            for environment in environments {
                let filter = KeyFilter {
                    environment,
                    status,
                    now,
                    legacy_sunset: sunset,
                };
                let want: Vec<(&str, &str)> = keys
                    .iter()
                    .filter(|k| environment.is_none_or(|e| k.environment == e))
                    .filter(|k| status.is_none_or(|s| k.status(now, sunset) == s))
                    .map(|k| (k.name.as_str(), k.status(now, sunset).as_str()))
                    .collect();
                let paged = store
                    .list_keys(&shop.id, &filter, all_pages())
                    .await
                    .unwrap();
                let got: Vec<(&str, &str)> = paged
                    .items
                    .iter()
                    .map(|k| (k.name.as_str(), k.status(now, sunset).as_str()))
                    .collect();
                assert_eq!(
                    got, want,
                    "{scenario}: status {status:?}, environment {environment:?}"
                );
                assert_eq!(
                    paged.total,
                    want.len() as u64,
                    "{scenario}: total for status {status:?}, environment {environment:?}"
                );
            }
        }
    }
    assert_eq!(
        seen.len(),
        5,
        "the fixtures reach every status, so no filter is tested on nothing: {seen:?}"
    );

    // The filtered total is not the page's length.
    let filter = KeyFilter {
        environment: None,
        status: Some(KeyStatus::Revoked),
        now,
        legacy_sunset: after(30 * DAY),
    };
    let revoked: Vec<&str> = keys
        .iter()
        .filter(|k| k.status(now, after(30 * DAY)) == KeyStatus::Revoked)
        .map(|k| k.id.as_str())
        .collect();
    assert!(revoked.len() > 2);
    let (second_page, total) = listed_ids(&*store, &shop.id, &filter, page(2, 2)).await;
    assert_eq!(total, revoked.len() as u64);
    assert_eq!(second_page, revoked[2..revoked.len().min(4)]);
}

// ---------------------------------------------------------------------------
// update_key
// ---------------------------------------------------------------------------

async fn contract_update_key_changes_only_the_given_fields_and_returns_the_new_record(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let mut k = key(&shop.id, "Zapier – new orders", micros_after(at(0), 1));
    k.environment = Environment::Test;
    k.allowed_ips = ips(&["203.0.113.7", "2001:db8::/32"]);
    k.expires_at = Some(at(90 * DAY));
    k.template = Some("orders-sync".into());
    k.permissions = [Permission::OrdersRead, Permission::OrdersWrite]
        .into_iter()
        .collect();
    k.sent_in_url_at = Some(at(3));
    insert(&*store, &k).await;

    let mut expected = k.clone();
    let steps: Vec<(&str, KeyUpdate, Edit)> = vec![
        (
            "name",
            KeyUpdate {
                name: Some(KeyName::parse("Zapier – orders and clients").unwrap()),
                ..Default::default()
            },
            Box::new(|k| k.name = KeyName::parse("Zapier – orders and clients").unwrap()),
        ),
        (
            "allowed_ips",
            KeyUpdate {
                allowed_ips: Some(ips(&["198.51.100.0/24", "2001:db8::7"])),
                ..Default::default()
            },
            Box::new(|k| k.allowed_ips = ips(&["198.51.100.0/24", "2001:db8::7"])),
        ),
        (
            "allowed_ips emptied",
            KeyUpdate {
                allowed_ips: Some(AllowedIps::default()),
                ..Default::default()
            },
            Box::new(|k| k.allowed_ips = AllowedIps::default()),
        ),
        (
            "expires_at set",
            KeyUpdate {
                expires_at: Some(Some(micros_after(at(60 * DAY), 42))),
                ..Default::default()
            },
            Box::new(|k| k.expires_at = Some(micros_after(at(60 * DAY), 42))),
        ),
        (
            "rate_limit_per_minute",
            KeyUpdate {
                rate_limit_per_minute: Some(600),
                ..Default::default()
            },
            Box::new(|k| k.rate_limit_per_minute = 600),
        ),
        (
            "permissions",
            KeyUpdate {
                permissions: Some(
                    [Permission::ClientsRead, Permission::KeysRead]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            },
            Box::new(|k| {
                k.permissions = [Permission::ClientsRead, Permission::KeysRead]
                    .into_iter()
                    .collect()
            }),
        ),
        (
            "expires_at cleared with Some(None)",
            KeyUpdate {
                expires_at: Some(None),
                ..Default::default()
            },
            Box::new(|k| k.expires_at = None),
        ),
        (
            "expires_at left alone with None",
            KeyUpdate {
                name: Some(KeyName::parse("Zapier – everything").unwrap()),
                ..Default::default()
            },
            Box::new(|k| k.name = KeyName::parse("Zapier – everything").unwrap()),
        ),
    ];
    for (i, (what, update, change)) in steps.iter().enumerate() {
        let when = micros_after(at(10 + i as i64), 5);
        let audit = audit_for(&expected, "key.updated", when);
        let returned = store
            .update_key(&shop.id, &k.id, update, when, &audit)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        change(&mut expected);
        expected.updated_at = when;
        assert_same_key(&returned, &expected, &format!("{what}: returned record"));
        let stored = store.get_key(&shop.id, &k.id).await.unwrap().unwrap();
        assert_same_key(&stored, &expected, &format!("{what}: stored record"));
    }
    let trail = events_of_key(&*store, &shop.id, &k.id).await;
    assert_eq!(
        trail.len(),
        1 + steps.len(),
        "one audit event per update: {:?}",
        actions(&trail)
    );
}

async fn contract_update_key_is_not_found_for_an_unknown_key_or_another_shops_key(
    store: Arc<dyn Store>,
) {
    let (a, _) = new_shop(&*store, "Shop A", "a@fixit.example").await;
    let (b, _) = new_shop(&*store, "Shop B", "b@fixit.example").await;
    let k = key(&a.id, "Shop A sync", at(1));
    insert(&*store, &k).await;
    let seq = store.last_key_change().await.unwrap();
    let update = KeyUpdate {
        name: Some(KeyName::parse("Hijacked").unwrap()),
        expires_at: Some(Some(at(2))),
        ..Default::default()
    };

    let mut audit = audit_for(&k, "key.updated", at(5));
    audit.shop_id = b.id.clone();
    assert_not_found(
        store.update_key(&b.id, &k.id, &update, at(5), &audit).await,
        "update_key through another shop",
    );
    let audit = audit_for(&k, "key.updated", at(6));
    assert_not_found(
        store
            .update_key(&a.id, "key_unknown", &update, at(6), &audit)
            .await,
        "update_key of an unknown key",
    );

    let stored = store.get_key(&a.id, &k.id).await.unwrap().unwrap();
    assert_same_key(&stored, &k, "the key is untouched");
    assert!(feed_after(&*store, seq).await.is_empty(), "no feed row");
    assert_eq!(
        actions(&events_of_key(&*store, &a.id, &k.id).await),
        ["key.created"]
    );
    assert!(events_of_key(&*store, &b.id, &k.id).await.is_empty());
}

async fn contract_an_update_after_a_revoke_does_not_unrevoke(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let k = key(&shop.id, "Zapier – new orders", at(1));
    insert(&*store, &k).await;
    let revoked_at = micros_after(at(10), 77);
    store
        .revoke_key(
            &shop.id,
            &k.id,
            revoked_at,
            &audit_for(&k, "key.revoked", revoked_at),
        )
        .await
        .unwrap();

    let update = KeyUpdate {
        name: Some(KeyName::parse("Zapier – renamed").unwrap()),
        allowed_ips: Some(ips(&["203.0.113.0/24"])),
        expires_at: Some(None),
        rate_limit_per_minute: Some(5),
        permissions: Some(PermissionSet::all()),
    };
    let returned = store
        .update_key(
            &shop.id,
            &k.id,
            &update,
            at(20),
            &audit_for(&k, "key.updated", at(20)),
        )
        .await
        .unwrap();
    assert_eq!(returned.revoked_at, Some(revoked_at), "returned record");
    assert_eq!(returned.name.as_str(), "Zapier – renamed");
    let stored = store.get_key(&shop.id, &k.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(revoked_at), "stored record");
    assert_eq!(stored.status(at(30), at(365 * DAY)), KeyStatus::Revoked);
}

// ---------------------------------------------------------------------------
// revoke_key and delete_key
// ---------------------------------------------------------------------------

async fn contract_a_second_revoke_keeps_the_first_revoked_at_and_writes_no_second_audit_event(
    store: Arc<dyn Store>,
) {
    let (a, _) = new_shop(&*store, "Shop A", "a@fixit.example").await;
    let (b, _) = new_shop(&*store, "Shop B", "b@fixit.example").await;
    let k = key(&a.id, "Zapier – new orders", at(1));
    insert(&*store, &k).await;

    let first_at = micros_after(at(10), 3);
    let first = store
        .revoke_key(
            &a.id,
            &k.id,
            first_at,
            &audit_for(&k, "key.revoked", first_at),
        )
        .await
        .unwrap();
    let mut expected = k.clone();
    expected.revoked_at = Some(first_at);
    expected.updated_at = first_at;
    assert_same_key(&first, &expected, "first revoke returns the revoked key");
    assert_same_key(
        &store.get_key(&a.id, &k.id).await.unwrap().unwrap(),
        &expected,
        "first revoke is stored",
    );

    let second = store
        .revoke_key(&a.id, &k.id, at(20), &audit_for(&k, "key.revoked", at(20)))
        .await
        .unwrap();
    assert_same_key(
        &second,
        &expected,
        "second revoke returns the key as it was",
    );
    assert_same_key(
        &store.get_key(&a.id, &k.id).await.unwrap().unwrap(),
        &expected,
        "second revoke changes nothing",
    );
    assert_eq!(
        actions(&events_of_key(&*store, &a.id, &k.id).await),
        ["key.revoked", "key.created"],
        "one revocation event"
    );

    assert_not_found(
        store
            .revoke_key(&b.id, &k.id, at(30), &audit_for(&k, "key.revoked", at(30)))
            .await,
        "revoke_key through another shop",
    );
    assert_not_found(
        store
            .revoke_key(
                &a.id,
                "key_unknown",
                at(30),
                &audit_for(&k, "key.revoked", at(30)),
            )
            .await,
        "revoke_key of an unknown key",
    );
}

async fn contract_concurrent_revokes_agree_on_one_revoked_at_and_one_audit_event(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let k = key(&shop.id, "Zapier – new orders", at(1));
    insert(&*store, &k).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let (shop_id, k) = (shop.id.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let when = micros_after(at(10 + i), i);
            let audit = audit_for(&k, "key.revoked", when);
            store.revoke_key(&shop_id, &k.id, when, &audit).await
        }));
    }
    let mut revoked_at = BTreeSet::new();
    for task in tasks {
        revoked_at.insert(task.await.unwrap().unwrap().revoked_at);
    }
    assert_eq!(
        revoked_at.len(),
        1,
        "every racing revoke returns the one revocation time: {revoked_at:?}"
    );
    let stored = store.get_key(&shop.id, &k.id).await.unwrap().unwrap();
    assert_eq!(Some(stored.revoked_at), revoked_at.into_iter().next());
    assert_eq!(
        actions(&events_of_key(&*store, &shop.id, &k.id).await),
        ["key.revoked", "key.created"]
    );
}

async fn contract_set_paused_pauses_and_resumes_once_each_with_audit_and_feed_and_never_a_revoked_key(
    store: Arc<dyn Store>,
) {
    let (a, _) = new_shop(&*store, "Shop A", "a@fixit.example").await;
    let (b, _) = new_shop(&*store, "Shop B", "b@fixit.example").await;
    let k = key(&a.id, "Zapier – new orders", at(1));
    insert(&*store, &k).await;
    let seq = store.last_key_change().await.unwrap();
    let pause = Pause {
        at: micros_after(at(10), 3),
        reason: PauseReason::parse("Vendor incident").unwrap(),
        by: Actor::User("usr_owner".into()),
    };
    let paused = store
        .set_paused(
            &a.id,
            &k.id,
            Some(&pause),
            pause.at,
            &audit_for(&k, "key.paused", pause.at),
        )
        .await
        .unwrap()
        .expect("a running key is paused");
    let mut expected = k.clone();
    expected.paused = Some(pause.clone());
    expected.updated_at = pause.at;
    assert_same_key(&paused, &expected, "the paused key");
    assert_same_key(
        &store.get_key(&a.id, &k.id).await.unwrap().unwrap(),
        &expected,
        "the pause is stored",
    );
    assert_eq!(feed_ids(&feed_after(&*store, seq).await), [k.id.as_str()]);
    // Pausing again, or through another shop, changes nothing.
    let again = Pause {
        at: at(20),
        ..pause.clone()
    };
    assert!(
        store
            .set_paused(
                &a.id,
                &k.id,
                Some(&again),
                at(20),
                &audit_for(&k, "key.paused", at(20))
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .set_paused(
                &b.id,
                &k.id,
                None,
                at(20),
                &audit_for(&k, "key.resumed", at(20))
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_same_key(
        &store.get_key(&a.id, &k.id).await.unwrap().unwrap(),
        &expected,
        "a second pause keeps the first",
    );
    let resumed = store
        .set_paused(
            &a.id,
            &k.id,
            None,
            at(30),
            &audit_for(&k, "key.resumed", at(30)),
        )
        .await
        .unwrap()
        .expect("a paused key is resumed");
    assert!(resumed.paused.is_none());
    assert!(
        store
            .set_paused(
                &a.id,
                &k.id,
                None,
                at(31),
                &audit_for(&k, "key.resumed", at(31))
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        actions(&events_of_key(&*store, &a.id, &k.id).await),
        ["key.resumed", "key.paused", "key.created"]
    );
    assert_eq!(
        feed_after(&*store, seq).await.len(),
        2,
        "one feed row per change"
    );
    // A revoked key is never paused.
    store
        .revoke_key(&a.id, &k.id, at(40), &audit_for(&k, "key.revoked", at(40)))
        .await
        .unwrap();
    assert!(
        store
            .set_paused(
                &a.id,
                &k.id,
                Some(&pause),
                at(41),
                &audit_for(&k, "key.paused", at(41))
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_key(&a.id, &k.id)
            .await
            .unwrap()
            .unwrap()
            .paused
            .is_none()
    );
}

async fn contract_route_uses_add_up_per_day_route_and_address_and_are_kept_thirty_days(
    store: Arc<dyn Store>,
) {
    use latchkey::store::usage::{Endpoint, RouteUse, UsageBatch, day_start};
    let day1 = day_start(at(DAY));
    let day2 = day_start(at(2 * DAY));
    let orders = Endpoint {
        method: "GET".into(),
        route: "/api/v1/orders".into(),
    };
    let batch = |n: u64, day| {
        let mut b = UsageBatch::default();
        b.daily.insert(
            ("key_a".into(), day, orders.clone(), "198.51.100.7".into()),
            n,
        );
        b.daily.insert(
            ("key_a".into(), day, orders.clone(), "2001:db8::1".into()),
            1,
        );
        b.daily.insert(
            ("key_b".into(), day, orders.clone(), "198.51.100.7".into()),
            5,
        );
        b
    };
    store.flush_usage(&batch(2, day1)).await.unwrap();
    store.flush_usage(&batch(3, day1)).await.unwrap();
    store.flush_usage(&batch(1, day2)).await.unwrap();
    let uses = store.route_uses("key_a", at(0)).await.unwrap();
    let row = |day, ip: &str, requests| RouteUse {
        day,
        method: "GET".into(),
        route: "/api/v1/orders".into(),
        ip: ip.into(),
        requests,
    };
    assert_eq!(
        uses,
        vec![
            row(day1, "198.51.100.7", 5),
            row(day1, "2001:db8::1", 2),
            row(day2, "198.51.100.7", 1),
            row(day2, "2001:db8::1", 1),
        ]
    );
    assert_eq!(
        store
            .route_uses("key_a", at(2 * DAY + 5))
            .await
            .unwrap()
            .len(),
        2,
        "from the day of `since`"
    );
    // Thirty days after day 2, day 1 is dropped by the roll-up.
    store.roll_up_usage(at(32 * DAY)).await.unwrap();
    let kept = store.route_uses("key_a", at(0)).await.unwrap();
    assert_eq!(
        kept.iter().map(|u| u.day).collect::<BTreeSet<_>>(),
        BTreeSet::from([day2])
    );
}

async fn contract_delete_key_removes_the_key_and_keeps_its_audit_trail(store: Arc<dyn Store>) {
    let (a, _) = new_shop(&*store, "Shop A", "a@fixit.example").await;
    let (b, _) = new_shop(&*store, "Shop B", "b@fixit.example").await;
    let k = key(&a.id, "Zapier – new orders", at(1));
    let keep = key(&a.id, "IT Glue sync", at(2));
    insert(&*store, &k).await;
    insert(&*store, &keep).await;

    assert_not_found(
        store
            .delete_key(&b.id, &k.id, &audit_for(&k, "key.deleted", at(5)))
            .await,
        "delete_key through another shop",
    );
    assert!(store.get_key(&a.id, &k.id).await.unwrap().is_some());

    store
        .delete_key(&a.id, &k.id, &audit_for(&k, "key.deleted", at(10)))
        .await
        .unwrap();
    assert!(store.get_key(&a.id, &k.id).await.unwrap().is_none());
    assert!(store.get_key_any_shop(&k.id).await.unwrap().is_none());
    assert!(store.find_key_by_hash(&k.hash).await.unwrap().is_none());
    assert!(
        store.get_key(&a.id, &keep.id).await.unwrap().is_some(),
        "only that key goes"
    );
    let (ids, total) = listed_ids(&*store, &a.id, &any_status(at(20)), all_pages()).await;
    assert_eq!((ids, total), (vec![keep.id.clone()], 1));

    assert_eq!(
        actions(&events_of_key(&*store, &a.id, &k.id).await),
        ["key.deleted", "key.created"],
        "the deleted key's audit trail stays"
    );

    assert_not_found(
        store
            .delete_key(&a.id, &k.id, &audit_for(&k, "key.deleted", at(30)))
            .await,
        "deleting a deleted key",
    );
    assert_not_found(
        store
            .delete_key(&a.id, "key_unknown", &audit_for(&k, "key.deleted", at(30)))
            .await,
        "deleting an unknown key",
    );
    assert_eq!(
        events_of_key(&*store, &a.id, &k.id).await.len(),
        2,
        "a failed delete writes no audit event"
    );
}

// ---------------------------------------------------------------------------
// The key_changes feed
// ---------------------------------------------------------------------------

async fn contract_every_key_mutation_appends_a_feed_row_with_the_key_id_and_hash_in_order(
    store: Arc<dyn Store>,
) {
    assert_eq!(
        store.last_key_change().await.unwrap(),
        0,
        "an empty feed is at 0"
    );
    assert!(feed_after(&*store, 0).await.is_empty());
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let a = key(&shop.id, "Zapier – new orders", at(1));
    let b = key(&shop.id, "IT Glue sync", at(2));

    insert(&*store, &a).await;
    insert(&*store, &b).await;
    let update = KeyUpdate {
        rate_limit_per_minute: Some(5),
        ..Default::default()
    };
    store
        .update_key(
            &shop.id,
            &a.id,
            &update,
            at(3),
            &audit_for(&a, "key.updated", at(3)),
        )
        .await
        .unwrap();
    store
        .revoke_key(&shop.id, &b.id, at(4), &audit_for(&b, "key.revoked", at(4)))
        .await
        .unwrap();
    let sent = audit_for(&a, "key.sent_in_url", micros_after(at(5), 9));
    store.mark_key_sent_in_url(&a.id, &sent).await.unwrap();
    store
        .delete_key(&shop.id, &b.id, &audit_for(&b, "key.deleted", at(6)))
        .await
        .unwrap();

    let rows = feed_after(&*store, 0).await;
    let got: Vec<(&str, [u8; 32])> = rows
        .iter()
        .map(|r| (r.key_id.as_str(), r.key_hash))
        .collect();
    let want: Vec<(&str, [u8; 32])> = [&a, &b, &a, &b, &a, &b]
        .iter()
        .map(|k| (k.id.as_str(), k.hash))
        .collect();
    assert_eq!(
        got, want,
        "insert a, insert b, update a, revoke b, mark a, delete b"
    );
    assert!(
        rows.windows(2).all(|w| w[0].seq < w[1].seq),
        "strictly increasing positions: {rows:?}"
    );
    assert!(rows[0].seq > 0);
    assert_eq!(store.last_key_change().await.unwrap(), rows[5].seq);

    // mark_key_sent_in_url is a mutation like the others.
    let marked = store.get_key(&shop.id, &a.id).await.unwrap().unwrap();
    assert_eq!(marked.sent_in_url_at, Some(sent.at));
    let trail = events_of_key(&*store, &shop.id, &a.id).await;
    assert_eq!(
        actions(&trail),
        ["key.sent_in_url", "key.updated", "key.created"]
    );
    assert_same_event(&trail[0], &sent, "the key.sent_in_url event");
}

async fn contract_key_changes_since_returns_rows_strictly_after_seq_oldest_first_within_limit(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let base = store.last_key_change().await.unwrap();
    let mut keys = Vec::new();
    for i in 0..5 {
        let k = key(&shop.id, &format!("Integration {i}"), at(i));
        insert(&*store, &k).await;
        keys.push(k);
    }
    let all = feed_after(&*store, base).await;
    assert_eq!(
        feed_ids(&all),
        keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>()
    );

    let first_two = store.key_changes_since(base, 2).await.unwrap();
    assert_eq!(feed_ids(&first_two), feed_ids(&all[0..2]), "limit 2");
    let next_two = store.key_changes_since(first_two[1].seq, 2).await.unwrap();
    assert_eq!(
        feed_ids(&next_two),
        feed_ids(&all[2..4]),
        "strictly after the given position"
    );
    let rest = store.key_changes_since(next_two[1].seq, 100).await.unwrap();
    assert_eq!(feed_ids(&rest), feed_ids(&all[4..5]));
    assert!(
        store
            .key_changes_since(all[4].seq, 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing after the newest row"
    );
    assert_eq!(store.last_key_change().await.unwrap(), all[4].seq);

    // Any position works, not only one a previous poll returned.
    let from_middle = store.key_changes_since(all[2].seq - 1, 1).await.unwrap();
    assert_eq!(from_middle[0].seq, all[2].seq);
}

async fn contract_prune_key_changes_drops_only_rows_older_than_the_cutoff(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let base = store.last_key_change().await.unwrap();
    let old = key(&shop.id, "Old integration", at(0));
    let newer = key(&shop.id, "Newer integration", at(100));
    insert(&*store, &old).await;
    insert(&*store, &newer).await;
    store
        .revoke_key(
            &shop.id,
            &old.id,
            at(200),
            &audit_for(&old, "key.revoked", at(200)),
        )
        .await
        .unwrap();
    let before = feed_after(&*store, base).await;
    assert_eq!(before.len(), 3);
    let last = store.last_key_change().await.unwrap();

    assert_eq!(
        store.prune_key_changes(at(100)).await.unwrap(),
        1,
        "only the row from before the cutoff goes; one exactly at it stays"
    );
    let after = feed_after(&*store, base).await;
    assert_eq!(
        after.iter().map(|r| r.seq).collect::<Vec<_>>(),
        before[1..].iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    assert_eq!(feed_ids(&after), [newer.id.as_str(), old.id.as_str()]);
    assert_eq!(store.prune_key_changes(at(100)).await.unwrap(), 0);
    assert_eq!(store.last_key_change().await.unwrap(), last);

    assert_eq!(store.prune_key_changes(at(1000)).await.unwrap(), 2);
    assert!(feed_after(&*store, base).await.is_empty());
    // The feed keeps counting up after a prune: a tailer never sees a reused position.
    let later = key(&shop.id, "Later integration", at(2000));
    insert(&*store, &later).await;
    let rows = feed_after(&*store, last).await;
    assert_eq!(feed_ids(&rows), [later.id.as_str()]);
    assert!(rows[0].seq > last);
}

// ---------------------------------------------------------------------------
// Audit events
// ---------------------------------------------------------------------------

async fn contract_a_mutation_whose_audit_event_cannot_be_written_is_rolled_back(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let k = key(&shop.id, "Zapier – new orders", at(1));
    let created = audit_for(&k, "key.created", at(1));
    store.insert_key(&k, NO_LIMIT, &created).await.unwrap();
    let seq = store.last_key_change().await.unwrap();

    // An audit event whose id is taken cannot be written, so neither is the change.
    let mut dup = audit_for(&k, "key.revoked", at(5));
    dup.id = created.id.clone();
    assert!(
        store
            .revoke_key(&shop.id, &k.id, at(5), &dup)
            .await
            .is_err(),
        "revoke with an unwritable audit event"
    );
    let stored = store.get_key(&shop.id, &k.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, None, "the revoke was rolled back");

    let other = key(&shop.id, "IT Glue sync", at(6));
    let mut dup = audit_for(&other, "key.created", at(6));
    dup.id = created.id.clone();
    assert!(store.insert_key(&other, NO_LIMIT, &dup).await.is_err());
    assert!(
        store.get_key(&shop.id, &other.id).await.unwrap().is_none(),
        "the insert was rolled back"
    );

    let update = KeyUpdate {
        rate_limit_per_minute: Some(7),
        ..Default::default()
    };
    let mut dup = audit_for(&k, "key.updated", at(7));
    dup.id = created.id.clone();
    assert!(
        store
            .update_key(&shop.id, &k.id, &update, at(7), &dup)
            .await
            .is_err()
    );
    let stored = store.get_key(&shop.id, &k.id).await.unwrap().unwrap();
    assert_same_key(&stored, &k, "the update was rolled back");

    let mut dup = audit_for(&k, "key.deleted", at(8));
    dup.id = created.id.clone();
    assert!(store.delete_key(&shop.id, &k.id, &dup).await.is_err());
    assert!(
        store.get_key(&shop.id, &k.id).await.unwrap().is_some(),
        "the delete was rolled back"
    );

    assert!(
        feed_after(&*store, seq).await.is_empty(),
        "no feed row for a rolled-back change"
    );
    let trail = events(&*store, &shop.id, AuditFilter::default()).await;
    assert_eq!(actions(&trail), ["key.created", "shop.created"]);
    assert_same_event(&trail[0], &created, "the one key event");
}

async fn contract_list_audit_events_is_newest_first_filters_and_paginates_within_one_shop(
    store: Arc<dyn Store>,
) {
    let (a, owner) = new_shop(&*store, "Shop A", "a@fixit.example").await;
    let (b, _) = new_shop(&*store, "Shop B", "b@fixit.example").await;

    let live = key(&a.id, "Zapier – new orders", at(1));
    let mut test = key(&a.id, "Zapier – sandbox", at(2));
    test.environment = Environment::Test;
    insert(&*store, &live).await; // at 1: key.created live
    insert(&*store, &test).await; // at 2: key.created test
    let update = KeyUpdate {
        rate_limit_per_minute: Some(30),
        ..Default::default()
    };
    let mut updated = audit_for(&live, "key.updated", at(3));
    updated.actor = Actor::User(owner.id.clone());
    updated.ip = Some("2001:db8::42".into());
    updated.details = json!({ "changed": ["rate_limit_per_minute"], "from": 60, "to": 30 });
    store
        .update_key(&a.id, &live.id, &update, at(3), &updated)
        .await
        .unwrap();
    // Two events at the same instant: the later written is the newer.
    let login = AuditEvent {
        id: new_id("evt"),
        shop_id: a.id.clone(),
        at: micros_after(at(4), 1),
        actor: Actor::User(owner.id.clone()),
        action: "user.login".into(),
        key_id: None,
        environment: None,
        ip: Some("203.0.113.7".into()),
        details: json!({ "method": "password", "nested": { "ok": true } }),
    };
    let viewed = AuditEvent {
        id: new_id("evt"),
        action: "audit.viewed".into(),
        actor: Actor::Key(live.id.clone()),
        environment: Some(Environment::Live),
        details: json!({}),
        ..login.clone()
    };
    store.append_audit(&login).await.unwrap();
    store.append_audit(&viewed).await.unwrap();
    // An older event written last still sorts by its time.
    let late_written = AuditEvent {
        id: new_id("evt"),
        at: micros_after(at(0), 500),
        action: "user.invited".into(),
        environment: None,
        key_id: None,
        ..login.clone()
    };
    store.append_audit(&late_written).await.unwrap();

    // Shop B: events with the same actions and a key id from shop A.
    let bk = key(&b.id, "Zapier – new orders", at(1));
    insert(&*store, &bk).await;
    let mut intruder = audit_for(&live, "key.updated", at(3));
    intruder.shop_id = b.id.clone();
    store.append_audit(&intruder).await.unwrap();

    let all = events(&*store, &a.id, AuditFilter::default()).await;
    assert_eq!(
        actions(&all),
        [
            "audit.viewed",
            "user.login",
            "key.updated",
            "key.created",
            "key.created",
            "user.invited",
            "shop.created",
        ],
        "newest first"
    );
    assert_eq!(all[1].id, login.id);
    assert_eq!(all[3].environment, Some(Environment::Test));
    assert_eq!(all[5].id, late_written.id);
    assert_same_event(&all[2], &updated, "key.updated round trip");
    assert_same_event(&all[1], &login, "user.login round trip");
    assert_same_event(&all[0], &viewed, "audit.viewed round trip");
    assert!(
        all.iter().all(|e| e.shop_id == a.id),
        "only shop A's events: {all:?}"
    );

    let ids = |events: &[AuditEvent]| events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let cases: Vec<(&str, AuditFilter, Vec<String>)> = vec![
        (
            "environment live",
            AuditFilter {
                environment: Some(Environment::Live),
                ..Default::default()
            },
            ids(&[all[0].clone(), all[2].clone(), all[4].clone()]),
        ),
        (
            "environment test",
            AuditFilter {
                environment: Some(Environment::Test),
                ..Default::default()
            },
            ids(&[all[3].clone()]),
        ),
        (
            "key id",
            AuditFilter {
                key_id: Some(live.id.clone()),
                ..Default::default()
            },
            ids(&[all[2].clone(), all[4].clone()]),
        ),
        (
            "action",
            AuditFilter {
                action: Some("key.created".into()),
                ..Default::default()
            },
            ids(&[all[3].clone(), all[4].clone()]),
        ),
        (
            "all three",
            AuditFilter {
                environment: Some(Environment::Live),
                key_id: Some(live.id.clone()),
                action: Some("key.created".into()),
            },
            ids(&[all[4].clone()]),
        ),
        (
            "no match",
            AuditFilter {
                environment: Some(Environment::Test),
                action: Some("key.updated".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            "another shop's key id",
            AuditFilter {
                key_id: Some(bk.id.clone()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (what, filter, want) in cases {
        let got = events(&*store, &a.id, filter).await;
        assert_eq!(ids(&got), want, "filter: {what}");
    }

    // Pagination: the total counts every match, not the page.
    let p2 = store
        .list_audit_events(&a.id, &AuditFilter::default(), page(2, 3))
        .await
        .unwrap();
    assert_eq!(p2.total, 7);
    assert_eq!(ids(&p2.items), ids(&all[3..6]));
    let p3 = store
        .list_audit_events(&a.id, &AuditFilter::default(), page(3, 3))
        .await
        .unwrap();
    assert_eq!((ids(&p3.items), p3.total), (ids(&all[6..7]), 7));
    let p4 = store
        .list_audit_events(&a.id, &AuditFilter::default(), page(4, 3))
        .await
        .unwrap();
    assert!(p4.items.is_empty());
    assert_eq!(p4.total, 7);
    let filtered = store
        .list_audit_events(
            &a.id,
            &AuditFilter {
                action: Some("key.created".into()),
                ..Default::default()
            },
            page(1, 1),
        )
        .await
        .unwrap();
    assert_eq!((ids(&filtered.items), filtered.total), (ids(&all[3..4]), 2));

    // Shop B sees only its own.
    let b_events = events(&*store, &b.id, AuditFilter::default()).await;
    assert_eq!(
        actions(&b_events),
        ["key.updated", "key.created", "shop.created"]
    );
    assert!(b_events.iter().all(|e| e.shop_id == b.id));
    assert!(
        events(&*store, "shop_unknown", AuditFilter::default())
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// Concurrency: nothing may rely on a single writer
// ---------------------------------------------------------------------------

async fn contract_fifty_concurrent_audit_appends_are_all_kept_in_one_stable_order(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    // One instant for all: only `seq` orders them, so equal positions would
    // make pages overlap or skip.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let event = AuditEvent {
                id: new_id("evt"),
                shop_id: shop.id.clone(),
                at: at(60),
                actor: Actor::Cli,
                action: format!("test.event{i}"),
                key_id: None,
                environment: None,
                ip: None,
                details: json!({ "i": i }),
            };
            tokio::spawn(async move {
                store.append_audit(&event).await?;
                Ok::<_, StoreError>(event.id)
            })
        })
        .collect();
    let mut appended = BTreeSet::new();
    for task in tasks {
        appended.insert(task.await.unwrap().expect("append_audit"));
    }
    let mut paged_ids = Vec::new();
    for n in 1..=8 {
        let page = store
            .list_audit_events(&shop.id, &AuditFilter::default(), page(n, 7))
            .await
            .unwrap();
        assert_eq!(page.total, 51, "50 appends and the shop's own event");
        paged_ids.extend(page.items.into_iter().map(|e| e.id));
    }
    let distinct: BTreeSet<String> = paged_ids.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        paged_ids.len(),
        "pages repeat an event: two appends share a position"
    );
    assert!(appended.is_subset(&distinct), "every append is listed");
}

async fn contract_thirty_creations_racing_at_the_limit_never_exceed_it(store: Arc<dyn Store>) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let max = 5;
    insert(&*store, &key(&shop.id, "Already there", at(0))).await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            let k = key(&shop.id, &format!("Integration {i}"), at(i + 1));
            tokio::spawn(async move {
                let audit = audit_for(&k, "key.created", k.created_at);
                store.insert_key(&k, max, &audit).await
            })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => inserted += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a racing insert failed with {e:?}, not Conflict"),
        }
    }
    assert_eq!(inserted, max - 1, "the shop fills up exactly");
    let (_, total) = listed_ids(&*store, &shop.id, &any_status(at(DAY)), all_pages()).await;
    assert_eq!(total, u64::from(max));
}

async fn contract_a_tailer_polling_while_a_hundred_revokes_commit_sees_every_one(
    store: Arc<dyn Store>,
) {
    let (shop, _) = new_shop(&*store, "Fix-It Phones", "owner@fixit.example").await;
    let keys: Vec<KeyRecord> = (0..100)
        .map(|i| key(&shop.id, &format!("Integration {i}"), at(i)))
        .collect();
    store
        .insert_keys(&keys, NO_LIMIT, &[])
        .await
        .expect("insert 100 keys");
    let start = store.last_key_change().await.unwrap();
    let expected: BTreeSet<String> = keys.iter().map(|k| k.id.clone()).collect();

    // The tailer reads small batches as fast as it can, advancing its
    // position as the server's tailer does, while the revokes commit.
    let tailer = {
        let store = store.clone();
        let expected = expected.clone();
        tokio::spawn(async move {
            let mut last = start;
            let mut seen = BTreeSet::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while seen != expected && std::time::Instant::now() < deadline {
                for change in store.key_changes_since(last, 7).await.unwrap() {
                    assert!(change.seq > last, "the feed went backwards");
                    last = change.seq;
                    seen.insert(change.key_id);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let revokes: Vec<_> = keys
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, k)| {
            let store = store.clone();
            tokio::spawn(async move {
                let when = at(HOUR + i as i64);
                let audit = audit_for(&k, "key.revoked", when);
                store.revoke_key(&k.shop_id, &k.id, when, &audit).await
            })
        })
        .collect();
    for r in revokes {
        r.await.unwrap().expect("revoke");
    }
    let seen = tailer.await.unwrap();
    let missed: Vec<&String> = expected.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "the tailer never saw {} revokes: {missed:?}",
        missed.len()
    );
}

async fn contract_the_first_secret_fingerprint_claimed_is_kept_and_returned_to_every_later_claim(
    store: Arc<dyn Store>,
) {
    let (a, b) = ([7u8; 32], [9u8; 32]);
    assert_eq!(store.claim_secret_fingerprint(&a, t0()).await.unwrap(), a);
    assert_eq!(store.claim_secret_fingerprint(&a, at(1)).await.unwrap(), a);
    assert_eq!(
        store.claim_secret_fingerprint(&b, at(2)).await.unwrap(),
        a,
        "a later, different fingerprint does not replace the first"
    );
}

async fn contract_concurrent_fingerprint_claims_all_get_the_same_winner(store: Arc<dyn Store>) {
    let claims: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_secret_fingerprint(&[i; 32], t0()).await })
        })
        .collect();
    let mut winners = BTreeSet::new();
    for c in claims {
        winners.insert(c.await.unwrap().expect("claim"));
    }
    assert_eq!(
        winners.len(),
        1,
        "one fingerprint for everyone: {winners:?}"
    );
}

contracts! {
    contract_the_first_secret_fingerprint_claimed_is_kept_and_returned_to_every_later_claim,
    contract_concurrent_fingerprint_claims_all_get_the_same_winner,
    contract_has_shops_is_false_on_an_empty_store_and_true_once_a_shop_exists,
    contract_create_shop_stores_the_shop_its_owner_and_its_audit_event,
    contract_list_shops_is_oldest_first_with_the_owner_and_the_legacy_keys_the_cut_off_stops,
    contract_a_second_shop_whose_owner_email_is_taken_is_a_conflict_and_leaves_no_shop_behind,
    contract_setup_tokens_work_once_each_until_a_shop_exists,
    contract_an_inserted_key_reads_back_identical_by_id_by_any_shop_id_and_by_hash,
    contract_a_key_is_invisible_through_another_shops_id,
    contract_a_duplicate_key_hash_is_a_conflict_and_inserts_nothing,
    contract_a_shop_at_max_per_shop_is_a_conflict_and_inserts_nothing,
    contract_concurrent_inserts_never_exceed_max_per_shop,
    contract_max_per_shop_counts_live_and_test_keys_apart,
    contract_list_keys_is_newest_first_and_paginates_with_the_total,
    contract_list_keys_pages_are_stable_when_keys_share_a_creation_time,
    contract_list_keys_filters_by_environment,
    contract_list_keys_status_filter_agrees_with_key_record_status,
    contract_update_key_changes_only_the_given_fields_and_returns_the_new_record,
    contract_update_key_is_not_found_for_an_unknown_key_or_another_shops_key,
    contract_an_update_after_a_revoke_does_not_unrevoke,
    contract_a_second_revoke_keeps_the_first_revoked_at_and_writes_no_second_audit_event,
    contract_concurrent_revokes_agree_on_one_revoked_at_and_one_audit_event,
    contract_delete_key_removes_the_key_and_keeps_its_audit_trail,
    contract_set_paused_pauses_and_resumes_once_each_with_audit_and_feed_and_never_a_revoked_key,
    contract_route_uses_add_up_per_day_route_and_address_and_are_kept_thirty_days,
    contract_every_key_mutation_appends_a_feed_row_with_the_key_id_and_hash_in_order,
    contract_key_changes_since_returns_rows_strictly_after_seq_oldest_first_within_limit,
    contract_prune_key_changes_drops_only_rows_older_than_the_cutoff,
    contract_a_mutation_whose_audit_event_cannot_be_written_is_rolled_back,
    contract_list_audit_events_is_newest_first_filters_and_paginates_within_one_shop,
    contract_fifty_concurrent_audit_appends_are_all_kept_in_one_stable_order,
    contract_thirty_creations_racing_at_the_limit_never_exceed_it,
    contract_a_tailer_polling_while_a_hundred_revokes_commit_sees_every_one,
}

// ---------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------

/// Opens `url` eight times at once; all must succeed, and the migrations must
/// have been applied exactly once each.
async fn eight_concurrent_opens(url: String) -> Vec<Arc<dyn Store>> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { latchkey::store::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await.unwrap().expect("a concurrent open"));
    }
    for store in &stores {
        assert!(!store.has_shops().await.unwrap());
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_eight_instances_opening_one_empty_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
    let stores = eight_concurrent_opens(url.clone()).await;
    drop(stores);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (applied, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied, distinct, "a migration ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_eight_instances_opening_one_empty_database_at_once_all_succeed() {
    let db = backends::pg::fresh_database().await;
    let stores = eight_concurrent_opens(db.url()).await;
    drop(stores);
    let pool = sqlx::PgPool::connect_with(db.options.clone())
        .await
        .unwrap();
    let (applied, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied, distinct, "a migration ran twice");
    assert!(applied >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_made_by_another_instance_wakes_wait_for_change_at_once() {
    use latchkey::store::postgres::PostgresStore;
    use std::time::{Duration, Instant};
    let db = backends::pg::fresh_database().await;
    let here: Arc<dyn Store> =
        Arc::new(PostgresStore::open_with(db.options.clone()).await.unwrap());
    let there: Arc<dyn Store> =
        Arc::new(PostgresStore::open_with(db.options.clone()).await.unwrap());
    let (shop, _) = new_shop(&*there, "Fix-It Phones", "owner@fixit.example").await;
    let k = key(&shop.id, "Integration", at(0));
    insert(&*there, &k).await;
    // The first wait starts the listener; let it connect and drain.
    here.wait_for_change(Duration::from_millis(500)).await;
    here.wait_for_change(Duration::from_millis(500)).await;

    let waiter = {
        let here = here.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            here.wait_for_change(Duration::from_secs(20)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    there
        .revoke_key(
            &shop.id,
            &k.id,
            at(60),
            &audit_for(&k, "key.revoked", at(60)),
        )
        .await
        .unwrap();
    let waited = waiter.await.unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "wait_for_change slept {waited:?} through another instance's revoke"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_url_scheme_is_refused_without_repeating_the_url() {
    let err = latchkey::store::open("mysql://app:hunter2@db/lk")
        .await
        .err()
        .expect("mysql:// is refused");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_unavailable_not_a_panic() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = latchkey::store::open(&format!("postgres://app:hunter2@127.0.0.1:{port}/lk"))
        .await
        .err()
        .expect("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}
