//! Makes the compatibility fixture in `tests/fixtures/compat-v1/` (issue 11, item 7).
//!
//! A lead's store and a relay's log written by the code of one commit are kept in the repository,
//! so `tests/tests/compat.rs` can prove that every later version still opens them, reads every
//! record exactly as it was written, and syncs a brand-new device from the old relay log. That is
//! only a proof if the files really come from the old code, so this generator is run once and its
//! output committed; it is not part of the test suite and refuses to overwrite an existing
//! fixture (pass `--overwrite` only when starting a new fixture generation on purpose).
//!
//! ```sh
//! cargo run -p streetsync-tests --example make_compat_fixtures
//! ```
//!
//! What it does, against the real `streetsync-relay` binary on 127.0.0.1 with a data dir of its
//! own: a lead founds a team, a worker joins by invite, both log contacts (umlauts in notes,
//! materials, a referral with consent, a review question answered and approved, a remark, an
//! edit), a client, two partners (one retired), a retired area, one deleted contact; both devices
//! sync until they agree. Then the relay is stopped with SIGTERM, both SQLite files are
//! checkpointed into single files, and `lead.db`, `relay/relay.sqlite3`, `expected.json` (what the
//! test must read back) and `README.md` are written.
//!
//! It refuses to run while anything outside `tests/` has uncommitted changes, so the commit hash
//! written into the README is the code that made the files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime};
use serde_json::{Value, json};

use streetsync_core::*;

/// The lead's storage key. Fixed and printable so the test (which keeps its own copy and checks
/// it against `expected.json`) and a human with the README can open the store.
const LEAD_KEY: &[u8; 32] = b"streetsync-compat-v1-lead-key-32";
/// The worker's storage key. The worker's store is not kept; the key is fixed only so a rerun
/// behaves the same.
const WORKER_KEY: &[u8; 32] = b"streetsync-compat-v1-worker-key-";
/// The full-text query whose hits `expected.json` records (folding of umlauts included).
const SEARCH_TEXT: &str = "schlafsäcke";

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The real relay binary, running until [`Relay::stop`] or drop.
struct Relay {
    child: Option<Child>,
    url: String,
}

impl Relay {
    /// Starts the relay on a free port with its data in `data`, and waits for its
    /// `listening on <addr>` line, so the first request never races the bind.
    fn start(data: &Path) -> Res<Relay> {
        let mut child = Command::new(streetsync_tests::relay_binary(false))
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("STREETSYNC_RELAY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("the relay has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected relay output: {line:?}"))?
            .to_owned();
        Ok(Relay {
            child: Some(child),
            url: format!("http://{addr}"),
        })
    }

    /// Stops the relay with SIGTERM, as an operator would, and waits for a clean exit, so its
    /// database is closed before it is copied.
    fn stop(mut self) -> Res<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    return Err(format!("the relay exited with {status}").into());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the relay did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn key(bytes: &[u8; 32]) -> Result<KeySource> {
    Ok(KeySource::Key(StorageKey::from_bytes(bytes)?))
}

fn date(y: i32, m: u32, d: u32) -> Res<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("bad date {y}-{m}-{d}").into())
}

fn time(h: u32, m: u32) -> Res<NaiveTime> {
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(|| format!("bad time {h}:{m}").into())
}

/// The id of the catalog entry whose name starts with `name`, so the generator does not depend on
/// how slugs are spelled.
fn entry_id(entries: &[CatalogEntry], name: &str) -> Res<String> {
    entries
        .iter()
        .find(|e| e.name.starts_with(name))
        .map(|e| e.id.clone())
        .ok_or_else(|| format!("no catalog entry named {name:?}").into())
}

fn materials(team: &Team, counts: &[(&str, i64)]) -> Res<Vec<MaterialCount>> {
    counts
        .iter()
        .map(|(name, count)| {
            Ok(MaterialCount {
                material_id: entry_id(&team.materials, name)?,
                count: *count,
            })
        })
        .collect()
}

/// Checkpoints a WAL-mode SQLite file into the main file and closes it; closing the last
/// connection removes `-wal` and `-shm`, so the fixture is one self-contained file per database.
fn checkpoint(db: &Path) -> Res<()> {
    {
        let conn = rusqlite::Connection::open(db)?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(
                format!("{}: checkpoint blocked by another connection", db.display()).into(),
            );
        }
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(format!("{}: integrity_check says {check}", db.display()).into());
        }
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        if side.exists() {
            return Err(format!("{} is still there after closing", side.display()).into());
        }
    }
    Ok(())
}

/// Lists the side files (`-wal`, `-shm`) next to `db`, to report whether closing the workspace
/// or stopping the relay already folded them in.
fn side_files(db: &Path) -> Vec<String> {
    ["-wal", "-shm"]
        .iter()
        .filter(|s| Path::new(&format!("{}{s}", db.display())).exists())
        .map(|s| s.to_string())
        .collect()
}

fn git(root: &Path, args: &[&str]) -> Res<String> {
    let out = Command::new("git").current_dir(root).args(args).output()?;
    if !out.status.success() {
        return Err(format!("git {args:?} failed").into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Everything a device reads back, in the shape `expected.json` and the test use.
fn snapshot(ws: &Workspace, history_of: RecordId) -> Res<Value> {
    let list = ws.list_contacts(&ContactFilter::default())?;
    let contacts = list
        .items
        .iter()
        .map(|s| ws.get_contact(s.id))
        .collect::<Result<Vec<_>>>()?;
    let clients = ws.list_clients(&ClientFilter::default())?;
    let client_records = clients
        .iter()
        .map(|c| ws.get_client(c.id))
        .collect::<Result<Vec<_>>>()?;
    let search = ws.list_contacts(&ContactFilter {
        text: Some(SEARCH_TEXT.into()),
        ..Default::default()
    })?;
    Ok(json!({
        "team": ws.team()?,
        "contact_list": list.items,
        "contacts": contacts,
        "client_list": clients,
        "clients": client_records,
        "partners": ws.partners()?,
        "history": { "contact": history_of, "entries": ws.history(history_of)? },
        "search": {
            "text": SEARCH_TEXT,
            "ids": search.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        },
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let overwrite = std::env::args().any(|a| a == "--overwrite");
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = tests_dir.parent().ok_or("tests/ has no parent")?;
    let out = tests_dir.join("fixtures").join("compat-v1");
    if out.exists() && !overwrite {
        return Err(format!(
            "{} exists; a compatibility fixture must stay as the old code made it \
             (pass --overwrite only to start a new fixture on purpose)",
            out.display()
        )
        .into());
    }
    let dirty = git(
        root,
        &["status", "--porcelain", "--", ".", ":(exclude)tests"],
    )?;
    if !dirty.is_empty() {
        return Err(format!(
            "uncommitted changes outside tests/; commit them first so the fixture names the code \
             that made it:\n{dirty}"
        )
        .into());
    }
    let commit = git(root, &["rev-parse", "HEAD"])?;
    let subject = git(root, &["log", "-1", "--format=%s"])?;

    let work = tempfile::tempdir()?;
    let relay_dir = work.path().join("relay");
    let lead_db = work.path().join("lead.db");
    let relay = Relay::start(&relay_dir)?;
    let url = relay.url.clone();

    // ---- the team -----------------------------------------------------------------------
    let lead = Arc::new(Workspace::open(&lead_db, key(LEAD_KEY)?)?);
    lead.create_team(TeamSetup {
        team_name: "Streetwork Südstadt".into(),
        member_name: "Lea Müller (Leitung)".into(),
        areas: vec!["Hauptbahnhof".into(), "Stadtpark".into(), "Südstadt".into()],
        topics: vec![],
        materials: vec![],
    })?;
    let old_area = lead.add_catalog_entry(Catalog::Area, "Alter Friedhof")?;
    let drogenhilfe = lead.add_partner(PartnerDraft {
        name: "Drogenhilfe Nord e. V.".into(),
        offers: vec!["Substitution".into(), "Spritzentausch".into()],
        contact_person: "Frau Öztürk".into(),
        phone: "0221 123456".into(),
        address: "Bahnhofstraße 5, 50667 Köln".into(),
        notes: "Offene Sprechstunde Mo–Fr 10–14 Uhr, ohne Termin. Hunde dürfen mit.".into(),
    })?;
    let closed = lead.add_partner(PartnerDraft {
        name: "Jugendcafé Überseering".into(),
        offers: vec!["Freizeit".into()],
        contact_person: "Herr Weiß".into(),
        phone: "0221 987654".into(),
        address: "Überseering 12".into(),
        notes: "Seit Oktober geschlossen.".into(),
    })?;
    lead.retire_partner(&closed.id)?;
    let lead_sync = SyncClient::new(lead.clone(), &url)?;
    lead_sync.sync_once(None).await?;

    let worker = Arc::new(Workspace::open(
        work.path().join("worker.db"),
        key(WORKER_KEY)?,
    )?);
    let worker_sync = SyncClient::new(worker.clone(), &url)?;
    let invite = lead_sync
        .create_invite("Sam Schröder", Role::Worker, 3600)
        .await?;
    worker_sync.join_with_invite(&invite.code).await?;
    let enrolled = lead_sync.sync_once(None).await?;
    if enrolled.devices_enrolled != 1 {
        return Err("the worker was not put on the roster".into());
    }
    worker_sync.sync_once(None).await?;
    let team = worker.team()?;
    let topic = |name: &str| entry_id(&team.topics, name);

    // ---- the worker's day -----------------------------------------------------------------
    let consent = Consent {
        scope: "Vorname und Telefonnummer".into(),
        recipient: "Drogenhilfe Nord e. V.".into(),
        purpose: "Termin für ein Substitutionsgespräch".into(),
        given_on: date(2026, 11, 3)?,
        revoked_on: None,
    };
    let client = worker.create_client(ClientDraft {
        code: "MA-1987-K".into(),
        alias: Some("Mücke".into()),
        age_band: AgeBand::From27To39,
        gender: Gender::Male,
        consents: vec![consent.clone()],
        notes: "Kommt meist dienstags ins Café. Spricht Deutsch und Türkisch.".into(),
    })?;

    let mut d = ContactDraft::new(date(2026, 11, 2)?, time(9, 30)?, "hauptbahnhof");
    d.end_time = Some(time(10, 15)?);
    d.place = "Nordausgang, Bänke am Taxistand".into();
    d.location = Some(CoarseLocation::new(50.943, 6.959)?);
    d.persons = 2;
    d.first_contact = true;
    d.age_band = AgeBand::From21To26;
    d.gender = Gender::Male;
    d.housing = Housing::Rough;
    d.topics = vec![topic("Wohnen")?, topic("Sucht")?];
    d.interventions = vec![Intervention::Conversation, Intervention::MaterialHelp];
    d.materials = materials(&team, &[("Naloxon", 2), ("Essen", 3), ("Schlafsäcke", 1)])?;
    d.note = "Zwei Männer, übernachten unter der Brücke. Gespräch über die Notunterkunft; \
              Schlafsäcke und Essen ausgegeben. Große Sorge: Überdosis letzte Woche, Naloxon erklärt."
        .into();
    let street = worker.create_contact(d.clone())?;
    // An edit, so the note's text carries two changes and the materials counter moved.
    d.note
        .push_str(" Nachtrag: einer hat heute einen Platz in der Notunterkunft bekommen.");
    d.materials = materials(&team, &[("Naloxon", 2), ("Essen", 4), ("Schlafsäcke", 1)])?;
    worker.update_contact(street.id, d)?;

    let mut d = ContactDraft::new(date(2026, 11, 3)?, time(13, 0)?, "suedstadt");
    d.end_time = Some(time(14, 30)?);
    d.place = "Drogenhilfe Nord, Bahnhofstraße".into();
    d.setting = Setting::Accompaniment;
    d.age_band = AgeBand::From27To39;
    d.gender = Gender::Male;
    d.client_code = Some(client.fields.code.clone());
    d.housing = Housing::Shelter;
    d.topics = vec![topic("Sucht")?, topic("Gesundheit")?];
    d.interventions = vec![Intervention::Accompaniment, Intervention::Referral];
    d.referrals = vec![Referral {
        id: "r1".into(),
        partner_id: drogenhilfe.id.clone(),
        reason: "Möchte über Substitution sprechen.".into(),
        consent: Some(consent),
        outcome: ReferralOutcome::Arrived,
    }];
    d.note =
        "Begleitung zur Drogenhilfe, Termin für Donnerstag vereinbart. Wirkt erleichtert.".into();
    worker.create_contact(d)?;

    let mut d = ContactDraft::new(date(2026, 11, 4)?, time(16, 45)?, "stadtpark");
    d.place = "Spielplatz am Weiher".into();
    d.age_band = AgeBand::From14To17;
    d.gender = Gender::Female;
    d.housing = Housing::Precarious;
    d.topics = vec![topic("Familie")?, topic("Gewalt")?];
    d.interventions = vec![Intervention::Crisis];
    d.safeguarding = true;
    d.retention = RetentionClass::Safeguarding;
    d.note = "15-Jährige, wirkt verängstigt, erzählt von Streit zuhause und Übernachtungen bei \
              Bekannten. Kinderschutz geprüft (§ 8a SGB VIII)."
        .into();
    let concern = worker.create_contact(d)?;
    worker.submit_contact(concern.id)?;

    let mut d = ContactDraft::new(date(2026, 11, 4)?, time(17, 0)?, "stadtpark");
    d.note = "Versehentlich doppelt angelegt.".into();
    let mistake = worker.create_contact(d)?;

    // ---- the lead's own contact, in an area retired afterwards -----------------------------
    let mut d = ContactDraft::new(date(2026, 11, 5)?, time(11, 0)?, old_area.id.as_str());
    d.end_time = Some(time(12, 30)?);
    d.place = "Anlaufstelle Café Auszeit".into();
    d.setting = Setting::DropIn;
    d.persons = 3;
    d.age_band = AgeBand::Mixed;
    d.gender = Gender::Mixed;
    d.topics = vec![topic("Arbeit")?, topic("Aufenthalt")?];
    d.interventions = vec![Intervention::Counselling];
    d.materials = materials(&team, &[("Kondome", 5)])?;
    d.note = "Gruppe junger Erwachsener, Fragen zu Krankenversicherung und Ämtern. \
              „Danke für den Kaffee“ – kommen nächste Woche wieder."
        .into();
    lead.create_contact(d)?;
    lead.retire_catalog_entry(Catalog::Area, &old_area.id)?;

    // ---- review round trip ----------------------------------------------------------------
    worker_sync.sync_once(None).await?;
    lead_sync.sync_once(None).await?;
    lead.request_changes(concern.id, "Wurde das Jugendamt informiert?")?;
    lead.comment_contact(
        street.id,
        "Bitte beim nächsten Mal nach der Krankenkassenkarte fragen.",
    )?;
    lead_sync.sync_once(None).await?;
    worker_sync.sync_once(None).await?;
    worker.answer_contact(
        concern.id,
        "Ja, heute Vormittag telefonisch; Rückruf der Fachkraft für Donnerstag zugesagt.",
    )?;
    worker.delete_contact(mistake.id)?;
    worker_sync.sync_once(None).await?;
    lead_sync.sync_once(None).await?;
    lead.approve_contact(concern.id)?;
    lead_sync.sync_once(None).await?;
    worker_sync.sync_once(None).await?;
    // A last round in which nothing moves: both devices are caught up with the relay's log.
    let lead_last = lead_sync.sync_once(None).await?;
    let worker_last = worker_sync.sync_once(None).await?;
    for (who, r) in [("lead", &lead_last), ("worker", &worker_last)] {
        if r.pushed != 0 || r.pulled != 0 || !r.quarantined.is_empty() {
            return Err(format!("{who} was not caught up: {r:?}").into());
        }
    }
    if lead.pending_changes()? != 0 || worker.pending_changes()? != 0 {
        return Err("changes wait in an outbox".into());
    }
    if !lead.damaged_records()?.is_empty() || !lead_sync.quarantine_report()?.is_empty() {
        return Err("the lead holds damaged or quarantined records".into());
    }

    let records = snapshot(&lead, concern.id)?;
    if records != snapshot(&worker, concern.id)? {
        return Err(
            "lead and worker disagree; a fixture of diverged devices proves nothing".into(),
        );
    }
    let expected = json!({
        "fixture": "compat-v1",
        "made_at_commit": commit,
        "lead_storage_key": std::str::from_utf8(LEAD_KEY)?,
        "lead_device": lead.device_id(),
        "worker_device": worker.device_id(),
        "team_id": lead.team()?.id,
        "lead_cursor": lead_last.cursor,
        "deleted_contact": mistake.id,
        "records": records,
    });
    let live = expected["records"]["contacts"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);

    // ---- stop everything and fold the WALs into the files ------------------------------------
    drop(lead_sync);
    drop(worker_sync);
    drop(lead);
    drop(worker);
    println!(
        "after closing the workspace, lead.db side files: {:?}",
        side_files(&lead_db)
    );
    relay.stop()?;
    let relay_db = relay_dir.join("relay.sqlite3");
    println!(
        "after SIGTERM, relay.sqlite3 side files: {:?}",
        side_files(&relay_db)
    );
    checkpoint(&lead_db)?;
    checkpoint(&relay_db)?;

    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(out.join("relay"))?;
    std::fs::copy(&lead_db, out.join("lead.db"))?;
    for entry in std::fs::read_dir(&relay_dir)? {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().ok_or("relay file without a name")?;
            std::fs::copy(&path, out.join("relay").join(name))?;
        }
    }
    std::fs::write(
        out.join("expected.json"),
        format!("{}\n", serde_json::to_string_pretty(&expected)?),
    )?;
    let today = chrono::Utc::now().format("%Y-%m-%d");
    std::fs::write(
        out.join("README.md"),
        format!(
            "# Compatibility fixture compat-v1\n\
             \n\
             Made on {today} by `cargo run -p streetsync-tests --example make_compat_fixtures`\n\
             (`tests/examples/make_compat_fixtures.rs`) from commit\n\
             `{commit}`\n\
             (\"{subject}\"),\n\
             with no uncommitted change outside `tests/`; the relay was the real `streetsync-relay`\n\
             binary of that commit. Read by `tests/tests/compat.rs`. **Never regenerate these\n\
             files**: they prove that later code still reads what this code wrote. A new storage\n\
             format gets a new fixture (`compat-v2`) next to this one.\n\
             \n\
             | file | what |\n\
             |---|---|\n\
             | `lead.db` | the lead's device store (SQLite, WAL checkpointed into the file) |\n\
             | `relay/relay.sqlite3` | the relay's data dir (SQLite, checkpointed, stopped with SIGTERM) |\n\
             | `expected.json` | every record as the lead read it back after the last sync |\n\
             \n\
             Storage keys (32 bytes each, ASCII):\n\
             - lead: `{lead}`\n\
             - worker: `{worker}` (the worker's store is not kept)\n\
             \n\
             The store holds: team \"Streetwork Südstadt\" (lead Lea Müller, worker Sam Schröder\n\
             joined by invite), {live} live contacts (umlauts in notes and places, materials, a\n\
             referral with consent, an edited note, a remark, a review question answered and\n\
             approved), one deleted contact, one client, two partners (one retired) and a retired\n\
             area. Device identities, record ids and timestamps are random or real time; they are\n\
             in `expected.json`.\n",
            lead = std::str::from_utf8(LEAD_KEY)?,
            worker = std::str::from_utf8(WORKER_KEY)?,
        ),
    )?;
    for f in [
        "lead.db",
        "relay/relay.sqlite3",
        "expected.json",
        "README.md",
    ] {
        println!("{f}: {} bytes", std::fs::metadata(out.join(f))?.len());
    }
    println!("fixture written to {}", out.display());
    Ok(())
}
