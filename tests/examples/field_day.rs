//! A field day, end to end: a lead founds a team, a worker's phone joins, the worker logs 200
//! realistic contacts offline, filters and searches them, then everything syncs through a real relay
//! (on 127.0.0.1) to the lead's device, where the lead asks a question that travels back.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, NaiveTime};
use clap::Parser as _;
use streetsync_core::*;

const PLACES: &[&str] = &[
    "Hauptbahnhof Nordausgang",
    "Spielplatz Lindenallee",
    "Brunnen am Marktplatz",
    "Skatepark Südstadt",
    "Anlaufstelle Café Auszeit",
];
const NOTES: &[&str] = &[
    "Gespräch über Wohnungssuche, Termin beim Jobcenter verpasst.",
    "Sucht einen Schlafplatz für heute Nacht, Notunterkunft erklärt.",
    "Möchte zur Suchtberatung, wir begleiten am Donnerstag.",
    "Schulden beim Handyvertrag, Schuldnerberatung empfohlen.",
    "Streit mit der Mutter, Familienberatung angesprochen.",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let relay_dir = dir.path().join("relay");
    let config = streetsync_relay::config::Config::parse_from([
        "streetsync-relay",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        relay_dir.to_str().unwrap(),
    ]);
    tokio::spawn(streetsync_relay::run(config));
    let url = format!("http://127.0.0.1:{port}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let key = || KeySource::Key(StorageKey::generate().unwrap());
    let lead = Arc::new(Workspace::open(dir.path().join("lead.db"), key())?);
    let team = lead.create_team(TeamSetup {
        team_name: "Streetwork Mitte".into(),
        member_name: "Lea (Leitung)".into(),
        areas: vec!["Hauptbahnhof".into(), "Stadtpark".into(), "Südstadt".into()],
        topics: vec![],
        materials: vec![],
    })?;
    println!(
        "team '{}' founded: {} areas, {} topics, {} materials",
        team.name,
        team.areas.len(),
        team.topics.len(),
        team.materials.len()
    );
    let lead_sync = SyncClient::new(lead.clone(), &url)?;
    lead_sync.sync_once(None).await?;

    let worker = Arc::new(Workspace::open(dir.path().join("worker.db"), key())?);
    let worker_sync = SyncClient::new(worker.clone(), &url)?;
    let invite = lead_sync.create_invite("Sam", Role::Worker, 3600).await?;
    println!("invite for Sam: {} (hand it over in person)", invite.code);
    worker_sync.join_with_invite(&invite.code).await?;
    lead_sync.sync_once(None).await?; // the lead puts Sam's phone on the roster
    println!("worker device {} joined", worker.device_id());

    // Offline: 200 contacts, each durable when the call returns.
    let started = Instant::now();
    for i in 0..200u32 {
        let mut d = ContactDraft::new(
            NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() + chrono::Days::new((i / 3) as u64),
            NaiveTime::from_hms_opt(10 + i % 10, 15, 0).unwrap(),
            ["hauptbahnhof", "stadtpark", "suedstadt"][i as usize % 3],
        );
        d.place = PLACES[i as usize % PLACES.len()].into();
        d.persons = 1 + (i % 3) as i64;
        d.age_band = AgeBand::ALL[i as usize % AgeBand::ALL.len()];
        d.topics = vec![
            [
                "wohnen",
                "sucht",
                "arbeit-jobcenter",
                "geld-schulden",
                "familie",
            ][i as usize % 5]
                .into(),
        ];
        d.materials = vec![MaterialCount {
            material_id: "essen".into(),
            count: (i % 4) as i64,
        }];
        d.safeguarding = i % 67 == 0;
        d.note = NOTES[i as usize % NOTES.len()].into();
        worker.create_contact(d)?;
    }
    println!(
        "200 contacts logged offline in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let housing = worker.list_contacts(&ContactFilter {
        topic_id: Some("wohnen".into()),
        from: NaiveDate::from_ymd_opt(2026, 9, 1),
        to: NaiveDate::from_ymd_opt(2026, 9, 30),
        ..Default::default()
    })?;
    println!("housing contacts in September: {}", housing.total);
    let search = worker.list_contacts(&ContactFilter {
        text: Some("schlafplatz".into()),
        limit: 3,
        ..Default::default()
    })?;
    println!("full-text 'schlafplatz': {} hits, newest:", search.total);
    for s in &search.items {
        println!(
            "  {} {} {:<28} {}",
            s.date,
            s.start_time.format("%H:%M"),
            s.place,
            s.note
        );
    }

    let report = worker_sync.sync_once(None).await?;
    println!("worker synced: pushed {} changes", report.pushed);
    let report = lead_sync.sync_once(None).await?;
    println!(
        "lead synced: pulled {}, applied {}",
        report.pulled, report.applied
    );

    let queue = lead.list_contacts(&ContactFilter {
        safeguarding_first: true,
        limit: 1,
        ..Default::default()
    })?;
    let flagged = &queue.items[0];
    println!(
        "lead's review queue starts with a child-protection concern: {} at {}",
        flagged.date, flagged.place
    );
    lead.request_changes(flagged.id, "Wurde das Jugendamt informiert?")?;
    lead_sync.sync_once(None).await?;
    worker_sync.sync_once(None).await?;
    let inbox = worker.list_contacts(&ContactFilter {
        review: Some(ReviewState::ChangesRequested),
        author: Some(worker.device_id().to_string()),
        ..Default::default()
    })?;
    let asked = worker.get_contact(inbox.items[0].id)?;
    println!(
        "worker's inbox: {} question(s): \"{}\"",
        inbox.total, asked.comments[0].text
    );
    worker.answer_contact(asked.id, "Ja, heute Vormittag telefonisch.")?;
    worker_sync.sync_once(None).await?;
    lead_sync.sync_once(None).await?;
    lead.approve_contact(asked.id)?;
    println!(
        "lead sees the answer \"{}\" and approves",
        lead.get_contact(asked.id)?.comments[1].text
    );

    let relay_bytes: u64 = std::fs::read_dir(&relay_dir)?
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "relay holds {relay_bytes} bytes, all of them sealed; both devices hold {} contacts",
        lead.list_contacts(&ContactFilter::default())?.total
    );
    Ok(())
}
