//! # streetsync (terminal client)
//!
//! The terminal client for team leads at an office desk, and for anyone who wants to try the
//! product in one command (`streetsync demo`). It is a thin layer over `streetsync-core`:
//!
//! - [`args`]: the command line (clap), with help texts a social worker can follow;
//! - [`error`]: one error type with distinct exit codes;
//! - `context`: opening the store with the passphrase, the remembered relay address;
//! - `commands`: the dispatcher and one file per command group, printing a table or JSON;
//! - `output`: tables, JSON, progress bars, and the printers the commands and the demo share;
//! - `sync_progress`: one sync with a progress bar;
//! - `chart`: the SVG chart of contacts per month by area (plotters);
//! - `demo`: the whole product in one run against an in-process relay;
//! - [`desk`]: the team lead's desk, a local web app on 127.0.0.1 (`streetsync desk`).
//!
//! Imports point one way: `commands` sits on top (it calls the demo, the printers, the sync bar,
//! the chart and the context), and no other module imports it.

pub mod args;
mod chart;
mod commands;
mod context;
mod demo;
pub mod desk;
pub mod error;
mod output;
mod sync_progress;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

/// Parses the command line, runs the command, prints errors as one line and returns the exit
/// code. Never shows a panic trace: a bug is reported as a one-line internal error.
pub fn main_entry() -> ExitCode {
    // A desk session saves and syncs for hours in one process: keep its resident set near its
    // live heap on glibc (a no-op elsewhere).
    streetsync_core::tune_host_allocator();
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let _ = writeln!(
            std::io::stderr(),
            "streetsync: internal error ({what}); nothing more was changed. Please report this."
        );
    }));
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    ExitCode::from(error::EXIT_INVALID)
                }
                _ => {
                    // One line: the first paragraph of clap's message, without its usage block.
                    let text = e.render().to_string();
                    let first: Vec<&str> = text
                        .lines()
                        .take_while(|l| !l.trim().is_empty())
                        .map(str::trim)
                        .collect();
                    let line = first.join(" ");
                    let line = line.strip_prefix("error: ").unwrap_or(&line);
                    let _ = writeln!(
                        std::io::stderr(),
                        "streetsync: {line} (see `streetsync --help`)"
                    );
                    ExitCode::from(error::EXIT_INVALID)
                }
            };
        }
    };
    match std::panic::catch_unwind(move || commands::run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let _ = writeln!(std::io::stderr(), "streetsync: {}", e.message);
            ExitCode::from(e.code)
        }
        Err(_) => ExitCode::from(error::EXIT_OTHER),
    }
}
