//! A core on a fresh SQLite file with a hand-moved clock, for the services'
//! unit tests.

use std::sync::Arc;

use crate::app::Core;
use crate::auth::secret::{KeyHasher, ServerSecret};
use crate::domain::clock::{ManualClock, Timestamp};
use crate::domain::user::Password;
use crate::service::shops::NewShopInput;
use crate::store::User;
use crate::store::sqlite::SqliteStore;

pub(crate) const OWNER_PASSWORD: &str = "correct horse battery staple";

pub(crate) struct Fixture {
    pub core: Core,
    pub clock: Arc<ManualClock>,
    pub owner: User,
    _dir: tempfile::TempDir,
}

/// A core on an empty database (a first run), its clock and its directory.
pub(crate) async fn empty() -> (Core, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SqliteStore::open_path(&dir.path().join("latchkey.db"))
        .await
        .expect("a new database");
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").expect("a valid time"),
    ));
    let secret = ServerSecret::new(b"unit-test-secret-unit-test-secret!!".to_vec())
        .expect("a long enough secret");
    let core = Core::new(
        Arc::new(store),
        clock.clone(),
        KeyHasher::new(&secret),
        crate::app::Policy::default(),
    );
    (core, clock, dir)
}

/// A shop with its owner.
pub(crate) async fn fixture() -> Fixture {
    let (core, clock, dir) = empty().await;
    let created = core
        .shops
        .create(NewShopInput {
            name: "Fix-It Phones",
            owner_email: "owner@fixit.example",
            password: Password::parse(OWNER_PASSWORD.into()),
        })
        .await
        .expect("a new shop");
    Fixture {
        core,
        clock,
        owner: created.owner,
        _dir: dir,
    }
}
