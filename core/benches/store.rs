//! Store benchmark: durable saves, reopening, filters and full-text search over 10,000 realistic
//! contacts in a real, encrypted SQLite store.
//!
//! Run with `cargo bench -p streetsync-core --bench store`. Prints the figures and writes them to
//! `<target>/bench/store.json` as
//! `{"<figure>": {"value": 0.31, "unit": "ms", "goal": 0.4, "lower_is_better": true}, ...}`.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::{Map, Value, json};
use streetsync_core::{ContactFilter, StatsQuery, Workspace};

/// Contacts saved, 10,000 unless `STORE_BENCH_CONTACTS` says otherwise (the scaling table in
/// `docs/benchmarks.md` runs 1,000, 10,000 and 100,000).
fn contacts() -> usize {
    std::env::var("STORE_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(10_000)
}
/// Saves whose WAL frames are counted (few enough that no automatic checkpoint, at 1,000
/// frames, resets the WAL in between).
const TRACED_SAVES: usize = 40;
/// Days the contacts spread over (two years from 2025-01-01).
const DAYS: u64 = 730;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The `q`-quantile (0..=1) of `samples`, nearest rank.
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn median_of(n: usize, mut f: impl FnMut() -> Duration) -> f64 {
    let mut v: Vec<f64> = (0..n).map(|_| ms(f())).collect();
    quantile(&mut v, 0.5)
}

/// A `/proc/self/status` memory figure (`VmHWM`: peak resident set, `VmRSS`: now) in MiB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// p50 of overwriting 4 KiB in a preallocated file and `fsync`ing it, the way SQLite rewrites its
/// WAL after a checkpoint (the bundled SQLite calls `fsync`): the floor under a durable save.
fn raw_fsync_p50_ms(dir: &Path) -> f64 {
    const BLOCK: usize = 4096;
    const BLOCKS: usize = 256;
    let path = dir.join("fsync.probe");
    std::fs::write(&path, vec![0_u8; BLOCK * BLOCKS]).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.sync_all().unwrap();
    let block = [0x5a_u8; BLOCK];
    let mut v: Vec<f64> = (0..BLOCKS)
        .map(|i| {
            let t = Instant::now();
            f.seek(SeekFrom::Start((i * BLOCK) as u64)).unwrap();
            f.write_all(&block).unwrap();
            f.sync_all().unwrap();
            ms(t.elapsed())
        })
        .collect();
    drop(f);
    let _ = std::fs::remove_file(&path);
    quantile(&mut v, 0.5)
}

/// Saves `n` realistic contacts into a new team store in `dir`, each its own durable transaction;
/// returns the store and each save's wall time in ms.
fn save_contacts(dir: &Path, n: usize, progress: bool) -> (Workspace, Vec<f64>) {
    save_contacts_at(dir, n, progress, None)
}

/// [`save_contacts`] into a store at schema `version` (`None`: the newest), for before/after
/// comparisons of the schema in one run.
fn save_contacts_at(
    dir: &Path,
    n: usize,
    progress: bool,
    version: Option<u32>,
) -> (Workspace, Vec<f64>) {
    let ws = match version {
        None => common::lead_store(dir),
        Some(v) => {
            let ws = streetsync_core::testing::open_at_schema_version(
                dir.join("lead.db"),
                common::key(1),
                v,
            )
            .unwrap();
            ws.create_team(common::setup()).unwrap();
            ws
        }
    };
    if progress {
        println!("  team store opened, rss {:.1} MB", status_mb("VmRSS"));
    }
    let mut rng = common::Rng(0x5eed_2025_0bad_cafe);
    let mut saves = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let day = rng.below(DAYS) as u32;
        let draft = common::draft(&mut rng, day);
        let t = Instant::now();
        ws.create_contact(draft).unwrap();
        saves.push(ms(t.elapsed()));
        if progress && (i + 1) % 2_000 == 0 {
            println!(
                "  {} saved, {:.1} s, rss {:.1} MB",
                i + 1,
                started.elapsed().as_secs_f64(),
                status_mb("VmRSS")
            );
        }
    }
    (ws, saves)
}

/// WAL frames written per save, and per B-tree (table or index) the pages those frames hold:
/// the WAL is emptied by a checkpoint from a second connection, [`TRACED_SAVES`] more contacts
/// are saved, and each frame's page number is looked up in `dbstat`. Deterministic for a given
/// schema and store (load and disk speed do not change it), unlike the save time.
fn wal_frames_per_save(
    ws: &Workspace,
    db: &Path,
    rng: &mut common::Rng,
) -> (f64, Vec<(String, f64)>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let owners: std::collections::HashMap<u32, String> = conn
        .prepare("SELECT pageno, name FROM dbstat")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let last_page = owners.keys().copied().max().unwrap_or(0);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    for _ in 0..TRACED_SAVES {
        let day = rng.below(DAYS) as u32;
        ws.create_contact(common::draft(rng, day)).unwrap();
    }
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap();
    let page_size = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    let frames = (wal.len() - 32) / (page_size + 24);
    let mut by_tree: std::collections::BTreeMap<String, usize> = Default::default();
    for f in 0..frames {
        let at = 32 + f * (page_size + 24);
        let page = u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
        let tree = match owners.get(&page) {
            Some(name) => name.clone(),
            None if page > last_page => "(new pages: tails of growing tables)".to_owned(),
            None => "(free list)".to_owned(),
        };
        *by_tree.entry(tree).or_default() += 1;
    }
    let mut by_tree: Vec<(String, f64)> = by_tree
        .into_iter()
        .map(|(k, v)| (k, v as f64 / TRACED_SAVES as f64))
        .collect();
    by_tree.sort_by(|a, b| b.1.total_cmp(&a.1));
    (frames as f64 / TRACED_SAVES as f64, by_tree)
}

/// Bytes of the store file per table and index (`dbstat`), after a full checkpoint.
fn bytes_by_tree(db: &Path) -> Vec<(String, u64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.prepare("SELECT name, sum(pgsize) AS b FROM dbstat GROUP BY name ORDER BY b DESC")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// `CARGO_TARGET_DIR` if set, else the workspace's `target`.
fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

struct Figures(Map<String, Value>);

impl Figures {
    fn add(&mut self, key: &str, value: f64, unit: &str, goal: Option<f64>) {
        let verdict = match goal {
            Some(g) if value <= g => format!("goal <= {g}: met"),
            Some(g) => format!("goal <= {g}: MISSED"),
            None => "no goal".to_owned(),
        };
        println!("{key:<22} {value:>10.3} {unit:<3} ({verdict})");
        let value = (value * 1_000.0).round() / 1_000.0;
        self.0.insert(
            key.to_owned(),
            json!({ "value": value, "unit": unit, "goal": goal, "lower_is_better": true }),
        );
    }
}

fn main() {
    let n_contacts = contacts();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lead.db");
    let mut figures = Figures(Map::new());
    println!("store benchmark: {n_contacts} contacts in {}", db.display());
    // As the CLI and desk run (`tune_host_allocator`); `STORE_BENCH_GLIBC_DEFAULT=1` measures
    // glibc's default malloc settings instead, for the before/after in docs/benchmarks.md.
    let tuned = std::env::var_os("STORE_BENCH_GLIBC_DEFAULT").is_none()
        && streetsync_core::tune_host_allocator();
    println!("  host allocator tuned: {tuned}");
    figures.add(
        "host_allocator_tuned",
        f64::from(u8::from(tuned)),
        "bool",
        None,
    );

    let raw_fsync = raw_fsync_p50_ms(dir.path());

    // Saves: each one its own durable transaction.
    let (ws, mut saves) = save_contacts(dir.path(), n_contacts, true);
    figures.add("save_p50_ms", quantile(&mut saves, 0.5), "ms", Some(0.4));
    figures.add("save_p99_ms", quantile(&mut saves, 0.99), "ms", Some(5.0));
    figures.add("raw_fsync_p50_ms", raw_fsync, "ms", None);
    println!(
        "  memory after saves: rss {:.1} MB, peak {:.1} MB",
        status_mb("VmRSS"),
        status_mb("VmHWM")
    );
    let peak_after_saves = status_mb("VmHWM");
    let mut trace_rng = common::Rng(0x0000_0018_0000_0001);
    let (frames, by_tree) = wal_frames_per_save(&ws, &db, &mut trace_rng);
    println!("  WAL frames per save, by table or index:");
    for (tree, n) in &by_tree {
        println!("    {tree:<40} {n:>6.2}");
    }
    figures.add("wal_frames_per_save", frames, "frames", Some(8.0));
    drop(ws);

    // Reopen: key check, cache of 10,000 decrypted projections, first page.
    let open_first_page = median_of(5, || {
        let t = Instant::now();
        let ws = Workspace::open(&db, common::key(1)).unwrap();
        let page = ws
            .list_contacts(&ContactFilter {
                limit: 50,
                ..Default::default()
            })
            .unwrap();
        let took = t.elapsed();
        assert_eq!(page.items.len(), 50);
        assert_eq!(page.total, n_contacts + TRACED_SAVES);
        took
    });
    figures.add("open_first_page_ms", open_first_page, "ms", Some(100.0));
    println!(
        "  memory after reopening: rss {:.1} MB, peak {:.1} MB",
        status_mb("VmRSS"),
        status_mb("VmHWM")
    );

    let ws = Workspace::open(&db, common::key(1)).unwrap();
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let by_topic_and_date = ContactFilter {
        topic_id: Some("wohnen".into()),
        from: Some(day(2025, 3, 1)),
        to: Some(day(2025, 5, 31)),
        ..Default::default()
    };
    let hits = ws.list_contacts(&by_topic_and_date).unwrap().total;
    assert!(hits > 0);
    let filter = median_of(20, || {
        let t = Instant::now();
        let page = ws.list_contacts(&by_topic_and_date).unwrap();
        let took = t.elapsed();
        assert_eq!(page.total, hits);
        took
    });
    println!("  topic + date range: {hits} hits");
    figures.add("filter_topic_date_ms", filter, "ms", Some(30.0));

    let by_text = ContactFilter {
        text: Some("Notunterkunft".into()),
        ..Default::default()
    };
    let hits = ws.list_contacts(&by_text).unwrap().total;
    assert!(hits > 0);
    let fulltext = median_of(20, || {
        let t = Instant::now();
        let page = ws.list_contacts(&by_text).unwrap();
        let took = t.elapsed();
        assert_eq!(page.total, hits);
        took
    });
    println!("  full text 'Notunterkunft': {hits} hits");
    figures.add("fulltext_ms", fulltext, "ms", Some(50.0));

    // Statistics of a year with primary and secondary suppression (issue 14), as a desk asks
    // for them: projections read, tallied, protected.
    let year = StatsQuery {
        from: day(2025, 1, 1),
        to: day(2025, 12, 31),
    };
    let s = ws.statistics(&year).unwrap();
    // The contacts spread over two years, so about half of them fall into 2025.
    assert!(s.total.contacts.value().unwrap() as usize > n_contacts / 4);
    let stats_year = median_of(20, || {
        let t = Instant::now();
        let s = ws.statistics(&year).unwrap();
        let took = t.elapsed();
        assert!(s.total.contacts.value().is_some());
        took
    });
    figures.add("statistics_year_ms", stats_year, "ms", Some(50.0));
    let withheld =
        s.tables.iter().filter(|t| t.withheld).count() + usize::from(s.month_area_withheld);
    println!(
        "  statistics 2025: {} contacts, {} numbers hidden as <3, {} more hidden by secondary suppression, {withheld} table(s) withheld",
        s.total.contacts, s.disclosure.primary, s.disclosure.secondary
    );
    figures.add(
        "statistics_secondary_cells",
        s.disclosure.secondary as f64,
        "cells",
        None,
    );
    figures.add(
        "statistics_primary_cells",
        s.disclosure.primary as f64,
        "cells",
        None,
    );
    drop(ws);

    let main_file = file_size(&db);
    let wal = file_size(&db.with_extension("db-wal"));
    println!(
        "store file {:.2} MiB (+ WAL {:.2} MiB), {:.0} bytes per contact",
        main_file as f64 / 1_048_576.0,
        wal as f64 / 1_048_576.0,
        (main_file + wal) as f64 / n_contacts as f64
    );
    figures.add("store_file_mb", main_file as f64 / 1_048_576.0, "MB", None);
    figures.add("peak_rss_saving_mb", peak_after_saves, "MB", Some(80.0));
    figures.add("peak_rss_mb", status_mb("VmHWM"), "MB", Some(80.0));
    let trees = bytes_by_tree(&db);
    let stored = (n_contacts + TRACED_SAVES) as f64;
    println!("  store file by table or index, bytes per contact:");
    for (tree, b) in &trees {
        println!("    {tree:<40} {:>8.0}", *b as f64 / stored);
    }
    let total: u64 = trees.iter().map(|t| t.1).sum();
    let outbox: u64 = trees
        .iter()
        .filter(|t| t.0.contains("outbox"))
        .map(|t| t.1)
        .sum();
    figures.add(
        "store_bytes_per_contact",
        total as f64 / stored,
        "B",
        Some(1_500.0),
    );
    // A synced device: the outbox is empty once the relay echoed every change.
    figures.add(
        "store_bytes_per_contact_synced",
        (total - outbox) as f64 / stored,
        "B",
        Some(1_500.0),
    );

    // Diagnosis, after the peak was taken: the same saves where fsync costs nothing (tmpfs), i.e.
    // the CPU part of a save.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let mem = tempfile::tempdir_in(shm).unwrap();
        let (_, mut saves) = save_contacts(mem.path(), 2_000, false);
        figures.add("save_tmpfs_p50_ms", quantile(&mut saves, 0.5), "ms", None);
    }

    // Before/after of the schema in one run, on the same disk as the main store: the same 2,000
    // contacts and traced saves into stores left at schema 4 (before migration 0006) and 6
    // (before 0007) and into one at the newest schema, alternating twice so a change of the
    // machine's load hits all three.
    // Schema 6 is the store before migration 0007 (contact projections in format 1); its store
    // is then opened by this build, which migrates it in place (`..._schema6_migrated`).
    let sides = [("schema4", Some(4)), ("schema6", Some(6)), ("newest", None)];
    let mut samples: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..2 {
        for (side, (label, version)) in sides.into_iter().enumerate() {
            let d = tempfile::tempdir_in(dir.path()).unwrap();
            let (ws, saves) = save_contacts_at(d.path(), 2_000, false, version);
            samples[side].extend(saves);
            if round > 0 {
                continue;
            }
            let mut rng = common::Rng(0x0000_0018_0000_0001);
            let (frames, by_tree) = wal_frames_per_save(&ws, &d.path().join("lead.db"), &mut rng);
            println!("  2,000-contact store at {label}: {frames:.2} WAL frames per save");
            for (tree, n) in &by_tree {
                println!("    {tree:<40} {n:>6.2}");
            }
            figures.add(
                &format!("wal_frames_per_save_2000_{label}"),
                frames,
                "frames",
                Some(8.0),
            );
            drop(ws);
            let db = d.path().join("lead.db");
            let per_contact = |db: &Path| -> f64 {
                let total: u64 = bytes_by_tree(db).iter().map(|t| t.1).sum();
                total as f64 / (2_000 + TRACED_SAVES) as f64
            };
            figures.add(
                &format!("store_bytes_per_contact_2000_{label}"),
                per_contact(&db),
                "B",
                Some(1_500.0),
            );
            if version == Some(6) {
                drop(Workspace::open(&db, common::key(1)).unwrap());
                figures.add(
                    &format!("store_bytes_per_contact_2000_{label}_migrated"),
                    per_contact(&db),
                    "B",
                    Some(1_500.0),
                );
            }
        }
    }
    // The same 2,000 contacts with notes of running prose instead of the word list, which
    // deflate (Automerge's and the projection's) compresses better than real notes.
    {
        let d = tempfile::tempdir_in(dir.path()).unwrap();
        let ws = common::lead_store(d.path());
        let mut rng = common::Rng(0x5eed_2025_0bad_cafe);
        for _ in 0..2_000 {
            let day = rng.below(DAYS) as u32;
            let mut draft = common::draft(&mut rng, day);
            draft.note = common::prose_note(&mut rng);
            ws.create_contact(draft).unwrap();
        }
        drop(ws);
        let trees = bytes_by_tree(&d.path().join("lead.db"));
        let total: u64 = trees.iter().map(|t| t.1).sum();
        figures.add(
            "store_bytes_per_contact_2000_prose",
            total as f64 / 2_000.0,
            "B",
            Some(1_500.0),
        );
    }
    for (side, (label, _)) in sides.into_iter().enumerate() {
        let v = &mut samples[side];
        figures.add(
            &format!("save_p50_2000_{label}_ms"),
            quantile(v, 0.5),
            "ms",
            Some(0.4),
        );
    }

    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("store.json");
    let text = serde_json::to_string_pretty(&Value::Object(figures.0)).unwrap();
    std::fs::write(&path, text + "\n").unwrap();
    println!("wrote {}", path.display());
}
