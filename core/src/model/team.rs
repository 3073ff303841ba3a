//! The Team document: roster of devices with roles, the catalogs a team shapes itself (areas,
//! topics, materials) and the directory of partner organisations workers refer clients to.
//!
//! There is exactly one Team document per store. Catalog entries are never deleted, only retired,
//! so old contacts keep pointing at a name and statistics over past years stay complete.

use serde::{Deserialize, Serialize};
use streetsync_wire::{DeviceId, Role, TeamId};

use crate::error::ValidationError;
use crate::model::retention::{ReportedPeriod, RetentionPolicy};

/// Schema version written into every Team document.
pub const TEAM_SCHEMA_VERSION: u64 = 1;

/// One entry of a catalog (area/Sozialraum, topic, material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Stable id: a slug of the first name (`hauptbahnhof`), unique in its catalog.
    pub id: String,
    /// Name shown to workers.
    pub name: String,
    /// Retired entries stay for old records but are not offered for new ones.
    pub retired: bool,
}

/// Which catalog an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Catalog {
    /// Areas (Sozialräume) the team works in.
    Area,
    /// Topics discussed.
    Topic,
    /// Materials handed out.
    Material,
}

impl Catalog {
    /// Field name used in validation errors.
    pub fn field(self) -> &'static str {
        match self {
            Catalog::Area => "area_id",
            Catalog::Topic => "topics",
            Catalog::Material => "materials",
        }
    }
}

/// A partner organisation of the local network (Jobcenter, Suchthilfe, Erziehungsberatung...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Partner {
    /// Stable id (random, 8 hex characters are plenty within one team).
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
    /// Notes for colleagues (opening hours, how to get an appointment). Merges by character.
    pub notes: String,
    /// Organisations that closed stay for old referrals.
    pub retired: bool,
}

/// A device on the team's roster. The roster is the only source of truth for signature checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterDevice {
    /// Derived from `sign_pk`.
    pub device_id: DeviceId,
    /// The member this device belongs to (display name, no real-name requirement).
    pub member: String,
    /// Worker or lead.
    pub role: Role,
    /// Ed25519 public key.
    pub sign_pk: [u8; 32],
    /// X25519 public key that key bundles are sealed to.
    pub kx_pk: [u8; 32],
    /// Removed devices stay listed so their old signatures still verify for the audit trail.
    pub revoked: bool,
}

/// The team as read from its document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// The team id used on the relay.
    pub id: TeamId,
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
    /// Every team-key epoch a lead started, with a commitment to its key: a device accepts a key
    /// only if it matches the commitment a verified lead recorded here, so neither the relay nor
    /// anyone else can hand out a key of their own. Empty for teams founded before this existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochCommitment>,
    /// Every revocation, with the point in the team's log after which the device's envelopes are
    /// refused by every device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocations: Vec<Revocation>,
    /// How long each retention class is kept, and whether erasure is automatic; set by leads.
    /// (Left out of JSON while it is the default, as in documents written before it existed.)
    #[serde(default, skip_serializing_if = "RetentionPolicy::is_default")]
    pub retention: RetentionPolicy,
    /// Statistics periods a lead marked as produced and sent: `short` contacts of these periods
    /// are due for deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<ReportedPeriod>,
}

/// A lead's record that a team-key epoch exists, and which key it is (a SHA-256 commitment, not
/// the key: the Team document travels sealed, but a commitment reveals nothing even then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochCommitment {
    /// The epoch, counting up by one from 1.
    pub epoch: u32,
    /// `SHA-256("streetsync-epoch-v1" || team id || epoch || key)`.
    pub commitment: [u8; 32],
    /// The lead device that started the epoch.
    pub by: DeviceId,
}

/// A lead's record that a device was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The removed device.
    pub device: DeviceId,
    /// The relay sequence number the lead had pulled up to when it removed the device: envelopes
    /// the device signed that sit later in the log are refused.
    pub after_seq: u64,
    /// The lead device that removed it.
    pub by: DeviceId,
}

impl Team {
    /// The commitment a lead recorded for `epoch`, if any.
    /// Two leads who rotate at the same moment, unable to see each other, both record the same
    /// epoch; every device then takes the entry with the smallest commitment, so all agree on one
    /// key without talking to each other (the other lead rotates again, see
    /// `Engine::resolve_contested_epochs`).
    pub fn epoch_commitment(&self, epoch: u32) -> Option<&EpochCommitment> {
        self.epochs
            .iter()
            .filter(|e| e.epoch == epoch)
            .min_by_key(|e| e.commitment)
    }

    /// The revocation of `device`, if it was removed.
    pub fn revocation(&self, device: &DeviceId) -> Option<&Revocation> {
        self.revocations.iter().find(|r| &r.device == device)
    }

    /// Whether `device` is on the roster as a lead and not removed: the only devices whose word
    /// changes the roster, keys or reviews.
    pub fn is_active_lead(&self, device: &DeviceId) -> bool {
        self.device(device)
            .is_some_and(|d| d.role == Role::Lead && !d.revoked)
    }

    /// The entries of one catalog.
    pub fn catalog(&self, catalog: Catalog) -> &[CatalogEntry] {
        match catalog {
            Catalog::Area => &self.areas,
            Catalog::Topic => &self.topics,
            Catalog::Material => &self.materials,
        }
    }

    /// Checks that `id` names an entry of `catalog`. Retired entries pass only when `allow_retired`
    /// (an old record keeps its values when edited).
    pub fn check_catalog_id(
        &self,
        catalog: Catalog,
        field: &str,
        id: &str,
        allow_retired: bool,
    ) -> Result<(), ValidationError> {
        match self.catalog(catalog).iter().find(|e| e.id == id) {
            Some(e) if !e.retired || allow_retired => Ok(()),
            Some(_) => Err(ValidationError::new(
                field,
                format!("'{id}' is retired and cannot be used for new entries"),
            )),
            None => {
                let known: Vec<&str> = self
                    .catalog(catalog)
                    .iter()
                    .filter(|e| !e.retired)
                    .map(|e| e.id.as_str())
                    .collect();
                Err(ValidationError::new(
                    field,
                    format!("unknown id '{id}'; known: {}", known.join(", ")),
                ))
            }
        }
    }

    /// Checks that `id` names a partner organisation.
    pub fn check_partner(&self, field: &str, id: &str) -> Result<(), ValidationError> {
        if self.partners.iter().any(|p| p.id == id) {
            Ok(())
        } else {
            Err(ValidationError::new(
                field,
                format!("unknown partner organisation '{id}'"),
            ))
        }
    }

    /// The roster entry of a device, if any.
    pub fn device(&self, id: &DeviceId) -> Option<&RosterDevice> {
        self.roster.iter().find(|d| &d.device_id == id)
    }

    /// The display name of an entry, or its id when unknown (for old or foreign data).
    pub fn name_of(&self, catalog: Catalog, id: &str) -> String {
        self.catalog(catalog)
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| id.to_owned())
    }
}

/// Turns a name into a catalog id: lowercase ASCII letters, digits and dashes, umlauts spelled out.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {
                if !out.ends_with('-') && !out.is_empty() {
                    out.push('-')
                }
            }
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The default topics (domain.md), offered to every new team and editable afterwards.
pub const DEFAULT_TOPICS: &[&str] = &[
    "Wohnen (housing)",
    "Sucht (addiction)",
    "Arbeit/Jobcenter (work)",
    "Geld/Schulden (money, debt)",
    "Gesundheit (health)",
    "Psychische Gesundheit (mental health)",
    "Familie (family)",
    "Gewalt (violence)",
    "Schule (school)",
    "Recht (legal)",
    "Aufenthalt (residence status)",
];

/// The default materials handed out.
pub const DEFAULT_MATERIALS: &[&str] = &[
    "Spritzen (syringes)",
    "Naloxon (naloxone doses)",
    "Kondome (condoms)",
    "Essen (food)",
    "Schlafsäcke (sleeping bags)",
];

/// Builds catalog entries from names, giving each a unique slug id.
pub fn entries_from_names<S: AsRef<str>>(names: &[S]) -> Vec<CatalogEntry> {
    let mut out: Vec<CatalogEntry> = Vec::new();
    for n in names {
        let name = n.as_ref().trim();
        let base = slug(name.split(" (").next().unwrap_or(name));
        let base = if base.is_empty() {
            "entry".to_owned()
        } else {
            base
        };
        let mut id = base.clone();
        let mut i = 2;
        while out.iter().any(|e| e.id == id) {
            id = format!("{base}-{i}");
            i += 1;
        }
        out.push(CatalogEntry {
            id,
            name: name.to_owned(),
            retired: false,
        });
    }
    out
}

/// Input for a partner organisation in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartnerDraft {
    /// Name of the organisation.
    pub name: String,
    /// What it offers.
    pub offers: Vec<String>,
    /// The person to call.
    pub contact_person: String,
    /// Phone number.
    pub phone: String,
    /// Street address.
    pub address: String,
    /// Notes for colleagues.
    pub notes: String,
}

/// Longest partner note accepted.
pub const MAX_PARTNER_NOTE_CHARS: usize = 4_000;

impl PartnerDraft {
    /// Refuses empty names and over-long fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        for (field, value, max) in [
            ("name", &self.name, 200),
            ("contact_person", &self.contact_person, 200),
            ("phone", &self.phone, 50),
            ("address", &self.address, 300),
            ("notes", &self.notes, MAX_PARTNER_NOTE_CHARS),
        ] {
            let n = value.chars().count();
            if n > max {
                return Err(ValidationError::new(
                    field,
                    format!("is {n} characters long; the limit is {max}"),
                ));
            }
        }
        if self.offers.len() > 50 {
            return Err(ValidationError::new("offers", "at most 50 offers"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_spell_out_umlauts_and_stay_unique() {
        assert_eq!(slug("Schlafsäcke"), "schlafsaecke");
        assert_eq!(slug("  Hbf / Süd "), "hbf-sued");
        let e = entries_from_names(&["Park", "park", "Wohnen (housing)"]);
        assert_eq!(
            e.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["park", "park-2", "wohnen"]
        );
    }
}
