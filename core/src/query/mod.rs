//! Listing and filtering over projections.
//!
//! A projection is the handful of fields a list, a filter or a statistic needs, sealed next to each
//! record. The store keeps them decrypted in memory, so filters and full-text search scan small
//! structs and never open 10,000 Automerge documents.

pub(crate) mod disclosure;
pub(crate) mod export;
pub(crate) mod row;
pub(crate) mod stats;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use streetsync_wire::RecordId;

use crate::model::client::Client;
use crate::model::contact::{Contact, MaterialCount};
use crate::model::vocab::{AgeBand, Gender, RetentionClass, ReviewState, Setting};
pub(crate) use row::{ContactRow, SharedIds};

/// Whether a contact's summary taken from the cache carries its note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoteCopy {
    /// For lists and for hosts that show or export notes.
    With,
    /// For counting (statistics) and exports without notes: the note stays empty.
    Without,
}

/// What a list shows of a contact (and what statistics count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactSummary {
    /// Record id.
    pub id: RecordId,
    /// Day.
    pub date: NaiveDate,
    /// Start time.
    pub start_time: NaiveTime,
    /// Area id.
    pub area_id: String,
    /// Place name.
    pub place: String,
    /// Setting.
    pub setting: Setting,
    /// Persons met.
    pub persons: i64,
    /// First contact or known.
    pub first_contact: bool,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Client code, if any.
    pub client_code: Option<String>,
    /// Topic ids.
    pub topics: Vec<String>,
    /// Materials with counts.
    pub materials: Vec<MaterialCount>,
    /// Partner ids of referrals.
    pub referral_partners: Vec<String>,
    /// Child-protection concern.
    pub safeguarding: bool,
    /// Review state.
    pub review: ReviewState,
    /// Number of review comments.
    pub comments: u32,
    /// Author device id.
    pub author: String,
    /// Last change, unix milliseconds.
    pub updated_at: i64,
    /// The note (kept here, sealed, so full-text search needs no document).
    pub note: String,
    /// How long the record is kept (its class as recorded; see `model::retention` for the flag).
    /// Last, so a projection written before it existed is recognised by its length (the store
    /// then rebuilds it from the document).
    pub retention: RetentionClass,
}

impl ContactSummary {
    /// The projection of a contact.
    pub fn of(c: &Contact) -> Self {
        Self {
            id: c.id,
            date: c.fields.date,
            start_time: c.fields.start_time,
            area_id: c.fields.area_id.clone(),
            place: c.fields.place.clone(),
            setting: c.fields.setting,
            persons: c.fields.persons,
            first_contact: c.fields.first_contact,
            age_band: c.fields.age_band,
            gender: c.fields.gender,
            client_code: c.fields.client_code.clone(),
            topics: c.fields.topics.clone(),
            materials: c.fields.materials.clone(),
            referral_partners: c
                .fields
                .referrals
                .iter()
                .map(|r| r.partner_id.clone())
                .collect(),
            safeguarding: c.fields.safeguarding,
            review: c.review,
            comments: c.comments.len() as u32,
            author: c.author.clone(),
            updated_at: c.updated_at,
            note: c.fields.note.clone(),
            retention: c.fields.retention,
        }
    }
}

/// What a list shows of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSummary {
    /// Record id.
    pub id: RecordId,
    /// Pseudonymous code.
    pub code: String,
    /// Nickname.
    pub alias: Option<String>,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Consents in force.
    pub active_consents: u32,
    /// Last change.
    pub updated_at: i64,
}

impl ClientSummary {
    /// The projection of a client.
    pub fn of(c: &Client) -> Self {
        Self {
            id: c.id,
            code: c.fields.code.clone(),
            alias: c.fields.alias.clone(),
            age_band: c.fields.age_band,
            gender: c.fields.gender,
            active_consents: c.fields.consents.iter().filter(|c| c.is_active()).count() as u32,
            updated_at: c.updated_at,
        }
    }
}

/// Folds text for search: lowercase, `ß` as `ss`.
pub(crate) fn fold(s: &str) -> String {
    let mut folded = String::with_capacity(s.len());
    fold_into(&mut folded, s);
    folded
}

/// Appends `s` folded to `buf` ([`fold`] without an allocation of its own: search folds every row
/// it scans into one buffer). Character by character, so a query and a row fold alike.
pub(crate) fn fold_into(buf: &mut String, s: &str) {
    if s.is_ascii() {
        let start = buf.len();
        buf.push_str(s);
        buf[start..].make_ascii_lowercase();
        return;
    }
    for c in s.chars() {
        // Most characters of a German note are ASCII even when a few are not; they need no
        // Unicode case table.
        if c.is_ascii() {
            buf.push(c.to_ascii_lowercase());
            continue;
        }
        for lower in c.to_lowercase() {
            if lower == 'ß' {
                buf.push_str("ss");
            } else {
                buf.push(lower);
            }
        }
    }
}

/// Filters for listing contacts. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactFilter {
    /// First day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    /// Area id.
    pub area_id: Option<String>,
    /// Topic id.
    pub topic_id: Option<String>,
    /// Author device id.
    pub author: Option<String>,
    /// Review state.
    pub review: Option<ReviewState>,
    /// Client code (exact, case-insensitive).
    pub client_code: Option<String>,
    /// Safeguarding flag.
    pub safeguarding: Option<bool>,
    /// Full-text search over notes and place names: every word must occur (case-insensitive).
    pub text: Option<String>,
    /// Put child-protection concerns first (the lead's review queue).
    pub safeguarding_first: bool,
    /// Rows to skip.
    pub offset: usize,
    /// Rows to return; 0 means the default page size.
    pub limit: usize,
}

/// Default page size.
pub const DEFAULT_PAGE: usize = 50;
/// Largest page size.
pub const MAX_PAGE: usize = 1_000;

/// One page of contacts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactPage {
    /// The rows.
    pub items: Vec<ContactSummary>,
    /// How many contacts match in total.
    pub total: usize,
}

impl ContactFilter {
    pub(crate) fn validate(&self) -> Result<(), crate::error::ValidationError> {
        if let (Some(f), Some(t)) = (self.from, self.to)
            && t < f
        {
            return Err(crate::error::ValidationError::new(
                "to",
                format!("{t} is before from {f}"),
            ));
        }
        if self.limit > MAX_PAGE {
            return Err(crate::error::ValidationError::new(
                "limit",
                format!("the largest page is {MAX_PAGE}"),
            ));
        }
        if let Some(t) = &self.text
            && t.chars().count() > 200
        {
            return Err(crate::error::ValidationError::new(
                "text",
                "the search text is limited to 200 characters",
            ));
        }
        Ok(())
    }

    /// Whether `row` passes every set field; the search words last, since only they need the
    /// row's text folded (into `text`, a buffer reused across rows).
    fn matches(&self, row: &ContactRow, words: &[String], text: &mut String) -> bool {
        let passes = row.dated_within(self.from, self.to)
            && self.area_id.as_deref().is_none_or(|a| row.area_id() == a)
            && self.topic_id.as_deref().is_none_or(|t| row.has_topic(t))
            && self.author.as_deref().is_none_or(|a| row.author() == a)
            && self.review.is_none_or(|r| row.review == r)
            && self
                .client_code
                .as_deref()
                .is_none_or(|c| row.client_code().is_some_and(|x| x.eq_ignore_ascii_case(c)))
            && self.safeguarding.is_none_or(|f| row.safeguarding == f);
        if !passes || words.is_empty() {
            return passes;
        }
        row.search_text_into(text);
        words.iter().all(|w| text.contains(w.as_str()))
    }

    pub(crate) fn run<'a>(
        &self,
        rows: impl Iterator<Item = (&'a RecordId, &'a ContactRow)>,
    ) -> ContactPage {
        let words: Vec<String> = self
            .text
            .as_deref()
            .map(|t| fold(t).split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut text = String::new();
        let mut hits: Vec<(&RecordId, &ContactRow)> = rows
            .filter(|(_, r)| self.matches(r, &words, &mut text))
            .collect();
        let total = hits.len();
        let key = |(id, r): &(&RecordId, &ContactRow)| (r.date, r.start_time, **id);
        if self.safeguarding_first {
            hits.sort_unstable_by(|a, b| {
                b.1.safeguarding
                    .cmp(&a.1.safeguarding)
                    .then(key(b).cmp(&key(a)))
            });
        } else {
            hits.sort_unstable_by_key(|h| std::cmp::Reverse(key(h)));
        }
        let limit = if self.limit == 0 {
            DEFAULT_PAGE
        } else {
            self.limit
        };
        ContactPage {
            items: hits
                .into_iter()
                .skip(self.offset)
                .take(limit)
                .map(|(id, r)| r.summary(*id))
                .collect(),
            total,
        }
    }
}

/// Filters for listing clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFilter {
    /// Codes or aliases containing this text (case-insensitive).
    pub text: Option<String>,
}

impl ClientFilter {
    pub(crate) fn matches(&self, c: &ClientSummary) -> bool {
        self.text.as_deref().is_none_or(|t| {
            let t = fold(t);
            fold(&c.code).contains(&t) || c.alias.as_deref().is_some_and(|a| fold(a).contains(&t))
        })
    }
}
