//! `streetsync sync`: one exchange with the relay, and what it brought.

use crate::context::Context;
use crate::error::CliResult;
use crate::output;
use crate::sync_progress::sync_with_bar;

/// `streetsync sync`: sends and receives, with a progress bar on a terminal.
pub(super) fn run(ctx: &Context) -> CliResult<()> {
    let ws = ctx.open(false)?;
    ws.team()?;
    let (client, url) = ctx.sync_client(&ws)?;
    let report = sync_with_bar(&client, ctx.global.json)?;
    ctx.remember_relay(&url)?;
    if ctx.global.json {
        return output::json(&report);
    }
    println!(
        "Synced with {url}: sent {}, received {} ({} merged){}{}.",
        report.pushed,
        report.pulled,
        report.applied,
        if report.devices_enrolled > 0 {
            format!(", {} new device(s) confirmed", report.devices_enrolled)
        } else {
            String::new()
        },
        if report.erased > 0 {
            format!(", {} erased record(s) removed", report.erased)
        } else {
            String::new()
        }
    );
    for alert in &report.alerts {
        println!("Warning: {}", output::alert(alert));
    }
    if !report.quarantined.is_empty() {
        println!(
            "{} change(s) were refused and kept aside (e.g. from a device not yet confirmed); they are retried at every sync.",
            report.quarantined.len()
        );
    }
    Ok(())
}
