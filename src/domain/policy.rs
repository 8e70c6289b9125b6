//! Operator-set rules, from configuration: limits, the legacy cut-off, proxies.

use super::clock::Timestamp;
use super::net::TrustedProxies;

/// When legacy keys stop working unless `--legacy-sunset` says otherwise.
pub const DEFAULT_LEGACY_SUNSET: &str = "2026-12-01T00:00:00Z";

/// How close the legacy cut-off must be for import, `serve` and the keys
/// page to warn about it.
pub const LEGACY_CUTOFF_WARNING_DAYS: i64 = 14;

/// The legacy cut-off is past, or near enough to warn about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutoffNotice {
    /// Legacy keys are refused (`legacy_key_retired`) since `sunset`.
    Passed { sunset: Timestamp },
    /// Legacy keys stop working at `sunset`, `days_left` whole days from now
    /// (0: within the day).
    Near { sunset: Timestamp, days_left: i64 },
}

impl CutoffNotice {
    /// A stable code for JSON output.
    pub fn code(self) -> &'static str {
        match self {
            CutoffNotice::Passed { .. } => "legacy_cutoff_passed",
            CutoffNotice::Near { .. } => "legacy_cutoff_near",
        }
    }

    /// One sentence for an operator: what happens, and how to change it.
    pub fn message(self) -> String {
        match self {
            CutoffNotice::Passed { sunset } => format!(
                "the legacy cut-off ({sunset}) has passed: every legacy key is refused with legacy_key_retired. \
                 To keep them working a while longer, set a later cut-off (--legacy-sunset, LATCHKEY_LEGACY_SUNSET \
                 or legacy_sunset in the config file) for the server, then upgrade each key"
            ),
            CutoffNotice::Near { sunset, days_left } => format!(
                "the legacy cut-off ({sunset}) is {}: legacy keys stop working then. Upgrade each key before it, \
                 or set a later cut-off (--legacy-sunset, LATCHKEY_LEGACY_SUNSET or legacy_sunset in the config file)",
                match days_left {
                    0 => "less than a day away".to_owned(),
                    1 => "1 day away".to_owned(),
                    n => format!("{n} days away"),
                }
            ),
        }
    }
}

/// Operator-set rules (from configuration).
#[derive(Clone, Debug)]
pub struct Policy {
    pub default_rate_limit: u32,
    /// Failed authentications per minute per client IP.
    pub failed_auth_limit: u32,
    pub max_keys_per_shop: u32,
    pub legacy_sunset: Timestamp,
    /// Windows `[start, end)` before the cut-off during which legacy keys
    /// already fail, to warn integrators who ignore the headers.
    pub legacy_brownouts: Vec<(Timestamp, Timestamp)>,
    pub trusted_proxies: TrustedProxies,
    /// The external URL used in links, without a trailing slash.
    pub public_url: String,
    /// The secret scanners' public keys (GitHub's JSON shape); without it
    /// `POST /secret-scanning/reports` is 404.
    pub leak_report_keys: Option<std::path::PathBuf>,
    /// What a leaked-key report does to the key.
    pub leak_action: LeakAction,
}

/// What a leaked-key report does to a key it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeakAction {
    /// Revoke it at once (and flag it).
    #[default]
    Revoke,
    /// Only flag it (a warning on the key, a banner, an audit event).
    Flag,
}

impl LeakAction {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "revoke" => Ok(LeakAction::Revoke),
            "flag" => Ok(LeakAction::Flag),
            other => Err(format!("`{other}` is not an action")),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_rate_limit: 100,
            failed_auth_limit: 30,
            max_keys_per_shop: 1000,
            legacy_sunset: Timestamp::parse_rfc3339(DEFAULT_LEGACY_SUNSET)
                .expect("default sunset parses"),
            legacy_brownouts: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            public_url: "http://127.0.0.1:8080".into(),
            leak_report_keys: None,
            leak_action: LeakAction::Revoke,
        }
    }
}

impl Policy {
    /// Whether the legacy cut-off is past, or within
    /// [`LEGACY_CUTOFF_WARNING_DAYS`] of `now`.
    pub fn legacy_cutoff_notice(&self, now: Timestamp) -> Option<CutoffNotice> {
        let sunset = self.legacy_sunset;
        if now >= sunset {
            return Some(CutoffNotice::Passed { sunset });
        }
        let left = sunset.unix_seconds() - now.unix_seconds();
        (left <= LEGACY_CUTOFF_WARNING_DAYS * 86_400).then_some(CutoffNotice::Near {
            sunset,
            days_left: left / 86_400,
        })
    }

    /// Whether `now` falls in a brownout window (before the cut-off), when
    /// legacy keys already fail to warn integrators who ignore the headers.
    pub fn in_brownout(&self, now: Timestamp) -> bool {
        now < self.legacy_sunset
            && self
                .legacy_brownouts
                .iter()
                .any(|(start, end)| *start <= now && now < *end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn the_cut_off_is_announced_within_fourteen_days_and_after_it() {
        let policy = Policy {
            legacy_sunset: at("2026-12-01T00:00:00Z"),
            ..Policy::default()
        };
        assert_eq!(
            policy.legacy_cutoff_notice(at("2026-11-16T23:59:59Z")),
            None
        );
        assert_eq!(
            policy.legacy_cutoff_notice(at("2026-11-17T00:00:00Z")),
            Some(CutoffNotice::Near {
                sunset: policy.legacy_sunset,
                days_left: 14
            })
        );
        assert_eq!(
            policy.legacy_cutoff_notice(at("2026-11-30T12:00:00Z")),
            Some(CutoffNotice::Near {
                sunset: policy.legacy_sunset,
                days_left: 0
            })
        );
        let passed = policy
            .legacy_cutoff_notice(at("2026-12-01T00:00:00Z"))
            .unwrap();
        assert_eq!(passed.code(), "legacy_cutoff_passed");
        assert!(passed.message().contains("2026-12-01T00:00:00.000000Z"));
        assert!(passed.message().contains("--legacy-sunset"));
    }
}
