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
use crate::service::keys::{KeyView, NewKeyInput, PauseInput, Principal};
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

mod args;
mod db;
mod keys;
mod legacy;
mod open;
mod serve;
mod shop;
mod users;

pub use args::*;
use keys::keys;
use legacy::legacy_import;
pub use open::open_core;
use serve::serve;
use shop::shop;
use users::users;

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
        overrides.redis_unavailable = args.redis_unavailable.clone();
        overrides.public_url = args.public_url.clone();
        overrides.trusted_proxies = args.trusted_proxies.clone();
        overrides.legacy_sunset = args.legacy_sunset.clone();
        if !args.legacy_brownout.is_empty() {
            overrides.legacy_brownout = Some(args.legacy_brownout.join(","));
        }
        overrides.default_rate_limit = args.default_rate_limit.clone();
        overrides.failed_auth_limit = args.failed_auth_limit.clone();
        overrides.max_keys_per_shop = args.max_keys_per_shop.clone();
        overrides.leak_report_keys = args.leak_report_keys.clone();
        overrides.leak_action = args.leak_action.clone();
    }
    if !matches!(cli.command, Command::Serve(_)) {
        let _ = crate::telemetry::init(false);
    }
    let settings = Settings::resolve(&overrides, &ProcessEnv).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Serve(_) => serve(settings).await,
        Command::Migrate => {
            // Data commands create the data dir, database and secret (docs/CLI.md).
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
