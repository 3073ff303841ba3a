//! Looking for erased data in the files it was stored in: every file under a directory (the
//! SQLite database, its `-wal`, `-shm` and any `-journal`, whatever else lies there) is read whole
//! and searched for byte strings. Used by the erasure suite (`tests/erasure.rs`) and meant for any
//! later test that erases (retention runs the same erase path).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// A byte string found in a file: which needle (by its label) and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file.
    pub file: PathBuf,
    /// The needle's label.
    pub needle: String,
    /// Byte offset of the first occurrence.
    pub offset: usize,
}

/// Every file under `dir`, recursively, in a stable order.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Searches every file under `dir` for each needle (`(label, bytes)`); empty needles are
/// refused, since they would match everywhere. Returns every needle found, with the first
/// offset in each file that holds it.
pub fn scan(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<Found> {
    assert!(
        needles.iter().all(|(_, n)| !n.is_empty()),
        "an empty needle matches everything"
    );
    let mut found = Vec::new();
    for file in files_under(dir) {
        // A file can vanish between listing and reading (SQLite removes a -journal): skip it.
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for (label, needle) in needles {
            if let Some(offset) = bytes
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
            {
                found.push(Found {
                    file: file.clone(),
                    needle: label.clone(),
                    offset,
                });
            }
        }
    }
    found
}

/// Needles from a ciphertext: `count` windows of `len` bytes spread over it (fewer if it is
/// short), each long enough that a chance match in unrelated bytes is out of the question.
pub fn fragments(
    label: &str,
    ciphertext: &[u8],
    len: usize,
    count: usize,
) -> Vec<(String, Vec<u8>)> {
    if ciphertext.len() < len {
        return Vec::new();
    }
    let span = ciphertext.len() - len;
    let count = count.max(1);
    (0..count)
        .map(|i| {
            let at = if count == 1 {
                0
            } else {
                span * i / (count - 1)
            };
            (
                format!("{label}[{at}..{}]", at + len),
                ciphertext[at..at + len].to_vec(),
            )
        })
        .collect()
}

/// A needle for a marker string written in plain text.
pub fn marker(text: &str) -> (String, Vec<u8>) {
    (format!("marker {text:?}"), text.as_bytes().to_vec())
}
