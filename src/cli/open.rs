//! Opening what every data command needs: the store (by URL scheme), the
//! server secret and the services over them.

use super::*;

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
