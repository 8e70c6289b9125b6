//! Pure types and rules, no I/O: unit-tested, property-tested and benchmarked.

pub mod client;
pub mod clock;
pub mod codes;
pub mod device;
pub mod fields;
pub mod key;
pub mod legacy;
pub mod net;
pub mod order;
pub mod permission;
pub mod policy;
pub mod sample;
pub mod token;
pub mod user;

use serde::Serialize;

use rand::{RngCore, TryRngCore};

/// The base62 alphabet of keys and ids.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills `out` with uniformly random base62 characters from `rng`, drawing
/// random bytes in blocks (one OS call per block for `OsRng`, not one per
/// character) and rejecting bytes >= 248 (= 4 x 62) so no character is
/// likelier than another: each carries log2(62) bits.
pub fn fill_base62(rng: &mut impl RngCore, out: &mut [u8]) {
    let mut block = [0u8; 64];
    let mut filled = 0;
    while filled < out.len() {
        rng.fill_bytes(&mut block);
        for b in block.iter().copied().filter(|&b| b < 248) {
            let Some(slot) = out.get_mut(filled) else {
                break;
            };
            *slot = BASE62[usize::from(b % 62)];
            filled += 1;
        }
    }
}

fn base62_string(rng: &mut impl RngCore, len: usize) -> String {
    let mut chars = vec![0u8; len];
    fill_base62(rng, &mut chars);
    String::from_utf8(chars).expect("base62 is ASCII")
}

/// `len` random base62 characters from the OS CSPRNG, for one-time secrets
/// (generated passwords, setup tokens, session tokens) and ids.
pub fn random_base62(len: usize) -> String {
    base62_string(&mut rand::rngs::OsRng.unwrap_err(), len)
}

/// `len` random base62 characters for values that must be unique but are not
/// secrets (request ids): the thread-local generator, no system call, since
/// this runs on every request.
pub fn unique_base62(len: usize) -> String {
    base62_string(&mut rand::rng(), len)
}

/// A new opaque id: a type prefix and 24 random base62 characters
/// (`key_7Qb…`), so an id says what it names and cannot be guessed.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_strings_are_base62_and_spread_over_the_alphabet() {
        let s = random_base62(6200);
        assert_eq!(s.len(), 6200);
        let mut seen = [0u32; 62];
        for b in s.bytes() {
            let i = BASE62.iter().position(|&c| c == b).expect("base62");
            seen[i] += 1;
        }
        // 100 expected per character; a biased or stuck generator fails this.
        assert!(seen.iter().all(|&n| (40..=180).contains(&n)), "{seen:?}");
        assert_ne!(unique_base62(20), unique_base62(20));
        assert_eq!(unique_base62(0), "");
    }
}

/// One invalid field, for `validation_failed` answers and form messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// For merge-patch fields: absent → `None`, `null` → `Some(None)`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
