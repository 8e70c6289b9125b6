//! Allow-lists (addresses and CIDR ranges) as keys, the CLI and the legacy
//! import give them: never a panic; what parses prints back to a list that
//! parses to the same ranges; a list is always within itself.
#![no_main]

use latchkey::domain::net::AllowedIps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries: Vec<&str> = text.split('\n').take(64).collect();
    match AllowedIps::parse(&entries) {
        Ok(list) => {
            let printed = list.to_strings();
            let again = AllowedIps::parse(&printed).expect("printed entries parse");
            assert_eq!(again.to_strings(), printed);
            assert!(list.within(&list));
            assert!(again.within(&list) && list.within(&again));
            for entry in &printed {
                let first: std::net::IpAddr = entry.split('/').next().unwrap().parse().unwrap();
                assert!(list.allows(first), "{entry} allows its own address");
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for (index, message) in errors {
                // 1-based positions; 0 is about the list as a whole.
                assert!(index <= entries.len());
                assert!(!message.is_empty());
            }
        }
    }
});
