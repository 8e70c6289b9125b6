//! The key record, its validated inputs and its status rules.

use std::fmt;

use serde::Serialize;

use super::clock::Timestamp;
use super::net::AllowedIps;
use super::permission::PermissionSet;
use super::token::Environment;

/// Rate limits a key may be given, per minute.
pub const RATE_LIMIT_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
/// A key that expires within this many seconds carries an `expiring_soon` warning.
pub const EXPIRING_SOON_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Standard,
    Legacy,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Standard => "standard",
            KeyKind::Legacy => "legacy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(KeyKind::Standard),
            "legacy" => Some(KeyKind::Legacy),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
    Retired,
    Paused,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Retired => "retired",
            KeyStatus::Paused => "paused",
        }
    }
}

impl std::str::FromStr for KeyStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(KeyStatus::Active),
            "expired" => Ok(KeyStatus::Expired),
            "revoked" => Ok(KeyStatus::Revoked),
            "retired" => Ok(KeyStatus::Retired),
            "paused" => Ok(KeyStatus::Paused),
            other => Err(format!(
                "unknown status `{other}`: expected active, paused, expired, revoked or retired"
            )),
        }
    }
}

/// How a secret scanner acting is written.
pub const SECRET_SCANNER: &str = "secret_scanning";

/// Who did something: a user, a key, the command line, or a secret scanner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User(String),
    Key(String),
    Cli,
    /// A leaked-key report from a secret scanner.
    SecretScanner,
}

impl Actor {
    /// The stored and serialised form: the user or key id, or `cli`.
    pub fn as_string(&self) -> String {
        match self {
            Actor::User(id) | Actor::Key(id) => id.clone(),
            Actor::Cli => "cli".to_owned(),
            Actor::SecretScanner => SECRET_SCANNER.to_owned(),
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "cli" {
            Actor::Cli
        } else if s == SECRET_SCANNER {
            Actor::SecretScanner
        } else if s.starts_with("usr_") {
            Actor::User(s.to_owned())
        } else {
            Actor::Key(s.to_owned())
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

/// A key's name: trimmed, 1–100 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(input: &str) -> Result<Self, String> {
        // Before trimming: a control character is refused wherever it stands.
        if input.chars().any(char::is_control) {
            return Err("no control characters (tabs, line breaks)".into());
        }
        let trimmed = input.trim();
        let len = trimmed.chars().count();
        if len == 0 {
            return Err(
                "give the key a name that says where it is used, e.g. \"Website contact form\""
                    .into(),
            );
        }
        if len > 100 {
            return Err(format!("at most 100 characters (this one has {len})"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("no control characters (tabs, line breaks)".into());
        }
        Ok(KeyName(super::fields::name(trimmed)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names like "Key 1", "Test" or "asdf" say nothing about where a key is
    /// used, which makes the right key hard to revoke in an incident.
    pub fn is_vague(&self) -> bool {
        const VAGUE: &[&str] = &[
            "",
            "key",
            "keys",
            "test",
            "tests",
            "testing",
            "api",
            "api key",
            "apikey",
            "my key",
            "new key",
            "temp",
            "tmp",
            "asdf",
            "qwerty",
            "foo",
            "bar",
            "untitled",
            "default",
            "token",
            "secret",
            "demo",
            "sample",
            "example",
            "x",
            "xx",
            "xxx",
            "abc",
            "aaa",
            "name",
            "key name",
            "new",
            "my api key",
            "test key",
            "dev",
            "prod",
        ];
        let normalised: String = self
            .0
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let words: Vec<&str> = normalised.split_whitespace().collect();
        let joined = words.join(" ");
        let without_number = joined.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ');
        VAGUE.contains(&without_number)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

pub fn validate_rate_limit(n: i64) -> Result<u32, String> {
    u32::try_from(n)
        .ok()
        .filter(|n| RATE_LIMIT_RANGE.contains(n))
        .ok_or_else(|| format!("must be between 1 and 10000 requests per minute (got {n})"))
}

/// A key as stored: everything but the secret, which exists only as its hash.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: String,
    pub shop_id: String,
    pub name: KeyName,
    pub environment: Environment,
    pub kind: KeyKind,
    pub display: String,
    pub hash: [u8; 32],
    pub permissions: PermissionSet,
    pub allowed_ips: AllowedIps,
    pub rate_limit_per_minute: u32,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
    pub template: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: Actor,
    /// Last time the key was seen in a URL's query string (`key_in_url`).
    pub sent_in_url_at: Option<Timestamp>,
    /// Set while the key is paused (docs/KEY_OPERATIONS.md).
    pub paused: Option<Pause>,
    /// Where a secret scanner reported finding the key in public.
    pub leaked: Option<Leak>,
}

/// A secret scanner's report of a key found in public.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    pub at: Timestamp,
    /// Where it was found (as reported; at most 2000 characters kept).
    pub url: String,
    /// The kind of place, as reported (e.g. `content`, `commit`).
    pub source: String,
}

/// When, why and by whom a key was paused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    pub at: Timestamp,
    pub reason: Option<PauseReason>,
    pub by: Actor,
}

/// Why keys were paused, as the shop typed it: trimmed, 1–200 characters,
/// no control characters. It is shown to the integration in `key_paused`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PauseReason(String);

impl PauseReason {
    /// `None` for a blank reason (the reason is optional).
    /// The length and the characters are checked on the text as sent (the
    /// OpenAPI document says the same), then the blanks around it go.
    pub fn parse(input: &str) -> Result<Option<Self>, String> {
        let len = input.chars().count();
        if len > 200 {
            return Err(format!("at most 200 characters (this one has {len})"));
        }
        if input.chars().any(char::is_control) {
            return Err("no control characters (tabs, line breaks)".into());
        }
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        Ok(Some(PauseReason(super::fields::name(trimmed)?)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl KeyRecord {
    /// The status at `now`. Revocation wins over retirement, which wins over
    /// expiry, which wins over a pause (a pause is undone by a resume; the
    /// others are final): the answer names the most lasting reason.
    pub fn status(&self, now: Timestamp, legacy_sunset: Timestamp) -> KeyStatus {
        if self.revoked_at.is_some_and(|t| t <= now) {
            KeyStatus::Revoked
        } else if self.retired_at.is_some_and(|t| t <= now)
            || (self.kind == KeyKind::Legacy && now >= legacy_sunset)
        {
            KeyStatus::Retired
        } else if self.expires_at.is_some_and(|t| t <= now) {
            KeyStatus::Expired
        } else if self.paused.is_some() {
            KeyStatus::Paused
        } else {
            KeyStatus::Active
        }
    }

    /// Whether the key was made from a template and no longer holds exactly
    /// that template's permissions (so `template` alone would mislead).
    pub fn is_customized(&self) -> bool {
        self.template
            .as_deref()
            .and_then(super::permission::template)
            .is_some_and(|t| t.permissions != self.permissions)
    }

    pub fn warnings(&self, now: Timestamp, legacy_sunset: Timestamp) -> Vec<Warning> {
        let mut out = Vec::new();
        if self.name.is_vague() {
            out.push(Warning {
                code: "vague_name",
                message: "This name does not say where the key is used. Rename it after the integration (e.g. \"Zapier – new orders\") so the right key can be found and revoked quickly.".into(),
            });
        }
        if let Some(leak) = &self.leaked {
            out.push(Warning {
                code: "leaked",
                message: format!(
                    "This key was found in public at {} ({}), reported {}. {}",
                    leak.url,
                    leak.source,
                    leak.at,
                    if self.revoked_at.is_some() {
                        "It was revoked: give the integration a new key and remove the old one from where it was found."
                    } else {
                        "Anyone may be using it: roll or revoke it now, and remove it from where it was found."
                    }
                ),
            });
        }
        if self.sent_in_url_at.is_some() {
            out.push(Warning {
                code: "sent_in_url",
                message: "This key was sent in a URL's query string, where it may have been written to logs. Roll it and send it in the Authorization header.".into(),
            });
        }
        if self.status(now, legacy_sunset) == KeyStatus::Paused
            && let Some(p) = &self.paused
        {
            out.push(Warning {
                code: "paused",
                message: format!(
                    "This key is paused since {}{}. Requests with it get 403 key_paused until it is resumed.",
                    p.at,
                    p.reason
                        .as_ref()
                        .map(|r| format!(" ({})", r.as_str()))
                        .unwrap_or_default()
                ),
            });
        }
        if self.status(now, legacy_sunset) == KeyStatus::Active
            && let Some(exp) = self.expires_at
            && exp.as_micros() - now.as_micros() <= EXPIRING_SOON_SECONDS * 1_000_000
        {
            out.push(Warning {
                code: "expiring_soon",
                message: format!("This key expires at {exp}. Create its replacement before then."),
            });
        }
        out
    }
}

/// Something the shop should act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Warning {
    /// `vague_name`, `leaked`, `sent_in_url`, `paused` or `expiring_soon`.
    pub code: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  Zapier  ").unwrap().as_str(), "Zapier");
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"a".repeat(100)).is_ok());
        assert!(KeyName::parse(&"a".repeat(101)).is_err());
        assert!(
            KeyName::parse(&"é".repeat(100)).is_ok(),
            "counted in characters"
        );
        assert!(KeyName::parse("a\nb").is_err());
    }

    #[test]
    fn vague_names_are_spotted() {
        for vague in [
            "Key 1", "Test", "test-2", "API KEY", "asdf", "my key 3", "x",
        ] {
            assert!(KeyName::parse(vague).unwrap().is_vague(), "{vague}");
        }
        for clear in [
            "Zapier",
            "Website contact form",
            "IT Glue sync",
            "Test bench RMM",
        ] {
            assert!(!KeyName::parse(clear).unwrap().is_vague(), "{clear}");
        }
    }

    #[test]
    fn rate_limits_outside_the_range_are_refused() {
        assert_eq!(validate_rate_limit(1), Ok(1));
        assert_eq!(validate_rate_limit(10_000), Ok(10_000));
        assert!(validate_rate_limit(0).is_err());
        assert!(validate_rate_limit(10_001).is_err());
        assert!(validate_rate_limit(-5).is_err());
    }
}
