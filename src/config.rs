//! Configuration: defaults < config file (`latchkey.toml`) < `LATCHKEY_*`
//! environment < command-line flags. Unknown keys and unknown `LATCHKEY_*`
//! variables are refused by name, as are invalid values, so a typo never
//! silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::domain::clock::Timestamp;
use crate::domain::key::validate_rate_limit;
use crate::domain::net::TrustedProxies;
use crate::domain::policy::Policy;
use crate::limiter::WhenUnavailable;

pub use crate::domain::policy::DEFAULT_LEGACY_SUNSET;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./latchkey-data";

/// Environment variables latchkey reads; any other `LATCHKEY_*` is a typo.
const KNOWN_ENV: &[&str] = &[
    "LATCHKEY_CONFIG",
    "LATCHKEY_DATA_DIR",
    "LATCHKEY_DATABASE_URL",
    "LATCHKEY_SECRET",
    "LATCHKEY_SECRET_FILE",
    "LATCHKEY_LISTEN",
    "LATCHKEY_REDIS_URL",
    "LATCHKEY_REDIS_UNAVAILABLE",
    "LATCHKEY_PUBLIC_URL",
    "LATCHKEY_TRUSTED_PROXIES",
    "LATCHKEY_LEGACY_SUNSET",
    "LATCHKEY_LEGACY_BROWNOUT",
    "LATCHKEY_DEFAULT_RATE_LIMIT",
    "LATCHKEY_FAILED_AUTH_LIMIT",
    "LATCHKEY_MAX_KEYS_PER_SHOP",
    "LATCHKEY_LEAK_REPORT_KEYS",
    "LATCHKEY_LEAK_ACTION",
    "LATCHKEY_LOG",
    // Read by the test suite only.
    "LATCHKEY_TEST_DATABASE_URL",
    "LATCHKEY_TEST_REDIS_URL",
];

/// Settings as given by flags (all optional: unset means "not given here").
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub redis_url: Option<String>,
    pub redis_unavailable: Option<String>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<String>,
    pub legacy_sunset: Option<String>,
    /// `START/END` pairs (RFC 3339), comma-separated.
    pub legacy_brownout: Option<String>,
    pub default_rate_limit: Option<String>,
    pub failed_auth_limit: Option<String>,
    pub max_keys_per_shop: Option<String>,
    pub leak_report_keys: Option<PathBuf>,
    pub leak_action: Option<String>,
}

/// The config file. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    secret_file: Option<PathBuf>,
    listen: Option<String>,
    redis_url: Option<String>,
    redis_unavailable: Option<String>,
    public_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    legacy_sunset: Option<String>,
    legacy_brownout: Option<Vec<String>>,
    default_rate_limit: Option<i64>,
    failed_auth_limit: Option<i64>,
    max_keys_per_shop: Option<i64>,
    leak_report_keys: Option<PathBuf>,
    leak_action: Option<String>,
}

/// Resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub secret_file: Option<PathBuf>,
    pub listen: SocketAddr,
    pub redis_url: Option<String>,
    /// What to do while Redis does not answer (`local` by default).
    pub redis_unavailable: WhenUnavailable,
    pub public_url: Option<String>,
    pub failed_auth_limit: u32,
    pub policy: Policy,
}

/// Reads the environment, for [`Settings::resolve`].
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn latchkey_vars(&self) -> Vec<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn latchkey_vars(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("LATCHKEY_"))
            .collect()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
    fn latchkey_vars(&self) -> Vec<String> {
        self.keys()
            .filter(|k| k.starts_with("LATCHKEY_"))
            .cloned()
            .collect()
    }
}

/// Where a value came from, for error messages that name the setting.
fn source_name(flag: &str) -> String {
    let env = format!("LATCHKEY_{}", flag.to_uppercase().replace('-', "_"));
    let key = flag.replace('-', "_");
    format!("--{flag} / {env} / `{key}` in the config file")
}

/// One brownout window, `START/END` in RFC 3339, START before END.
pub fn parse_brownout(raw: &str) -> Result<(Timestamp, Timestamp), String> {
    let (start, end) = raw.split_once('/').ok_or_else(|| {
        format!("`{raw}` is not a window: write START/END, e.g. 2026-11-03T14:00:00Z/2026-11-03T15:00:00Z")
    })?;
    let start = Timestamp::parse_rfc3339(start)?;
    let end = Timestamp::parse_rfc3339(end)?;
    if end <= start {
        return Err(format!("in `{raw}` the end is not after the start"));
    }
    Ok((start, end))
}

fn invalid(flag: &str, message: impl std::fmt::Display) -> String {
    format!("invalid setting {}: {message}", source_name(flag))
}

impl Settings {
    pub fn resolve(flags: &Overrides, env: &dyn Env) -> Result<Settings, String> {
        let mut unknown: Vec<String> = env
            .latchkey_vars()
            .into_iter()
            .filter(|k| !KNOWN_ENV.contains(&k.as_str()))
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(format!(
                "unknown environment variable {}: latchkey reads {}",
                unknown.join(", "),
                KNOWN_ENV[..KNOWN_ENV.len() - 2].join(", ")
            ));
        }

        let pick = |flag: Option<&String>, name: &str| -> Option<String> {
            flag.cloned().or_else(|| {
                env.var(&format!("LATCHKEY_{name}"))
                    .filter(|v| !v.is_empty())
            })
        };

        let explicit_config = flags
            .config
            .clone()
            .or_else(|| env.var("LATCHKEY_CONFIG").map(PathBuf::from));
        let cli_data_dir = flags.data_dir.clone().or_else(|| {
            env.var("LATCHKEY_DATA_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let config_path = explicit_config.clone().unwrap_or_else(|| {
            cli_data_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into())
                .join("latchkey.toml")
        });
        let file = match std::fs::read_to_string(&config_path) {
            Ok(text) => toml::from_str::<FileConfig>(&text)
                .map_err(|e| format!("config file {}: {}", config_path.display(), e.message()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit_config.is_none() => {
                FileConfig::default()
            }
            Err(e) => {
                return Err(format!(
                    "cannot read config file {}: {e}",
                    config_path.display()
                ));
            }
        };

        let data_dir = cli_data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let database_url = pick(flags.database_url.as_ref(), "DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("latchkey.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database-url",
                format!(
                    "`{}` is neither sqlite://PATH nor postgres://…",
                    redact_url(&database_url)
                ),
            ));
        }
        let secret_file = flags
            .secret_file
            .clone()
            .or_else(|| {
                env.var("LATCHKEY_SECRET_FILE")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or(file.secret_file);
        let listen_raw = pick(flags.listen.as_ref(), "LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_raw}` is not an address:port such as 127.0.0.1:8080"),
            )
        })?;
        let redis_url = pick(flags.redis_url.as_ref(), "REDIS_URL").or(file.redis_url);
        if let Some(url) = &redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "redis-url",
                    format!("`{}` is not a redis:// URL", redact_url(url)),
                ));
            }
            crate::limiter::redis::check_url(url).map_err(|e| {
                invalid(
                    "redis-url",
                    format!("`{}` is not a usable Redis URL: {e}", redact_url(url)),
                )
            })?;
        }
        let redis_unavailable = match pick(flags.redis_unavailable.as_ref(), "REDIS_UNAVAILABLE")
            .or(file.redis_unavailable)
        {
            Some(raw) => WhenUnavailable::parse(&raw).map_err(|m| {
                invalid(
                    "redis-unavailable",
                    format!("{m}: write `local` (fall back to this instance's own limits) or `deny` (answer 503)"),
                )
            })?,
            None => WhenUnavailable::Local,
        };
        let public_url = pick(flags.public_url.as_ref(), "PUBLIC_URL").or(file.public_url);
        if let Some(url) = &public_url
            && (!(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace))
        {
            return Err(invalid(
                "public-url",
                format!("`{url}` is not an http(s):// URL"),
            ));
        }
        let proxies: Vec<String> = match pick(flags.trusted_proxies.as_ref(), "TRUSTED_PROXIES") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        };
        let trusted = proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "trusted-proxies",
                            format!("`{p}` is not an address or CIDR range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sunset_raw = pick(flags.legacy_sunset.as_ref(), "LEGACY_SUNSET")
            .or(file.legacy_sunset)
            .unwrap_or_else(|| DEFAULT_LEGACY_SUNSET.into());
        let legacy_sunset =
            Timestamp::parse_rfc3339(&sunset_raw).map_err(|m| invalid("legacy-sunset", m))?;
        let brownout_raw: Vec<String> =
            match pick(flags.legacy_brownout.as_ref(), "LEGACY_BROWNOUT") {
                Some(list) => list
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                None => file.legacy_brownout.unwrap_or_default(),
            };
        let legacy_brownouts = brownout_raw
            .iter()
            .map(|w| parse_brownout(w))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| invalid("legacy-brownout", m))?;

        let number = |flag: &str,
                      name: &str,
                      given: Option<&String>,
                      from_file: Option<i64>,
                      default: i64|
         -> Result<i64, String> {
            match pick(given, name) {
                Some(raw) => raw
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(flag, format!("`{raw}` is not a whole number"))),
                None => Ok(from_file.unwrap_or(default)),
            }
        };
        let default_rate_limit = validate_rate_limit(number(
            "default-rate-limit",
            "DEFAULT_RATE_LIMIT",
            flags.default_rate_limit.as_ref(),
            file.default_rate_limit,
            100,
        )?)
        .map_err(|m| invalid("default-rate-limit", m))?;
        let failed_raw = number(
            "failed-auth-limit",
            "FAILED_AUTH_LIMIT",
            flags.failed_auth_limit.as_ref(),
            file.failed_auth_limit,
            30,
        )?;
        let failed_auth_limit = u32::try_from(failed_raw)
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "failed-auth-limit",
                    format!("must be between 1 and 100000 per minute (got {failed_raw})"),
                )
            })?;
        let max_raw = number(
            "max-keys-per-shop",
            "MAX_KEYS_PER_SHOP",
            flags.max_keys_per_shop.as_ref(),
            file.max_keys_per_shop,
            1000,
        )?;
        let max_keys_per_shop = u32::try_from(max_raw)
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "max-keys-per-shop",
                    format!("must be between 1 and 1000000 (got {max_raw})"),
                )
            })?;

        let leak_report_keys = flags
            .leak_report_keys
            .clone()
            .or_else(|| {
                env.var("LATCHKEY_LEAK_REPORT_KEYS")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or(file.leak_report_keys);
        let leak_action = match pick(flags.leak_action.as_ref(), "LEAK_ACTION").or(file.leak_action)
        {
            Some(raw) => crate::domain::policy::LeakAction::parse(&raw).map_err(|m| {
                invalid(
                    "leak-action",
                    format!(
                        "{m}: write `revoke` (revoke a reported key at once) or `flag` (only warn)"
                    ),
                )
            })?,
            None => crate::domain::policy::LeakAction::Revoke,
        };

        Ok(Settings {
            data_dir,
            database_url,
            secret_file,
            listen,
            redis_url,
            redis_unavailable,
            public_url: public_url.clone(),
            failed_auth_limit,
            policy: Policy {
                default_rate_limit,
                failed_auth_limit,
                max_keys_per_shop,
                legacy_sunset,
                legacy_brownouts,
                trusted_proxies: TrustedProxies::new(trusted),
                public_url: public_url
                    .unwrap_or_else(|| format!("http://{listen}"))
                    .trim_end_matches('/')
                    .to_owned(),
                leak_report_keys,
                leak_action,
            },
        })
    }

    /// The SQLite file, when the database is SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .filter(|p| !p.starts_with(":memory:"))
            .map(Path::new)
    }
}

/// A database or Redis URL with its password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn in_dir(dir: &Path, toml: Option<&str>) -> Overrides {
        if let Some(t) = toml {
            std::fs::write(dir.join("latchkey.toml"), t).unwrap();
        }
        Overrides {
            data_dir: Some(dir.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&in_dir(dir.path(), None), &env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.policy.default_rate_limit, 100);
        assert_eq!(s.failed_auth_limit, 30);
        assert_eq!(s.policy.max_keys_per_shop, 1000);
        assert_eq!(
            s.policy.legacy_sunset.to_string(),
            "2026-12-01T00:00:00.000000Z"
        );
        assert!(s.database_url.ends_with("latchkey.db"));
    }

    #[test]
    fn file_then_env_then_flags_win_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = in_dir(
            dir.path(),
            Some("default_rate_limit = 50\nlisten = \"127.0.0.1:9000\"\nmax_keys_per_shop = 10\n"),
        );
        let e = env(&[
            ("LATCHKEY_DEFAULT_RATE_LIMIT", "60"),
            ("LATCHKEY_LISTEN", "127.0.0.1:9001"),
        ]);
        let s = Settings::resolve(&flags, &e).unwrap();
        assert_eq!(s.policy.default_rate_limit, 60);
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.policy.max_keys_per_shop, 10);
        flags.default_rate_limit = Some("70".into());
        assert_eq!(
            Settings::resolve(&flags, &e)
                .unwrap()
                .policy
                .default_rate_limit,
            70
        );
    }

    #[test]
    fn unknown_and_invalid_settings_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = Settings::resolve(&in_dir(dir.path(), Some("listne = \"x\"\n")), &env(&[]))
            .unwrap_err();
        assert!(err.contains("listne"), "{err}");
        std::fs::remove_file(dir.path().join("latchkey.toml")).unwrap();
        let err = Settings::resolve(&in_dir(dir.path(), None), &env(&[("LATCHKEY_LISTN", "x")]))
            .unwrap_err();
        assert!(err.contains("LATCHKEY_LISTN"), "{err}");
        let err = Settings::resolve(
            &in_dir(dir.path(), None),
            &env(&[("LATCHKEY_DEFAULT_RATE_LIMIT", "0")]),
        )
        .unwrap_err();
        assert!(err.contains("default-rate-limit"), "{err}");
        let err = Settings::resolve(
            &in_dir(dir.path(), None),
            &env(&[("LATCHKEY_LISTEN", "nope")]),
        )
        .unwrap_err();
        assert!(err.contains("--listen"), "{err}");
        let err = Settings::resolve(
            &in_dir(dir.path(), None),
            &env(&[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, bad")]),
        )
        .unwrap_err();
        assert!(err.contains("bad"), "{err}");
        let flags = Overrides {
            config: Some(dir.path().join("missing.toml")),
            ..Default::default()
        };
        assert!(
            Settings::resolve(&flags, &env(&[]))
                .unwrap_err()
                .contains("missing.toml")
        );
    }

    #[test]
    fn leak_report_settings_come_from_the_file_the_environment_or_flags() {
        use crate::domain::policy::LeakAction;
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&in_dir(dir.path(), None), &env(&[])).unwrap();
        assert_eq!(s.policy.leak_report_keys, None);
        assert_eq!(s.policy.leak_action, LeakAction::Revoke);
        let s = Settings::resolve(
            &in_dir(
                dir.path(),
                Some("leak_report_keys = \"/etc/latchkey/github.json\"\nleak_action = \"flag\"\n"),
            ),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            s.policy.leak_report_keys.as_deref(),
            Some(Path::new("/etc/latchkey/github.json"))
        );
        assert_eq!(s.policy.leak_action, LeakAction::Flag);
        let mut flags = in_dir(dir.path(), None);
        flags.leak_action = Some("revoke".into());
        let s =
            Settings::resolve(&flags, &env(&[("LATCHKEY_LEAK_REPORT_KEYS", "/k.json")])).unwrap();
        assert_eq!(s.policy.leak_action, LeakAction::Revoke, "the flag wins");
        assert_eq!(
            s.policy.leak_report_keys.as_deref(),
            Some(Path::new("/k.json"))
        );
        let err = Settings::resolve(
            &in_dir(dir.path(), None),
            &env(&[("LATCHKEY_LEAK_ACTION", "delete")]),
        )
        .unwrap_err();
        assert!(
            err.contains("--leak-action") && err.contains("flag"),
            "{err}"
        );
    }

    #[test]
    fn redis_settings_are_checked_where_they_are_given() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&in_dir(dir.path(), None), &env(&[])).unwrap();
        assert_eq!(s.redis_unavailable, WhenUnavailable::Local);
        assert_eq!(s.redis_url, None);
        let s = Settings::resolve(
            &in_dir(
                dir.path(),
                Some("redis_url = \"redis://127.0.0.1:6379/2\"\nredis_unavailable = \"deny\"\n"),
            ),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(s.redis_unavailable, WhenUnavailable::Deny);
        assert_eq!(s.redis_url.as_deref(), Some("redis://127.0.0.1:6379/2"));
        std::fs::remove_file(dir.path().join("latchkey.toml")).unwrap();
        let mut flags = in_dir(dir.path(), None);
        flags.redis_unavailable = Some("local".into());
        let s = Settings::resolve(&flags, &env(&[("LATCHKEY_REDIS_UNAVAILABLE", "deny")])).unwrap();
        assert_eq!(s.redis_unavailable, WhenUnavailable::Local, "the flag wins");
        let err = Settings::resolve(
            &in_dir(dir.path(), None),
            &env(&[("LATCHKEY_REDIS_UNAVAILABLE", "maybe")]),
        )
        .unwrap_err();
        assert!(err.contains("--redis-unavailable"), "{err}");
        assert!(err.contains("`local`") && err.contains("`deny`"), "{err}");
        // A database number that is no number, with the password redacted.
        let err = Settings::resolve(
            &in_dir(dir.path(), None),
            &env(&[("LATCHKEY_REDIS_URL", "redis://:hunter2@127.0.0.1:6379/abc")]),
        )
        .unwrap_err();
        assert!(err.contains("--redis-url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("database number"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/lk"),
            "postgres://app:***@db:5432/lk"
        );
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
