//! The Contact document's Automerge mapping. The note and comments are `Text`, so two people
//! editing at once merge by character; material tallies are counters, so concurrent bumps add up.

use std::collections::HashMap;

use autosurgeon::{Counter, Hydrate, Reconcile, Text};
use chrono::{NaiveDate, NaiveTime};
use streetsync_wire::RecordId;

use crate::error::{Error, Result};
use crate::model::contact::*;
use crate::model::vocab::{
    AgeBand, CommentKind, Gender, Housing, Intervention, ReferralOutcome, RetentionClass,
    ReviewState, Setting,
};

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct LocationDoc {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct ConsentDoc {
    scope: String,
    recipient: String,
    purpose: String,
    given_on: String,
    revoked_on: Option<String>,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct ReferralDoc {
    #[key]
    id: String,
    partner_id: String,
    reason: String,
    consent: Option<ConsentDoc>,
    outcome: ReferralOutcome,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct CommentDoc {
    #[key]
    id: String,
    author: String,
    at: i64,
    kind: CommentKind,
    text: Text,
}

/// The Contact document as stored in Automerge.
#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct ContactDoc {
    schema_version: u64,
    kind: String,
    id: String,
    date: String,
    start_time: String,
    end_time: Option<String>,
    area_id: String,
    place: String,
    location: Option<LocationDoc>,
    setting: Setting,
    persons: i64,
    first_contact: bool,
    age_band: AgeBand,
    gender: Gender,
    client_code: Option<String>,
    housing: Housing,
    topics: Vec<String>,
    interventions: Vec<Intervention>,
    materials: HashMap<String, Counter>,
    referrals: Vec<ReferralDoc>,
    safeguarding: bool,
    note: Text,
    review: ReviewState,
    comments: Vec<CommentDoc>,
    author: String,
    created_at: i64,
    updated_at: i64,
    retention: RetentionClass,
}

pub(crate) fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn parse_date(s: &str, what: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| Error::Corrupt {
        what: format!("{what}: date"),
    })
}

fn time_str(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn parse_time(s: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| Error::Corrupt {
        what: "contact document: time".into(),
    })
}

pub(crate) fn consent_doc(c: &Consent) -> ConsentDoc {
    ConsentDoc {
        scope: c.scope.clone(),
        recipient: c.recipient.clone(),
        purpose: c.purpose.clone(),
        given_on: date_str(c.given_on),
        revoked_on: c.revoked_on.map(date_str),
    }
}

pub(crate) fn consent_from_doc(c: &ConsentDoc) -> Result<Consent> {
    Ok(Consent {
        scope: c.scope.clone(),
        recipient: c.recipient.clone(),
        purpose: c.purpose.clone(),
        given_on: parse_date(&c.given_on, "consent")?,
        revoked_on: c
            .revoked_on
            .as_deref()
            .map(|d| parse_date(d, "consent"))
            .transpose()?,
    })
}

impl ContactDoc {
    pub(crate) fn new(id: RecordId, draft: &ContactDraft, author: &str, now: i64) -> Self {
        let mut doc = ContactDoc {
            schema_version: CONTACT_SCHEMA_VERSION,
            kind: "contact".into(),
            id: id.to_string(),
            date: String::new(),
            start_time: String::new(),
            end_time: None,
            area_id: String::new(),
            place: String::new(),
            location: None,
            setting: Setting::Street,
            persons: 0,
            first_contact: false,
            age_band: AgeBand::Unknown,
            gender: Gender::Unknown,
            client_code: None,
            housing: Housing::Unknown,
            topics: Vec::new(),
            interventions: Vec::new(),
            materials: HashMap::new(),
            referrals: Vec::new(),
            safeguarding: false,
            note: Text::default(),
            review: ReviewState::Draft,
            comments: Vec::new(),
            author: author.to_owned(),
            created_at: now,
            updated_at: now,
            retention: RetentionClass::Standard,
        };
        doc.apply(draft, now);
        doc
    }

    /// Brings the document in line with `draft`: scalars are set, the note is diffed into the
    /// existing Text (so concurrent edits merge), material counters are moved by the difference.
    pub(crate) fn apply(&mut self, d: &ContactDraft, now: i64) {
        self.date = date_str(d.date);
        self.start_time = time_str(d.start_time);
        self.end_time = d.end_time.map(time_str);
        self.area_id = d.area_id.clone();
        self.place = d.place.clone();
        // Area level only, whatever the caller put in the public fields.
        self.location = d.location.map(|l| LocationDoc {
            lat: (l.lat * 100.0).round() / 100.0,
            lon: (l.lon * 100.0).round() / 100.0,
        });
        self.setting = d.setting;
        self.persons = d.persons;
        self.first_contact = d.first_contact;
        self.age_band = d.age_band;
        self.gender = d.gender;
        self.client_code = d.client_code.clone();
        self.housing = d.housing;
        let mut topics: Vec<String> = Vec::new();
        for t in &d.topics {
            if !topics.contains(t) {
                topics.push(t.clone());
            }
        }
        if topics != self.topics {
            self.topics = topics;
        }
        let mut interventions: Vec<Intervention> = Vec::new();
        for i in &d.interventions {
            if !interventions.contains(i) {
                interventions.push(*i);
            }
        }
        if interventions != self.interventions {
            self.interventions = interventions;
        }
        self.materials
            .retain(|k, _| d.materials.iter().any(|m| &m.material_id == k));
        for m in &d.materials {
            let c = self.materials.entry(m.material_id.clone()).or_default();
            let delta = m.count - c.value();
            if delta != 0 {
                c.increment(delta);
            }
        }
        let referrals = d
            .referrals
            .iter()
            .map(|r| ReferralDoc {
                id: r.id.clone(),
                partner_id: r.partner_id.clone(),
                reason: r.reason.clone(),
                consent: r.consent.as_ref().map(consent_doc),
                outcome: r.outcome,
            })
            .collect();
        self.referrals = referrals;
        self.safeguarding = d.safeguarding;
        if self.note.as_str() != d.note {
            self.note.update(&d.note);
        }
        self.retention = d.retention;
        self.updated_at = now;
    }

    pub(crate) fn review(&self) -> ReviewState {
        self.review
    }

    pub(crate) fn set_review(&mut self, state: ReviewState, now: i64) {
        self.review = state;
        self.updated_at = now;
    }

    pub(crate) fn add_comment(&mut self, comment: Comment, now: i64) {
        self.comments.push(CommentDoc {
            id: comment.id,
            author: comment.author,
            at: comment.at,
            kind: comment.kind,
            text: Text::with_value(&comment.text),
        });
        self.updated_at = now;
    }

    pub(crate) fn to_contact(&self) -> Result<Contact> {
        let what = "contact document";
        let mut materials: Vec<MaterialCount> = self
            .materials
            .iter()
            .map(|(k, v)| MaterialCount {
                material_id: k.clone(),
                count: v.value(),
            })
            .collect();
        materials.sort_by(|a, b| a.material_id.cmp(&b.material_id));
        let mut topics: Vec<String> = Vec::new();
        for t in &self.topics {
            if !topics.contains(t) {
                topics.push(t.clone());
            }
        }
        let mut interventions: Vec<Intervention> = Vec::new();
        for i in &self.interventions {
            if !interventions.contains(i) {
                interventions.push(*i);
            }
        }
        let mut comments: Vec<Comment> = self
            .comments
            .iter()
            .map(|c| Comment {
                id: c.id.clone(),
                author: c.author.clone(),
                at: c.at,
                kind: c.kind,
                text: c.text.as_str().to_owned(),
            })
            .collect();
        comments.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
        Ok(Contact {
            id: self.id.parse().map_err(|_| Error::Corrupt {
                what: format!("{what}: id"),
            })?,
            fields: ContactDraft {
                date: parse_date(&self.date, what)?,
                start_time: parse_time(&self.start_time)?,
                end_time: self.end_time.as_deref().map(parse_time).transpose()?,
                area_id: self.area_id.clone(),
                place: self.place.clone(),
                location: self.location.as_ref().map(|l| CoarseLocation {
                    lat: l.lat,
                    lon: l.lon,
                }),
                setting: self.setting,
                persons: self.persons,
                first_contact: self.first_contact,
                age_band: self.age_band,
                gender: self.gender,
                client_code: self.client_code.clone(),
                housing: self.housing,
                topics,
                interventions,
                materials,
                referrals: self
                    .referrals
                    .iter()
                    .map(|r| {
                        Ok(Referral {
                            id: r.id.clone(),
                            partner_id: r.partner_id.clone(),
                            reason: r.reason.clone(),
                            consent: r.consent.as_ref().map(consent_from_doc).transpose()?,
                            outcome: r.outcome,
                        })
                    })
                    .collect::<Result<_>>()?,
                safeguarding: self.safeguarding,
                note: self.note.as_str().to_owned(),
                retention: self.retention,
            },
            review: self.review,
            comments,
            author: self.author.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
