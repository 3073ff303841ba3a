//! Contacts (Kontakte): the draft a worker fills in, the contact as read back, list rows, filters
//! and pages, the review thread, and the `Workspace` methods that write, read, review and export
//! them.
//!
//! The fixed vocabulary a contact is described with (setting, age band, gender, housing,
//! interventions, review state, retention, referral outcome, comment kind) is declared here as
//! mirrors of the core's enums, and so is the § 67b consent, which client records use too. Dates
//! and times travel as text and are parsed with the field named in any error (`date`,
//! `referrals[0].consent.given_on`); the core validates everything else before it writes.

use streetsync_core as sc;

use crate::Result;
use crate::dates::{fmt_date, fmt_time, parse_date, parse_time};
use crate::error::{StreetsyncError, guard, invalid};
use crate::ids::record_id;
use crate::mirror::mirror_enum;
use crate::workspace::Workspace;

// ---- vocabulary ---------------------------------------------------------------------------

mirror_enum!(
    /// Where the contact happened.
    Setting = sc::Setting {
        /// On the street, in a park, at a station.
        Street,
        /// At the drop-in centre (Anlaufstelle).
        DropIn,
        /// By phone.
        Phone,
        /// Messenger, e-mail, social media.
        Digital,
        /// Accompanying a client to an office or service (Begleitung).
        Accompaniment,
        /// At an event or outreach action.
        Event,
    }
);

mirror_enum!(
    /// Age band of the person, or of most of the group.
    AgeBand = sc::AgeBand {
        /// Under 14.
        Under14,
        /// 14 to 17.
        From14To17,
        /// 18 to 20.
        From18To20,
        /// 21 to 26.
        From21To26,
        /// 27 to 39.
        From27To39,
        /// 40 to 64.
        From40To64,
        /// 65 and older.
        Over64,
        /// A group of mixed ages.
        Mixed,
        /// Not known or not asked.
        Unknown,
    }
);

mirror_enum!(
    /// Gender as the person describes it (or as recorded for a group).
    Gender = sc::Gender {
        /// Female.
        Female,
        /// Male.
        Male,
        /// Diverse / non-binary.
        Diverse,
        /// A group of mixed genders.
        Mixed,
        /// Not known or not asked.
        Unknown,
    }
);

mirror_enum!(
    /// The person's housing situation.
    Housing = sc::Housing {
        /// Own flat or room.
        Housed,
        /// With family or friends, couch surfing.
        Precarious,
        /// Emergency shelter (Notunterkunft).
        Shelter,
        /// Sleeping rough (obdachlos).
        Rough,
        /// Supported housing, youth welfare accommodation.
        Supported,
        /// Not known.
        Unknown,
    }
);

mirror_enum!(
    /// What the worker did.
    Intervention = sc::Intervention {
        /// A conversation.
        Conversation,
        /// Counselling (Beratung).
        Counselling,
        /// Crisis intervention.
        Crisis,
        /// Accompaniment (Begleitung).
        Accompaniment,
        /// Referral (Vermittlung) to a partner organisation.
        Referral,
        /// Material help (food, clothing, harm-reduction supplies).
        MaterialHelp,
    }
);

mirror_enum!(
    /// Where a note stands in the lead's review.
    ReviewState = sc::ReviewState {
        /// Being written by the worker.
        Draft,
        /// Handed in for review.
        Submitted,
        /// The lead asked a question or for changes.
        ChangesRequested,
        /// Approved by a lead.
        Approved,
    }
);

mirror_enum!(
    /// How long a record is kept before retention rules delete it.
    RetentionClass = sc::RetentionClass {
        /// Routine contact: the team's standard period.
        Standard,
        /// Child-protection case (§ 8a SGB VIII): kept for the legally required period.
        Safeguarding,
        /// Kept only until statistics are produced.
        Short,
    }
);

mirror_enum!(
    /// What became of a referral.
    ReferralOutcome = sc::ReferralOutcome {
        /// Not known yet.
        Open,
        /// The client arrived at the partner organisation.
        Arrived,
        /// The client did not go.
        NotArrived,
        /// The partner declined or could not help.
        Declined,
    }
);

mirror_enum!(
    /// What a review comment is.
    CommentKind = sc::CommentKind {
        /// A remark.
        Remark,
        /// A lead's question that waits for the worker's answer.
        Question,
        /// The worker's answer to a question.
        Answer,
    }
);

// ---- records ------------------------------------------------------------------------------

/// A coarse location, rounded by the core to two decimals (about one kilometre): area level,
/// never a track.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct CoarseLocation {
    /// Latitude in degrees (-90 to 90).
    pub lat: f64,
    /// Longitude in degrees (-180 to 180).
    pub lon: f64,
}

/// A count of one material handed out.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MaterialCount {
    /// Id from the team's material catalog.
    pub material_id: String,
    /// How many; never negative (a negative count fails with `InvalidInput` naming
    /// `materials[<id>].count`).
    pub count: i64,
}

impl From<sc::MaterialCount> for MaterialCount {
    fn from(m: sc::MaterialCount) -> Self {
        Self {
            material_id: m.material_id,
            count: m.count,
        }
    }
}

impl From<MaterialCount> for sc::MaterialCount {
    fn from(m: MaterialCount) -> Self {
        sc::MaterialCount {
            material_id: m.material_id,
            count: m.count,
        }
    }
}

/// Consent to pass social data on (§ 67b SGB X): names data, recipient and purpose, and can be
/// revoked.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Consent {
    /// Which data may be passed on.
    pub scope: String,
    /// To whom.
    pub recipient: String,
    /// For what.
    pub purpose: String,
    /// When consent was given (`2026-11-23`).
    pub given_on: String,
    /// When it was revoked (`2026-12-01`), if it was.
    #[uniffi(default = None)]
    pub revoked_on: Option<String>,
}

impl From<sc::Consent> for Consent {
    fn from(c: sc::Consent) -> Self {
        Self {
            scope: c.scope,
            recipient: c.recipient,
            purpose: c.purpose,
            given_on: fmt_date(c.given_on),
            revoked_on: c.revoked_on.map(fmt_date),
        }
    }
}

impl Consent {
    /// Parses the dates; `field` is where this consent sits (`consents[0]`,
    /// `referrals[1].consent`), so an error names the exact field.
    pub(crate) fn into_core(self, field: &str) -> Result<sc::Consent> {
        Ok(sc::Consent {
            given_on: parse_date(&format!("{field}.given_on"), &self.given_on)?,
            revoked_on: self
                .revoked_on
                .as_deref()
                .map(|d| parse_date(&format!("{field}.revoked_on"), d))
                .transpose()?,
            scope: self.scope,
            recipient: self.recipient,
            purpose: self.purpose,
        })
    }
}

/// A referral (Vermittlung) to a partner organisation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Referral {
    /// Id unique within the contact (any short text, e.g. `"r1"`).
    pub id: String,
    /// Partner organisation id from the team directory.
    pub partner_id: String,
    /// Why the client was referred.
    #[uniffi(default = "")]
    pub reason: String,
    /// The client's consent. Required when the contact has a client code.
    #[uniffi(default = None)]
    pub consent: Option<Consent>,
    /// What became of it.
    pub outcome: ReferralOutcome,
}

impl From<sc::Referral> for Referral {
    fn from(r: sc::Referral) -> Self {
        Self {
            id: r.id,
            partner_id: r.partner_id,
            reason: r.reason,
            consent: r.consent.map(Into::into),
            outcome: r.outcome.into(),
        }
    }
}

/// What a worker enters for a contact. `new_contact_draft` gives a minimal valid one.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ContactDraft {
    /// Day of the contact (`2026-11-23`).
    pub date: String,
    /// Start time (`14:30`).
    pub start_time: String,
    /// End time (`15:10`), same day, not before the start.
    #[uniffi(default = None)]
    pub end_time: Option<String>,
    /// Area (Sozialraum) id from the team catalog.
    pub area_id: String,
    /// Place name (`Hauptbahnhof Nordausgang`).
    #[uniffi(default = "")]
    pub place: String,
    /// Optional area-level position.
    #[uniffi(default = None)]
    pub location: Option<CoarseLocation>,
    /// Setting.
    pub setting: Setting,
    /// Number of persons met (1 to 1000).
    #[uniffi(default = 1)]
    pub persons: i64,
    /// First contact (true) or a person already known (false).
    #[uniffi(default = false)]
    pub first_contact: bool,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Pseudonymous client code for individual work (never a real name).
    #[uniffi(default = None)]
    pub client_code: Option<String>,
    /// Housing situation.
    pub housing: Housing,
    /// Topic ids from the team catalog.
    #[uniffi(default = [])]
    pub topics: Vec<String>,
    /// Interventions.
    #[uniffi(default = [])]
    pub interventions: Vec<Intervention>,
    /// Materials handed out with counts.
    #[uniffi(default = [])]
    pub materials: Vec<MaterialCount>,
    /// Referrals to partner organisations.
    #[uniffi(default = [])]
    pub referrals: Vec<Referral>,
    /// Child-protection concern (§ 8a SGB VIII): a lead must see it at once.
    #[uniffi(default = false)]
    pub safeguarding: bool,
    /// The confidential note.
    #[uniffi(default = "")]
    pub note: String,
    /// Retention class.
    pub retention: RetentionClass,
}

impl From<sc::ContactDraft> for ContactDraft {
    fn from(d: sc::ContactDraft) -> Self {
        Self {
            date: fmt_date(d.date),
            start_time: fmt_time(d.start_time),
            end_time: d.end_time.map(fmt_time),
            area_id: d.area_id,
            place: d.place,
            location: d.location.map(|l| CoarseLocation {
                lat: l.lat,
                lon: l.lon,
            }),
            setting: d.setting.into(),
            persons: d.persons,
            first_contact: d.first_contact,
            age_band: d.age_band.into(),
            gender: d.gender.into(),
            client_code: d.client_code,
            housing: d.housing.into(),
            topics: d.topics,
            interventions: d.interventions.into_iter().map(Into::into).collect(),
            materials: d.materials.into_iter().map(Into::into).collect(),
            referrals: d.referrals.into_iter().map(Into::into).collect(),
            safeguarding: d.safeguarding,
            note: d.note,
            retention: d.retention.into(),
        }
    }
}

impl ContactDraft {
    /// Parses dates, times and the location; the core validates the rest.
    fn into_core(self) -> Result<sc::ContactDraft> {
        let location = self
            .location
            .map(|l| sc::CoarseLocation::new(l.lat, l.lon))
            .transpose()
            .map_err(sc::Error::from)?;
        let referrals = self
            .referrals
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(sc::Referral {
                    consent: r
                        .consent
                        .map(|c| c.into_core(&format!("referrals[{i}].consent")))
                        .transpose()?,
                    id: r.id,
                    partner_id: r.partner_id,
                    reason: r.reason,
                    outcome: r.outcome.into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(sc::ContactDraft {
            date: parse_date("date", &self.date)?,
            start_time: parse_time("start_time", &self.start_time)?,
            end_time: self
                .end_time
                .as_deref()
                .map(|t| parse_time("end_time", t))
                .transpose()?,
            area_id: self.area_id,
            place: self.place,
            location,
            setting: self.setting.into(),
            persons: self.persons,
            first_contact: self.first_contact,
            age_band: self.age_band.into(),
            gender: self.gender.into(),
            client_code: self.client_code,
            housing: self.housing.into(),
            topics: self.topics,
            interventions: self.interventions.into_iter().map(Into::into).collect(),
            materials: self.materials.into_iter().map(Into::into).collect(),
            referrals,
            safeguarding: self.safeguarding,
            note: self.note,
            retention: self.retention.into(),
        })
    }
}

/// A review comment, question or answer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Comment {
    /// Stable id.
    pub id: String,
    /// Author device id.
    pub author: String,
    /// Unix milliseconds when written (the author's clock).
    pub at_ms: i64,
    /// Remark, question or answer.
    pub kind: CommentKind,
    /// The text.
    pub text: String,
}

impl From<sc::Comment> for Comment {
    fn from(c: sc::Comment) -> Self {
        Self {
            id: c.id,
            author: c.author,
            at_ms: c.at,
            kind: c.kind.into(),
            text: c.text,
        }
    }
}

/// A contact as read back: the draft fields plus review, author and times.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Contact {
    /// Record id (32 hex characters).
    pub id: String,
    /// The editable fields.
    pub fields: ContactDraft,
    /// Review state.
    pub review: ReviewState,
    /// Review thread, oldest first.
    pub comments: Vec<Comment>,
    /// Whether a lead's question waits for the worker's answer.
    pub open_question: bool,
    /// Device id of the worker who logged it.
    pub author: String,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last change.
    pub updated_at_ms: i64,
}

impl From<sc::Contact> for Contact {
    fn from(c: sc::Contact) -> Self {
        let open_question = c.open_question();
        Self {
            id: c.id.to_string(),
            fields: c.fields.into(),
            review: c.review.into(),
            comments: c.comments.into_iter().map(Into::into).collect(),
            open_question,
            author: c.author,
            created_at_ms: c.created_at,
            updated_at_ms: c.updated_at,
        }
    }
}

/// What a list shows of a contact.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ContactSummary {
    /// Record id.
    pub id: String,
    /// Day (`2026-11-23`).
    pub date: String,
    /// Start time (`14:30`).
    pub start_time: String,
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
    pub updated_at_ms: i64,
    /// The note.
    pub note: String,
}

impl From<sc::ContactSummary> for ContactSummary {
    fn from(s: sc::ContactSummary) -> Self {
        Self {
            id: s.id.to_string(),
            date: fmt_date(s.date),
            start_time: fmt_time(s.start_time),
            area_id: s.area_id,
            place: s.place,
            setting: s.setting.into(),
            persons: s.persons,
            first_contact: s.first_contact,
            age_band: s.age_band.into(),
            gender: s.gender.into(),
            client_code: s.client_code,
            topics: s.topics,
            materials: s.materials.into_iter().map(Into::into).collect(),
            referral_partners: s.referral_partners,
            safeguarding: s.safeguarding,
            review: s.review.into(),
            comments: s.comments,
            author: s.author,
            updated_at_ms: s.updated_at,
            note: s.note,
        }
    }
}

/// Filters for listing contacts. Every set field must match; the default matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ContactFilter {
    /// First day, inclusive (`2026-11-01`).
    #[uniffi(default = None)]
    pub from_date: Option<String>,
    /// Last day, inclusive (`2026-11-30`).
    #[uniffi(default = None)]
    pub to_date: Option<String>,
    /// Area id.
    #[uniffi(default = None)]
    pub area_id: Option<String>,
    /// Topic id.
    #[uniffi(default = None)]
    pub topic_id: Option<String>,
    /// Author device id.
    #[uniffi(default = None)]
    pub author: Option<String>,
    /// Review state.
    #[uniffi(default = None)]
    pub review: Option<ReviewState>,
    /// Client code (exact, case-insensitive).
    #[uniffi(default = None)]
    pub client_code: Option<String>,
    /// Safeguarding flag.
    #[uniffi(default = None)]
    pub safeguarding: Option<bool>,
    /// Full-text search over notes and place names: every word must occur (case-insensitive).
    #[uniffi(default = None)]
    pub text: Option<String>,
    /// Put child-protection concerns first (the lead's review queue).
    #[uniffi(default = false)]
    pub safeguarding_first: bool,
    /// Rows to skip.
    #[uniffi(default = 0)]
    pub offset: u32,
    /// Rows to return; 0 means the default page size (50), at most 1000.
    #[uniffi(default = 0)]
    pub limit: u32,
}

impl ContactFilter {
    /// Parses the date range, refusing a `to_date` before `from_date`.
    fn into_core(self) -> Result<sc::ContactFilter> {
        let from = self
            .from_date
            .as_deref()
            .map(|d| parse_date("from_date", d))
            .transpose()?;
        let to = self
            .to_date
            .as_deref()
            .map(|d| parse_date("to_date", d))
            .transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            // Checked here so the error names this record's field, not the core's.
            return Err(invalid("to_date", format!("{t} is before from_date {f}")));
        }
        Ok(sc::ContactFilter {
            from,
            to,
            area_id: self.area_id,
            topic_id: self.topic_id,
            author: self.author,
            review: self.review.map(Into::into),
            client_code: self.client_code,
            safeguarding: self.safeguarding,
            text: self.text,
            safeguarding_first: self.safeguarding_first,
            offset: self.offset as usize,
            limit: self.limit as usize,
        })
    }
}

/// One page of contacts, newest first.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ContactPage {
    /// The rows.
    pub items: Vec<ContactSummary>,
    /// How many contacts match in total (for "page 2 of 7").
    pub total: u64,
}

impl From<sc::ContactPage> for ContactPage {
    fn from(p: sc::ContactPage) -> Self {
        Self {
            items: p.items.into_iter().map(Into::into).collect(),
            total: count_u64(p.total),
        }
    }
}

/// A count for the host (`u64`), saturating on a platform where `usize` is wider.
fn count_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A minimal valid contact draft for `area_id` on `date` (`2026-11-23`) at `start_time`
/// (`14:30`): one person, street setting, everything else unknown or empty. Fill in the rest.
#[uniffi::export]
pub fn new_contact_draft(
    date: String,
    start_time: String,
    area_id: String,
) -> Result<ContactDraft> {
    let d = parse_date("date", &date)?;
    let t = parse_time("start_time", &start_time)?;
    Ok(sc::ContactDraft::new(d, t, area_id).into())
}

// ---- Workspace: contacts, review, export ----------------------------------------------------

#[uniffi::export]
impl Workspace {
    /// Logs a new contact (with its referrals and consents). Durable when this returns. Blocking,
    /// fast.
    pub fn create_contact(&self, draft: ContactDraft) -> Result<Contact> {
        guard(|| Ok(self.inner.create_contact(draft.into_core()?)?.into()))
    }

    /// Replaces a contact's fields; the note merges by character with concurrent edits. Blocking,
    /// fast.
    pub fn update_contact(&self, id: String, draft: ContactDraft) -> Result<Contact> {
        guard(|| {
            let id = record_id(&id)?;
            Ok(self.inner.update_contact(id, draft.into_core()?)?.into())
        })
    }

    /// One contact. Blocking, fast.
    pub fn get_contact(&self, id: String) -> Result<Contact> {
        guard(|| Ok(self.inner.get_contact(record_id(&id)?)?.into()))
    }

    /// Lists contacts matching `filter`, newest first, one page at a time. Reads in-memory
    /// projections (no document is opened). Blocking, fast.
    pub fn list_contacts(&self, filter: ContactFilter) -> Result<ContactPage> {
        guard(|| Ok(self.inner.list_contacts(&filter.into_core()?)?.into()))
    }

    /// The contacts as CSV text, oldest first, optionally limited to a date range. Notes are left
    /// out unless `include_notes` (for the team's own use only). Blocking, fast.
    pub fn export_contacts_csv(
        &self,
        from_date: Option<String>,
        to_date: Option<String>,
        include_notes: bool,
    ) -> Result<String> {
        guard(|| {
            let export = sc::ContactExport {
                from: from_date
                    .as_deref()
                    .map(|d| parse_date("from_date", d))
                    .transpose()?,
                to: to_date
                    .as_deref()
                    .map(|d| parse_date("to_date", d))
                    .transpose()?,
                include_notes,
            };
            let mut out = Vec::new();
            self.inner
                .export_contacts(&export, &mut out, &mut |_, _| {})?;
            String::from_utf8(out).map_err(|_| StreetsyncError::Internal {
                detail: "the CSV is not UTF-8".into(),
            })
        })
    }

    /// Deletes a contact logged by mistake; the deletion syncs to the team. Blocking, fast.
    pub fn delete_contact(&self, id: String) -> Result<()> {
        guard(|| Ok(self.inner.delete_contact(record_id(&id)?)?))
    }

    /// Hands a contact in for review. Blocking, fast.
    pub fn submit_contact(&self, id: String) -> Result<Contact> {
        guard(|| Ok(self.inner.submit_contact(record_id(&id)?)?.into()))
    }

    /// Approves a contact (leads only). Blocking, fast.
    pub fn approve_contact(&self, id: String) -> Result<Contact> {
        guard(|| Ok(self.inner.approve_contact(record_id(&id)?)?.into()))
    }

    /// Sends a question back to the worker (leads only); the contact waits for an answer.
    /// Blocking, fast.
    pub fn request_changes(&self, id: String, question: String) -> Result<Contact> {
        guard(|| {
            Ok(self
                .inner
                .request_changes(record_id(&id)?, &question)?
                .into())
        })
    }

    /// Adds a remark to the review thread. Blocking, fast.
    pub fn comment_contact(&self, id: String, text: String) -> Result<Contact> {
        guard(|| Ok(self.inner.comment_contact(record_id(&id)?, &text)?.into()))
    }

    /// Answers the lead's question and hands the contact in again. Blocking, fast.
    pub fn answer_contact(&self, id: String, text: String) -> Result<Contact> {
        guard(|| Ok(self.inner.answer_contact(record_id(&id)?, &text)?.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_mirrors_every_core_value() {
        for s in sc::Setting::ALL {
            assert_eq!(sc::Setting::from(Setting::from(*s)), *s);
        }
        for a in sc::AgeBand::ALL {
            assert_eq!(sc::AgeBand::from(AgeBand::from(*a)), *a);
        }
        for r in sc::ReviewState::ALL {
            assert_eq!(sc::ReviewState::from(ReviewState::from(*r)), *r);
        }
    }
}
