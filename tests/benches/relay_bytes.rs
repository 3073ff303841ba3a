//! Bytes the relay keeps on disk per byte of ciphertext (issue 18, goal at most 1.3).
//!
//! Device A (a store in this process) creates N realistic contacts (the store bench's generator
//! and seed, default N = 10,000) and pushes them to the real `streetsync-relay` process; the relay
//! is then stopped, its WAL checkpointed into the main file, and the file's size divided by the
//! ciphertext bytes of every envelope in its log: `relay_bytes_per_ciphertext_byte`.
//!
//! The same envelopes are also written, in one transaction each, into files of the relay's two
//! previous layouts exactly as those relays' appends wrote them, and measured the same way:
//! schema version 5 (binary columns, the log keyed by `(team, seq)` with 16-byte team ids, 4 KiB
//! pages: `..._schema_5`, the "before" figure) and schema version 4 (each envelope's JSON,
//! base64url ciphertext, in `log.body`: `..._json_layout`). Each copy is then opened by the
//! relay's storage, which migrates it in place and rebuilds it in 16 KiB pages; their sizes
//! afterwards are `..._schema_5_migrated` and `..._migrated`.
//!
//! Larger pages make each commit write more WAL bytes (a commit writes every page it changed, in
//! full), so the bench also pushes 50 new envelopes into a copy of each layout's file, once one at
//! a time (each its own commit: a lone push on an idle relay, the most WAL per envelope) and once
//! as one batch (a sync's push, or pushes that share a group commit), and divides the WAL bytes
//! written by the envelopes: `relay_wal_bytes_per_push...` and `relay_wal_bytes_per_batched...`.
//! Today's layout goes through the relay's storage; schema 5 through the statements its append
//! ran, on a connection with the relay's settings.
//!
//! The figures are sizes, not times: a debug build gives the same numbers
//! (`cargo bench -p streetsync-tests --bench relay_bytes --profile dev`; with
//! `STREETSYNC_RELAY_BIN` naming a debug relay binary, no release build is needed).
//! `RELAY_BYTES_N` sets N; `RELAY_BYTES_KEEP=FILE` keeps a copy of the relay's file (for
//! `dbstat`). Figures go to stdout and `target/bench/relay_bytes.json`.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../core/tests/common/mod.rs"]
mod fixtures;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rusqlite::{Connection, params};
use streetsync_core::*;
use streetsync_relay::storage::Storage;
use streetsync_relay::storage::sqlite::SqliteStorage;
use streetsync_wire::{Envelope, EnvelopeId, EnvelopeKind, RecordId};

/// The relay's migrations up to the JSON layout (schema version 4).
const JSON_LAYOUT: [&str; 4] = [
    include_str!("../../server/migrations/0001_init.sql"),
    include_str!("../../server/migrations/0002_invites.sql"),
    include_str!("../../server/migrations/0003_invite_confirm.sql"),
    include_str!("../../server/migrations/0004_bundle_sender.sql"),
];

/// Migration 5, which makes the binary log of schema version 5 (on an empty log; its step in Rust
/// only moves JSON rows, of which there are none, and drops the JSON table, done here by hand).
const SCHEMA_5: &str = include_str!("../../server/migrations/0005_binary_log.sql");

/// Envelopes pushed to measure the WAL bytes per envelope.
const WAL_PUSHES: usize = 50;

/// Bytes of the WAL file of `db` (0 if there is none).
fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len())
}

/// Checkpoints the WAL of `db` into the main file and truncates it.
fn checkpoint(db: &Path) {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// WAL bytes per envelope that `push` writes into `db`'s WAL, which starts empty. The WAL must
/// not be checkpointed in between (SQLite's automatic checkpoint comes at 1,000 pages; 50
/// envelopes stay far below), or the WAL would be reused from its start and the figure too low.
fn wal_bytes_per_envelope(db: &Path, page_size: u64, push: impl FnOnce()) -> f64 {
    checkpoint(db);
    assert_eq!(wal_len(db), 0);
    push();
    let written = wal_len(db);
    let frames = written.saturating_sub(32) / (page_size + 24);
    assert!(frames > 0 && frames < 1000, "{frames} WAL frames");
    (written as f64 / WAL_PUSHES as f64).round()
}

/// New envelopes for the WAL figures: the log's last ones as changes of new records, with new ids
/// (the storage does not check signatures; the HTTP layer did before it).
fn new_envelopes(envelopes: &[(u64, Envelope)]) -> Vec<Envelope> {
    envelopes
        .iter()
        .rev()
        .take(WAL_PUSHES)
        .map(|(_, e)| Envelope {
            doc: RecordId::random(),
            id: EnvelopeId::random(),
            kind: EnvelopeKind::Change,
            covers: 0,
            ..e.clone()
        })
        .collect()
}

/// The page size of the file `db`.
fn page_size(db: &Path) -> u64 {
    let size: i64 = Connection::open(db)
        .unwrap()
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    size as u64
}

/// WAL bytes per envelope of today's relay (its storage) on a copy of its file in `dir`: lone
/// pushes, then one batch.
fn wal_today(dir: &Path, envs: &[Envelope]) -> (f64, f64) {
    let db = dir.join("relay.sqlite3");
    let storage = SqliteStorage::open(dir).unwrap();
    let team = envs[0].team;
    let page = page_size(&db);
    let lone = wal_bytes_per_envelope(&db, page, || {
        for e in envs {
            storage.append(team, std::slice::from_ref(e)).unwrap();
        }
    });
    let fresh: Vec<Envelope> = envs
        .iter()
        .map(|e| Envelope {
            doc: RecordId::random(),
            id: EnvelopeId::random(),
            ..e.clone()
        })
        .collect();
    let batch = wal_bytes_per_envelope(&db, page, || {
        storage.append(team, &fresh).unwrap();
    });
    (lone, batch)
}

/// What the version-5 relay's append did for a batch, on a connection with its settings: one
/// transaction, per envelope the duplicate and tombstone look-ups, the log row, the envelope id,
/// and the team's head.
fn append_schema_5(conn: &mut Connection, envs: &[Envelope]) {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let team = envs[0].team;
    let mut head: i64 = tx
        .query_row(
            "SELECT head FROM teams WHERE id = ?1",
            [team.as_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    for e in envs {
        let t = team.as_bytes();
        let seen: Option<i64> = rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT seq FROM envelope_ids WHERE team = ?1 AND id = ?2",
            params![t, e.id.as_bytes()],
            |r| r.get(0),
        ))
        .unwrap();
        let erased: Option<i64> = rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT seq FROM tombstones WHERE team = ?1 AND doc = ?2",
            params![t, e.doc.as_bytes()],
            |r| r.get(0),
        ))
        .unwrap();
        assert!(seen.is_none() && erased.is_none());
        head += 1;
        insert_schema_5(&tx, head, e);
    }
    tx.execute(
        "UPDATE teams SET head = ?1 WHERE id = ?2",
        params![head, team.as_bytes()],
    )
    .unwrap();
    tx.commit().unwrap();
}

/// The version-5 relay's log row and envelope id of entry `seq`.
fn insert_schema_5(conn: &Connection, seq: i64, e: &Envelope) {
    conn.execute(
        "INSERT INTO log (team, seq, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            e.team.as_bytes(),
            seq,
            e.doc.as_bytes(),
            e.id.as_bytes(),
            e.kind.code(),
            e.covers as i64,
            e.v,
            e.epoch,
            e.author.as_bytes(),
            e.nonce,
            e.sig,
            e.ciphertext
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO envelope_ids (team, id, seq) VALUES (?1, ?2, ?3)",
        params![e.team.as_bytes(), e.id.as_bytes(), seq],
    )
    .unwrap();
}

/// WAL bytes per envelope of the version-5 relay on a copy of its file: lone pushes, then one
/// batch.
fn wal_schema_5(db: &Path, envs: &[Envelope]) -> (f64, f64) {
    let mut conn = Connection::open(db).unwrap();
    // The version-5 relay's connection settings (server/src/storage/sqlite.rs).
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.pragma_update(None, "secure_delete", "ON").unwrap();
    let page = page_size(db);
    let lone = wal_bytes_per_envelope(db, page, || {
        for e in envs {
            append_schema_5(&mut conn, std::slice::from_ref(e));
        }
    });
    let fresh: Vec<Envelope> = envs
        .iter()
        .map(|e| Envelope {
            doc: RecordId::random(),
            id: EnvelopeId::random(),
            ..e.clone()
        })
        .collect();
    let batch = wal_bytes_per_envelope(db, page, || append_schema_5(&mut conn, &fresh));
    (lone, batch)
}

/// Writes `envelopes` into a fresh file of schema version 5 (4 KiB pages, SQLite's default) as the
/// version-5 relay's append did.
fn write_schema_5(db: &Path, envelopes: &[(u64, Envelope)]) {
    let mut conn = Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    for sql in JSON_LAYOUT {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute_batch(SCHEMA_5).unwrap();
    conn.execute_batch("DROP TABLE log_json").unwrap();
    conn.pragma_update(None, "user_version", 5).unwrap();
    let tx = conn.transaction().unwrap();
    for (seq, e) in envelopes {
        tx.execute(
            "INSERT OR IGNORE INTO teams (id, head, created_ms) VALUES (?1, 0, 0)",
            [e.team.as_bytes()],
        )
        .unwrap();
        insert_schema_5(&tx, *seq as i64, e);
        tx.execute(
            "UPDATE teams SET head = max(head, ?1) WHERE id = ?2",
            params![*seq as i64, e.team.as_bytes()],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Checkpoints the WAL into the main file and returns the main file's size (the WAL is empty).
fn checkpointed_size(db: &Path) -> u64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let wal = std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len());
    std::fs::metadata(db).unwrap().len() + wal
}

/// Writes `envelopes` into a fresh file of the JSON layout as the version-4 relay's append did
/// (log row with the envelope's JSON, `envelope_ids`, the team's head).
fn write_json_layout(db: &Path, envelopes: &[(u64, Envelope)]) {
    let mut conn = Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    for sql in JSON_LAYOUT {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 4).unwrap();
    let tx = conn.transaction().unwrap();
    for (seq, e) in envelopes {
        tx.execute(
            "INSERT OR IGNORE INTO teams (id, head, created_ms) VALUES (?1, 0, 0)",
            [e.team.as_bytes()],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO log (team, seq, doc, envelope_id, kind, covers, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.team.as_bytes(),
                *seq as i64,
                e.doc.as_bytes(),
                e.id.as_bytes(),
                e.kind.code(),
                e.covers as i64,
                serde_json::to_string(e).unwrap()
            ],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO envelope_ids (team, id, seq) VALUES (?1, ?2, ?3)",
            params![e.team.as_bytes(), e.id.as_bytes(), *seq as i64],
        )
        .unwrap();
        tx.execute(
            "UPDATE teams SET head = max(head, ?1) WHERE id = ?2",
            params![*seq as i64, e.team.as_bytes()],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn figure(value: f64, unit: &str, goal: Option<f64>) -> serde_json::Value {
    serde_json::json!({"value": value, "unit": unit, "goal": goal, "lower_is_better": true})
}

fn main() {
    let n: usize = std::env::var("RELAY_BYTES_N")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let mut relay = Command::new(streetsync_tests::relay_binary(true))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(["--log", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(relay.stdout.take().unwrap());
    while !line.contains("listening on") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the relay did not start"
        );
    }
    let addr = line.split("listening on").nth(1).unwrap().trim().to_owned();
    let url = format!("http://{addr}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = Arc::new(Workspace::open(dir.path().join("a.db"), fixtures::key(1)).unwrap());
    a.create_team(fixtures::setup()).unwrap();
    let lead = SyncClient::new(a.clone(), &url).unwrap();
    rt.block_on(lead.sync_once(None)).unwrap();
    let mut rng = fixtures::Rng(0x5eed_2025_0bad_cafe);
    for _ in 0..n {
        let day = rng.below(730) as u32;
        a.create_contact(fixtures::draft(&mut rng, day)).unwrap();
    }
    let pushed = rt.block_on(lead.sync_once(None)).unwrap().pushed;
    assert_eq!(pushed as usize, n);
    relay.kill().unwrap();
    relay.wait().unwrap();

    let db = data.join("relay.sqlite3");
    let binary_bytes = checkpointed_size(&db);
    if let Some(keep) = std::env::var_os("RELAY_BYTES_KEEP") {
        std::fs::copy(&db, keep).unwrap();
    }
    let envelopes = streetsync_tests::relay_log(&Connection::open(&db).unwrap(), None);
    let ciphertext: u64 = envelopes
        .iter()
        .map(|(_, e)| e.ciphertext.len() as u64)
        .sum();
    let layout = |name: &str| {
        let db = dir.path().join(name).join("relay.sqlite3");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        db
    };
    let new = new_envelopes(&envelopes);

    // Schema 5, the "before": its size, its WAL per push on a copy, then migrated in place.
    let s5_db = layout("schema-5");
    write_schema_5(&s5_db, &envelopes);
    let s5_bytes = checkpointed_size(&s5_db);
    let s5_wal_db = layout("schema-5-wal");
    std::fs::copy(&s5_db, &s5_wal_db).unwrap();
    let (s5_wal_lone, s5_wal_batch) = wal_schema_5(&s5_wal_db, &new);
    let started = std::time::Instant::now();
    drop(SqliteStorage::open(s5_db.parent().unwrap()).unwrap());
    println!(
        "migrating the schema-5 file (migration 6 and the rebuild) took {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let s5_migrated_bytes = checkpointed_size(&s5_db);

    // Schema 4, the JSON bodies, and the same file after migrations 5 and 6.
    let json_db = layout("json");
    write_json_layout(&json_db, &envelopes);
    let json_bytes = checkpointed_size(&json_db);
    drop(SqliteStorage::open(json_db.parent().unwrap()).unwrap());
    let migrated_bytes = checkpointed_size(&json_db);

    // Today's layout: WAL per push on a copy of the relay's file.
    let wal_db = layout("today-wal");
    std::fs::copy(&db, &wal_db).unwrap();
    let (wal_lone, wal_batch) = wal_today(wal_db.parent().unwrap(), &new);

    let per = |bytes: u64| (bytes as f64 / ciphertext as f64 * 1000.0).round() / 1000.0;
    let envelopes_n = envelopes.len() as f64;
    println!(
        "{} envelopes, {ciphertext} ciphertext bytes ({:.0} per envelope); relay file {binary_bytes} B, \
         schema 5 {s5_bytes} B (migrated {s5_migrated_bytes} B), JSON layout {json_bytes} B (migrated {migrated_bytes} B)",
        envelopes.len(),
        ciphertext as f64 / envelopes_n
    );
    let figures = serde_json::json!({
        "relay_bytes_per_ciphertext_byte": figure(per(binary_bytes), "file bytes / ciphertext bytes (schema 6, 16 KiB pages)", Some(1.3)),
        "relay_bytes_per_ciphertext_byte_schema_5": figure(per(s5_bytes), "file bytes / ciphertext bytes (schema 5, 4 KiB pages)", Some(1.3)),
        "relay_bytes_per_ciphertext_byte_schema_5_migrated": figure(per(s5_migrated_bytes), "file bytes / ciphertext bytes (schema 5 file after migration 6 and the rebuild)", Some(1.3)),
        "relay_bytes_per_ciphertext_byte_json_layout": figure(per(json_bytes), "file bytes / ciphertext bytes (schema 4, the JSON bodies)", Some(1.3)),
        "relay_bytes_per_ciphertext_byte_migrated": figure(per(migrated_bytes), "file bytes / ciphertext bytes (schema 4 file after migrations 5 and 6 and the rebuild)", Some(1.3)),
        "relay_bytes_per_envelope": figure((binary_bytes as f64 / envelopes_n).round(), "bytes", None),
        "relay_bytes_per_envelope_schema_5": figure((s5_bytes as f64 / envelopes_n).round(), "bytes", None),
        "relay_wal_bytes_per_push": figure(wal_lone, "WAL bytes per push of one envelope, each its own commit (schema 6)", None),
        "relay_wal_bytes_per_push_schema_5": figure(s5_wal_lone, "WAL bytes per push of one envelope, each its own commit (schema 5)", None),
        "relay_wal_bytes_per_batched_envelope": figure(wal_batch, "WAL bytes per envelope, 50 in one commit (schema 6)", None),
        "relay_wal_bytes_per_batched_envelope_schema_5": figure(s5_wal_batch, "WAL bytes per envelope, 50 in one commit (schema 5)", None),
        "ciphertext_bytes_per_envelope": figure((ciphertext as f64 / envelopes_n).round(), "bytes", None),
        "envelopes": figure(envelopes_n, "envelopes", None),
    });
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(
        target.join("relay_bytes.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
}
