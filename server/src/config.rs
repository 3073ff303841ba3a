//! The relay's settings, from command-line flags or environment variables.
//!
//! Every flag has an environment variable so the relay can run under systemd or in a container
//! without a wrapper script.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The blind streetsync relay: stores and forwards sealed, signed envelopes.
#[derive(Debug, Clone, Parser)]
#[command(name = "streetsync-relay", version, about)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "STREETSYNC_RELAY_BIND", default_value = "127.0.0.1:7878")]
    pub bind: SocketAddr,

    /// Directory of the SQLite database (`relay.sqlite3`); created if missing.
    #[arg(long, env = "STREETSYNC_RELAY_DATA", default_value = "./relay-data")]
    pub data_dir: PathBuf,

    /// Requests per second each device may make on average (token bucket refill rate).
    #[arg(long, env = "STREETSYNC_RELAY_RATE_PER_SEC", default_value_t = 50.0)]
    pub rate_limit_per_sec: f64,

    /// Requests a device may make in a burst (token bucket size).
    #[arg(long, env = "STREETSYNC_RELAY_RATE_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// Log filter in `tracing` env-filter syntax, e.g. `info` or `streetsync_relay=debug`.
    #[arg(long, env = "STREETSYNC_RELAY_LOG", default_value = "info")]
    pub log: String,

    /// PostgreSQL instead of the embedded SQLite file: `postgres://user:pass@host:5432/db`
    /// (`?sslmode=require` for TLS). Several relay instances may share one database.
    #[arg(long, env = "STREETSYNC_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// PEM file of CA certificates to trust for the database's TLS, beside the webpki roots.
    #[arg(long, env = "STREETSYNC_DATABASE_CA")]
    pub database_ca: Option<PathBuf>,

    /// Connections to PostgreSQL this instance keeps at most.
    #[arg(long, env = "STREETSYNC_DATABASE_POOL", default_value_t = 16)]
    pub database_pool: usize,

    /// A second, private address serving only `/metrics` and `/healthz` (e.g. 127.0.0.1:9100);
    /// the public listener keeps serving them too, so block them at the proxy.
    #[arg(long, env = "STREETSYNC_RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Seconds to let in-flight requests finish after SIGTERM or SIGINT before exiting anyway.
    #[arg(
        long,
        env = "STREETSYNC_RELAY_SHUTDOWN_GRACE_SECS",
        default_value_t = 30
    )]
    pub shutdown_grace_secs: u64,
}
