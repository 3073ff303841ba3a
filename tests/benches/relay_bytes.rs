//! Bytes the relay keeps on disk per byte of ciphertext (issue 18, goal at most 1.3).
//!
//! Device A (a store in this process) creates N realistic contacts (the store bench's generator
//! and seed, default N = 10,000) and pushes them to the real `streetsync-relay` process; the relay
//! is then stopped, its WAL checkpointed into the main file, and the file's size divided by the
//! ciphertext bytes of every envelope in its log: `relay_bytes_per_ciphertext_byte`.
//!
//! The same envelopes are also written, in one transaction, into a file of the relay's previous
//! layout (schema version 4: each envelope's JSON, base64url ciphertext, in `log.body`) exactly as
//! that relay's append wrote them, and measured the same way (`..._json_layout`, the "before"
//! figure). That copy is then opened by the relay's storage, which migrates it in place
//! (migration 5); its size afterwards is `..._migrated`.
//!
//! The figures are sizes, not times: a debug build gives the same numbers
//! (`cargo bench -p streetsync-tests --bench relay_bytes --profile dev`).
//! `RELAY_BYTES_N` sets N. Figures go to stdout and `target/bench/relay_bytes.json`.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../core/tests/common/mod.rs"]
mod fixtures;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rusqlite::{Connection, params};
use streetsync_core::*;
use streetsync_wire::Envelope;

/// The relay's migrations up to the JSON layout (schema version 4).
const JSON_LAYOUT: [&str; 4] = [
    include_str!("../../server/migrations/0001_init.sql"),
    include_str!("../../server/migrations/0002_invites.sql"),
    include_str!("../../server/migrations/0003_invite_confirm.sql"),
    include_str!("../../server/migrations/0004_bundle_sender.sql"),
];

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
    let envelopes = streetsync_tests::relay_log(&Connection::open(&db).unwrap(), None);
    let ciphertext: u64 = envelopes
        .iter()
        .map(|(_, e)| e.ciphertext.len() as u64)
        .sum();
    let json_db = dir.path().join("json").join("relay.sqlite3");
    std::fs::create_dir_all(json_db.parent().unwrap()).unwrap();
    write_json_layout(&json_db, &envelopes);
    let json_bytes = checkpointed_size(&json_db);
    drop(
        streetsync_relay::storage::sqlite::SqliteStorage::open(json_db.parent().unwrap()).unwrap(),
    );
    let migrated_bytes = checkpointed_size(&json_db);

    let per = |bytes: u64| (bytes as f64 / ciphertext as f64 * 1000.0).round() / 1000.0;
    let envelopes_n = envelopes.len() as f64;
    println!(
        "{} envelopes, {ciphertext} ciphertext bytes ({:.0} per envelope); relay file {binary_bytes} B, JSON layout {json_bytes} B, migrated {migrated_bytes} B",
        envelopes.len(),
        ciphertext as f64 / envelopes_n
    );
    let figures = serde_json::json!({
        "relay_bytes_per_ciphertext_byte": figure(per(binary_bytes), "file bytes / ciphertext bytes", Some(1.3)),
        "relay_bytes_per_ciphertext_byte_json_layout": figure(per(json_bytes), "file bytes / ciphertext bytes (schema 4, the JSON bodies)", Some(1.3)),
        "relay_bytes_per_ciphertext_byte_migrated": figure(per(migrated_bytes), "file bytes / ciphertext bytes (schema 4 file after migration 5)", Some(1.3)),
        "relay_bytes_per_envelope": figure((binary_bytes as f64 / envelopes_n).round(), "bytes", None),
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
