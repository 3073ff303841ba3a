//! Crash safety on a real SQLite file: a separate process saves contacts in a loop and is killed
//! with SIGKILL at a random moment, 20 times on the same store. Every contact whose save had
//! returned (its id was printed) must survive: readable, listed, and the file must pass
//! `PRAGMA integrity_check`.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use streetsync_core::{ContactFilter, KeySource, RecordId, StorageKey, Workspace};

#[path = "../../core/tests/common/mod.rs"]
mod common;

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
/// ids it reported as saved.
fn kill_round(path: &Path, rng: &mut common::Rng, round: usize) -> Vec<RecordId> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ss-save-loop"))
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<RecordId>();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // A line cut short by the kill was not confirmed; a whole line must be an id.
            let Some(id) = line.strip_suffix('\n') else {
                return;
            };
            let id: RecordId = id
                .parse()
                .unwrap_or_else(|e| panic!("round {round}: bad line {id:?}: {e}"));
            if tx.send(id).is_err() {
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

    let mut confirmed: Vec<RecordId> = Vec::new();
    for round in 1..=ROUNDS {
        let printed = kill_round(&path, &mut rng, round);
        let new = printed.len();
        confirmed.extend(printed);

        let ws = open(&path);
        for id in &confirmed {
            let contact = ws
                .get_contact(*id)
                .unwrap_or_else(|e| panic!("round {round}: confirmed contact {id} is lost: {e}"));
            assert_eq!(contact.id, *id);
            assert!(
                !contact.fields.note.is_empty(),
                "round {round}: {id} has no note"
            );
        }
        let listed = listed_ids(&ws);
        let missing = confirmed.iter().filter(|id| !listed.contains(id)).count();
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
            integrity_check(&path),
            ["ok"],
            "round {round}: integrity_check"
        );
        println!(
            "round {round:2}: {new:4} saves confirmed, {:5} total confirmed, {:5} listed",
            confirmed.len(),
            listed.len()
        );
    }
    let unique: HashSet<_> = confirmed.iter().collect();
    assert_eq!(unique.len(), confirmed.len(), "ids must be unique");
    println!(
        "crash test: {ROUNDS} SIGKILL rounds, {} contacts confirmed and all present",
        confirmed.len()
    );
}
