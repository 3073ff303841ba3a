//! The plaintext scanner of `the_relay_never_holds_plaintext`: looks for marker strings in every
//! form a broken seal could leave them in, not only as raw bytes of a file.
//!
//! Every file is scanned as raw bytes (the `-wal` too, which holds pages not yet checkpointed). A
//! SQLite file is also opened (a copy of it and its `-wal`) and every text and blob value of every
//! table is decoded before it is searched: JSON is walked field by field, runs of base64, base64url
//! and hex are decoded, and binary that loads as Automerge (documents and change chunks) is turned
//! into JSON, so a "seal" that returned base64url of the plaintext, or the plaintext document
//! itself, is found. Every binary value of at least [`LONG`] bytes, and everything of that length
//! a base64 run decodes to, is also deflated: ciphertext does not compress, a plaintext Automerge
//! change or JSON does, so a weak or identity seal shows up even when the markers are not in it.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};

/// Binary values at least this long must not compress.
pub const LONG: usize = 256;
/// Deflated size / size below this counts as compressible. Ciphertext lands at about 1.0 (a few
/// bytes above); Automerge changes and JSON with text land well below 0.9.
pub const MIN_RATIO: f64 = 0.95;
/// How deep decodings nest (base64 in JSON in a blob ...).
const DEPTH: usize = 5;

/// What a scan saw.
#[derive(Debug, Default)]
pub struct Scan {
    /// `(marker, where)` for every marker found.
    pub found: Vec<(String, String)>,
    /// `(where, length, ratio)` of long binary values that compress.
    pub compressible: Vec<(String, usize, f64)>,
    /// SQLite values read.
    pub values: usize,
    /// Long binary values whose compression was checked.
    pub long_binary: usize,
    /// Values decoded from base64/base64url/hex runs.
    pub decoded: usize,
    /// Values of the relay log's `ciphertext` column (raw bytes since the relay's migration 5),
    /// each scanned as binary: markers, Automerge, and compression if it is [`LONG`].
    pub ciphertexts: usize,
    /// Binary values that loaded as Automerge.
    pub automerge: usize,
    /// Tables read.
    pub tables: usize,
}

impl Scan {
    /// Panics with every finding if anything was found.
    pub fn assert_clean(&self, what: &str) {
        assert!(
            self.found.is_empty(),
            "{what}: plaintext found: {:#?}",
            self.found
        );
        assert!(
            self.compressible.is_empty(),
            "{what}: long values that compress (not ciphertext): {:#?}",
            self.compressible
        );
    }

    /// Whether `marker` was found.
    pub fn saw(&self, marker: &str) -> bool {
        self.found.iter().any(|(m, _)| m == marker)
    }
}

/// Scans every file in `dir` (not recursive) whose name starts with `prefix`.
pub fn scan_dir(dir: &Path, prefix: &str, markers: &[&str]) -> Scan {
    let mut scan = Scan::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no file {prefix}* in {}", dir.display());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let name = f.display().to_string();
        // Raw: markers as they are, and base64 runs in the raw pages (the WAL holds page images).
        find_markers(&bytes, &name, markers, &mut scan);
        if bytes.starts_with(b"SQLite format 3\0") {
            scan_database(&f, markers, &mut scan);
        } else if name.ends_with("-wal") {
            scan_text_runs(
                &String::from_utf8_lossy(&bytes),
                &name,
                markers,
                &mut scan,
                1,
            );
        }
    }
    scan
}

/// Opens a copy of the database at `path` (with its `-wal`) and scans every value of every table.
pub fn scan_database(path: &Path, markers: &[&str], scan: &mut Scan) {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("scan.sqlite3");
    std::fs::copy(path, &copy).unwrap();
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.exists() {
        std::fs::copy(&wal, tmp.path().join("scan.sqlite3-wal")).unwrap();
    }
    let conn = rusqlite::Connection::open(&copy).unwrap();
    scan_connection(&conn, &path.display().to_string(), markers, scan);
}

/// Scans every value of every table of an open database.
pub fn scan_connection(conn: &rusqlite::Connection, name: &str, markers: &[&str], scan: &mut Scan) {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in tables {
        scan.tables += 1;
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let cols = stmt.column_count();
        let ciphertext_col = (t == "log")
            .then(|| stmt.column_names().position(|c| c == "ciphertext"))
            .flatten();
        let mut rows = stmt.query([]).unwrap();
        let mut n = 0;
        while let Some(row) = rows.next().unwrap() {
            n += 1;
            for c in 0..cols {
                scan.values += 1;
                let at = format!("{name} table {t} row {n} column {c}");
                if ciphertext_col == Some(c) {
                    scan.ciphertexts += 1;
                    // Binary whatever it holds: a short ciphertext can be valid UTF-8 by chance,
                    // and then would be scanned as text only.
                    if let rusqlite::types::ValueRef::Blob(b) = row.get_ref(c).unwrap()
                        && std::str::from_utf8(b).is_ok()
                    {
                        scan_binary(b, &at, markers, scan);
                    }
                }
                match row.get_ref(c).unwrap() {
                    rusqlite::types::ValueRef::Text(b) => scan_bytes(b, &at, markers, scan, 0),
                    rusqlite::types::ValueRef::Blob(b) => scan_bytes(b, &at, markers, scan, 0),
                    _ => {}
                }
            }
        }
    }
}

fn find_markers(bytes: &[u8], at: &str, markers: &[&str], scan: &mut Scan) {
    for m in markers {
        if bytes.windows(m.len()).any(|w| w == m.as_bytes())
            && !scan.found.iter().any(|(fm, fa)| fm == m && fa == at)
        {
            scan.found.push(((*m).to_owned(), at.to_owned()));
        }
    }
}

/// Scans one value: as it is, then decoded.
pub fn scan_bytes(bytes: &[u8], at: &str, markers: &[&str], scan: &mut Scan, depth: usize) {
    find_markers(bytes, at, markers, scan);
    if depth > DEPTH {
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => scan_text(text, at, markers, scan, depth),
        Err(_) => scan_binary(bytes, at, markers, scan),
    }
}

/// Records `bytes` (at least [`LONG`] bytes) if it compresses.
fn check_long(bytes: &[u8], at: &str, scan: &mut Scan) {
    if bytes.len() >= LONG {
        scan.long_binary += 1;
        let r = ratio(bytes);
        if r < MIN_RATIO {
            scan.compressible
                .push((at.to_owned(), bytes.len(), (r * 1000.0).round() / 1000.0));
        }
    }
}

fn scan_binary(bytes: &[u8], at: &str, markers: &[&str], scan: &mut Scan) {
    check_long(bytes, at, scan);
    // Automerge documents may deflate their columns; loading them gives the text back.
    if let Ok(doc) = automerge::AutoCommit::load(bytes) {
        scan.automerge += 1;
        let json = serde_json::to_string(&automerge::AutoSerde::from(&doc)).unwrap_or_default();
        find_markers(
            json.as_bytes(),
            &format!("{at} (as Automerge)"),
            markers,
            scan,
        );
    }
}

fn scan_text(text: &str, at: &str, markers: &[&str], scan: &mut Scan, depth: usize) {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text)
        && (json.is_object() || json.is_array() || json.is_string())
    {
        walk_json(&json, at, markers, scan, depth);
    }
    scan_text_runs(text, at, markers, scan, depth);
}

fn walk_json(v: &serde_json::Value, at: &str, markers: &[&str], scan: &mut Scan, depth: usize) {
    match v {
        serde_json::Value::String(s) => scan_bytes(
            s.as_bytes(),
            &format!("{at} (JSON)"),
            markers,
            scan,
            depth + 1,
        ),
        serde_json::Value::Array(a) => a
            .iter()
            .for_each(|x| walk_json(x, at, markers, scan, depth)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            find_markers(k.as_bytes(), at, markers, scan);
            walk_json(x, &format!("{at}.{k}"), markers, scan, depth)
        }),
        _ => {}
    }
}

/// Decodes every run of base64/base64url/hex characters of at least 12 characters.
fn scan_text_runs(text: &str, at: &str, markers: &[&str], scan: &mut Scan, depth: usize) {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=');
    let mut runs = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (is_b64(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= 12 {
                    runs.push(&text[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    for run in runs {
        let trimmed = run.trim_end_matches('=');
        let mut decodings = Vec::new();
        for enc in [&BASE64URL_NOPAD, &BASE64_NOPAD] {
            if let Ok(d) = enc.decode(trimmed.as_bytes()) {
                decodings.push(d);
            }
        }
        for enc in [&BASE64URL, &BASE64] {
            if let Ok(d) = enc.decode(run.as_bytes()) {
                decodings.push(d);
            }
        }
        // A run cut at a page boundary: decode the longest prefix of whole 4-character groups.
        let whole = trimmed.len() / 4 * 4;
        if whole >= 12 && whole < trimmed.len() {
            for enc in [&BASE64URL_NOPAD, &BASE64_NOPAD] {
                if let Ok(d) = enc.decode(&trimmed.as_bytes()[..whole]) {
                    decodings.push(d);
                }
            }
        }
        if run.len() % 2 == 0
            && let Ok(d) = HEXLOWER_PERMISSIVE.decode(run.as_bytes())
        {
            decodings.push(d);
        }
        decodings.sort();
        decodings.dedup();
        for d in decodings {
            scan.decoded += 1;
            let at = format!("{at} (decoded run)");
            // What a base64 run carries is ciphertext on the relay; decoded text is checked too
            // (binary is checked by scan_binary).
            if std::str::from_utf8(&d).is_ok() {
                check_long(&d, &at, scan);
            }
            scan_bytes(&d, &at, markers, scan, depth + 1);
        }
    }
}

/// Deflated size / size.
pub fn ratio(bytes: &[u8]) -> f64 {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    let out = e.finish().unwrap();
    out.len() as f64 / bytes.len() as f64
}
