//! Retention erases on time and down to the bytes (issue 14): a record past its period is erased
//! by the lead's daily sync with the same erasure as an Art. 17 request, and afterwards no file of
//! any device or of the relay (main database, WAL, shared memory, journals) holds a marker of it
//! or a fragment of its ciphertext; records whose period has not ended, and child-protection
//! records, stay everywhere.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "common/erasure.rs"]
mod erasure;

use chrono::{NaiveDate, NaiveTime};
use common::*;
use erasure::{files_under, marker, scan};
use streetsync_core::*;

const MARKERS: [&str; 6] = [
    "RETAINMARKER-NOTE",
    "RETAINMARKER-PLACE",
    "RETAINMARKER-CODE",
    "SHORTMARKER-NOTE",
    "SHORTMARKER-PLACE",
    "SHORTMARKER-CODE",
];

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn draft(date: NaiveDate, tag: &str, class: RetentionClass) -> ContactDraft {
    let mut d = ContactDraft::new(date, NaiveTime::from_hms_opt(9, 0, 0).unwrap(), "stadtpark");
    d.note = format!("{tag}-NOTE Mutter sucht Hilfe, Wohnung verloren");
    d.place = format!("{tag}-PLACE Unterführung");
    d.client_code = Some(format!("{tag}-CODE-1990"));
    d.retention = class;
    d
}

/// Fragments of a record's ciphertext as stored: each relay envelope and each device's sealed
/// document and projection.
fn fragments(relay: &Relay, devices: &[Device], id: RecordId) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let log = streetsync_tests::relay_log(&conn, Some(id));
    assert!(!log.is_empty());
    for (_, env) in log {
        out.extend(erasure::fragments(
            &format!("relay envelope of {id}"),
            &env.ciphertext,
            24,
            2,
        ));
    }
    for d in devices {
        let conn = rusqlite::Connection::open(d.ws.path()).unwrap();
        for table in ["documents", "projections"] {
            let blob: Vec<u8> = conn
                .query_row(
                    &format!("SELECT body FROM {table} WHERE id = ?1"),
                    [id.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .unwrap();
            out.extend(erasure::fragments(
                &format!("{table} row of {id} on {}", d.ws.device_id()),
                &blob,
                24,
                2,
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_their_period_are_erased_by_the_daily_sync_down_to_the_bytes() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let devices = team(dir.path(), &relay.url(), 2).await;
    let (lead, w1, w2) = (&devices[0], &devices[1], &devices[2]);

    // A worker logs: a routine contact long past any period, a short contact whose statistics
    // will be reported, a child-protection concern logged as short (never removed by a shorter
    // class), and a routine contact of yesterday.
    let old = w1
        .ws
        .create_contact(draft(
            day(2020, 3, 1),
            "RETAINMARKER",
            RetentionClass::Standard,
        ))
        .unwrap();
    let short = w1
        .ws
        .create_contact(draft(
            day(2025, 6, 10),
            "SHORTMARKER",
            RetentionClass::Short,
        ))
        .unwrap();
    let mut flagged = draft(day(2020, 3, 2), "KEEP-SAFEGUARDING", RetentionClass::Short);
    flagged.safeguarding = true;
    let flagged = w1.ws.create_contact(flagged).unwrap();
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let recent = w1
        .ws
        .create_contact(draft(yesterday, "KEEP-RECENT", RetentionClass::Standard))
        .unwrap();
    for _ in 0..2 {
        for d in [w1, lead, w2] {
            d.sync.sync_once(None).await.unwrap();
        }
    }
    assert!(w2.ws.get_contact(old.id).is_ok() && w2.ws.get_contact(short.id).is_ok());
    let mut frags = fragments(&relay, &devices, old.id);
    frags.extend(fragments(&relay, &devices, short.id));
    // The scan sees them while the records exist (so finding none later means something).
    let before: Vec<_> = scan(dir.path(), &frags)
        .into_iter()
        .chain(scan(relay_dir.path(), &frags))
        .collect();
    for (label, _) in &frags {
        assert!(
            before.iter().any(|f| &f.needle == label),
            "{label} not seen"
        );
    }

    // A worker cannot set the periods; the lead sets them and chooses automatic erasure.
    let policy = RetentionPolicy {
        standard_days: 365,
        safeguarding_days: 3_650 * 3,
        short_days: 3_650,
        mode: RetentionMode::Automatic,
    };
    assert!(matches!(
        w1.ws.set_retention_policy(policy),
        Err(Error::NotAllowed(_))
    ));
    assert!(matches!(
        lead.ws.set_retention_policy(RetentionPolicy {
            safeguarding_days: 30,
            ..policy
        }),
        Err(Error::Invalid(_))
    ));
    lead.ws.set_retention_policy(policy).unwrap();
    // Only the old routine contact is due: the short one waits for its report.
    let due: Vec<RecordId> = lead
        .ws
        .retention_due(chrono::Utc::now().date_naive())
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(due, [old.id]);
    lead.ws
        .mark_statistics_reported(day(2025, 4, 1), day(2025, 6, 30))
        .unwrap();
    let due = lead
        .ws
        .retention_due(chrono::Utc::now().date_naive())
        .unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    assert!(due.iter().any(|d| d.id == short.id
        && d.class == RetentionClass::Short
        && d.due_on == chrono::Utc::now().date_naive()));
    // The workers learn the periods and see the same list; they erase nothing themselves.
    w1.sync.sync_once(None).await.unwrap();
    assert_eq!(
        w1.ws
            .retention_due(chrono::Utc::now().date_naive())
            .unwrap()
            .len(),
        2
    );

    // A reader holds the lead's database open while its daily sync erases and checkpoints.
    let reader = rusqlite::Connection::open(lead.ws.path()).unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .unwrap();
    let report = lead.sync.sync_once(None).await.unwrap();
    assert_eq!(report.retention_erased, 2, "{report:?}");
    let again = lead.sync.sync_once(None).await.unwrap();
    assert_eq!(again.retention_erased, 0, "once a day");
    for d in [w1, w2] {
        let r = d.sync.sync_once(None).await.unwrap();
        assert_eq!(r.erased, 2, "{}: {r:?}", d.name);
    }
    for d in &devices {
        d.sync.sync_once(None).await.unwrap();
    }

    // The audit entry: counts and ids.
    let log = lead.ws.retention_log().unwrap();
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(entry.trigger, RetentionTrigger::DailySync);
    assert_eq!((entry.standard, entry.short, entry.safeguarding), (1, 1, 0));
    let mut ids = entry.records.clone();
    ids.sort();
    let mut want = vec![old.id, short.id];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(entry.device, lead.ws.device_id());

    for d in &devices {
        for gone in [old.id, short.id] {
            assert!(
                matches!(d.ws.get_contact(gone), Err(Error::NotFound { .. })),
                "{}",
                d.name
            );
        }
        for kept in [flagged.id, recent.id] {
            assert!(d.ws.get_contact(kept).is_ok(), "{}", d.name);
        }
        assert_eq!(d.ws.pending_changes().unwrap(), 0, "{}", d.name);
    }
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    for gone in [old.id, short.id] {
        let left: Vec<i64> = conn
            .prepare("SELECT kind FROM log WHERE doc = ?1")
            .unwrap()
            .query_map([gone.as_bytes().as_slice()], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(left, vec![3], "only the tombstone is left on the relay");
    }
    drop(conn);

    // Every byte of every device and of the relay.
    let files: Vec<_> = files_under(dir.path())
        .into_iter()
        .chain(files_under(relay_dir.path()))
        .collect();
    let scanned = files.len();
    let wal = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("-wal"))
        .count();
    let needles: Vec<_> = MARKERS.iter().map(|m| marker(m)).chain(frags).collect();
    let found: Vec<_> = scan(dir.path(), &needles)
        .into_iter()
        .chain(scan(relay_dir.path(), &needles))
        .collect();
    assert!(found.is_empty(), "erased data still on disk: {found:#?}");
    assert!(scanned >= 4 && wal >= 1, "{scanned} files, {wal} WAL files");
    drop(reader);
}
