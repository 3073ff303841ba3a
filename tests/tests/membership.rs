//! Team membership against the real relay: invites, roles, revocation with key rotation,
//! erasure everywhere, and the audit trail.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use streetsync_core::*;

/// A lead with a team on the relay.
async fn lead(dir: &std::path::Path, url: &str) -> Device {
    let lead = Device::open(dir, "lead", url);
    lead.ws.create_team(setup()).unwrap();
    lead.sync.sync_once(None).await.unwrap();
    lead
}

/// A new device that joins with an invite from `lead`.
async fn invited(dir: &std::path::Path, url: &str, lead: &Device, name: &str) -> Device {
    let invite = lead
        .sync
        .create_invite(name, Role::Worker, 3600)
        .await
        .unwrap();
    let d = Device::open(dir, name, url);
    d.sync.join_with_invite(&invite.code).await.unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_enrol_devices_and_refuse_bad_codes() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), &relay.url()).await;
    let team_id = lead.ws.team().unwrap().id;

    let first = invited(dir.path(), &relay.url(), &lead, "Sam").await;
    assert_eq!(first.ws.team().unwrap().id, team_id);
    assert_eq!(first.ws.team().unwrap().name, "Streetwork Mitte");
    // The new device writes at once; the lead's next sync puts it on the roster and accepts it.
    let c = first.contact(1, "erster Kontakt");
    first.sync.sync_once(None).await.unwrap();
    let report = lead.sync.sync_once(None).await.unwrap();
    assert_eq!(report.devices_enrolled, 1);
    let roster = lead.ws.team().unwrap().roster;
    let sam = roster
        .iter()
        .find(|d| d.device_id == first.ws.device_id())
        .unwrap();
    assert_eq!((sam.member.as_str(), sam.role), ("Sam", Role::Worker));
    assert_eq!(
        lead.ws.get_contact(c.id).unwrap().fields.note,
        "erster Kontakt"
    );

    // A second newcomer writes before the roster knows it: teammates hold the envelope back and
    // apply it once the lead's roster change arrives.
    let second = invited(dir.path(), &relay.url(), &lead, "Kim").await;
    let c2 = second.contact(2, "von Kim");
    second.sync.sync_once(None).await.unwrap();
    let early = first.sync.sync_once(None).await.unwrap();
    assert!(
        early
            .quarantined
            .iter()
            .any(|q| q.reason == QuarantineReason::UnknownDevice),
        "{early:?}"
    );
    assert!(first.ws.get_contact(c2.id).is_err());
    lead.sync.sync_once(None).await.unwrap();
    let later = first.sync.sync_once(None).await.unwrap();
    assert!(later.recovered >= 1, "{later:?}");
    assert_eq!(first.ws.get_contact(c2.id).unwrap().fields.note, "von Kim");

    // Used, mistyped and expired codes are typed errors, and nothing is joined.
    let invite = lead
        .sync
        .create_invite("Alex", Role::Worker, 3600)
        .await
        .unwrap();
    let a = Device::open(dir.path(), "alex", &relay.url());
    a.sync.join_with_invite(&invite.code).await.unwrap();
    let b = Device::open(dir.path(), "bob", &relay.url());
    let used = b.sync.join_with_invite(&invite.code).await.unwrap_err();
    assert!(
        matches!(&used, Error::NotAllowed(m) if m.contains("used already")),
        "{used}"
    );
    let mut typo: Vec<char> = invite.code.chars().collect();
    typo[0] = if typo[0] == 'Q' { 'R' } else { 'Q' };
    let mistyped = b
        .sync
        .join_with_invite(&typo.into_iter().collect::<String>())
        .await
        .unwrap_err();
    assert!(
        matches!(&mistyped, Error::Invalid(v) if v.field == "invite_code"),
        "{mistyped}"
    );
    let short = lead
        .sync
        .create_invite("Eve", Role::Worker, 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = b.sync.join_with_invite(&short.code).await.unwrap_err();
    assert!(
        matches!(&expired, Error::NotAllowed(m) if m.contains("expired")),
        "{expired}"
    );
    assert!(
        b.ws.team_id().unwrap().is_none(),
        "a refused code joins nothing"
    );
    // Only leads invite.
    let e = first
        .sync
        .create_invite("X", Role::Worker, 60)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotAllowed(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_leads_change_the_roster_approve_or_erase() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), &relay.url()).await;
    let w = invited(dir.path(), &relay.url(), &lead, "Sam").await;
    let other = invited(dir.path(), &relay.url(), &lead, "Kim").await;
    lead.sync.sync_once(None).await.unwrap();
    let c = w.contact(1, "Notiz");
    w.sync.sync_once(None).await.unwrap();
    other.sync.sync_once(None).await.unwrap();

    // The app refuses these on a worker's device.
    assert!(matches!(
        w.ws.approve_contact(c.id),
        Err(Error::NotAllowed(_))
    ));
    assert!(matches!(
        w.ws.request_changes(c.id, "?"),
        Err(Error::NotAllowed(_))
    ));
    assert!(matches!(w.ws.erase_record(c.id), Err(Error::NotAllowed(_))));
    assert!(matches!(
        w.ws.add_catalog_entry(Catalog::Area, "Mond"),
        Err(Error::NotAllowed(_))
    ));

    // A tampered worker app sends them anyway: every other device refuses and reports them.
    streetsync_core::testing::unchecked_change(&w.ws, c.id, "review", "Approved").unwrap();
    w.sync.sync_once(None).await.unwrap();
    for d in [&lead, &other] {
        let r = d.sync.sync_once(None).await.unwrap();
        assert!(
            r.quarantined
                .iter()
                .any(|q| q.reason == QuarantineReason::NotAllowed && q.doc == c.id),
            "{r:?}"
        );
        assert_eq!(d.ws.get_contact(c.id).unwrap().review, ReviewState::Draft);
    }
    // The relay refuses a worker's control operations outright.
    let http = http();
    let team = lead.ws.team().unwrap().id;
    let path = format!("/v1/teams/{team}/devices");
    let body = serde_json::to_vec(&other.ws.device_keys(Role::Lead)).unwrap();
    let header = streetsync_wire::auth::authorization_header(
        w.ws.identity().signing_key(),
        w.ws.device_id(),
        "POST",
        &path,
        &body,
        chrono::Utc::now().timestamp_millis(),
        [7; 16],
    );
    let resp = http
        .post(format!("{}{path}", relay.url()))
        .header("authorization", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        403,
        "a worker cannot add devices on the relay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_is_refused_and_cannot_read_what_comes_after() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), &relay.url()).await;
    let lost = invited(dir.path(), &relay.url(), &lead, "Verlorenes Handy").await;
    let away = invited(dir.path(), &relay.url(), &lead, "Kim").await;
    lead.sync.sync_once(None).await.unwrap();
    let before = lead.contact(1, "vor dem Verlust");
    lead.sync.sync_once(None).await.unwrap();
    lost.sync.sync_once(None).await.unwrap();
    away.sync.sync_once(None).await.unwrap();
    assert!(lost.ws.get_contact(before.id).is_ok());

    // `away` is offline while the lead removes the lost phone.
    lead.sync.revoke_device(lost.ws.device_id()).await.unwrap();
    assert_eq!(lead.ws.key_epochs().unwrap(), vec![1, 2]);
    let after = lead.contact(2, "GEHEIM-NACH-DEM-VERLUST");
    lead.sync.sync_once(None).await.unwrap();

    // The relay refuses the removed device from the next request on.
    let e = lost.sync.sync_once(None).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Relay {
                code: ErrorCode::Revoked,
                ..
            }
        ),
        "{e}"
    );
    // The offline device picks up the new key when it returns, and reads the new contact.
    let r = away.sync.sync_once(None).await.unwrap();
    assert_eq!(r.keys_received, 1, "{r:?}");
    assert_eq!(away.ws.key_epochs().unwrap(), vec![1, 2]);
    assert_eq!(
        away.ws.get_contact(after.id).unwrap().fields.note,
        "GEHEIM-NACH-DEM-VERLUST"
    );
    let from_away = away.contact(3, "Kim nach der Rotation");
    away.sync.sync_once(None).await.unwrap();
    lead.sync.sync_once(None).await.unwrap();
    assert!(lead.ws.get_contact(from_away.id).is_ok());

    // Even with a full copy of the relay's files (and the relay tricked into serving it), the
    // removed device cannot open anything written after its removal.
    let copy_dir = tempfile::tempdir().unwrap();
    for (path, bytes) in relay.files() {
        std::fs::write(copy_dir.path().join(path.file_name().unwrap()), bytes).unwrap();
    }
    let conn = rusqlite::Connection::open(copy_dir.path().join("relay.sqlite3")).unwrap();
    conn.execute("UPDATE devices SET revoked = 0", []).unwrap();
    drop(conn);
    let copy = Relay::start(copy_dir.path());
    let mut lost = lost;
    lost.reconnect(&copy.url());
    let r = lost.sync.sync_once(None).await.unwrap();
    assert_eq!(
        lost.ws.key_epochs().unwrap(),
        vec![1],
        "the removed device never got epoch 2"
    );
    assert!(
        r.quarantined
            .iter()
            .all(|q| q.reason == QuarantineReason::NoKeyForEpoch),
        "{r:?}"
    );
    assert!(r.quarantined.iter().any(|q| q.doc == after.id));
    assert!(lost.ws.get_contact(after.id).is_err());
    assert!(lost.ws.get_contact(from_away.id).is_err());
    assert!(
        lost.ws.get_contact(before.id).is_ok(),
        "what it had before stays (it was on the phone)"
    );

    // The cryptography, not the bookkeeping: the removed device holds the old key bytes (read
    // from its own store), the new epoch's key is different, and the old key does not open an
    // envelope sealed after the rotation (the AEAD tag fails), while the new key does.
    use streetsync_core::testing::{OpenFailure, open_envelope_with, team_key_bytes};
    let lost_keys = team_key_bytes(&lost.ws).unwrap();
    let lead_keys = team_key_bytes(&lead.ws).unwrap();
    assert_eq!(lost_keys.iter().map(|k| k.0).collect::<Vec<_>>(), vec![1]);
    let old = lost_keys[0].1;
    let key_of = |epoch: u32| lead_keys.iter().find(|k| k.0 == epoch).unwrap().1;
    assert_eq!(
        key_of(1),
        old,
        "the removed device holds the team's old key"
    );
    let new = key_of(2);
    assert_ne!(
        new, old,
        "the rotation made a new key, not the old bytes again"
    );
    let conn = rusqlite::Connection::open(copy_dir.path().join("relay.sqlite3")).unwrap();
    let sealed_after: Vec<streetsync_wire::Envelope> = streetsync_tests::relay_log(&conn, None)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.epoch == 2)
        .collect();
    assert!(
        sealed_after
            .iter()
            .any(|e| e.doc.to_string() == after.id.to_string()),
        "the contact written after the removal is on the relay under epoch 2"
    );
    for env in &sealed_after {
        assert_eq!(
            open_envelope_with(old, env),
            Err(OpenFailure::Aead),
            "the old key must not open envelope {:?} sealed after the rotation",
            env.id
        );
        assert!(
            open_envelope_with(new, env).is_ok(),
            "the new key opens envelope {:?}",
            env.id
        );
    }
}

fn files_of(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        } else if p.is_dir() {
            out.extend(files_of(&p));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_every_trace_from_every_device_and_the_relay() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), &relay.url()).await;
    let w1 = invited(dir.path(), &relay.url(), &lead, "Sam").await;
    let w2 = invited(dir.path(), &relay.url(), &lead, "Kim").await;
    lead.sync.sync_once(None).await.unwrap();
    let mut draft = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 5, 5).unwrap(),
        chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        "stadtpark",
    );
    draft.note = "ERASEMARKER-NOTE Mutter sucht Hilfe".into();
    draft.place = "ERASEMARKER-PLACE".into();
    draft.client_code = Some("ERASEMARKER-CODE".into());
    let victim = w1.ws.create_contact(draft).unwrap();
    let keep = w1.contact(6, "bleibt");
    for _ in 0..2 {
        for d in [&w1, &lead, &w2] {
            d.sync.sync_once(None).await.unwrap();
        }
    }
    assert!(w2.ws.get_contact(victim.id).is_ok());
    // Fragments of the record's ciphertext as stored: the relay's envelope and each device's
    // sealed document. After erasure none of them may remain anywhere.
    let mut fragments: Vec<Vec<u8>> = Vec::new();
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    for (_, env) in streetsync_tests::relay_log(&conn, Some(victim.id)) {
        let ct = &env.ciphertext;
        fragments.push(ct[ct.len() / 2..ct.len() / 2 + 24].to_vec());
    }
    drop(conn);
    for d in [&lead, &w1, &w2] {
        let conn = rusqlite::Connection::open(d.ws.path()).unwrap();
        for table in ["documents", "projections"] {
            let blob: Vec<u8> = conn
                .query_row(
                    &format!("SELECT body FROM {table} WHERE id = ?1"),
                    [victim.id.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .unwrap();
            fragments.push(blob[blob.len() / 2..blob.len() / 2 + 24].to_vec());
        }
    }
    assert!(fragments.len() >= 7);

    // w2 edits the record offline, unaware of the erasure to come.
    let mut f = w2.ws.get_contact(victim.id).unwrap().fields;
    f.note.push_str(" ERASEMARKER-LATE");
    w2.ws.update_contact(victim.id, f).unwrap();

    lead.ws.erase_record(victim.id).unwrap();
    assert!(matches!(
        lead.ws.get_contact(victim.id),
        Err(Error::NotFound { .. })
    ));
    lead.sync.sync_once(None).await.unwrap();
    let r1 = w1.sync.sync_once(None).await.unwrap();
    assert_eq!(r1.erased, 1, "{r1:?}");
    w2.sync.sync_once(None).await.unwrap();
    for d in [&lead, &w1, &w2] {
        d.sync.sync_once(None).await.unwrap();
    }
    for d in [&lead, &w1, &w2] {
        assert!(
            matches!(d.ws.get_contact(victim.id), Err(Error::NotFound { .. })),
            "{}",
            d.name
        );
        assert!(d.ws.get_contact(keep.id).is_ok());
        assert_eq!(d.ws.pending_changes().unwrap(), 0);
    }
    let conn = rusqlite::Connection::open(relay.db_path()).unwrap();
    let left: Vec<i64> = conn
        .prepare("SELECT kind FROM log WHERE doc = ?1")
        .unwrap()
        .query_map([victim.id.as_bytes().as_slice()], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(left, vec![3], "only the tombstone is left on the relay");
    drop(conn);
    let mut scanned = 0;
    for (path, bytes) in files_of(dir.path()).into_iter().chain(relay.files()) {
        scanned += 1;
        assert!(
            !contains(&bytes, b"ERASEMARKER"),
            "a marker in {}",
            path.display()
        );
        for frag in &fragments {
            assert!(
                !contains(&bytes, frag),
                "ciphertext of the erased record in {}",
                path.display()
            );
        }
    }
    assert!(scanned >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_who_changed_what_from_which_device() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let lead = lead(dir.path(), &relay.url()).await;
    let w = invited(dir.path(), &relay.url(), &lead, "Sam").await;
    lead.sync.sync_once(None).await.unwrap();
    let c = w.contact(1, "Anfang");
    w.ws.submit_contact(c.id).unwrap();
    w.sync.sync_once(None).await.unwrap();
    lead.sync.sync_once(None).await.unwrap();
    let mut f = lead.ws.get_contact(c.id).unwrap().fields;
    f.note.push_str(" (ergänzt)");
    lead.ws.update_contact(c.id, f).unwrap();
    lead.ws.approve_contact(c.id).unwrap();
    lead.sync.sync_once(None).await.unwrap();
    w.sync.sync_once(None).await.unwrap();
    for d in [&lead, &w] {
        let h = d.ws.history(c.id).unwrap();
        let who: Vec<(Option<String>, String, Vec<String>)> = h
            .iter()
            .map(|e| (e.member.clone(), e.message.clone(), e.fields.clone()))
            .collect();
        assert_eq!(h.len(), 4, "{who:?}");
        assert_eq!(h[0].device, Some(w.ws.device_id()));
        assert_eq!(h[0].member.as_deref(), Some("Sam"));
        assert_eq!(h[0].message, "create");
        assert!(h[0].fields.contains(&"note".to_string()));
        assert_eq!(
            (h[1].message.as_str(), h[1].fields.clone()),
            ("submit for review", vec!["review".to_string()])
        );
        assert_eq!(h[2].device, Some(lead.ws.device_id()));
        assert_eq!(h[2].member.as_deref(), Some("Lea"));
        assert_eq!(h[2].fields, vec!["note".to_string()]);
        assert_eq!(
            (h[3].message.as_str(), h[3].fields.clone()),
            ("approve", vec!["review".to_string()])
        );
    }
}
