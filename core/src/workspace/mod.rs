//! `Workspace`: the public facade of one opened device store.
//!
//! Each method is a line or a few that delegate to the engine (`crate::engine`), which holds the
//! logic; the facade only fixes the public shape (argument types, what is returned). The sync
//! client takes the same engine from it, never the facade's internals.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;

use streetsync_wire::{DeviceId, DeviceKeys, RecordId, Role, TeamId};

use crate::crypto::{DeviceIdentity, KeySource};
use crate::engine::Engine;
use crate::engine::events::{ChangeListener, Subscription};
use crate::engine::history::HistoryEntry;
use crate::engine::remote::RemoteApplied;
use crate::engine::team::TeamSetup;
use crate::error::Result;
use crate::model::client::{Client, ClientDraft};
use crate::model::contact::{Contact, ContactDraft};
use crate::model::retention::{
    DueRecord, ReportedPeriod, RetentionAudit, RetentionPolicy, RetentionTrigger,
};
use crate::model::team::{Catalog, CatalogEntry, Partner, PartnerDraft, Team};
use crate::query::export::ContactExport;
use crate::query::stats::{Statistics, StatsQuery};
use crate::query::{
    ClientFilter, ClientSummary, ContactFilter, ContactPage, ContactSummary, NoteCopy,
};
use crate::store::OutboxEntry;

/// One opened device store. Share it across threads behind an `Arc`; every method takes `&self`.
pub struct Workspace {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("path", &self.engine.path())
            .field("device", &self.engine.device_id())
            .finish()
    }
}

impl Workspace {
    /// Opens the store at `path` (created if missing) with the host's key or a passphrase.
    /// A wrong key fails with [`crate::Error::WrongKey`] and changes nothing.
    pub fn open(path: impl AsRef<Path>, key: KeySource) -> Result<Self> {
        let engine = Engine::open(path.as_ref(), key, crate::store::schema::SCHEMA_VERSION)?;
        Ok(Self {
            engine: Arc::new(engine),
        })
    }

    /// A facade over an engine opened some other way (the test hooks open older schemas).
    #[cfg(feature = "testing")]
    pub(crate) fn from_engine(engine: Engine) -> Result<Self> {
        Ok(Self {
            engine: Arc::new(engine),
        })
    }

    /// The engine, for the sync client (same crate only).
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Subscribes to record changes (local and remote), so a UI can refresh what it shows.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) -> Subscription {
        self.engine.events.subscribe(listener)
    }

    /// This device's public keys, so a lead can see which device joined.
    pub fn device_keys(&self, role: Role) -> DeviceKeys {
        self.engine.device_keys(role)
    }

    /// This device's id, as the roster and every envelope name it.
    pub fn device_id(&self) -> DeviceId {
        self.engine.device_id()
    }

    /// This device's identity (public keys, signing), for hosts that sign their own requests.
    pub fn identity(&self) -> &DeviceIdentity {
        self.engine.identity()
    }

    /// The store file, for the host's backup exclusions and diagnostics.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    // ---- team -------------------------------------------------------------------------

    /// Founds a team on this device, which becomes its first lead, with a fresh team key.
    pub fn create_team(&self, setup: TeamSetup) -> Result<Team> {
        self.engine.create_team(setup)
    }

    /// The team, or [`crate::Error::NoTeam`]: roster, catalogs and partner directory.
    pub fn team(&self) -> Result<Team> {
        self.engine.team()
    }

    /// The team's id, if this device is in a team (whether a join is still needed).
    pub fn team_id(&self) -> Result<Option<TeamId>> {
        self.engine.team_id()
    }

    /// The epochs of the team keys this device holds (a removed device stops at its last one).
    pub fn key_epochs(&self) -> Result<Vec<u32>> {
        self.engine.key_epochs()
    }

    /// This device's role in the team, so an app shows only what the role may do.
    pub fn my_role(&self) -> Result<Role> {
        self.engine.my_role()
    }

    /// Adds an entry to a catalog (leads only). The id is a slug of the name.
    pub fn add_catalog_entry(&self, catalog: Catalog, name: &str) -> Result<CatalogEntry> {
        self.engine.add_catalog_entry(catalog, name)
    }

    /// Retires a catalog entry: old records keep it, new ones cannot use it (leads only).
    pub fn retire_catalog_entry(&self, catalog: Catalog, id: &str) -> Result<()> {
        self.engine.retire_catalog_entry(catalog, id)
    }

    /// Adds a partner organisation to the directory (leads only).
    pub fn add_partner(&self, draft: PartnerDraft) -> Result<Partner> {
        self.engine.add_partner(draft)
    }

    /// Updates a partner organisation (leads only). Notes merge by character with concurrent edits.
    pub fn update_partner(&self, id: &str, draft: PartnerDraft) -> Result<Partner> {
        self.engine.update_partner(id, draft)
    }

    /// Marks a partner organisation as closed; old referrals keep it (leads only).
    pub fn retire_partner(&self, id: &str) -> Result<()> {
        self.engine.retire_partner(id)
    }

    /// The partner directory (open organisations first, then by name).
    pub fn partners(&self) -> Result<Vec<Partner>> {
        self.engine.partners()
    }

    // ---- contacts ---------------------------------------------------------------------

    /// Logs a new contact. Durable when this returns.
    pub fn create_contact(&self, draft: ContactDraft) -> Result<Contact> {
        self.engine.create_contact(draft)
    }

    /// Replaces a contact's fields. The note is merged by character with concurrent edits.
    pub fn update_contact(&self, id: RecordId, draft: ContactDraft) -> Result<Contact> {
        self.engine.update_contact(id, draft)
    }

    /// One contact, with every field, the review thread and its author.
    pub fn get_contact(&self, id: RecordId) -> Result<Contact> {
        self.engine.get_contact(id)
    }

    /// Lists contacts matching `filter`, newest first, from the projections (never documents).
    pub fn list_contacts(&self, filter: &ContactFilter) -> Result<ContactPage> {
        self.engine.list_contacts(filter)
    }

    /// Every contact's projection, for hosts that compute their own views.
    pub fn contact_summaries(&self) -> Result<Vec<ContactSummary>> {
        self.engine.contact_summaries()
    }

    /// Deletes a contact logged by mistake; the deletion syncs to the team. (Erasure of every
    /// trace on the relay and all devices is the lead's separate [`Workspace::erase_record`].)
    pub fn delete_contact(&self, id: RecordId) -> Result<()> {
        self.engine.delete_contact(id)
    }

    // ---- review -----------------------------------------------------------------------

    /// Hands a contact in for review.
    pub fn submit_contact(&self, id: RecordId) -> Result<Contact> {
        self.engine.submit_contact(id)
    }

    /// Approves a contact (leads only).
    pub fn approve_contact(&self, id: RecordId) -> Result<Contact> {
        self.engine.approve_contact(id)
    }

    /// Sends a question back to the worker (leads only); the contact waits for an answer.
    pub fn request_changes(&self, id: RecordId, question: &str) -> Result<Contact> {
        self.engine.request_changes(id, question)
    }

    /// Adds a remark to the review thread.
    pub fn comment_contact(&self, id: RecordId, text: &str) -> Result<Contact> {
        self.engine.comment_contact(id, text)
    }

    /// Answers the lead's question and hands the contact in again.
    pub fn answer_contact(&self, id: RecordId, text: &str) -> Result<Contact> {
        self.engine.answer_contact(id, text)
    }

    // ---- clients ----------------------------------------------------------------------

    /// Creates a client record (a pseudonymous person followed across visits).
    pub fn create_client(&self, draft: ClientDraft) -> Result<Client> {
        self.engine.create_client(draft)
    }

    /// Replaces a client's fields; notes merge by character.
    pub fn update_client(&self, id: RecordId, draft: ClientDraft) -> Result<Client> {
        self.engine.update_client(id, draft)
    }

    /// One client.
    pub fn get_client(&self, id: RecordId) -> Result<Client> {
        self.engine.get_client(id)
    }

    /// Lists clients matching `filter`, by code.
    pub fn list_clients(&self, filter: &ClientFilter) -> Result<Vec<ClientSummary>> {
        self.engine.list_clients(filter)
    }

    /// Deletes a client record; the deletion syncs to the team.
    pub fn delete_client(&self, id: RecordId) -> Result<()> {
        self.engine.delete_client(id)
    }

    // ---- statistics and export --------------------------------------------------------

    /// The statistics of `query` (contacts and persons per month, area, age band, ...), with
    /// small counts suppressed, for the city and funders.
    pub fn statistics(&self, query: &StatsQuery) -> Result<Statistics> {
        query.validate()?;
        let team = self.engine.team()?;
        let contacts = self.engine.contact_summaries_between(
            Some(query.from),
            Some(query.to),
            NoteCopy::Without,
        )?;
        Ok(crate::query::stats::compute_from(&team, &contacts, query)?)
    }

    /// Writes the contacts of `export` as CSV (oldest first) and returns how many rows were
    /// written. `progress(done, total)` is called as rows are written, for a progress bar.
    pub fn export_contacts<W: Write>(
        &self,
        export: &ContactExport,
        out: W,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let team = self.engine.team()?;
        let note = if export.include_notes {
            NoteCopy::With
        } else {
            NoteCopy::Without
        };
        let contacts = self
            .engine
            .contact_summaries_between(export.from, export.to, note)?;
        crate::query::export::write_contacts(&team, &contacts, export, out, progress)
    }

    // ---- the store --------------------------------------------------------------------

    /// Ids of records whose stored data failed to open (damaged file); everything else works.
    pub fn damaged_records(&self) -> Result<Vec<RecordId>> {
        self.engine.damaged_records()
    }

    /// How many local changes wait to be pushed to the relay (for a "not yet sent" badge).
    pub fn pending_changes(&self) -> Result<u64> {
        self.engine.pending_changes()
    }

    /// Up to `limit` local changes waiting for the relay, oldest first.
    pub fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.engine.pending_outbox(limit)
    }

    /// Erases a contact or client everywhere (GDPR Art. 17; leads only): the local copy goes now,
    /// the relay deletes every envelope of it when the tombstone arrives, and every device deletes
    /// its copy at its next sync. Works offline; the tombstone waits in the outbox.
    ///
    /// Returns [`Error::ErasurePending`](crate::Error::ErasurePending) when the erasure is
    /// committed but another connection to the database kept its old bytes from being wiped
    /// from the files yet; [`Workspace::wipe_erased`] tells when that is done.
    pub fn erase_record(&self, id: RecordId) -> Result<()> {
        self.engine.erase_record(id)
    }

    /// Tries once more to wipe the old bytes of erased records (or of a storage-key change) from
    /// the store's files: `Ok` once none is left, [`Error::ErasurePending`](crate::Error::ErasurePending)
    /// while another connection still blocks it. Every write and every open retries it as well;
    /// this is for a host that wants to tell its user when an erasure is complete.
    pub fn wipe_erased(&self) -> Result<()> {
        self.engine.wipe_erased()
    }

    /// The contacts due for deletion by the team's retention periods on or before `until`,
    /// earliest first, with the day each is due (for a "due for deletion" list).
    pub fn retention_due(&self, until: NaiveDate) -> Result<Vec<DueRecord>> {
        self.engine.retention_due(until)
    }

    /// Erases every contact past its retention period today, with the same erasure as
    /// [`Workspace::erase_record`] (leads only): the lead's confirmation of the list. Leaves an
    /// audit entry (counts and ids); `None` if nothing was due. Works offline.
    ///
    /// Like [`Workspace::erase_record`], answers
    /// [`Error::ErasurePending`](crate::Error::ErasurePending) while another connection keeps the
    /// old bytes in the files (the erasure and its audit entry are committed either way).
    pub fn erase_due_records(&self) -> Result<Option<RetentionAudit>> {
        let audit = self
            .engine
            .erase_due(crate::clock::today(), RetentionTrigger::Confirmed)?;
        if audit.is_some() {
            self.engine.wipe_erased()?;
        }
        Ok(audit)
    }

    /// Sets the team's retention periods and whether erasure is automatic (leads only).
    pub fn set_retention_policy(&self, policy: RetentionPolicy) -> Result<()> {
        self.engine.set_retention_policy(policy)
    }

    /// Marks the statistics of a finished period as produced and sent (leads only): `short`
    /// contacts of those days become due for deletion.
    pub fn mark_statistics_reported(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ReportedPeriod> {
        self.engine.mark_reported(from, to)
    }

    /// This device's retention audit trail, oldest first.
    pub fn retention_log(&self) -> Result<Vec<RetentionAudit>> {
        self.engine.retention_log()
    }

    /// Re-seals the whole store under a new storage key or passphrase. The old key stops working
    /// at once; nothing sealed under it stays in the file or its WAL.
    pub fn change_storage_key(&self, new_key: KeySource) -> Result<()> {
        self.engine.change_storage_key(&new_key)
    }

    /// Who changed which field of a record, when and from which device, oldest first.
    pub fn history(&self, id: RecordId) -> Result<Vec<HistoryEntry>> {
        self.engine.history(id)
    }

    /// The whole document of a record (`Automerge::save`), for handing a record to another store.
    pub fn export_document(&self, id: RecordId) -> Result<Vec<u8>> {
        self.engine.export_document(id)
    }

    /// Merges Automerge changes (or a whole saved document) received outside sync into record
    /// `id`, through the same checks as synced changes. Idempotent.
    pub fn apply_remote(&self, id: RecordId, changes: &[u8]) -> Result<RemoteApplied> {
        self.engine.apply_remote(id, changes)
    }
}
