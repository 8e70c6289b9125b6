//! Opening what every data command needs: the store (by URL scheme), the
//! server secret and the services over them.

use super::*;
use crate::domain::clock::Clock;

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
