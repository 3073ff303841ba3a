//! Automerge documents as this crate opens them.
//!
//! autosurgeon's `Text` computes edits in UTF-8 byte offsets, so every document must be viewed with
//! the UTF-8 text encoding (a local view setting, not stored in the document); otherwise a note with
//! an umlaut would be spliced at the wrong place.
//!
//! Bytes from a teammate go through [`load_foreign_into`]: Automerge 0.12 trusts the sizes a chunk
//! declares and can be made to allocate gigabytes by a small input, which aborts the process (see
//! [`precheck`]).

use automerge::{AutoCommit, LoadOptions, TextEncoding};
use streetsync_wire::RecordId;

use crate::{Error, Result};

pub(crate) mod precheck;

/// A new, empty document.
pub(crate) fn new() -> AutoCommit {
    AutoCommit::new_with_encoding(TextEncoding::Utf8CodeUnit)
}

/// Loads a saved document (or concatenated changes).
pub(crate) fn load(bytes: &[u8]) -> Result<AutoCommit, automerge::AutomergeError> {
    AutoCommit::load_with_options(
        bytes,
        LoadOptions::new().text_encoding(TextEncoding::Utf8CodeUnit),
    )
}

/// Merges a teammate's Automerge bytes (changes or a saved document) into `doc` of record `id`, the
/// way every foreign byte must enter a document: [`precheck::check`] first, because a declared
/// size Automerge expands at once can abort the process (no guard can catch a failed allocation),
/// then `load_incremental` under `workspace::guard_foreign`, because Automerge panics on some
/// crafted input. Returns the number of new operations, as `load_incremental` does.
///
/// Every refusal is `Error::Protocol` (the envelope is quarantined as `malformed_document` and the
/// sync goes on). When the pre-check refuses, `doc` is untouched; when Automerge fails, `doc` may be
/// half-merged and must be dropped, as after any failure of `load_incremental`.
pub(crate) fn load_foreign_into(id: RecordId, doc: &mut AutoCommit, bytes: &[u8]) -> Result<usize> {
    precheck::check(bytes).map_err(|e| {
        Error::Protocol(format!(
            "changes for record {id} are refused before loading: {e}"
        ))
    })?;
    crate::workspace::guard_foreign(id, || doc.load_incremental(bytes))?
        .map_err(|e| Error::Protocol(format!("changes for record {id} do not load: {e}")))
}
