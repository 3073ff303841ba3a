//! The stored form of a record's document (migration 0007): the `Automerge::save` bytes, or
//! those bytes deflated against a dictionary of the documents' map keys.
//!
//! Automerge deflates only columns of at least 256 bytes, so in a contact document of under a
//! kilobyte the key strings of its two dozen fields, and most other columns, are stored as they
//! are. Deflating the whole saved document against a dictionary of those keys saves about a
//! fifth (855 → 675 bytes for the bench's contacts). The saved bytes come back exactly, so what a
//! device pushes, and an outbox entry that points at the document, are unchanged.
//!
//! A saved Automerge document starts with its magic bytes (`85 6f 4a 83`), so a stored body
//! starting with [`DEFLATED`] is never a plain one, and stores written before 0007 read as they
//! are.

use std::sync::LazyLock;

use zeroize::Zeroizing;

use super::compression;
use crate::crypto::{Purpose, Sealer};
use crate::doc::precheck::MAX_INFLATED_BYTES;
use crate::error::{Error, Result};

/// The first byte of a deflated document.
const DEFLATED: u8 = 1;

/// The largest document stored deflated; a larger one is stored as saved. Also the bound on
/// inflating one, so a damaged body cannot inflate without end.
const MAX_DEFLATED_DOCUMENT: usize = MAX_INFLATED_BYTES as usize;

/// The map keys of the Contact document and of the maps inside it, each after its length as
/// Automerge writes them, the contact's own keys last (nearest, so cheapest to refer to). Part of
/// the stored format: it never changes; a new dictionary needs a new first byte.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const NESTED: [&str; 13] = [
        "lat",
        "lon",
        "consent",
        "outcome",
        "partner_id",
        "reason",
        "given_on",
        "purpose",
        "recipient",
        "revoked_on",
        "scope",
        "at",
        "text",
    ];
    const CONTACT: [&str; 28] = [
        "age_band",
        "area_id",
        "author",
        "client_code",
        "comments",
        "created_at",
        "date",
        "end_time",
        "first_contact",
        "gender",
        "housing",
        "id",
        "interventions",
        "kind",
        "location",
        "materials",
        "note",
        "persons",
        "place",
        "referrals",
        "retention",
        "review",
        "safeguarding",
        "schema_version",
        "setting",
        "start_time",
        "topics",
        "updated_at",
    ];
    let mut d = Vec::new();
    for key in NESTED.iter().chain(CONTACT.iter()) {
        d.push(key.len() as u8);
        d.extend_from_slice(key.as_bytes());
    }
    d
});

/// Seals a saved document for the `documents` table, deflated where that is shorter.
pub(super) fn seal(sealer: &Sealer, kind: u8, id: &[u8], saved: &[u8]) -> Result<Vec<u8>> {
    if saved.len() <= MAX_DEFLATED_DOCUMENT {
        let deflated = Zeroizing::new(compression::deflate(saved, &DICTIONARY)?);
        // Bytes that start like a deflated body are never stored as they are.
        if deflated.len() + 1 < saved.len() || saved.first() == Some(&DEFLATED) {
            let mut body = Zeroizing::new(Vec::with_capacity(deflated.len() + 1));
            body.push(DEFLATED);
            body.extend_from_slice(&deflated);
            return sealer.seal(Purpose::Document, kind, id, &body);
        }
    }
    sealer.seal(Purpose::Document, kind, id, saved)
}

/// Whether an opened body of the `documents` table is in the compact form already (and not the
/// saved bytes as they are, as stores before migration 0007 hold them).
pub(super) fn is_compact(opened: &[u8]) -> bool {
    opened.first() == Some(&DEFLATED)
}

/// Opens a body of the `documents` table: the saved document's bytes, as they were saved.
pub(super) fn open(
    sealer: &Sealer,
    kind: u8,
    id: &[u8],
    body: &[u8],
    what: impl Fn() -> String,
) -> Result<Zeroizing<Vec<u8>>> {
    let plain = sealer.open(Purpose::Document, kind, id, body, &what)?;
    match plain.split_first() {
        Some((&DEFLATED, deflated)) => {
            compression::inflate(deflated, &DICTIONARY, MAX_DEFLATED_DOCUMENT)
                .map(Zeroizing::new)
                .ok_or_else(|| Error::Corrupt { what: what() })
        }
        _ => Ok(plain),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::StorageKey;

    fn sealer() -> Sealer {
        Sealer::new(&StorageKey::from_bytes(&[3; 32]).unwrap()).unwrap()
    }

    fn saved_contact() -> Vec<u8> {
        use automerge::transaction::Transactable;
        let mut doc = crate::doc::new();
        for (k, v) in [
            ("kind", "contact"),
            ("area_id", "innenstadt"),
            ("place", "Hbf"),
        ] {
            doc.put(automerge::ROOT, k, v).unwrap();
        }
        doc.put(automerge::ROOT, "schema_version", 3_u64).unwrap();
        doc.save()
    }

    #[test]
    fn a_document_comes_back_byte_for_byte_and_smaller() {
        let s = sealer();
        let saved = saved_contact();
        let body = seal(&s, 2, b"id", &saved).unwrap();
        let plain_sealed = s.seal(Purpose::Document, 2, b"id", &saved).unwrap();
        assert!(
            body.len() < plain_sealed.len(),
            "{} vs {}",
            body.len(),
            plain_sealed.len()
        );
        assert_eq!(&*open(&s, 2, b"id", &body, String::new).unwrap(), &saved);
        // A body from before migration 0007 (the saved bytes sealed as they are) reads too.
        assert_eq!(
            &*open(&s, 2, b"id", &plain_sealed, String::new).unwrap(),
            &saved
        );
    }

    #[test]
    fn a_damaged_deflated_body_is_a_typed_error() {
        let s = sealer();
        let body = s
            .seal(Purpose::Document, 2, b"id", &[DEFLATED, 0xff, 0x00, 0x13])
            .unwrap();
        assert!(matches!(
            open(&s, 2, b"id", &body, || "contact x".into()),
            Err(Error::Corrupt { what }) if what == "contact x"
        ));
    }

    #[test]
    fn incompressible_bytes_are_stored_as_they_are() {
        let s = sealer();
        let mut noise = crate::crypto::random_bytes::<400>().unwrap().to_vec();
        noise[0] = 0x85;
        let body = s
            .open(
                Purpose::Document,
                2,
                b"id",
                &seal(&s, 2, b"id", &noise).unwrap(),
                String::new,
            )
            .unwrap();
        assert_eq!(&*body, &noise);
        // Bytes that start like a deflated body still come back as they were.
        let mut tricky = noise.clone();
        tricky[0] = DEFLATED;
        let body = seal(&s, 2, b"id", &tricky).unwrap();
        assert_eq!(&*open(&s, 2, b"id", &body, String::new).unwrap(), &tricky);
    }
}
