//! `latchkey serve`.

use super::*;

pub(super) async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _log = crate::telemetry::init(true);
    let (core, created_secret) = open_core(&settings).await?;
    let limits = match &settings.redis_url {
        None => core.limits.clone(),
        Some(url) => {
            let redis = crate::limiter::RedisLimiter::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("--redis-url {}: {e}", redact_url(url)))?;
            if !redis.is_up() {
                tracing::warn!(
                    redis = %redact_url(url),
                    mode = ?settings.redis_unavailable,
                    "redis is not answering at start: {}; shared limits start when it answers",
                    match settings.redis_unavailable {
                        crate::limiter::WhenUnavailable::Local => "limits are per instance until then",
                        crate::limiter::WhenUnavailable::Deny => "keyed requests, logins and key forms get 503 until then",
                    }
                );
            }
            Arc::new(crate::limiter::Limits::with_redis(
                core.hasher.clone(),
                settings.failed_auth_limit,
                redis,
                settings.redis_unavailable,
            ))
        }
    };
    if settings.redis_url.is_none() && !settings.database_url.starts_with("sqlite:") {
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
    let core = Core::with_limits(
        core.store.clone(),
        core.clock.clone(),
        core.hasher.clone(),
        policy,
        limits,
    );
    if let Some(path) = &settings.policy.leak_report_keys {
        let n = core
            .leaks
            .load_keys()
            .map_err(|e| anyhow::anyhow!("--leak-report-keys: {e}"))?;
        tracing::info!(
            file = %path.display(),
            keys = n,
            action = ?settings.policy.leak_action,
            "leaked-key reports accepted at /secret-scanning/reports"
        );
    }
    let has_shops = core.shops.has_shops().await.map_err(service_err)?;
    if let Some(notice) = core.policy.legacy_cutoff_notice(core.clock.now()) {
        let shops = core.shops.list().await.map_err(service_err)?;
        let legacy: u64 = shops.iter().map(|s| s.legacy_keys).sum();
        if legacy > 0 {
            tracing::warn!(
                legacy_keys = legacy,
                shops = shops.iter().filter(|s| s.legacy_keys > 0).count(),
                "{} legacy key(s) stored: {}",
                legacy,
                notice.message()
            );
        }
    }
    tracing::info!(
        url = %public_url,
        listen = %addr,
        database = %redact_url(&settings.database_url),
        redis = %settings.redis_url.as_deref().map_or_else(|| "not configured".to_owned(), redact_url),
        "latchkey listening on {public_url}"
    );
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
pub(super) async fn shutdown_signal() {
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
