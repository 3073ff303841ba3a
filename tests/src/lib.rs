//! Cross-crate and whole-process tests of streetsync.
//!
//! The tests live in `tests/`, the benchmarks in `benches/`, and the helper processes they drive in
//! `src/bin/` (`ss-save-loop`: saves contacts until it is killed, for the crash test; `ss-device`:
//! one device as its own process). This library holds what several of them share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixed 32-byte storage key the crash test and `ss-save-loop` share.
pub const CRASH_KEY: [u8; 32] = [7; 32];

/// The real `streetsync-relay` binary: `STREETSYNC_RELAY_BIN` if set (CI builds the workspace
/// first), else built with cargo into a target dir of its own (`e2e-relay` for the debug build
/// tests use, `bench-relay` for the release build benchmarks use, inside `CARGO_TARGET_DIR` if set,
/// else inside `target/`), so a stale binary is never run, the outer cargo's lock is never waited
/// on, and an engineer with a target dir of their own does not share the relay build with others.
pub fn relay_binary(release: bool) -> PathBuf {
    if let Ok(p) = std::env::var("STREETSYNC_RELAY_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let (dir, profile) = if release {
        ("bench-relay", "release")
    } else {
        ("e2e-relay", "debug")
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"))
        .join(dir);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root)
        .args([
            "build",
            "-q",
            "-p",
            "streetsync-relay",
            "--bin",
            "streetsync-relay",
        ])
        .env("CARGO_TARGET_DIR", &target);
    if release {
        cmd.arg("--release");
    }
    let built = cmd.status().map(|s| s.success()).unwrap_or(false);
    assert!(built, "building the relay failed");
    target.join(profile).join("streetsync-relay")
}

/// Peak resident memory (`VmHWM`) of a live process in kB; `None` once it is gone.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Every envelope of a relay database's log (only record `doc`'s if given), in log order, read
/// from the log's columns as the relay stores them (each field in its own column, byte strings
/// raw: the relay's migration 5; the team and the author by their numbers, `teams.n` and
/// `authors.n`, and `team` and `seq` computed from the entry's position: migration 6).
pub fn relay_log(
    conn: &rusqlite::Connection,
    doc: Option<streetsync_wire::RecordId>,
) -> Vec<(u64, streetsync_wire::Envelope)> {
    let mut stmt = conn
        .prepare(
            "SELECT l.seq, t.id, l.v, l.doc, l.envelope_id, l.kind, l.epoch, a.id, l.covers,
                    l.nonce, l.ciphertext, l.sig
             FROM log l JOIN teams t ON t.n = l.team JOIN authors a ON a.n = l.author
             WHERE ?1 IS NULL OR l.doc = ?1 ORDER BY l.pos",
        )
        .expect("the relay's log table");
    stmt.query_map([doc.map(|d| d.as_bytes().to_vec())], |r| {
        Ok((
            r.get::<_, i64>(0)? as u64,
            streetsync_wire::Envelope {
                team: streetsync_wire::TeamId::from_bytes(r.get(1)?),
                v: r.get(2)?,
                doc: streetsync_wire::RecordId::from_bytes(r.get(3)?),
                id: streetsync_wire::EnvelopeId::from_bytes(r.get(4)?),
                kind: streetsync_wire::EnvelopeKind::from_code(r.get(5)?)
                    .expect("a known envelope kind"),
                epoch: r.get(6)?,
                author: streetsync_wire::DeviceId::from_bytes(r.get(7)?),
                covers: r.get::<_, i64>(8)? as u64,
                nonce: r.get(9)?,
                ciphertext: r.get(10)?,
                sig: r.get(11)?,
            },
        ))
    })
    .expect("the relay's log rows")
    .collect::<rusqlite::Result<Vec<_>>>()
    .expect("the relay's log rows")
}
