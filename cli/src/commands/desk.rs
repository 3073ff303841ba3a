//! `streetsync desk`: opens the store and serves the team lead's desk on 127.0.0.1 (see
//! `crate::desk`).

use std::sync::Arc;
use std::time::Duration;

use crate::args::DeskArgs;
use crate::context::{Context, open_store, runtime};
use crate::desk::{Opener, ServeOptions, serve};
use crate::error::{CliError, CliResult};

/// Runs the desk until Ctrl-C.
pub(super) fn run(ctx: &Context, a: DeskArgs) -> CliResult<()> {
    if a.idle_lock_minutes == 0 || a.idle_lock_minutes > 1440 {
        return Err(CliError::invalid(
            "--idle-lock-minutes must be between 1 and 1440 (one day)",
        ));
    }
    let ws = ctx.open_or_prompt()?;
    ws.team()?;
    // A store without a relay still opens: the desk then works on this computer only.
    let relay = match ctx.relay() {
        Ok(url) => Some(url),
        Err(_) if ctx.global.relay.is_none() => None,
        Err(e) => return Err(e),
    };
    if let Some(url) = &relay {
        ctx.remember_relay(url)?;
    }
    let path = ctx.global.store.clone();
    let opener: Opener = Arc::new(move |p: &str| open_store(&path, p));
    runtime()?.block_on(serve(
        ws,
        opener,
        ServeOptions {
            port: a.port,
            relay,
            idle_lock: Duration::from_secs(u64::from(a.idle_lock_minutes) * 60),
            open_browser: !a.no_browser,
        },
    ))
}
