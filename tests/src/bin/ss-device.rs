//! `ss-device <store> <relay-url> <command>`: one device as its own process, so fault tests can
//! kill it, shift its clock (faketime), limit its file size or drop its privileges.
//!
//! Commands:
//! - `write <n> <prefix>`: logs `n` contacts with notes `<prefix> <i>`, printing each id once saved;
//! - `sync [page-size]`: one `sync_once`, printing `progress <phase> <done>` lines and a final
//!   `report <json>` line;
//! - `count`: prints the number of contacts.
//! - `join-live <invite-code> <n>`: (fresh store) joins with the invite and syncs until `n`
//!   contacts are listed, printing `loaded <ms> <count>` (ms from the start of the join); then runs
//!   live sync, printing `live-ready` once it is idle and `changed <unix-ms>` whenever a contact
//!   changed by a teammate is stored. Runs until killed (the side-by-side benchmark's device B).
//!
//! It runs with `tune_host_allocator` as the CLI does (a Linux host's setting; without it glibc's
//! heap grows with every Automerge load of a long bootstrap); `SS_DEVICE_GLIBC_DEFAULT=1` keeps
//! glibc's defaults.
//!
//! The store's key is 32 bytes of `SS_DEVICE_KEY_BYTE` (default: the crash-test key).
//! Errors go to stderr as `error <kind>: <message>` with exit code 3 (storage), 4 (relay or
//! network) or 1 (anything else); usage errors exit with 2.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use streetsync_core::*;

struct Printer;

impl SyncListener for Printer {
    fn on_status(&self, _: SyncStatus) {}
    fn on_progress(&self, p: SyncProgress) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "progress {:?} {}", p.phase, p.done);
        let _ = out.flush();
    }
}

fn main() -> ExitCode {
    if std::env::var_os("SS_DEVICE_GLIBC_DEFAULT").is_none() {
        streetsync_core::tune_host_allocator();
    }
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: ss-device <store> <relay-url> write <n> <prefix> | sync [page] | count");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (kind, code) = match &e {
                Error::Storage(_) | Error::Io(_) => ("storage", 3),
                Error::Offline(_) | Error::Relay { .. } => ("relay", 4),
                _ => ("other", 1),
            };
            eprintln!("error {kind}: {e}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: &[String]) -> Result<()> {
    // The harness's stores use a key of one repeated byte, given as SS_DEVICE_KEY_BYTE.
    let byte = std::env::var("SS_DEVICE_KEY_BYTE")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(streetsync_tests::CRASH_KEY[0]);
    let key = StorageKey::from_bytes(&[byte; 32])?;
    let ws = Arc::new(Workspace::open(&args[1], KeySource::Key(key))?);
    match args[3].as_str() {
        "write" => {
            let n: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
            let prefix = args.get(5).map(String::as_str).unwrap_or("contact");
            let area = ws.team()?.areas[0].id.clone();
            for i in 0..n {
                let mut d = ContactDraft::new(
                    chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
                    chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap_or_default(),
                    area.clone(),
                );
                d.note = format!("{prefix} {i}");
                let c = ws.create_contact(d)?;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", c.id);
                let _ = out.flush();
            }
        }
        "sync" => {
            let page = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(500);
            let options = SyncOptions {
                page_size: page,
                compact_after: 0,
                ..SyncOptions::default()
            };
            let client = SyncClient::with_options(ws.clone(), &args[2], options)?;
            let report = client.sync_once(Some(&Printer)).await?;
            println!(
                "report {}",
                serde_json::to_string(&report).map_err(|e| Error::Protocol(e.to_string()))?
            );
        }
        "count" => println!("{}", contact_count(&ws)?),
        "join-live" => {
            let code = args.get(4).map(String::as_str).unwrap_or_default();
            let n = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(0);
            join_live(ws, &args[2], code, n).await?;
        }
        other => {
            return Err(ValidationError::new("command", format!("unknown command {other}")).into());
        }
    }
    Ok(())
}

/// Unix time in milliseconds, with sub-millisecond precision.
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

struct RemoteContacts;

impl ChangeListener for RemoteContacts {
    fn on_changes(&self, changes: &[RecordChange]) {
        if changes
            .iter()
            .any(|c| c.origin == ChangeOrigin::Remote && c.kind == RecordKind::Contact)
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "changed {:.3}", unix_ms());
            let _ = out.flush();
        }
    }
}

struct LiveStatus(std::sync::atomic::AtomicBool);

impl SyncListener for LiveStatus {
    fn on_status(&self, status: SyncStatus) {
        let mut out = std::io::stdout().lock();
        match status {
            SyncStatus::Idle { .. } if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                let _ = writeln!(out, "live-ready");
            }
            SyncStatus::Offline { reason, .. } | SyncStatus::Refused { reason } => {
                let _ = writeln!(out, "live-offline {reason}");
            }
            _ => {}
        }
        let _ = out.flush();
    }
    fn on_progress(&self, _: SyncProgress) {}
}

/// How many contacts the store lists, read the way an app shows its first page (a copy of every
/// summary, `contact_summaries`, would add 70 MB to the peak RSS measured at 100,000 contacts).
fn contact_count(ws: &Workspace) -> Result<usize> {
    Ok(ws
        .list_contacts(&ContactFilter {
            limit: 1,
            ..Default::default()
        })?
        .total)
}

/// Device B of the side-by-side benchmark: join, load everything, then stay live.
async fn join_live(ws: Arc<Workspace>, url: &str, code: &str, n: usize) -> Result<()> {
    let client = Arc::new(SyncClient::new(ws.clone(), url)?);
    let started = std::time::Instant::now();
    client.join_with_invite(code).await?;
    let mut count = contact_count(&ws)?;
    // The join syncs everything there is; sync again only if the lead's pushes were still running.
    let mut rounds = 0;
    while count < n && rounds < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        client.sync_once(None).await?;
        count = contact_count(&ws)?;
        rounds += 1;
    }
    println!(
        "loaded {:.1} {count}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let _subscription = ws.subscribe(Arc::new(RemoteContacts));
    let _live = client.start_live(Arc::new(LiveStatus(Default::default())));
    std::future::pending::<()>().await;
    Ok(())
}
