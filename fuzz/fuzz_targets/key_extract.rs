//! Finding the key in a request: arbitrary `Authorization`, `X-API-Key`
//! headers (zero, one or two of each, any bytes) and query strings. Never a
//! panic, and the rules SPEC states hold whatever the input.
#![no_main]

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use latchkey::auth::verify::{AuthError, KeySource};
use latchkey::http::auth::extract_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xFF: authorization values, x-api-key values, query.
    let mut parts = data.split(|b| *b == 0xFF);
    let mut headers = HeaderMap::new();
    let mut auth_count = 0;
    let mut x_count = 0;
    for (name, count) in [
        (header::AUTHORIZATION, &mut auth_count),
        (HeaderName::from_static("x-api-key"), &mut x_count),
    ] {
        let Some(field) = parts.next() else { break };
        for value in field
            .split(|b| *b == 0xFE)
            .filter(|v| !v.is_empty())
            .take(2)
        {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.append(name.clone(), v);
                *count += 1;
            }
        }
    }
    let query = parts.next().and_then(|q| std::str::from_utf8(q).ok());
    match extract_key(&headers, query) {
        Ok((key, source)) => {
            if source == KeySource::Header {
                assert!(
                    auth_count <= 1 && x_count <= 1,
                    "two values of one header are ambiguous"
                );
                assert!(!key.contains(char::is_whitespace), "{key:?}");
            } else {
                assert!(query.is_some());
            }
        }
        Err(AuthError::Missing) => assert_eq!(auth_count + x_count, 0),
        Err(_) => {}
    }
});
