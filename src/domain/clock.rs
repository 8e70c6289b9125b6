//! Time: a microsecond timestamp that stores the same way everywhere, and an
//! injectable clock so expiry and cut-off rules are tested without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    /// RFC 3339 in UTC with microseconds, written straight to the output: key
    /// objects carry several timestamps and `/me` is on the hot path, so the
    /// common case (years 0–9999) is formatted without the calendar library.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let of_day = secs.rem_euclid(86_400);
        let Ok(year @ 0..=9999) = u16::try_from(year) else {
            // Outside four-digit years (never from this server's clock).
            if year < 0 {
                write!(f, "-{:04}", year.unsigned_abs())?;
            } else {
                write!(f, "{year:04}")?;
            }
            return write!(
                f,
                "-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
        };
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for slot in out[at..at + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, u64::from(year));
        put(5, 2, u64::from(month));
        put(8, 2, u64::from(day));
        put(11, 2, (of_day / 3600) as u64);
        put(14, 2, (of_day / 60 % 60) as u64);
        put(17, 2, (of_day % 60) as u64);
        put(20, 6, micros as u64);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
        // The system time as microseconds, without building a calendar date
        // (it is read several times per request). A clock set before 1970
        // reads as negative microseconds, as OffsetDateTime would give.
        let now = std::time::SystemTime::now();
        let micros = match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Timestamp(micros)
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

/// An instant as an IMF-fixdate (RFC 9110), e.g. `Tue, 01 Dec 2026 00:00:00 GMT`.
pub fn http_date(t: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let dt = time::OffsetDateTime::from_unix_timestamp(t.unix_seconds())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(dt.weekday().number_days_from_monday())],
        dt.day(),
        MONTHS[usize::from(u8::from(dt.month()) - 1)],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calendar library's formatting, which Display must match.
    fn reference(t: Timestamp) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000).unwrap();
        format!(
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

    #[test]
    fn http_dates_are_imf_fixdates() {
        let t = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(http_date(t), "Tue, 01 Dec 2026 00:00:00 GMT");
    }

    #[test]
    fn display_matches_the_calendar_library_over_the_whole_range() {
        // Year 0 to 9999, every leap-year rule, day and second boundaries.
        let first = -62_167_219_200_000_000_i64; // 0000-01-01T00:00:00Z
        let last = 253_402_300_799_999_999_i64; // 9999-12-31T23:59:59.999999Z
        let mut t = first;
        let step = 86_399_999_937_i64; // a day minus a little: drifts through times of day
        while t <= last {
            for edge in [t, t + 1, t - 1, t - t.rem_euclid(86_400_000_000)] {
                if (first..=last).contains(&edge) {
                    let ts = Timestamp(edge);
                    assert_eq!(ts.to_string(), reference(ts), "{edge}");
                }
            }
            t += step * 29;
        }
        for edge in [
            first,
            last,
            0,
            -1,
            951_782_400_000_000,
            4_107_542_400_000_000,
        ] {
            assert_eq!(Timestamp(edge).to_string(), reference(Timestamp(edge)));
        }
        assert_eq!(
            Timestamp(last + 1).to_string(),
            "10000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp(first - 1).to_string(),
            "-0001-12-31T23:59:59.999999Z"
        );
    }

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
