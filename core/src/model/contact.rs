//! The contact record (Kontakt): one encounter in the field.
//!
//! Three shapes of the same record, each for one job:
//! - [`ContactDraft`]: what a worker enters; validated before anything is written;
//! - [`Contact`]: what is read back (draft fields plus review, author and times);
//! - `doc::contact::ContactDoc`: the Automerge mapping. The note and comments are `Text`, so two people editing
//!   at once merge by character; material tallies are counters, so concurrent bumps add up.

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use streetsync_wire::RecordId;

use crate::error::{Result, ValidationError};
use crate::model::team::{Catalog, Team};
use crate::model::vocab::{
    AgeBand, CommentKind, Gender, Housing, Intervention, ReferralOutcome, RetentionClass,
    ReviewState, Setting,
};

/// Schema version written into every Contact document.
pub const CONTACT_SCHEMA_VERSION: u64 = 1;
/// Longest confidential note accepted, in characters (about four pages of handwriting).
pub const MAX_NOTE_CHARS: usize = 10_000;
/// Longest place name accepted.
pub const MAX_PLACE_CHARS: usize = 200;
/// Longest review comment accepted.
pub const MAX_COMMENT_CHARS: usize = 4_000;
/// Most persons one contact can count (a large event).
pub const MAX_PERSONS: i64 = 1_000;
/// Most items of one material per contact.
pub const MAX_MATERIAL_COUNT: i64 = 10_000;
/// Longest pseudonymous client code.
pub const MAX_CLIENT_CODE_CHARS: usize = 32;

/// A coarse location, rounded to two decimals (about one kilometre): area level, never a track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoarseLocation {
    /// Latitude in degrees, rounded to 0.01.
    pub lat: f64,
    /// Longitude in degrees, rounded to 0.01.
    pub lon: f64,
}

impl CoarseLocation {
    /// Rounds a position to area level, refusing impossible coordinates.
    pub fn new(lat: f64, lon: f64) -> Result<Self, ValidationError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(ValidationError::new(
                "location.lat",
                "must be between -90 and 90",
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(ValidationError::new(
                "location.lon",
                "must be between -180 and 180",
            ));
        }
        Ok(Self {
            lat: (lat * 100.0).round() / 100.0,
            lon: (lon * 100.0).round() / 100.0,
        })
    }
}

/// A count of one material handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialCount {
    /// Id from the team's material catalog.
    pub material_id: String,
    /// How many; never negative.
    pub count: i64,
}

/// Consent to pass social data on (§ 67b SGB X): it must name data, recipient and purpose, and can
/// be revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Which data may be passed on.
    pub scope: String,
    /// To whom.
    pub recipient: String,
    /// For what.
    pub purpose: String,
    /// When consent was given.
    pub given_on: NaiveDate,
    /// When it was revoked, if it was.
    pub revoked_on: Option<NaiveDate>,
}

impl Consent {
    /// Refuses consent that does not name data, recipient and purpose.
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        for (name, value) in [
            ("scope", &self.scope),
            ("recipient", &self.recipient),
            ("purpose", &self.purpose),
        ] {
            if value.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("{field}.{name}"),
                    "must be stated for consent to be valid (§ 67b SGB X)",
                ));
            }
            if value.chars().count() > 500 {
                return Err(ValidationError::new(
                    format!("{field}.{name}"),
                    "the limit is 500 characters",
                ));
            }
        }
        if let Some(r) = self.revoked_on
            && r < self.given_on
        {
            return Err(ValidationError::new(
                format!("{field}.revoked_on"),
                "cannot be before the consent was given",
            ));
        }
        Ok(())
    }

    /// Whether the consent is in force.
    pub fn is_active(&self) -> bool {
        self.revoked_on.is_none()
    }
}

/// A referral (Vermittlung) to a partner organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// Stable id within the contact (so concurrent edits of two referrals do not collide).
    pub id: String,
    /// Partner organisation id from the team directory.
    pub partner_id: String,
    /// Why the client was referred.
    pub reason: String,
    /// The client's consent. Required unless the contact is anonymous (no client code).
    pub consent: Option<Consent>,
    /// What became of it.
    pub outcome: ReferralOutcome,
}

/// What a worker enters for a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactDraft {
    /// Day of the contact.
    pub date: NaiveDate,
    /// Start time.
    pub start_time: NaiveTime,
    /// End time, same day, not before the start.
    pub end_time: Option<NaiveTime>,
    /// Area (Sozialraum) id from the team catalog.
    pub area_id: String,
    /// Place name (`Hauptbahnhof Nordausgang`).
    pub place: String,
    /// Optional area-level position.
    pub location: Option<CoarseLocation>,
    /// Setting.
    pub setting: Setting,
    /// Number of persons met.
    pub persons: i64,
    /// First contact (true) or a person already known (false).
    pub first_contact: bool,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Pseudonymous client code for individual work (never a real name).
    pub client_code: Option<String>,
    /// Housing situation.
    pub housing: Housing,
    /// Topic ids from the team catalog.
    pub topics: Vec<String>,
    /// Interventions.
    pub interventions: Vec<Intervention>,
    /// Materials handed out with counts.
    pub materials: Vec<MaterialCount>,
    /// Referrals to partner organisations.
    pub referrals: Vec<Referral>,
    /// Child-protection concern (§ 8a SGB VIII): a lead must see it at once.
    pub safeguarding: bool,
    /// The confidential note (anvertraut, § 65 SGB VIII).
    pub note: String,
    /// Retention class.
    pub retention: RetentionClass,
}

impl ContactDraft {
    /// A minimal valid draft for `area_id` at `date` and `start_time`, to be filled in.
    pub fn new(date: NaiveDate, start_time: NaiveTime, area_id: impl Into<String>) -> Self {
        Self {
            date,
            start_time,
            end_time: None,
            area_id: area_id.into(),
            place: String::new(),
            location: None,
            setting: Setting::Street,
            persons: 1,
            first_contact: false,
            age_band: AgeBand::Unknown,
            gender: Gender::Unknown,
            client_code: None,
            housing: Housing::Unknown,
            topics: Vec::new(),
            interventions: Vec::new(),
            materials: Vec::new(),
            referrals: Vec::new(),
            safeguarding: false,
            note: String::new(),
            retention: RetentionClass::Standard,
        }
    }

    /// Checks the draft against the field's rules and the team's catalogs. `previous` is the stored
    /// version when editing, so retired catalog entries an old record already uses stay valid.
    pub fn validate(
        &self,
        team: &Team,
        previous: Option<&ContactDraft>,
    ) -> Result<(), ValidationError> {
        if let Some(end) = self.end_time
            && end < self.start_time
        {
            return Err(ValidationError::new(
                "end_time",
                format!(
                    "{} is before the start {}; a contact ends on the day it starts",
                    end.format("%H:%M"),
                    self.start_time.format("%H:%M")
                ),
            ));
        }
        if let Some(l) = self.location {
            CoarseLocation::new(l.lat, l.lon)?;
        }
        if self.persons < 1 {
            return Err(ValidationError::new(
                "persons",
                format!("must be at least 1, got {}", self.persons),
            ));
        }
        if self.persons > MAX_PERSONS {
            return Err(ValidationError::new(
                "persons",
                format!("the limit is {MAX_PERSONS}"),
            ));
        }
        let was = |f: &dyn Fn(&ContactDraft) -> bool| previous.is_some_and(f);
        team.check_catalog_id(
            Catalog::Area,
            "area_id",
            &self.area_id,
            was(&|p| p.area_id == self.area_id),
        )?;
        let place_len = self.place.chars().count();
        if place_len > MAX_PLACE_CHARS {
            return Err(ValidationError::new(
                "place",
                format!("is {place_len} characters long; the limit is {MAX_PLACE_CHARS}"),
            ));
        }
        let note_len = self.note.chars().count();
        if note_len > MAX_NOTE_CHARS {
            return Err(ValidationError::new(
                "note",
                format!("is {note_len} characters long; the limit is {MAX_NOTE_CHARS}"),
            ));
        }
        for t in &self.topics {
            team.check_catalog_id(Catalog::Topic, "topics", t, was(&|p| p.topics.contains(t)))?;
        }
        let mut seen = Vec::new();
        for m in &self.materials {
            let field = format!("materials[{}].count", m.material_id);
            if m.count < 0 {
                return Err(ValidationError::new(
                    field,
                    format!("must not be negative, got {}", m.count),
                ));
            }
            if m.count > MAX_MATERIAL_COUNT {
                return Err(ValidationError::new(
                    field,
                    format!("the limit is {MAX_MATERIAL_COUNT}"),
                ));
            }
            team.check_catalog_id(
                Catalog::Material,
                "materials",
                &m.material_id,
                was(&|p| p.materials.iter().any(|o| o.material_id == m.material_id)),
            )?;
            if seen.contains(&&m.material_id) {
                return Err(ValidationError::new(
                    "materials",
                    format!("'{}' is listed twice; give one count", m.material_id),
                ));
            }
            seen.push(&m.material_id);
        }
        if let Some(code) = &self.client_code {
            validate_client_code("client_code", code)?;
        }
        let mut ids = Vec::new();
        for (i, r) in self.referrals.iter().enumerate() {
            let field = format!("referrals[{i}]");
            if r.id.is_empty() || ids.contains(&&r.id) {
                return Err(ValidationError::new(
                    format!("{field}.id"),
                    "must be unique and not empty",
                ));
            }
            ids.push(&r.id);
            team.check_partner(&format!("{field}.partner_id"), &r.partner_id)?;
            if r.reason.chars().count() > 1_000 {
                return Err(ValidationError::new(
                    format!("{field}.reason"),
                    "the limit is 1000 characters",
                ));
            }
            match &r.consent {
                Some(c) => c.validate(&format!("{field}.consent"))?,
                None if self.client_code.is_some() => {
                    return Err(ValidationError::new(
                        format!("{field}.consent"),
                        "a referral of a client with a client code needs the client's consent \
                         (scope, recipient, purpose); record the consent or make the referral \
                         anonymous by leaving out the client code",
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Checks the shape of a pseudonymous client code: letters, digits and dashes only, so a real name
/// with spaces is not entered by accident.
pub fn validate_client_code(field: &str, code: &str) -> Result<(), ValidationError> {
    let n = code.chars().count();
    if n == 0 || n > MAX_CLIENT_CODE_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must have 1 to {MAX_CLIENT_CODE_CHARS} characters"),
        ));
    }
    if !code.chars().all(|c| c.is_alphanumeric() || c == '-') {
        return Err(ValidationError::new(
            field,
            "only letters, digits and '-' (a pseudonym such as 'MA-1987-K', never a full name)",
        ));
    }
    Ok(())
}

/// A review comment, question or answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Stable id.
    pub id: String,
    /// Author device id.
    pub author: String,
    /// Unix milliseconds when written (the author's clock).
    pub at: i64,
    /// Remark, question or answer.
    pub kind: CommentKind,
    /// The text.
    pub text: String,
}

/// A contact as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Record id.
    pub id: RecordId,
    /// The editable fields.
    pub fields: ContactDraft,
    /// Review state.
    pub review: ReviewState,
    /// Review thread, oldest first.
    pub comments: Vec<Comment>,
    /// Device id of the worker who logged it.
    pub author: String,
    /// Unix milliseconds of creation.
    pub created_at: i64,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
}

impl Contact {
    /// Whether a lead's question waits for an answer.
    pub fn open_question(&self) -> bool {
        self.review == ReviewState::ChangesRequested
    }
}
