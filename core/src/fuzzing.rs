//! Entry points for fuzz targets into decoders that are private to the crate: sealed blobs,
//! invite codes, bundle messages, and documents received from teammates. Not an API: hidden from
//! the docs and exempt from compatibility.

use crate::crypto::{Purpose, Sealer, StorageKey};

/// Opens arbitrary bytes as a sealed at-rest blob (must fail cleanly, never panic).
pub fn open_sealed(data: &[u8]) -> bool {
    let Ok(key) = StorageKey::from_bytes(&[42; 32]) else {
        return false;
    };
    let Ok(sealer) = Sealer::new(&key) else {
        return false;
    };
    sealer
        .open(Purpose::Document, 1, b"fuzz", data, String::new)
        .is_ok()
}

/// Parses arbitrary text as an invite code.
pub fn parse_invite_code(code: &str) -> bool {
    crate::sync::membership_fuzz::parse_invite(code)
}

/// Decodes arbitrary bytes as a bundle message (what a device finds in its relay mailbox after
/// opening the outer seal).
pub fn decode_bundle_message(data: &[u8]) -> bool {
    crate::sync::membership_fuzz::decode_bundle(data)
}

/// Loads arbitrary bytes as Automerge changes or a saved document, the way a teammate's envelope
/// is merged, and hydrates it as every record kind. A malicious or buggy member must not crash a
/// device: this must return, whatever the bytes. Like `workspace::apply_checked`, it refuses what
/// the pre-check refuses and turns a panic inside Automerge or autosurgeon into a refusal
/// (`document::load_foreign_into`, `workspace::guard_foreign`).
pub fn merge_document(data: &[u8]) -> bool {
    let id = streetsync_wire::RecordId::from_bytes([0; 16]);
    crate::workspace::guard_foreign(id, || merge_unguarded(data)).unwrap_or(false)
}

/// Whether a teammate's Automerge bytes pass the pre-check that runs before every
/// `load_incremental` of foreign bytes (`document::precheck::check`). The fuzz crate's replay of
/// the receive path on an existing record (`fuzz/src/receive.rs`) calls Automerge directly and
/// must refuse what a device refuses, or it would run into the memory bombs the check keeps out.
pub fn precheck_document(data: &[u8]) -> bool {
    crate::document::precheck::check(data).is_ok()
}

fn merge_unguarded(data: &[u8]) -> bool {
    let id = streetsync_wire::RecordId::from_bytes([0; 16]);
    let mut doc = crate::document::new();
    // The pre-check and the guarded `load_incremental`, as `workspace::apply_checked` merges.
    if crate::document::load_foreign_into(id, &mut doc, data).is_err() {
        return false;
    }
    let contact = autosurgeon::hydrate::<_, crate::contact::ContactDoc>(&doc)
        .ok()
        .map(|c| c.to_contact().is_ok());
    let client = autosurgeon::hydrate::<_, crate::client::ClientDoc>(&doc)
        .ok()
        .map(|c| c.to_client().is_ok());
    let team = autosurgeon::hydrate::<_, crate::team::TeamDoc>(&doc)
        .ok()
        .map(|t| t.to_team().is_ok());
    contact.is_some() || client.is_some() || team.is_some()
}
