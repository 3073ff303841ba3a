//! Crash safety on a real SQLite file: a separate process saves contacts in a loop and is killed
//! with SIGKILL at a random moment, 20 times on the same store. Every contact whose save had
//! returned (its id and fields were printed) must survive with exactly those fields: readable,
//! listed, and the file must pass `PRAGMA integrity_check`.
//!
//! SIGKILL alone leaves the kernel's page cache intact, so it cannot tell a store that syncs its
//! commits from one that does not (`synchronous=OFF` passes it). The power-cut tests add what a
//! power cut takes away: the device's save loop and the relay run under `powercut.so`
//! (tests/powercut/powercut.c, an LD_PRELOAD shim under SQLite's unix VFS that keeps an undo log
//! of every write since the file's last fsync/fdatasync), and after the SIGKILL [`power_cut`]
//! rolls back every write that was not synced, as a disk that lost power would.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use streetsync_core::{ContactDraft, ContactFilter, KeySource, RecordId, StorageKey, Workspace};

#[path = "../../core/tests/common/mod.rs"]
mod common;
#[path = "common/mod.rs"]
mod e2e;

const ROUNDS: usize = 20;
/// The child must print its first id within this time (it only opens the store first).
const FIRST_SAVE_TIMEOUT: Duration = Duration::from_secs(30);

fn open(path: &Path) -> Workspace {
    let key = StorageKey::from_bytes(&streetsync_tests::CRASH_KEY).unwrap();
    Workspace::open(path, KeySource::Key(key)).unwrap()
}

/// Every listed contact id, read page by page through `list_contacts`.
fn listed_ids(ws: &Workspace) -> HashSet<RecordId> {
    let mut ids = HashSet::new();
    let mut offset = 0;
    loop {
        let page = ws
            .list_contacts(&ContactFilter {
                offset,
                limit: 1_000,
                ..Default::default()
            })
            .unwrap();
        if page.items.is_empty() {
            assert_eq!(ids.len(), page.total, "pages must add up to the total");
            return ids;
        }
        offset += page.items.len();
        ids.extend(page.items.into_iter().map(|s| s.id));
    }
}

fn integrity_check(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// One round: start the save loop, kill it 5-150 ms after its first durable save, and return the
/// contacts it reported as saved. With `power_cut_dir`, the loop runs under `powercut.so` for the
/// files in that folder (the caller rolls back the unsynced writes afterwards).
fn kill_round(
    path: &Path,
    rng: &mut common::Rng,
    round: usize,
    power_cut_dir: Option<&Path>,
) -> Vec<(RecordId, ContactDraft)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ss-save-loop"));
    if let Some(dir) = power_cut_dir {
        cmd.env("LD_PRELOAD", env!("POWERCUT_SO"))
            .env("POWERCUT_DIR", dir);
    }
    let mut child = cmd
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(RecordId, ContactDraft)>();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // A line cut short by the kill was not confirmed; a whole line is `<id> <draft>`.
            let Some(whole) = line.strip_suffix('\n') else {
                return;
            };
            let (id, draft) = whole
                .split_once(' ')
                .unwrap_or_else(|| panic!("round {round}: bad line {whole:?}"));
            let id: RecordId = id
                .parse()
                .unwrap_or_else(|e| panic!("round {round}: bad id {id:?}: {e}"));
            let draft: ContactDraft = serde_json::from_str(draft)
                .unwrap_or_else(|e| panic!("round {round}: bad draft {draft:?}: {e}"));
            if tx.send((id, draft)).is_err() {
                return;
            }
        }
    });

    let mut ids = Vec::new();
    match rx.recv_timeout(FIRST_SAVE_TIMEOUT) {
        Ok(id) => ids.push(id),
        Err(e) => {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!("round {round}: no save confirmed ({e:?}); save loop exited with {status}");
        }
    }
    let delay = Duration::from_millis(5 + rng.below(146));
    std::thread::sleep(delay);
    // `Child::kill` sends SIGKILL on Unix: no destructor, no SQLite close, no flush runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: the save loop must have been running until SIGKILL, but exited with {status}"
    );
    reader.join().unwrap();
    ids.extend(rx.try_iter());
    ids
}

#[test]
fn sigkill_never_loses_a_returned_save_nor_corrupts_the_store() {
    kill_rounds(ROUNDS, false);
}

/// As above, with a simulated power cut after each SIGKILL: every write the store had not synced
/// is rolled back. A store that acknowledges a save before its commit is synced
/// (`synchronous=OFF` or `NORMAL` in WAL mode) loses confirmed contacts here.
#[test]
fn a_power_cut_never_loses_a_returned_save_nor_corrupts_the_store() {
    kill_rounds(8, true);
}

/// Checks that `confirmed` are all in the store at `path` with exactly the fields they were saved
/// with, listed, undamaged, and that the file passes `integrity_check`; returns how many are listed.
fn check_store(path: &Path, confirmed: &[(RecordId, ContactDraft)], round: usize) -> usize {
    let ws = open(path);
    for (id, draft) in confirmed {
        let contact = ws
            .get_contact(*id)
            .unwrap_or_else(|e| panic!("round {round}: confirmed contact {id} is lost: {e}"));
        assert_eq!(contact.id, *id);
        assert_eq!(
            &contact.fields, draft,
            "round {round}: {id} does not hold the fields it was saved with"
        );
    }
    let listed = listed_ids(&ws);
    let missing = confirmed
        .iter()
        .filter(|(id, _)| !listed.contains(id))
        .count();
    assert_eq!(
        missing, 0,
        "round {round}: {missing} confirmed contacts are not listed"
    );
    // Each round can have committed at most one save whose id was not printed yet.
    assert!(
        listed.len() <= confirmed.len() + round,
        "round {round}: {} contacts listed, only {} confirmed",
        listed.len(),
        confirmed.len()
    );
    assert!(
        ws.damaged_records().unwrap().is_empty(),
        "round {round}: damaged records"
    );
    drop(ws);
    assert_eq!(
        integrity_check(path),
        ["ok"],
        "round {round}: integrity_check"
    );
    listed.len()
}

fn kill_rounds(rounds: usize, power_cut: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("field.db");
    {
        let ws = open(&path);
        ws.create_team(common::setup()).unwrap();
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = common::Rng(seed);

    let mut confirmed: Vec<(RecordId, ContactDraft)> = Vec::new();
    let mut rolled_back = 0;
    for round in 1..=rounds {
        let printed = kill_round(&path, &mut rng, round, power_cut.then(|| dir.path()));
        let new = printed.len();
        confirmed.extend(printed);
        if power_cut {
            let cut = power_cut_files(dir.path());
            // The shim was loaded and tracked the store: without an undo log this round would
            // prove nothing. Whether the kill caught a write before its fsync is chance (with
            // `synchronous=FULL` the window is small), so the count itself is only reported;
            // `the_power_cut_rolls_back_exactly_the_unsynced_writes` proves the rollback.
            assert!(
                cut.logs > 0,
                "round {round}: powercut.so kept no undo log, so it did not watch the store"
            );
            rolled_back += cut.writes;
        }
        let listed = check_store(&path, &confirmed, round);
        println!(
            "round {round:2}: {new:4} saves confirmed, {:5} total confirmed, {listed:5} listed",
            confirmed.len(),
        );
    }
    if power_cut {
        println!("power cut: {rolled_back} unsynced writes rolled back in {rounds} rounds");
    }
    let unique: HashSet<_> = confirmed.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), confirmed.len(), "ids must be unique");
    println!(
        "crash test: {rounds} SIGKILL rounds, {} contacts confirmed and all present",
        confirmed.len()
    );
}

/// The simulated power cut: for every `<file>.undo` log `powercut.so` left in `dir` (the process
/// that wrote them is dead), rolls the file back to what its last fsync/fdatasync made durable,
/// newest write first, and removes the log.
fn power_cut_files(dir: &Path) -> PowerCut {
    use std::io::{Seek, SeekFrom, Write};
    let mut cut = PowerCut::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let undo = entry.unwrap().path();
        let Some(target) = undo
            .to_str()
            .and_then(|p| p.strip_suffix(".undo"))
            .map(std::path::PathBuf::from)
        else {
            continue;
        };
        let log = std::fs::read(&undo).unwrap();
        let mut records = Vec::new();
        let mut at = 0;
        let u64_at = |i: usize| u64::from_le_bytes(log[i..i + 8].try_into().unwrap());
        while at < log.len() {
            assert!(
                at + 24 <= log.len(),
                "{} ends inside a record",
                undo.display()
            );
            let (offset, size_before, len) = (u64_at(at), u64_at(at + 8), u64_at(at + 16) as usize);
            at += 24;
            records.push((offset, size_before, &log[at..at + len]));
            at += len;
        }
        if !records.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .unwrap();
            for (offset, size_before, old) in records.iter().rev() {
                f.seek(SeekFrom::Start(*offset)).unwrap();
                f.write_all(old).unwrap();
                f.set_len(*size_before).unwrap();
            }
            f.sync_all().unwrap();
        }
        cut.logs += 1;
        cut.writes += records.len();
        std::fs::remove_file(&undo).unwrap();
    }
    cut
}

/// What [`power_cut_files`] found.
#[derive(Debug, Default, PartialEq)]
struct PowerCut {
    /// Undo logs, one per tracked file the shim saw written (an empty one: all synced).
    logs: usize,
    /// Writes that were not synced and are rolled back.
    writes: usize,
}

/// The harness itself, on a plain file and without SQLite: `ss-write-at` writes through the
/// shim, first with an fsync and then without. The power cut must take away exactly the unsynced
/// writes and keep the synced ones, or the SQLite tests above would prove nothing either way.
#[test]
fn the_power_cut_rolls_back_exactly_the_unsynced_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.bin");
    let write_at = |offset: u64, len: usize, byte: u8, sync: bool| {
        let status = Command::new(env!("CARGO_BIN_EXE_ss-write-at"))
            .env("LD_PRELOAD", env!("POWERCUT_SO"))
            .env("POWERCUT_DIR", dir.path())
            .arg(&file)
            .args([offset.to_string(), len.to_string(), byte.to_string()])
            .args(sync.then_some("sync"))
            .status()
            .unwrap();
        assert!(status.success(), "ss-write-at failed: {status}");
    };

    // Synced: 8 KiB of 1s that must survive.
    write_at(0, 8192, 1, true);
    let synced = vec![1u8; 8192];
    assert_eq!(std::fs::read(&file).unwrap(), synced);
    // Not synced: overwrite the second 4 KiB and grow the file by 4 KiB.
    write_at(4096, 8192, 2, false);
    assert_eq!(std::fs::read(&file).unwrap().len(), 12288);

    let cut = power_cut_files(dir.path());
    assert_eq!(
        cut,
        PowerCut { logs: 1, writes: 1 },
        "one tracked file with one unsynced write"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        synced,
        "after the power cut the file holds exactly what was synced"
    );
    assert!(
        !dir.path().join("plain.bin.undo").exists(),
        "the undo log is consumed"
    );
}

/// The relay under a power cut: a device pushes contacts, each `sync_once` returning means the
/// relay acknowledged them; then the relay is killed, every write it had not synced is rolled
/// back, and it starts again. Every acknowledged envelope is still in its log, the database is
/// intact, and a device that joins afterwards receives every contact with its fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_of_the_relay_loses_no_acknowledged_envelope() {
    let relay_dir = tempfile::tempdir().unwrap();
    let preload = [
        ("LD_PRELOAD", env!("POWERCUT_SO").to_owned()),
        ("POWERCUT_DIR", relay_dir.path().display().to_string()),
    ];
    let mut relay = e2e::Relay::start_with_env(relay_dir.path(), "127.0.0.1:0", &preload);
    let dir = tempfile::tempdir().unwrap();
    let mut d = e2e::team(dir.path(), &relay.url(), 0).await;
    let mut lead = d.remove(0);
    let mut saved = Vec::new();
    let mut rolled_back = 0;
    for round in 0..3 {
        for i in 0..8 {
            let c = lead.contact(
                round * 10 + i,
                &format!("power cut round {round} contact {i}"),
            );
            saved.push((c.id, c.fields));
        }
        lead.sync.sync_once(None).await.unwrap();
        assert_eq!(
            lead.ws.pending_changes().unwrap(),
            0,
            "round {round}: the relay acknowledged everything"
        );
        let acked = envelope_ids(&relay.db_path());
        relay.kill();
        let cut = power_cut_files(relay_dir.path());
        assert!(
            cut.logs > 0,
            "round {round}: powercut.so kept no undo log, so it did not watch the relay"
        );
        rolled_back += cut.writes;
        let bind = relay.addr.to_string();
        relay = e2e::Relay::start_with_env(relay_dir.path(), &bind, &preload);
        lead.reconnect(&relay.url());
        let after = envelope_ids(&relay.db_path());
        let lost: Vec<_> = acked.difference(&after).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged envelopes lost in the power cut",
            lost.len(),
            acked.len()
        );
        assert_eq!(integrity_check(&relay.db_path()), ["ok"], "round {round}");
    }
    relay.kill();
    rolled_back += power_cut_files(relay_dir.path()).writes;
    println!("relay power cut: {rolled_back} unsynced writes rolled back");
    let mut relay = e2e::Relay::start(relay_dir.path());
    drop(lead);
    // A device that joins now gets every contact from the relay, with its fields.
    let lead = e2e::Device::open(dir.path(), "lead", &relay.url());
    let late = e2e::join(
        dir.path(),
        &relay.url(),
        &lead,
        "late",
        streetsync_core::SyncOptions::default(),
    )
    .await;
    lead.sync.sync_once(None).await.unwrap();
    late.sync.sync_once(None).await.unwrap();
    for (id, fields) in &saved {
        let c = late
            .ws
            .get_contact(*id)
            .unwrap_or_else(|e| panic!("contact {id} never reached the late device: {e}"));
        assert_eq!(&c.fields, fields);
    }
    relay.kill();
}

/// The envelope ids in a relay database, read through a copy (the relay may be running).
fn envelope_ids(db: &Path) -> HashSet<Vec<u8>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare("SELECT envelope_id FROM log").unwrap();
    stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
