//! Erasure reaches the disk (issue 13): a lead erases a contact and a client while another
//! connection holds a read transaction open on the database, first on its own device, then on
//! the relay. The erasure is reported pending while that reader blocks the checkpoint (and the
//! old bytes are indeed still in the files then), and done only once every file of the device and
//! of the relay (database, `-wal`, `-shm`, journals) is free of the marker strings written in the
//! note, the place and the client code and of fragments of the records' stored ciphertext.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/erasure.rs"]
mod erasure_scan;

use common::*;
use erasure_scan::{Found, fragments, marker, scan};
use rusqlite::Connection;
use streetsync_core::*;

const NOTE_MARKER: &str = "NOTE-MARKER-7f3a9c-sleeps-under-bridge";
const PLACE_MARKER: &str = "PLACE-MARKER-2b8e41-north-underpass";
const CODE_MARKER: &str = "CODEMARKER5d1e";

/// Every sealed body the device's store keeps for `id` (document, projection, outbox).
fn sealed_bodies(db: &std::path::Path, id: RecordId) -> Vec<Vec<u8>> {
    let conn = Connection::open(db).unwrap();
    let mut bodies = Vec::new();
    for sql in [
        "SELECT body FROM documents WHERE id = ?1",
        "SELECT body FROM projections WHERE id = ?1",
        "SELECT body FROM outbox WHERE doc_id = ?1",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([id.as_bytes().as_slice()], |r| r.get::<_, Vec<u8>>(0))
            .unwrap();
        bodies.extend(rows.map(|r| r.unwrap()));
    }
    bodies
}

/// The ciphertext of every envelope of `id` in the relay's log, as stored: raw bytes in the
/// log's `ciphertext` column.
fn relay_ciphertexts(db: &std::path::Path, id: RecordId) -> Vec<Vec<u8>> {
    let conn = Connection::open(db).unwrap();
    streetsync_tests::relay_log(&conn, Some(id))
        .into_iter()
        .map(|(_, e)| e.ciphertext)
        .collect()
}

/// A connection that holds a read transaction (a snapshot) open until dropped: what another
/// process, a backup tool or a forgotten cursor does.
fn hold_reader(db: &std::path::Path, table: &str) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let _: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap();
    conn
}

fn labels(found: &[Found]) -> Vec<String> {
    found
        .iter()
        .map(|f| format!("{} in {} at {}", f.needle, f.file.display(), f.offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_is_done_only_once_no_file_of_device_or_relay_holds_it() {
    let relay_dir = tempfile::tempdir().unwrap();
    let device_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let devices = team(device_dir.path(), &relay.url(), 0).await;
    let lead = &devices[0];
    let db = device_dir.path().join("lead.db");

    let mut draft = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        chrono::NaiveTime::from_hms_opt(21, 30, 0).unwrap(),
        "hauptbahnhof",
    );
    draft.note = format!("{NOTE_MARKER} {}", "and what was said ".repeat(40));
    draft.place = PLACE_MARKER.into();
    let contact = lead.ws.create_contact(draft).unwrap();
    let client = lead
        .ws
        .create_client(ClientDraft::new(CODE_MARKER))
        .unwrap();
    lead.sync.sync_once(None).await.unwrap();

    let mut device_needles = vec![
        marker(NOTE_MARKER),
        marker(PLACE_MARKER),
        marker(CODE_MARKER),
    ];
    let mut relay_needles = device_needles.clone();
    for id in [contact.id, client.id] {
        for (n, body) in sealed_bodies(&db, id).iter().enumerate() {
            device_needles.extend(fragments(&format!("sealed {id} #{n}"), body, 24, 6));
        }
        for (n, text) in relay_ciphertexts(&relay.db_path(), id).iter().enumerate() {
            relay_needles.extend(fragments(&format!("envelope {id} #{n}"), text, 32, 6));
        }
    }
    assert!(device_needles.len() > 3 && relay_needles.len() > 3);
    // The scanner sees what is there: before the erasure every stored ciphertext is found.
    let before = scan(device_dir.path(), &device_needles);
    assert!(
        before.iter().any(|f| f.needle.starts_with("sealed")),
        "the scan finds no sealed body of the records before the erasure"
    );
    let before = scan(relay_dir.path(), &relay_needles);
    assert!(
        before.iter().any(|f| f.needle.starts_with("envelope")),
        "the scan finds no envelope of the records on the relay before the erasure"
    );

    // On the device: a reader blocks the checkpoint, so the erasure is not reported done.
    let reader = hold_reader(&db, "documents");
    for id in [contact.id, client.id] {
        match lead.ws.erase_record(id) {
            Err(Error::ErasurePending) => {}
            other => panic!("erasing with a reader open: {other:?}"),
        }
    }
    assert!(
        lead.ws.get_contact(contact.id).is_err(),
        "the contact is erased"
    );
    let pending = scan(device_dir.path(), &device_needles);
    assert!(
        !pending.is_empty(),
        "reported pending, so the old bytes must still be in the files"
    );
    assert!(matches!(lead.ws.wipe_erased(), Err(Error::ErasurePending)));
    drop(reader);
    lead.ws.wipe_erased().unwrap();
    let left = scan(device_dir.path(), &device_needles);
    assert!(left.is_empty(), "left on the device: {:#?}", labels(&left));

    // On the relay: the tombstones arrive while a reader holds the relay's database.
    let reader = hold_reader(&relay.db_path(), "log");
    match lead.sync.sync_once(None).await {
        Err(Error::Relay {
            code: ErrorCode::ErasurePending,
            ..
        }) => {}
        other => panic!("pushing the tombstones with a reader open on the relay: {other:?}"),
    }
    assert!(
        lead.ws.pending_changes().unwrap() > 0,
        "the tombstones stay in the outbox until the relay has wiped"
    );
    drop(reader);
    let report = lead.sync.sync_once(None).await.unwrap();
    assert!(report.pushed >= 2, "{report:?}");
    assert_eq!(lead.ws.pending_changes().unwrap(), 0);
    let left = scan(relay_dir.path(), &relay_needles);
    assert!(left.is_empty(), "left on the relay: {:#?}", labels(&left));
    // Nor anywhere on the device after its own later writes.
    let left = scan(device_dir.path(), &device_needles);
    assert!(left.is_empty(), "left on the device: {:#?}", labels(&left));
}

/// Without a reader in the way the erasure is reported done at once, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unobstructed_erasure_leaves_nothing_behind() {
    let relay_dir = tempfile::tempdir().unwrap();
    let device_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let devices = team(device_dir.path(), &relay.url(), 1).await;
    let (lead, worker) = (&devices[0], &devices[1]);
    let mut draft = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
        chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        "hauptbahnhof",
    );
    draft.note = NOTE_MARKER.into();
    draft.place = PLACE_MARKER.into();
    let contact = worker.ws.create_contact(draft).unwrap();
    worker.sync.sync_once(None).await.unwrap();
    lead.sync.sync_once(None).await.unwrap();
    let worker_db = device_dir.path().join("worker0.db");
    let mut needles = vec![marker(NOTE_MARKER), marker(PLACE_MARKER)];
    for (n, body) in sealed_bodies(&worker_db, contact.id).iter().enumerate() {
        needles.extend(fragments(&format!("sealed #{n}"), body, 24, 6));
    }
    for (n, text) in relay_ciphertexts(&relay.db_path(), contact.id)
        .iter()
        .enumerate()
    {
        needles.extend(fragments(&format!("envelope #{n}"), text, 32, 6));
    }
    lead.ws.erase_record(contact.id).unwrap();
    lead.sync.sync_once(None).await.unwrap();
    // The worker applies the tombstone from the relay.
    worker.sync.sync_once(None).await.unwrap();
    worker.ws.wipe_erased().unwrap();
    for dir in [device_dir.path(), relay_dir.path()] {
        let left = scan(dir, &needles);
        assert!(left.is_empty(), "left: {:#?}", labels(&left));
    }
}

/// A wipe still pending when the app closes is remembered in the store itself (not only in
/// memory), reported again after a reopen, and done once nothing holds the file.
#[test]
fn a_pending_wipe_is_remembered_across_a_reopen_and_done_once_nothing_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lead.db");
    let ws = Workspace::open(&path, key(9)).unwrap();
    ws.create_team(setup()).unwrap();
    let mut draft = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 4).unwrap(),
        chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        "hauptbahnhof",
    );
    draft.note = NOTE_MARKER.into();
    let contact = ws.create_contact(draft).unwrap();
    let mut needles = vec![marker(NOTE_MARKER)];
    for (n, body) in sealed_bodies(&path, contact.id).iter().enumerate() {
        needles.extend(fragments(&format!("sealed #{n}"), body, 24, 6));
    }
    assert!(
        !scan(dir.path(), &needles).is_empty(),
        "the scan sees the record"
    );

    let reader = hold_reader(&path, "documents");
    assert!(matches!(
        ws.erase_record(contact.id),
        Err(Error::ErasurePending)
    ));
    drop(ws);
    // Reopened while the reader still holds the file: the store remembers the wipe is pending.
    let ws = Workspace::open(&path, key(9)).unwrap();
    assert!(matches!(ws.wipe_erased(), Err(Error::ErasurePending)));
    drop(ws);
    drop(reader);
    let ws = Workspace::open(&path, key(9)).unwrap();
    ws.wipe_erased().unwrap();
    let left = scan(dir.path(), &needles);
    assert!(left.is_empty(), "left: {:#?}", labels(&left));
    assert!(ws.get_contact(contact.id).is_err());
}
