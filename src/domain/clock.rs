//! Time: a microsecond timestamp that stores the same way everywhere, and an
//! injectable clock so expiry and cut-off rules are tested without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant, as microseconds since the Unix epoch (UTC). Stored as a 64-bit
/// integer in every database; written as RFC 3339 with six fractional digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_unix_seconds(s: i64) -> Self {
        Timestamp(s.saturating_mul(1_000_000))
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn plus_seconds(self, s: i64) -> Self {
        Timestamp(self.0.saturating_add(s.saturating_mul(1_000_000)))
    }

    /// Parses RFC 3339 (any offset; fractions beyond microseconds are cut).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let dt = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
            format!("`{s}` is not an RFC 3339 date-time (e.g. 2027-01-31T17:00:00Z)")
        })?;
        let micros = dt.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| format!("`{s}` is out of range"))
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(UtcOffset::UTC)
    }

    /// `2026-11-23T09:48:45.123456Z`
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with microseconds, written straight to the output
    /// (JSON answers carry several per object).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Where "now" comes from. Production uses [`SystemClock`]; tests move a
/// [`ManualClock`] across an expiry or a cut-off on a running server.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
        Timestamp(micros as i64)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(AtomicI64::new(at.0))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    pub fn advance_seconds(&self, s: i64) {
        self.0.fetch_add(s * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{KnownFormat, SchemaFormat};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, UTC, microseconds"))
            .examples([serde_json::json!("2026-11-23T09:48:45.123456Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_microseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-23T09:48:45.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T09:48:45.123456Z");
        let offset = Timestamp::parse_rfc3339("2026-11-23T10:48:45.123456789+01:00").unwrap();
        assert_eq!(offset, t);
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        assert!(Timestamp::parse_rfc3339("2026-11-23").is_err());
        assert!(Timestamp::parse_rfc3339("tomorrow").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_unix_seconds(100));
        assert_eq!(c.now().unix_seconds(), 100);
        c.advance_seconds(5);
        assert_eq!(c.now().unix_seconds(), 105);
    }
}
