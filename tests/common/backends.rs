//! The backends every store contract runs on, and the `contracts!` macro that
//! turns each contract (`async fn contract(store: Arc<dyn Store>)`) into one
//! `#[tokio::test]` per backend: `sqlite::…` and `postgres::…`.
//!
//! Each test gets a fresh, empty store: contracts may assume no shops, keys,
//! feed rows or audit events exist when they start. PostgreSQL runs on the
//! throwaway server of `pg.rs` (or `LATCHKEY_TEST_DATABASE_URL`); a machine
//! without PostgreSQL fails these tests saying what to install.

use std::sync::Arc;

use latchkey::store::Store;
use latchkey::store::postgres::PostgresStore;
use latchkey::store::sqlite::SqliteStore;

#[path = "pg.rs"]
pub mod pg;

/// A store under test and what must outlive it (its temporary directory, or
/// its PostgreSQL database).
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub _keep_alive: Box<dyn Send>,
}

/// SQLite: a fresh database file in its own temporary directory.
#[allow(dead_code, reason = "not every test binary runs SQLite")]
pub async fn open_sqlite() -> OpenedStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open_path(&dir.path().join("latchkey.db"))
        .await
        .expect("open a fresh SQLite store");
    OpenedStore {
        store: Arc::new(store),
        _keep_alive: Box::new(dir),
    }
}

/// PostgreSQL: a fresh database, migrated by opening it.
pub async fn open_postgres() -> OpenedStore {
    let db = pg::fresh_database().await;
    let store = PostgresStore::open_with(db.options.clone())
        .await
        .expect("open a fresh PostgreSQL store");
    OpenedStore {
        store: Arc::new(store),
        _keep_alive: Box::new(db),
    }
}

/// Turns each contract into a `#[tokio::test]` per backend.
#[macro_export]
macro_rules! contracts {
    ($($contract:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let opened = $crate::backends::open_sqlite().await;
                    super::$contract(opened.store.clone()).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let opened = $crate::backends::open_postgres().await;
                    super::$contract(opened.store.clone()).await;
                }
            )+
        }
    };
}
