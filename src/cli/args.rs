//! The commands and their arguments, as clap parses them.

use super::*;

#[derive(Parser, Debug)]
#[command(
    name = "latchkey",
    version,
    about = "API keys for repair-shop platforms, and the REST API they open."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives. Each also reads `LATCHKEY_<NAME>` and the config file.
/// Every command takes them; `--help` lists them once, under their own heading.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Config file [env: LATCHKEY_CONFIG] [default: <data-dir>/latchkey.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory: database, secret, config [env: LATCHKEY_DATA_DIR] [default: ./latchkey-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH, or postgres://USER[:PASSWORD]@HOST:PORT/DB for several instances [env: LATCHKEY_DATABASE_URL] [default: sqlite://<data-dir>/latchkey.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// File holding the server secret used to hash keys [env: LATCHKEY_SECRET_FILE; or the secret itself in LATCHKEY_SECRET] [default: <data-dir>/secret.key, created on first use]
    #[arg(long, global = true, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (API, docs, web UI).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage shops (tenants).
    #[command(subcommand)]
    Shop(ShopCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage users of the web UI.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Import and manage legacy keys (the earlier API-key scheme).
    #[command(subcommand)]
    Legacy(LegacyCommand),
    /// Manage a shop's test-environment data.
    #[command(subcommand, name = "test-data")]
    TestData(TestDataCommand),
    /// Move a whole installation between SQLite and PostgreSQL.
    #[command(subcommand)]
    Db(super::db::DbCommand),
}

#[derive(Subcommand, Debug)]
pub enum LegacyCommand {
    /// Import legacy keys from a CSV file with a header row and the columns
    /// key,name[,permissions][,allowed_ips] (lists space-separated). Every row
    /// is checked first; any bad row stops the import unless --skip-invalid.
    /// Warns when the legacy cut-off (LATCHKEY_LEGACY_SUNSET or `legacy_sunset`
    /// in the config file, as `serve` reads it) is past or within 14 days.
    Import {
        /// Shop id to import into (`latchkey shop list` shows them)
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// The CSV file to import
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Import the good rows and report the bad ones
        #[arg(long)]
        skip_invalid: bool,
        /// Print JSON: the imported keys, bad rows, weak keys and warnings
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TestDataCommand {
    /// Replace the shop's test data with the sample set (live data is never touched).
    Reset {
        /// Shop id (`latchkey shop list` shows them)
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// Print JSON: the counts of the sample set
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [env: LATCHKEY_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Redis URL (redis://[:PASSWORD@]HOST:PORT[/DB]) sharing rate limits, failed-attempt limits, login throttles and form de-duplication across instances; instances need synchronised clocks [env: LATCHKEY_REDIS_URL]
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// While Redis does not answer: `local` falls back to this instance's own limits (warning at most once a minute), `deny` answers keyed requests, logins and key forms 503 [env: LATCHKEY_REDIS_UNAVAILABLE] [default: local]
    #[arg(long, value_name = "local|deny")]
    pub redis_unavailable: Option<String>,
    /// External URL used in links, docs and the setup link [env: LATCHKEY_PUBLIC_URL] [default: http://<listen>]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Comma-separated CIDRs of proxies whose X-Forwarded-For is believed [env: LATCHKEY_TRUSTED_PROXIES]
    #[arg(long, value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,
    /// Cut-off for legacy keys, RFC 3339 [env: LATCHKEY_LEGACY_SUNSET] [default: 2026-12-01T00:00:00Z]
    #[arg(long, value_name = "TIME")]
    pub legacy_sunset: Option<String>,
    /// A brownout window before the cut-off, START/END in RFC 3339, during which legacy keys already fail; repeat for more [env: LATCHKEY_LEGACY_BROWNOUT, comma-separated]
    #[arg(long, value_name = "START/END")]
    pub legacy_brownout: Vec<String>,
    /// Requests per minute for keys without their own limit [env: LATCHKEY_DEFAULT_RATE_LIMIT] [default: 100]
    #[arg(long, value_name = "N")]
    pub default_rate_limit: Option<String>,
    /// Failed authentications per minute per client IP [env: LATCHKEY_FAILED_AUTH_LIMIT] [default: 30]
    #[arg(long, value_name = "N")]
    pub failed_auth_limit: Option<String>,
    /// Most keys one shop may hold [env: LATCHKEY_MAX_KEYS_PER_SHOP] [default: 1000]
    #[arg(long, value_name = "N")]
    pub max_keys_per_shop: Option<String>,
    /// Secret scanners' public keys, a JSON file in GitHub's shape ({"public_keys": [{"key_identifier", "key", "is_current"}]}), re-read when it changes; enables POST /secret-scanning/reports [env: LATCHKEY_LEAK_REPORT_KEYS]
    #[arg(long, value_name = "FILE")]
    pub leak_report_keys: Option<PathBuf>,
    /// What a leaked-key report does: `revoke` the key at once, or only `flag` it [env: LATCHKEY_LEAK_ACTION] [default: revoke]
    #[arg(long, value_name = "revoke|flag")]
    pub leak_action: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ShopCommand {
    /// Create a shop and its owner; prints the ids and a generated password.
    Create {
        /// The shop's name
        #[arg(long)]
        name: String,
        /// The owner's email (their login)
        #[arg(long, value_name = "EMAIL")]
        owner_email: String,
        /// Read the owner's password from standard input instead of generating one
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON: shop_id, shop_name, owner_id, owner_email and the generated password
        #[arg(long)]
        json: bool,
    },
    /// List every shop with its id, name and owner, oldest first.
    List {
        /// Print JSON: {"shops": [{"id", "name", "owner_email", "created_at"}]}
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Give a user (the owner too) a new one-time password, valid for 7 days;
    /// their sessions end and they choose their own password at next login.
    ResetPassword {
        /// The user's email (their login)
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; prints it with its secret, the only time the secret is shown.
    Create {
        /// Shop id (`latchkey shop list` shows them)
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// Name saying where the key is used (default: the template's name)
        #[arg(long)]
        name: Option<String>,
        /// Template id: website-contact-form, zapier, it-glue, ninja-rmm, pax8, read-only
        #[arg(long, value_name = "ID", required_unless_present = "permission")]
        template: Option<String>,
        /// Permission to grant (repeat for several), e.g. orders:read
        #[arg(long, value_name = "PERMISSION")]
        permission: Vec<String>,
        /// The key's environment: live or test (test keys see only test data)
        #[arg(long, default_value = "live")]
        environment: String,
        /// Allowed address or CIDR (repeat for several); none allows any
        #[arg(long, value_name = "CIDR")]
        allowed_ip: Vec<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-31T17:00:00Z)
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
        /// Requests per minute (1-10000) [default: the server's default]
        #[arg(long, value_name = "N")]
        rate_limit: Option<i64>,
        /// Print JSON: {"key": {...}} with the secret at .key.secret
        #[arg(long)]
        json: bool,
    },
    /// List a shop's keys.
    List {
        /// Shop id (`latchkey shop list` shows them)
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// Only keys of this environment: live or test
        #[arg(long)]
        environment: Option<String>,
        /// Only keys with this status: active, expired, revoked, retired
        #[arg(long)]
        status: Option<String>,
        /// Print JSON: {"keys": [...]}, without secrets
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// The key's id (key_…), as `keys list` shows it
        key_id: String,
        /// Print JSON: {"key": {...}}
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key for good: running servers refuse it within a second.
    Revoke {
        /// The key's id (key_…), as `keys list` shows it
        key_id: String,
        /// Print JSON: {"key": {...}}, with status "revoked"
        #[arg(long)]
        json: bool,
    },
    /// Pause an integration's keys: requests get 403 key_paused until resumed.
    Pause {
        /// Shop id
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// Every key made from this template, e.g. zapier
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "key",
            conflicts_with = "key"
        )]
        template: Option<String>,
        /// A key id (repeat for several)
        #[arg(long = "key", value_name = "KEY_ID")]
        key: Vec<String>,
        /// Why, shown to the integration in key_paused
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON: {"paused": ["key_…"], "skipped": [{"id", "reason"}]}
        #[arg(long)]
        json: bool,
    },
    /// Resume paused keys: they work again at once.
    Resume {
        /// Shop id
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// Every paused key made from this template, e.g. zapier
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "key",
            conflicts_with = "key"
        )]
        template: Option<String>,
        /// A key id (repeat for several)
        #[arg(long = "key", value_name = "KEY_ID")]
        key: Vec<String>,
        /// Print JSON: {"resumed": ["key_…"], "skipped": [{"id", "reason"}]}
        #[arg(long)]
        json: bool,
    },
    /// Delete a key for good.
    Delete {
        /// The key's id (key_…), as `keys list` shows it
        key_id: String,
        /// Print JSON: {"deleted": "key_…"}
        #[arg(long)]
        json: bool,
    },
    /// Roll a key: a replacement with the same settings; prints its secret once.
    Roll {
        /// The id of the key to replace (key_…)
        key_id: String,
        /// How long the old key keeps working, 0-604800 seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        expire_old_in: i64,
        /// Print JSON: {"key": {...}}, the new key with its secret at .key.secret
        #[arg(long)]
        json: bool,
    },
    /// Upgrade a legacy key to a new standard key; prints its secret once.
    Upgrade {
        /// The legacy key's id (key_…)
        key_id: String,
        /// Retire the legacy key now instead of at the cut-off
        #[arg(long)]
        retire_legacy: bool,
        /// Grant only the permissions of the endpoints the legacy key called
        #[arg(long)]
        narrow_to_used: bool,
        /// Print JSON: {"key": {...}}, the new key with its secret at .key.secret
        #[arg(long)]
        json: bool,
    },
}

impl GlobalArgs {
    pub(super) fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            secret_file: self.secret_file.clone(),
            ..Default::default()
        }
    }
}
