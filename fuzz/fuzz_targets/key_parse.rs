//! The key parser: any text is classified without panicking, and what it
//! accepts is exactly SPEC's format. Half the inputs are built into
//! well-formed keys (a valid checksum is out of reach of blind mutation), so
//! the accepting path and the display form are exercised too.
#![no_main]

use latchkey::domain::token::{self, KEY_LEN, Malformed, Presented};
use libfuzzer_sys::fuzz_target;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 && rest.len() >= 32 {
        // A well-formed key from 32 input bytes, then maybe one byte changed.
        let random: Vec<u8> = rest[..32]
            .iter()
            .map(|b| ALPHABET[*b as usize % 62])
            .collect();
        let prefix = if mode % 4 == 0 {
            "lk_live_"
        } else {
            "lk_test_"
        };
        let mut key = format!(
            "{prefix}{}{}",
            std::str::from_utf8(&random).unwrap(),
            std::str::from_utf8(&token::checksum(&random)).unwrap()
        );
        assert!(
            matches!(token::classify(&key), Ok(Presented::Standard { .. })),
            "{key}"
        );
        let shown = token::display_form(&key);
        assert!(
            shown.starts_with(prefix) && shown.chars().count() == 17,
            "{shown}"
        );
        assert!(
            !shown.contains(&key[12..42]),
            "the display form hides the middle"
        );
        if let Some(&flip) = rest.get(32) {
            // Changing one character of the random part or the checksum to
            // another character of the alphabet must be caught (CRC-32
            // detects every single-symbol change of this length).
            let at = 8 + flip as usize % 38;
            let old = key.as_bytes()[at];
            let new = ALPHABET[(ALPHABET.iter().position(|c| *c == old).unwrap() + 1) % 62];
            key.replace_range(at..at + 1, std::str::from_utf8(&[new]).unwrap());
            assert_eq!(token::classify(&key), Err(Malformed::Checksum), "{key}");
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let shown = token::display_form(text);
    match token::classify(text) {
        Ok(Presented::Standard { key, .. }) => {
            assert_eq!(key.len(), KEY_LEN);
            assert!(key.starts_with("lk_live_") || key.starts_with("lk_test_"));
            assert!(key.bytes().skip(8).all(|b| b.is_ascii_alphanumeric()));
        }
        Ok(Presented::Legacy(key)) => {
            assert!(token::is_legacy_shape(key));
            assert!(!key.starts_with("lk_"));
            // The display form never carries more than the last 4 characters.
            assert!(shown.chars().count() <= 5, "{shown}");
        }
        Err(Malformed::Empty) => assert!(text.is_empty()),
        Err(_) => assert!(!text.is_empty()),
    }
});
