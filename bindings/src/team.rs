//! The team as the host sees it: founding it, the roster and roles, the catalogs (areas, topics,
//! materials) and the partner directory, with the `Workspace` methods that read and shape them.
//!
//! All of it lives in the one Team document of the core; the records here are plain copies of the
//! core's team types, converted next to their definitions. Catalog and partner changes are for
//! leads only (the core refuses a worker with `NotAllowed`).

use streetsync_core as sc;

use crate::Result;
use crate::error::guard;
use crate::mirror::mirror_enum;
use crate::workspace::Workspace;

mirror_enum!(
    /// Which team catalog an entry belongs to.
    Catalog = sc::Catalog {
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
    Role = sc::Role {
        /// A field worker: reads and writes records.
        Worker,
        /// A team lead: may also approve contacts, shape catalogs and add devices.
        Lead,
    }
);

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

#[uniffi::export]
impl Workspace {
    /// This device's id (32 hex characters). Blocking, instant.
    pub fn device_id(&self) -> String {
        self.inner.device_id().to_string()
    }

    /// Founds a team on this device, which becomes its first lead. Blocking, fast.
    pub fn create_team(&self, setup: TeamSetup) -> Result<Team> {
        guard(|| Ok(self.inner.create_team(setup.into())?.into()))
    }

    /// The team with roster, catalogs and partner directory; `NotAMember` before creating or
    /// joining one. Blocking, fast.
    pub fn team(&self) -> Result<Team> {
        guard(|| Ok(self.inner.team()?.into()))
    }

    /// The team id, or `None` while this device is in no team. Blocking, fast.
    pub fn team_id(&self) -> Result<Option<String>> {
        guard(|| Ok(self.inner.team_id()?.map(|t| t.to_string())))
    }

    /// This device's role in the team. Blocking, fast.
    pub fn my_role(&self) -> Result<Role> {
        guard(|| Ok(self.inner.my_role()?.into()))
    }

    /// The entries of one catalog (areas, topics or materials), including retired ones. Blocking,
    /// fast.
    pub fn catalog(&self, catalog: Catalog) -> Result<Vec<CatalogEntry>> {
        guard(|| {
            let team = self.inner.team()?;
            Ok(team
                .catalog(catalog.into())
                .iter()
                .cloned()
                .map(Into::into)
                .collect())
        })
    }

    /// Adds an entry to a catalog (leads only); its id is a slug of the name. Blocking, fast.
    pub fn add_catalog_entry(&self, catalog: Catalog, name: String) -> Result<CatalogEntry> {
        guard(|| Ok(self.inner.add_catalog_entry(catalog.into(), &name)?.into()))
    }

    /// Retires a catalog entry: old records keep it, new ones cannot use it (leads only). Blocking,
    /// fast.
    pub fn retire_catalog_entry(&self, catalog: Catalog, id: String) -> Result<()> {
        guard(|| Ok(self.inner.retire_catalog_entry(catalog.into(), &id)?))
    }

    /// The partner directory: open organisations first, then by name. Blocking, fast.
    pub fn partners(&self) -> Result<Vec<Partner>> {
        guard(|| Ok(self.inner.partners()?.into_iter().map(Into::into).collect()))
    }

    /// Adds a partner organisation to the directory (leads only). Blocking, fast.
    pub fn add_partner(&self, draft: PartnerDraft) -> Result<Partner> {
        guard(|| Ok(self.inner.add_partner(draft.into())?.into()))
    }

    /// Updates a partner organisation (leads only). Blocking, fast.
    pub fn update_partner(&self, id: String, draft: PartnerDraft) -> Result<Partner> {
        guard(|| Ok(self.inner.update_partner(&id, draft.into())?.into()))
    }

    /// Marks a partner organisation as closed; old referrals keep it (leads only). Blocking, fast.
    pub fn retire_partner(&self, id: String) -> Result<()> {
        guard(|| Ok(self.inner.retire_partner(&id)?))
    }
}
