//! Field rules shared by the resources: trimmed optional text with a length
//! bound, and merge-patch application (absent keeps, `null` clears).

use crate::domain::FieldError;

/// Applies one merge-patch field: `None` keeps `current`, `Some(None)`
/// clears it, `Some(Some(v))` sets it (trimmed; empty text clears too).
pub fn text(
    errors: &mut Vec<FieldError>,
    field: &str,
    current: Option<String>,
    patch: Option<Option<String>>,
    max_chars: usize,
) -> Option<String> {
    match patch {
        None => current,
        Some(None) => None,
        Some(Some(v)) => {
            // Checked before trimming, so a control character is refused
            // wherever it stands (as the document's pattern says).
            if v.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
            {
                errors.push(FieldError::new(field, "contains control characters"));
                return current;
            }
            let v = v.trim();
            if v.is_empty() {
                None
            } else if v.chars().count() > max_chars {
                errors.push(FieldError::new(
                    field,
                    format!("at most {max_chars} characters"),
                ));
                current
            } else {
                Some(v.to_owned())
            }
        }
    }
}

/// Like [`text`], then checked by `rule` (which may also normalise).
pub fn checked(
    errors: &mut Vec<FieldError>,
    field: &str,
    current: Option<String>,
    patch: Option<Option<String>>,
    max_chars: usize,
    rule: impl Fn(&str) -> Result<String, String>,
) -> Option<String> {
    let changed = patch.is_some();
    let value = text(errors, field, current, patch, max_chars);
    match value {
        Some(v) if changed => match rule(&v) {
            Ok(normalised) => Some(normalised),
            Err(m) => {
                errors.push(FieldError::new(field, m));
                None
            }
        },
        other => other,
    }
}

/// A required field that merge-patch may not clear.
pub fn required<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    current: Option<T>,
    patch: Option<Option<T>>,
) -> Option<T> {
    match patch {
        None => {
            if current.is_none() {
                errors.push(FieldError::new(field, "is required"));
            }
            current
        }
        Some(None) => {
            errors.push(FieldError::new(field, "cannot be null"));
            current
        }
        Some(Some(v)) => Some(v),
    }
}

/// Non-negative money in minor units (pence, cents).
pub fn money(
    errors: &mut Vec<FieldError>,
    field: &str,
    current: Option<i64>,
    patch: Option<Option<i64>>,
) -> Option<i64> {
    match patch {
        None => current,
        Some(None) => None,
        Some(Some(v)) if v < 0 => {
            errors.push(FieldError::new(
                field,
                "must not be negative (amounts are in minor units, e.g. pence)",
            ));
            current
        }
        Some(Some(v)) if v > 1_000_000_000_000 => {
            errors.push(FieldError::new(field, "is implausibly large"));
            current
        }
        Some(Some(v)) => Some(v),
    }
}

pub fn email(s: &str) -> Result<String, String> {
    crate::domain::user::Email::parse(s).map(|e| e.as_str().to_owned())
}

/// 5–32 characters of digits, spaces and `+-().`, with at least 5 digits.
pub fn phone(s: &str) -> Result<String, String> {
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let digits = s.chars().filter(char::is_ascii_digit).count();
    if (5..=32).contains(&s.chars().count()) && ok_chars && digits >= 5 {
        Ok(s.to_owned())
    } else {
        Err("a phone number is 5–32 characters of digits, spaces and + - ( ) . (e.g. +44 20 7946 0958)".into())
    }
}

pub fn country(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    if crate::domain::codes::is_country(&upper) {
        Ok(upper)
    } else {
        Err(format!(
            "`{s}` is not an ISO 3166-1 alpha-2 country code (e.g. GB, IE, US)"
        ))
    }
}

pub fn currency(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    if crate::domain::codes::is_currency(&upper) {
        Ok(upper)
    } else {
        Err(format!(
            "`{s}` is not an ISO 4217 currency code (e.g. GBP, EUR, USD)"
        ))
    }
}

/// A calendar date, `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<String, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .map(|_| s.to_owned())
        .map_err(|_| format!("`{s}` is not a date in the form YYYY-MM-DD"))
}

/// 15 digits whose Luhn checksum holds.
pub fn imei(s: &str) -> Result<String, String> {
    let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if compact.len() != 15 || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return Err("an IMEI is 15 digits (dial *#06# on the phone to see it)".into());
    }
    let sum: u32 = compact
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    if sum.is_multiple_of(10) {
        Ok(compact)
    } else {
        Err("this IMEI's check digit is wrong: it was probably mistyped".into())
    }
}

/// The first character of `s` that can make a name look like another one:
/// a bidirectional override or isolate (U+202A–U+202E, U+2066–U+2069), which
/// reorders what follows, or a zero-width one (U+200B–U+200D, U+2060, U+FEFF).
pub fn deceptive_char(s: &str) -> Option<char> {
    s.chars().find(|c| {
        matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'
                | '\u{FEFF}'
        )
    })
}

/// A name shown to people (a key's, a client's): refuses the characters of
/// [`deceptive_char`], which would let one name pass for another.
pub fn name(v: &str) -> Result<String, String> {
    match deceptive_char(v) {
        Some(c) => Err(format!(
            "contains the invisible or text-reordering character U+{:04X}; names may not contain bidirectional-override or zero-width characters",
            u32::from(c)
        )),
        None => Ok(v.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imei_luhn() {
        assert_eq!(imei("490154203237518"), Ok("490154203237518".into()));
        assert_eq!(imei("49-015420-323751-8"), Ok("490154203237518".into()));
        assert!(imei("490154203237519").is_err());
        assert!(imei("49015420323751").is_err());
        assert!(imei("49015420323751x").is_err());
    }

    #[test]
    fn phones() {
        assert!(phone("+44 20 7946 0958").is_ok());
        assert!(phone("(01632) 960-001").is_ok());
        assert!(phone("1234").is_err());
        assert!(phone("call me").is_err());
        assert!(phone(&"1".repeat(33)).is_err());
    }

    #[test]
    fn dates_codes() {
        assert!(date("2026-12-24").is_ok());
        assert!(date("2026-02-30").is_err());
        assert!(date("24/12/2026").is_err());
        assert_eq!(country("gb"), Ok("GB".into()));
        assert_eq!(currency("eur"), Ok("EUR".into()));
    }

    #[test]
    fn merge_patch_text() {
        let mut e = Vec::new();
        assert_eq!(
            text(&mut e, "f", Some("a".into()), None, 10),
            Some("a".into())
        );
        assert_eq!(text(&mut e, "f", Some("a".into()), Some(None), 10), None);
        assert_eq!(
            text(&mut e, "f", None, Some(Some("  b ".into())), 10),
            Some("b".into())
        );
        assert_eq!(text(&mut e, "f", None, Some(Some("   ".into())), 10), None);
        assert!(e.is_empty());
        text(&mut e, "f", None, Some(Some("x".repeat(11))), 10);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn names_refuse_bidi_controls_and_zero_width_characters_only() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{200D}', '\u{2060}',
            '\u{FEFF}',
        ] {
            assert!(
                name(&format!("Fix{c}It")).is_err(),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for ok in ["Zoë's Repairs", "修理店", "مرحبا", "Fix-It – Phones"] {
            assert_eq!(name(ok).as_deref(), Ok(ok));
        }
    }
}
