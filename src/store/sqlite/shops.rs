//! SQLite: shops, the first-run setup token, the secret's fingerprint, and
//! health. The port is written once in [`crate::store::shared::shops`].

use super::audit::insert_audit;
use super::{Db, SqliteStore, map_err};

crate::store::shared::shops::shop_store!(SqliteStore);
