//! Automerge documents as this crate opens them, and their mapping to records.
//!
//! autosurgeon's `Text` computes edits in UTF-8 byte offsets, so every document must be viewed with
//! the UTF-8 text encoding (a local view setting, not stored in the document); otherwise a note with
//! an umlaut would be spliced at the wrong place.
//!
//! Bytes from a teammate enter a document only through [`foreign`]: Automerge 0.12 trusts the
//! sizes a chunk declares (a small input can make it allocate gigabytes, see [`precheck`]) and
//! panics on some crafted input. Devices, the fuzz targets and the regression fixtures all call
//! the same functions there.

use automerge::{AutoCommit, LoadOptions, ReadDoc, TextEncoding};

use crate::kinds::RecordKind;

pub(crate) mod client;
pub(crate) mod contact;
pub(crate) mod foreign;
pub(crate) mod precheck;
pub(crate) mod team;

/// A new, empty document.
pub(crate) fn new() -> AutoCommit {
    AutoCommit::new_with_encoding(TextEncoding::Utf8CodeUnit)
}

/// Loads a saved document (or concatenated changes) this device wrote or already checked.
pub(crate) fn load(bytes: &[u8]) -> Result<AutoCommit, automerge::AutomergeError> {
    AutoCommit::load_with_options(
        bytes,
        LoadOptions::new().text_encoding(TextEncoding::Utf8CodeUnit),
    )
}

/// Whether the record was deleted (the root key `deleted` is `true`).
pub(crate) fn is_deleted(doc: &AutoCommit) -> bool {
    matches!(
        doc.get(automerge::ROOT, "deleted"),
        Ok(Some((automerge::Value::Scalar(s), _))) if matches!(s.as_ref(), automerge::ScalarValue::Boolean(true))
    )
}

/// The record kind a document names in its root key `kind`.
pub(crate) fn kind_of(doc: &AutoCommit) -> Option<RecordKind> {
    match doc.get(automerge::ROOT, "kind") {
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            automerge::ScalarValue::Str(k) => RecordKind::from_name(k),
            _ => None,
        },
        _ => None,
    }
}
