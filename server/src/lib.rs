//! The streetsync relay: a blind store-and-forward server for sealed, signed envelopes.
//!
//! It keeps, per team, an append-only log of envelopes it cannot open, the public keys of the
//! team's devices (to check signatures), and sealed key bundles between devices. `docs/protocol.md`
//! is the contract it serves; `docs/operations.md` says how to run it.
//!
//! - [`config`]: flags and environment variables.
//! - [`http`]: router, authentication, handlers, refusals.
//! - [`storage`]: the [`storage::Storage`] trait and its SQLite and PostgreSQL backends.
//! - [`notify`]: other instances' writes reaching this one's live sockets (PostgreSQL).
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, TeamFounding};
use crate::http::AppState;
use crate::http::connections::ConnectionLimits;
use crate::http::limits::{Founding, MailboxQuota, RateLimiter, ReplayCache};
use crate::http::live::LiveHub;
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::storage::postgres::{PgConnect, PgStorage};
use crate::storage::sqlite::SqliteStorage;

/// The current time as unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why the relay could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be opened or migrated.
    #[error("opening the database: {0}")]
    Storage(#[from] storage::StorageError),
    /// The listening socket failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The storage opener thread failed.
    #[error("startup: {0}")]
    Startup(String),
    /// A flag's value cannot be used.
    #[error("configuration: {0}")]
    Config(String),
}

/// Reads `--founders-file`: one device id a line, `#` comments, blank lines ignored.
fn founders(config: &Config) -> Result<Founding, RunError> {
    match config.team_founding {
        TeamFounding::Open => Ok(Founding::Open),
        TeamFounding::Closed => Ok(Founding::Closed),
        TeamFounding::Allowlist => {
            let path = config.founders_file.as_ref().ok_or_else(|| {
                RunError::Config("--team-founding allowlist needs --founders-file".into())
            })?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| RunError::Config(format!("reading {}: {e}", path.display())))?;
            let mut ids = std::collections::HashSet::new();
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let id = line.parse().map_err(|_| {
                    RunError::Config(format!(
                        "{} line {}: not a device id (32 lowercase hex characters)",
                        path.display(),
                        n + 1
                    ))
                })?;
                ids.insert(id);
            }
            Ok(Founding::Allowlist(ids))
        }
    }
}

/// The storage the settings ask for: PostgreSQL with `--database-url`, else the SQLite file.
/// Opening connects and migrates, so an unreachable database or a schema newer than this build
/// stops the relay here with an error.
async fn open_storage(
    config: &Config,
) -> Result<(Arc<dyn Storage>, Option<Arc<PgStorage>>), RunError> {
    match &config.database_url {
        Some(url) => {
            let connect = PgConnect::parse(url, config.database_ca.as_deref())?;
            let (pool, handle) = (config.database_pool, tokio::runtime::Handle::current());
            let pg = tokio::task::spawn_blocking(move || PgStorage::open(connect, pool, handle))
                .await
                .map_err(|e| RunError::Startup(e.to_string()))??;
            let pg = Arc::new(pg);
            Ok((Arc::clone(&pg) as Arc<dyn Storage>, Some(pg)))
        }
        None => {
            let data_dir = config.data_dir.clone();
            let sqlite = tokio::task::spawn_blocking(move || SqliteStorage::open(&data_dir))
                .await
                .map_err(|e| RunError::Startup(e.to_string()))??;
            Ok((Arc::new(sqlite), None))
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Opens the storage, binds, prints `listening on <addr>` to stdout, and serves until SIGTERM or
/// SIGINT; then lets in-flight requests finish, closes live sockets and returns.
pub async fn run(config: Config) -> Result<(), RunError> {
    let started_ms = now_ms();
    let founding = founders(&config)?;
    let (storage, postgres) = open_storage(&config).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (live_tasks, mut live_drained) = mpsc::channel::<()>(1);
    let state = AppState {
        storage,
        metrics: Arc::new(Metrics::new()),
        replay: Arc::new(ReplayCache::new(config.replay_capacity)),
        rate_limit: Arc::new(RateLimiter::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
        )),
        live: Arc::new(LiveHub::default()),
        mailbox: MailboxQuota {
            recipient_bundles: config.mailbox_bundles,
            recipient_bytes: config.mailbox_bytes,
            sender_bundles: config.sender_bundles,
            sender_bytes: config.sender_bytes,
        },
        founding: Arc::new(founding),
        started_ms,
        shutdown: shutdown_rx.clone(),
        live_tasks,
    };
    if let Some(pg) = postgres {
        tokio::spawn(notify::listen(
            pg,
            Arc::clone(&state.live),
            shutdown_rx.clone(),
        ));
    }
    if let Some(private) = config.metrics_listen {
        let listener = TcpListener::bind(private).await?;
        tracing::info!(addr = %listener.local_addr()?, "metrics and health listening");
        let app = http::private_router(state.clone());
        let mut stopping = shutdown_rx.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let app = http::router(
        state,
        Duration::from_millis(config.request_timeout_ms),
        Duration::from_millis(config.body_timeout_ms),
    );
    let limits = ConnectionLimits {
        max_connections: config.max_connections,
        header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
    };

    let listener = TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    match &config.database_url {
        Some(_) => tracing::info!(%addr, "relay started on PostgreSQL"),
        None => tracing::info!(%addr, data_dir = %config.data_dir.display(), "relay started"),
    }

    let mut stopping = shutdown_rx.clone();
    let server = http::connections::serve(listener, app, limits, async move {
        while !*stopping.borrow_and_update() {
            if stopping.changed().await.is_err() {
                break;
            }
        }
    });
    let mut server = tokio::spawn(server);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    tokio::select! {
        result = &mut server => {
            result.map_err(|e| RunError::Startup(e.to_string()))?;
            return Ok(());
        }
        () = shutdown_signal() => {}
    }
    // Tells the server to stop accepting and the live sockets to close.
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.map_err(|e| RunError::Startup(e.to_string()))?,
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish in time"
            );
            server.abort();
        }
    }
    // The router (and its state's sender) is gone; wait for live socket tasks to drop theirs.
    if tokio::time::timeout(Duration::from_secs(5), live_drained.recv())
        .await
        .is_err()
    {
        tracing::warn!("live sockets did not close in time");
    }
    tracing::info!("relay stopped");
    Ok(())
}
