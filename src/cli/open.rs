//! Opening what every data command needs: the store (by URL scheme), the
//! server secret and the services over them.

use super::*;
use crate::domain::clock::Clock;
use std::path::Path;

/// The store `--database-url` names (SQLite or PostgreSQL, by its scheme),
/// migrated. A bad or unreachable database is one line naming the URL with
/// its password redacted.
async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    // The data directory holds the secret whatever the database is.
    owner_only_dir(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let sqlite_file = settings
        .sqlite_path()
        .and_then(|p| p.to_str())
        .map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)));
    if let Some(file) = &sqlite_file {
        if let Some(parent) = file.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            owner_only_dir(parent).with_context(|| {
                format!("cannot create the database directory {}", parent.display())
            })?;
        }
        owner_only_file(file)
            .with_context(|| format!("cannot create the database file {}", file.display()))?;
    }
    let store = crate::store::open(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&settings.database_url)
            )
        })?;
    if let Some(file) = &sqlite_file {
        // SQLite gives `-wal` and `-shm` the database file's mode when it
        // makes them; ones left by an older version are tightened here.
        for suffix in ["-wal", "-shm"] {
            let mut side = file.clone().into_os_string();
            side.push(suffix);
            tighten(Path::new(&side), 0o600);
        }
    }
    Ok(store)
}

/// The data directory and the SQLite files hold key hashes, emails and
/// customers' data: owner-only (0700/0600) whatever the umask
/// (docs/CONFIGURATION.md). A new directory is made so, and so is an existing one
/// that is empty or already latchkey's (it holds `secret.key`). Any other
/// existing directory is only warned about: it may be shared (`/var/lib`)
/// and must not be closed to others; the files in it are owner-only anyway.
pub(super) fn owner_only_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode();
            if mode & 0o077 == 0 {
                return Ok(());
            }
            let ours = dir.join("secret.key").exists() || std::fs::read_dir(dir)?.next().is_none();
            if ours {
                tighten(dir, 0o700);
            } else {
                eprintln!(
                    "warning: the directory {} is open to other users (mode {:o}); make it owner-only with `chmod 700 {}`",
                    dir.display(),
                    mode & 0o777,
                    dir.display()
                );
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // The mode above is narrowed by the umask; this makes it exactly 0700.
    tighten(dir, 0o700);
    Ok(())
}

/// Creates the SQLite database file owner-only before SQLite opens it (an
/// empty file is a new database), so it is never readable by others, even
/// for a moment; an existing one is tightened.
pub(super) fn owner_only_file(file: &Path) -> std::io::Result<()> {
    if !file.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(file)?;
    }
    tighten(file, 0o600);
    Ok(())
}

/// Sets `mode` on a path of ours when it differs; one owned by someone else
/// is left as it is, with a warning.
fn tighten(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.permissions().mode() & 0o777 == mode {
            return;
        }
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            eprintln!(
                "warning: {} is readable by other users and could not be made owner-only ({mode:o}): {e}",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// Where the server secret came from, as a user would name it.
enum SecretSource {
    Env,
    File(PathBuf),
    DataDir(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env => f.write_str("LATCHKEY_SECRET"),
            SecretSource::File(p) => write!(f, "--secret-file {}", p.display()),
            SecretSource::DataDir(p) => write!(f, "{} (the data directory's)", p.display()),
        }
    }
}

/// The server secret, from `LATCHKEY_SECRET`, `--secret-file`, or
/// `<data-dir>/secret.key` (created on first use), with where it came from
/// and whether this call created it.
fn load_secret(settings: &Settings) -> anyhow::Result<(ServerSecret, SecretSource, bool)> {
    if let Some(value) = std::env::var("LATCHKEY_SECRET")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return ServerSecret::new(value.into_bytes())
            .map(|s| (s, SecretSource::Env, false))
            .map_err(|e| anyhow::anyhow!("LATCHKEY_SECRET: {e}"));
    }
    if let Some(path) = &settings.secret_file {
        return ServerSecret::read_file(path)
            .map(|s| (s, SecretSource::File(path.clone()), false))
            .map_err(anyhow::Error::msg);
    }
    let path = settings.data_dir.join("secret.key");
    let (secret, created) = ServerSecret::load_or_create(&path).map_err(anyhow::Error::msg)?;
    Ok((secret, SecretSource::DataDir(path), created))
}

/// Records the secret's fingerprint in a database that has none (a new one,
/// or one from before fingerprints), and refuses a secret other than the
/// recorded one: every key would then fail as `invalid_key`.
async fn check_secret(
    store: &dyn Store,
    secret: &ServerSecret,
    source: &SecretSource,
    settings: &Settings,
) -> anyhow::Result<()> {
    let recorded = store
        .claim_secret_fingerprint(&secret.fingerprint(), SystemClock.now())
        .await
        .with_context(|| {
            format!(
                "cannot check the server secret against the database {}",
                redact_url(&settings.database_url)
            )
        })?;
    if !secret.matches_fingerprint(&recorded) {
        bail!(
            "the server secret from {source} is not the one the database {} was set up with (no key would verify); give every instance and CLI command sharing it the same secret (the same --secret-file or LATCHKEY_SECRET)",
            redact_url(&settings.database_url)
        );
    }
    Ok(())
}

/// Store, secret and policy: what every data command needs. Returns the
/// secret file's path when this call created it.
pub async fn open_core(settings: &Settings) -> anyhow::Result<(Core, Option<PathBuf>)> {
    let store = open_store(settings).await?;
    let (secret, source, created) = load_secret(settings)?;
    check_secret(store.as_ref(), &secret, &source, settings).await?;
    let core = Core::new(
        store,
        Arc::new(SystemClock),
        KeyHasher::new(&secret),
        settings.policy.clone(),
    );
    let created = match source {
        SecretSource::DataDir(path) if created => Some(path),
        _ => None,
    };
    Ok((core, created))
}
