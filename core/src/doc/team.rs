//! The Team document's Automerge mapping: roster, catalogs and partner directory as autosurgeon
//! structs. Keyed lists (`#[key] id`) match entries by identity, so concurrent edits of two
//! partners never overwrite each other; partner notes are `Text` and merge by character.

use autosurgeon::{Hydrate, Reconcile, Text};
use streetsync_wire::{DeviceId, Role};

use crate::model::retention::{ReportedPeriod, RetentionMode, RetentionPolicy};
use crate::model::team::{
    CatalogEntry, EpochCommitment, Partner, Revocation, RosterDevice, TEAM_SCHEMA_VERSION, Team,
};

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct CatalogEntryDoc {
    #[key]
    id: String,
    name: String,
    retired: bool,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct PartnerDoc {
    #[key]
    id: String,
    name: String,
    offers: Vec<String>,
    contact_person: String,
    phone: String,
    address: String,
    notes: Text,
    retired: bool,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct RosterDeviceDoc {
    #[key]
    device_id: String,
    member: String,
    role: String,
    sign_pk: String,
    kx_pk: String,
    revoked: bool,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct EpochDoc {
    epoch: u64,
    /// The key of the list entry: two leads may record the same epoch at once (see
    /// `Team::epoch_commitment`), never the same commitment.
    #[key]
    commitment: String,
    by: String,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct RevocationDoc {
    #[key]
    device: String,
    after_seq: u64,
    by: String,
}

/// The retention periods (absent in documents written before they existed: the defaults apply).
#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct RetentionDoc {
    standard_days: u64,
    safeguarding_days: u64,
    short_days: u64,
    mode: String,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct ReportedDoc {
    /// `from/to/by`: two leads marking the same period stay one entry each.
    #[key]
    key: String,
    from: String,
    to: String,
    on: String,
    by: String,
}

/// The Team document as stored in Automerge.
#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct TeamDoc {
    schema_version: u64,
    kind: String,
    id: String,
    name: String,
    roster: Vec<RosterDeviceDoc>,
    areas: Vec<CatalogEntryDoc>,
    topics: Vec<CatalogEntryDoc>,
    materials: Vec<CatalogEntryDoc>,
    partners: Vec<PartnerDoc>,
    /// Absent in documents written before epochs were recorded.
    #[autosurgeon(missing = "Vec::new")]
    epochs: Vec<EpochDoc>,
    #[autosurgeon(missing = "Vec::new")]
    revocations: Vec<RevocationDoc>,
    #[autosurgeon(missing = "Option::default")]
    retention: Option<RetentionDoc>,
    #[autosurgeon(missing = "Vec::new")]
    reported: Vec<ReportedDoc>,
}

fn entry_doc(e: &CatalogEntry) -> CatalogEntryDoc {
    CatalogEntryDoc {
        id: e.id.clone(),
        name: e.name.clone(),
        retired: e.retired,
    }
}

fn role_key(r: Role) -> &'static str {
    match r {
        Role::Lead => "lead",
        Role::Worker => "worker",
    }
}

fn corrupt(what: &str) -> crate::error::Error {
    crate::error::Error::Corrupt {
        what: format!("team document: {what}"),
    }
}

impl TeamDoc {
    pub(crate) fn new(team: &Team) -> Self {
        let mut doc = TeamDoc {
            schema_version: TEAM_SCHEMA_VERSION,
            kind: "team".into(),
            id: team.id.to_string(),
            name: String::new(),
            roster: Vec::new(),
            areas: Vec::new(),
            topics: Vec::new(),
            materials: Vec::new(),
            partners: Vec::new(),
            epochs: Vec::new(),
            revocations: Vec::new(),
            retention: None,
            reported: Vec::new(),
        };
        doc.apply(team);
        doc
    }

    /// Brings the document in line with `team`, keeping Text objects so concurrent note edits merge.
    pub(crate) fn apply(&mut self, team: &Team) {
        self.name = team.name.clone();
        self.roster = team
            .roster
            .iter()
            .map(|d| RosterDeviceDoc {
                device_id: d.device_id.to_string(),
                member: d.member.clone(),
                role: role_key(d.role).into(),
                sign_pk: hex::encode(d.sign_pk),
                kx_pk: hex::encode(d.kx_pk),
                revoked: d.revoked,
            })
            .collect();
        self.epochs = team
            .epochs
            .iter()
            .map(|e| EpochDoc {
                epoch: u64::from(e.epoch),
                commitment: hex::encode(e.commitment),
                by: e.by.to_string(),
            })
            .collect();
        self.revocations = team
            .revocations
            .iter()
            .map(|r| RevocationDoc {
                device: r.device.to_string(),
                after_seq: r.after_seq,
                by: r.by.to_string(),
            })
            .collect();
        // A team that never set periods keeps none in its document (the defaults apply), so an
        // older device and a newer one agree on the document's contents.
        if self.retention.is_some() || team.retention != RetentionPolicy::default() {
            let p = &team.retention;
            self.retention = Some(RetentionDoc {
                standard_days: u64::from(p.standard_days),
                safeguarding_days: u64::from(p.safeguarding_days),
                short_days: u64::from(p.short_days),
                mode: p.mode.as_str().into(),
            });
        }
        self.reported = team
            .reported
            .iter()
            .map(|r| ReportedDoc {
                key: format!("{}/{}/{}", r.from, r.to, r.by),
                from: r.from.to_string(),
                to: r.to.to_string(),
                on: r.on.to_string(),
                by: r.by.to_string(),
            })
            .collect();
        self.areas = team.areas.iter().map(entry_doc).collect();
        self.topics = team.topics.iter().map(entry_doc).collect();
        self.materials = team.materials.iter().map(entry_doc).collect();
        let mut old: Vec<PartnerDoc> = std::mem::take(&mut self.partners);
        self.partners = team
            .partners
            .iter()
            .map(|p| {
                let mut notes = old
                    .iter_mut()
                    .find(|o| o.id == p.id)
                    .map(|o| std::mem::take(&mut o.notes))
                    .unwrap_or_default();
                notes.update(&p.notes);
                PartnerDoc {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    offers: p.offers.clone(),
                    contact_person: p.contact_person.clone(),
                    phone: p.phone.clone(),
                    address: p.address.clone(),
                    notes,
                    retired: p.retired,
                }
            })
            .collect();
    }

    pub(crate) fn to_team(&self) -> crate::error::Result<Team> {
        let key32 = |s: &str| -> crate::error::Result<[u8; 32]> {
            let v = hex::decode(s).map_err(|_| corrupt("public key is not hex"))?;
            v.try_into().map_err(|_| corrupt("public key length"))
        };
        let entries = |v: &[CatalogEntryDoc]| {
            v.iter()
                .map(|e| CatalogEntry {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    retired: e.retired,
                })
                .collect()
        };
        let mut roster = Vec::new();
        for d in &self.roster {
            let sign_pk = key32(&d.sign_pk)?;
            let device_id = DeviceId::from_public_key(&sign_pk);
            if d.device_id != device_id.to_string() {
                return Err(corrupt("device id does not match its key"));
            }
            roster.push(RosterDevice {
                device_id,
                member: d.member.clone(),
                role: if d.role == "lead" {
                    Role::Lead
                } else {
                    Role::Worker
                },
                sign_pk,
                kx_pk: key32(&d.kx_pk)?,
                revoked: d.revoked,
            });
        }
        Ok(Team {
            id: self.id.parse().map_err(|_| corrupt("team id"))?,
            name: self.name.clone(),
            roster,
            areas: entries(&self.areas),
            topics: entries(&self.topics),
            materials: entries(&self.materials),
            partners: self
                .partners
                .iter()
                .map(|p| Partner {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    offers: p.offers.clone(),
                    contact_person: p.contact_person.clone(),
                    phone: p.phone.clone(),
                    address: p.address.clone(),
                    notes: p.notes.as_str().to_owned(),
                    retired: p.retired,
                })
                .collect(),
            epochs: self
                .epochs
                .iter()
                .map(|e| {
                    Ok(EpochCommitment {
                        epoch: u32::try_from(e.epoch).map_err(|_| corrupt("epoch"))?,
                        commitment: key32(&e.commitment)?,
                        by: e.by.parse().map_err(|_| corrupt("epoch author"))?,
                    })
                })
                .collect::<crate::error::Result<_>>()?,
            revocations: self
                .revocations
                .iter()
                .map(|r| {
                    Ok(Revocation {
                        device: r.device.parse().map_err(|_| corrupt("revoked device"))?,
                        after_seq: r.after_seq,
                        by: r.by.parse().map_err(|_| corrupt("revocation author"))?,
                    })
                })
                .collect::<crate::error::Result<_>>()?,
            retention: match &self.retention {
                None => RetentionPolicy::default(),
                Some(r) => {
                    let days = |v: u64| u32::try_from(v).map_err(|_| corrupt("retention period"));
                    RetentionPolicy {
                        standard_days: days(r.standard_days)?,
                        safeguarding_days: days(r.safeguarding_days)?,
                        short_days: days(r.short_days)?,
                        mode: RetentionMode::parse(&r.mode),
                    }
                }
            },
            reported: self
                .reported
                .iter()
                .map(|r| {
                    let date = |s: &str| {
                        s.parse::<chrono::NaiveDate>()
                            .map_err(|_| corrupt("reported period date"))
                    };
                    Ok(ReportedPeriod {
                        from: date(&r.from)?,
                        to: date(&r.to)?,
                        on: date(&r.on)?,
                        by: r
                            .by
                            .parse()
                            .map_err(|_| corrupt("reported period author"))?,
                    })
                })
                .collect::<crate::error::Result<_>>()?,
        })
    }
}
