//! The `streetsync-relay` binary: parses flags, sets up logging, runs the relay.

use std::process::ExitCode;

use clap::Parser as _;
use streetsync_relay::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!("invalid --log filter {:?} ({e}); using `info`", config.log);
        EnvFilter::new("info")
    });
    // Logs go to stderr; stdout carries only the `listening on` line.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match streetsync_relay::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "relay failed");
            eprintln!("streetsync-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
