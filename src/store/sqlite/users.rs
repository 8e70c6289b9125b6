//! SQLite: users of the web UI, one-time passwords and login sessions. The
//! port is written once in [`crate::store::shared::users`].

use super::audit::insert_audit;
use super::{SqliteStore, map_err};

crate::store::shared::users::user_store!(SqliteStore);
