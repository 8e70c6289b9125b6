//! Operator-set rules, from configuration: limits, the legacy cut-off, proxies.

use super::clock::Timestamp;
use super::net::TrustedProxies;

/// When legacy keys stop working unless `--legacy-sunset` says otherwise.
pub const DEFAULT_LEGACY_SUNSET: &str = "2026-12-01T00:00:00Z";

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
