//! The resource store contract: clients, orders, devices, test data and
//! idempotency keys, written against `Arc<dyn Store>` alone and run on every
//! backend (`sqlite::…` and `postgres::…`, see `tests/common/backends.rs`).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use latchkey::domain::client::ClientFields;
use latchkey::domain::clock::Timestamp;
use latchkey::domain::device::{DeviceFields, DeviceStatus, DeviceType};
use latchkey::domain::key::Actor;
use latchkey::domain::new_id;
use latchkey::domain::order::{OrderFields, OrderStatus};
use latchkey::domain::token::Environment;
use latchkey::domain::user::{Email, Role};
use latchkey::store::resources::{
    ClientFilter, Cursor, DeviceFilter, DeviceOwner, Idempotency, ListQuery, NumericKind,
    OrderFilter, SampleData, Scope, Sort,
};
use latchkey::store::{AuditEvent, PageRequest, Shop, Store, StoreError, User};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

#[path = "common/backends.rs"]
mod backends;

/// 2026-11-23T12:00:00Z plus `micros`.
fn t(micros: i64) -> Timestamp {
    Timestamp::from_micros(1_795_435_200_000_000 + micros)
}

const SECOND: i64 = 1_000_000;
const HOUR: i64 = 3_600 * SECOND;

async fn new_shop(store: &Arc<dyn Store>) -> String {
    let shop = Shop {
        id: new_id("shop"),
        name: "Fix-It Phones".into(),
        created_at: t(0),
    };
    let owner = User {
        id: new_id("usr"),
        shop_id: shop.id.clone(),
        email: Email::parse(&format!("owner-{}@fixit.example", shop.id.to_lowercase())).unwrap(),
        role: Role::Owner,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: t(0),
    };
    let audit = AuditEvent {
        id: new_id("evt"),
        shop_id: shop.id.clone(),
        at: t(0),
        actor: Actor::Cli,
        action: "shop.created".into(),
        key_id: None,
        environment: None,
        ip: None,
        details: serde_json::json!({}),
    };
    store.create_shop(&shop, &owner, &audit).await.unwrap();
    shop.id
}

fn live(shop: &str) -> Scope {
    Scope {
        shop_id: shop.into(),
        environment: Environment::Live,
    }
}

fn test_env(shop: &str) -> Scope {
    Scope {
        shop_id: shop.into(),
        environment: Environment::Test,
    }
}

fn client(first: &str) -> ClientFields {
    ClientFields {
        first_name: Some(first.into()),
        last_name: Some("Patel".into()),
        email: Some(format!("{}@example.com", first.to_lowercase())),
        phone: Some("+44 20 7946 0958".into()),
        city: Some("London".into()),
        country: Some("GB".into()),
        ..Default::default()
    }
}

fn order(client_id: &str) -> OrderFields {
    OrderFields {
        client_id: client_id.into(),
        status: OrderStatus::AwaitingDevice,
        problem_description: Some("Cracked screen".into()),
        problem_type: None,
        technician: None,
        due_date: Some("2026-12-04".into()),
        estimate_cents: Some(8999),
        price_cents: None,
        currency: "GBP".into(),
        notes: None,
    }
}

fn device() -> DeviceFields {
    DeviceFields {
        name: None,
        device_type: DeviceType::Phone,
        brand: Some("Apple".into()),
        model: Some("iPhone 13".into()),
        serial: None,
        imei: Some("490154203237518".into()),
        color: None,
        condition: Some("Scratched".into()),
        fault: Some("Screen cracked".into()),
        status: DeviceStatus::Received,
    }
}

fn list(page: u32, per_page: u32, sort: Sort) -> ListQuery {
    ListQuery {
        page: PageRequest { page, per_page },
        sort,
        updated_since: None,
        after: None,
    }
}

fn all(sort: Sort) -> ListQuery {
    list(1, 100, sort)
}

async fn add_client(store: &Arc<dyn Store>, scope: &Scope, first: &str, at: Timestamp) -> String {
    let id = new_id("cli");
    store
        .create_client(scope, &id, &client(first), at)
        .await
        .unwrap();
    id
}

async fn add_order(
    store: &Arc<dyn Store>,
    scope: &Scope,
    client_id: &str,
    at: Timestamp,
) -> (String, String) {
    let id = new_id("ord");
    let o = store
        .create_order(scope, &id, &order(client_id), None, at)
        .await
        .unwrap();
    (id, o.reference)
}

fn is_not_found<T>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound))
}

// ---------------------------------------------------------------------------
// CRUD round trips
// ---------------------------------------------------------------------------

async fn client_crud_round_trip(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let id = new_id("cli");
    let mut fields = client("Sam");
    fields.business_name = Some("Patel & Sons".into());
    fields.address = Some("1 High St\nFlat 2".into());
    fields.postcode = Some("E1 6AN".into());
    fields.notes = Some("Prefers email".into());

    let created = s.create_client(&scope, &id, &fields, t(0)).await.unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.fields, fields);
    assert_eq!((created.created_at, created.updated_at), (t(0), t(0)));

    let got = s
        .get_client(&scope, &id)
        .await
        .unwrap()
        .expect("the client");
    assert_eq!(got.fields, fields);
    assert_eq!((got.created_at, got.updated_at), (t(0), t(0)));

    // Update replaces every data field (a `None` clears).
    let new_fields = ClientFields {
        business_name: Some("Patel Repairs Ltd".into()),
        email: Some("accounts@patel.example".into()),
        ..Default::default()
    };
    let updated = s
        .update_client(&scope, &id, &new_fields, t(5))
        .await
        .unwrap();
    assert_eq!(updated.fields, new_fields);
    assert_eq!((updated.created_at, updated.updated_at), (t(0), t(5)));
    let got = s.get_client(&scope, &id).await.unwrap().unwrap();
    assert_eq!(got.fields, new_fields);
    assert_eq!(got.updated_at, t(5));

    // The same id twice is a conflict, not an overwrite.
    assert!(matches!(
        s.create_client(&scope, &id, &fields, t(6)).await,
        Err(StoreError::Conflict(_))
    ));

    s.delete_client(&scope, &id).await.unwrap();
    assert!(s.get_client(&scope, &id).await.unwrap().is_none());
    assert!(is_not_found(s.delete_client(&scope, &id).await));
    assert!(is_not_found(
        s.update_client(&scope, &id, &fields, t(7)).await
    ));
}

async fn order_crud_round_trip(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c1 = add_client(s, &scope, "Sam", t(0)).await;
    let c2 = add_client(s, &scope, "Jo", t(0)).await;
    let id = new_id("ord");
    let fields = order(&c1);

    let created = s
        .create_order(&scope, &id, &fields, None, t(1))
        .await
        .unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.reference, "RM-10001");
    assert_eq!(created.fields, fields);
    assert_eq!((created.created_at, created.updated_at), (t(1), t(1)));

    let got = s.get_order(&scope, &id).await.unwrap().expect("the order");
    assert_eq!(got.reference, "RM-10001");
    assert_eq!(got.fields, fields);

    let new_fields = OrderFields {
        client_id: c2.clone(),
        status: OrderStatus::Ready,
        problem_description: None,
        problem_type: Some("Battery".into()),
        technician: Some("Alex".into()),
        due_date: None,
        estimate_cents: None,
        price_cents: Some(0),
        currency: "EUR".into(),
        notes: Some("Paid".into()),
    };
    let updated = s
        .update_order(&scope, &id, &new_fields, t(9))
        .await
        .unwrap();
    assert_eq!(updated.fields, new_fields);
    assert_eq!(
        updated.reference, "RM-10001",
        "an update keeps the reference"
    );
    assert_eq!((updated.created_at, updated.updated_at), (t(1), t(9)));
    let got = s.get_order(&scope, &id).await.unwrap().unwrap();
    assert_eq!(got.fields, new_fields);
    assert_eq!(got.updated_at, t(9));

    // Every status survives the round trip.
    for status in OrderStatus::ALL {
        let fields = OrderFields {
            status,
            ..new_fields.clone()
        };
        assert_eq!(
            s.update_order(&scope, &id, &fields, t(10))
                .await
                .unwrap()
                .fields
                .status,
            status
        );
        assert_eq!(
            s.get_order(&scope, &id)
                .await
                .unwrap()
                .unwrap()
                .fields
                .status,
            status
        );
    }

    s.delete_order(&scope, &id).await.unwrap();
    assert!(s.get_order(&scope, &id).await.unwrap().is_none());
    assert!(is_not_found(s.delete_order(&scope, &id).await));
    assert!(is_not_found(
        s.update_order(&scope, &id, &new_fields, t(11)).await
    ));
    // An unknown client, in scope or not, is NotFound.
    assert!(is_not_found(
        s.create_order(&scope, &new_id("ord"), &order("cli_nope"), None, t(12))
            .await
    ));
}

async fn create_order_with_an_inline_client_is_one_transaction(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let client_id = new_id("cli");
    let fields = order(&client_id);
    let o = s
        .create_order(
            &scope,
            &new_id("ord"),
            &fields,
            Some((&client_id, &client("Ada"))),
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(o.fields.client_id, client_id);
    assert_eq!(o.reference, "RM-10001");
    let c = s
        .get_client(&scope, &client_id)
        .await
        .unwrap()
        .expect("the inline client");
    assert_eq!(c.fields, client("Ada"));

    // An order insert that fails (its id is taken) leaves no client behind
    // and uses no reference.
    let other_client = new_id("cli");
    let r = s
        .create_order(
            &scope,
            &o.id,
            &order(&other_client),
            Some((&other_client, &client("Bo"))),
            t(1),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(s.get_client(&scope, &other_client).await.unwrap().is_none());
    let (_, next) = add_order(s, &scope, &client_id, t(2)).await;
    assert_eq!(next, "RM-10002");
}

async fn device_crud_round_trip(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    let (order_id, _) = add_order(s, &scope, &c, t(0)).await;
    let id = new_id("dev");

    let created = s
        .create_device(
            &scope,
            &DeviceOwner::Order(order_id.clone()),
            &id,
            &device(),
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.order_id.as_deref()),
        (id.as_str(), Some(order_id.as_str()))
    );
    assert_eq!(
        created.client_id, c,
        "a device on an order is the order's client's"
    );
    assert_eq!(created.fields, device());
    let got = s
        .get_device(&scope, &id)
        .await
        .unwrap()
        .expect("the device");
    assert_eq!(got.order_id.as_deref(), Some(order_id.as_str()));
    assert_eq!(got.numeric_id, created.numeric_id);
    assert_eq!(got.fields, device());
    assert_eq!((got.created_at, got.updated_at), (t(1), t(1)));

    let types = [
        DeviceType::Phone,
        DeviceType::Tablet,
        DeviceType::Laptop,
        DeviceType::Desktop,
        DeviceType::Console,
        DeviceType::Watch,
        DeviceType::Other,
    ];
    let statuses = [
        DeviceStatus::Received,
        DeviceStatus::Diagnosing,
        DeviceStatus::AwaitingParts,
        DeviceStatus::Repairing,
        DeviceStatus::Repaired,
        DeviceStatus::Unrepairable,
        DeviceStatus::Returned,
    ];
    for (device_type, status) in types.into_iter().zip(statuses) {
        let fields = DeviceFields {
            device_type,
            status,
            brand: None,
            imei: None,
            serial: Some("C02XK".into()),
            color: Some("Space grey".into()),
            ..device()
        };
        let updated = s.update_device(&scope, &id, &fields, t(2)).await.unwrap();
        assert_eq!(updated.fields, fields);
        assert_eq!((updated.created_at, updated.updated_at), (t(1), t(2)));
        assert_eq!(
            s.get_device(&scope, &id).await.unwrap().unwrap().fields,
            fields
        );
    }

    s.delete_device(&scope, &id).await.unwrap();
    assert!(s.get_device(&scope, &id).await.unwrap().is_none());
    assert!(is_not_found(s.delete_device(&scope, &id).await));
    assert!(is_not_found(
        s.update_device(&scope, &id, &device(), t(3)).await
    ));
    assert!(is_not_found(
        s.create_device(
            &scope,
            &DeviceOwner::Order("ord_nope".into()),
            &new_id("dev"),
            &device(),
            t(3)
        )
        .await
    ));
}

// ---------------------------------------------------------------------------
// Tenancy
// ---------------------------------------------------------------------------

async fn another_shop_or_environment_cannot_reach_a_scopes_rows(store: Arc<dyn Store>) {
    let s = &store;
    let shop_a = new_shop(s).await;
    let shop_b = new_shop(s).await;
    let a = live(&shop_a);
    let client_a = add_client(s, &a, "Sam", t(0)).await;
    let (order_a, _) = add_order(s, &a, &client_a, t(0)).await;
    let device_a = new_id("dev");
    s.create_device(
        &a,
        &DeviceOwner::Order(order_a.clone()),
        &device_a,
        &device(),
        t(0),
    )
    .await
    .unwrap();

    for other in [live(&shop_b), test_env(&shop_a), test_env(&shop_b)] {
        let ctx = format!("{other:?}");
        assert!(
            s.get_client(&other, &client_a).await.unwrap().is_none(),
            "{ctx}"
        );
        assert!(
            s.get_order(&other, &order_a).await.unwrap().is_none(),
            "{ctx}"
        );
        assert!(
            s.get_device(&other, &device_a).await.unwrap().is_none(),
            "{ctx}"
        );

        assert!(
            is_not_found(s.update_client(&other, &client_a, &client("X"), t(1)).await),
            "{ctx}"
        );
        assert!(
            is_not_found(
                s.update_order(&other, &order_a, &order(&client_a), t(1))
                    .await
            ),
            "{ctx}"
        );
        assert!(
            is_not_found(s.update_device(&other, &device_a, &device(), t(1)).await),
            "{ctx}"
        );

        // A foreign client with orders is NotFound, not a Conflict that would
        // confirm it exists.
        assert!(
            is_not_found(s.delete_client(&other, &client_a).await),
            "{ctx}"
        );
        assert!(
            is_not_found(s.delete_order(&other, &order_a).await),
            "{ctx}"
        );
        assert!(
            is_not_found(s.delete_device(&other, &device_a).await),
            "{ctx}"
        );

        assert!(
            is_not_found(
                s.create_order(&other, &new_id("ord"), &order(&client_a), None, t(1))
                    .await
            ),
            "{ctx}"
        );
        assert!(
            is_not_found(
                s.create_device(
                    &other,
                    &DeviceOwner::Order(order_a.clone()),
                    &new_id("dev"),
                    &device(),
                    t(1)
                )
                .await
            ),
            "{ctx}"
        );

        // Moving an in-scope order to a foreign client is refused too.
        let own_client = add_client(s, &other, "Own", t(1)).await;
        let (own_order, _) = add_order(s, &other, &own_client, t(1)).await;
        assert!(
            is_not_found(
                s.update_order(&other, &own_order, &order(&client_a), t(2))
                    .await
            ),
            "{ctx}"
        );
        assert_eq!(
            s.get_order(&other, &own_order)
                .await
                .unwrap()
                .unwrap()
                .fields
                .client_id,
            own_client
        );

        // Lists and list filters see only their own scope.
        let clients = s
            .list_clients(&other, None, &all(Sort::CreatedAsc))
            .await
            .unwrap();
        assert_eq!(
            clients.items.iter().map(|c| &c.id).collect::<Vec<_>>(),
            vec![&own_client],
            "{ctx}"
        );
        let by_client = OrderFilter {
            client_id: Some(client_a.clone()),
            ..Default::default()
        };
        assert_eq!(
            s.list_orders(&other, &by_client, &all(Sort::CreatedAsc))
                .await
                .unwrap()
                .total,
            0,
            "{ctx}"
        );
        let by_order = DeviceFilter {
            order_id: Some(order_a.clone()),
            ..Default::default()
        };
        assert_eq!(
            s.list_devices(&other, &by_order, &all(Sort::CreatedAsc))
                .await
                .unwrap()
                .total,
            0,
            "{ctx}"
        );
        assert_eq!(
            s.list_devices(&other, &DeviceFilter::default(), &all(Sort::CreatedAsc))
                .await
                .unwrap()
                .total,
            0
        );
    }

    // Shop A's live rows are untouched.
    assert_eq!(
        s.get_client(&a, &client_a).await.unwrap().unwrap().fields,
        client("Sam")
    );
    let o = s.get_order(&a, &order_a).await.unwrap().unwrap();
    assert_eq!((o.fields, o.updated_at), (order(&client_a), t(0)));
    assert_eq!(
        s.get_device(&a, &device_a).await.unwrap().unwrap().fields,
        device()
    );
    assert_eq!(
        s.list_clients(&a, None, &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total,
        1
    );
}

// ---------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------

async fn references_count_per_shop_and_environment_and_never_repeat(store: Arc<dyn Store>) {
    let s = &store;
    let shop_a = new_shop(s).await;
    let shop_b = new_shop(s).await;
    let (a_live, a_test, b_live) = (live(&shop_a), test_env(&shop_a), live(&shop_b));
    let ca = add_client(s, &a_live, "A", t(0)).await;
    let cat = add_client(s, &a_test, "At", t(0)).await;
    let cb = add_client(s, &b_live, "B", t(0)).await;

    let (first, r1) = add_order(s, &a_live, &ca, t(0)).await;
    assert_eq!(r1, "RM-10001");
    assert_eq!(add_order(s, &a_live, &ca, t(0)).await.1, "RM-10002");
    assert_eq!(add_order(s, &a_test, &cat, t(0)).await.1, "RM-10001");
    assert_eq!(add_order(s, &b_live, &cb, t(0)).await.1, "RM-10001");
    assert_eq!(add_order(s, &a_test, &cat, t(0)).await.1, "RM-10002");

    // Deleting an order does not free its number.
    s.delete_order(&a_live, &first).await.unwrap();
    assert_eq!(add_order(s, &a_live, &ca, t(0)).await.1, "RM-10003");
    // A failed create (unknown client) uses no number.
    assert!(is_not_found(
        s.create_order(&a_live, &new_id("ord"), &order("cli_x"), None, t(0))
            .await
    ));
    assert_eq!(add_order(s, &a_live, &ca, t(0)).await.1, "RM-10004");
}

async fn concurrent_creates_never_share_a_reference(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = s.clone();
            let scope = scope.clone();
            let c = c.clone();
            tokio::spawn(async move {
                store
                    .create_order(&scope, &new_id("ord"), &order(&c), None, t(i))
                    .await
            })
        })
        .collect();
    let mut references = BTreeSet::new();
    for task in tasks {
        let o = task.await.expect("task").expect("create_order");
        assert!(
            references.insert(o.reference.clone()),
            "{} given twice",
            o.reference
        );
    }
    let expected: BTreeSet<String> = (10001..=10050).map(|n| format!("RM-{n}")).collect();
    assert_eq!(references, expected);
    let stored: BTreeSet<String> = s
        .list_orders(&scope, &OrderFilter::default(), &all(Sort::CreatedAsc))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.reference)
        .collect();
    assert_eq!(stored, expected);
}

// ---------------------------------------------------------------------------
// Deletes
// ---------------------------------------------------------------------------

async fn a_client_with_orders_cannot_be_deleted(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    let (o1, _) = add_order(s, &scope, &c, t(0)).await;
    let (o2, _) = add_order(s, &scope, &c, t(0)).await;

    match s.delete_client(&scope, &c).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("2 orders"), "{m}");
            assert!(m.contains("delete or reassign"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    s.delete_order(&scope, &o1).await.unwrap();
    match s.delete_client(&scope, &c).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("1 order;"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(s.get_client(&scope, &c).await.unwrap().is_some());
    s.delete_order(&scope, &o2).await.unwrap();
    s.delete_client(&scope, &c).await.unwrap();
    assert!(s.get_client(&scope, &c).await.unwrap().is_none());
}

async fn deleting_an_order_deletes_its_devices_only(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    let (doomed, _) = add_order(s, &scope, &c, t(0)).await;
    let (kept, _) = add_order(s, &scope, &c, t(0)).await;
    let d1 = new_id("dev");
    let d2 = new_id("dev");
    let d3 = new_id("dev");
    s.create_device(
        &scope,
        &DeviceOwner::Order(doomed.clone()),
        &d1,
        &device(),
        t(0),
    )
    .await
    .unwrap();
    s.create_device(
        &scope,
        &DeviceOwner::Order(doomed.clone()),
        &d2,
        &device(),
        t(0),
    )
    .await
    .unwrap();
    s.create_device(
        &scope,
        &DeviceOwner::Order(kept.clone()),
        &d3,
        &device(),
        t(0),
    )
    .await
    .unwrap();

    s.delete_order(&scope, &doomed).await.unwrap();
    assert!(s.get_device(&scope, &d1).await.unwrap().is_none());
    assert!(s.get_device(&scope, &d2).await.unwrap().is_none());
    assert!(s.get_device(&scope, &d3).await.unwrap().is_some());
    let devices = s
        .list_devices(&scope, &DeviceFilter::default(), &all(Sort::CreatedAsc))
        .await
        .unwrap();
    assert_eq!(devices.total, 1);
    assert_eq!(devices.items[0].id, d3);
}

// ---------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------

async fn lists_page_and_sort_with_totals(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    // Five clients created in order c0..c4, updated in the order c3, c0, c4,
    // c1, c2; c1 and c2 share created_at (ties are broken by id).
    let created = [0, 10, 10, 30, 40];
    let mut ids = Vec::new();
    for (i, at) in created.iter().enumerate() {
        ids.push(add_client(s, &scope, &format!("C{i}"), t(*at)).await);
    }
    for (i, at) in [(3, 100), (0, 200), (4, 300), (1, 400), (2, 500)] {
        s.update_client(&scope, &ids[i], &client(&format!("C{i}")), t(at))
            .await
            .unwrap();
    }
    let tie = |a: usize, b: usize| if ids[a] < ids[b] { [a, b] } else { [b, a] };
    let [t1, t2] = tie(1, 2);
    let expect = |order: &[usize]| order.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();

    let cases = [
        (Sort::CreatedAsc, expect(&[0, t1, t2, 3, 4])),
        (Sort::CreatedDesc, expect(&[4, 3, t2, t1, 0])),
        (Sort::UpdatedAsc, expect(&[3, 0, 4, 1, 2])),
        (Sort::UpdatedDesc, expect(&[2, 1, 4, 0, 3])),
    ];
    for (sort, want) in cases {
        let whole = s.list_clients(&scope, None, &all(sort)).await.unwrap();
        assert_eq!(whole.total, 5);
        assert_eq!(
            whole.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            want,
            "{sort:?}"
        );
        // The same order, two at a time.
        let mut paged = Vec::new();
        for page in 1..=3 {
            let p = s
                .list_clients(&scope, None, &list(page, 2, sort))
                .await
                .unwrap();
            assert_eq!(p.total, 5, "{sort:?} page {page}");
            assert_eq!(p.items.len(), if page == 3 { 1 } else { 2 });
            paged.extend(p.items.into_iter().map(|c| c.id));
        }
        assert_eq!(paged, want, "{sort:?} paged");
    }
    // Past the end: empty, total still counted.
    let past = s
        .list_clients(&scope, None, &list(4, 2, Sort::CreatedDesc))
        .await
        .unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 5);
}

async fn updated_since_is_inclusive_and_filters_the_total(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    let mut orders = Vec::new();
    for i in 0..4 {
        orders.push(add_order(s, &scope, &c, t(i * SECOND)).await.0);
    }
    let query = ListQuery {
        updated_since: Some(t(2 * SECOND)),
        ..all(Sort::UpdatedAsc)
    };
    let p = s
        .list_orders(&scope, &OrderFilter::default(), &query)
        .await
        .unwrap();
    assert_eq!(p.total, 2);
    assert_eq!(
        p.items.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        orders[2..].to_vec()
    );
    // An update brings an old row back in.
    let o0 = s.get_order(&scope, &orders[0]).await.unwrap().unwrap();
    s.update_order(&scope, &orders[0], &o0.fields, t(2 * SECOND + 1))
        .await
        .unwrap();
    let p = s
        .list_orders(&scope, &OrderFilter::default(), &query)
        .await
        .unwrap();
    assert_eq!(p.total, 3);
    let got: Vec<String> = p.items.into_iter().map(|o| o.id).collect();
    assert_eq!(
        got,
        vec![orders[2].clone(), orders[0].clone(), orders[3].clone()]
    );
    let query = ListQuery {
        updated_since: Some(t(2 * SECOND + 2)),
        ..all(Sort::UpdatedAsc)
    };
    assert_eq!(
        s.list_orders(&scope, &OrderFilter::default(), &query)
            .await
            .unwrap()
            .total,
        1
    );
}

async fn a_cursor_walk_returns_every_row_once_despite_equal_timestamps(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    // Eleven orders; only three distinct updated_at values.
    let mut expected = Vec::new();
    for i in 0..11 {
        let at = t((i % 3) * SECOND);
        let (id, _) = add_order(s, &scope, &c, at).await;
        expected.push((at, id));
    }
    expected.sort();
    let all_filter = OrderFilter::default();

    for per_page in [1, 2, 3, 4, 11, 20] {
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            // `page` is ignored once there is a cursor.
            let query = ListQuery {
                after: after.clone(),
                ..list(
                    if after.is_some() { 7 } else { 1 },
                    per_page,
                    Sort::UpdatedAsc,
                )
            };
            let p = s.list_orders(&scope, &all_filter, &query).await.unwrap();
            // Documented choice: total counts the filtered set, not what is
            // left after the cursor.
            assert_eq!(p.total, 11);
            let Some(last) = p.items.last() else { break };
            after = Some(Cursor {
                updated_at: last.updated_at,
                id: last.id.clone(),
            });
            seen.extend(p.items.iter().map(|o| (o.updated_at, o.id.clone())));
            if p.items.len() < per_page as usize {
                break;
            }
        }
        assert_eq!(seen, expected, "per_page {per_page}");
    }

    // The cursor combines with filters: only this client's orders, after a
    // position in the middle.
    let c2 = add_client(s, &scope, "Jo", t(0)).await;
    add_order(s, &scope, &c2, t(SECOND)).await;
    let mid = &expected[4];
    let query = ListQuery {
        after: Some(Cursor {
            updated_at: mid.0,
            id: mid.1.clone(),
        }),
        ..all(Sort::UpdatedAsc)
    };
    let by_client = OrderFilter {
        client_id: Some(c.clone()),
        ..Default::default()
    };
    let p = s.list_orders(&scope, &by_client, &query).await.unwrap();
    assert_eq!(p.total, 11);
    assert_eq!(
        p.items
            .iter()
            .map(|o| (o.updated_at, o.id.clone()))
            .collect::<Vec<_>>(),
        expected[5..].to_vec()
    );
}

async fn order_and_device_list_filters(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let c1 = add_client(s, &scope, "Sam", t(0)).await;
    let c2 = add_client(s, &scope, "Jo", t(0)).await;
    let (o1, _) = add_order(s, &scope, &c1, t(0)).await;
    let (o2, _) = add_order(s, &scope, &c1, t(1)).await;
    let (o3, _) = add_order(s, &scope, &c2, t(2)).await;
    let ready = OrderFields {
        status: OrderStatus::Ready,
        ..order(&c1)
    };
    s.update_order(&scope, &o2, &ready, t(3)).await.unwrap();
    let ready2 = OrderFields {
        status: OrderStatus::Ready,
        ..order(&c2)
    };
    s.update_order(&scope, &o3, &ready2, t(4)).await.unwrap();

    let ids = |p: latchkey::store::Paged<latchkey::domain::order::Order>| {
        (
            p.total,
            p.items.into_iter().map(|o| o.id).collect::<Vec<_>>(),
        )
    };
    let q = all(Sort::CreatedAsc);
    let filter = |status: Option<OrderStatus>, client_id: Option<&String>| OrderFilter {
        statuses: status.into_iter().collect(),
        client_id: client_id.cloned(),
    };
    assert_eq!(
        ids(s
            .list_orders(&scope, &filter(None, Some(&c1)), &q)
            .await
            .unwrap()),
        (2, vec![o1.clone(), o2.clone()])
    );
    assert_eq!(
        ids(s
            .list_orders(&scope, &filter(Some(OrderStatus::Ready), None), &q)
            .await
            .unwrap()),
        (2, vec![o2.clone(), o3.clone()])
    );
    assert_eq!(
        ids(s
            .list_orders(&scope, &filter(Some(OrderStatus::Ready), Some(&c1)), &q)
            .await
            .unwrap()),
        (1, vec![o2.clone()])
    );
    assert_eq!(
        ids(s
            .list_orders(&scope, &filter(Some(OrderStatus::Cancelled), None), &q)
            .await
            .unwrap()),
        (0, vec![])
    );
    assert_eq!(
        s.list_orders(&scope, &filter(None, None), &q)
            .await
            .unwrap()
            .total,
        3
    );

    let d1 = new_id("dev");
    let d2 = new_id("dev");
    s.create_device(
        &scope,
        &DeviceOwner::Order(o1.clone()),
        &d1,
        &device(),
        t(5),
    )
    .await
    .unwrap();
    s.create_device(
        &scope,
        &DeviceOwner::Order(o2.clone()),
        &d2,
        &device(),
        t(6),
    )
    .await
    .unwrap();
    let by_order = DeviceFilter {
        order_id: Some(o1.clone()),
        ..Default::default()
    };
    let p = s.list_devices(&scope, &by_order, &q).await.unwrap();
    assert_eq!(
        (
            p.total,
            p.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>()
        ),
        (1, vec![d1.clone()])
    );
    let p = s
        .list_devices(
            &scope,
            &DeviceFilter::default(),
            &list(1, 1, Sort::CreatedDesc),
        )
        .await
        .unwrap();
    assert_eq!((p.total, p.items[0].id.clone()), (2, d2));
}

async fn client_search_is_a_case_insensitive_literal_substring(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let add = |fields: ClientFields| {
        let s = s.clone();
        let scope = scope.clone();
        async move {
            let id = new_id("cli");
            s.create_client(&scope, &id, &fields, t(0)).await.unwrap();
            id
        }
    };
    let sam = add(client("Sam")).await;
    let percent = add(ClientFields {
        business_name: Some("100% Repairs".into()),
        ..Default::default()
    })
    .await;
    let underscore = add(ClientFields {
        email: Some("jo_w@example.com".into()),
        ..Default::default()
    })
    .await;
    let phone = add(ClientFields {
        phone: Some("+353 1 555 0142".into()),
        ..Default::default()
    })
    .await;
    let accented = add(ClientFields {
        last_name: Some("Ébé Müller".into()),
        ..Default::default()
    })
    .await;
    let notes_only = add(ClientFields {
        first_name: Some("Zed".into()),
        notes: Some("needle in the notes".into()),
        city: Some("Needleton".into()),
        ..Default::default()
    })
    .await;

    let search = |q: &'static str| {
        let s = s.clone();
        let scope = scope.clone();
        async move {
            let p = s
                .list_clients(&scope, Some(q), &all(Sort::CreatedAsc))
                .await
                .unwrap();
            let ids: HashSet<String> = p.items.into_iter().map(|c| c.id).collect();
            assert_eq!(p.total as usize, ids.len(), "total for {q:?}");
            ids
        }
    };
    let set = |ids: &[&String]| ids.iter().map(|s| (*s).clone()).collect::<HashSet<_>>();

    assert_eq!(search("sAM").await, set(&[&sam]), "first name, any case");
    assert_eq!(search("PATEL").await, set(&[&sam]), "last name");
    assert_eq!(search("sam@EXAMPLE").await, set(&[&sam]), "email");
    assert_eq!(search("repairs").await, set(&[&percent]), "business name");
    assert_eq!(search("555 01").await, set(&[&phone]), "phone");
    assert_eq!(search("%").await, set(&[&percent]), "`%` is literal");
    assert_eq!(search("0% r").await, set(&[&percent]));
    assert_eq!(search("_").await, set(&[&underscore]), "`_` is literal");
    assert_eq!(search("o_w").await, set(&[&underscore]));
    assert_eq!(search("\\").await, set(&[]), "`\\` is literal");
    assert_eq!(
        search("ébé müller").await,
        set(&[&accented]),
        "non-ASCII folds too"
    );
    assert_eq!(search("MÜLL").await, set(&[&accented]));
    assert_eq!(
        search("needle").await,
        set(&[]),
        "notes and city are not searched"
    );
    assert_eq!(search("sampatel").await, set(&[]), "no match across fields");
    assert_eq!(search("").await.len(), 6, "an empty q matches everything");
    let _ = notes_only;

    // An update changes what matches.
    s.update_client(&scope, &sam, &client("Samira"), t(1))
        .await
        .unwrap();
    assert_eq!(search("samira").await, set(&[&sam]));
    s.update_client(
        &scope,
        &sam,
        &ClientFields {
            business_name: Some("Acme".into()),
            ..Default::default()
        },
        t(2),
    )
    .await
    .unwrap();
    assert_eq!(search("sam").await, set(&[]));

    // Search pages and counts like any list.
    let p = s
        .list_clients(&scope, Some("e"), &list(1, 2, Sort::CreatedAsc))
        .await
        .unwrap();
    assert_eq!(p.items.len(), 2);
    assert_eq!(p.total, 5, "every client but the phone-only one has an `e`");
}

// ---------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------

async fn reset_test_data_replaces_only_test_data_and_references_keep_counting(
    store: Arc<dyn Store>,
) {
    let s = &store;
    let shop = new_shop(s).await;
    let other_shop = new_shop(s).await;
    let (l, te, other) = (live(&shop), test_env(&shop), test_env(&other_shop));
    let live_client = add_client(s, &l, "Live", t(0)).await;
    let (live_order, _) = add_order(s, &l, &live_client, t(0)).await;
    let test_client = add_client(s, &te, "Old", t(0)).await;
    let (test_order, r) = add_order(s, &te, &test_client, t(0)).await;
    assert_eq!(r, "RM-10001");
    let test_device = new_id("dev");
    s.create_device(
        &te,
        &DeviceOwner::Order(test_order.clone()),
        &test_device,
        &device(),
        t(0),
    )
    .await
    .unwrap();
    let other_client = add_client(s, &other, "Other", t(0)).await;

    let sample = latchkey::domain::sample::sample_data();
    let n_orders = sample.orders.len();
    s.reset_test_data(&shop, &sample, t(10)).await.unwrap();

    // The old test rows are gone; the sample is there.
    assert!(s.get_client(&te, &test_client).await.unwrap().is_none());
    assert!(s.get_order(&te, &test_order).await.unwrap().is_none());
    assert!(s.get_device(&te, &test_device).await.unwrap().is_none());
    let clients = s
        .list_clients(&te, None, &all(Sort::CreatedAsc))
        .await
        .unwrap();
    assert_eq!(clients.total as usize, sample.clients.len());
    for (id, fields) in &sample.clients {
        let c = s.get_client(&te, id).await.unwrap().expect("sample client");
        assert_eq!(&c.fields, fields);
        assert_eq!(c.created_at, t(10));
    }
    let mut references = Vec::new();
    for (id, fields) in &sample.orders {
        let o = s.get_order(&te, id).await.unwrap().expect("sample order");
        assert_eq!(&o.fields, fields);
        references.push(o.reference);
    }
    let expected: Vec<String> = (0..n_orders).map(|i| format!("RM-{}", 10002 + i)).collect();
    assert_eq!(
        references, expected,
        "sample orders continue the sequence, in sample order"
    );
    for (id, order_id, fields) in &sample.devices {
        let d = s.get_device(&te, id).await.unwrap().expect("sample device");
        assert_eq!((d.order_id.as_ref(), &d.fields), (Some(order_id), fields));
    }
    assert_eq!(
        s.list_devices(&te, &DeviceFilter::default(), &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total as usize,
        sample.devices.len()
    );

    // Live data, and another shop's test data, are untouched.
    assert!(s.get_client(&l, &live_client).await.unwrap().is_some());
    assert!(s.get_order(&l, &live_order).await.unwrap().is_some());
    assert!(s.get_client(&other, &other_client).await.unwrap().is_some());
    assert!(
        s.list_orders(&l, &OrderFilter::default(), &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .items
            .iter()
            .all(|o| o.reference == "RM-10001")
    );

    // A second reset installs fresh rows; references still never repeat.
    let again = latchkey::domain::sample::sample_data();
    s.reset_test_data(&shop, &again, t(20)).await.unwrap();
    for (id, _) in &sample.clients {
        assert!(s.get_client(&te, id).await.unwrap().is_none());
    }
    let first_again = s.get_order(&te, &again.orders[0].0).await.unwrap().unwrap();
    assert_eq!(first_again.reference, format!("RM-{}", 10002 + n_orders));
    let c = &again.clients[0].0;
    let (_, next) = add_order(s, &te, c, t(21)).await;
    assert_eq!(next, format!("RM-{}", 10002 + 2 * n_orders));
    assert_eq!(
        add_order(s, &l, &live_client, t(21)).await.1,
        "RM-10002",
        "live keeps its own count"
    );

    // A reset with an empty sample just empties the test data.
    let empty = SampleData {
        clients: vec![],
        orders: vec![],
        devices: vec![],
    };
    s.reset_test_data(&shop, &empty, t(30)).await.unwrap();
    assert_eq!(
        s.list_clients(&te, None, &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        s.list_orders(&te, &OrderFilter::default(), &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        s.list_clients(&l, None, &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total,
        1
    );
}

// ---------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------

async fn idempotency_keys_claim_replay_mismatch_and_abandon(store: Arc<dyn Store>) {
    let s = &store;
    let shop = new_shop(s).await;
    let scope = live(&shop);

    assert_eq!(
        s.begin_idempotent(&scope, "k1", "fp-a", t(0))
            .await
            .unwrap(),
        Idempotency::New
    );
    assert_eq!(
        s.begin_idempotent(&scope, "k1", "fp-a", t(1))
            .await
            .unwrap(),
        Idempotency::InProgress
    );
    assert_eq!(
        s.begin_idempotent(&scope, "k1", "fp-b", t(1))
            .await
            .unwrap(),
        Idempotency::Mismatch
    );

    // The same key in another environment or shop is a different key.
    assert_eq!(
        s.begin_idempotent(&test_env(&shop), "k1", "fp-b", t(1))
            .await
            .unwrap(),
        Idempotency::New
    );
    let other = live(&new_shop(s).await);
    assert_eq!(
        s.begin_idempotent(&other, "k1", "fp-b", t(1))
            .await
            .unwrap(),
        Idempotency::New
    );

    s.finish_idempotent(
        &scope,
        "k1",
        201,
        r#"{"order":{"id":"ord_1"}}"#,
        Some("/api/v1/orders/ord_1"),
    )
    .await
    .unwrap();
    let replay = Idempotency::Replay {
        status: 201,
        body: r#"{"order":{"id":"ord_1"}}"#.into(),
        resource_path: Some("/api/v1/orders/ord_1".into()),
    };
    assert_eq!(
        s.begin_idempotent(&scope, "k1", "fp-a", t(2))
            .await
            .unwrap(),
        replay
    );
    assert_eq!(
        s.begin_idempotent(&scope, "k1", "fp-a", t(3))
            .await
            .unwrap(),
        replay
    );
    assert_eq!(
        s.begin_idempotent(&scope, "k1", "fp-b", t(3))
            .await
            .unwrap(),
        Idempotency::Mismatch
    );

    // An answer without a resource path.
    assert_eq!(
        s.begin_idempotent(&scope, "k2", "fp", t(0)).await.unwrap(),
        Idempotency::New
    );
    s.finish_idempotent(&scope, "k2", 422, "{}", None)
        .await
        .unwrap();
    assert_eq!(
        s.begin_idempotent(&scope, "k2", "fp", t(1)).await.unwrap(),
        Idempotency::Replay {
            status: 422,
            body: "{}".into(),
            resource_path: None
        }
    );

    // Abandoning releases the claim; the key is new again, for any body.
    assert_eq!(
        s.begin_idempotent(&scope, "k3", "fp-a", t(0))
            .await
            .unwrap(),
        Idempotency::New
    );
    s.abandon_idempotent(&scope, "k3").await.unwrap();
    assert_eq!(
        s.begin_idempotent(&scope, "k3", "fp-b", t(1))
            .await
            .unwrap(),
        Idempotency::New
    );
    // Abandoning in another scope does not touch this one.
    s.abandon_idempotent(&other, "k3").await.unwrap();
    assert_eq!(
        s.begin_idempotent(&scope, "k3", "fp-b", t(2))
            .await
            .unwrap(),
        Idempotency::InProgress
    );

    // Finishing a claim that does not exist (abandoned or expired) says so.
    assert!(is_not_found(
        s.finish_idempotent(&scope, "never", 201, "{}", None).await
    ));
}

async fn idempotency_keys_expire_after_24_hours(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    assert_eq!(
        s.begin_idempotent(&scope, "k", "fp-a", t(0)).await.unwrap(),
        Idempotency::New
    );
    s.finish_idempotent(&scope, "k", 201, "{}", Some("/api/v1/clients/c"))
        .await
        .unwrap();
    assert_eq!(
        s.begin_idempotent(&scope, "pending", "fp", t(0))
            .await
            .unwrap(),
        Idempotency::New
    );

    // Just inside 24 hours: still kept.
    let almost = t(24 * HOUR - 1);
    assert!(matches!(
        s.begin_idempotent(&scope, "k", "fp-a", almost)
            .await
            .unwrap(),
        Idempotency::Replay { .. }
    ));
    assert_eq!(
        s.begin_idempotent(&scope, "pending", "fp", almost)
            .await
            .unwrap(),
        Idempotency::InProgress
    );

    // After 24 hours: gone, whatever the body (a stale claim is released too).
    let later = t(24 * HOUR + SECOND);
    assert_eq!(
        s.begin_idempotent(&scope, "k", "fp-b", later)
            .await
            .unwrap(),
        Idempotency::New
    );
    assert_eq!(
        s.begin_idempotent(&scope, "pending", "fp", later)
            .await
            .unwrap(),
        Idempotency::New
    );
    // And the new claim counts from its own time.
    assert_eq!(
        s.begin_idempotent(&scope, "k", "fp-a", t(30 * HOUR))
            .await
            .unwrap(),
        Idempotency::Mismatch
    );
}

async fn identical_requests_racing_on_one_idempotency_key_get_exactly_one_new(
    store: Arc<dyn Store>,
) {
    let scope = live(&new_shop(&store).await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let scope = scope.clone();
            tokio::spawn(async move {
                store
                    .begin_idempotent(&scope, "same-key", "POST /clients abc", t(0))
                    .await
            })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        match task.await.unwrap().expect("begin_idempotent") {
            Idempotency::New => new += 1,
            Idempotency::InProgress => {}
            other => panic!("a racing identical request got {other:?}"),
        }
    }
    assert_eq!(new, 1, "exactly one request runs");
}

// ---------------------------------------------------------------------------
// Integer ids, the fields the RepairShopr mapping needs, client devices
// ---------------------------------------------------------------------------

async fn numeric_ids_are_unique_per_kind_never_reused_and_scoped(store: Arc<dyn Store>) {
    let s = &store;
    let (a, b) = (new_shop(s).await, new_shop(s).await);
    let (la, ta, lb) = (live(&a), test_env(&a), live(&b));
    let mut seen = Vec::new();
    for scope in [&la, &ta, &lb, &la] {
        let id = add_client(s, scope, "Sam", t(0)).await;
        let got = s.get_client(scope, &id).await.unwrap().unwrap();
        assert!(got.numeric_id > 0);
        assert_eq!(
            s.id_for_number(scope, NumericKind::Client, got.numeric_id)
                .await
                .unwrap(),
            Some(id.clone())
        );
        seen.push((scope.clone(), id, got.numeric_id));
    }
    let numbers: Vec<i64> = seen.iter().map(|x| x.2).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "one counter per kind, rising: {numbers:?}"
    );
    // Another shop's or the other environment's number names nothing.
    let (_, _, n_b) = &seen[2];
    assert_eq!(
        s.id_for_number(&la, NumericKind::Client, *n_b)
            .await
            .unwrap(),
        None
    );
    let (_, _, n_test) = &seen[1];
    assert_eq!(
        s.id_for_number(&la, NumericKind::Client, *n_test)
            .await
            .unwrap(),
        None
    );
    // A deleted client's number is never given again.
    let (scope, last_id, last_n) = seen.last().unwrap().clone();
    s.delete_client(&scope, &last_id).await.unwrap();
    let next = add_client(s, &la, "Kim", t(1)).await;
    let next_n = s.get_client(&la, &next).await.unwrap().unwrap().numeric_id;
    assert!(next_n > last_n, "{next_n} after deleted {last_n}");
    assert_eq!(
        s.id_for_number(&la, NumericKind::Client, last_n)
            .await
            .unwrap(),
        None
    );

    // Orders and devices count on their own; devices of orders and devices
    // of clients share one counter.
    let c = add_client(s, &la, "Ann", t(2)).await;
    let (o1, _) = add_order(s, &la, &c, t(2)).await;
    let (o2, _) = add_order(s, &la, &c, t(2)).await;
    let on1 = s.get_order(&la, &o1).await.unwrap().unwrap().numeric_id;
    let on2 = s.get_order(&la, &o2).await.unwrap().unwrap().numeric_id;
    assert!(on1 > 0 && on2 > on1);
    assert_eq!(
        s.id_for_number(&la, NumericKind::Order, on2).await.unwrap(),
        Some(o2.clone())
    );
    let d1 = s
        .create_device(
            &la,
            &DeviceOwner::Order(o1.clone()),
            &new_id("dev"),
            &device(),
            t(3),
        )
        .await
        .unwrap();
    let d2 = s
        .create_device(
            &la,
            &DeviceOwner::Client(c.clone()),
            &new_id("dev"),
            &device(),
            t(3),
        )
        .await
        .unwrap();
    assert!(d1.numeric_id > 0 && d2.numeric_id > d1.numeric_id);
    for d in [&d1, &d2] {
        assert_eq!(
            s.id_for_number(&la, NumericKind::Device, d.numeric_id)
                .await
                .unwrap(),
            Some(d.id.clone())
        );
        assert_eq!(
            s.id_for_number(&lb, NumericKind::Device, d.numeric_id)
                .await
                .unwrap(),
            None
        );
    }
}

async fn concurrent_creates_never_share_a_numeric_id(store: Arc<dyn Store>) {
    let shop = new_shop(&store).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let scope = if i % 2 == 0 {
                live(&shop)
            } else {
                test_env(&shop)
            };
            tokio::spawn(async move {
                let id = add_client(&store, &scope, "Sam", t(i)).await;
                store
                    .get_client(&scope, &id)
                    .await
                    .unwrap()
                    .unwrap()
                    .numeric_id
            })
        })
        .collect();
    let mut numbers = HashSet::new();
    for task in tasks {
        assert!(numbers.insert(task.await.unwrap()), "a number given twice");
    }
    assert_eq!(numbers.len(), 16);
}

async fn new_optional_fields_round_trip(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    let fields = ClientFields {
        mobile: Some("+44 7700 900123".into()),
        address_2: Some("Flat 2".into()),
        state: Some("Kent".into()),
        ..client("Sam")
    };
    let id = new_id("cli");
    let made = s.create_client(&scope, &id, &fields, t(0)).await.unwrap();
    assert_eq!(made.fields, fields);
    assert_eq!(
        s.get_client(&scope, &id).await.unwrap().unwrap().fields,
        fields
    );
    let changed = ClientFields {
        state: None,
        mobile: Some("+44 7700 900999".into()),
        ..fields.clone()
    };
    assert_eq!(
        s.update_client(&scope, &id, &changed, t(1))
            .await
            .unwrap()
            .fields,
        changed
    );
    // The mobile number is searched like the phone.
    let found = s
        .list_clients(&scope, Some("900999"), &all(Sort::CreatedAsc))
        .await
        .unwrap();
    assert_eq!(found.total, 1);

    let order_fields = OrderFields {
        problem_type: Some("Screen".into()),
        ..order(&id)
    };
    let oid = new_id("ord");
    let o = s
        .create_order(&scope, &oid, &order_fields, None, t(2))
        .await
        .unwrap();
    assert_eq!(o.fields, order_fields);
    let cleared = OrderFields {
        problem_type: None,
        ..order_fields.clone()
    };
    assert_eq!(
        s.update_order(&scope, &oid, &cleared, t(3))
            .await
            .unwrap()
            .fields,
        cleared
    );
    assert_eq!(
        s.get_order(&scope, &oid).await.unwrap().unwrap().fields,
        cleared
    );

    let named = DeviceFields {
        name: Some("Sam's phone".into()),
        ..device()
    };
    let did = new_id("dev");
    let d = s
        .create_device(&scope, &DeviceOwner::Order(oid.clone()), &did, &named, t(4))
        .await
        .unwrap();
    assert_eq!(d.fields, named);
    assert_eq!(
        s.get_device(&scope, &did).await.unwrap().unwrap().fields,
        named
    );
}

async fn a_client_device_belongs_to_the_client_without_an_order(store: Arc<dyn Store>) {
    let s = &store;
    let shop = new_shop(s).await;
    let scope = live(&shop);
    let c = add_client(s, &scope, "Sam", t(0)).await;
    let other = add_client(s, &scope, "Kim", t(0)).await;
    let (o, _) = add_order(s, &scope, &c, t(0)).await;
    let on_order = s
        .create_device(
            &scope,
            &DeviceOwner::Order(o.clone()),
            &new_id("dev"),
            &device(),
            t(1),
        )
        .await
        .unwrap();
    let id = new_id("dev");
    let own = s
        .create_device(
            &scope,
            &DeviceOwner::Client(c.clone()),
            &id,
            &device(),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (own.order_id.as_deref(), own.client_id.as_str()),
        (None, c.as_str())
    );
    assert_eq!((own.created_at, own.updated_at), (t(2), t(2)));
    let got = s.get_device(&scope, &id).await.unwrap().unwrap();
    assert_eq!((got.order_id, got.client_id), (None, c.clone()));

    // Listed with the client's other devices, not under any order.
    let by_client = DeviceFilter {
        client_id: Some(c.clone()),
        ..Default::default()
    };
    let listed = s
        .list_devices(&scope, &by_client, &all(Sort::CreatedAsc))
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>(),
        vec![on_order.id.clone(), id.clone()]
    );
    assert_eq!(listed.total, 2);
    let by_other = DeviceFilter {
        client_id: Some(other.clone()),
        ..Default::default()
    };
    assert_eq!(
        s.list_devices(&scope, &by_other, &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total,
        0
    );
    let by_order = DeviceFilter {
        order_id: Some(o.clone()),
        ..Default::default()
    };
    assert_eq!(
        s.list_devices(&scope, &by_order, &all(Sort::CreatedAsc))
            .await
            .unwrap()
            .total,
        1
    );

    // Update and delete reach it like any device.
    let fields = DeviceFields {
        name: Some("Office laptop".into()),
        device_type: DeviceType::Laptop,
        ..device()
    };
    let updated = s.update_device(&scope, &id, &fields, t(3)).await.unwrap();
    assert_eq!(
        (updated.fields, updated.order_id, updated.updated_at),
        (fields, None, t(3))
    );

    // A client with devices of its own is not deleted from under them.
    let refused = s.delete_client(&scope, &c).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let refused = s.delete_client(&scope, &other).await;
    assert!(
        refused.is_ok(),
        "a client without devices or orders goes: {refused:?}"
    );
    s.delete_device(&scope, &id).await.unwrap();
    assert!(s.get_device(&scope, &id).await.unwrap().is_none());
    assert!(is_not_found(s.delete_device(&scope, &id).await));
    assert!(is_not_found(
        s.update_device(&scope, &id, &device(), t(4)).await
    ));

    // Another shop's or environment's client is as if it did not exist.
    let elsewhere = live(&new_shop(s).await);
    for scope in [&elsewhere, &test_env(&shop)] {
        assert!(is_not_found(
            s.create_device(
                scope,
                &DeviceOwner::Client(c.clone()),
                &new_id("dev"),
                &device(),
                t(5)
            )
            .await
        ));
    }
    assert!(is_not_found(
        s.create_device(
            &scope,
            &DeviceOwner::Client("cli_nope".into()),
            &new_id("dev"),
            &device(),
            t(5)
        )
        .await
    ));

    // A test-data reset removes the test environment's client devices too.
    let te = test_env(&shop);
    let tc = add_client(s, &te, "Tess", t(6)).await;
    let td = new_id("dev");
    s.create_device(&te, &DeviceOwner::Client(tc.clone()), &td, &device(), t(6))
        .await
        .unwrap();
    s.reset_test_data(
        &shop,
        &SampleData {
            clients: vec![],
            orders: vec![],
            devices: vec![],
        },
        t(7),
    )
    .await
    .unwrap();
    assert!(s.get_device(&te, &td).await.unwrap().is_none());
    assert!(s.get_device(&scope, &on_order.id).await.unwrap().is_some());
}

async fn numeric_order_email_and_status_set_filters(store: Arc<dyn Store>) {
    let s = &store;
    let scope = live(&new_shop(s).await);
    // Created out of time order: numeric order is creation order, not time.
    let c1 = add_client(s, &scope, "Sam", t(50)).await;
    let c2 = add_client(s, &scope, "Kim", t(10)).await;
    let c3 = add_client(s, &scope, "Ann", t(30)).await;
    let query = all(Sort::NumericAsc);
    let ids = |p: latchkey::store::Paged<latchkey::domain::client::Client>| {
        p.items.into_iter().map(|c| c.id).collect::<Vec<_>>()
    };
    let every = ClientFilter::default();
    assert_eq!(
        ids(s.list_clients_where(&scope, &every, &query).await.unwrap()),
        vec![c1.clone(), c2.clone(), c3.clone()]
    );
    let paged = s
        .list_clients_where(&scope, &every, &list(2, 2, Sort::NumericAsc))
        .await
        .unwrap();
    assert_eq!((paged.total, ids(paged)), (3, vec![c3.clone()]));
    let by_email = ClientFilter {
        email: Some("KIM@example.com".into()),
        ..Default::default()
    };
    let found = s
        .list_clients_where(&scope, &by_email, &query)
        .await
        .unwrap();
    assert_eq!((found.total, ids(found)), (1, vec![c2.clone()]));
    let partial = ClientFilter {
        email: Some("kim@example".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_clients_where(&scope, &partial, &query)
            .await
            .unwrap()
            .total,
        0,
        "the email filter matches the whole address"
    );

    let (o1, _) = add_order(s, &scope, &c1, t(0)).await;
    let (o2, _) = add_order(s, &scope, &c1, t(0)).await;
    let (o3, _) = add_order(s, &scope, &c1, t(0)).await;
    for (id, status) in [
        (&o1, OrderStatus::Collected),
        (&o2, OrderStatus::Despatched),
        (&o3, OrderStatus::Ready),
    ] {
        let fields = OrderFields {
            status,
            ..order(&c1)
        };
        s.update_order(&scope, id, &fields, t(1)).await.unwrap();
    }
    let any_of = OrderFilter {
        statuses: vec![OrderStatus::Collected, OrderStatus::Despatched],
        ..Default::default()
    };
    let got = s
        .list_orders(&scope, &any_of, &all(Sort::NumericAsc))
        .await
        .unwrap();
    assert_eq!(
        got.items.into_iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![o1, o2]
    );
}

contracts! {
    numeric_ids_are_unique_per_kind_never_reused_and_scoped,
    concurrent_creates_never_share_a_numeric_id,
    new_optional_fields_round_trip,
    a_client_device_belongs_to_the_client_without_an_order,
    numeric_order_email_and_status_set_filters,
    client_crud_round_trip,
    order_crud_round_trip,
    create_order_with_an_inline_client_is_one_transaction,
    device_crud_round_trip,
    another_shop_or_environment_cannot_reach_a_scopes_rows,
    references_count_per_shop_and_environment_and_never_repeat,
    concurrent_creates_never_share_a_reference,
    a_client_with_orders_cannot_be_deleted,
    deleting_an_order_deletes_its_devices_only,
    lists_page_and_sort_with_totals,
    updated_since_is_inclusive_and_filters_the_total,
    a_cursor_walk_returns_every_row_once_despite_equal_timestamps,
    order_and_device_list_filters,
    client_search_is_a_case_insensitive_literal_substring,
    reset_test_data_replaces_only_test_data_and_references_keep_counting,
    idempotency_keys_claim_replay_mismatch_and_abandon,
    idempotency_keys_expire_after_24_hours,
    identical_requests_racing_on_one_idempotency_key_get_exactly_one_new,
}
