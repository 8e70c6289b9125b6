//! Port implementations written once and instantiated for both backends.
//!
//! Each file holds one port's body as a `macro_rules!` that expands to
//! `impl Port for $Store { … }`; `store::sqlite` and `store::postgres` each
//! invoke it once, in the file of that port, which also provides the pieces
//! that differ by backend (error mapping, how a write transaction begins, the
//! audit append, the change-feed recording, row locks SQLite lacks). The SQL
//! numbers its parameters `$1, $2…`: PostgreSQL binds them natively and
//! sqlx's SQLite driver binds `$NNN` by its number, so one string serves both.

pub(crate) mod audit;
pub(crate) mod feed;
pub(crate) mod keys;
pub(crate) mod resources;
pub(crate) mod shops;
pub(crate) mod usage;
pub(crate) mod users;
