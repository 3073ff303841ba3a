//! One sync with a progress bar on a terminal: a [`SyncListener`] that moves an indicatif bar.
//!
//! It sits outside `commands` so that any part of the client that syncs (the `sync` command
//! today, the demo if it wants a bar) can show progress the same way without importing the
//! commands.

use streetsync_core::{SyncClient, SyncListener, SyncPhase, SyncProgress, SyncReport, SyncStatus};

use crate::context::runtime;
use crate::error::CliResult;
use crate::output;

/// Shows the phase and the count of a running sync on a progress bar.
struct BarListener(indicatif::ProgressBar);

impl SyncListener for BarListener {
    fn on_status(&self, _status: SyncStatus) {}

    fn on_progress(&self, p: SyncProgress) {
        let phase = match p.phase {
            SyncPhase::Pushing => "sending",
            SyncPhase::Pulling => "receiving",
            SyncPhase::Compacting => "tidying",
        };
        self.0.set_message(phase);
        self.0.set_length(p.total.max(p.done));
        self.0.set_position(p.done);
    }
}

/// One sync with a progress bar on a terminal.
pub fn sync_with_bar(client: &SyncClient, json: bool) -> CliResult<SyncReport> {
    let bar = output::progress(json, "sync");
    let listener = BarListener(bar.clone());
    let report = runtime()?.block_on(client.sync_once(Some(&listener)));
    bar.finish_and_clear();
    Ok(report?)
}
