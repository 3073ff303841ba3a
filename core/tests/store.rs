//! The encrypted store on real SQLite files: records, filters, validation, keys, damage,
//! migrations and threads.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use common::*;
use rusqlite::Connection;
use streetsync_core::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}
fn t(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

#[test]
fn contact_round_trip_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let partner = ws
        .add_partner(PartnerDraft {
            name: "Suchthilfe Mitte".into(),
            offers: vec!["Substitution".into()],
            contact_person: "Frau Kaya".into(),
            phone: "0221 123".into(),
            address: "Lindenstraße 4".into(),
            notes: "Mo-Fr 9-15 Uhr".into(),
        })
        .unwrap();
    let mut draft = ContactDraft::new(d(2026, 11, 2), t(14, 30), "hauptbahnhof");
    draft.end_time = Some(t(15, 0));
    draft.place = "Nordausgang".into();
    draft.location = Some(CoarseLocation::new(50.94321, 6.95876).unwrap());
    draft.setting = Setting::Street;
    draft.persons = 2;
    draft.topics = vec!["wohnen".into(), "sucht".into(), "wohnen".into()];
    draft.materials = vec![MaterialCount {
        material_id: "naloxon".into(),
        count: 2,
    }];
    draft.client_code = Some("MA-1987-K".into());
    draft.referrals = vec![Referral {
        id: "r1".into(),
        partner_id: partner.id.clone(),
        reason: "Substitution".into(),
        consent: Some(Consent {
            scope: "Name, Substitutionswunsch".into(),
            recipient: "Suchthilfe Mitte".into(),
            purpose: "Terminvereinbarung".into(),
            given_on: d(2026, 11, 2),
            revoked_on: None,
        }),
        outcome: ReferralOutcome::Open,
    }];
    draft.safeguarding = true;
    draft.note = "Kälte, sucht Schlafplatz.".into();
    let c = ws.create_contact(draft.clone()).unwrap();
    assert_eq!(
        c.fields.topics,
        vec!["wohnen", "sucht"],
        "duplicate topics fold"
    );
    assert_eq!(c.fields.location.unwrap().lat, 50.94);
    let got = ws.get_contact(c.id).unwrap();
    assert_eq!(got, c);
    assert_eq!(got.review, ReviewState::Draft);
    assert_eq!(got.author, ws.device_id().to_string());

    let mut edit = got.fields.clone();
    edit.note.push_str(" Termin Dienstag.");
    edit.materials[0].count = 5;
    let updated = ws.update_contact(c.id, edit).unwrap();
    assert_eq!(
        updated.fields.note,
        "Kälte, sucht Schlafplatz. Termin Dienstag."
    );
    assert_eq!(updated.fields.materials[0].count, 5);
    assert!(updated.updated_at >= c.updated_at);

    // Reopen: everything is on disk.
    drop(ws);
    let ws = Workspace::open(dir.path().join("lead.db"), key(1)).unwrap();
    assert_eq!(
        ws.get_contact(c.id).unwrap().fields.note,
        updated.fields.note
    );
    assert_eq!(
        ws.list_contacts(&ContactFilter::default()).unwrap().total,
        1
    );

    ws.delete_contact(c.id).unwrap();
    assert!(matches!(ws.get_contact(c.id), Err(Error::NotFound { .. })));
    assert_eq!(
        ws.list_contacts(&ContactFilter::default()).unwrap().total,
        0
    );
    assert!(matches!(
        ws.delete_contact(c.id),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn every_filter_narrows_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let mut rng = Rng(7);
    let mut all = Vec::new();
    for i in 0..60 {
        all.push(ws.create_contact(draft(&mut rng, i * 3)).unwrap());
    }
    let mut special = ContactDraft::new(d(2025, 3, 1), t(10, 0), "stadtpark");
    special.topics = vec!["schule".into()];
    special.client_code = Some("ZZ-2001".into());
    special.safeguarding = true;
    special.note = "Sorge um das Kind, Straßenfest erwähnt".into();
    let sp = ws.create_contact(special).unwrap();
    ws.submit_contact(sp.id).unwrap();
    all.push(ws.get_contact(sp.id).unwrap());

    let count = |f: ContactFilter| ws.list_contacts(&f).unwrap().total;
    let expect = |p: &dyn Fn(&Contact) -> bool| all.iter().filter(|c| p(c)).count();

    let (from, to) = (d(2025, 2, 1), d(2025, 4, 30));
    assert_eq!(
        count(ContactFilter {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        }),
        expect(&|c| c.fields.date >= from && c.fields.date <= to)
    );
    assert_eq!(
        count(ContactFilter {
            area_id: Some("stadtpark".into()),
            ..Default::default()
        }),
        expect(&|c| c.fields.area_id == "stadtpark")
    );
    assert_eq!(
        count(ContactFilter {
            topic_id: Some("schule".into()),
            ..Default::default()
        }),
        expect(&|c| c.fields.topics.contains(&"schule".to_string()))
    );
    assert_eq!(
        count(ContactFilter {
            author: Some(ws.device_id().to_string()),
            ..Default::default()
        }),
        all.len()
    );
    assert_eq!(
        count(ContactFilter {
            author: Some("someone-else".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(ContactFilter {
            review: Some(ReviewState::Submitted),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(ContactFilter {
            client_code: Some("zz-2001".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(ContactFilter {
            safeguarding: Some(true),
            ..Default::default()
        }),
        expect(&|c| c.fields.safeguarding)
    );
    // Full text: all words, any case, ß folded.
    let page = ws
        .list_contacts(&ContactFilter {
            text: Some("KIND strassenfest".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].id, sp.id);
    assert_eq!(
        count(ContactFilter {
            text: Some("Jobcenter".into()),
            ..Default::default()
        }),
        expect(&|c| c.fields.note.to_lowercase().contains("jobcenter")
            || c.fields.place.to_lowercase().contains("jobcenter"))
    );
    // Paging, newest first; safeguarding first when asked.
    let p1 = ws
        .list_contacts(&ContactFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let p2 = ws
        .list_contacts(&ContactFilter {
            limit: 10,
            offset: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p1.items.len(), 10);
    assert!(
        p1.items
            .windows(2)
            .all(|w| (w[0].date, w[0].start_time) >= (w[1].date, w[1].start_time))
    );
    assert!(p1.items.last().unwrap().date >= p2.items[0].date);
    let q = ws
        .list_contacts(&ContactFilter {
            safeguarding_first: true,
            ..Default::default()
        })
        .unwrap();
    assert!(q.items[0].safeguarding);
    // A bad filter is a typed error.
    assert!(matches!(
        ws.list_contacts(&ContactFilter { from: Some(to), to: Some(from), ..Default::default() }),
        Err(Error::Invalid(e)) if e.field == "to"
    ));
}

#[test]
fn invalid_input_is_refused_with_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let ok = ContactDraft::new(d(2026, 1, 5), t(10, 0), "hauptbahnhof");
    let c = ws.create_contact(ok.clone()).unwrap();
    let outbox_before = ws.pending_changes().unwrap();

    type Mutation = Box<dyn Fn(&mut ContactDraft)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "materials[kondome].count",
            Box::new(|d| {
                d.materials = vec![MaterialCount {
                    material_id: "kondome".into(),
                    count: -3,
                }]
            }),
        ),
        ("persons", Box::new(|d| d.persons = -1)),
        ("persons", Box::new(|d| d.persons = 0)),
        ("end_time", Box::new(|d| d.end_time = Some(t(9, 0)))),
        ("area_id", Box::new(|d| d.area_id = "mond".into())),
        ("topics", Box::new(|d| d.topics = vec!["astrologie".into()])),
        (
            "materials",
            Box::new(|d| {
                d.materials = vec![MaterialCount {
                    material_id: "gold".into(),
                    count: 1,
                }]
            }),
        ),
        (
            "note",
            Box::new(|d| d.note = "x".repeat(MAX_NOTE_CHARS + 1)),
        ),
        (
            "client_code",
            Box::new(|d| d.client_code = Some("Max Mustermann".into())),
        ),
        (
            "referrals[0].partner_id",
            Box::new(|d| {
                d.referrals = vec![Referral {
                    id: "r".into(),
                    partner_id: "nope".into(),
                    reason: String::new(),
                    consent: None,
                    outcome: ReferralOutcome::Open,
                }]
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut bad = ok.clone();
        mutate(&mut bad);
        match ws.create_contact(bad.clone()) {
            Err(Error::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
        match ws.update_contact(c.id, bad) {
            Err(Error::Invalid(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: expected Invalid on update, got {other:?}"),
        }
    }
    let note_err = {
        let mut bad = ok.clone();
        bad.note = "x".repeat(MAX_NOTE_CHARS + 1);
        ws.create_contact(bad).unwrap_err().to_string()
    };
    assert!(
        note_err.contains("10000"),
        "the message names the limit: {note_err}"
    );
    // Nothing half-written.
    assert_eq!(
        ws.list_contacts(&ContactFilter::default()).unwrap().total,
        1
    );
    assert_eq!(ws.get_contact(c.id).unwrap(), c);
    assert_eq!(ws.pending_changes().unwrap(), outbox_before);
}

#[test]
fn referral_needs_consent_unless_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let p = ws
        .add_partner(PartnerDraft {
            name: "Jobcenter Mitte".into(),
            ..Default::default()
        })
        .unwrap();
    let mut dr = ContactDraft::new(d(2026, 1, 5), t(10, 0), "hauptbahnhof");
    dr.referrals = vec![Referral {
        id: "r".into(),
        partner_id: p.id.clone(),
        reason: "ALG II".into(),
        consent: None,
        outcome: ReferralOutcome::Open,
    }];
    ws.create_contact(dr.clone()).expect("anonymous referral");
    dr.client_code = Some("KE-1999".into());
    let e = ws.create_contact(dr).unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(v) if v.field == "referrals[0].consent"),
        "{e}"
    );
}

#[test]
fn wrong_key_is_told_apart_from_damage_and_damage_stays_local() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lead.db");
    let ws = lead_store(dir.path());
    let mut rng = Rng(3);
    let a = ws.create_contact(draft(&mut rng, 1)).unwrap();
    let b = ws.create_contact(draft(&mut rng, 2)).unwrap();
    drop(ws);

    assert!(matches!(
        Workspace::open(&path, key(2)),
        Err(Error::WrongKey)
    ));
    assert!(matches!(
        Workspace::open(&path, KeySource::passphrase("not the key at all")),
        Err(Error::WrongKey)
    ));

    // Flip one byte in contact a's document and in its projection.
    let conn = Connection::open(&path).unwrap();
    for table in ["documents", "projections"] {
        let mut blob: Vec<u8> = conn
            .query_row(
                &format!("SELECT body FROM {table} WHERE id = ?1"),
                [a.id.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap();
        let mid = blob.len() / 2;
        blob[mid] ^= 0x01;
        conn.execute(
            &format!("UPDATE {table} SET body = ?1 WHERE id = ?2"),
            rusqlite::params![blob, a.id.as_bytes().as_slice()],
        )
        .unwrap();
    }
    drop(conn);
    let ws = Workspace::open(&path, key(1)).unwrap();
    assert!(matches!(ws.get_contact(a.id), Err(Error::Corrupt { .. })));
    assert_eq!(ws.damaged_records().unwrap(), vec![a.id]);
    // The rest works: read, list, write.
    assert_eq!(ws.get_contact(b.id).unwrap(), b);
    let page = ws.list_contacts(&ContactFilter::default()).unwrap();
    assert_eq!(
        page.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    ws.create_contact(draft(&mut rng, 3)).unwrap();
    drop(ws);

    // Damage to the canary itself is Corrupt, not WrongKey.
    let conn = Connection::open(&path).unwrap();
    let mut canary: Vec<u8> = conn
        .query_row("SELECT value FROM meta WHERE key = 'canary'", [], |r| {
            r.get(0)
        })
        .unwrap();
    canary[5] ^= 0x80;
    conn.execute("UPDATE meta SET value = ?1 WHERE key = 'canary'", [canary])
        .unwrap();
    drop(conn);
    assert!(matches!(
        Workspace::open(&path, key(1)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn passphrase_store_reopens_and_refuses_other_passphrases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let pass = |p: &str| KeySource::Passphrase {
        passphrase: zeroize::Zeroizing::new(p.into()),
        iterations: 10_000,
    };
    let ws = Workspace::open(&path, pass("Winter im Stadtpark")).unwrap();
    ws.create_team(setup()).unwrap();
    drop(ws);
    assert!(Workspace::open(&path, pass("Winter im Stadtpark")).is_ok());
    assert!(matches!(
        Workspace::open(&path, pass("Sommer im Stadtpark")),
        Err(Error::WrongKey)
    ));
    assert!(matches!(
        Workspace::open(dir.path().join("q.db"), pass("kurz")),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn plaintext_never_reaches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let mut dr = ContactDraft::new(d(2026, 1, 5), t(10, 0), "hauptbahnhof");
    dr.note = "MARKER-NOTE-4711 vertraulich".into();
    dr.place = "MARKER-PLACE-4711".into();
    dr.client_code = Some("MARKER-CODE-4711".into());
    ws.create_contact(dr).unwrap();
    ws.create_client(ClientDraft::new("MARKER-CLIENT-4711"))
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for m in [
            "MARKER-NOTE",
            "MARKER-PLACE",
            "MARKER-CODE",
            "MARKER-CLIENT",
            "Hauptbahnhof",
            "Streetwork Mitte",
        ] {
            assert!(
                !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                "{m} found in plaintext"
            );
        }
    }
}

fn schema_of(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_migrated_store_equals_a_fresh_one_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    let ws = streetsync_core::testing::open_at_schema_version(&old, key(1), 1).unwrap();
    ws.create_team(setup()).unwrap();
    let mut rng = Rng(11);
    let c = ws.create_contact(draft(&mut rng, 5)).unwrap();
    drop(ws);
    let v: u32 = Connection::open(&old)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 1);

    let ws = Workspace::open(&old, key(1)).unwrap();
    assert_eq!(ws.get_contact(c.id).unwrap(), c);
    drop(ws);
    let fresh = dir.path().join("fresh.db");
    drop(Workspace::open(&fresh, key(1)).unwrap());
    assert_eq!(schema_of(&old), schema_of(&fresh));
    let version = |p: &std::path::Path| -> u32 {
        Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&old), SCHEMA_VERSION);
    assert_eq!(version(&fresh), SCHEMA_VERSION);

    // A store from a newer app is refused, not guessed at.
    Connection::open(&fresh)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    assert!(matches!(
        Workspace::open(&fresh, key(1)),
        Err(Error::SchemaTooNew { .. })
    ));
}

#[test]
/// `synchronous` is a per-connection setting, so a second connection cannot see the store's; that
/// commits are durable is shown by the power-cut tests (`tests/tests/crash.rs::a_power_cut_*`), which
/// fail with `synchronous=OFF`.
fn wal_mode_is_on_and_the_file_is_sound() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    drop(ws);
    let conn = Connection::open(dir.path().join("lead.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn threads_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(lead_store(dir.path()));
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let ws = ws.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(100 + n);
                let mut ids = Vec::new();
                for i in 0..25 {
                    let c = ws.create_contact(draft(&mut rng, i)).unwrap();
                    ids.push(c.id);
                    ws.list_contacts(&ContactFilter {
                        text: Some("termin".into()),
                        ..Default::default()
                    })
                    .unwrap();
                }
                ids
            })
        })
        .collect();
    let ids: Vec<RecordId> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 100);
    assert_eq!(
        ws.list_contacts(&ContactFilter::default()).unwrap().total,
        100
    );
    for id in ids {
        ws.get_contact(id).unwrap();
    }
}

#[test]
fn a_second_connection_sees_changes_made_by_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let a = lead_store(dir.path());
    let b = Workspace::open(dir.path().join("lead.db"), key(1)).unwrap();
    assert_eq!(b.list_contacts(&ContactFilter::default()).unwrap().total, 0);
    let mut rng = Rng(5);
    a.create_contact(draft(&mut rng, 1)).unwrap();
    assert_eq!(
        b.list_contacts(&ContactFilter::default()).unwrap().total,
        1,
        "cache reloads on data_version change"
    );
}

#[test]
fn clients_catalogs_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let mut cd = ClientDraft::new("MA-1987-K");
    cd.alias = Some("Micha".into());
    cd.notes = "kommt oft dienstags".into();
    let c = ws.create_client(cd.clone()).unwrap();
    assert!(
        matches!(ws.create_client(ClientDraft::new("ma-1987-k")), Err(Error::Invalid(e)) if e.field == "code")
    );
    cd.notes.push_str(", hat jetzt einen Hund");
    let u = ws.update_client(c.id, cd).unwrap();
    assert_eq!(ws.get_client(c.id).unwrap(), u);
    assert_eq!(
        ws.list_clients(&ClientFilter {
            text: Some("mich".into())
        })
        .unwrap()
        .len(),
        1
    );
    ws.delete_client(c.id).unwrap();
    assert!(
        ws.list_clients(&ClientFilter::default())
            .unwrap()
            .is_empty()
    );

    let e = ws.add_catalog_entry(Catalog::Area, "Neumarkt").unwrap();
    assert_eq!(e.id, "neumarkt");
    ws.create_contact(ContactDraft::new(d(2026, 2, 1), t(9, 0), "neumarkt"))
        .unwrap();
    ws.retire_catalog_entry(Catalog::Area, "neumarkt").unwrap();
    let err = ws
        .create_contact(ContactDraft::new(d(2026, 2, 1), t(9, 0), "neumarkt"))
        .unwrap_err();
    assert!(err.to_string().contains("retired"), "{err}");
    assert!(matches!(
        ws.add_catalog_entry(Catalog::Area, "neumarkt"),
        Err(Error::Invalid(_))
    ));

    let p = ws
        .add_partner(PartnerDraft {
            name: "Erziehungsberatung Süd".into(),
            notes: "Termine".into(),
            ..Default::default()
        })
        .unwrap();
    let mut pd = PartnerDraft {
        name: p.name.clone(),
        notes: "Termine dienstags".into(),
        ..Default::default()
    };
    pd.phone = "0221 555".into();
    ws.update_partner(&p.id, pd).unwrap();
    assert_eq!(ws.partners().unwrap()[0].notes, "Termine dienstags");
    assert!(
        matches!(ws.add_partner(PartnerDraft::default()), Err(Error::Invalid(e)) if e.field == "name")
    );
}

#[test]
fn review_thread_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let c = ws
        .create_contact(ContactDraft::new(d(2026, 2, 1), t(9, 0), "stadtpark"))
        .unwrap();
    assert_eq!(
        ws.submit_contact(c.id).unwrap().review,
        ReviewState::Submitted
    );
    let asked = ws.request_changes(c.id, "Wer war noch dabei?").unwrap();
    assert_eq!(asked.review, ReviewState::ChangesRequested);
    assert!(asked.open_question());
    let answered = ws.answer_contact(c.id, "Zwei Freunde von ihm.").unwrap();
    assert_eq!(answered.review, ReviewState::Submitted);
    assert_eq!(answered.comments.len(), 2);
    assert_eq!(
        ws.approve_contact(c.id).unwrap().review,
        ReviewState::Approved
    );
    assert!(matches!(
        ws.comment_contact(c.id, "  "),
        Err(Error::Invalid(_))
    ));
    assert_eq!(ws.my_role().unwrap(), Role::Lead);
}

#[test]
fn unknown_fields_from_a_newer_version_survive_edits() {
    use automerge::transaction::Transactable;
    let dir = tempfile::tempdir().unwrap();
    let a = lead_store(dir.path());
    let c = a
        .create_contact(ContactDraft::new(d(2026, 2, 1), t(9, 0), "stadtpark"))
        .unwrap();
    // A newer app adds a field this version does not know.
    let mut doc = automerge::AutoCommit::load(&a.export_document(c.id).unwrap()).unwrap();
    doc.put(automerge::ROOT, "future_field", "from v2").unwrap();
    a.apply_remote(c.id, &doc.save()).unwrap();
    let mut f = a.get_contact(c.id).unwrap().fields;
    f.note = "edited by v1".into();
    a.update_contact(c.id, f).unwrap();
    let doc = automerge::AutoCommit::load(&a.export_document(c.id).unwrap()).unwrap();
    use automerge::ReadDoc;
    let v = doc
        .get(automerge::ROOT, "future_field")
        .unwrap()
        .unwrap()
        .0
        .to_string();
    assert!(v.contains("from v2"), "{v}");
}

#[test]
fn no_team_and_already_in_team_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("x.db"), key(1)).unwrap();
    assert!(matches!(
        ws.create_contact(ContactDraft::new(d(2026, 1, 1), t(9, 0), "x")),
        Err(Error::NoTeam)
    ));
    ws.create_team(setup()).unwrap();
    assert!(matches!(ws.create_team(setup()), Err(Error::AlreadyInTeam)));
    assert!(matches!(
        ws.create_team(TeamSetup {
            areas: vec![],
            ..setup()
        }),
        Err(Error::AlreadyInTeam) | Err(Error::Invalid(_))
    ));
}

#[test]
fn changing_the_storage_key_reseals_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lead.db");
    let ws = lead_store(dir.path());
    let mut rng = Rng(9);
    let c = ws.create_contact(draft(&mut rng, 1)).unwrap();
    let client = ws.create_client(ClientDraft::new("KE-1999")).unwrap();
    let old_blob: Vec<u8> = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT body FROM documents WHERE id = ?1",
            [c.id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    ws.change_storage_key(KeySource::Passphrase {
        passphrase: zeroize::Zeroizing::new("neues Passwort 2026".into()),
        iterations: 10_000,
    })
    .unwrap();
    // The open workspace keeps working under the new key.
    assert_eq!(ws.get_contact(c.id).unwrap(), c);
    ws.create_contact(draft(&mut rng, 2)).unwrap();
    assert_eq!(
        ws.pending_changes().unwrap(),
        4,
        "team, contact, client, contact"
    );
    drop(ws);
    assert!(matches!(
        Workspace::open(&path, key(1)),
        Err(Error::WrongKey)
    ));
    let ws = Workspace::open(
        &path,
        KeySource::Passphrase {
            passphrase: zeroize::Zeroizing::new("neues Passwort 2026".into()),
            iterations: 10_000,
        },
    )
    .unwrap();
    assert_eq!(ws.get_contact(c.id).unwrap(), c);
    assert_eq!(ws.get_client(client.id).unwrap(), client);
    assert_eq!(
        ws.list_contacts(&ContactFilter::default()).unwrap().total,
        2
    );
    assert_eq!(ws.pending_outbox(10).unwrap().len(), 4);
    // Nothing sealed under the old key is left in the file or its WAL.
    let frag = &old_blob[old_blob.len() / 2..old_blob.len() / 2 + 24];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(frag.len()).any(|w| w == frag),
            "old ciphertext survived the re-key"
        );
    }
    // And back to a host key.
    ws.change_storage_key(key(7)).unwrap();
    drop(ws);
    assert!(Workspace::open(&path, key(7)).is_ok());
}

/// Migration 0006 rebuilds the outbox without AUTOINCREMENT, the `outbox_unsent` index and the
/// unique index on envelope ids: every pending row (unsent, and pushed but not yet echoed) survives with its number,
/// state and sealed body, and later saves are numbered after them.
#[test]
fn migration_0006_keeps_every_pending_outbox_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let ws = streetsync_core::testing::open_at_schema_version(&path, key(1), 4).unwrap();
    ws.create_team(setup()).unwrap();
    let mut rng = Rng(18);
    for day in 0..3 {
        ws.create_contact(draft(&mut rng, day)).unwrap();
    }
    drop(ws);
    type Row = (i64, Vec<u8>, Vec<u8>, i64, Vec<u8>, i64, Option<i64>);
    let rows = |p: &std::path::Path| -> Vec<Row> {
        let conn = Connection::open(p).unwrap();
        let mut stmt = conn
            .prepare("SELECT seq, envelope_id, doc_id, kind, body, tombstone, acked_seq FROM outbox ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    };
    {
        // One entry pushed and awaiting its echo, one tombstone, the rest unsent.
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE outbox SET acked_seq = 41 WHERE seq = (SELECT min(seq) FROM outbox)",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE outbox SET tombstone = 1 WHERE seq = (SELECT max(seq) FROM outbox)",
            [],
        )
        .unwrap();
    }
    let before = rows(&path);
    assert!(before.len() >= 4, "team and three contacts queued");
    assert!(before.iter().any(|r| r.6 == Some(41)));
    assert!(before.iter().any(|r| r.5 == 1));

    let ws = Workspace::open(&path, key(1)).unwrap();
    assert_eq!(rows(&path), before);
    let schema = schema_of(&path);
    let outbox_sql = &schema.iter().find(|(n, _)| n == "outbox").unwrap().1;
    assert!(!outbox_sql.contains("AUTOINCREMENT"), "{outbox_sql}");
    assert!(!schema.iter().any(|(n, _)| n == "outbox_unsent"));
    assert!(!outbox_sql.contains("UNIQUE"), "{outbox_sql}");
    assert!(schema.iter().any(|(n, _)| n == "outbox_doc"));

    // A later save is numbered after every migrated row.
    ws.create_contact(draft(&mut rng, 4)).unwrap();
    drop(ws);
    let after = rows(&path);
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(after.len(), before.len() + 1);
    assert!(after[before.len()].0 > before.last().unwrap().0);
}

/// Migration 0007 re-encodes the documents and contact projections of an existing store in
/// place: the same contacts, summaries, search hits and outbox changes come back, documents,
/// projections and the file shrink, a projection that does not open is rebuilt from its
/// document, and a second open rewrites nothing.
#[test]
fn migration_0007_compacts_documents_and_projections_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    let ws = streetsync_core::testing::open_at_schema_version(&path, key(1), 6).unwrap();
    ws.create_team(setup()).unwrap();
    let mut rng = Rng(7007);
    let mut ids = Vec::new();
    for day in 0..60 {
        ids.push(ws.create_contact(draft(&mut rng, day)).unwrap().id);
    }
    // An edit, so one outbox entry holds changes of its own rather than pointing at a document.
    let mut edit = draft(&mut rng, 61);
    edit.note = "Termin beim Jobcenter verschoben".into();
    ws.update_contact(ids[3], edit).unwrap();
    let sorted = |mut v: Vec<ContactSummary>| {
        v.sort_by_key(|s| s.id);
        v
    };
    let search = |ws: &Workspace| -> Vec<RecordId> {
        let mut hits: Vec<RecordId> = ws
            .list_contacts(&ContactFilter {
                text: Some("notunterkunft".into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.id)
            .collect();
        hits.sort();
        hits
    };
    let contacts = |ws: &Workspace| -> Vec<Contact> {
        ids.iter().map(|id| ws.get_contact(*id).unwrap()).collect()
    };
    let outbox = |ws: &Workspace| -> Vec<(RecordId, Vec<u8>)> {
        ws.pending_outbox(1_000)
            .unwrap()
            .into_iter()
            .map(|e| (e.doc_id, e.changes.to_vec()))
            .collect()
    };
    let before = sorted(ws.contact_summaries().unwrap());
    let hits = search(&ws);
    let full = contacts(&ws);
    let queued = outbox(&ws);
    assert_eq!(before.len(), 60);
    assert!(!hits.is_empty() && hits.len() < 60, "{} hits", hits.len());
    assert!(queued.len() > 60, "team, 60 creates and an edit queued");
    drop(ws);

    let bodies = |p: &std::path::Path, table: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
        let conn = Connection::open(p).unwrap();
        let mut stmt = conn
            .prepare(&format!("SELECT id, body FROM {table} ORDER BY id"))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let total = |b: &[(Vec<u8>, Vec<u8>)]| -> usize { b.iter().map(|r| r.1.len()).sum() };
    let file_bytes = |p: &std::path::Path| -> i64 {
        let conn = Connection::open(p).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap()
            * conn
                .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                .unwrap()
    };
    // One projection that no longer opens: it must come back from its document.
    let damaged = ids[17];
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE projections SET body = x'00010203' WHERE id = ?1",
            [damaged.as_bytes().as_slice()],
        )
        .unwrap();
    let old_projections = bodies(&path, "projections");
    let old_documents = bodies(&path, "documents");
    let old_file = file_bytes(&path);

    let ws = Workspace::open(&path, key(1)).unwrap();
    assert_eq!(sorted(ws.contact_summaries().unwrap()), before);
    assert_eq!(search(&ws), hits);
    assert_eq!(contacts(&ws), full);
    assert_eq!(
        outbox(&ws),
        queued,
        "what is pushed is byte for byte what was queued"
    );
    drop(ws);
    let new_projections = bodies(&path, "projections");
    let new_documents = bodies(&path, "documents");
    assert_eq!(new_projections.len(), old_projections.len());
    assert_eq!(new_documents.len(), old_documents.len());
    let (p0, p1) = (total(&old_projections), total(&new_projections));
    assert!(p1 * 10 < p0 * 7, "projections {p0} -> {p1} bytes");
    let (d0, d1) = (total(&old_documents), total(&new_documents));
    assert!(d1 * 10 < d0 * 9, "documents {d0} -> {d1} bytes");
    assert!(file_bytes(&path) < old_file, "the file shrank (VACUUM)");
    let conn = Connection::open(&path).unwrap();
    let mark: i64 = conn
        .query_row(
            "SELECT count(*) FROM meta WHERE key = 'compact_records'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mark, 0, "the migration's mark is gone");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(conn);

    // Done once: the next open reseals nothing (a rewrite would draw new nonces).
    let ws = Workspace::open(&path, key(1)).unwrap();
    assert_eq!(contacts(&ws), full);
    drop(ws);
    assert_eq!(bodies(&path, "projections"), new_projections);
    assert_eq!(bodies(&path, "documents"), new_documents);
}

/// A new record's outbox entry points at its stored document instead of holding a second sealed
/// copy (migration 0006). What it sends must stay the change it was when queued: an edit before
/// the push gives the entry its own copy first, and a storage-key change keeps both readable.
#[test]
fn a_new_record_queued_by_reference_sends_what_it_was_when_queued() {
    let dir = tempfile::tempdir().unwrap();
    let ws = lead_store(dir.path());
    let mut rng = Rng(1818);
    let original = draft(&mut rng, 3);
    let c = ws.create_contact(original.clone()).unwrap();
    let queued = |ws: &Workspace| -> Vec<Vec<u8>> {
        ws.pending_outbox(100)
            .unwrap()
            .into_iter()
            .filter(|e| e.doc_id == c.id)
            .map(|e| e.changes.to_vec())
            .collect()
    };
    let first = queued(&ws);
    assert_eq!(first.len(), 1);
    {
        let conn = Connection::open(dir.path().join("lead.db")).unwrap();
        let (body_len, by_ref): (i64, i64) = conn
            .query_row(
                "SELECT length(body), body_is_document FROM outbox WHERE doc_id = ?1",
                [c.id.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((body_len, by_ref), (0, 1), "no second copy of the document");
    }

    let mut edited = original.clone();
    edited.note = "Ganz anderer Text nach dem Gespräch.".into();
    ws.update_contact(c.id, edited).unwrap();
    let after_edit = queued(&ws);
    assert_eq!(after_edit.len(), 2);
    assert_eq!(
        after_edit[0], first[0],
        "the create entry still sends the create"
    );
    assert_ne!(after_edit[1], first[0]);

    // The create, loaded alone, is the contact as first saved.
    use automerge::ReadDoc;
    let doc = automerge::Automerge::load(&first[0]).unwrap();
    let (_, note) = doc.get(automerge::ROOT, "note").unwrap().unwrap();
    assert_eq!(doc.text(&note).unwrap(), original.note);

    ws.change_storage_key(key(2)).unwrap();
    drop(ws);
    let ws = Workspace::open(dir.path().join("lead.db"), key(2)).unwrap();
    assert_eq!(queued(&ws), after_edit);
    let c2 = ws.create_contact(draft(&mut rng, 4)).unwrap();
    ws.change_storage_key(key(3)).unwrap();
    let e = ws
        .pending_outbox(100)
        .unwrap()
        .into_iter()
        .find(|e| e.doc_id == c2.id)
        .unwrap();
    assert!(automerge::Automerge::load(&e.changes).is_ok());
}
