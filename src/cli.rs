//! The command line: `serve`, `migrate`, `shop`, `keys`, `users`, `db`.
//!
//! Every command that touches data takes `--data-dir` or `--database-url` (so a
//! CLI and a running server share one database) and creates the data directory,
//! the migrated database and the server secret when they are missing. Errors go
//! to stderr as one line; the exit status is non-zero.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::app::Core;
use crate::auth::secret::{KeyHasher, ServerSecret};
use crate::config::{Overrides, ProcessEnv, Settings, redact_url};
use crate::domain::clock::SystemClock;
use crate::domain::key::KeyStatus;
use crate::domain::random_base62;
use crate::domain::token::Environment;
use crate::domain::user::Password;
use crate::service::ServiceError;
use crate::service::keys::{KeyView, NewKeyInput, Principal};
use crate::service::shops::{CreatedShop, NewShopInput};
use crate::store::{PageRequest, Store};

/// Prints a line to stdout. A closed pipe (`latchkey keys list | head`) is
/// the reader's choice, not an error, so write failures are ignored rather
/// than panicking as `println!` does.
macro_rules! out {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod db;

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
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Config file [env: LATCHKEY_CONFIG] [default: <data-dir>/latchkey.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory: database, secret, config [env: LATCHKEY_DATA_DIR] [default: ./latchkey-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL, sqlite://PATH [env: LATCHKEY_DATABASE_URL] [default: sqlite://<data-dir>/latchkey.db]
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
    Db(db::DbCommand),
}

#[derive(Subcommand, Debug)]
pub enum LegacyCommand {
    /// Import legacy keys from a CSV file with a header row and the columns
    /// key,name[,permissions][,allowed_ips] (lists space-separated). Every row
    /// is checked first; any bad row stops the import unless --skip-invalid.
    Import {
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Import the good rows and report the bad ones
        #[arg(long)]
        skip_invalid: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TestDataCommand {
    /// Replace the shop's test data with the sample set (live data is never touched).
    Reset {
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [env: LATCHKEY_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Redis URL for shared rate limits across instances [env: LATCHKEY_REDIS_URL]
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
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
        /// Print JSON
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
        /// Shop id
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
        /// live or test
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
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List a shop's keys.
    List {
        #[arg(long, value_name = "SHOP_ID")]
        shop: String,
        /// Only keys of this environment: live or test
        #[arg(long)]
        environment: Option<String>,
        /// Only keys with this status: active, expired, revoked, retired
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        key_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops working at once, here and in running servers.
    Revoke {
        key_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a key for good.
    Delete {
        key_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Roll a key: a replacement with the same settings; prints its secret once.
    Roll {
        key_id: String,
        /// How long the old key keeps working, 0-604800 seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        expire_old_in: i64,
        #[arg(long)]
        json: bool,
    },
    /// Upgrade a legacy key to a new standard key; prints its secret once.
    Upgrade {
        key_id: String,
        /// Retire the legacy key now instead of at the cut-off
        #[arg(long)]
        retire_legacy: bool,
        /// Grant only the permissions of the endpoints the legacy key called
        #[arg(long)]
        narrow_to_used: bool,
        #[arg(long)]
        json: bool,
    },
}

impl GlobalArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            secret_file: self.secret_file.clone(),
            ..Default::default()
        }
    }
}

/// Parses arguments, runs the command, and turns failure into one stderr line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("latchkey: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = cli.global.overrides();
    if let Command::Serve(args) = &cli.command {
        overrides.listen = args.listen.clone();
        overrides.redis_url = args.redis_url.clone();
        overrides.public_url = args.public_url.clone();
        overrides.trusted_proxies = args.trusted_proxies.clone();
        overrides.legacy_sunset = args.legacy_sunset.clone();
        if !args.legacy_brownout.is_empty() {
            overrides.legacy_brownout = Some(args.legacy_brownout.join(","));
        }
        overrides.default_rate_limit = args.default_rate_limit.clone();
        overrides.failed_auth_limit = args.failed_auth_limit.clone();
        overrides.max_keys_per_shop = args.max_keys_per_shop.clone();
    }
    if !matches!(cli.command, Command::Serve(_)) {
        crate::telemetry::init(false);
    }
    let settings = Settings::resolve(&overrides, &ProcessEnv).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Serve(_) => serve(settings).await,
        Command::Migrate => {
            // SPEC: data commands create the data dir, database and secret.
            open_core(&settings).await?;
            eprintln!(
                "database {} is up to date",
                redact_url(&settings.database_url)
            );
            Ok(())
        }
        Command::Shop(cmd) => shop(settings, cmd).await,
        Command::Keys(cmd) => keys(settings, cmd).await,
        Command::Users(cmd) => users(settings, cmd).await,
        Command::Db(cmd) => db::run(cmd).await,
        Command::Legacy(LegacyCommand::Import {
            shop,
            file,
            skip_invalid,
            json,
        }) => legacy_import(settings, &shop, &file, skip_invalid, json).await,
        Command::TestData(TestDataCommand::Reset { shop, json }) => {
            let (core, _) = open_core(&settings).await?;
            match core.keys.shop_exists(&shop).await {
                Ok(()) => {}
                Err(ServiceError::Validation(_)) => bail!("--shop: no shop with id `{shop}`"),
                Err(e) => bail!("{e}"),
            }
            let by = crate::service::resources::ResetBy::Operator { shop_id: &shop };
            let counts = core
                .resources
                .reset_test_data(by)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (c, o, d) = (counts.clients, counts.orders, counts.devices);
            if json {
                out!(
                    "{}",
                    serde_json::json!({"test_data": {"clients": c, "orders": o, "devices": d}})
                );
            } else {
                out!("test data of {shop} reset: {c} clients, {o} orders, {d} devices");
            }
            Ok(())
        }
    }
}

/// The store `--database-url` names (SQLite or PostgreSQL, by its scheme),
/// migrated. A bad or unreachable database is one line naming the URL with
/// its password redacted.
async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    // The data directory holds the secret whatever the database is.
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    if let Some(parent) = settings.sqlite_path().and_then(|p| p.parent())
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).with_context(|| {
            format!("cannot create the database directory {}", parent.display())
        })?;
    }
    crate::store::open(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&settings.database_url)
            )
        })
}

/// The server secret, from `LATCHKEY_SECRET`, `--secret-file`, or
/// `<data-dir>/secret.key` (created on first use). Returns whether it was created.
fn load_secret(settings: &Settings) -> anyhow::Result<(ServerSecret, Option<PathBuf>)> {
    if let Some(value) = std::env::var("LATCHKEY_SECRET")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return ServerSecret::new(value.into_bytes())
            .map(|s| (s, None))
            .map_err(|e| anyhow::anyhow!("LATCHKEY_SECRET: {e}"));
    }
    if let Some(path) = &settings.secret_file {
        return ServerSecret::read_file(path)
            .map(|s| (s, None))
            .map_err(anyhow::Error::msg);
    }
    let path = settings.data_dir.join("secret.key");
    let (secret, created) = ServerSecret::load_or_create(&path).map_err(anyhow::Error::msg)?;
    Ok((secret, created.then_some(path)))
}

/// Store, secret and policy: what every data command needs.
pub async fn open_core(settings: &Settings) -> anyhow::Result<(Core, Option<PathBuf>)> {
    let store = open_store(settings).await?;
    let (secret, created) = load_secret(settings)?;
    let core = Core::new(
        store,
        Arc::new(SystemClock),
        KeyHasher::new(&secret),
        settings.policy.clone(),
    );
    Ok((core, created))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(true);
    if settings.redis_url.is_some() {
        bail!(
            "--redis-url: shared rate limits on Redis are not supported by this build yet; run one instance without it"
        );
    }
    let (core, created_secret) = open_core(&settings).await?;
    if !settings.database_url.starts_with("sqlite:") {
        tracing::warn!(
            "rate limits, failed-attempt limits and login throttles are kept per instance (no --redis-url): with several instances behind a load balancer each enforces its own"
        );
    }
    if let Some(path) = created_secret {
        tracing::warn!(
            path = %path.display(),
            "created a new server secret; in production keep it apart from the database and its backups (--secret-file or LATCHKEY_SECRET)"
        );
    } else if settings.secret_file.is_none() && std::env::var_os("LATCHKEY_SECRET").is_none() {
        tracing::warn!(
            "the server secret lives in the data directory beside the database; in production keep it apart from the database and its backups (--secret-file or LATCHKEY_SECRET)"
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let mut policy = core.policy.clone();
    if settings.public_url.is_none() {
        policy.public_url = format!("http://{addr}");
    }
    let public_url = policy.public_url.clone();
    // Built again with the address actually bound, which the setup link names.
    let core = Core::new(
        core.store.clone(),
        core.clock.clone(),
        core.hasher.clone(),
        policy,
    );
    let has_shops = core.shops.has_shops().await.map_err(service_err)?;
    tracing::info!(url = %public_url, listen = %addr, database = %redact_url(&settings.database_url), "latchkey listening on {public_url}");
    if !has_shops {
        let link = core.shops.setup_link().await.map_err(service_err)?;
        tracing::info!(
            "no shop yet: open the one-time setup link {link} (or run `latchkey shop create`)"
        );
    }
    crate::app::serve(
        listener,
        crate::app::AppState::new(Arc::new(core)),
        shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn shop(settings: Settings, cmd: ShopCommand) -> anyhow::Result<()> {
    let ShopCommand::Create {
        name,
        owner_email,
        password_stdin,
        json,
    } = cmd;
    let (password, generated) = if password_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read the password from standard input")?;
        (
            Password::parse(input.trim_end_matches(['\n', '\r']).to_owned()),
            None,
        )
    } else {
        let p = random_base62(20);
        (Password::parse(p.clone()), Some(p))
    };
    let (core, _) = open_core(&settings).await?;
    let input = NewShopInput {
        name: &name,
        owner_email: &owner_email,
        password,
    };
    let CreatedShop { shop, owner } = core.shops.create(input).await.map_err(service_err)?;
    if json {
        let mut out = serde_json::json!({
            "shop_id": shop.id, "shop_name": shop.name, "owner_id": owner.id, "owner_email": owner.email,
        });
        if let Some(p) = &generated {
            out["password"] = serde_json::Value::String(p.clone());
        }
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("shop_id:     {}", shop.id);
        out!("shop_name:   {}", shop.name);
        out!("owner_id:    {}", owner.id);
        out!("owner_email: {}", owner.email.as_str());
        if let Some(p) = &generated {
            out!("password:    {p}   (shown once; change it after logging in)");
        }
    }
    Ok(())
}

async fn users(settings: Settings, cmd: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::ResetPassword { email, json } = cmd;
    let (core, _) = open_core(&settings).await?;
    let issued = match core.users.reset_password_by_email(&email).await {
        Ok(issued) => issued,
        Err(ServiceError::NotFound) => bail!("--email: no user with email `{email}`"),
        Err(e) => return Err(service_err(e)),
    };
    let until = issued.until.to_rfc3339();
    if json {
        let out = serde_json::json!({
            "user_id": issued.user.id, "shop_id": issued.user.shop_id,
            "email": issued.user.email, "password": issued.password, "valid_until": until,
        });
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("user_id:     {}", issued.user.id);
        out!("email:       {}", issued.user.email.as_str());
        out!(
            "password:    {}   (one-time, shown once; works until {until})",
            issued.password
        );
    }
    Ok(())
}

fn service_err(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such key"),
        ServiceError::Validation(errors) => anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| format!("{}: {}", cli_field(&e.field), e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

/// API field names as the CLI's flags.
fn cli_field(field: &str) -> String {
    let base = field.split('[').next().unwrap_or(field);
    let flag = match base {
        "permissions" => "permission",
        "password" => "password-stdin",
        "allowed_ips" => "allowed-ip",
        "rate_limit_per_minute" => "rate-limit",
        other => other,
    };
    format!("--{}{}", flag.replace('_', "-"), &field[base.len()..])
}

fn print_key(
    core: &Core,
    key: &crate::domain::key::KeyRecord,
    secret: Option<&crate::domain::token::PlainKey>,
    json: bool,
) -> anyhow::Result<()> {
    let view = core.keys.view(key, secret);
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "key": view }))?
        );
        return Ok(());
    }
    out!("id:           {}", view.key.id);
    out!("name:         {}", view.key.name);
    out!("environment:  {}", view.key.environment);
    out!("status:       {}", view.key.status.as_str());
    out!("key:          {}", view.key.display);
    out!("permissions:  {}", key.permissions.to_names().join(" "));
    let ips = key.allowed_ips.to_strings();
    out!(
        "allowed_ips:  {}",
        if ips.is_empty() {
            "any".into()
        } else {
            ips.join(" ")
        }
    );
    out!("rate_limit:   {}/min", view.key.rate_limit_per_minute);
    out!(
        "expires_at:   {}",
        view.key
            .expires_at
            .map_or("never".into(), |t| t.to_string())
    );
    out!("created_at:   {}", view.key.created_at);
    for w in &view.key.warnings {
        out!("warning:      {}", w.message);
    }
    if let Some(s) = secret {
        out!();
        out!("secret:       {}", s.expose());
        out!("              Copy it now: it is shown only this once.");
    }
    Ok(())
}

async fn keys(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let (core, _) = open_core(&settings).await?;
    let keys = core.keys.clone();
    let shop_exists = |id: String| {
        let keys = keys.clone();
        async move {
            match keys.shop_exists(&id).await {
                Ok(()) => Ok(()),
                Err(ServiceError::Validation(_)) => {
                    Err(anyhow::anyhow!("--shop: no shop with id `{id}`"))
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
    };
    match cmd {
        KeysCommand::Create {
            shop,
            name,
            template,
            permission,
            environment,
            allowed_ip,
            expires_at,
            rate_limit,
            json,
        } => {
            shop_exists(shop.clone()).await?;
            let input = NewKeyInput {
                name,
                template,
                permissions: (!permission.is_empty()).then_some(permission),
                environment: Some(environment),
                allowed_ips: Some(allowed_ip),
                expires_at,
                rate_limit_per_minute: rate_limit,
            };
            let new = keys
                .validate_new(input, Environment::Live)
                .map_err(service_err)?;
            let created = keys
                .create_key(&Principal::cli(&shop), new)
                .await
                .map_err(service_err)?;
            print_key(&core, &created.key, Some(&created.secret), json)
        }
        KeysCommand::List {
            shop,
            environment,
            status,
            json,
        } => {
            shop_exists(shop.clone()).await?;
            let environment = environment
                .map(|e| e.parse::<Environment>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--environment: {e}"))?;
            let status = status
                .map(|s| s.parse::<KeyStatus>())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--status: {e}"))?;
            let cli = Principal::cli(&shop);
            let mut all = Vec::new();
            let mut page = PageRequest {
                page: 1,
                per_page: 100,
            };
            loop {
                let batch = keys
                    .list(&cli, environment, status, page)
                    .await
                    .map_err(service_err)?;
                let done = batch.items.len() < page.per_page as usize;
                all.extend(batch.items);
                if done {
                    break;
                }
                page.page += 1;
            }
            if json {
                let views: Vec<KeyView> = all.iter().map(|k| keys.view(k, None)).collect();
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "keys": views }))?
                );
            } else if all.is_empty() {
                out!("no keys");
            } else {
                out!(
                    "{:<29} {:<8} {:<8} {:<22} NAME",
                    "ID",
                    "ENV",
                    "STATUS",
                    "KEY"
                );
                for k in &all {
                    out!(
                        "{:<29} {:<8} {:<8} {:<22} {}",
                        k.id,
                        k.environment.as_str(),
                        keys.status_of(k).as_str(),
                        k.display,
                        k.name.as_str()
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Show { key_id, json } => {
            let key = find_key(&core, &key_id).await?;
            print_key(&core, &key, None, json)
        }
        KeysCommand::Revoke { key_id, json } => {
            let key = find_key(&core, &key_id).await?;
            let revoked = keys
                .revoke_key(&Principal::cli(&key.shop_id), &key_id, false)
                .await
                .map_err(service_err)?;
            print_key(&core, &revoked, None, json)
        }
        KeysCommand::Delete { key_id, json } => {
            let key = find_key(&core, &key_id).await?;
            keys.delete_key(&Principal::cli(&key.shop_id), &key_id)
                .await
                .map_err(service_err)?;
            if json {
                out!("{}", serde_json::json!({"deleted": key_id}));
            } else {
                out!("deleted {key_id} ({})", key.name.as_str());
            }
            Ok(())
        }
        KeysCommand::Roll {
            key_id,
            expire_old_in,
            json,
        } => {
            let key = find_key(&core, &key_id).await?;
            let (c, old) = keys
                .roll_key(&Principal::cli(&key.shop_id), &key_id, expire_old_in)
                .await
                .map_err(service_err)?;
            if !json {
                out!(
                    "rolled {key_id}: it stops working at {}",
                    old.expires_at.map_or("once".into(), |t| t.to_string())
                );
                out!();
            }
            print_key(&core, &c.key, Some(&c.secret), json)
        }
        KeysCommand::Upgrade {
            key_id,
            retire_legacy,
            narrow_to_used,
            json,
        } => {
            let key = find_key(&core, &key_id).await?;
            let up = keys
                .upgrade_key(
                    &Principal::cli(&key.shop_id),
                    &key_id,
                    retire_legacy,
                    narrow_to_used,
                )
                .await
                .map_err(service_err)?;
            if !json {
                if retire_legacy {
                    out!("upgraded {key_id}; the legacy key is retired now");
                } else {
                    out!(
                        "upgraded {key_id}; the legacy key keeps working until {}",
                        core.policy.legacy_sunset
                    );
                }
                for w in &up.warnings {
                    out!("warning: {w}");
                }
                out!();
            }
            if json && !up.warnings.is_empty() {
                let mut view =
                    serde_json::to_value(keys.view(&up.created.key, Some(&up.created.secret)))?;
                if let Some(list) = view.get_mut("warnings").and_then(|w| w.as_array_mut()) {
                    for m in &up.warnings {
                        list.push(serde_json::json!({"code": "not_narrowed", "message": m}));
                    }
                }
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "key": view }))?
                );
                return Ok(());
            }
            print_key(&core, &up.created.key, Some(&up.created.secret), json)
        }
    }
}

async fn legacy_import(
    settings: Settings,
    shop: &str,
    file: &std::path::Path,
    skip_invalid: bool,
    json: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--file: cannot read {}: {e}", file.display()))?;
    let (core, _) = open_core(&settings).await?;
    let summary = match core.keys.import_legacy(shop, &text, skip_invalid).await {
        Ok(s) => s,
        Err(crate::domain::legacy::ImportError::Invalid(rows)) if json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "imported": 0,
                    "invalid": rows,
                }))?
            );
            bail!("{} invalid row(s), nothing imported", rows.len());
        }
        Err(e) => bail!("{e}"),
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    out!(
        "imported {} legacy key(s) into {shop}; skipped {} invalid row(s)",
        summary.imported,
        summary.skipped
    );
    for k in &summary.keys {
        out!("  line {}: {} {} ({})", k.line, k.id, k.display, k.name);
    }
    for r in &summary.invalid {
        out!("  skipped line {}: {}", r.line, r.reason);
    }
    for k in &summary.weak {
        out!(
            "  weak: line {} ({}, {}) is shorter than 22 characters; upgrade it first",
            k.line,
            k.id,
            k.name
        );
    }
    Ok(())
}

async fn find_key(core: &Core, id: &str) -> anyhow::Result<crate::domain::key::KeyRecord> {
    match core.keys.get_any_shop(id).await {
        Ok(key) => Ok(key),
        Err(ServiceError::NotFound) => Err(anyhow::anyhow!("no key with id `{id}`")),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}
