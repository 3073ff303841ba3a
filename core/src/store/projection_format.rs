//! The stored form of a contact's projection (format 2, migration 0007).
//!
//! A projection repeats what a list, a filter, a search and the statistics need of a contact, so
//! opening the store never loads an Automerge document (ADR 0005). It is about a third of the
//! store's bytes, and most of it is the note. Format 1 was the `ContactSummary` as postcard: the
//! record id a second time (the row's key holds it), the author as 32 hex characters, dates and
//! times as text, and the note as it was typed. Format 2 leaves the id to the row, keeps the
//! author's 16 bytes, the date as a day number and the time as seconds, and deflates the note
//! against a fixed dictionary of the German words field notes are made of (short texts compress
//! badly without one: a 350-byte note saves about 30 % alone, about half with it).
//!
//! A format-2 body starts with [`FORMAT_2`]. A format-1 body starts with the length of the id's
//! 32 hex characters (postcard varint 32), so the two never look alike.
//!
//! Compressing before sealing lets the length of a sealed projection say a little about how
//! repetitive a note is. The projection never leaves the device, and the document (which
//! Automerge deflates too) already said as much; `docs/threat-model.md` lists it.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveTime, Timelike};
use serde::{Deserialize, Serialize};
use streetsync_wire::{DeviceId, RecordId};

use super::compression;
use crate::error::{Error, Result};
use crate::model::contact::{MAX_NOTE_CHARS, MaterialCount};
use crate::model::vocab::{AgeBand, Gender, RetentionClass, ReviewState, Setting};
use crate::query::ContactSummary;

/// The first byte of a format-2 contact projection.
pub(crate) const FORMAT_2: u8 = 2;

/// Words and phrases of German street-work notes, the preset dictionary of the note's deflate
/// stream. Part of format 2: changing one byte makes every stored note unreadable, so a new
/// dictionary needs a new format byte.
const NOTE_DICTIONARY: &str = include_str!("note_dictionary.txt");

/// A note's stored form: deflated only where that is shorter.
#[derive(Serialize, Deserialize)]
enum StoredNote<'a> {
    Plain(Cow<'a, str>),
    /// Raw deflate against the preset dictionary [`NOTE_DICTIONARY`].
    Deflated(Cow<'a, [u8]>),
}

/// The author: a device id as its 16 bytes; anything else (a teammate's document may say what
/// it likes) as text, so nothing is lost.
#[derive(Serialize, Deserialize)]
enum StoredAuthor<'a> {
    Device([u8; 16]),
    Text(Cow<'a, str>),
}

/// Format 2 without its leading byte. Field order is the format: append, never reorder.
#[derive(Serialize, Deserialize)]
struct StoredContact<'a> {
    /// Days from 0001-01-01 (`NaiveDate::num_days_from_ce`).
    day: i32,
    start_seconds: u32,
    start_nanos: u32,
    area_id: Cow<'a, str>,
    place: Cow<'a, str>,
    setting: Setting,
    persons: i64,
    first_contact: bool,
    age_band: AgeBand,
    gender: Gender,
    client_code: Option<Cow<'a, str>>,
    topics: Cow<'a, [String]>,
    materials: Cow<'a, [MaterialCount]>,
    referral_partners: Cow<'a, [String]>,
    safeguarding: bool,
    review: ReviewState,
    comments: u32,
    author: StoredAuthor<'a>,
    updated_at: i64,
    note: StoredNote<'a>,
    retention: RetentionClass,
}

/// Encodes a contact's projection in format 2.
pub(crate) fn encode_contact(s: &ContactSummary) -> Result<Vec<u8>> {
    use chrono::Datelike;
    // Only the canonical form (32 lowercase hex characters) parses, so `Device` gives back the
    // same text.
    let author = match s.author.parse::<DeviceId>() {
        Ok(d) => StoredAuthor::Device(*d.as_bytes()),
        Err(_) => StoredAuthor::Text(Cow::Borrowed(&s.author)),
    };
    let note = match deflate_note(&s.note)? {
        Some(d) if d.len() < s.note.len() => StoredNote::Deflated(Cow::Owned(d)),
        _ => StoredNote::Plain(Cow::Borrowed(&s.note)),
    };
    let stored = StoredContact {
        day: s.date.num_days_from_ce(),
        start_seconds: s.start_time.num_seconds_from_midnight(),
        start_nanos: s.start_time.nanosecond(),
        area_id: Cow::Borrowed(&s.area_id),
        place: Cow::Borrowed(&s.place),
        setting: s.setting,
        persons: s.persons,
        first_contact: s.first_contact,
        age_band: s.age_band,
        gender: s.gender,
        client_code: s.client_code.as_deref().map(Cow::Borrowed),
        topics: Cow::Borrowed(&s.topics),
        materials: Cow::Borrowed(&s.materials),
        referral_partners: Cow::Borrowed(&s.referral_partners),
        safeguarding: s.safeguarding,
        review: s.review,
        comments: s.comments,
        author,
        updated_at: s.updated_at,
        note,
        retention: s.retention,
    };
    let mut out = vec![FORMAT_2];
    postcard::to_io(&stored, &mut out).map_err(|_| Error::Internal("projection encoding"))?;
    Ok(out)
}

/// Decodes a stored contact projection of record `id`, format 2 or 1. `None` if it is neither
/// (damaged, or a format-1 body from before the retention class, one field short): the caller
/// rebuilds it from the document.
pub(crate) fn decode_contact(id: RecordId, body: &[u8]) -> Option<Decoded> {
    match body.split_first() {
        Some((&FORMAT_2, rest)) => decode_2(id, rest).map(Decoded::Current),
        _ => postcard::from_bytes::<ContactSummary>(body)
            .ok()
            .filter(|s| s.id == id)
            .map(Decoded::Format1),
    }
}

/// A decoded projection, and whether its stored form is older than this build's.
pub(crate) enum Decoded {
    Current(ContactSummary),
    /// Read from format 1: correct, but to be written again in format 2.
    Format1(ContactSummary),
}

fn decode_2(id: RecordId, body: &[u8]) -> Option<ContactSummary> {
    let s: StoredContact<'_> = postcard::from_bytes(body).ok()?;
    let date = NaiveDate::from_num_days_from_ce_opt(s.day)?;
    let start_time = NaiveTime::from_num_seconds_from_midnight_opt(s.start_seconds, s.start_nanos)?;
    let author = match s.author {
        StoredAuthor::Device(b) => DeviceId::from_bytes(b).to_string(),
        StoredAuthor::Text(t) => t.into_owned(),
    };
    let note = match s.note {
        StoredNote::Plain(t) => t.into_owned(),
        StoredNote::Deflated(d) => inflate_note(&d)?,
    };
    Some(ContactSummary {
        id,
        date,
        start_time,
        area_id: s.area_id.into_owned(),
        place: s.place.into_owned(),
        setting: s.setting,
        persons: s.persons,
        first_contact: s.first_contact,
        age_band: s.age_band,
        gender: s.gender,
        client_code: s.client_code.map(Cow::into_owned),
        topics: s.topics.into_owned(),
        materials: s.materials.into_owned(),
        referral_partners: s.referral_partners.into_owned(),
        safeguarding: s.safeguarding,
        review: s.review,
        comments: s.comments,
        author,
        updated_at: s.updated_at,
        note,
        retention: s.retention,
    })
}

/// Deflates `note` against [`NOTE_DICTIONARY`]. `None` for an empty note.
fn deflate_note(note: &str) -> Result<Option<Vec<u8>>> {
    if note.is_empty() {
        return Ok(None);
    }
    compression::deflate(note.as_bytes(), NOTE_DICTIONARY.as_bytes()).map(Some)
}

/// Inflates what [`deflate_note`] made, at most a note's longest UTF-8 length.
fn inflate_note(deflated: &[u8]) -> Option<String> {
    let plain = compression::inflate(deflated, NOTE_DICTIONARY.as_bytes(), MAX_NOTE_CHARS * 4)?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::vocab::{AgeBand, Gender, RetentionClass, ReviewState, Setting};

    fn summary(note: &str, author: &str) -> ContactSummary {
        ContactSummary {
            id: RecordId::from_bytes([9; 16]),
            date: NaiveDate::from_ymd_opt(2026, 2, 28).unwrap(),
            start_time: NaiveTime::from_hms_nano_opt(17, 45, 3, 7).unwrap(),
            area_id: "innenstadt".into(),
            place: "Hauptbahnhof, Südausgang".into(),
            setting: Setting::Street,
            persons: 3,
            first_contact: true,
            age_band: AgeBand::Unknown,
            gender: Gender::Unknown,
            client_code: Some("MA-1984".into()),
            topics: vec!["wohnen".into(), "sucht".into()],
            materials: vec![MaterialCount {
                material_id: "naloxon".into(),
                count: 2,
            }],
            referral_partners: vec!["jobcenter-mitte".into()],
            safeguarding: true,
            review: ReviewState::Draft,
            comments: 4,
            author: author.into(),
            updated_at: 1_767_225_600_123,
            note: note.into(),
            retention: RetentionClass::Safeguarding,
        }
    }

    const PROSE: &str = "Herr M. am Bahnhofsvorplatz getroffen, wirkte erschöpft. Er hat seit \
        zwei Wochen keinen festen Schlafplatz mehr, nachdem ihm die Wohnung gekündigt wurde. Wir \
        haben über die Notunterkunft in der Lindenstraße gesprochen, er will es sich überlegen.";

    #[test]
    fn format_2_gives_back_every_field() {
        let device = DeviceId::from_bytes([0xab; 16]).to_string();
        for (note, author) in [
            (PROSE, device.as_str()),
            ("", device.as_str()),
            ("ok", "not a device id"),
            ("ÄÖÜ ß 😀 \u{0}", "ABABABABABABABABABABABABABABABAB"),
        ] {
            let s = summary(note, author);
            let body = encode_contact(&s).unwrap();
            assert_eq!(body[0], FORMAT_2);
            match decode_contact(s.id, &body).unwrap() {
                Decoded::Current(back) => assert_eq!(back, s),
                Decoded::Format1(_) => panic!("read as format 1"),
            }
        }
    }

    #[test]
    fn format_2_is_smaller_than_format_1() {
        let s = summary(PROSE, &DeviceId::from_bytes([1; 16]).to_string());
        let v1 = postcard::to_stdvec(&s).unwrap();
        let v2 = encode_contact(&s).unwrap();
        assert!(v2.len() * 10 < v1.len() * 7, "{} vs {}", v2.len(), v1.len());
        assert!(matches!(
            encode_contact(&summary("x", "y")).map(|b| decode_contact(s.id, &b)),
            Ok(Some(Decoded::Current(_)))
        ));
    }

    #[test]
    fn format_1_is_read_and_marked_for_rewriting() {
        let s = summary(PROSE, "someone");
        let v1 = postcard::to_stdvec(&s).unwrap();
        assert_ne!(v1[0], FORMAT_2);
        match decode_contact(s.id, &v1).unwrap() {
            Decoded::Format1(back) => assert_eq!(back, s),
            Decoded::Current(_) => panic!("format 1 read as current"),
        }
        // A format-1 body under another record's key is not taken.
        assert!(decode_contact(RecordId::from_bytes([1; 16]), &v1).is_none());
    }

    #[test]
    fn damaged_bodies_are_refused_not_panicked_on() {
        let s = summary(PROSE, "a");
        let body = encode_contact(&s).unwrap();
        for cut in 0..body.len() {
            assert!(decode_contact(s.id, &body[..cut]).is_none(), "cut at {cut}");
        }
        // The deflated note cut short, inside an otherwise whole body.
        let deflated = deflate_note(PROSE).unwrap().unwrap();
        assert!(inflate_note(&deflated[..deflated.len() / 2]).is_none());
        assert!(inflate_note(&[0xff; 40]).is_none());
    }

    #[test]
    fn a_note_that_inflates_past_the_longest_note_is_refused() {
        // A few hundred bytes that would inflate to megabytes.
        let bomb = compression::deflate(
            &vec![b'a'; 4 * MAX_NOTE_CHARS + 100],
            NOTE_DICTIONARY.as_bytes(),
        )
        .unwrap();
        assert!(bomb.len() < 1_000);
        assert!(inflate_note(&bomb).is_none());
        // The longest note that validation lets through still fits.
        let longest = "ü".repeat(MAX_NOTE_CHARS);
        assert_eq!(
            inflate_note(&deflate_note(&longest).unwrap().unwrap()),
            Some(longest)
        );
    }
}
