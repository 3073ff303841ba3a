//! Reading every byte a test left on disk: each file under a folder (databases, WAL, shared
//! memory, journals, anything else), and looking for a byte string in it.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

/// Every file under `dir`, recursively, with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        } else if p.is_dir() {
            out.extend(files_under(&p));
        }
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// 24 bytes from the middle of `bytes`: a fragment of a ciphertext that no other data repeats.
pub fn middle_fragment(bytes: &[u8]) -> Vec<u8> {
    let mid = bytes.len() / 2;
    bytes[mid.saturating_sub(12)..(mid + 12).min(bytes.len())].to_vec()
}
