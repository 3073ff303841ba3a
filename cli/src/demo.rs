//! `streetsync demo`: the whole product in one run.
//!
//! A relay starts in this process on 127.0.0.1; a team lead founds a team and invites two
//! workers; each worker logs contacts offline; everyone syncs; the lead and a worker edit one
//! note at the same time and both edits survive; the lead sends a question to a worker's phone and
//! the answer comes back; then the statistics. Everything lives in a temporary folder, or with
//! `--keep DIR` in DIR: then the stores are opened with a passphrase (`STREETSYNC_PASSPHRASE`, or
//! [`DEMO_PASSPHRASE`]) instead of random keys, the relay address is remembered next to each
//! store, and the demo ends with the commands that start the relay again and open the lead's store
//! in `streetsync desk` on this realistic data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime};
use clap::Parser as _;
use streetsync_core::StatsQuery;
use streetsync_core::{AgeBand, Gender, Intervention, ReferralOutcome, ReviewState, Setting};
use streetsync_core::{
    ContactDraft, ContactFilter, KeySource, MaterialCount, PartnerDraft, Role, StorageKey,
    SyncClient, TeamSetup, Workspace,
};

use crate::args::DemoArgs;
use crate::context::{Settings, runtime, settings_path};
use crate::error::{CliError, CliResult};

/// The passphrase of a kept demo's stores when `STREETSYNC_PASSPHRASE` is not set: the data is
/// made up, and the demo prints it next to the command that opens the store.
pub const DEMO_PASSPHRASE: &str = "streetsync demo";

const PLACES: &[(&str, &str)] = &[
    ("hauptbahnhof", "Hauptbahnhof Nordausgang"),
    ("stadtpark", "Spielplatz Lindenallee"),
    ("suedstadt", "Skatepark Südstadt"),
    ("hauptbahnhof", "Bahnhofsmission"),
    ("stadtpark", "Brunnen am Marktplatz"),
];
const NOTES: &[&str] = &[
    "Gespräch über Wohnungssuche, Termin beim Jobcenter verpasst.",
    "Sucht einen Schlafplatz für heute Nacht, Notunterkunft erklärt.",
    "Möchte zur Suchtberatung, wir begleiten am Donnerstag.",
    "Schulden beim Handyvertrag, Schuldnerberatung empfohlen.",
    "Streit mit der Mutter, Familienberatung angesprochen.",
];

fn step(n: u32, title: &str) {
    println!("\n── {n}. {title}");
}

/// Where the demo's files live: a temp dir deleted at the end, or the folder of `--keep`.
enum Folder {
    Temp(tempfile::TempDir),
    Kept {
        dir: std::path::PathBuf,
        passphrase: zeroize::Zeroizing<String>,
        /// Whether the passphrase came from `STREETSYNC_PASSPHRASE` (then it is not printed).
        from_env: bool,
    },
}

impl Folder {
    fn new(args: &DemoArgs) -> CliResult<Self> {
        let Some(dir) = &args.keep else {
            return Ok(Folder::Temp(tempfile::tempdir()?));
        };
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(CliError::invalid(format!(
                "{} is not empty: give a new or empty folder to --keep",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir)?;
        let (passphrase, from_env) = match std::env::var("STREETSYNC_PASSPHRASE") {
            Ok(p) if !p.trim().is_empty() => (zeroize::Zeroizing::new(p), true),
            _ => (zeroize::Zeroizing::new(DEMO_PASSPHRASE.to_owned()), false),
        };
        Ok(Folder::Kept {
            dir: std::path::absolute(dir)?,
            passphrase,
            from_env,
        })
    }

    fn path(&self) -> &std::path::Path {
        match self {
            Folder::Temp(t) => t.path(),
            Folder::Kept { dir, .. } => dir,
        }
    }

    /// A random key for a store that is deleted at the end; the passphrase for a kept one, so the
    /// CLI and the desk can open it again.
    fn key(&self) -> CliResult<KeySource> {
        Ok(match self {
            Folder::Temp(_) => KeySource::Key(StorageKey::generate()?),
            Folder::Kept { passphrase, .. } => KeySource::Passphrase {
                passphrase: passphrase.clone(),
                iterations: crate::context::iterations(),
            },
        })
    }

    /// Remembers the relay next to a kept store, as `--relay` does.
    fn remember_relay(&self, store: &std::path::Path, url: &str) -> CliResult<()> {
        if let Folder::Kept { .. } = self {
            let settings = Settings {
                relay: Some(url.to_owned()),
            };
            std::fs::write(settings_path(store), serde_json::to_vec_pretty(&settings)?)?;
        }
        Ok(())
    }
}

fn free_port() -> CliResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Phone {
    name: &'static str,
    ws: Arc<Workspace>,
    sync: SyncClient,
}

impl Phone {
    fn open(folder: &Folder, name: &'static str, url: &str) -> CliResult<Self> {
        let path = folder.path().join(format!("{name}.db"));
        let ws = Arc::new(Workspace::open(&path, folder.key()?)?);
        folder.remember_relay(&path, url)?;
        Ok(Self {
            name,
            sync: SyncClient::new(ws.clone(), url)?,
            ws,
        })
    }
}

/// Runs the demo. Its output is for people (the in-process relay announces itself on stdout, so
/// there is no JSON form).
pub fn run(args: DemoArgs) -> CliResult<()> {
    let started = Instant::now();
    let folder = Folder::new(&args)?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let rt = runtime()?;
    let relay_dir = folder.path().join("relay");
    let config = streetsync_relay::config::Config::parse_from([
        "streetsync-relay",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        &relay_dir.to_string_lossy(),
        "--shutdown-grace-secs",
        "1",
    ]);
    // The relay prints its address on stdout; the demo says it in its own words instead.
    rt.spawn(async move {
        if let Err(e) = streetsync_relay::run(config).await {
            eprintln!("streetsync demo: the relay stopped: {e}");
        }
    });
    wait_for_port(port)?;
    let say = |s: String| println!("{s}");
    println!("streetsync demo: a team of three, an office and two phones, on this computer.");
    step(1, "A relay starts");
    say(format!(
        "relay on {url}: it stores sealed envelopes only and cannot read a single note"
    ));

    step(2, "The team lead founds a team and invites two workers");
    let lead = Phone::open(&folder, "lea-office", &url)?;
    let team = lead.ws.create_team(TeamSetup {
        team_name: "Streetwork Mitte".into(),
        member_name: "Lea (Leitung)".into(),
        areas: vec!["Hauptbahnhof".into(), "Stadtpark".into(), "Südstadt".into()],
        topics: vec![],
        materials: vec![],
    })?;
    let jobcenter = lead.ws.add_partner(PartnerDraft {
        name: "Jobcenter Mitte".into(),
        offers: vec!["U25-Beratung".into()],
        contact_person: "Herr Yilmaz".into(),
        phone: "030 1234 567".into(),
        address: "Lindenstr. 3".into(),
        notes: "Offene Sprechstunde Di 9-12".into(),
    })?;
    lead.ws.add_partner(PartnerDraft {
        name: "Suchthilfe Blaues Kreuz".into(),
        offers: vec!["Substitution".into(), "Beratung".into()],
        ..Default::default()
    })?;
    rt.block_on(lead.sync.sync_once(None))?;
    say(format!(
        "Lea founded '{}' with {} areas and a partner directory of 2 organisations",
        team.name,
        team.areas.len()
    ));
    let sam = Phone::open(&folder, "sam-phone", &url)?;
    let kim = Phone::open(&folder, "kim-phone", &url)?;
    for w in [&sam, &kim] {
        let invite = rt.block_on(lead.sync.create_invite(w.name, Role::Worker, 3600))?;
        say(format!("invite for {}: {}", w.name, invite.code));
        rt.block_on(w.sync.join_with_invite(&invite.code))?;
    }
    let r = rt.block_on(lead.sync.sync_once(None))?;
    for w in [&sam, &kim] {
        rt.block_on(w.sync.sync_once(None))?;
    }
    say(format!(
        "both phones joined; Lea's next sync confirmed {} device(s) on the roster",
        r.devices_enrolled
    ));

    step(3, "Out on the street, offline: each worker logs contacts");
    let base = NaiveDate::from_ymd_opt(2026, 9, 1).ok_or_else(|| CliError::other("date"))?;
    let mut flagged = None;
    for (wi, w) in [&sam, &kim].into_iter().enumerate() {
        for i in 0..24u32 {
            let k = i as usize + wi * 7;
            let day = base + chrono::Days::new(u64::from(i * 3 + wi as u32));
            let (area, place) = PLACES[k % PLACES.len()];
            let mut d = ContactDraft::new(
                day,
                NaiveTime::from_hms_opt(10 + i % 8, 15, 0).unwrap_or_default(),
                area,
            );
            d.place = place.into();
            d.persons = 1 + (k % 4) as i64;
            d.setting = if k % 5 == 3 {
                Setting::DropIn
            } else {
                Setting::Street
            };
            d.age_band = [
                AgeBand::From14To17,
                AgeBand::From18To20,
                AgeBand::From21To26,
            ][k % 3];
            d.gender = [Gender::Male, Gender::Female, Gender::Mixed][k % 3];
            d.topics = vec![
                [
                    "wohnen",
                    "sucht",
                    "arbeit-jobcenter",
                    "geld-schulden",
                    "familie",
                ][k % 5]
                    .into(),
            ];
            d.interventions = vec![Intervention::Conversation];
            d.materials = vec![MaterialCount {
                material_id: "essen".into(),
                count: (k % 3) as i64,
            }];
            if k.is_multiple_of(6) {
                // A client met twice: counted once per day in the statistics.
                d.client_code = Some("MA-2007-K".into());
                d.persons = 1;
            }
            if k % 9 == 4 {
                d.referrals = vec![streetsync_core::Referral {
                    id: format!("r{i}"),
                    partner_id: jobcenter.id.clone(),
                    reason: "U25-Beratung".into(),
                    consent: None,
                    outcome: ReferralOutcome::Open,
                }];
                d.client_code = None;
            }
            d.note = NOTES[k % NOTES.len()].into();
            if wi == 1 && i == 0 {
                // One person alone in their age band, gender and topic: shown as <3.
                d.persons = 1;
                d.client_code = None;
                d.age_band = AgeBand::Over64;
                d.gender = Gender::Diverse;
                d.topics = vec!["gewalt".into()];
            }
            if wi == 0 && i == 5 {
                d.safeguarding = true;
                d.note =
                    "14-Jährige schläft seit drei Nächten im Park, Eltern nicht erreichbar.".into();
            }
            let c = w.ws.create_contact(d)?;
            w.ws.submit_contact(c.id)?;
            if wi == 0 && i == 5 {
                flagged = Some(c.id);
            }
        }
        say(format!(
            "{} logged 24 contacts with no network; {} changes wait on the phone",
            w.name,
            w.ws.pending_changes()?
        ));
    }

    step(4, "Back in signal range: everyone syncs");
    for p in [&sam, &kim, &lead] {
        let r = rt.block_on(p.sync.sync_once(None))?;
        say(format!(
            "{:<11} sent {:>3}, received {:>3}",
            p.name, r.pushed, r.pulled
        ));
    }
    rt.block_on(sam.sync.sync_once(None))?;
    rt.block_on(kim.sync.sync_once(None))?;
    say(format!(
        "Lea's office now holds {} contacts",
        lead.ws.list_contacts(&ContactFilter::default())?.total
    ));

    step(5, "Two people edit one note at the same time");
    let shared = kim
        .ws
        .list_contacts(&ContactFilter {
            author: Some(kim.ws.device_id().to_string()),
            limit: 1,
            ..Default::default()
        })?
        .items
        .first()
        .map(|s| s.id)
        .ok_or_else(|| CliError::other("no contact to edit"))?;
    let mut on_phone = kim.ws.get_contact(shared)?.fields;
    on_phone
        .note
        .push_str(" Termin am Montag um 10 Uhr vereinbart.");
    kim.ws.update_contact(shared, on_phone)?;
    let mut in_office = lead.ws.get_contact(shared)?.fields;
    in_office.note = format!("[Rückruf Jobcenter erledigt] {}", in_office.note);
    lead.ws.update_contact(shared, in_office)?;
    for p in [&kim, &lead, &kim] {
        rt.block_on(p.sync.sync_once(None))?;
    }
    let merged = lead.ws.get_contact(shared)?.fields.note;
    let on_phone = kim.ws.get_contact(shared)?.fields.note;
    let same = on_phone == merged;
    // Both devices' notes are printed, so a reader (and the CLI test) can compare them.
    say(format!(
        "Kim appended on the phone, Lea prefixed in the office, both offline. After sync:\n  phone:  \"{on_phone}\"\n  office: \"{merged}\"\n  (identical on both devices: {same})"
    ));

    step(
        6,
        "The review loop: a question to the phone and the answer back",
    );
    let queue = lead.ws.list_contacts(&ContactFilter {
        safeguarding_first: true,
        review: Some(ReviewState::Submitted),
        limit: 1,
        ..Default::default()
    })?;
    let first = queue
        .items
        .first()
        .ok_or_else(|| CliError::other("empty review queue"))?;
    say(format!(
        "Lea's review queue ({} waiting) starts with a child-protection concern: {} at {}{}",
        queue.total,
        first.date,
        first.place,
        if Some(first.id) == flagged {
            " (§ 8a)"
        } else {
            ""
        }
    ));
    lead.ws.request_changes(
        first.id,
        "Wurde das Jugendamt informiert? Bitte heute noch.",
    )?;
    rt.block_on(lead.sync.sync_once(None))?;
    rt.block_on(sam.sync.sync_once(None))?;
    let inbox = sam.ws.list_contacts(&ContactFilter {
        review: Some(ReviewState::ChangesRequested),
        author: Some(sam.ws.device_id().to_string()),
        ..Default::default()
    })?;
    let asked = inbox
        .items
        .first()
        .map(|s| s.id)
        .ok_or_else(|| CliError::other("the question did not arrive"))?;
    let question = sam
        .ws
        .get_contact(asked)?
        .comments
        .last()
        .map(|c| c.text.clone())
        .unwrap_or_default();
    say(format!(
        "Sam's phone, after sync: inbox has {} question: \"{question}\"",
        inbox.total
    ));
    sam.ws
        .answer_contact(asked, "Ja, Jugendamt heute 11 Uhr telefonisch informiert.")?;
    rt.block_on(sam.sync.sync_once(None))?;
    rt.block_on(lead.sync.sync_once(None))?;
    let answered = lead.ws.get_contact(asked)?;
    say(format!(
        "Lea's office, after sync: answer \"{}\"; review is '{}'",
        answered
            .comments
            .last()
            .map(|c| c.text.as_str())
            .unwrap_or(""),
        answered.review.label()
    ));
    lead.ws.approve_contact(asked)?;
    rt.block_on(lead.sync.sync_once(None))?;
    rt.block_on(sam.sync.sync_once(None))?;
    say(format!(
        "Lea approves; Sam's phone shows '{}'",
        sam.ws.get_contact(asked)?.review.label()
    ));

    step(
        7,
        "Anonymous statistics for the city (September and October 2026)",
    );
    let q = StatsQuery {
        from: base,
        to: NaiveDate::from_ymd_opt(2026, 10, 31).ok_or_else(|| CliError::other("date"))?,
    };
    let s = lead.ws.statistics(&q)?;
    crate::output::print_stats(&s);
    // The relay stops with the runtime; its data stays on disk when kept.
    drop(rt);
    match &folder {
        Folder::Temp(dir) => println!(
            "\nDone in {:.1} s. Everything was in {} and is deleted now.\nNext: `streetsync --help`, or `streetsync init --help` to start a real team.",
            started.elapsed().as_secs_f64(),
            dir.path().display()
        ),
        Folder::Kept {
            dir,
            passphrase,
            from_env,
        } => {
            let lead_store = dir.join(format!("{}.db", lead.name));
            println!(
                "\nDone in {:.1} s. Kept in {}: Lea's office store {}.db, the phones {}.db and {}.db, and the relay's data in relay/.",
                started.elapsed().as_secs_f64(),
                dir.display(),
                lead.name,
                sam.name,
                kim.name,
            );
            println!(
                "Start the relay again on the same address (the stores remember it), then open Lea's desk:"
            );
            println!(
                "  streetsync-relay --bind 127.0.0.1:{port} --data-dir {} &",
                shell_quote(&relay_dir.to_string_lossy())
            );
            let env = if *from_env {
                "STREETSYNC_PASSPHRASE=\"$STREETSYNC_PASSPHRASE\"".to_owned()
            } else {
                format!("STREETSYNC_PASSPHRASE={}", shell_quote(passphrase))
            };
            println!(
                "  {env} streetsync desk --store {}",
                shell_quote(&lead_store.to_string_lossy())
            );
        }
    }
    Ok(())
}

/// Quotes a word for a POSIX shell when it needs it, so the printed command can be pasted.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn wait_for_port(port: u16) -> CliResult<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(CliError {
        code: crate::error::EXIT_OFFLINE,
        message: "the demo relay did not start".into(),
    })
}
