//! The relay's settings, from command-line flags or environment variables.
//!
//! Every flag has an environment variable so the relay can run under systemd or in a container
//! without a wrapper script.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Who may found a team on this relay (`--team-founding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TeamFounding {
    /// Any device may found a team: the relay stores anyone's data. For a relay on a private
    /// network or behind an authenticating proxy.
    Open,
    /// Only devices listed in `--founders-file` may found a team.
    Allowlist,
    /// No new teams; existing teams go on as before.
    Closed,
}

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
    /// Who may found a team: `open` (anyone), `allowlist` (the devices in `--founders-file`) or
    /// `closed` (nobody; existing teams keep working).
    #[arg(
        long,
        env = "STREETSYNC_RELAY_TEAM_FOUNDING",
        value_enum,
        default_value = "open"
    )]
    pub team_founding: TeamFounding,

    /// With `--team-founding allowlist`: a file of device ids (32 lowercase hex characters, one a
    /// line; `#` starts a comment) that may found a team. Read at start.
    #[arg(long, env = "STREETSYNC_RELAY_FOUNDERS_FILE")]
    pub founders_file: Option<PathBuf>,

    /// Bundles that may wait in one device's mailbox; posting more is refused with
    /// `quota_exceeded` until the device fetches them.
    #[arg(long, env = "STREETSYNC_RELAY_MAILBOX_BUNDLES", default_value_t = 256)]
    pub mailbox_bundles: u32,

    /// Bytes of bundles that may wait in one device's mailbox.
    #[arg(long, env = "STREETSYNC_RELAY_MAILBOX_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub mailbox_bytes: u64,

    /// Bundles one device may have waiting, over all recipients (a lead's key rotation posts one
    /// per teammate).
    #[arg(long, env = "STREETSYNC_RELAY_SENDER_BUNDLES", default_value_t = 1024)]
    pub sender_bundles: u32,

    /// Bytes of bundles one device may have waiting, over all recipients.
    #[arg(long, env = "STREETSYNC_RELAY_SENDER_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub sender_bytes: u64,

    /// Open connections at most; further clients wait in the listen backlog until one closes.
    #[arg(long, env = "STREETSYNC_RELAY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Milliseconds a client has to send a request's whole header (from its first byte, or from
    /// the end of the previous request on a kept-alive connection).
    #[arg(
        long,
        env = "STREETSYNC_RELAY_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_timeout_ms: u64,

    /// Milliseconds a request may take from its header to the end of its answer, body upload
    /// included (live WebSockets are exempt once upgraded).
    #[arg(
        long,
        env = "STREETSYNC_RELAY_REQUEST_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub request_timeout_ms: u64,

    /// Milliseconds the body of a request may go without a byte arriving.
    #[arg(
        long,
        env = "STREETSYNC_RELAY_BODY_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub body_timeout_ms: u64,

    /// Milliseconds a connection may go without a byte read or written before it is closed
    /// (idle kept-alive connections, stalled peers; live WebSockets keep their own pings).
    #[arg(
        long,
        env = "STREETSYNC_RELAY_IDLE_TIMEOUT_MS",
        default_value_t = 75_000
    )]
    pub idle_timeout_ms: u64,

    /// Nonces the replay cache holds at most; when it is full, further requests are refused
    /// (`rate_limited`) until the oldest fall out of the clock window, never forgotten early.
    #[arg(
        long,
        env = "STREETSYNC_RELAY_REPLAY_CAPACITY",
        default_value_t = 1_000_000
    )]
    pub replay_capacity: usize,

    /// Seconds to let in-flight requests finish after SIGTERM or SIGINT before exiting anyway.
    #[arg(
        long,
        env = "STREETSYNC_RELAY_SHUTDOWN_GRACE_SECS",
        default_value_t = 30
    )]
    pub shutdown_grace_secs: u64,
}
