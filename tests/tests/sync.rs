//! End-to-end sync against the real relay process: convergence in every order, concurrent note
//! edits, relay crashes, lost replies, corrupted envelopes, team isolation, bootstrap from
//! snapshots, live sync, and proof that the relay's files hold no plaintext.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "common/plaintext.rs"]
mod plaintext;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use streetsync_core::*;

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 1 {
        return vec![vec![0]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_write_offline_then_sync_in_every_order_and_converge() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    for (round, order) in permutations(3).into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let devices = team(dir.path(), &relay.url(), 2).await;
        // Offline: each writes its own contacts and edits one shared contact.
        let shared = devices[0].contact(1, "Gemeinsam:");
        devices[0].sync.sync_once(None).await.unwrap();
        for d in &devices[1..] {
            d.sync.sync_once(None).await.unwrap();
        }
        for (i, d) in devices.iter().enumerate() {
            for n in 0..5 {
                d.contact(10 + n, &format!("round {round} device {i} contact {n}"));
            }
            let mut f = d.ws.get_contact(shared.id).unwrap().fields;
            f.note.push_str(&format!(" [{}]", d.name));
            d.ws.update_contact(shared.id, f).unwrap();
        }
        for &i in &order {
            devices[i].sync.sync_once(None).await.unwrap();
        }
        for &i in &order {
            devices[i].sync.sync_once(None).await.unwrap();
        }
        let expected = state(&devices[0]);
        assert_eq!(expected.len(), 16, "order {order:?}");
        for d in &devices[1..] {
            assert_eq!(state(d), expected, "order {order:?}: {} diverged", d.name);
        }
        let note = devices[2].ws.get_contact(shared.id).unwrap().fields.note;
        for d in &devices {
            assert!(note.contains(&format!("[{}]", d.name)), "{note}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_one_note_keep_both_insertions() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 1).await;
    let c = d[0].contact(3, "Er sucht einen Schlafplatz.");
    d[0].sync.sync_once(None).await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    let mut a = d[0].ws.get_contact(c.id).unwrap().fields;
    a.note = "Heute: Er sucht einen Schlafplatz.".into();
    d[0].ws.update_contact(c.id, a).unwrap();
    let mut b = d[1].ws.get_contact(c.id).unwrap().fields;
    b.note = "Er sucht einen Schlafplatz. Termin Notunterkunft Mittwoch.".into();
    d[1].ws.update_contact(c.id, b).unwrap();
    for _ in 0..2 {
        d[0].sync.sync_once(None).await.unwrap();
        d[1].sync.sync_once(None).await.unwrap();
    }
    let expect = "Heute: Er sucht einen Schlafplatz. Termin Notunterkunft Mittwoch.";
    assert_eq!(d[0].ws.get_contact(c.id).unwrap().fields.note, expect);
    assert_eq!(d[1].ws.get_contact(c.id).unwrap().fields.note, expect);
}

fn relay_log_counts(relay: &Relay) -> (i64, i64) {
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    conn.query_row(
        "SELECT count(*), count(DISTINCT envelope_id) FROM log",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_mid_sync_loses_nothing_and_duplicates_nothing() {
    let relay_dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let mut d = team_with(
        dir.path(),
        &relay.url(),
        1,
        SyncOptions {
            page_size: 50,
            compact_after: 0,
            ..SyncOptions::default()
        },
    )
    .await;
    for n in 0..1500 {
        d[0].contact(n % 300, &format!("Kontakt {n}"));
    }
    // Kill the relay right after the first batch of a push, then after the first page of a pull.
    for dev in [0usize, 1] {
        let killer = KillAtFirstProgress(Mutex::new(Some(relay.pid())));
        let client = SyncClient::with_options(
            d[dev].ws.clone(),
            &relay.url(),
            SyncOptions {
                page_size: 50,
                compact_after: 0,
                ..SyncOptions::default()
            },
        )
        .unwrap();
        let err = client.sync_once(Some(&killer)).await.unwrap_err();
        assert!(matches!(err, Error::Offline(_)), "{err}");
        assert!(
            killer.0.lock().unwrap().is_none(),
            "the relay was killed mid-sync"
        );
        if dev == 0 {
            assert!(
                d[0].ws.pending_changes().unwrap() > 0,
                "part of the push was cut off"
            );
        }
        relay.restart();
        d[dev].reconnect(&relay.url());
        d[dev].sync.sync_once(None).await.unwrap();
    }
    d[0].sync.sync_once(None).await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    assert_eq!(d[0].ws.pending_changes().unwrap(), 0);
    let got = state(&d[1]);
    assert_eq!(got.len(), 1500, "every contact arrived exactly once");
    assert_eq!(got, state(&d[0]));
    let (rows, distinct) = relay_log_counts(&relay);
    assert_eq!(rows, distinct, "no envelope stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_push_reply_is_retried_without_duplicates() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let proxy = Proxy::start(relay.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &proxy.url(), 1).await;
    let before = relay_log_counts(&relay).0;
    for n in 0..20 {
        d[1].contact(n, &format!("offline {n}"));
    }
    proxy
        .drop_push_reply
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = d[1].sync.sync_once(None).await.unwrap_err();
    assert!(matches!(err, Error::Offline(_)), "{err}");
    assert!(
        !proxy
            .drop_push_reply
            .load(std::sync::atomic::Ordering::SeqCst),
        "the reply was dropped"
    );
    assert_eq!(
        relay_log_counts(&relay).0,
        before + 20,
        "the relay did store the push"
    );
    assert_eq!(
        d[1].ws.pending_changes().unwrap(),
        20,
        "the device does not know it"
    );
    let report = d[1].sync.sync_once(None).await.unwrap();
    assert_eq!(report.pushed, 20);
    assert_eq!(d[1].ws.pending_changes().unwrap(), 0);
    let (rows, distinct) = relay_log_counts(&relay);
    assert_eq!(rows, before + 20, "the retry stored nothing new");
    assert_eq!(rows, distinct);
    d[0].sync.sync_once(None).await.unwrap();
    assert_eq!(d[0].all().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_envelope_is_quarantined_and_the_rest_applies() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 1).await;
    let victim = d[0].contact(1, "wird beschädigt");
    for n in 0..9 {
        d[0].contact(2 + n, &format!("heil {n}"));
    }
    d[0].sync.sync_once(None).await.unwrap();
    // Flip one character of the victim's ciphertext inside the relay's database.
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let (seq, mut ciphertext): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, ciphertext FROM log WHERE doc = ?1",
            [victim.id.as_bytes().as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mid = ciphertext.len() / 2;
    ciphertext[mid] ^= 1;
    conn.execute(
        "UPDATE log SET ciphertext = ?1 WHERE seq = ?2",
        rusqlite::params![ciphertext, seq],
    )
    .unwrap();
    drop(conn);
    let report = d[1].sync.sync_once(None).await.unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(report.quarantined[0].doc, victim.id);
    assert_eq!(report.quarantined[0].reason, QuarantineReason::BadSignature);
    let got: Vec<String> = d[1].all().into_iter().map(|s| s.note).collect();
    assert_eq!(got.len(), 9);
    assert!(got.iter().all(|n| n.starts_with("heil")));
    assert!(matches!(
        d[1].ws.get_contact(victim.id),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(d[1].sync.quarantine_report().unwrap().len(), 1);
    // Later syncs go on normally.
    d[0].contact(20, "danach");
    d[0].sync.sync_once(None).await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    assert_eq!(d[1].all().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_teams_unsigned_and_replayed_requests_are_refused() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = team(dir_a.path(), &relay.url(), 0).await;
    let b = team(dir_b.path(), &relay.url(), 0).await;
    b[0].contact(1, "Team B geheim");
    b[0].sync.sync_once(None).await.unwrap();
    let team_b = b[0].ws.team().unwrap().id;

    // A device of team A cannot read team B.
    let http = http();
    let path = format!("/v1/teams/{team_b}/pull?after=0&limit=10");
    let signed = |ws: &Workspace| {
        streetsync_wire::auth::authorization_header(
            ws.identity().signing_key(),
            ws.device_id(),
            "GET",
            &path,
            b"",
            chrono::Utc::now().timestamp_millis(),
            rand_nonce(),
        )
    };
    let resp = http
        .get(format!("{}{path}", relay.url()))
        .header("authorization", signed(&a[0].ws))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: streetsync_wire::ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.error, streetsync_wire::ErrorCode::WrongTeam);

    // Unsigned.
    let resp = http
        .get(format!("{}{path}", relay.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Replayed: the same signed header twice.
    let header = signed(&b[0].ws);
    let first = http
        .get(format!("{}{path}", relay.url()))
        .header("authorization", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let again = http
        .get(format!("{}{path}", relay.url()))
        .header("authorization", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    let body: streetsync_wire::ErrorBody = again.json().await.unwrap();
    assert_eq!(body.error, streetsync_wire::ErrorCode::Replayed);
    // A forged signature (right device, wrong key).
    let forged = streetsync_wire::auth::authorization_header(
        a[0].ws.identity().signing_key(),
        b[0].ws.device_id(),
        "GET",
        &path,
        b"",
        chrono::Utc::now().timestamp_millis(),
        rand_nonce(),
    );
    let resp = http
        .get(format!("{}{path}", relay.url()))
        .header("authorization", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Team A still syncs fine and never saw team B's contact.
    a[0].sync.sync_once(None).await.unwrap();
    assert!(a[0].all().is_empty());
}

fn rand_nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_device_bootstraps_from_snapshots_after_compaction() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let opts = SyncOptions {
        page_size: 100,
        compact_after: 10,
        ..SyncOptions::default()
    };
    let d = team_with(dir.path(), &relay.url(), 0, opts).await;
    let c = d[0].contact(1, "v0");
    for n in 1..=40 {
        let mut f = d[0].ws.get_contact(c.id).unwrap().fields;
        f.note = format!("v{n}");
        d[0].ws.update_contact(c.id, f).unwrap();
        if n % 8 == 0 {
            d[0].sync.sync_once(None).await.unwrap();
        }
    }
    let report = d[0].sync.sync_once(None).await.unwrap();
    d[0].sync.sync_once(None).await.unwrap();
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let entries: i64 = conn
        .query_row(
            "SELECT count(*) FROM log WHERE doc = ?1",
            [c.id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        entries < 20,
        "compaction dropped covered envelopes ({entries} left, {report:?})"
    );
    let snapshots: i64 = conn
        .query_row(
            "SELECT count(*) FROM log WHERE doc = ?1 AND kind = 2",
            [c.id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(snapshots >= 1);
    // A new worker joins now and gets the latest state.
    let w = join(
        dir.path(),
        &relay.url(),
        &d[0],
        "late",
        SyncOptions::default(),
    )
    .await;
    assert_eq!(w.ws.get_contact(c.id).unwrap().fields.note, "v40");
}

/// SIGKILLs the relay process at the first progress event: mid-sync, between two requests.
struct KillAtFirstProgress(Mutex<Option<u32>>);

impl SyncListener for KillAtFirstProgress {
    fn on_status(&self, _: SyncStatus) {}
    fn on_progress(&self, _: SyncProgress) {
        if let Some(pid) = self.0.lock().unwrap().take() {
            let ok = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }
}

#[derive(Default)]
struct Recorder {
    statuses: Mutex<Vec<SyncStatus>>,
    progress: Mutex<Vec<SyncProgress>>,
    changes: Mutex<Vec<RecordChange>>,
}

impl SyncListener for Recorder {
    fn on_status(&self, status: SyncStatus) {
        self.statuses.lock().unwrap().push(status);
    }
    fn on_progress(&self, progress: SyncProgress) {
        self.progress.lock().unwrap().push(progress);
    }
}

impl ChangeListener for Recorder {
    fn on_changes(&self, changes: &[RecordChange]) {
        self.changes.lock().unwrap().extend_from_slice(changes);
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sync_delivers_changes_and_survives_a_relay_restart() {
    let relay_dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 1).await;
    let rec_a = Arc::new(Recorder::default());
    let rec_b = Arc::new(Recorder::default());
    let _sub = d[1].ws.subscribe(rec_b.clone());
    let sync_a = Arc::new(SyncClient::new(d[0].ws.clone(), &relay.url()).unwrap());
    let sync_b = Arc::new(SyncClient::new(d[1].ws.clone(), &relay.url()).unwrap());
    let live_a = sync_a.start_live(rec_a.clone());
    let live_b = sync_b.start_live(rec_b.clone());
    wait_for("both idle", || {
        [&rec_a, &rec_b].iter().all(|r| {
            matches!(
                r.statuses.lock().unwrap().last(),
                Some(SyncStatus::Idle { .. })
            )
        })
    })
    .await;
    let c = d[0].contact(5, "live!");
    wait_for("B receives the contact", || {
        d[1].ws.get_contact(c.id).is_ok()
    })
    .await;
    // The change event follows the commit (the store emits after writing), so it is waited for
    // too: under load the assertion right after the read lost that race.
    wait_for("B's listener hears of the contact", || {
        rec_b
            .changes
            .lock()
            .unwrap()
            .iter()
            .any(|ch| ch.id == c.id && ch.origin == ChangeOrigin::Remote)
    })
    .await;
    assert!(
        rec_b
            .progress
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.phase == SyncPhase::Pulling)
    );

    relay.restart();
    wait_for("A notices the outage", || {
        rec_a
            .statuses
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, SyncStatus::Offline { .. }))
    })
    .await;
    let c2 = d[0].contact(6, "nach dem Neustart");
    wait_for("B receives the second contact after reconnecting", || {
        d[1].ws.get_contact(c2.id).is_ok()
    })
    .await;
    live_a.stop().await;
    drop(live_b);
    assert!(matches!(
        rec_a.statuses.lock().unwrap().last(),
        Some(SyncStatus::Stopped)
    ));
}

/// How often the relay answered a device's read of its mailbox of key grants.
async fn mailbox_reads(url: &str) -> u64 {
    relay_metric(
        url,
        "http_requests_total{route=\"/v1/teams/{team}/bundles\",method=\"GET\",status=\"200\"}",
    )
    .await
}

/// The live loop's wakes read the mailbox only while a key is awaited: edits reach a teammate
/// with no read of it on either side, yet a key rotation while both are live still brings the
/// new key at once (not only at the periodic full sync a minute later), and the teammate reads
/// what is sealed under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_wakes_read_the_mailbox_only_while_a_key_is_awaited() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 2).await;
    let (rec_a, rec_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let sync_a = Arc::new(SyncClient::new(d[0].ws.clone(), &relay.url()).unwrap());
    let sync_b = Arc::new(SyncClient::new(d[1].ws.clone(), &relay.url()).unwrap());
    let live_a = sync_a.start_live(rec_a.clone());
    let live_b = sync_b.start_live(rec_b.clone());
    let idle = |r: &Recorder| {
        matches!(
            r.statuses.lock().unwrap().last(),
            Some(SyncStatus::Idle { .. })
        )
    };
    wait_for("both idle", || idle(&rec_a) && idle(&rec_b)).await;
    let before = mailbox_reads(&relay.url()).await;
    assert!(
        before >= 2,
        "each first live sync reads the mailbox ({before})"
    );

    for day in 1..=3 {
        let c = d[0].contact(day, &format!("live {day}"));
        wait_for("B receives the edit", || d[1].ws.get_contact(c.id).is_ok()).await;
    }
    let synced = |r: &Recorder| {
        r.statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|s| matches!(s, SyncStatus::Idle { .. }))
            .count()
    };
    assert!(
        synced(&rec_a) >= 4 && synced(&rec_b) >= 4,
        "each edit woke both loops"
    );
    assert_eq!(
        mailbox_reads(&relay.url()).await,
        before,
        "no key was awaited, so no live wake read the mailbox"
    );

    // The lead removes worker1 while both loops run: worker0 learns of the new epoch from the
    // log, and its wakes read the mailbox until the grant is there.
    sync_a.revoke_device(d[2].ws.device_id()).await.unwrap();
    let after = d[0].contact(9, "GEHEIM-NACH-DER-ROTATION");
    wait_for("B reads the contact sealed under the new key", || {
        d[1].ws
            .get_contact(after.id)
            .is_ok_and(|c| c.fields.note == "GEHEIM-NACH-DER-ROTATION")
    })
    .await;
    assert_eq!(d[1].ws.key_epochs().unwrap(), vec![1, 2]);
    assert!(
        mailbox_reads(&relay.url()).await > before,
        "the awaited key was fetched from the mailbox"
    );
    live_a.stop().await;
    live_b.stop().await;
}

/// Markers written into the team's records: long and unique, so a hit is never chance.
const MARKERS: &[&str] = &[
    "QZNOTE7c41",
    "QZPLACE3b9e",
    "MARKERCODE-1990",
    "MARKERCLIENT-77",
    "QZPARTNER0d5f",
    "Substitution abgebrochen",
    "Streetwork Mitte",
    "Hauptbahnhof",
    "Nordausgang",
];

/// Neither the relay nor any device store holds a marker in any form (raw, in JSON, base64,
/// base64url or hex, inside Automerge), and no long stored value compresses. Covers the relay's
/// database and WAL, the writer's and the lead's stores, and a worker that only received. The
/// same scanner then finds a planted unsealed copy (positive controls), so a clean scan means
/// something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_holds_plaintext() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 2).await;
    let mut draft = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap(),
        chrono::NaiveTime::from_hms_opt(22, 15, 0).unwrap(),
        "suedstadt",
    );
    // Long enough that its envelopes and sealed blobs are well over plaintext::LONG bytes.
    draft.note = format!(
        "QZNOTE7c41 Substitution abgebrochen, Schwester in Köln. {}",
        "Gespräch über Wohnen, Termin beim Jobcenter vereinbart, Schlafsack mitgegeben. ".repeat(8)
    );
    draft.place = "QZPLACE3b9e Unterführung".into();
    draft.client_code = Some("MARKERCODE-1990".into());
    let c = d[1].ws.create_contact(draft).unwrap();
    d[1].ws
        .create_client(ClientDraft::new("MARKERCLIENT-77"))
        .unwrap();
    d[1].contact(3, "Nordausgang und Hauptbahnhof");
    d[0].ws
        .add_partner(PartnerDraft {
            name: "QZPARTNER0d5f Suchthilfe".into(),
            ..Default::default()
        })
        .unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    d[0].sync.sync_once(None).await.unwrap();
    d[0].sync.compact_all().await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    // worker1 writes nothing: it only receives.
    d[2].sync.sync_once(None).await.unwrap();
    for dev in [&d[0], &d[2]] {
        assert_eq!(
            dev.ws
                .get_contact(c.id)
                .unwrap()
                .fields
                .client_code
                .as_deref(),
            Some("MARKERCODE-1990"),
            "{} received the contact",
            dev.name
        );
    }
    let stored: usize = relay
        .files()
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("relay.sqlite3"))
        .map(|(_, b)| b.len())
        .sum();
    assert!(
        stored > 8192,
        "the scan reads a real database and its WAL ({stored} bytes)"
    );

    let relay_scan = plaintext::scan_dir(relay_dir.path(), "", MARKERS);
    println!("relay: {relay_scan:?}");
    relay_scan.assert_clean("relay");
    let (log_rows, _) = relay_log_counts(&relay);
    assert!(
        relay_scan.tables >= 5
            && relay_scan.values > 100
            && log_rows >= 3
            && relay_scan.ciphertexts == log_rows as usize,
        "the relay scan read its tables and every envelope's ciphertext ({log_rows} in the log): {relay_scan:?}"
    );
    assert!(
        relay_scan.long_binary >= 3,
        "long ciphertexts were checked: {relay_scan:?}"
    );
    for dev in &d {
        let scan = plaintext::scan_dir(dir.path(), &format!("{}.db", dev.name), MARKERS);
        println!("{}: {scan:?}", dev.name);
        scan.assert_clean(&dev.name);
        assert!(
            scan.long_binary >= 2 && scan.tables >= 5,
            "{}'s sealed documents were read and checked: {scan:?}",
            dev.name
        );
    }

    // Positive controls, through the same scanner on a copy of the relay's database.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("planted.sqlite3");
    {
        let live = rusqlite::Connection::open(relay.db_path()).unwrap();
        live.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
            .unwrap();
    }
    let conn = rusqlite::Connection::open(&copy).unwrap();

    let clean = {
        let mut s = plaintext::Scan::default();
        plaintext::scan_connection(&conn, "copy", MARKERS, &mut s);
        s
    };
    clean.assert_clean("the copy before planting");
    // 1. A "ciphertext" that is the unsealed document, raw bytes in a blob as the relay's log
    //    keeps ciphertext (what a seal that returned its input would store).
    let document = d[1].ws.export_document(c.id).unwrap();
    // 2. The contact's fields as JSON, markers taken out, base64-encoded: no marker, but it
    //    compresses as no ciphertext does.
    let mut fields = d[1].ws.get_contact(c.id).unwrap().fields;
    fields.note = fields
        .note
        .replace("QZNOTE7c41", "")
        .replace("Substitution", "");
    fields.place = "Unterführung".into();
    fields.client_code = None;
    fields.area_id = "x".into();
    let fields_b64 = data_encoding::BASE64.encode(&serde_json::to_vec(&fields).unwrap());
    conn.execute_batch("CREATE TABLE planted (ciphertext BLOB, blob BLOB)")
        .unwrap();
    conn.execute(
        "INSERT INTO planted VALUES (?1, ?2)",
        rusqlite::params![document, fields_b64.as_bytes()],
    )
    .unwrap();
    let mut planted = plaintext::Scan::default();
    plaintext::scan_connection(&conn, "planted", MARKERS, &mut planted);
    for m in ["QZNOTE7c41", "QZPLACE3b9e", "MARKERCODE-1990"] {
        assert!(
            planted.saw(m),
            "the scanner must find {m} in an unsealed copy: {:?}",
            planted.found
        );
    }
    // The JSON control (column 1) holds no marker; only the compression check can see it.
    assert!(
        planted
            .compressible
            .iter()
            .any(|(at, _, _)| at.contains("table planted row 1 column 1")),
        "the scanner must flag a long plaintext that compresses: {:?}",
        planted.compressible
    );
    assert!(
        !planted
            .found
            .iter()
            .any(|(_, at)| at.contains("table planted row 1 column 1")),
        "the JSON control holds no marker: {:?}",
        planted.found
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restored_from_an_old_backup_is_refilled_by_the_devices() {
    let relay_dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let mut d = team(dir.path(), &relay.url(), 1).await;
    for n in 0..5 {
        d[0].contact(n, &format!("vor dem Backup {n}"));
    }
    d[0].sync.sync_once(None).await.unwrap();
    // The operator's nightly backup (taken with the relay stopped).
    relay.kill();
    for (path, bytes) in relay.files() {
        std::fs::write(backup.path().join(path.file_name().unwrap()), bytes).unwrap();
    }
    relay.restart();
    d[0].reconnect(&relay.url());
    d[1].reconnect(&relay.url());
    for n in 0..5 {
        d[0].contact(10 + n, &format!("nach dem Backup {n}"));
    }
    d[0].sync.sync_once(None).await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    assert_eq!(d[1].all().len(), 10);
    // Disaster: the relay comes back from the old backup.
    relay.kill();
    for entry in std::fs::read_dir(relay_dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for entry in std::fs::read_dir(backup.path()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, relay_dir.path().join(p.file_name().unwrap())).unwrap();
    }
    relay.restart();
    d[0].reconnect(&relay.url());
    let report = d[0].sync.sync_once(None).await.unwrap();
    assert!(report.relay_restored, "{report:?}");
    assert!(report.snapshots >= 10, "{report:?}");
    // A device that joins now gets everything, including what the backup lacked.
    let late = join(
        dir.path(),
        &relay.url(),
        &d[0],
        "late",
        SyncOptions::default(),
    )
    .await;
    assert_eq!(state(&late), state(&d[0]));
    assert_eq!(late.all().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_live_work_over_tls_and_refuse_an_untrusted_certificate() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let proxy = TlsProxy::start(relay.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = SyncOptions {
        trusted_roots_pem: Some(proxy.cert_pem.clone()),
        ..SyncOptions::default()
    };
    let d = team_with(dir.path(), &proxy.url(), 1, opts.clone()).await;
    let c = d[0].contact(1, "über TLS");
    d[0].sync.sync_once(None).await.unwrap();
    d[1].sync.sync_once(None).await.unwrap();
    assert_eq!(d[1].ws.get_contact(c.id).unwrap().fields.note, "über TLS");
    // Live sync over wss://.
    let rec = Arc::new(Recorder::default());
    let live = Arc::new(SyncClient::with_options(d[1].ws.clone(), &proxy.url(), opts).unwrap())
        .start_live(rec.clone());
    wait_for("live over TLS", || {
        matches!(
            rec.statuses.lock().unwrap().last(),
            Some(SyncStatus::Idle { .. })
        )
    })
    .await;
    let c2 = d[0].contact(2, "live über TLS");
    d[0].sync.sync_once(None).await.unwrap();
    wait_for("the live contact", || d[1].ws.get_contact(c2.id).is_ok()).await;
    drop(live);
    // A device that does not trust the certificate refuses to talk, with a clear message.
    let stranger = SyncClient::new(d[1].ws.clone(), &proxy.url()).unwrap();
    let e = stranger.sync_once(None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Offline(m) if m.contains("certificate")),
        "{e}"
    );
    // Bad PEM is a typed error.
    let bad = SyncOptions {
        trusted_roots_pem: Some("no certificate here".into()),
        ..SyncOptions::default()
    };
    assert!(matches!(
        SyncClient::with_options(d[1].ws.clone(), &proxy.url(), bad),
        Err(Error::Invalid(_))
    ));
}

/// A fresh device's bootstrap opens large pages ahead on several threads (signatures, decryption,
/// document loads) while the page's transaction applies what is already open. Whatever it mixes
/// (new records as saved documents, later edits of the same records in the same page, a
/// teammate's edits, deletions, a damaged envelope and the changes that depend on it), the result
/// must be what the plain serial path gives: every record identical to the lead's, the damaged
/// one quarantined with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_over_large_pages_opened_ahead_matches_the_lead() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let d = team(dir.path(), &relay.url(), 1).await;
    let (lead, worker) = (&d[0], &d[1]);
    let victim = lead.contact(0, "wird beschädigt");
    let mut ids = Vec::new();
    for n in 0..150 {
        ids.push(
            lead.contact(n % 60, &format!("Kontakt {n} am Südausgang"))
                .id,
        );
    }
    lead.sync.sync_once(None).await.unwrap();
    // Edits of records created earlier in the log (later in the same pages for a new device).
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 7 == 0) {
        let mut f = lead.ws.get_contact(*id).unwrap().fields;
        f.note.push_str(&format!(" · nachgetragen {n}"));
        f.persons = 2;
        lead.ws.update_contact(*id, f).unwrap();
    }
    for id in &ids[140..143] {
        lead.ws.delete_contact(*id).unwrap();
    }
    let mut f = lead.ws.get_contact(victim.id).unwrap().fields;
    f.note = "wird beschädigt, zweite Fassung".into();
    lead.ws.update_contact(victim.id, f).unwrap();
    lead.sync.sync_once(None).await.unwrap();
    worker.sync.sync_once(None).await.unwrap();
    for n in 0..40 {
        worker.contact(n, &format!("vom Team {n}"));
    }
    for id in &ids[..5] {
        let mut f = worker.ws.get_contact(*id).unwrap().fields;
        f.note.push_str(" (Rückfrage geklärt)");
        worker.ws.update_contact(*id, f).unwrap();
    }
    worker.sync.sync_once(None).await.unwrap();
    lead.sync.sync_once(None).await.unwrap();

    // Damage the victim's first envelope (its saved document) in the relay's log.
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let (seq, mut ciphertext): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, ciphertext FROM log WHERE doc = ?1 ORDER BY seq LIMIT 1",
            [victim.id.as_bytes().as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mid = ciphertext.len() / 2;
    ciphertext[mid] ^= 1;
    conn.execute(
        "UPDATE log SET ciphertext = ?1 WHERE seq = ?2",
        rusqlite::params![ciphertext, seq],
    )
    .unwrap();
    drop(conn);

    // Pages of 200: chunks of envelopes opened ahead cross page boundaries.
    let opts = SyncOptions {
        page_size: 200,
        ..SyncOptions::default()
    };
    let fresh = join(dir.path(), &relay.url(), lead, "neu", opts).await;
    // Joining pulled the whole log already.
    let report = fresh.sync.sync_once(None).await.unwrap();
    assert_eq!(report.pulled, 0, "{report:?}");
    let reasons: Vec<(RecordId, QuarantineReason)> = fresh
        .sync
        .quarantine_report()
        .unwrap()
        .into_iter()
        .map(|q| (q.doc, q.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (victim.id, QuarantineReason::BadSignature),
            (victim.id, QuarantineReason::MissingDependencies)
        ]
    );
    assert!(matches!(
        fresh.ws.get_contact(victim.id),
        Err(Error::NotFound { .. })
    ));
    let expected: Vec<_> = state(lead)
        .into_iter()
        .filter(|(id, _, _)| *id != victim.id)
        .collect();
    assert_eq!(expected.len(), 150 - 3 + 40);
    assert_eq!(state(&fresh), expected);
    for s in lead.all() {
        if s.id != victim.id {
            assert_eq!(
                fresh.ws.get_contact(s.id).unwrap().fields,
                lead.ws.get_contact(s.id).unwrap().fields
            );
        }
    }
    assert!(
        fresh
            .ws
            .get_contact(ids[0])
            .unwrap()
            .fields
            .note
            .ends_with("(Rückfrage geklärt)"),
        "the worker's edit arrived"
    );
    for id in &ids[140..143] {
        assert!(
            fresh.all().iter().all(|s| s.id != *id),
            "deleted stays deleted"
        );
    }
}
