//! `latchkey db copy`: moves a whole installation between SQLite and
//! PostgreSQL (the work is [`crate::store::copy`]'s; this prints it).

use anyhow::anyhow;
use clap::Subcommand;

use crate::config::redact_url;
use crate::store::copy::{self, CopyError, Side};

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Copy a whole installation (shops, users, keys, audit, data, usage) into
    /// an empty database, SQLite → PostgreSQL or back.
    ///
    /// Key hashes are copied as they are: serve the target with the same
    /// server secret as the source (the same --data-dir, --secret-file or
    /// LATCHKEY_SECRET), or no key verifies. Both databases are migrated
    /// first; the target must hold no shop, key or user, and gets everything
    /// in one transaction or nothing. Stop servers writing to the source
    /// first: what they write during the copy is not carried.
    Copy {
        /// The installation to copy: sqlite://PATH or postgres://USER[:PASSWORD]@HOST:PORT/DB
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty database to copy into: sqlite://PATH or postgres://…
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print a JSON summary
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: DbCommand) -> anyhow::Result<()> {
    let DbCommand::Copy { from, to, json } = cmd;
    let (from_shown, to_shown) = (redact_url(&from), redact_url(&to));
    if let Some(parent) = sqlite_parent(&to)
        && !parent.exists()
    {
        super::open::owner_only_dir(parent).map_err(|e| {
            anyhow!(
                "cannot create the directory {} for --to: {e}",
                parent.display()
            )
        })?;
    }
    if let Some(file) = sqlite_file(&to) {
        super::open::owner_only_file(file).map_err(|e| {
            anyhow!(
                "cannot create the database file {} for --to: {e}",
                file.display()
            )
        })?;
    }
    let result = copy::copy(&from, &to, |table, rows| {
        eprintln!(
            "{table:<20} {rows} {}",
            if rows == 1 { "row" } else { "rows" }
        );
    })
    .await;
    let report = result.map_err(|e| {
        let line = match e {
            CopyError::Open(Side::From, e) => format!("cannot open --from {from_shown}: {e}"),
            CopyError::Open(Side::To, e) => format!("cannot open --to {to_shown}: {e}"),
            CopyError::TargetNotEmpty => format!(
                "refusing to copy: --to {to_shown} already holds data (a shop, key or user); copy only into an empty database"
            ),
            other => format!("copying {from_shown} to {to_shown} failed: {other}"),
        };
        anyhow!("{}", hide_passwords(&line, &[&from, &to]))
    })?;
    let rows = report.rows();
    if json {
        let tables: serde_json::Map<String, serde_json::Value> = report
            .tables
            .iter()
            .map(|(t, n)| ((*t).to_owned(), (*n).into()))
            .collect();
        let out = serde_json::json!({
            "from": from_shown,
            "to": to_shown,
            "rows": rows,
            "tables": tables,
            "audit_seq": report.counters.audit_seq,
            "key_change_seq": report.counters.key_change_seq,
        });
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!(
            "copied {rows} rows in {} tables from {from_shown} to {to_shown}; serve it with the same server secret",
            report.tables.len()
        );
    }
    Ok(())
}

/// The directory a `sqlite:` target's file goes in.
/// The file of a `sqlite://PATH[?options]` URL (not an in-memory one).
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Some(std::path::Path::new(path))
}

fn sqlite_parent(url: &str) -> Option<&std::path::Path> {
    sqlite_file(url)?
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
}

/// `line` with any password of `urls` masked: a driver's message might
/// repeat part of a URL.
fn hide_passwords(line: &str, urls: &[&str]) -> String {
    let mut out = line.to_owned();
    for url in urls {
        let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
            continue;
        };
        let Some((userinfo, _)) = rest.rsplit_once('@') else {
            continue;
        };
        if let Some((_, password)) = userinfo.split_once(':')
            && !password.is_empty()
        {
            out = out.replace(password, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_they_appear() {
        let line = "failed: password authentication for u:hunter2 failed";
        let hidden = hide_passwords(line, &["postgres://u:hunter2@h/db", "sqlite://x"]);
        assert!(!hidden.contains("hunter2"), "{hidden}");
    }

    #[test]
    fn sqlite_parent_is_the_file_directory() {
        assert_eq!(
            sqlite_parent("sqlite://a/b/latchkey.db"),
            Some(std::path::Path::new("a/b"))
        );
        assert_eq!(sqlite_parent("sqlite://latchkey.db"), None);
        assert_eq!(sqlite_parent("postgres://h/db"), None);
    }
}
