//! Authentication of keyed requests: the server secret and key hashing, the
//! key cache with its invalidation feed, and the verify path.

pub mod cache;
pub mod secret;
pub mod usage;
pub mod verify;
