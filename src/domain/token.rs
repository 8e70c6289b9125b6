//! API key tokens: generation, parsing with checksum, and the display form.
//!
//! A standard key is `lk_live_` or `lk_test_`, 32 random base62 characters and a
//! 6-character base62 CRC-32 checksum of those 32 characters (46 characters in
//! all). Parsing checks all of that before anything is hashed, so a mistyped or
//! made-up key never reaches the cache or the database.

use std::fmt;

use rand::TryRngCore;
use serde::{Deserialize, Serialize};

// The base62 alphabet, in the order docs/KEYS.md fixes: `0-9A-Za-z`.
use super::BASE62 as ALPHABET;
const PREFIX_LEN: usize = 8; // "lk_live_" / "lk_test_"
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Length of a standard key.
pub const KEY_LEN: usize = PREFIX_LEN + RANDOM_LEN + CHECKSUM_LEN;
/// Bounds of a legacy key (the earlier scheme).
pub const LEGACY_MIN_LEN: usize = 16;
pub const LEGACY_MAX_LEN: usize = 128;
/// Legacy keys shorter than this are flagged as weak on import.
pub const LEGACY_WEAK_BELOW: usize = 22;

/// Which data set a key opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Environment::Live => "lk_live_",
            Environment::Test => "lk_test_",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Environment::Live),
            "test" => Ok(Environment::Test),
            other => Err(format!(
                "unknown environment `{other}`: expected `live` or `test`"
            )),
        }
    }
}

/// A full key secret. Its `Debug` and `Display` never show the secret; the only
/// way to read it is [`PlainKey::expose`], used where the secret is handed to its
/// owner exactly once.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainKey(String);

impl PlainKey {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps an existing secret (a legacy key being imported).
    pub fn from_legacy(secret: String) -> Self {
        PlainKey(secret)
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainKey({})", display_form(&self.0))
    }
}

/// Creates a new key from the operating system's CSPRNG.
pub fn generate(environment: Environment) -> PlainKey {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(environment.prefix());
    let mut random = [0u8; RANDOM_LEN];
    // Uniform base62 (biased bytes rejected): 190 bits for the key.
    super::fill_base62(&mut rand::rngs::OsRng.unwrap_err(), &mut random);
    key.push_str(std::str::from_utf8(&random).expect("alphabet is ASCII"));
    key.push_str(std::str::from_utf8(&checksum(&random)).expect("alphabet is ASCII"));
    PlainKey(key)
}

/// CRC-32 (IEEE) of the random part, as 6 base62 digits, most significant first.
pub fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Why a presented value is not a key. The text is for the person fixing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Empty,
    Prefix,
    Length,
    Alphabet,
    Checksum,
    NotAKey,
}

impl Malformed {
    pub fn detail(self) -> &'static str {
        match self {
            Malformed::Empty => "The API key is empty.",
            Malformed::Prefix => {
                "The API key must start with `lk_live_` or `lk_test_`. Copy the whole key from Settings → API Keys."
            }
            Malformed::Length => {
                "The API key has the wrong length: keys are 46 characters. Check that it was not cut off when copied."
            }
            Malformed::Alphabet => {
                "The API key contains characters that never appear in a key (only 0-9, A-Z and a-z follow the prefix)."
            }
            Malformed::Checksum => {
                "The API key's checksum does not match: it was mistyped or changed. Copy the whole key again."
            }
            Malformed::NotAKey => {
                "This is not an API key. Send `Authorization: Bearer lk_live_…` (or the `X-API-Key` header)."
            }
        }
    }
}

/// A presented value that passed the format checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    Standard {
        environment: Environment,
        key: &'a str,
    },
    Legacy(&'a str),
}

impl<'a> Presented<'a> {
    pub fn secret(&self) -> &'a str {
        match *self {
            Presented::Standard { key, .. } | Presented::Legacy(key) => key,
        }
    }
}

/// Reads a presented value the way docs/KEYS.md says: `lk_…` is a standard key (checked in
/// full), the legacy pattern is a legacy key, anything else is malformed.
pub fn classify(value: &str) -> Result<Presented<'_>, Malformed> {
    if value.is_empty() {
        return Err(Malformed::Empty);
    }
    if value.starts_with("lk_") {
        return parse_standard(value).map(|environment| Presented::Standard {
            environment,
            key: value,
        });
    }
    if is_legacy_shape(value) {
        return Ok(Presented::Legacy(value));
    }
    Err(Malformed::NotAKey)
}

fn parse_standard(value: &str) -> Result<Environment, Malformed> {
    let bytes = value.as_bytes();
    let environment = if bytes.starts_with(b"lk_live_") {
        Environment::Live
    } else if bytes.starts_with(b"lk_test_") {
        Environment::Test
    } else {
        return Err(Malformed::Prefix);
    };
    if bytes.len() != KEY_LEN {
        return Err(Malformed::Length);
    }
    let body = &bytes[PREFIX_LEN..];
    if !body.iter().all(u8::is_ascii_alphanumeric) {
        return Err(Malformed::Alphabet);
    }
    let (random, check) = body.split_at(RANDOM_LEN);
    if checksum(random) != check {
        return Err(Malformed::Checksum);
    }
    Ok(environment)
}

/// 16–128 characters of `[A-Za-z0-9_.-]`, not starting with `lk_`.
pub fn is_legacy_shape(value: &str) -> bool {
    (LEGACY_MIN_LEN..=LEGACY_MAX_LEN).contains(&value.len())
        && !value.starts_with("lk_")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The form shown after creation: `lk_live_AbCd…WxYz` for standard keys, `…a1b2`
/// for legacy keys. Safe to store and print.
pub fn display_form(key: &str) -> String {
    if key.len() == KEY_LEN && key.starts_with("lk_") && key.is_ascii() {
        format!(
            "{}{}…{}",
            &key[..PREFIX_LEN],
            &key[PREFIX_LEN..PREFIX_LEN + 4],
            &key[KEY_LEN - 4..]
        )
    } else {
        let tail: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        for env in [Environment::Live, Environment::Test] {
            let key = generate(env);
            let s = key.expose();
            assert_eq!(s.len(), 46);
            assert!(s.starts_with(env.prefix()));
            assert_eq!(
                classify(s),
                Ok(Presented::Standard {
                    environment: env,
                    key: s
                })
            );
        }
    }

    #[test]
    fn checksum_is_crc32_in_base62_left_padded() {
        // Decode the base62 digits back and compare with the CRC itself.
        let random = b"abcdefghijklmnopqrstuvwxyz012345";
        let c = checksum(random);
        let decoded = c.iter().fold(0u64, |acc, d| {
            acc * 62 + ALPHABET.iter().position(|a| a == d).unwrap() as u64
        });
        assert_eq!(decoded, u64::from(crc32fast::hash(random)));
    }

    #[test]
    fn checksum_matches_zlib_crc32_written_in_base62() {
        // zlib.crc32(b"abcdefghijklmnopqrstuvwxyz012345") == 1649231692 == "1nc0VA"
        assert_eq!(&checksum(b"abcdefghijklmnopqrstuvwxyz012345"), b"1nc0VA");
    }

    #[test]
    fn checksum_of_a_zero_crc_is_all_zero_digits() {
        assert_eq!(&checksum(b""), b"000000");
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let key = generate(Environment::Live);
        let debug = format!("{key:?}");
        assert!(!debug.contains(key.expose()));
        assert!(debug.contains('…'));
    }

    #[test]
    fn display_form_shows_prefix_first_four_and_last_four() {
        let key = generate(Environment::Test);
        let s = key.expose();
        let shown = display_form(s);
        assert_eq!(shown, format!("lk_test_{}…{}", &s[8..12], &s[42..]));
        assert_eq!(display_form("legacy-key-ending-a1b2"), "…a1b2");
    }

    #[test]
    fn each_kind_of_malformed_key_is_named() {
        let good = generate(Environment::Live);
        let s = good.expose();
        assert_eq!(classify(""), Err(Malformed::Empty));
        assert_eq!(
            classify(&s.replace("lk_live_", "lk_prod_")),
            Err(Malformed::Prefix)
        );
        assert_eq!(classify(&s[..45]), Err(Malformed::Length));
        assert_eq!(
            classify(&format!("{}!{}", &s[..10], &s[11..])),
            Err(Malformed::Alphabet)
        );
        assert_eq!(classify("short"), Err(Malformed::NotAKey));
        assert_eq!(
            classify("has space in the middle of it"),
            Err(Malformed::NotAKey)
        );
        assert_eq!(classify(&"x".repeat(129)), Err(Malformed::NotAKey));
    }

    #[test]
    fn legacy_values_are_recognised() {
        assert_eq!(
            classify("abcdefghijklmnop"),
            Ok(Presented::Legacy("abcdefghijklmnop"))
        );
        assert!(is_legacy_shape("a.b-c_d0123456789"));
        assert!(!is_legacy_shape("lk_abcdefghijklmnop"));
    }

    proptest! {
        #[test]
        fn every_generated_key_round_trips(live in any::<bool>()) {
            let env = if live { Environment::Live } else { Environment::Test };
            let key = generate(env);
            let parsed = matches!(classify(key.expose()), Ok(Presented::Standard { environment, .. }) if environment == env);
            prop_assert!(parsed, "generated key did not parse back");
        }

        #[test]
        fn any_single_character_change_after_the_prefix_is_refused(pos in 8usize..46, replacement in 0usize..62) {
            let key = generate(Environment::Live);
            let mut bytes = key.expose().as_bytes().to_vec();
            let new = ALPHABET[replacement];
            prop_assume!(bytes[pos] != new);
            bytes[pos] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(classify(&changed), Err(Malformed::Checksum));
        }

        #[test]
        fn classify_never_panics(s in ".{0,200}") {
            let _ = classify(&s);
            let _ = display_form(&s);
        }
    }
}
