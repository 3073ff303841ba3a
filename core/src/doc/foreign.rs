//! The one way a teammate's Automerge bytes enter a document.
//!
//! Every step that touches outside bytes is here, in the order a device runs them: the
//! [`precheck`](super::precheck) (a declared size Automerge expands at once can abort the process,
//! and no guard catches a failed allocation), then a strict load or a `load_incremental` merge
//! under [`guard`] (Automerge 0.12 panics on some crafted input), the missing-dependency check,
//! the authorship read of the new changes, and the reload check before anything is stored. The
//! engine's remote apply (`engine::remote`), the fuzz targets and the regression fixtures call
//! these functions and nothing else, so fuzzing them fuzzes what devices run.
//!
//! Every refusal is `Error::Protocol` (the envelope is quarantined as a malformed document and the
//! sync goes on). A document that failed half-way is dropped with the error, never stored.

use automerge::{ActorId, AutoCommit, ChangeHash};
use streetsync_wire::RecordId;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Runs Automerge or autosurgeon code on a document that holds a teammate's bytes: a panic
/// becomes `Error::Protocol`, so a malicious or buggy member cannot crash a device. (This needs
/// `panic = "unwind"`, Rust's default; an app built with `panic = "abort"` loses it.)
pub(crate) fn guard<T>(id: RecordId, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        Error::Protocol(format!(
            "changes for record {id} crash the document library; refused"
        ))
    })
}

fn refused(id: RecordId, e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!(
        "changes for record {id} are refused before loading: {e}"
    ))
}

/// The pre-check alone, as a refusal of record `id`.
pub(crate) fn precheck(id: RecordId, bytes: &[u8]) -> Result<()> {
    super::precheck::check(bytes).map_err(|e| refused(id, e))
}

/// Whether `bytes` start with an Automerge document chunk (a whole saved document) rather than
/// change chunks: magic bytes, a 4-byte checksum, then the chunk type, 0 for a document.
pub(crate) fn is_saved_document(bytes: &[u8]) -> bool {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    bytes.len() > 9 && bytes[..4] == MAGIC && bytes[8] == 0
}

/// Loads a teammate's bytes strictly, as the only content of a record new on this device.
/// `Ok(None)` when Automerge does not load them strictly (changes waiting for earlier ones,
/// damaged bytes): [`open_for_merge`]'s incremental path then gives the precise answer. Pure, so
/// the sync client runs it for a whole page on several threads before the page's transaction.
pub(crate) fn load_new(id: RecordId, bytes: &[u8]) -> Result<Option<AutoCommit>> {
    precheck(id, bytes)?;
    Ok(guard(id, || super::load(bytes))?.ok())
}

/// A document that received a teammate's bytes, not yet checked against any rule.
pub(crate) struct Merged {
    /// The document after the merge.
    pub(crate) doc: AutoCommit,
    /// The heads before the merge (empty for a record new here).
    pub(crate) old_heads: Vec<ChangeHash>,
    /// The received bytes are a whole saved document that loaded strictly as the record's only
    /// content: fit to be stored as they came (see [`stored_form`]).
    pub(crate) whole: bool,
}

/// Opens the document that receives a teammate's bytes for record `id`. A record already here is
/// merged into (`load_incremental`). A record new here is loaded strictly from the bytes alone
/// (or taken from `preloaded`, the same [`load_new`] done ahead of time). Whatever does not load
/// strictly takes the incremental path, which yields the precise error. Changes whose
/// dependencies are missing are refused with [`Error::MissingDependencies`]: `save` would drop
/// them, so the caller keeps them until the earlier changes arrive.
pub(crate) fn open_for_merge(
    id: RecordId,
    existing: Option<AutoCommit>,
    bytes: &[u8],
    preloaded: Option<AutoCommit>,
) -> Result<Merged> {
    let merged = match existing {
        None => {
            let strict = match preloaded {
                Some(doc) => Some(doc),
                None => load_new(id, bytes)?,
            };
            match strict {
                Some(doc) => Merged {
                    doc,
                    old_heads: Vec::new(),
                    whole: is_saved_document(bytes),
                },
                // Not `unwrap_or_default`: a default `AutoCommit` has the wrong text encoding.
                None => merge_into(id, super::new(), bytes)?,
            }
        }
        Some(mut doc) => {
            precheck(id, bytes)?;
            let old_heads = doc.get_heads();
            let mut m = merge_into(id, doc, bytes)?;
            m.old_heads = old_heads;
            m
        }
    };
    let mut doc = merged.doc;
    if !guard(id, || doc.get_missing_deps(&[]).is_empty())? {
        return Err(Error::MissingDependencies { id });
    }
    Ok(Merged { doc, ..merged })
}

fn merge_into(id: RecordId, mut doc: AutoCommit, bytes: &[u8]) -> Result<Merged> {
    guard(id, || doc.load_incremental(bytes))?
        .map_err(|e| Error::Protocol(format!("changes for record {id} do not load: {e}")))?;
    Ok(Merged {
        doc,
        old_heads: Vec::new(),
        whole: false,
    })
}

/// The actors of the changes the merge added (change metadata only: building the full changes
/// with `get_changes` would re-encode every operation).
pub(crate) fn new_actors(id: RecordId, m: &mut Merged) -> Result<Vec<ActorId>> {
    let heads = m.old_heads.clone();
    guard(id, || {
        m.doc
            .get_changes_meta(&heads)
            .iter()
            .map(|c| c.actor.clone().into_owned())
            .collect()
    })
}

/// The bytes to store for a merged document, after checking that they load again; `None` when
/// the received bytes themselves are to be stored. Automerge 0.12 merges some crafted changes
/// without an error and then saves a document it cannot load
/// (`fuzz/regressions/document/crash-ed3fe699*`); stored, such a document would leave the record
/// unreadable on every device. A record new here whose received bytes loaded strictly is stored
/// as it came: those bytes are both the reload check and the saved form, which spares a fresh
/// device's bootstrap two Automerge passes per record.
pub(crate) fn checked_save(id: RecordId, m: &mut Merged) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if m.whole {
        return Ok(None);
    }
    let saved = Zeroizing::new(guard(id, || m.doc.save())?);
    if let Err(e) = guard(id, || super::load(&saved))? {
        return Err(Error::Protocol(format!(
            "changes for record {id} leave a document that does not load: {e}"
        )));
    }
    Ok(Some(saved))
}
