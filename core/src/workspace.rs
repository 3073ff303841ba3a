//! `Workspace`: one opened store of one device, and the whole local API on it.
//!
//! Every mutation follows one path: validate, hydrate the record's Automerge document, apply,
//! reconcile, commit, then write document, projection and outbox entry in one durable SQLite
//! transaction. If anything fails before the commit, nothing is written.

use std::path::{Path, PathBuf};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ReadDoc};
use autosurgeon::{Hydrate, Reconcile, hydrate, reconcile};
use streetsync_wire::{DeviceId, RecordId, Role, TeamId};
use zeroize::Zeroizing;

use crate::client::{Client, ClientDoc, ClientDraft};
use crate::contact::{Comment, Contact, ContactDoc, ContactDraft, MAX_COMMENT_CHARS};
use crate::crypto::{DeviceIdentity, IdentitySecret, TeamKey};
use crate::query::{ClientFilter, ClientSummary, ContactFilter, ContactPage, ContactSummary};
use crate::store::{Projection, Store, Writer};
use crate::team::{
    Catalog, CatalogEntry, Partner, PartnerDraft, RosterDevice, Team, TeamDoc, entries_from_names,
};
use crate::vocab::{CommentKind, ReviewState};
use crate::{Error, KeySource, RecordKind, Result, ValidationError};

const SECRET_IDENTITY: &str = "device_identity";
const SECRET_TEAM_KEYS: &str = "team_keys";
const META_TEAM_ID: &str = "team_id";
const META_TEAM_DOC: &str = "team_doc_id";

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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

/// One change in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// When, unix milliseconds (the author's clock, second precision).
    pub at_ms: i64,
    /// The device that made the change.
    pub device: Option<DeviceId>,
    /// The roster name of that device's member, when known.
    pub member: Option<String>,
    /// Top-level fields the change touched (`note`, `review`, `materials`...).
    pub fields: Vec<String>,
    /// What the change was (`create`, `edit contact`, `approve`...).
    pub message: String,
}

/// What happened when remote changes were merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteApplied {
    /// The record's kind.
    pub kind: RecordKind,
    /// Whether the record is now deleted.
    pub deleted: bool,
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOrigin {
    /// Written on this device.
    Local,
    /// Received from a teammate through sync.
    Remote,
}

/// One record that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// The record.
    pub id: RecordId,
    /// Its kind.
    pub kind: RecordKind,
    /// Local or remote.
    pub origin: ChangeOrigin,
    /// Whether the record is gone (deleted or erased).
    pub removed: bool,
}

/// Receives record changes after they are durably stored. Called on the writing thread, never
/// while the store is locked; keep it quick (post to the UI thread).
pub trait ChangeListener: Send + Sync {
    /// Records changed.
    fn on_changes(&self, changes: &[RecordChange]);
}

/// Keeps a [`ChangeListener`] subscribed; dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    listeners: std::sync::Weak<Listeners>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(l) = self.listeners.upgrade() {
            l.list
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(id, _)| *id != self.id);
        }
    }
}

#[derive(Default)]
pub(crate) struct Listeners {
    next: std::sync::atomic::AtomicU64,
    list: std::sync::Mutex<Vec<(u64, std::sync::Arc<dyn ChangeListener>)>>,
    /// Wakes the live sync loop when a local change waits in the outbox.
    pub(crate) local_change: tokio::sync::Notify,
}

impl Listeners {
    pub(crate) fn emit(&self, changes: &[RecordChange]) {
        if changes.is_empty() {
            return;
        }
        if changes.iter().any(|c| c.origin == ChangeOrigin::Local) {
            self.local_change.notify_one();
        }
        // Copy the list so no lock is held while host code runs.
        let list: Vec<_> = self
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in list {
            l.on_changes(changes);
        }
    }
}

/// One opened device store. Share it across threads behind an `Arc`.
pub struct Workspace {
    store: Store,
    identity: DeviceIdentity,
    actor: ActorId,
    path: PathBuf,
    pub(crate) listeners: std::sync::Arc<Listeners>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("path", &self.path)
            .field("device", &self.identity.device_id())
            .finish()
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    let n = value.chars().count();
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    Ok(())
}

impl Workspace {
    /// Opens the store at `path` (created if missing) with the host's key or a passphrase.
    /// A wrong key fails with [`Error::WrongKey`] and changes nothing.
    pub fn open(path: impl AsRef<Path>, key: KeySource) -> Result<Self> {
        Self::open_with(path.as_ref(), key, crate::store::schema::SCHEMA_VERSION)
    }

    #[doc(hidden)]
    /// Opens at an older schema version; only for migration tests.
    pub fn open_at_schema_version(
        path: impl AsRef<Path>,
        key: KeySource,
        version: u32,
    ) -> Result<Self> {
        Self::open_with(path.as_ref(), key, version)
    }

    fn open_with(path: &Path, key: KeySource, version: u32) -> Result<Self> {
        let store = Store::open(path, &key, version)?;
        let identity = store.write(|w| match w.secret(SECRET_IDENTITY)? {
            Some(bytes) => {
                let secret: IdentitySecret =
                    postcard::from_bytes(&bytes).map_err(|_| Error::Corrupt {
                        what: "device identity".into(),
                    })?;
                DeviceIdentity::from_secret(&secret)
            }
            None => {
                let id = DeviceIdentity::generate()?;
                let bytes = Zeroizing::new(
                    postcard::to_stdvec(&id.to_secret())
                        .map_err(|_| Error::Crypto("identity encoding"))?,
                );
                w.put_secret(SECRET_IDENTITY, &bytes)?;
                Ok(id)
            }
        })?;
        // Actor = device id + a per-session random suffix: changes are attributable to a device,
        // and two processes on one store can never reuse an (actor, seq) pair.
        let mut actor = identity.device_id().as_bytes().to_vec();
        actor.extend_from_slice(&crate::crypto::random_bytes::<8>()?);
        Ok(Self {
            store,
            identity,
            actor: ActorId::from(actor),
            path: path.to_owned(),
            listeners: Default::default(),
        })
    }

    /// Subscribes to record changes (local and remote).
    pub fn subscribe(&self, listener: std::sync::Arc<dyn ChangeListener>) -> Subscription {
        let id = self
            .listeners
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.listeners
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, listener));
        Subscription {
            id,
            listeners: std::sync::Arc::downgrade(&self.listeners),
        }
    }

    fn local(&self, id: RecordId, kind: RecordKind, removed: bool) {
        self.listeners.emit(&[RecordChange {
            id,
            kind,
            origin: ChangeOrigin::Local,
            removed,
        }]);
    }

    /// This device's public keys, to hand to a lead who adds the device to the team.
    pub fn device_keys(&self, role: Role) -> streetsync_wire::DeviceKeys {
        streetsync_wire::DeviceKeys {
            id: self.device_id(),
            sign_pk: self.identity.sign_public(),
            kx_pk: self.identity.kx_public(),
            role,
        }
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.identity.device_id()
    }

    /// This device's identity (public keys, signing).
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    // ---- team -------------------------------------------------------------------------

    /// Founds a team on this device, which becomes its first lead, with a fresh team key.
    pub fn create_team(&self, setup: TeamSetup) -> Result<Team> {
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
        let team = Team {
            id: TeamId::random(),
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
            topics: entries_from_names(&names(&setup.topics, crate::team::DEFAULT_TOPICS)),
            materials: entries_from_names(&names(&setup.materials, crate::team::DEFAULT_MATERIALS)),
            partners: Vec::new(),
        };
        let key = TeamKey::generate(1)?;
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
                        .map_err(|_| Error::Crypto("key encoding"))?,
                );
                w.put_secret(SECRET_TEAM_KEYS, &keys)?;
                let mut doc = crate::document::new().with_actor(self.actor.clone());
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
    pub fn team(&self) -> Result<Team> {
        self.store
            .read(|r| r.cache.team.as_deref().cloned().ok_or(Error::NoTeam))
    }

    /// The team's id, if this device is in a team.
    pub fn team_id(&self) -> Result<Option<TeamId>> {
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

    /// The team keys this device holds, newest epoch last.
    pub(crate) fn team_keys(&self) -> Result<Vec<TeamKey>> {
        self.store.read(|r| match r.secret(SECRET_TEAM_KEYS)? {
            Some(b) => postcard::from_bytes(&b).map_err(|_| Error::Corrupt {
                what: "team keys".into(),
            }),
            None => Err(Error::NoTeam),
        })
    }

    /// The epochs of the team keys this device holds (a removed device stops at its last one).
    pub fn key_epochs(&self) -> Result<Vec<u32>> {
        Ok(self.team_keys()?.iter().map(|k| k.epoch).collect())
    }

    /// Adds team keys granted by a lead (epochs this device does not hold yet).
    pub(crate) fn add_team_keys(&self, new: &[TeamKey]) -> Result<()> {
        self.store.write(|w| {
            let mut keys: Vec<TeamKey> = match w.secret(SECRET_TEAM_KEYS)? {
                Some(b) => postcard::from_bytes(&b).map_err(|_| Error::Corrupt {
                    what: "team keys".into(),
                })?,
                None => return Err(Error::NoTeam),
            };
            for k in new {
                if !keys.iter().any(|o| o.epoch == k.epoch) {
                    keys.push(k.clone());
                }
            }
            keys.sort_by_key(|k| k.epoch);
            let bytes = Zeroizing::new(
                postcard::to_stdvec(&keys).map_err(|_| Error::Crypto("key encoding"))?,
            );
            w.put_secret(SECRET_TEAM_KEYS, &bytes)
        })
    }

    /// Starts a new epoch with a fresh random team key; returns all keys (oldest first).
    pub(crate) fn rotate_team_key(&self) -> Result<Vec<TeamKey>> {
        let keys = self.team_keys()?;
        let next = keys.iter().map(|k| k.epoch).max().unwrap_or(0) + 1;
        self.add_team_keys(&[TeamKey::generate(next)?])?;
        self.team_keys()
    }

    /// Marks a device revoked on the roster (leads only).
    pub(crate) fn revoke_roster_device(&self, device: DeviceId) -> Result<()> {
        self.change_team("remove devices", |team| {
            let d = team
                .roster
                .iter_mut()
                .find(|d| d.device_id == device)
                .ok_or_else(|| ValidationError::new("device", "not on the roster"))?;
            d.revoked = true;
            Ok(())
        })
    }

    /// This device's role in the team.
    pub fn my_role(&self) -> Result<Role> {
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

    fn require_lead(&self, what: &str) -> Result<()> {
        match self.my_role()? {
            Role::Lead => Ok(()),
            Role::Worker => Err(Error::NotAllowed(format!("only a team lead can {what}"))),
        }
    }

    /// Changes the Team document with `f` (leads only).
    fn change_team<T>(&self, what: &str, f: impl FnOnce(&mut Team) -> Result<T>) -> Result<T> {
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
        self.change_team("add devices", |team| {
            if let Some(d) = team.roster.iter_mut().find(|d| d.device_id == keys.id) {
                d.member = member.trim().to_owned();
                d.role = keys.role;
                return Ok(());
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
    pub fn add_catalog_entry(&self, catalog: Catalog, name: &str) -> Result<CatalogEntry> {
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
                .ok_or(Error::Crypto("catalog"))?;
            list.push(entry.clone());
            Ok(entry)
        })
    }

    /// Retires a catalog entry: old records keep it, new ones cannot use it (leads only).
    pub fn retire_catalog_entry(&self, catalog: Catalog, id: &str) -> Result<()> {
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
    pub fn add_partner(&self, draft: PartnerDraft) -> Result<Partner> {
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
    pub fn update_partner(&self, id: &str, draft: PartnerDraft) -> Result<Partner> {
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
    pub fn retire_partner(&self, id: &str) -> Result<()> {
        self.change_team("edit the partner directory", |team| {
            partner_mut(team, id)?.retired = true;
            Ok(())
        })
    }

    /// The partner directory (open organisations first, then by name).
    pub fn partners(&self) -> Result<Vec<Partner>> {
        let mut v = self.team()?.partners;
        v.sort_by(|a, b| a.retired.cmp(&b.retired).then(a.name.cmp(&b.name)));
        Ok(v)
    }

    // ---- generic record path ----------------------------------------------------------

    /// Commits `doc`'s pending operations, stores the document and queues the change.
    fn finish(
        &self,
        w: &mut Writer<'_>,
        id: RecordId,
        kind: RecordKind,
        doc: &mut AutoCommit,
        before: &[automerge::ChangeHash],
        message: &str,
    ) -> Result<()> {
        doc.commit_with(
            CommitOptions::default()
                .with_message(message.to_owned())
                .with_time(now_ms() / 1000),
        );
        if doc.get_heads() == before {
            return Ok(());
        }
        let saved = Zeroizing::new(doc.save());
        w.put_doc_bytes(&id, kind, &saved)?;
        if before.is_empty() {
            // A new record: the saved document is exactly its changes, and receivers load a saved
            // document like changes, so encode once.
            w.push_outbox(&id, kind, &saved)?;
        } else {
            let changes = Zeroizing::new(doc.save_after(before));
            w.push_outbox(&id, kind, &changes)?;
        }
        Ok(())
    }

    /// Loads a record of `kind`, applies `f` to its hydrated form, and writes everything back.
    fn mutate<D, T>(
        &self,
        id: RecordId,
        kind: RecordKind,
        message: &str,
        f: impl FnOnce(&mut D, &Writer<'_>) -> Result<T>,
        project: impl FnOnce(&D) -> Result<Option<Projection>>,
    ) -> Result<T>
    where
        D: Hydrate + Reconcile,
    {
        self.store
            .write(|w| {
                let (found, mut doc) = w.doc(&id)?.ok_or(Error::NotFound { kind, id })?;
                if found != kind || is_deleted(&doc) {
                    return Err(Error::NotFound { kind, id });
                }
                doc.set_actor(self.actor.clone());
                let before = doc.get_heads();
                let mut d: D = hydrate(&doc)?;
                let out = f(&mut d, w)?;
                reconcile(&mut doc, &d)?;
                self.finish(w, id, kind, &mut doc, &before, message)?;
                match project(&d)? {
                    Some(p) => w.put_projection(&id, p)?,
                    None => w.remove_projection(&id)?,
                }
                Ok(out)
            })
            .inspect(|_| self.local(id, kind, false))
    }

    fn create<D: Reconcile>(
        &self,
        id: RecordId,
        kind: RecordKind,
        d: &D,
        projection: Projection,
    ) -> Result<()> {
        self.store.write(|w| {
            let mut doc = crate::document::new().with_actor(self.actor.clone());
            let before = doc.get_heads();
            reconcile(&mut doc, d)?;
            self.finish(w, id, kind, &mut doc, &before, "create")?;
            w.put_projection(&id, projection)
        })?;
        self.local(id, kind, false);
        Ok(())
    }

    fn read_doc<D: Hydrate>(&self, id: RecordId, kind: RecordKind) -> Result<D> {
        self.store.read(|r| {
            let (found, doc) = r.doc(&id)?.ok_or(Error::NotFound { kind, id })?;
            if found != kind || is_deleted(&doc) {
                return Err(Error::NotFound { kind, id });
            }
            Ok(hydrate(&doc)?)
        })
    }

    fn soft_delete(&self, id: RecordId, kind: RecordKind) -> Result<()> {
        self.store.write(|w| {
            let (found, mut doc) = w.doc(&id)?.ok_or(Error::NotFound { kind, id })?;
            if found != kind || is_deleted(&doc) {
                return Err(Error::NotFound { kind, id });
            }
            doc.set_actor(self.actor.clone());
            let before = doc.get_heads();
            doc.put(automerge::ROOT, "deleted", true)?;
            self.finish(w, id, kind, &mut doc, &before, "delete")?;
            w.remove_projection(&id)
        })?;
        self.local(id, kind, true);
        Ok(())
    }

    // ---- contacts ---------------------------------------------------------------------

    /// Logs a new contact. Durable when this returns.
    pub fn create_contact(&self, draft: ContactDraft) -> Result<Contact> {
        let team = self.team()?;
        draft.validate(&team, None)?;
        let id = RecordId::random();
        let doc = ContactDoc::new(id, &draft, &self.device_id().to_string(), now_ms());
        let contact = doc.to_contact()?;
        self.create(
            id,
            RecordKind::Contact,
            &doc,
            Projection::Contact(Box::new(ContactSummary::of(&contact))),
        )?;
        Ok(contact)
    }

    /// Replaces a contact's fields. The note is merged by character with concurrent edits.
    pub fn update_contact(&self, id: RecordId, draft: ContactDraft) -> Result<Contact> {
        let team = self.team()?;
        self.mutate(
            id,
            RecordKind::Contact,
            "edit contact",
            |d: &mut ContactDoc, _| {
                let old = d.to_contact()?;
                draft.validate(&team, Some(&old.fields))?;
                d.apply(&draft, now_ms());
                d.to_contact()
            },
            contact_projection,
        )
    }

    /// One contact.
    pub fn get_contact(&self, id: RecordId) -> Result<Contact> {
        self.read_doc::<ContactDoc>(id, RecordKind::Contact)?
            .to_contact()
    }

    /// Lists contacts matching `filter`, newest first.
    pub fn list_contacts(&self, filter: &ContactFilter) -> Result<ContactPage> {
        filter.validate()?;
        self.store
            .read(|r| Ok(filter.run(r.cache.contacts.values())))
    }

    /// Every contact's projection (for statistics and export).
    pub fn contact_summaries(&self) -> Result<Vec<ContactSummary>> {
        self.store.read(|r| {
            Ok(r.cache
                .contacts
                .values()
                .map(|c| c.summary.clone())
                .collect())
        })
    }

    /// Deletes a contact logged by mistake; the deletion syncs to the team. (Erasure of every
    /// trace on the relay and all devices is the lead's separate `erase`.)
    pub fn delete_contact(&self, id: RecordId) -> Result<()> {
        self.soft_delete(id, RecordKind::Contact)
    }

    // ---- review -----------------------------------------------------------------------

    fn review(
        &self,
        id: RecordId,
        message: &str,
        f: impl FnOnce(&mut ContactDoc, &Contact) -> Result<()>,
    ) -> Result<Contact> {
        self.mutate(
            id,
            RecordKind::Contact,
            message,
            |d: &mut ContactDoc, _| {
                let c = d.to_contact()?;
                f(d, &c)?;
                d.to_contact()
            },
            contact_projection,
        )
    }

    fn comment_of(&self, kind: CommentKind, text: &str) -> Result<Comment> {
        check_len("text", text, MAX_COMMENT_CHARS)?;
        Ok(Comment {
            id: hex::encode(crate::crypto::random_bytes::<8>()?),
            author: self.device_id().to_string(),
            at: now_ms(),
            kind,
            text: text.to_owned(),
        })
    }

    /// Hands a contact in for review.
    pub fn submit_contact(&self, id: RecordId) -> Result<Contact> {
        self.review(id, "submit for review", |d, c| match c.review {
            ReviewState::Approved => {
                Err(Error::NotAllowed("the contact is already approved".into()))
            }
            _ => {
                d.set_review(ReviewState::Submitted, now_ms());
                Ok(())
            }
        })
    }

    /// Approves a contact (leads only).
    pub fn approve_contact(&self, id: RecordId) -> Result<Contact> {
        self.require_lead("approve a contact")?;
        self.review(id, "approve", |d, _| {
            d.set_review(ReviewState::Approved, now_ms());
            Ok(())
        })
    }

    /// Sends a question back to the worker (leads only); the contact waits for an answer.
    pub fn request_changes(&self, id: RecordId, question: &str) -> Result<Contact> {
        self.require_lead("ask for changes")?;
        let comment = self.comment_of(CommentKind::Question, question)?;
        self.review(id, "request changes", |d, _| {
            d.add_comment(comment, now_ms());
            d.set_review(ReviewState::ChangesRequested, now_ms());
            Ok(())
        })
    }

    /// Adds a remark to the review thread.
    pub fn comment_contact(&self, id: RecordId, text: &str) -> Result<Contact> {
        let comment = self.comment_of(CommentKind::Remark, text)?;
        self.review(id, "comment", |d, _| {
            d.add_comment(comment, now_ms());
            Ok(())
        })
    }

    /// Answers the lead's question and hands the contact in again.
    pub fn answer_contact(&self, id: RecordId, text: &str) -> Result<Contact> {
        let comment = self.comment_of(CommentKind::Answer, text)?;
        self.review(id, "answer", |d, _| {
            d.add_comment(comment, now_ms());
            d.set_review(ReviewState::Submitted, now_ms());
            Ok(())
        })
    }

    // ---- clients ----------------------------------------------------------------------

    fn check_code_free(&self, code: &str, except: Option<RecordId>) -> Result<()> {
        let taken = self.store.read(|r| {
            Ok(r.cache
                .clients
                .values()
                .any(|c| c.code.eq_ignore_ascii_case(code) && Some(c.id) != except))
        })?;
        if taken {
            return Err(ValidationError::new(
                "code",
                format!("'{code}' is already used by another client"),
            )
            .into());
        }
        Ok(())
    }

    /// Creates a client record.
    pub fn create_client(&self, draft: ClientDraft) -> Result<Client> {
        self.team()?;
        draft.validate()?;
        self.check_code_free(&draft.code, None)?;
        let id = RecordId::random();
        let doc = ClientDoc::new(id, &draft, &self.device_id().to_string(), now_ms());
        let client = doc.to_client()?;
        self.create(
            id,
            RecordKind::Client,
            &doc,
            Projection::Client(ClientSummary::of(&client)),
        )?;
        Ok(client)
    }

    /// Replaces a client's fields; notes merge by character.
    pub fn update_client(&self, id: RecordId, draft: ClientDraft) -> Result<Client> {
        draft.validate()?;
        self.check_code_free(&draft.code, Some(id))?;
        self.mutate(
            id,
            RecordKind::Client,
            "edit client",
            |d: &mut ClientDoc, _| {
                d.apply(&draft, now_ms());
                d.to_client()
            },
            |d| Ok(Some(Projection::Client(ClientSummary::of(&d.to_client()?)))),
        )
    }

    /// One client.
    pub fn get_client(&self, id: RecordId) -> Result<Client> {
        self.read_doc::<ClientDoc>(id, RecordKind::Client)?
            .to_client()
    }

    /// Lists clients matching `filter`, by code.
    pub fn list_clients(&self, filter: &ClientFilter) -> Result<Vec<ClientSummary>> {
        self.store.read(|r| {
            let mut v: Vec<ClientSummary> = r
                .cache
                .clients
                .values()
                .filter(|c| filter.matches(c))
                .cloned()
                .collect();
            v.sort_by(|a, b| a.code.cmp(&b.code));
            Ok(v)
        })
    }

    /// Deletes a client record; the deletion syncs to the team.
    pub fn delete_client(&self, id: RecordId) -> Result<()> {
        self.soft_delete(id, RecordKind::Client)
    }

    /// Ids of records whose stored data failed to open (damaged file); everything else works.
    pub fn damaged_records(&self) -> Result<Vec<RecordId>> {
        self.store.read(|r| Ok(r.cache.damaged.clone()))
    }

    /// How many local changes wait to be pushed to the relay.
    pub fn pending_changes(&self) -> Result<u64> {
        self.store.read(|r| r.outbox_len())
    }

    /// Erases a contact or client everywhere (GDPR Art. 17; leads only): the local copy goes now,
    /// the relay deletes every envelope of it when the tombstone arrives, and every device deletes
    /// its copy at its next sync. Works offline; the tombstone waits in the outbox.
    pub fn erase_record(&self, id: RecordId) -> Result<()> {
        self.require_lead("erase records")?;
        let kind = self.store.read(|r| match r.doc(&id)? {
            Some((RecordKind::Team, _)) => Err(Error::NotAllowed(
                "the team document cannot be erased".into(),
            )),
            Some((kind, _)) => Ok(kind),
            None => Err(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            }),
        })?;
        self.store.write(|w| {
            w.erase_record(&id, now_ms())?;
            w.push_tombstone(&id, kind)
        })?;
        self.local(id, kind, true);
        Ok(())
    }

    /// Re-seals the whole store under a new storage key or passphrase. The old key stops working
    /// at once; nothing sealed under it stays in the file or its WAL.
    pub fn change_storage_key(&self, new_key: KeySource) -> Result<()> {
        self.store.rekey(&new_key)
    }

    /// Who changed which field of a record, when and from which device, oldest first. Derived
    /// from the Automerge history: every change's actor starts with the author's device id, which
    /// sync checks against the signed envelope that carried the change.
    pub fn history(&self, id: RecordId) -> Result<Vec<HistoryEntry>> {
        let team = self.team().ok();
        self.store.read(|r| {
            let (_, mut doc) = r.doc(&id)?.ok_or(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            })?;
            type Meta = (
                automerge::ChangeHash,
                Vec<automerge::ChangeHash>,
                Vec<u8>,
                i64,
                Option<String>,
            );
            let changes: Vec<Meta> = doc
                .get_changes(&[])
                .iter()
                .map(|c| {
                    (
                        c.hash(),
                        c.deps().to_vec(),
                        c.actor_id().to_bytes().to_vec(),
                        c.timestamp(),
                        c.message().map(str::to_owned),
                    )
                })
                .collect();
            let mut out = Vec::new();
            for (hash, deps, actor, ts, message) in changes {
                let mut fields: Vec<String> = doc
                    .diff(&deps, &[hash])
                    .into_iter()
                    .filter_map(|p| match p.path.first() {
                        Some((_, automerge::Prop::Map(k))) => Some(k.clone()),
                        Some(_) => None,
                        None => match &p.action {
                            automerge::PatchAction::PutMap { key, .. }
                            | automerge::PatchAction::DeleteMap { key } => Some(key.clone()),
                            _ => None,
                        },
                    })
                    .filter(|k| {
                        !matches!(k.as_str(), "updated_at" | "schema_version" | "kind" | "id")
                    })
                    .collect();
                fields.sort();
                fields.dedup();
                let device = actor
                    .get(..16)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(DeviceId::from_bytes);
                let member = device.and_then(|d| {
                    team.as_ref()
                        .and_then(|t| t.device(&d))
                        .map(|d| d.member.clone())
                });
                out.push(HistoryEntry {
                    at_ms: ts * 1000,
                    device,
                    member,
                    fields,
                    message: message.unwrap_or_default(),
                });
            }
            Ok(out)
        })
    }

    /// Sets a top-level string field of a record WITHOUT any validation or role check, and queues
    /// the change for sync. Exists only so tests can play a malicious or buggy teammate whose
    /// changes the other devices must refuse; an app must never call it.
    #[doc(hidden)]
    pub fn unchecked_change_for_tests(&self, id: RecordId, field: &str, value: &str) -> Result<()> {
        self.store.write(|w| {
            let (kind, mut doc) = w.doc(&id)?.ok_or(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            })?;
            doc.set_actor(self.actor.clone());
            let before = doc.get_heads();
            doc.put(automerge::ROOT, field, value)?;
            self.finish(w, id, kind, &mut doc, &before, "unchecked")
        })
    }

    /// Up to `limit` local changes waiting for the relay, oldest first.
    pub fn pending_outbox(&self, limit: usize) -> Result<Vec<crate::OutboxEntry>> {
        self.store.read(|r| r.outbox(limit))
    }

    /// The whole document of a record (`Automerge::save`), for snapshots and for handing a record
    /// to another store.
    pub fn export_document(&self, id: RecordId) -> Result<Vec<u8>> {
        self.store.read(|r| {
            let (_, mut doc) = r.doc(&id)?.ok_or(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            })?;
            Ok(doc.save())
        })
    }

    // ---- remote changes ---------------------------------------------------------------

    /// Merges Automerge changes (or a whole saved document) received from a teammate into the
    /// record `id`, updating its projection. Idempotent: applying the same changes twice is a no-op.
    pub fn apply_remote(&self, id: RecordId, changes: &[u8]) -> Result<RemoteApplied> {
        let applied = self.store.write(|w| apply_remote_in(w, id, changes))?;
        self.listeners.emit(&[RecordChange {
            id,
            kind: applied.kind,
            origin: ChangeOrigin::Remote,
            removed: applied.deleted,
        }]);
        Ok(applied)
    }

    /// Becomes a member of a team from a key bundle: stores team id, keys and the team document.
    pub(crate) fn join_from_bundle(&self, bundle: &crate::sync::JoinBundle) -> Result<()> {
        self.store.write(|w| {
            if w.meta(META_TEAM_ID)?.is_some() {
                return Err(Error::AlreadyInTeam);
            }
            w.put_meta(META_TEAM_ID, bundle.team_id.as_bytes())?;
            w.put_meta(META_TEAM_DOC, bundle.team_doc_id.as_bytes())?;
            let keys = Zeroizing::new(
                postcard::to_stdvec(&bundle.keys).map_err(|_| Error::Crypto("key encoding"))?,
            );
            w.put_secret(SECRET_TEAM_KEYS, &keys)?;
            let applied = apply_remote_in(w, bundle.team_doc_id, &bundle.team_doc)?;
            if applied.kind != RecordKind::Team {
                return Err(Error::Protocol(
                    "the bundle's team document is not a team".into(),
                ));
            }
            Ok(())
        })
    }
}

fn partner_mut<'t>(team: &'t mut Team, id: &str) -> Result<&'t mut Partner> {
    team.partners
        .iter_mut()
        .find(|p| p.id == id)
        .ok_or_else(|| ValidationError::new("partner_id", format!("unknown partner '{id}'")).into())
}

fn contact_projection(d: &ContactDoc) -> Result<Option<Projection>> {
    Ok(Some(Projection::Contact(Box::new(ContactSummary::of(
        &d.to_contact()?,
    )))))
}

fn is_deleted(doc: &AutoCommit) -> bool {
    matches!(
        doc.get(automerge::ROOT, "deleted"),
        Ok(Some((automerge::Value::Scalar(s), _))) if matches!(s.as_ref(), automerge::ScalarValue::Boolean(true))
    )
}

fn doc_kind(doc: &AutoCommit) -> Option<RecordKind> {
    match doc.get(automerge::ROOT, "kind") {
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            automerge::ScalarValue::Str(k) => RecordKind::from_name(k),
            _ => None,
        },
        _ => None,
    }
}

/// Merges remote changes inside an open write transaction (the sync client applies a whole page
/// in one transaction together with its cursor).
pub(crate) fn apply_remote_in(
    w: &mut Writer<'_>,
    id: RecordId,
    changes: &[u8],
) -> Result<RemoteApplied> {
    apply_checked(w, id, changes, None, None)
}

/// Who sent remote changes, for the checks that depend on it.
pub(crate) struct RemoteAuthor {
    /// The device that signed the envelope.
    pub(crate) device: DeviceId,
    /// Its role on the roster.
    pub(crate) role: Role,
    /// Whether the changes are a snapshot (holding other authors' changes too).
    pub(crate) snapshot: bool,
}

/// Runs Automerge or autosurgeon code on a document that holds a teammate's bytes. Automerge 0.12
/// panics on some crafted input (an `unwrap` in `load_incremental`, found by the `document` fuzz
/// target, `fuzz/regressions/document/`), and a malicious or buggy member must not crash a device:
/// a panic becomes `Error::Protocol`, so the envelope is quarantined as `malformed_document` and
/// the sync goes on. The document is dropped with the error, so its half-merged state is never
/// used. (This needs `panic = "unwind"`, Rust's default; an app built with `panic = "abort"`
/// loses this protection.)
pub(crate) fn guard_foreign<T>(id: RecordId, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        Error::Protocol(format!(
            "changes for record {id} crash the document library; refused"
        ))
    })
}

/// Stores a document that holds a teammate's bytes, after checking that what is stored loads again.
/// Automerge 0.12 merges some crafted changes without an error and then saves a document it cannot
/// load ("invalid changes: missing ops"; found by the `document` fuzz target,
/// `fuzz/regressions/document/crash-ed3fe699*`). Stored, such a document would leave the record
/// unreadable (`Error::Corrupt`) on every device that pulled the change; refused, the envelope is
/// quarantined and the record stays as it was.
///
/// `as_received` is the teammate's saved document when the record is new here and those exact bytes
/// just loaded strictly (`crate::document::load`, the same call that reads the store): they are
/// stored as they came, which is both the reload check and the saved form, so the two Automerge
/// passes (save, load again) that dominated a fresh device's bootstrap are skipped.
fn put_foreign_doc(
    w: &mut Writer<'_>,
    id: RecordId,
    kind: RecordKind,
    doc: &mut AutoCommit,
    as_received: Option<&[u8]>,
) -> Result<()> {
    if let Some(bytes) = as_received {
        return w.put_doc_bytes(&id, kind, bytes);
    }
    let saved = Zeroizing::new(guard_foreign(id, || doc.save())?);
    if let Err(e) = guard_foreign(id, || crate::document::load(&saved))? {
        return Err(Error::Protocol(format!(
            "changes for record {id} leave a document that does not load: {e}"
        )));
    }
    w.put_doc_bytes(&id, kind, &saved)
}

/// Whether `bytes` start with an Automerge document chunk (a whole saved document) rather than
/// change chunks: magic bytes, a 4-byte checksum, then the chunk type, 0 for a document.
fn is_saved_document(bytes: &[u8]) -> bool {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    bytes.len() > 9 && bytes[..4] == MAGIC && bytes[8] == 0
}

/// Loads a teammate's bytes strictly, as the only content of a record new on this device: the
/// pre-check first (a declared size Automerge expands at once can abort the process, see
/// `document::precheck`), then `crate::document::load` (the call that reads the store) under
/// [`guard_foreign`]. `Ok(None)` when Automerge does not load them strictly (changes waiting for
/// earlier ones, damaged bytes): the incremental path then gives the precise answer. Pure, so the
/// sync client runs it for a whole page on several threads before the page's transaction.
pub(crate) fn preload_foreign(id: RecordId, changes: &[u8]) -> Result<Option<AutoCommit>> {
    crate::document::precheck::check(changes).map_err(|e| refused(id, e))?;
    Ok(guard_foreign(id, || crate::document::load(changes))?.ok())
}

fn refused(id: RecordId, e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!(
        "changes for record {id} are refused before loading: {e}"
    ))
}

/// Opens the document that receives a teammate's bytes for record `id`. A record already here is
/// merged into (`load_incremental`). A record new here is loaded strictly from the bytes alone
/// (or taken from `preloaded`, the same load done ahead of time); when they are a whole saved
/// document (how a record first travels, and how snapshots do) the flag is `true`: the bytes are
/// fit to be stored as they are. Whatever does not load strictly takes the incremental path, which
/// yields the precise error or queues the changes for the missing-dependency check.
fn open_for_merge(
    id: RecordId,
    existing: Option<AutoCommit>,
    changes: &[u8],
    preloaded: Option<AutoCommit>,
) -> Result<(AutoCommit, bool)> {
    if existing.is_none() {
        let strict = match preloaded {
            Some(doc) => Some(doc),
            None => preload_foreign(id, changes)?,
        };
        if let Some(doc) = strict {
            return Ok((doc, is_saved_document(changes)));
        }
    } else {
        crate::document::precheck::check(changes).map_err(|e| refused(id, e))?;
    }
    // Not `unwrap_or_default`: a default `AutoCommit` has the wrong text encoding.
    let mut doc = match existing {
        Some(doc) => doc,
        None => crate::document::new(),
    };
    guard_foreign(id, || doc.load_incremental(changes))?
        .map_err(|e| Error::Protocol(format!("changes for record {id} do not load: {e}")))?;
    Ok((doc, false))
}

/// Merges remote changes after checking them against the author's role: only leads change the
/// team document or move a review to approved or changes-requested, and a change's actor must be
/// the device that signed it (so the audit history cannot be forged). `preloaded` is
/// [`preload_foreign`]'s result for these bytes, computed ahead of time; it is used only if the
/// record is still new here.
pub(crate) fn apply_checked(
    w: &mut Writer<'_>,
    id: RecordId,
    changes: &[u8],
    author: Option<&RemoteAuthor>,
    preloaded: Option<AutoCommit>,
) -> Result<RemoteApplied> {
    if w.is_erased(&id)? {
        return Err(Error::NotFound {
            kind: RecordKind::Contact,
            id,
        });
    }
    let mut existing = w.doc(&id)?;
    // Only a worker's changes need the review state before them (leads may change it).
    let worker = author.is_some_and(|a| a.role != Role::Lead);
    let before_review = match &existing {
        Some((RecordKind::Contact, d)) if worker => {
            hydrate::<_, ContactDoc>(d).ok().map(|c| c.review())
        }
        _ => None,
    };
    let known_kind = existing.as_ref().map(|(k, _)| *k);
    let old_heads = existing
        .as_mut()
        .map(|(_, d)| d.get_heads())
        .unwrap_or_default();
    let (mut doc, whole) = open_for_merge(id, existing.map(|(_, d)| d), changes, preloaded)?;
    // Changes whose dependencies are missing wait in Automerge's queue and would be dropped by
    // `save`; refuse them so the caller keeps them until the earlier changes arrive.
    if !guard_foreign(id, || doc.get_missing_deps(&[]).is_empty())? {
        return Err(Error::MissingDependencies { id });
    }
    if let Some(a) = author
        && !a.snapshot
    {
        // Change metadata only: building the full changes (`get_changes`) re-encodes every op.
        let forged = guard_foreign(id, || {
            doc.get_changes_meta(&old_heads)
                .iter()
                .any(|c| !c.actor.to_bytes().starts_with(a.device.as_bytes()))
        })?;
        if forged {
            return Err(Error::NotAllowed(format!(
                "changes to record {id} claim another device as their author"
            )));
        }
    }
    let kind =
        doc_kind(&doc).ok_or_else(|| Error::Protocol(format!("record {id} has no known kind")))?;
    if worker && kind == RecordKind::Team {
        return Err(Error::NotAllowed(
            "only leads change the team document".into(),
        ));
    }
    if known_kind.is_some_and(|k| k != kind) {
        return Err(Error::Protocol(format!("record {id} changed its kind")));
    }
    let as_received = whole.then_some(changes);
    let deleted = is_deleted(&doc);
    let projection = match kind {
        RecordKind::Contact => {
            let d: ContactDoc = guard_foreign(id, || hydrate(&doc))?
                .map_err(|e| Error::Protocol(format!("contact {id} is malformed: {e}")))?;
            let review = d.review();
            if worker
                && before_review != Some(review)
                && matches!(
                    review,
                    ReviewState::Approved | ReviewState::ChangesRequested
                )
            {
                return Err(Error::NotAllowed(
                    "only leads approve contacts or ask for changes".into(),
                ));
            }
            Projection::Contact(Box::new(ContactSummary::of(&d.to_contact()?)))
        }
        RecordKind::Client => {
            let d: ClientDoc = guard_foreign(id, || hydrate(&doc))?
                .map_err(|e| Error::Protocol(format!("client {id} is malformed: {e}")))?;
            Projection::Client(ClientSummary::of(&d.to_client()?))
        }
        RecordKind::Team => {
            let d: TeamDoc = guard_foreign(id, || hydrate(&doc))?
                .map_err(|e| Error::Protocol(format!("team document is malformed: {e}")))?;
            let team = d.to_team()?;
            put_foreign_doc(w, id, kind, &mut doc, as_received)?;
            w.set_team(team);
            return Ok(RemoteApplied { kind, deleted });
        }
    };
    put_foreign_doc(w, id, kind, &mut doc, as_received)?;
    if deleted {
        w.remove_projection(&id)?;
    } else {
        w.put_projection(&id, projection)?;
    }
    Ok(RemoteApplied { kind, deleted })
}
