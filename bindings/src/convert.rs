//! The plain FFI records and enums, and every conversion between them and the core types.
//!
//! This is the one place where core types meet FFI types. Records carry dates as ISO strings
//! (`"2026-11-23"`), times as `"14:30"` and ids as 32 hex characters; parsing them back is checked
//! and fails with [`StreetsyncError::InvalidInput`] naming the field, so a form can point at it.
//! Core → FFI conversions are infallible `From` impls; FFI → core conversions are `into_core`
//! methods that return the typed error.

use chrono::{NaiveDate, NaiveTime, Timelike};
use streetsync_core as sc;

use crate::error::StreetsyncError;

type Result<T> = std::result::Result<T, StreetsyncError>;

// ---- scalars ------------------------------------------------------------------------------

/// Parses an ISO date (`2026-11-23`) for `field`.
pub(crate) fn parse_date(field: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(field, format!("expected a date like 2026-11-23, got '{s}'")))
}

/// Parses a time of day (`14:30` or `14:30:15`) for `field`.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<NaiveTime> {
    let t = s.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| invalid(field, format!("expected a time like 14:30, got '{s}'")))
}

/// Formats a date as `2026-11-23`.
pub(crate) fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Formats a time as `14:30` (or `14:30:15` when it has seconds).
pub(crate) fn fmt_time(t: NaiveTime) -> String {
    if t.second() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

/// Parses a 32-hex-character id (record, team or device) for `field`.
pub(crate) fn parse_id<T: std::str::FromStr>(field: &str, s: &str) -> Result<T> {
    s.trim().parse().map_err(|_| {
        invalid(
            field,
            format!("expected an id of 32 hexadecimal characters, got '{s}'"),
        )
    })
}

fn invalid(field: &str, reason: String) -> StreetsyncError {
    StreetsyncError::InvalidInput {
        field: field.to_owned(),
        reason,
    }
}

fn count_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

// ---- enums --------------------------------------------------------------------------------

/// Declares an FFI enum that mirrors a core enum variant for variant, with `From` both ways.
macro_rules! mirror_enum {
    (
        $(#[$meta:meta])*
        $name:ident = $core:path {
            $($(#[$vmeta:meta])* $variant:ident),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                type C = $core;
                match v {
                    $(C::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                type C = $core;
                match v {
                    $($name::$variant => C::$variant),+
                }
            }
        }
    };
}

mirror_enum!(
    /// Where the contact happened.
    Setting = sc::vocab::Setting {
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
    AgeBand = sc::vocab::AgeBand {
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
    Gender = sc::vocab::Gender {
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
    Housing = sc::vocab::Housing {
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
    Intervention = sc::vocab::Intervention {
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
    ReviewState = sc::vocab::ReviewState {
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
    RetentionClass = sc::vocab::RetentionClass {
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
    ReferralOutcome = sc::vocab::ReferralOutcome {
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
    CommentKind = sc::vocab::CommentKind {
        /// A remark.
        Remark,
        /// A lead's question that waits for the worker's answer.
        Question,
        /// The worker's answer to a question.
        Answer,
    }
);

mirror_enum!(
    /// Which team catalog an entry belongs to.
    Catalog = sc::team::Catalog {
        /// Areas (Sozialräume) the team works in.
        Area,
        /// Topics discussed.
        Topic,
        /// Materials handed out.
        Material,
    }
);

mirror_enum!(
    /// A device's role in the team.
    Role = streetsync_wire::Role {
        /// A field worker: reads and writes records.
        Worker,
        /// A team lead: may also approve contacts, shape catalogs and add devices.
        Lead,
    }
);

mirror_enum!(
    /// The kinds of record.
    RecordKind = sc::RecordKind {
        /// A contact (Kontakt): one encounter.
        Contact,
        /// A client: a pseudonymous person followed across visits.
        Client,
        /// The team document (roster, catalogs, partner directory).
        Team,
    }
);

mirror_enum!(
    /// Where a change came from.
    ChangeOrigin = sc::ChangeOrigin {
        /// Written on this device.
        Local,
        /// Received from a teammate through sync.
        Remote,
    }
);

mirror_enum!(
    /// Which step a sync is in.
    SyncPhase = sc::SyncPhase {
        /// Sending local changes.
        Pushing,
        /// Receiving teammates' changes.
        Pulling,
        /// Uploading snapshots so the relay can drop old envelopes.
        Compacting,
    }
);

// ---- team ---------------------------------------------------------------------------------

/// What a lead enters to found a team.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TeamSetup {
    /// Team name (`Streetwork Mitte`).
    pub team_name: String,
    /// The founding lead's display name.
    pub member_name: String,
    /// Areas (Sozialräume) the team works in; at least one.
    pub areas: Vec<String>,
    /// Topics; empty means the default list.
    #[uniffi(default = [])]
    pub topics: Vec<String>,
    /// Materials; empty means the default list.
    #[uniffi(default = [])]
    pub materials: Vec<String>,
}

impl From<TeamSetup> for sc::TeamSetup {
    fn from(s: TeamSetup) -> Self {
        sc::TeamSetup {
            team_name: s.team_name,
            member_name: s.member_name,
            areas: s.areas,
            topics: s.topics,
            materials: s.materials,
        }
    }
}

/// One entry of a catalog (area, topic or material).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CatalogEntry {
    /// Stable id: a slug of the first name (`hauptbahnhof`); use it in drafts and filters.
    pub id: String,
    /// Name shown to workers.
    pub name: String,
    /// Retired entries stay for old records but are not offered for new ones.
    pub retired: bool,
}

impl From<sc::CatalogEntry> for CatalogEntry {
    fn from(e: sc::CatalogEntry) -> Self {
        Self {
            id: e.id,
            name: e.name,
            retired: e.retired,
        }
    }
}

/// A partner organisation of the local network (Jobcenter, Suchthilfe, Erziehungsberatung...).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Partner {
    /// Stable id, used as `partner_id` in referrals.
    pub id: String,
    /// Name of the organisation.
    pub name: String,
    /// What it offers (`Schuldnerberatung`, `Substitution`...).
    pub offers: Vec<String>,
    /// The person to call.
    pub contact_person: String,
    /// Phone number.
    pub phone: String,
    /// Street address.
    pub address: String,
    /// Notes for colleagues (opening hours, how to get an appointment).
    pub notes: String,
    /// Organisations that closed stay listed for old referrals.
    pub retired: bool,
}

impl From<sc::Partner> for Partner {
    fn from(p: sc::Partner) -> Self {
        Self {
            id: p.id,
            name: p.name,
            offers: p.offers,
            contact_person: p.contact_person,
            phone: p.phone,
            address: p.address,
            notes: p.notes,
            retired: p.retired,
        }
    }
}

/// Input for a partner organisation in the directory.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartnerDraft {
    /// Name of the organisation; must not be empty.
    pub name: String,
    /// What it offers.
    #[uniffi(default = [])]
    pub offers: Vec<String>,
    /// The person to call.
    #[uniffi(default = "")]
    pub contact_person: String,
    /// Phone number.
    #[uniffi(default = "")]
    pub phone: String,
    /// Street address.
    #[uniffi(default = "")]
    pub address: String,
    /// Notes for colleagues.
    #[uniffi(default = "")]
    pub notes: String,
}

impl From<PartnerDraft> for sc::PartnerDraft {
    fn from(p: PartnerDraft) -> Self {
        sc::PartnerDraft {
            name: p.name,
            offers: p.offers,
            contact_person: p.contact_person,
            phone: p.phone,
            address: p.address,
            notes: p.notes,
        }
    }
}

/// A device on the team's roster.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RosterDevice {
    /// Device id (32 hex characters).
    pub device_id: String,
    /// The member this device belongs to (display name).
    pub member: String,
    /// Worker or lead.
    pub role: Role,
    /// Removed devices stay listed so their old signatures still verify.
    pub revoked: bool,
}

impl From<sc::RosterDevice> for RosterDevice {
    fn from(d: sc::RosterDevice) -> Self {
        Self {
            device_id: d.device_id.to_string(),
            member: d.member,
            role: d.role.into(),
            revoked: d.revoked,
        }
    }
}

/// The team: roster, catalogs and partner directory.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Team {
    /// The team id used on the relay (32 hex characters); a new device joins with it.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Devices and their roles.
    pub roster: Vec<RosterDevice>,
    /// Areas (Sozialräume).
    pub areas: Vec<CatalogEntry>,
    /// Topics.
    pub topics: Vec<CatalogEntry>,
    /// Materials.
    pub materials: Vec<CatalogEntry>,
    /// Partner organisations.
    pub partners: Vec<Partner>,
}

impl From<sc::Team> for Team {
    fn from(t: sc::Team) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            roster: t.roster.into_iter().map(Into::into).collect(),
            areas: t.areas.into_iter().map(Into::into).collect(),
            topics: t.topics.into_iter().map(Into::into).collect(),
            materials: t.materials.into_iter().map(Into::into).collect(),
            partners: t.partners.into_iter().map(Into::into).collect(),
        }
    }
}
/// A one-time invite for a new member's device, as the lead hands it over (typed, or shown as a
/// QR code drawn by the app).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Invite {
    /// The code, e.g. `K7QX-2M4A-...`; case, spaces and dashes do not matter when typed.
    pub code: String,
    /// The role the new device gets.
    pub role: Role,
    /// The member's display name on the roster.
    pub member: String,
    /// Unix milliseconds after which the code is refused.
    pub expires_at_ms: i64,
}

impl From<sc::sync::Invite> for Invite {
    fn from(i: sc::sync::Invite) -> Self {
        Self {
            code: i.code,
            role: i.role.into(),
            member: i.member,
            expires_at_ms: i.expires_at_ms,
        }
    }
}

/// One change in a record's history (the audit trail).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// When, unix milliseconds (the author's clock, second precision).
    pub at_ms: i64,
    /// The device that made the change, if known.
    pub device_id: Option<String>,
    /// The roster name of that device's member, when known.
    pub member: Option<String>,
    /// Top-level fields the change touched (`note`, `review`, `materials`...).
    pub fields: Vec<String>,
    /// What the change was (`create`, `edit contact`, `approve`...).
    pub message: String,
}

impl From<sc::workspace::HistoryEntry> for HistoryEntry {
    fn from(h: sc::workspace::HistoryEntry) -> Self {
        Self {
            at_ms: h.at_ms,
            device_id: h.device.map(|d| d.to_string()),
            member: h.member,
            fields: h.fields,
            message: h.message,
        }
    }
}

// ---- contacts -----------------------------------------------------------------------------

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
    fn into_core(self, field: &str) -> Result<sc::Consent> {
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
    pub(crate) fn into_core(self) -> Result<sc::ContactDraft> {
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
    pub(crate) fn into_core(self) -> Result<sc::ContactFilter> {
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

// ---- clients ------------------------------------------------------------------------------

/// What a worker enters for a client.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientDraft {
    /// Pseudonymous code, unique in the team (letters, digits and `-`, e.g. `MA-1987-K`).
    pub code: String,
    /// A nickname colleagues recognise (optional, never the legal name).
    #[uniffi(default = None)]
    pub alias: Option<String>,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Consents given by the client.
    #[uniffi(default = [])]
    pub consents: Vec<Consent>,
    /// Notes about the person across visits.
    #[uniffi(default = "")]
    pub notes: String,
}

impl From<sc::ClientDraft> for ClientDraft {
    fn from(d: sc::ClientDraft) -> Self {
        Self {
            code: d.code,
            alias: d.alias,
            age_band: d.age_band.into(),
            gender: d.gender.into(),
            consents: d.consents.into_iter().map(Into::into).collect(),
            notes: d.notes,
        }
    }
}

impl ClientDraft {
    pub(crate) fn into_core(self) -> Result<sc::ClientDraft> {
        Ok(sc::ClientDraft {
            consents: self
                .consents
                .into_iter()
                .enumerate()
                .map(|(i, c)| c.into_core(&format!("consents[{i}]")))
                .collect::<Result<Vec<_>>>()?,
            code: self.code,
            alias: self.alias,
            age_band: self.age_band.into(),
            gender: self.gender.into(),
            notes: self.notes,
        })
    }
}

/// A client as read back.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Client {
    /// Record id.
    pub id: String,
    /// The editable fields.
    pub fields: ClientDraft,
    /// Device id of the worker who created it.
    pub author: String,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last change.
    pub updated_at_ms: i64,
}

impl From<sc::Client> for Client {
    fn from(c: sc::Client) -> Self {
        Self {
            id: c.id.to_string(),
            fields: c.fields.into(),
            author: c.author,
            created_at_ms: c.created_at,
            updated_at_ms: c.updated_at,
        }
    }
}

/// What a list shows of a client.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientSummary {
    /// Record id.
    pub id: String,
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
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
}

impl From<sc::ClientSummary> for ClientSummary {
    fn from(c: sc::ClientSummary) -> Self {
        Self {
            id: c.id.to_string(),
            code: c.code,
            alias: c.alias,
            age_band: c.age_band.into(),
            gender: c.gender.into(),
            active_consents: c.active_consents,
            updated_at_ms: c.updated_at,
        }
    }
}

/// Filters for listing clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientFilter {
    /// Codes or aliases containing this text (case-insensitive).
    #[uniffi(default = None)]
    pub text: Option<String>,
}

impl From<ClientFilter> for sc::ClientFilter {
    fn from(f: ClientFilter) -> Self {
        sc::ClientFilter { text: f.text }
    }
}

// ---- changes and sync ---------------------------------------------------------------------

/// One record that changed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordChange {
    /// The record id.
    pub id: String,
    /// Its kind.
    pub kind: RecordKind,
    /// Written here or received from a teammate.
    pub origin: ChangeOrigin,
    /// Whether the record is gone (deleted or erased).
    pub removed: bool,
}

impl From<&sc::RecordChange> for RecordChange {
    fn from(c: &sc::RecordChange) -> Self {
        Self {
            id: c.id.to_string(),
            kind: c.kind.into(),
            origin: c.origin.into(),
            removed: c.removed,
        }
    }
}

/// The state of the store when a change listener subscribes: delivered first, before any change.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoreSnapshot {
    /// The team id, if this device is in a team.
    pub team_id: Option<String>,
    /// Contacts in the store.
    pub contacts: u64,
    /// Clients in the store.
    pub clients: u64,
    /// Local changes waiting to be sent to the relay.
    pub pending_changes: u64,
}

/// Progress of one sync, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// The step.
    pub phase: SyncPhase,
    /// Items done in this step.
    pub done: u64,
    /// Items in this step.
    pub total: u64,
}

impl From<sc::SyncProgress> for SyncProgress {
    fn from(p: sc::SyncProgress) -> Self {
        Self {
            phase: p.phase.into(),
            done: p.done,
            total: p.total,
        }
    }
}

/// An envelope from the relay that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Quarantined {
    /// Its sequence number on the relay.
    pub seq: u64,
    /// The record it claims to change.
    pub record_id: String,
    /// The device it claims to come from.
    pub author: String,
    /// Why it was refused (`bad_signature`, `unknown_device`, `tag_failed`, ...).
    pub reason: String,
}

impl From<sc::Quarantined> for Quarantined {
    fn from(q: sc::Quarantined) -> Self {
        Self {
            seq: q.seq,
            record_id: q.doc.to_string(),
            author: q.author.to_string(),
            reason: q.reason,
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Local changes the relay acknowledged.
    pub pushed: u64,
    /// Envelopes received.
    pub pulled: u64,
    /// Envelopes merged into records.
    pub applied: u64,
    /// Envelopes refused in this sync.
    pub quarantined: Vec<Quarantined>,
    /// Earlier refused envelopes that could be applied now.
    pub recovered: u64,
    /// Snapshots uploaded.
    pub snapshots: u64,
    /// The device's cursor afterwards.
    pub cursor: u64,
    /// The relay had lost entries (restored from a backup); this device re-sent what it had.
    pub relay_restored: bool,
}

impl From<&sc::SyncReport> for SyncReport {
    fn from(r: &sc::SyncReport) -> Self {
        Self {
            pushed: r.pushed,
            pulled: r.pulled,
            applied: r.applied,
            quarantined: r.quarantined.iter().cloned().map(Into::into).collect(),
            recovered: r.recovered,
            snapshots: r.snapshots,
            cursor: r.cursor,
            relay_restored: r.relay_restored,
        }
    }
}

/// Where sync stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncStatus {
    /// Opening the connection.
    Connecting,
    /// Connected and syncing.
    Syncing,
    /// Everything exchanged.
    Idle {
        /// The cursor after the last sync.
        cursor: u64,
        /// Unix milliseconds of the last completed sync.
        last_sync_ms: i64,
    },
    /// No connection; local work goes on and is sent later.
    Offline {
        /// Why (a sentence for the status line).
        reason: String,
        /// When the next attempt starts.
        retry_in_ms: u64,
    },
    /// The relay refused this device (revoked, or not a member): live sync stopped.
    Refused {
        /// The relay's message.
        reason: String,
    },
    /// Live sync was stopped by the host.
    Stopped,
}

impl From<sc::SyncStatus> for SyncStatus {
    fn from(s: sc::SyncStatus) -> Self {
        match s {
            sc::SyncStatus::Connecting => SyncStatus::Connecting,
            sc::SyncStatus::Syncing => SyncStatus::Syncing,
            sc::SyncStatus::Idle {
                cursor,
                last_sync_ms,
            } => SyncStatus::Idle {
                cursor,
                last_sync_ms,
            },
            sc::SyncStatus::Offline {
                reason,
                retry_in_ms,
            } => SyncStatus::Offline {
                reason,
                retry_in_ms,
            },
            sc::SyncStatus::Refused { reason } => SyncStatus::Refused { reason },
            sc::SyncStatus::Stopped => SyncStatus::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_round_trip_and_bad_ones_name_the_field() {
        let d = parse_date("date", "2026-11-23").expect("date");
        assert_eq!(fmt_date(d), "2026-11-23");
        let t = parse_time("start_time", "14:30").expect("time");
        assert_eq!(fmt_time(t), "14:30");
        assert_eq!(
            fmt_time(parse_time("t", "09:05:07").expect("time")),
            "09:05:07"
        );
        match parse_date("referrals[0].consent.given_on", "23.11.2026") {
            Err(StreetsyncError::InvalidInput { field, .. }) => {
                assert_eq!(field, "referrals[0].consent.given_on")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_time("end_time", "25:00"),
            Err(StreetsyncError::InvalidInput { .. })
        ));
    }

    #[test]
    fn ids_parse_or_fail_typed() {
        let id = sc::RecordId::random();
        let back: sc::RecordId = parse_id("id", &id.to_string()).expect("id");
        assert_eq!(back, id);
        assert!(matches!(
            parse_id::<sc::RecordId>("id", "xyz"),
            Err(StreetsyncError::InvalidInput { field, .. }) if field == "id"
        ));
    }

    #[test]
    fn vocab_mirrors_every_core_value() {
        for s in sc::vocab::Setting::ALL {
            assert_eq!(sc::vocab::Setting::from(Setting::from(*s)), *s);
        }
        for a in sc::vocab::AgeBand::ALL {
            assert_eq!(sc::vocab::AgeBand::from(AgeBand::from(*a)), *a);
        }
        for r in sc::vocab::ReviewState::ALL {
            assert_eq!(sc::vocab::ReviewState::from(ReviewState::from(*r)), *r);
        }
    }
}

// ---- statistics -----------------------------------------------------------------------------

/// One number of a statistic. Rows with fewer than three persons are suppressed in every output,
/// so no person can be singled out: then `value` is `None` and `text` is `"<3"`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatCell {
    /// The number, or `None` when suppressed.
    pub value: Option<u64>,
    /// What to show: the number, or `"<3"`.
    pub text: String,
}

impl From<sc::stats::Cell> for StatCell {
    fn from(c: sc::stats::Cell) -> Self {
        StatCell {
            value: c.value(),
            text: c.to_string(),
        }
    }
}

/// One row of a statistics table.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatRow {
    /// Stable key (`2026-09`, an area id, an age band...).
    pub key: String,
    /// What a person reads.
    pub label: String,
    /// Contacts.
    pub contacts: StatCell,
    /// Persons, deduplicated per day by client code.
    pub persons: StatCell,
    /// Items handed out (materials) or referrals (partners); absent for other tables.
    pub amount: Option<StatCell>,
}

impl From<&sc::stats::Row> for StatRow {
    fn from(r: &sc::stats::Row) -> Self {
        StatRow {
            key: r.key.clone(),
            label: r.label.clone(),
            contacts: r.contacts.into(),
            persons: r.persons.into(),
            amount: r.amount.map(Into::into),
        }
    }
}

/// One table: what it groups by and its rows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatTable {
    /// `month`, `area`, `age_band`, `gender`, `topic`, `material` or `partner`.
    pub dimension: String,
    /// A heading for people.
    pub title: String,
    /// The rows.
    pub rows: Vec<StatRow>,
}

/// Anonymous statistics of a date range, ready for the city and funders.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Statistics {
    /// Team name.
    pub team: String,
    /// First day (`2026-01-01`).
    pub from_date: String,
    /// Last day.
    pub to_date: String,
    /// All contacts of the range.
    pub total: StatRow,
    /// One table per dimension.
    pub tables: Vec<StatTable>,
}

impl From<&sc::stats::Statistics> for Statistics {
    fn from(s: &sc::stats::Statistics) -> Self {
        Statistics {
            team: s.team.clone(),
            from_date: fmt_date(s.from),
            to_date: fmt_date(s.to),
            total: (&s.total).into(),
            tables: s
                .tables
                .iter()
                .map(|t| StatTable {
                    dimension: t.dimension.as_str().to_owned(),
                    title: t.dimension.title().to_owned(),
                    rows: t.rows.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}
