//! Compatibility proof (issue 11, item 7): a lead's store and a relay's log written by an older
//! commit (`tests/fixtures/compat-v1/`, made once by `examples/make_compat_fixtures.rs`; its README
//! names the commit) must still open with today's code, read back every record exactly as
//! `expected.json` recorded it, sync against today's relay running on that old log, and onboard a
//! brand-new device that then sees exactly the same records.
//!
//! The comparisons are of whole records as serialised by their public types, so a field that is
//! lost, renamed in storage or read back differently fails the test with both versions printed.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Relay;
use serde_json::Value;
use streetsync_core::*;

/// The lead's storage key, as the fixture README gives it. Kept here, not read from the fixture,
/// so the test also catches a fixture whose key was changed; `expected.json` records it too.
const LEAD_KEY: &[u8; 32] = b"streetsync-compat-v1-lead-key-32";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("compat-v1")
}

fn lead_key() -> KeySource {
    KeySource::Key(StorageKey::from_bytes(LEAD_KEY).unwrap())
}

/// Copies a directory tree: opening a store or starting a relay migrates and writes, and the
/// committed fixture must stay as the old code left it.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Fails with both sides pretty-printed when `actual` differs from `expected` in any way.
fn same(what: &str, actual: Value, expected: &Value) {
    assert!(!expected.is_null(), "expected.json has no value for {what}");
    if &actual != expected {
        panic!(
            "{what} differs from expected.json\n--- read back ---\n{}\n--- expected ---\n{}",
            serde_json::to_string_pretty(&actual).unwrap(),
            serde_json::to_string_pretty(expected).unwrap()
        );
    }
}

/// A record as its public type serialises it (a macro: the crate has no direct `serde` dependency
/// to name the `Serialize` bound with).
macro_rules! json {
    ($v:expr) => {
        serde_json::to_value($v).unwrap()
    };
}

fn id(v: &Value) -> RecordId {
    serde_json::from_value(v.clone()).unwrap()
}

fn device(v: &Value) -> DeviceId {
    serde_json::from_value(v.clone()).unwrap()
}

/// Reads every record of `ws` through the public API (team, contacts by list and one by one,
/// clients likewise, partners, one contact's history, a full-text search) and compares each with
/// `expected.json` exactly. `newcomers` are devices enrolled after the fixture was made: they must
/// be on the roster as non-revoked workers and are taken out before the team is compared.
fn check_records(who: &str, ws: &Workspace, exp: &Value, newcomers: &[(DeviceId, &str)]) {
    let rec = &exp["records"];

    let mut team = ws.team().unwrap();
    for (new, member) in newcomers {
        let pos = team
            .roster
            .iter()
            .position(|d| d.device_id == *new)
            .unwrap_or_else(|| panic!("{who}: newcomer {new} is not on the roster"));
        let d = team.roster.remove(pos);
        assert_eq!(
            (d.member.as_str(), d.role, d.revoked),
            (*member, Role::Worker, false),
            "{who}: newcomer's roster entry"
        );
    }
    same(&format!("{who}: team"), json!(&team), &rec["team"]);
    assert_eq!(team.id.to_string(), exp["team_id"].as_str().unwrap());

    let list = ws.list_contacts(&ContactFilter::default()).unwrap();
    let expected_list = rec["contact_list"].as_array().unwrap();
    assert_eq!(list.total, expected_list.len(), "{who}: contact count");
    assert!(list.total >= 4, "the fixture holds a handful of contacts");
    // Projections written by v1 lack the retention class (issue 14): the store rebuilds them from
    // the documents, so each list item must carry its document's class; the rest is unchanged.
    let mut items = json!(&list.items);
    for item in items.as_array_mut().unwrap() {
        let retention = item.as_object_mut().unwrap().remove("retention").unwrap();
        let doc = rec["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == item["id"])
            .unwrap();
        assert_eq!(
            retention, doc["fields"]["retention"],
            "{who}: retention class"
        );
    }
    same(&format!("{who}: contact list"), items, &rec["contact_list"]);
    let mut summaries = ws.contact_summaries().unwrap();
    summaries.sort_by_key(|s| s.id);
    let mut listed = list.items.clone();
    listed.sort_by_key(|s| s.id);
    assert_eq!(summaries, listed, "{who}: summaries and list disagree");
    let expected_contacts = rec["contacts"].as_array().unwrap();
    assert_eq!(expected_contacts.len(), list.total);
    for c in expected_contacts {
        let got = ws.get_contact(id(&c["id"])).unwrap();
        same(&format!("{who}: contact {}", got.id), json!(&got), c);
    }

    let deleted = id(&exp["deleted_contact"]);
    assert!(
        matches!(ws.get_contact(deleted), Err(Error::NotFound { .. })),
        "{who}: the deleted contact came back"
    );
    assert!(list.items.iter().all(|s| s.id != deleted));

    let clients = ws.list_clients(&ClientFilter::default()).unwrap();
    same(
        &format!("{who}: client list"),
        json!(&clients),
        &rec["client_list"],
    );
    let expected_clients = rec["clients"].as_array().unwrap();
    assert_eq!(clients.len(), expected_clients.len());
    assert!(!clients.is_empty(), "the fixture holds a client");
    for c in expected_clients {
        let got = ws.get_client(id(&c["id"])).unwrap();
        same(&format!("{who}: client {}", got.id), json!(&got), c);
    }

    same(
        &format!("{who}: partners"),
        json!(ws.partners().unwrap()),
        &rec["partners"],
    );

    let history_of = id(&rec["history"]["contact"]);
    same(
        &format!("{who}: history of {history_of}"),
        json!(ws.history(history_of).unwrap()),
        &rec["history"]["entries"],
    );

    let search = ws
        .list_contacts(&ContactFilter {
            text: Some(rec["search"]["text"].as_str().unwrap().into()),
            ..Default::default()
        })
        .unwrap();
    same(
        &format!("{who}: search hits"),
        json!(search.items.iter().map(|s| s.id).collect::<Vec<_>>()),
        &rec["search"]["ids"],
    );
    assert!(!search.items.is_empty(), "the recorded search has hits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_store_and_relay_log_open_sync_and_onboard_a_new_device() {
    let fixture = fixture_dir();
    let exp: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    assert_eq!(exp["fixture"], "compat-v1");
    assert_eq!(
        exp["lead_storage_key"].as_str().unwrap().as_bytes(),
        LEAD_KEY
    );
    let dir = tempfile::tempdir().unwrap();
    let lead_db = dir.path().join("lead.db");
    std::fs::copy(fixture.join("lead.db"), &lead_db).unwrap();
    copy_dir(&fixture.join("relay"), &dir.path().join("relay"));

    // The key check still guards the old store.
    let wrong = KeySource::Key(StorageKey::from_bytes(&[0u8; 32]).unwrap());
    assert!(matches!(
        Workspace::open(&lead_db, wrong),
        Err(Error::WrongKey)
    ));

    // ---- offline: the old store read by today's code ----------------------------------------
    let lead = Arc::new(Workspace::open(&lead_db, lead_key()).unwrap());
    assert_eq!(lead.device_id(), device(&exp["lead_device"]));
    assert_eq!(lead.my_role().unwrap(), Role::Lead);
    assert_eq!(lead.pending_changes().unwrap(), 0);
    assert!(lead.damaged_records().unwrap().is_empty());
    check_records("fixture lead", &lead, &exp, &[]);
    let worker = device(&exp["worker_device"]);
    let team = lead.team().unwrap();
    let sam = team
        .device(&worker)
        .expect("the fixture's worker is on the roster");
    assert_eq!((sam.role, sam.revoked), (Role::Worker, false));
    assert_eq!(sam.member, "Sam Schröder");

    // The fixture's log as the old relay kept it: each envelope's JSON (schema version 4).
    let old_log: Vec<(i64, String)> = {
        let conn = rusqlite::Connection::open(fixture.join("relay").join("relay.sqlite3")).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert!(
            version < 5,
            "the fixture predates the binary log ({version})"
        );
        let mut stmt = conn
            .prepare("SELECT seq, body FROM log ORDER BY team, seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    assert!(old_log.len() >= 5, "the fixture's log has envelopes");

    // ---- today's relay on the old log; the relay URL is given to the client, not stored ----
    let relay = Relay::start(&dir.path().join("relay"));
    // It migrated the log into binary columns; every envelope is the same JSON, byte for byte.
    let migrated: Vec<(i64, String)> = {
        let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
        streetsync_tests::relay_log(&conn, None)
            .into_iter()
            .map(|(seq, e)| (seq as i64, serde_json::to_string(&e).unwrap()))
            .collect()
    };
    assert_eq!(
        migrated, old_log,
        "the migrated log hands out the old envelopes"
    );
    let lead_sync = SyncClient::new(lead.clone(), &relay.url()).unwrap();
    let report = lead_sync.sync_once(None).await.unwrap();
    assert_eq!(
        (report.pushed, report.pulled, report.applied),
        (0, 0, 0),
        "the fixture lead was caught up with the fixture relay: {report:?}"
    );
    assert!(!report.relay_restored, "the relay's log lost entries");
    assert!(report.quarantined.is_empty());
    assert_eq!(report.cursor, exp["lead_cursor"].as_u64().unwrap());
    check_records("fixture lead after sync", &lead, &exp, &[]);

    // ---- a brand-new device joins by a fresh invite and sees exactly the same ------------------
    let newcomer_name = "Noa Neumann";
    let invite = lead_sync
        .create_invite(newcomer_name, Role::Worker, 3600)
        .await
        .unwrap();
    let newcomer = Arc::new(
        Workspace::open(
            dir.path().join("newcomer.db"),
            KeySource::Key(StorageKey::generate().unwrap()),
        )
        .unwrap(),
    );
    let new_sync = SyncClient::new(newcomer.clone(), &relay.url()).unwrap();
    let joined = new_sync.join_with_invite(&invite.code).await.unwrap();
    assert!(joined.quarantined.is_empty(), "{joined:?}");
    assert!(
        joined.applied >= exp["records"]["contacts"].as_array().unwrap().len() as u64,
        "the newcomer merged the old log: {joined:?}"
    );
    let enrolled = lead_sync.sync_once(None).await.unwrap();
    assert_eq!(enrolled.devices_enrolled, 1);
    new_sync.sync_once(None).await.unwrap();
    assert!(new_sync.quarantine_report().unwrap().is_empty());
    assert!(newcomer.damaged_records().unwrap().is_empty());
    let joined_as = [(newcomer.device_id(), newcomer_name)];
    check_records("newcomer", &newcomer, &exp, &joined_as);
    check_records("fixture lead after the join", &lead, &exp, &joined_as);
    assert_eq!(
        newcomer.team().unwrap().device(&worker).map(|d| d.revoked),
        Some(false),
        "the fixture's worker is on the newcomer's roster"
    );

    // ---- old documents take new changes both ways ------------------------------------------
    let history_of = id(&exp["records"]["history"]["contact"]);
    let remark = "Nachgefragt: Fachkraft hat zurückgerufen.";
    lead.comment_contact(history_of, remark).unwrap();
    let mut d = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        chrono::NaiveTime::from_hms_opt(15, 0, 0).unwrap(),
        "hauptbahnhof",
    );
    d.note = "Erster Kontakt nach dem Umbau.".into();
    let fresh = newcomer.create_contact(d).unwrap();
    lead_sync.sync_once(None).await.unwrap();
    new_sync.sync_once(None).await.unwrap();
    lead_sync.sync_once(None).await.unwrap();
    let before = exp["records"]["history"]["entries"]
        .as_array()
        .unwrap()
        .len();
    for (who, ws) in [("lead", &lead), ("newcomer", &newcomer)] {
        let c = ws.get_contact(history_of).unwrap();
        assert_eq!(
            c.comments.last().map(|c| c.text.as_str()),
            Some(remark),
            "{who}"
        );
        assert_eq!(ws.history(history_of).unwrap().len(), before + 1, "{who}");
        assert_eq!(
            ws.get_contact(fresh.id).unwrap().fields.note,
            "Erster Kontakt nach dem Umbau.",
            "{who}"
        );
        assert_eq!(
            ws.list_contacts(&ContactFilter::default()).unwrap().total,
            exp["records"]["contacts"].as_array().unwrap().len() + 1,
            "{who}"
        );
    }
}
