//! The cached form of a contact's projection: what lists, filters, search and retention read.
//!
//! A lead's device holds one row per contact of the team, 100,000 after a few years, so the row is
//! kept small (issue 18: a bootstrap of 100,000 contacts peaked at 236 MB, most of it here):
//! - ids that many contacts share (area, topics, materials, partners, the author's device) are
//!   held once, in [`SharedIds`], and the rows point at them;
//! - strings are boxed slices, not growable `String`s;
//! - the record id is the cache's key only;
//! - there is no lower-cased copy of the note: search folds each row as it scans (see
//!   [`ContactRow::search_text_into`]), which costs a scan a few milliseconds per 10,000 rows
//!   and saves a second copy of every note.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use streetsync_wire::RecordId;

use super::{ContactSummary, fold_into};
use crate::model::contact::MaterialCount;
use crate::model::vocab::{AgeBand, Gender, RetentionClass, ReviewState, Setting};

/// Ids that many contacts repeat (areas, topics, materials, partners, author devices), each held
/// once for the whole cache. It only grows: an id no row uses any more costs a few bytes until the
/// store is opened again.
#[derive(Default)]
pub(crate) struct SharedIds(HashSet<Arc<str>>);

impl SharedIds {
    /// The shared copy of `id`, made on first use.
    pub(crate) fn get(&mut self, id: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(id) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(id);
        self.0.insert(Arc::clone(&shared));
        shared
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One contact as the cache holds it: every field of its [`ContactSummary`] but the id (the
/// cache's key), in the compact form described in the module documentation.
pub(crate) struct ContactRow {
    pub(crate) date: NaiveDate,
    pub(crate) start_time: NaiveTime,
    area_id: Arc<str>,
    place: Box<str>,
    setting: Setting,
    persons: i64,
    first_contact: bool,
    age_band: AgeBand,
    gender: Gender,
    client_code: Option<Box<str>>,
    topics: Box<[Arc<str>]>,
    materials: Box<[(Arc<str>, i64)]>,
    referral_partners: Box<[Arc<str>]>,
    pub(crate) safeguarding: bool,
    pub(crate) review: ReviewState,
    comments: u32,
    author: Arc<str>,
    updated_at: i64,
    note: Box<str>,
    pub(crate) retention: RetentionClass,
}

impl ContactRow {
    /// The row of a projection, its shared ids taken from (or added to) `ids`.
    pub(crate) fn new(s: ContactSummary, ids: &mut SharedIds) -> Self {
        Self {
            date: s.date,
            start_time: s.start_time,
            area_id: ids.get(&s.area_id),
            place: s.place.into_boxed_str(),
            setting: s.setting,
            persons: s.persons,
            first_contact: s.first_contact,
            age_band: s.age_band,
            gender: s.gender,
            client_code: s.client_code.map(String::into_boxed_str),
            topics: s.topics.iter().map(|t| ids.get(t)).collect(),
            materials: s
                .materials
                .iter()
                .map(|m| (ids.get(&m.material_id), m.count))
                .collect(),
            referral_partners: s.referral_partners.iter().map(|p| ids.get(p)).collect(),
            safeguarding: s.safeguarding,
            review: s.review,
            comments: s.comments,
            author: ids.get(&s.author),
            updated_at: s.updated_at,
            note: s.note.into_boxed_str(),
            retention: s.retention,
        }
    }

    /// The projection again, for a caller outside the cache (a page of a list, statistics).
    pub(crate) fn summary(&self, id: RecordId) -> ContactSummary {
        self.summary_with(id, self.note.to_string())
    }

    fn summary_with(&self, id: RecordId, note: String) -> ContactSummary {
        ContactSummary {
            id,
            date: self.date,
            start_time: self.start_time,
            area_id: self.area_id.to_string(),
            place: self.place.to_string(),
            setting: self.setting,
            persons: self.persons,
            first_contact: self.first_contact,
            age_band: self.age_band,
            gender: self.gender,
            client_code: self.client_code.as_deref().map(str::to_owned),
            topics: self.topics.iter().map(|t| t.to_string()).collect(),
            materials: self
                .materials
                .iter()
                .map(|(material_id, count)| MaterialCount {
                    material_id: material_id.to_string(),
                    count: *count,
                })
                .collect(),
            referral_partners: self
                .referral_partners
                .iter()
                .map(|p| p.to_string())
                .collect(),
            safeguarding: self.safeguarding,
            review: self.review,
            comments: self.comments,
            author: self.author.to_string(),
            updated_at: self.updated_at,
            note,
            retention: self.retention,
        }
    }

    /// The projection with an empty note, for statistics and exports that leave notes out.
    pub(crate) fn summary_without_note(&self, id: RecordId) -> ContactSummary {
        self.summary_with(id, String::new())
    }

    /// Whether the contact's day lies within `from..=to` (either end open): the one date check of
    /// filters, statistics and exports.
    pub(crate) fn dated_within(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> bool {
        from.is_none_or(|f| self.date >= f) && to.is_none_or(|t| self.date <= t)
    }

    pub(crate) fn area_id(&self) -> &str {
        &self.area_id
    }

    pub(crate) fn has_topic(&self, topic_id: &str) -> bool {
        self.topics.iter().any(|t| &**t == topic_id)
    }

    pub(crate) fn author(&self) -> &str {
        &self.author
    }

    pub(crate) fn client_code(&self) -> Option<&str> {
        self.client_code.as_deref()
    }

    /// Replaces `buf` with what search matches against: the note and the place, folded
    /// ([`super::fold`]), one line each, so a search word never spans the two.
    pub(crate) fn search_text_into(&self, buf: &mut String) {
        buf.clear();
        fold_into(buf, &self.note);
        buf.push('\n');
        fold_into(buf, &self.place);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::query::fold;

    fn summary(note: &str, place: &str, author: &str) -> ContactSummary {
        ContactSummary {
            id: RecordId::from_bytes([7; 16]),
            date: NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(),
            start_time: NaiveTime::from_hms_opt(14, 30, 0).unwrap(),
            area_id: "nord".into(),
            place: place.into(),
            setting: Setting::Street,
            persons: 3,
            first_contact: true,
            age_band: AgeBand::From18To20,
            gender: Gender::Diverse,
            client_code: Some("K-17".into()),
            topics: vec!["wohnen".into(), "sucht".into()],
            materials: vec![MaterialCount {
                material_id: "spritzen".into(),
                count: 12,
            }],
            referral_partners: vec!["jobcenter".into()],
            safeguarding: true,
            review: ReviewState::ChangesRequested,
            comments: 2,
            author: author.into(),
            updated_at: 1_764_000_000_000,
            note: note.into(),
            retention: RetentionClass::Safeguarding,
        }
    }

    #[test]
    fn a_row_gives_back_the_projection_it_was_made_from() {
        let mut ids = SharedIds::default();
        let s = summary("Gespräch über Wohnung", "Hauptbahnhof", "a1b2");
        let row = ContactRow::new(s.clone(), &mut ids);
        assert_eq!(row.summary(s.id), s);
    }

    #[test]
    fn a_summary_without_note_differs_only_in_the_note() {
        let mut ids = SharedIds::default();
        let s = summary("vertraulich", "Park", "a1b2");
        let row = ContactRow::new(s.clone(), &mut ids);
        let counted = row.summary_without_note(s.id);
        assert_eq!(counted.note, "");
        assert_eq!(
            ContactSummary {
                note: s.note.clone(),
                ..counted
            },
            s
        );
    }

    #[test]
    fn rows_share_one_copy_of_each_id() {
        let mut ids = SharedIds::default();
        let a = ContactRow::new(summary("eins", "Park", "dev-a"), &mut ids);
        let b = ContactRow::new(summary("zwei", "Park", "dev-a"), &mut ids);
        let c = ContactRow::new(summary("drei", "Park", "dev-b"), &mut ids);
        assert!(Arc::ptr_eq(&a.area_id, &b.area_id));
        assert!(Arc::ptr_eq(&a.author, &b.author));
        assert!(Arc::ptr_eq(&a.topics[1], &c.topics[1]));
        assert!(!Arc::ptr_eq(&a.author, &c.author));
        // nord, wohnen, sucht, spritzen, jobcenter, dev-a, dev-b
        assert_eq!(ids.len(), 7);
    }

    #[test]
    fn the_search_text_is_the_folded_note_and_place_on_two_lines() {
        let mut ids = SharedIds::default();
        let row = ContactRow::new(
            summary("Straße, GROSSE Sorge", "Ökumenisches Zentrum", "d"),
            &mut ids,
        );
        let mut buf = String::from("left over from the last row");
        row.search_text_into(&mut buf);
        assert_eq!(buf, "strasse, grosse sorge\nökumenisches zentrum");
        assert_eq!(
            buf,
            fold("Straße, GROSSE Sorge\nÖkumenisches Zentrum"),
            "the same folding as a query's"
        );
    }
}
