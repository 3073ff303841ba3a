//! Test hooks, only with the `testing` cargo feature: never part of the library that ships in
//! apps (`cargo build -p streetsync-ffi --profile release-mobile` builds without it).
//!
//! - the entry points of the fuzz targets into decoders private to the crate: sealed blobs,
//!   invite codes, bundle messages, and documents received from teammates. The document entry
//!   points run the device's own receive path (`engine::remote::check_foreign` over
//!   `doc::foreign`), not a replay of it;
//! - ways for tests to play a malicious or buggy teammate, or an old version of the app.

use std::path::Path;

use streetsync_wire::RecordId;

use crate::crypto::{KeySource, Purpose, Sealer, StorageKey};
use crate::engine::remote::{RemoteAuthor, check_foreign};
use crate::error::Result;
use crate::workspace::Workspace;

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
    crate::sync::invites::fuzz_parse_invite(code)
}

/// Decodes arbitrary bytes as a bundle message (what a device finds in its relay mailbox after
/// opening the outer seal).
pub fn decode_bundle_message(data: &[u8]) -> bool {
    crate::sync::rotation::fuzz_decode_bundle(data)
}

/// Receives arbitrary bytes as a teammate's changes for a record new on this device: the
/// device's own path (pre-check, strict or incremental load under the panic guard, missing
/// dependencies, kind, hydration as the kind it names, the reload check before storing). Returns
/// whether a device would store the record. A panic that escapes is a bug in our code: the guard
/// covers only Automerge and autosurgeon, exactly as on a device.
pub fn merge_document(data: &[u8]) -> bool {
    receive(None, data)
}

/// Receives arbitrary bytes into an existing record (`base`, a saved document a device made), as a
/// device does when a teammate's changes arrive for a record it holds: once as a local apply (no
/// author) and once as a worker's envelope (authorship and review rules). Returns whether a
/// device would store either result.
pub fn merge_into_document(base: &[u8], data: &[u8]) -> bool {
    let local = receive(Some(base), data);
    let worker = RemoteAuthor {
        device: streetsync_wire::DeviceId::from_bytes([0; 16]),
        role: streetsync_wire::Role::Worker,
        snapshot: false,
    };
    local | receive_as(Some(base), data, Some(&worker))
}

fn receive(base: Option<&[u8]>, data: &[u8]) -> bool {
    receive_as(base, data, None)
}

fn receive_as(base: Option<&[u8]>, data: &[u8], author: Option<&RemoteAuthor>) -> bool {
    // Received as the record the document names (a device refuses a document that names
    // another record), so the fuzzer reaches the hydration behind that check.
    let named = base.or(Some(data)).and_then(named_record);
    let id = named.unwrap_or(RecordId::from_bytes([0; 16]));
    let existing = match base {
        Some(b) => match crate::doc::load(b) {
            Ok(doc) => match crate::doc::kind_of(&doc) {
                Some(kind) => Some((kind, doc)),
                None => return false,
            },
            Err(_) => return false,
        },
        None => None,
    };
    match check_foreign(id, existing, data, author, None) {
        Ok(mut checked) => crate::doc::foreign::checked_save(id, &mut checked.merged).is_ok(),
        Err(_) => false,
    }
}

/// Whether a teammate's Automerge bytes pass the pre-check that runs before Automerge sees them.
pub fn precheck_document(data: &[u8]) -> bool {
    crate::doc::precheck::check(data).is_ok()
}

/// Opens a store at an older schema version (migration tests).
pub fn open_at_schema_version(
    path: impl AsRef<Path>,
    key: KeySource,
    version: u32,
) -> Result<Workspace> {
    Workspace::from_engine(crate::engine::Engine::open(path.as_ref(), key, version)?)
}

/// Sets a top-level string field of a record WITHOUT any validation or role check, and queues the
/// change for sync, so tests can play a malicious or buggy teammate whose changes the other
/// devices must refuse.
pub fn unchecked_change(ws: &Workspace, id: RecordId, field: &str, value: &str) -> Result<()> {
    ws.engine().unchecked_change(id, field, value)
}

/// The record id a saved document names in its root key `id`, if it loads and has one.
fn named_record(bytes: &[u8]) -> Option<RecordId> {
    if crate::doc::precheck::check(bytes).is_err() {
        return None;
    }
    let doc = crate::doc::foreign::guard(RecordId::from_bytes([0; 16]), || crate::doc::load(bytes))
        .ok()?
        .ok()?;
    match automerge::ReadDoc::get(&doc, automerge::ROOT, "id") {
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            automerge::ScalarValue::Str(id) => id.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The team keys this store holds, as `(epoch, key bytes)`, so a revocation test can prove that a
/// rotation made a new key (not the old bytes under a new number) and that a removed device,
/// given everything it holds, still cannot open what was sealed after its removal.
pub fn team_key_bytes(ws: &Workspace) -> Result<Vec<(u32, [u8; 32])>> {
    Ok(ws
        .engine()
        .team_keys()?
        .iter()
        .map(|k| (k.epoch, k.expose_for_test()))
        .collect())
}

/// Why [`open_envelope_with`] could not open an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// The AEAD tag did not verify under the key (wrong key, or a changed header or ciphertext).
    Aead,
}

/// Opens an envelope's ciphertext with raw key bytes, whatever epoch the envelope names (the
/// attacker's view: a removed device trying the old key it holds on a newer envelope).
pub fn open_envelope_with(
    key: [u8; 32],
    env: &streetsync_wire::Envelope,
) -> std::result::Result<Vec<u8>, OpenFailure> {
    crate::crypto::TeamKey::from_test_bytes(env.epoch, key)
        .open(env.nonce, &env.header_bytes(), &env.ciphertext)
        .map(|p| p.to_vec())
        .ok_or(OpenFailure::Aead)
}

/// Receives a saved document (`data`) into an existing record (`base`) as an envelope from a
/// teammate with `role`, through the device's own rules (`check_foreign`): authorship (unless
/// `snapshot`, whose changes may be anyone's) and the role rules (only leads approve contacts or
/// ask for changes, only leads change the Team document). The refusal is returned as the error a
/// device would quarantine the envelope with.
pub fn receive_from(
    base: &[u8],
    data: &[u8],
    role: streetsync_wire::Role,
    device: streetsync_wire::DeviceId,
    snapshot: bool,
) -> Result<()> {
    let doc = crate::doc::load(base)?;
    let kind = crate::doc::kind_of(&doc)
        .ok_or_else(|| crate::error::Error::Protocol("the base names no kind".into()))?;
    let id = named_record(base).unwrap_or(RecordId::from_bytes([0; 16]));
    let author = RemoteAuthor {
        device,
        role,
        snapshot,
    };
    check_foreign(id, Some((kind, doc)), data, Some(&author), None).map(|_| ())
}

/// The store's Team document as saved bytes (`Automerge::save`), for tests that play a lead
/// sending a change of it that breaks the team rules.
pub fn team_document(ws: &Workspace) -> Result<Vec<u8>> {
    let id = ws.engine().team_doc_id()?;
    ws.engine().export_document(id)
}
