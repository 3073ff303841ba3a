//! Faults, all on 127.0.0.1 and bounded in time: a misbehaving network between five devices and
//! the relay, the relay killed during compaction, a device process killed mid-pull and inside a
//! page's transaction, device clocks a year off, a full disk and an unwritable store.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use streetsync_core::*;

const DEVICE: &str = env!("CARGO_BIN_EXE_ss-device");

fn device_cmd(store: &std::path::Path, url: &str) -> Command {
    let mut c = Command::new(DEVICE);
    c.arg(store).arg(url).env("SS_DEVICE_KEY_BYTE", "9");
    c
}

fn contents(d: &Device) -> BTreeMap<RecordId, String> {
    d.ws.contact_summaries()
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.note))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_devices_through_a_misbehaving_network_converge_on_every_saved_contact() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let mut devices = team(dir.path(), &relay.url(), 4).await;
    let proxy = ChaosProxy::start(relay.addr).await;
    for d in devices.iter_mut() {
        d.reconnect(&proxy.url());
    }
    let replayed_before = relay_metric(&relay.url(), "errors_total{code=\"replayed\"}").await;
    let mut saved: BTreeMap<RecordId, String> = BTreeMap::new();
    // Every edit: the record and the text it appended (a device may edit one record twice).
    let mut edits: Vec<(RecordId, String)> = Vec::new();
    let mut errors = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    while round < 12 && std::time::Instant::now() < deadline {
        for (i, d) in devices.iter().enumerate() {
            for k in 0..2 {
                let note = format!("round {round} device {i} contact {k}");
                let c = d.contact(round * 2 + k, &note);
                saved.insert(c.id, note);
            }
            // Edit someone else's contact now and then, so merges happen under faults too.
            if round % 3 == 1
                && let Some((id, _)) = contents(d).into_iter().find(|(id, _)| {
                    !saved
                        .get(id)
                        .is_some_and(|n| n.contains(&format!("device {i} ")))
                })
            {
                let mut f = d.ws.get_contact(id).unwrap().fields;
                f.note.push_str(&format!(" +{i}"));
                d.ws.update_contact(id, f.clone()).unwrap();
                edits.push((id, format!("+{i}")));
            }
            if tokio::time::timeout(Duration::from_secs(10), d.sync.sync_once(None))
                .await
                .map(|r| r.is_err())
                .unwrap_or(true)
            {
                errors += 1;
            }
        }
        round += 1;
    }
    assert!(
        proxy.faults.load(std::sync::atomic::Ordering::Relaxed) > 10,
        "the proxy did misbehave"
    );
    assert!(errors > 0, "some syncs failed under faults");
    assert!(!edits.is_empty(), "contacts were edited under faults");
    proxy.calm();
    for _ in 0..3 {
        for d in &devices {
            d.sync.sync_once(None).await.unwrap();
        }
    }
    let reference = contents(&devices[0]);
    assert_eq!(
        reference.len(),
        saved.len(),
        "exactly every saved contact, once"
    );
    for id in saved.keys() {
        assert!(reference.contains_key(id));
    }
    // Each contact holds its note as written plus exactly the edits made to it (concurrent
    // appends merge in either order, so the appended tokens are compared as a multiset).
    for (id, note) in &saved {
        let got = &reference[id];
        let rest = got
            .strip_prefix(note.as_str())
            .unwrap_or_else(|| panic!("{id}: {got:?} does not start with {note:?}"));
        let mut tokens: Vec<&str> = rest.split_whitespace().collect();
        let mut expected: Vec<&str> = edits
            .iter()
            .filter(|(e, _)| e == id)
            .map(|(_, t)| t.as_str())
            .collect();
        tokens.sort();
        expected.sort();
        assert_eq!(tokens, expected, "{id}: edits in {got:?}");
    }
    for d in &devices {
        assert_eq!(contents(d), reference, "{} differs", d.name);
        assert_eq!(
            d.ws.pending_changes().unwrap(),
            0,
            "{}'s outbox is drained",
            d.name
        );
    }
    // The duplicate fault delivered whole requests a second time: the relay saw them arrive and
    // refused each copy as a replay.
    let replayed =
        relay_metric(&relay.url(), "errors_total{code=\"replayed\"}").await - replayed_before;
    let duplicated = proxy.duplicated.load(std::sync::atomic::Ordering::Relaxed);
    println!("duplicated requests sent {duplicated}, replays refused by the relay {replayed}");
    assert!(
        duplicated > 0 && replayed > 0,
        "requests were delivered twice ({duplicated} sent, {replayed} refused as replays)"
    );
    assert!(
        replayed <= duplicated,
        "{replayed} replays, {duplicated} copies"
    );
    eprintln!(
        "chaos: {} rounds, {} contacts, {} edits, {errors} failed syncs, {} faulty connections",
        round,
        saved.len(),
        edits.len(),
        proxy.faults.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// SIGKILLs a process at the first progress event of a given phase.
struct KillAt {
    phase: SyncPhase,
    pid: Mutex<Option<u32>>,
}

impl SyncListener for KillAt {
    fn on_status(&self, _: SyncStatus) {}
    fn on_progress(&self, p: SyncProgress) {
        if p.phase == self.phase
            && let Some(pid) = self.pid.lock().unwrap().take()
        {
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_killed_during_compaction_stays_consistent_and_devices_converge() {
    let relay_dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let opts = SyncOptions {
        compact_after: 3,
        ..SyncOptions::default()
    };
    let d = team_with(dir.path(), &relay.url(), 1, opts.clone()).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let c = d[0].contact(n, "v0");
        for v in 1..=4 {
            let mut f = d[0].ws.get_contact(c.id).unwrap().fields;
            f.note = format!("v{v}");
            d[0].ws.update_contact(c.id, f).unwrap();
        }
        ids.push(c.id);
    }
    let killer = KillAt {
        phase: SyncPhase::Compacting,
        pid: Mutex::new(Some(relay.pid())),
    };
    let client = SyncClient::with_options(d[0].ws.clone(), &relay.url(), opts.clone()).unwrap();
    let e = client.sync_once(Some(&killer)).await.unwrap_err();
    assert!(matches!(e, Error::Offline(_)), "{e}");
    assert!(
        killer.pid.lock().unwrap().is_none(),
        "killed during compaction"
    );
    relay.restart();
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let mut d = d;
    d[0].reconnect(&relay.url());
    d[1].reconnect(&relay.url());
    d[0].sync.sync_once(None).await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    let late = join(dir.path(), &relay.url(), &d[0], "late", opts).await;
    d[0].sync.sync_once(None).await.unwrap();
    late.sync.sync_once(None).await.unwrap();
    // Every record, on every device: the 30 contacts at their last version with the same fields
    // everywhere, nothing else, and nothing left to send.
    let all = |dev: &Device| {
        let mut v: Vec<Contact> = dev
            .all()
            .into_iter()
            .map(|s| dev.ws.get_contact(s.id).unwrap())
            .collect();
        v.sort_by_key(|c| c.id);
        v
    };
    let reference = all(&d[0]);
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        reference.iter().map(|c| c.id).collect::<Vec<_>>(),
        want,
        "the lead holds exactly its 30 contacts"
    );
    assert!(reference.iter().all(|c| c.fields.note == "v4"));
    for dev in [&d[0], &d[1], &late] {
        let here = all(dev);
        assert_eq!(here.len(), ids.len(), "{}", dev.name);
        for (a, b) in here.iter().zip(&reference) {
            assert_eq!(a.id, b.id, "{}", dev.name);
            assert_eq!(a.fields, b.fields, "{}: {}", dev.name, a.id);
            assert_eq!(a.fields.note, "v4", "{}: {}", dev.name, a.id);
        }
        assert_eq!(dev.ws.pending_changes().unwrap(), 0, "{}", dev.name);
    }
}

fn cursor_of(store: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(store).unwrap();
    conn.query_row(
        "SELECT coalesce((SELECT value FROM sync_state WHERE key = 'cursor'), 0)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Cursor and data agree: the store holds exactly the lead's contacts whose envelopes lie at or
/// below its cursor, and passes SQLite's integrity check. Returns the cursor.
fn assert_cursor_and_data_agree(
    store: &std::path::Path,
    relay: &Relay,
    lead_ids: &std::collections::BTreeSet<RecordId>,
    when: &str,
) -> i64 {
    let cursor = cursor_of(store);
    let relay_conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let below: std::collections::BTreeSet<RecordId> = relay_conn
        .prepare("SELECT doc FROM log WHERE seq <= ?1 AND kind = 1")
        .unwrap()
        .query_map([cursor], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| RecordId::from_bytes(b.unwrap().try_into().unwrap()))
        .filter(|id| lead_ids.contains(id))
        .collect();
    let ws = Workspace::open(store, key(9)).unwrap();
    let have: std::collections::BTreeSet<RecordId> = ws
        .contact_summaries()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(have, below, "{when}, cursor {cursor}");
    let check: String = rusqlite::Connection::open(store)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{when}");
    cursor
}

/// The relay's sequence numbers after `cursor`, in order: what a pull from there receives.
fn seqs_after(relay: &Relay, cursor: i64) -> Vec<i64> {
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    conn.prepare("SELECT seq FROM log WHERE seq > ?1 ORDER BY seq")
        .unwrap()
        .query_map([cursor], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_mid_pull_and_mid_apply_keeps_cursor_and_data_in_agreement() {
    const PAGE: usize = 25;
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 1).await;
    let mut lead_ids = std::collections::BTreeSet::new();
    for n in 0..1500 {
        lead_ids.insert(d[0].contact(n % 300, &format!("vom Lead {n}")).id);
    }
    d[0].sync.sync_once(None).await.unwrap();
    let store = d[1].ws.path().to_owned();
    drop(d);

    // Mid-pull: killed right after the k-th page was stored, while the next page (fetched ahead)
    // is being applied or fetched.
    let mut kills = 0;
    for stop_after in [2usize, 7, 13] {
        let mut child = device_cmd(&store, &relay.url())
            .args(["sync", &PAGE.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("progress Pulling") {
                seen += 1;
                if seen == stop_after {
                    child.kill().unwrap();
                    kills += 1;
                    break;
                }
            }
        }
        child.wait().unwrap();
        let cursor = assert_cursor_and_data_agree(
            &store,
            &relay,
            &lead_ids,
            &format!("after a kill at page {stop_after}"),
        );
        assert!(cursor > 0);
    }
    assert_eq!(kills, 3);

    // Mid-apply: the device process stops inside a page's open transaction, just before the n-th
    // envelope it pulls (a debug-build stall point, `STREETSYNC_TEST_STALL_IN_APPLY`), and is
    // killed there with SIGKILL. The page it was in is not stored at all: the cursor is the last
    // envelope of the page before.
    for stall_at in [1usize, 14, 40, 76] {
        let before = cursor_of(&store);
        let pending = seqs_after(&relay, before);
        assert!(pending.len() >= stall_at, "enough left to pull");
        let mut child = device_cmd(&store, &relay.url())
            .args(["sync", &PAGE.to_string()])
            .env("STREETSYNC_TEST_STALL_IN_APPLY", stall_at.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let stalled = stderr
            .lines()
            .map_while(Result::ok)
            .any(|l| l == "stalled in apply");
        assert!(stalled, "the device reached the stall point {stall_at}");
        assert!(child.try_wait().unwrap().is_none(), "still inside the page");
        child.kill().unwrap();
        child.wait().unwrap();
        let pages_done = (stall_at - 1) / PAGE;
        let expected = if pages_done == 0 {
            before
        } else {
            pending[pages_done * PAGE - 1]
        };
        let cursor = assert_cursor_and_data_agree(
            &store,
            &relay,
            &lead_ids,
            &format!("after a kill inside the transaction, at envelope {stall_at}"),
        );
        assert_eq!(cursor, expected, "killed at envelope {stall_at}");
    }

    // Reopened, the next sync completes and everything is there.
    let out = device_cmd(&store, &relay.url())
        .arg("sync")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ws = Workspace::open(&store, key(9)).unwrap();
    assert_eq!(ws.contact_summaries().unwrap().len(), 1500);
}

fn faketime() -> &'static str {
    let ok = Command::new("faketime").arg("--version").output().is_ok();
    assert!(
        ok,
        "faketime is missing: apt-get install faketime (tests/run-all.sh does)"
    );
    "faketime"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_clocks_a_year_off_change_nothing() {
    let ft = faketime();
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 2).await;
    let ahead = d[1].ws.path().to_owned();
    let behind = d[2].ws.path().to_owned();
    let lead = d.into_iter().next().unwrap();
    for (store, shift, tag) in [(&ahead, "+365d", "ahead"), (&behind, "-365d", "behind")] {
        let run = |args: &[&str]| {
            let out = Command::new(ft)
                .arg("-f")
                .arg(shift)
                .arg(DEVICE)
                .arg(store)
                .arg(relay.url())
                .args(args)
                .env("SS_DEVICE_KEY_BYTE", "9")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{tag}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let written = run(&["write", "3", tag]);
        assert_eq!(written.lines().count(), 3);
        let report = run(&["sync"]);
        assert!(report.contains("\"pushed\":3"), "{report}");
    }
    // The lead's own contact, written at the real time, is the reference for the clocks.
    let own = lead.contact(40, "lead, real time");
    lead.sync.sync_once(None).await.unwrap();
    let notes: Vec<String> = lead
        .ws
        .contact_summaries()
        .unwrap()
        .into_iter()
        .map(|s| s.note)
        .collect();
    assert_eq!(notes.len(), 7);
    assert_eq!(notes.iter().filter(|n| n.starts_with("ahead")).count(), 3);
    assert_eq!(notes.iter().filter(|n| n.starts_with("behind")).count(), 3);
    // The skew took effect: each skewed device stamped its contacts with its own clock, a year
    // off the lead's (read on the lead, so it is what the team sees).
    let day_ms = 24 * 3600 * 1000_i64;
    let reference = lead.ws.get_contact(own.id).unwrap().created_at;
    for s in lead.ws.contact_summaries().unwrap() {
        let c = lead.ws.get_contact(s.id).unwrap();
        let off_days = (c.created_at - reference) as f64 / day_ms as f64;
        println!(
            "{:>16}: created {off_days:+.2} days from the lead's",
            c.fields.note
        );
        let expected = if c.fields.note.starts_with("ahead") {
            365.0
        } else if c.fields.note.starts_with("behind") {
            -365.0
        } else {
            0.0
        };
        assert!(
            (off_days - expected).abs() < 1.0,
            "{}: created_at is {off_days:+.2} days from the lead's, expected {expected:+}",
            c.fields.note
        );
    }
    // The skewed devices receive each other's contacts too, each at its own skew.
    for (store, shift) in [(&ahead, "+365d"), (&behind, "-365d")] {
        let out = Command::new(ft)
            .args(["-f", shift])
            .arg(DEVICE)
            .arg(store)
            .arg(relay.url())
            .arg("sync")
            .env("SS_DEVICE_KEY_BYTE", "9")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shift}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ws = Workspace::open(store, key(9)).unwrap();
        let mut here: Vec<(RecordId, String)> = ws
            .contact_summaries()
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.note))
            .collect();
        here.sort();
        let mut at_lead: Vec<(RecordId, String)> = lead
            .ws
            .contact_summaries()
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.note))
            .collect();
        at_lead.sort();
        assert_eq!(here, at_lead, "{shift}: the same contacts as the lead");
    }
    // The relay's tolerance is explicit: a request stamped a year ahead is refused with the
    // relay's time, which is how the client corrects its offset.
    let path = format!(
        "/v1/teams/{}/pull?after=0&limit=1",
        lead.ws.team().unwrap().id
    );
    let header = streetsync_wire::auth::authorization_header(
        lead.ws.identity().signing_key(),
        lead.ws.device_id(),
        "GET",
        &path,
        b"",
        chrono::Utc::now().timestamp_millis() + 365 * 24 * 3600 * 1000,
        [3; 16],
    );
    let resp = http()
        .get(format!("{}{path}", relay.url()))
        .header("authorization", header)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: streetsync_wire::ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.error, streetsync_wire::ErrorCode::ClockSkew);
    assert!(body.server_time.is_some());
    assert!(body.message.contains("clock"), "{}", body.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_typed_error_and_corrupts_nothing() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 0).await;
    let store = d[0].ws.path().to_owned();
    drop(d);
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    // ulimit -f counts 512-byte blocks in dash; SIGXFSZ is ignored so the write fails with EFBIG.
    let blocks = (size + 256 * 1024) / 512;
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(DEVICE)
        .arg(&store)
        .arg(relay.url())
        .args(["write", "100000", "voll"])
        .env("SS_DEVICE_KEY_BYTE", "9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit with a storage error: {stderr}"
    );
    assert!(stderr.contains("error storage"), "{stderr}");
    let saved: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        !saved.is_empty() && saved.len() < 100000,
        "it wrote until the disk was full ({})",
        saved.len()
    );
    // No corruption: every returned save is there, the file is sound, and writing works again.
    let ws = Workspace::open(&store, key(9)).unwrap();
    let have: std::collections::BTreeSet<String> = ws
        .contact_summaries()
        .unwrap()
        .into_iter()
        .map(|s| s.id.to_string())
        .collect();
    for id in &saved {
        assert!(have.contains(id), "saved {id} is missing");
    }
    let check: String = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let c = ws
        .create_contact(ContactDraft::new(
            chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            "stadtpark",
        ))
        .unwrap();
    assert!(ws.get_contact(c.id).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_store_is_a_typed_error_and_stays_as_it_was() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 0).await;
    d[0].contact(1, "vorher");
    let store = d[0].ws.path().to_owned();
    drop(d);
    // Readable, not writable, by an unprivileged user (root ignores file modes).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::set_permissions(e.unwrap().path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", DEVICE])
        .arg(&store)
        .arg(relay.url())
        .args(["write", "1", "nachher"])
        .env("SS_DEVICE_KEY_BYTE", "9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a storage error: {stderr}");
    assert!(
        stderr.contains("error storage")
            && (stderr.contains("readonly") || stderr.contains("unable to open")),
        "{stderr}"
    );
    let ws = Workspace::open(&store, key(9)).unwrap();
    let notes: Vec<String> = ws
        .contact_summaries()
        .unwrap()
        .into_iter()
        .map(|s| s.note)
        .collect();
    assert_eq!(notes, vec!["vorher".to_string()]);
}
