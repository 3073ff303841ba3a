//! Documents from a teammate that crash Automerge must be refused, not crash the device. The inputs
//! were found by the `document` fuzz target (`fuzz/`, see `docs/fuzzing.md`).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use streetsync_core::*;

/// A real contact document (`fuzz/seeds/document/base-contact.automerge`).
const BASE_CONTACT: &[u8] = include_bytes!("../../fuzz/seeds/document/base-contact.automerge");

/// A change chunk with valid checksums that makes automerge 0.12's `load_incremental` panic
/// (`op_set2/change/batch.rs:1121`, `lookup_actor(..).unwrap()` on an unknown actor) when merged
/// into `BASE_CONTACT`.
const UNKNOWN_ACTOR_PANIC: &[u8] =
    include_bytes!("../../fuzz/regressions/document/crash-d73a3dd9-valid-checksums.changes");

#[test]
fn a_change_that_panics_automerge_is_refused_as_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let id = named_record(BASE_CONTACT);
    ws.apply_remote(id, BASE_CONTACT).unwrap();
    let before = ws.get_contact(id).unwrap();

    let err = ws.apply_remote(id, UNKNOWN_ACTOR_PANIC).unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");

    // Nothing of the refused change was kept, and the store goes on working.
    assert_eq!(ws.get_contact(id).unwrap(), before);
    assert_eq!(ws.damaged_records().unwrap(), Vec::<RecordId>::new());
    ws.create_contact(ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 9, 4).unwrap(),
        chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        "hauptbahnhof",
    ))
    .unwrap();
}

#[test]
fn the_fuzzing_entry_point_survives_it_too() {
    let mut both = BASE_CONTACT.to_vec();
    both.extend_from_slice(UNKNOWN_ACTOR_PANIC);
    // Loaded into an empty document in one go, the same bytes do not reach the panic; either way
    // the call must return.
    let _ = streetsync_core::testing::merge_document(&both);
    let _ = streetsync_core::testing::merge_document(UNKNOWN_ACTOR_PANIC);
}

/// A real client document (`fuzz/seeds/document/base-client.automerge`).
const BASE_CLIENT: &[u8] = include_bytes!("../../fuzz/seeds/document/base-client.automerge");

/// A change chunk that automerge 0.12 merges into `BASE_CLIENT` without an error, but after which
/// the saved document no longer loads ("invalid changes: missing ops").
const SAVES_UNLOADABLE: &[u8] =
    include_bytes!("../../fuzz/regressions/document/crash-ed3fe699-valid-checksums.changes");

#[test]
fn a_change_that_would_leave_an_unloadable_document_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let id = named_record(BASE_CLIENT);
    ws.apply_remote(id, BASE_CLIENT).unwrap();
    let before = ws.get_client(id).unwrap();

    let result = ws.apply_remote(id, SAVES_UNLOADABLE);
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");

    // The stored record still opens, unchanged (before the fix: `Error::Corrupt` from here on).
    assert_eq!(ws.get_client(id).unwrap(), before);
    ws.export_document(id).unwrap();
    assert_eq!(ws.damaged_records().unwrap(), Vec::<RecordId>::new());
}

/// The record a saved document names (a device refuses it under any other id).
fn named_record(doc: &[u8]) -> RecordId {
    let doc = automerge::AutoCommit::load(doc).unwrap();
    match automerge::ReadDoc::get(&doc, automerge::ROOT, "id").unwrap() {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            automerge::ScalarValue::Str(id) => id.parse().unwrap(),
            other => panic!("id is {other:?}"),
        },
        other => panic!("no id: {other:?}"),
    }
}

#[test]
fn a_document_under_another_records_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let err = ws
        .apply_remote(RecordId::random(), BASE_CONTACT)
        .unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ref m) if m.contains("names record")),
        "{err:?}"
    );
    assert!(
        ws.list_contacts(&ContactFilter::default())
            .unwrap()
            .items
            .is_empty()
    );
}

/// A record Automerge 0.12 loads strictly but panics on when its change graph is read (found by
/// replaying the `document` target's corpus through `history`, 2026-12-01).
const HISTORY_PANIC: &[u8] =
    include_bytes!("../../fuzz/regressions/document/history-get_changes-collector-753.automerge");

#[test]
fn a_record_whose_history_panics_automerge_gives_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    // Received as the record it names, as a device would store it.
    let id = match std::panic::catch_unwind(|| named_record(HISTORY_PANIC)) {
        Ok(id) => id,
        Err(_) => RecordId::random(),
    };
    match ws.apply_remote(id, HISTORY_PANIC) {
        Ok(_) => {
            let err = ws.history(id).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        }
        // Refused at receipt is as good: nothing unreadable is stored.
        Err(e) => assert!(
            matches!(e, Error::Protocol(_) | Error::NotAllowed(_)),
            "{e:?}"
        ),
    }
    // The store goes on working.
    assert!(ws.list_contacts(&ContactFilter::default()).is_ok());
}

/// The role rule of a teammate's changes, on the device's own receive path: a worker's changes
/// that approve a contact are refused, the same changes from a lead are taken (cargo-mutants found
/// that neither core suite told a worker from a lead here).
#[test]
fn only_a_lead_approves_a_contact_in_received_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let c = ws.create_contact(draft(&mut Rng(7), 3)).unwrap();
    let base = ws.export_document(c.id).unwrap();
    ws.approve_contact(c.id).unwrap();
    let approved = ws.export_document(c.id).unwrap();
    let someone = streetsync_wire::DeviceId::from_bytes([5; 16]);
    let as_worker = streetsync_core::testing::receive_from(
        &base,
        &approved,
        streetsync_wire::Role::Worker,
        someone,
        true,
    );
    assert!(
        matches!(as_worker, Err(Error::NotAllowed(_))),
        "a worker's approval must be refused: {as_worker:?}"
    );
    streetsync_core::testing::receive_from(
        &base,
        &approved,
        streetsync_wire::Role::Lead,
        someone,
        true,
    )
    .unwrap();
    // A worker may still edit a contact that is approved already (the review state it finds is
    // the one before its change, not "none").
    let mut f = ws.get_contact(c.id).unwrap().fields;
    f.note.push_str(" Nachtrag.");
    ws.update_contact(c.id, f).unwrap();
    assert_eq!(ws.get_contact(c.id).unwrap().review, ReviewState::Approved);
    let edited = ws.export_document(c.id).unwrap();
    streetsync_core::testing::receive_from(
        &approved,
        &edited,
        streetsync_wire::Role::Worker,
        someone,
        true,
    )
    .unwrap();
    // Outside a snapshot, changes must be the sending device's own: the same edit sent by another
    // device is refused, sent by the device that made it, taken.
    let forged = streetsync_core::testing::receive_from(
        &approved,
        &edited,
        streetsync_wire::Role::Worker,
        someone,
        false,
    );
    assert!(
        matches!(&forged, Err(Error::NotAllowed(m)) if m.contains("claim another device")),
        "{forged:?}"
    );
    streetsync_core::testing::receive_from(
        &approved,
        &edited,
        streetsync_wire::Role::Worker,
        ws.device_id(),
        false,
    )
    .unwrap();
}

/// A lead's change of the Team document that takes back a key commitment is refused on the
/// receive path (the team rules run on every received Team change; cargo-mutants found no core
/// test that went through `check_foreign` for them).
#[test]
fn a_received_team_change_that_removes_an_epoch_is_refused() {
    use automerge::transaction::Transactable as _;
    use automerge::{ObjType, ReadDoc as _};
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let base = streetsync_core::testing::team_document(&ws).unwrap();
    let mut doc = automerge::AutoCommit::load(&base).unwrap();
    let (_, epochs) = doc.get(automerge::ROOT, "epochs").unwrap().unwrap();
    assert_eq!(doc.object_type(&epochs).unwrap(), ObjType::List);
    assert_eq!(doc.length(&epochs), 1);
    doc.delete(&epochs, 0).unwrap();
    let changed = doc.save();
    let r = streetsync_core::testing::receive_from(
        &base,
        &changed,
        streetsync_wire::Role::Lead,
        ws.device_id(),
        true,
    );
    assert!(matches!(r, Err(Error::NotAllowed(_))), "{r:?}");
    // The unchanged document is taken.
    streetsync_core::testing::receive_from(
        &base,
        &base,
        streetsync_wire::Role::Lead,
        ws.device_id(),
        true,
    )
    .unwrap();
}
