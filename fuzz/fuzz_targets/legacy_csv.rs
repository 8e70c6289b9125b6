//! The legacy key import file: arbitrary text parses or is refused with a
//! reason, never a panic; every accepted row holds a legacy-shaped key and
//! names a real line of the file; no key is accepted twice.
#![no_main]

use std::collections::HashSet;

use latchkey::domain::legacy::parse_file;
use latchkey::domain::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    match parse_file(text) {
        Ok((rows, errors)) => {
            let mut seen = HashSet::new();
            for row in &rows {
                assert!(token::is_legacy_shape(&row.secret), "{:?}", row.secret);
                assert!(
                    row.line >= 2 && row.line <= lines,
                    "line {} of {lines}",
                    row.line
                );
                assert!(seen.insert(row.secret.clone()), "a key accepted twice");
            }
            for e in &errors {
                assert!(e.line >= 2 && e.line <= lines);
                assert!(!e.reason.is_empty());
            }
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
