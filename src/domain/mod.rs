//! Pure types and rules, no I/O: unit-tested, property-tested and benchmarked.

pub mod client;
pub mod clock;
pub mod codes;
pub mod device;
pub mod fields;
pub mod key;
pub mod net;
pub mod order;
pub mod permission;
pub mod sample;
pub mod token;
pub mod user;

use rand::{Rng, TryRngCore};

/// `len` random base62 characters from the OS CSPRNG, for one-time secrets
/// (generated passwords, setup tokens) and ids.
pub fn random_base62(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::OsRng.unwrap_err();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..62)] as char)
        .collect()
}

/// A new opaque id: a type prefix and 24 random base62 characters
/// (`key_7Qb…`), so an id says what it names and cannot be guessed.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(24))
}
