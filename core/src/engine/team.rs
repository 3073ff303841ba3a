//! The Team document: founding a team, the roster and roles, catalogs and the partner directory.
//! Only leads change it; every change goes through [`Engine::change_team`].

use autosurgeon::{hydrate, reconcile};
use streetsync_wire::{DeviceId, RecordId, Role, TeamId};
use zeroize::Zeroizing;

use crate::doc::team::TeamDoc;
use crate::error::{Error, Result, ValidationError};
use crate::kinds::RecordKind;
use crate::model::team::{
    Catalog, CatalogEntry, EpochCommitment, Partner, PartnerDraft, Revocation, RosterDevice, Team,
    entries_from_names,
};

use super::keys::TeamKey;
use super::{Engine, META_TEAM_DOC, META_TEAM_ID, SECRET_TEAM_KEYS, check_len};

/// What a lead enters to found a team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TeamSetup {
    /// Team name (`Streetwork Mitte`).
    pub team_name: String,
    /// The founding lead's display name.
    pub member_name: String,
    /// Areas (Sozialräume) the team works in; at least one.
    pub areas: Vec<String>,
    /// Topics; empty means the default list.
    pub topics: Vec<String>,
    /// Materials; empty means the default list.
    pub materials: Vec<String>,
}

#[cfg(test)]
impl TeamSetup {
    /// The smallest team the engine's unit tests found: one area, the default catalogs.
    pub(crate) fn for_tests() -> Self {
        Self {
            team_name: "T".into(),
            member_name: "L".into(),
            areas: vec!["Nord".into()],
            topics: vec![],
            materials: vec![],
        }
    }
}

impl Engine {
    // ---- team -------------------------------------------------------------------------

    /// Founds a team on this device, which becomes its first lead, with a fresh team key.
    pub(crate) fn create_team(&self, setup: TeamSetup) -> Result<Team> {
        check_len("team_name", &setup.team_name, 200)?;
        check_len("member_name", &setup.member_name, 200)?;
        if setup.areas.is_empty() {
            return Err(ValidationError::new(
                "areas",
                "name at least one area (Sozialraum) the team works in",
            )
            .into());
        }
        let names = |v: &[String], default: &[&str]| -> Vec<String> {
            if v.is_empty() {
                default.iter().map(|s| (*s).to_owned()).collect()
            } else {
                v.to_vec()
            }
        };
        let key = TeamKey::generate(1)?;
        let id = TeamId::random();
        let team = Team {
            id,
            name: setup.team_name.trim().to_owned(),
            roster: vec![RosterDevice {
                device_id: self.device_id(),
                member: setup.member_name.trim().to_owned(),
                role: Role::Lead,
                sign_pk: self.identity.sign_public(),
                kx_pk: self.identity.kx_public(),
                revoked: false,
            }],
            areas: entries_from_names(&setup.areas),
            topics: entries_from_names(&names(&setup.topics, crate::model::team::DEFAULT_TOPICS)),
            materials: entries_from_names(&names(
                &setup.materials,
                crate::model::team::DEFAULT_MATERIALS,
            )),
            partners: Vec::new(),
            epochs: vec![EpochCommitment {
                epoch: key.epoch,
                commitment: key.commitment(&id),
                by: self.device_id(),
            }],
            revocations: Vec::new(),
            retention: Default::default(),
            reported: Vec::new(),
        };
        self.store
            .write(|w| {
                if w.meta(META_TEAM_ID)?.is_some() {
                    return Err(Error::AlreadyInTeam);
                }
                let doc_id = RecordId::random();
                w.put_meta(META_TEAM_ID, team.id.as_bytes())?;
                w.put_meta(META_TEAM_DOC, doc_id.as_bytes())?;
                let keys = Zeroizing::new(
                    postcard::to_stdvec(&vec![key.clone()])
                        .map_err(|_| Error::Internal("key encoding"))?,
                );
                w.put_secret(SECRET_TEAM_KEYS, &keys)?;
                let mut doc = crate::doc::new().with_actor(self.actor.clone());
                let before = doc.get_heads();
                reconcile(&mut doc, TeamDoc::new(&team))?;
                self.finish(
                    w,
                    doc_id,
                    RecordKind::Team,
                    &mut doc,
                    &before,
                    "create team",
                )?;
                w.set_team(team.clone());
                Ok(doc_id)
            })
            .map(|doc_id| self.local(doc_id, RecordKind::Team, false))?;
        Ok(team)
    }

    /// The team, or [`Error::NoTeam`].
    pub(crate) fn team(&self) -> Result<Team> {
        self.store
            .read(|r| r.cache.team.as_deref().cloned().ok_or(Error::NoTeam))
    }

    /// The team's id, if this device is in a team.
    pub(crate) fn team_id(&self) -> Result<Option<TeamId>> {
        self.store.read(|r| {
            Ok(r.meta(META_TEAM_ID)?
                .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                .map(TeamId::from_bytes))
        })
    }

    /// The record id of the Team document.
    pub(crate) fn team_doc_id(&self) -> Result<RecordId> {
        self.store.read(|r| {
            r.meta(META_TEAM_DOC)?
                .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                .map(RecordId::from_bytes)
                .ok_or(Error::NoTeam)
        })
    }

    /// Marks a device revoked on the roster (leads only).
    /// In one signed change of the Team document: the device is marked revoked, the log position
    /// after which its envelopes are refused is recorded, and the commitment to the next epoch's
    /// key (`next`, kept aside until this change has reached the relay) is added.
    pub(crate) fn revoke_roster_device(
        &self,
        device: DeviceId,
        after_seq: u64,
        next: &TeamKey,
    ) -> Result<()> {
        let me = self.device_id();
        self.change_team("remove devices", |team| {
            let d = team
                .roster
                .iter_mut()
                .find(|d| d.device_id == device)
                .ok_or_else(|| ValidationError::new("device", "not on the roster"))?;
            d.revoked = true;
            if team.revocation(&device).is_none() {
                team.revocations.push(Revocation {
                    device,
                    after_seq,
                    by: me,
                });
            }
            if !team
                .epochs
                .iter()
                .any(|e| e.commitment == next.commitment(&team.id))
            {
                team.epochs.push(EpochCommitment {
                    epoch: next.epoch,
                    commitment: next.commitment(&team.id),
                    by: me,
                });
            }
            Ok(())
        })
    }

    /// This device's role in the team.
    pub(crate) fn my_role(&self) -> Result<Role> {
        let team = self.team()?;
        match team.device(&self.device_id()) {
            Some(d) if !d.revoked => Ok(d.role),
            Some(_) => Err(Error::NotAllowed(
                "this device was removed from the team".into(),
            )),
            None => Err(Error::NotAllowed(
                "this device is not on the team's roster".into(),
            )),
        }
    }

    pub(crate) fn require_lead(&self, what: &str) -> Result<()> {
        match self.my_role()? {
            Role::Lead => Ok(()),
            Role::Worker => Err(Error::NotAllowed(format!("only a team lead can {what}"))),
        }
    }

    /// Changes the Team document with `f` (leads only).
    pub(crate) fn change_team<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Team) -> Result<T>,
    ) -> Result<T> {
        self.require_lead(what)?;
        let doc_id = self.team_doc_id()?;
        self.store
            .write(|w| {
                let (_, mut doc) = w.doc(&doc_id)?.ok_or(Error::NoTeam)?;
                doc.set_actor(self.actor.clone());
                let before = doc.get_heads();
                let mut td: TeamDoc = hydrate(&doc)?;
                let mut team = td.to_team()?;
                let out = f(&mut team)?;
                td.apply(&team);
                reconcile(&mut doc, &td)?;
                self.finish(w, doc_id, RecordKind::Team, &mut doc, &before, what)?;
                let team: TeamDoc = hydrate(&doc)?;
                w.set_team(team.to_team()?);
                Ok(out)
            })
            .inspect(|_| self.local(doc_id, RecordKind::Team, false))
    }

    /// Puts a device on the roster (leads only). Used by the sync client when a lead adds a device.
    pub(crate) fn add_roster_device(
        &self,
        keys: &streetsync_wire::DeviceKeys,
        member: &str,
    ) -> Result<()> {
        check_len("member", member, 200)?;
        if keys.id != DeviceId::from_public_key(&keys.sign_pk) {
            return Err(Error::Protocol(
                "the device id does not belong to its signing key".into(),
            ));
        }
        self.change_team("add devices", |team| {
            // An invite adds a new device; it never changes an entry already on the roster.
            if team.device(&keys.id).is_some() {
                return Err(Error::NotAllowed(format!(
                    "device {} is already on the roster; an invite cannot change it",
                    keys.id
                )));
            }
            team.roster.push(RosterDevice {
                device_id: keys.id,
                member: member.trim().to_owned(),
                role: keys.role,
                sign_pk: keys.sign_pk,
                kx_pk: keys.kx_pk,
                revoked: false,
            });
            Ok(())
        })
    }

    /// Adds an entry to a catalog (leads only). The id is a slug of the name.
    pub(crate) fn add_catalog_entry(&self, catalog: Catalog, name: &str) -> Result<CatalogEntry> {
        check_len("name", name, 200)?;
        self.change_team("change the catalogs", |team| {
            let list = match catalog {
                Catalog::Area => &mut team.areas,
                Catalog::Topic => &mut team.topics,
                Catalog::Material => &mut team.materials,
            };
            if list
                .iter()
                .any(|e| e.name.eq_ignore_ascii_case(name.trim()))
            {
                return Err(
                    ValidationError::new("name", format!("'{name}' is already listed")).into(),
                );
            }
            let mut names: Vec<String> = list.iter().map(|e| e.name.clone()).collect();
            names.push(name.trim().to_owned());
            let entry = entries_from_names(&names)
                .pop()
                .ok_or(Error::Internal("catalog"))?;
            list.push(entry.clone());
            Ok(entry)
        })
    }

    /// Retires a catalog entry: old records keep it, new ones cannot use it (leads only).
    pub(crate) fn retire_catalog_entry(&self, catalog: Catalog, id: &str) -> Result<()> {
        self.change_team("change the catalogs", |team| {
            let list = match catalog {
                Catalog::Area => &mut team.areas,
                Catalog::Topic => &mut team.topics,
                Catalog::Material => &mut team.materials,
            };
            let e = list.iter_mut().find(|e| e.id == id).ok_or_else(|| {
                ValidationError::new(catalog.field(), format!("unknown id '{id}'"))
            })?;
            e.retired = true;
            Ok(())
        })
    }

    /// Adds a partner organisation to the directory (leads only).
    pub(crate) fn add_partner(&self, draft: PartnerDraft) -> Result<Partner> {
        draft.validate()?;
        let id = hex::encode(crate::crypto::random_bytes::<4>()?);
        self.change_team("edit the partner directory", |team| {
            let p = Partner {
                id: id.clone(),
                name: draft.name.trim().to_owned(),
                offers: draft.offers.clone(),
                contact_person: draft.contact_person.clone(),
                phone: draft.phone.clone(),
                address: draft.address.clone(),
                notes: draft.notes.clone(),
                retired: false,
            };
            team.partners.push(p.clone());
            Ok(p)
        })
    }

    /// Updates a partner organisation (leads only). Notes merge by character with concurrent edits.
    pub(crate) fn update_partner(&self, id: &str, draft: PartnerDraft) -> Result<Partner> {
        draft.validate()?;
        self.change_team("edit the partner directory", |team| {
            let p = partner_mut(team, id)?;
            p.name = draft.name.trim().to_owned();
            p.offers = draft.offers;
            p.contact_person = draft.contact_person;
            p.phone = draft.phone;
            p.address = draft.address;
            p.notes = draft.notes;
            Ok(p.clone())
        })
    }

    /// Marks a partner organisation as closed; old referrals keep it (leads only).
    pub(crate) fn retire_partner(&self, id: &str) -> Result<()> {
        self.change_team("edit the partner directory", |team| {
            partner_mut(team, id)?.retired = true;
            Ok(())
        })
    }

    /// The partner directory (open organisations first, then by name).
    pub(crate) fn partners(&self) -> Result<Vec<Partner>> {
        let mut v = self.team()?.partners;
        v.sort_by(|a, b| a.retired.cmp(&b.retired).then(a.name.cmp(&b.name)));
        Ok(v)
    }
}

fn partner_mut<'t>(team: &'t mut Team, id: &str) -> Result<&'t mut Partner> {
    team.partners
        .iter_mut()
        .find(|p| p.id == id)
        .ok_or_else(|| ValidationError::new("partner_id", format!("unknown partner '{id}'")).into())
}
