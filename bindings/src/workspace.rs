//! The `Workspace` object (one opened store of one device) and the change listener.
//!
//! Every store call here is a plain (blocking) export: they take a few milliseconds (one SQLite
//! transaction, `synchronous=FULL`) and are safe from any thread. Apps may call them from a
//! background dispatcher (`Dispatchers.IO`, a Swift `Task`, `asyncio.to_thread`) if they do not want
//! even that on the UI thread. Network work is async and lives on `SyncClient`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use streetsync_core as sc;
use zeroize::Zeroize;

use crate::convert::{
    Catalog, CatalogEntry, Client, ClientDraft, ClientFilter, ClientSummary, Contact, ContactDraft,
    ContactFilter, ContactPage, HistoryEntry, Partner, PartnerDraft, RecordChange, Role,
    StoreSnapshot, Team, TeamSetup, parse_id,
};
use crate::error::{StreetsyncError, guard};
use crate::sync::SyncClient;
use crate::{Result, call_host};

/// One opened, encrypted device store and the whole local API on it.
///
/// Open one per store file and share it; it is thread-safe. In Kotlin close it with `close()` or
/// `use {}` when the app no longer needs it (a `SyncClient` made from it keeps the store open until
/// it is closed too).
#[derive(uniffi::Object)]
pub struct Workspace {
    pub(crate) inner: Arc<sc::Workspace>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("path", &self.inner.path())
            .finish()
    }
}

fn record_id(s: &str) -> Result<sc::RecordId> {
    parse_id("id", s)
}

/// Takes 32 key bytes from the host and wipes the host's copy on the Rust side.
fn take_storage_key(mut bytes: Vec<u8>) -> Result<sc::StorageKey> {
    let key = sc::StorageKey::from_bytes(&bytes).map_err(|_| StreetsyncError::InvalidInput {
        field: "storage_key".into(),
        reason: format!("must be 32 bytes, got {}", bytes.len()),
    });
    bytes.zeroize();
    key
}

fn check_passphrase(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(StreetsyncError::InvalidInput {
            field: "passphrase".into(),
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

#[uniffi::export]
impl Workspace {
    /// Opens (or creates) the store at `path` with a 32-byte storage key from the platform keystore
    /// (Android Keystore, iOS Keychain). Blocking, fast. A wrong key fails with `WrongKey` and
    /// changes nothing. The bytes passed in are wiped after use on the Rust side.
    #[uniffi::constructor]
    pub fn open(path: String, storage_key: Vec<u8>) -> Result<Arc<Self>> {
        let key = take_storage_key(storage_key)?;
        guard(|| {
            let ws = sc::Workspace::open(&path, sc::KeySource::Key(key))?;
            Ok(Arc::new(Self {
                inner: Arc::new(ws),
            }))
        })
    }

    /// Opens (or creates) the store at `path` with a passphrase, stretched with PBKDF2 (salt kept
    /// in the store). Blocking and deliberately slow (key stretching): call it off the UI thread.
    #[uniffi::constructor]
    pub fn open_with_passphrase(path: String, passphrase: String) -> Result<Arc<Self>> {
        check_passphrase(&passphrase)?;
        guard(|| {
            let ws = sc::Workspace::open(&path, sc::KeySource::passphrase(passphrase))?;
            Ok(Arc::new(Self {
                inner: Arc::new(ws),
            }))
        })
    }

    // ---- device and team ----------------------------------------------------------------

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

    // ---- contacts -----------------------------------------------------------------------

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

    /// Anonymous statistics for a date range (`"2026-01-01"` to `"2026-06-30"`), grouped by month,
    /// area, age band, gender, topic, materials and partner organisation; cells under three
    /// persons are suppressed. Reads projections only. Blocking, fast.
    pub fn statistics(
        &self,
        from_date: String,
        to_date: String,
    ) -> Result<crate::convert::Statistics> {
        guard(|| {
            let query = sc::stats::StatsQuery {
                from: crate::convert::parse_date("from_date", &from_date)?,
                to: crate::convert::parse_date("to_date", &to_date)?,
            };
            let stats = sc::stats::compute(&self.inner, &query).map_err(sc::Error::from)?;
            Ok((&stats).into())
        })
    }

    /// The same statistics as CSV text (suppressed cells written `<3`). Blocking, fast.
    pub fn statistics_csv(&self, from_date: String, to_date: String) -> Result<String> {
        guard(|| {
            let query = sc::stats::StatsQuery {
                from: crate::convert::parse_date("from_date", &from_date)?,
                to: crate::convert::parse_date("to_date", &to_date)?,
            };
            let stats = sc::stats::compute(&self.inner, &query).map_err(sc::Error::from)?;
            let mut out = Vec::new();
            sc::export::write_statistics(&stats, &mut out)?;
            String::from_utf8(out).map_err(|_| StreetsyncError::Internal {
                detail: "the CSV is not UTF-8".into(),
            })
        })
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
            let export = sc::export::ContactExport {
                from: from_date
                    .as_deref()
                    .map(|d| crate::convert::parse_date("from_date", d))
                    .transpose()?,
                to: to_date
                    .as_deref()
                    .map(|d| crate::convert::parse_date("to_date", d))
                    .transpose()?,
                include_notes,
            };
            let mut out = Vec::new();
            sc::export::export_contacts(&self.inner, &export, &mut out, &mut |_, _| {})?;
            String::from_utf8(out).map_err(|_| StreetsyncError::Internal {
                detail: "the CSV is not UTF-8".into(),
            })
        })
    }

    /// Deletes a contact logged by mistake; the deletion syncs to the team. Blocking, fast.
    pub fn delete_contact(&self, id: String) -> Result<()> {
        guard(|| Ok(self.inner.delete_contact(record_id(&id)?)?))
    }

    // ---- review -------------------------------------------------------------------------

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

    // ---- clients ------------------------------------------------------------------------

    /// Creates a client record (pseudonymous code, consents). Blocking, fast.
    pub fn create_client(&self, draft: ClientDraft) -> Result<Client> {
        guard(|| Ok(self.inner.create_client(draft.into_core()?)?.into()))
    }

    /// Replaces a client's fields; notes merge by character. Blocking, fast.
    pub fn update_client(&self, id: String, draft: ClientDraft) -> Result<Client> {
        guard(|| {
            let id = record_id(&id)?;
            Ok(self.inner.update_client(id, draft.into_core()?)?.into())
        })
    }

    /// One client. Blocking, fast.
    pub fn get_client(&self, id: String) -> Result<Client> {
        guard(|| Ok(self.inner.get_client(record_id(&id)?)?.into()))
    }

    /// Lists clients matching `filter`, by code. Blocking, fast.
    pub fn list_clients(&self, filter: ClientFilter) -> Result<Vec<ClientSummary>> {
        guard(|| {
            Ok(self
                .inner
                .list_clients(&filter.into())?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Deletes a client record; the deletion syncs to the team. Blocking, fast.
    pub fn delete_client(&self, id: String) -> Result<()> {
        guard(|| Ok(self.inner.delete_client(record_id(&id)?)?))
    }

    /// Erases a contact or client everywhere (GDPR Art. 17; leads only): the local copy goes now,
    /// the relay deletes every envelope of it, and every device deletes its copy at its next sync.
    /// Works offline. Blocking, fast.
    pub fn erase_record(&self, id: String) -> Result<()> {
        guard(|| Ok(self.inner.erase_record(record_id(&id)?)?))
    }

    /// Who changed which field of a record, when and from which device, oldest first (the audit
    /// trail). Blocking; reads one document.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>> {
        guard(|| {
            Ok(self
                .inner
                .history(record_id(&id)?)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    // ---- keys and health -------------------------------------------------------------------------

    /// Re-seals the whole store under a new 32-byte storage key (after the keystore key was
    /// rotated). The old key stops working at once. Blocking; rewrites the store, so call it off the
    /// UI thread. The bytes passed in are wiped after use on the Rust side.
    pub fn change_storage_key(&self, new_key: Vec<u8>) -> Result<()> {
        let key = take_storage_key(new_key)?;
        guard(|| Ok(self.inner.change_storage_key(sc::KeySource::Key(key))?))
    }

    /// Re-seals the whole store under a new passphrase. Blocking and slow (key stretching and a
    /// rewrite of the store): call it off the UI thread.
    pub fn change_passphrase(&self, new_passphrase: String) -> Result<()> {
        check_passphrase(&new_passphrase)?;
        guard(|| {
            Ok(self
                .inner
                .change_storage_key(sc::KeySource::passphrase(new_passphrase))?)
        })
    }

    /// The epochs of the team keys this device holds (a new epoch starts when a lead removes a
    /// device). Blocking, fast.
    pub fn key_epochs(&self) -> Result<Vec<u32>> {
        guard(|| Ok(self.inner.key_epochs()?))
    }

    /// How many local changes wait to be sent to the relay. Blocking, fast.
    pub fn pending_changes(&self) -> Result<u64> {
        guard(|| Ok(self.inner.pending_changes()?))
    }

    /// Ids of records whose stored data failed to open (a damaged file); everything else works.
    /// Blocking, fast.
    pub fn damaged_records(&self) -> Result<Vec<String>> {
        guard(|| {
            Ok(self
                .inner
                .damaged_records()?
                .into_iter()
                .map(|id| id.to_string())
                .collect())
        })
    }

    // ---- listeners and sync -------------------------------------------------------------

    /// Subscribes to record changes, local and remote. The listener first receives
    /// `on_snapshot` with the store's current state (synchronously, before this returns), then
    /// `on_changes` for every durable change, in order. Delivery stops when the returned
    /// subscription is cancelled or closed/dropped. Listeners are called on the writing thread
    /// (the caller's thread or the sync thread), never while a lock is held: post to the UI thread.
    /// An exception thrown by the listener is caught and ignored.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) -> Result<Arc<ChangeSubscription>> {
        guard(|| {
            let adapter = Arc::new(ChangeAdapter {
                host: listener,
                active: AtomicBool::new(true),
                gate: Mutex::new(Gate {
                    ready: false,
                    buffered: Vec::new(),
                }),
            });
            let subscription = self.inner.subscribe(adapter.clone());
            let handle = Arc::new(ChangeSubscription {
                subscription: Mutex::new(Some(subscription)),
                adapter: adapter.clone(),
            });
            let snapshot = self.snapshot()?;
            let host = adapter.host.clone();
            call_host(|| host.on_snapshot(snapshot));
            adapter.open_gate();
            Ok(handle)
        })
    }

    /// A sync client for the relay at `relay_url` (`https://relay.example.org`). Same as
    /// `SyncClient(workspace, relay_url)`.
    pub fn sync_client(self: Arc<Self>, relay_url: String) -> Result<Arc<SyncClient>> {
        SyncClient::new(self, relay_url)
    }
}

impl Workspace {
    fn snapshot(&self) -> Result<StoreSnapshot> {
        let all = sc::ContactFilter {
            limit: 1,
            ..Default::default()
        };
        Ok(StoreSnapshot {
            team_id: self.inner.team_id()?.map(|t| t.to_string()),
            contacts: u64::try_from(self.inner.list_contacts(&all)?.total).unwrap_or(u64::MAX),
            clients: u64::try_from(self.inner.list_clients(&sc::ClientFilter::default())?.len())
                .unwrap_or(u64::MAX),
            pending_changes: self.inner.pending_changes()?,
        })
    }
}

/// Receives record changes. Implement it in Kotlin, Swift or Python.
#[uniffi::export(with_foreign)]
pub trait ChangeListener: Send + Sync {
    /// The store's state when the subscription started; delivered once, first.
    fn on_snapshot(&self, snapshot: StoreSnapshot);
    /// Records changed (durably stored). Keep it quick: post to the UI thread.
    fn on_changes(&self, changes: Vec<RecordChange>);
}

struct Gate {
    ready: bool,
    buffered: Vec<Vec<RecordChange>>,
}

/// Bridges the core's change listener to the host's, holding changes back until the snapshot
/// has been delivered so the host always sees the snapshot first.
struct ChangeAdapter {
    host: Arc<dyn ChangeListener>,
    active: AtomicBool,
    gate: Mutex<Gate>,
}

impl ChangeAdapter {
    /// Delivers what arrived while the snapshot was delivered, then lets changes through.
    fn open_gate(&self) {
        loop {
            let batch = {
                let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
                if gate.buffered.is_empty() {
                    gate.ready = true;
                    return;
                }
                std::mem::take(&mut gate.buffered)
            };
            for changes in batch {
                self.deliver(changes);
            }
        }
    }

    fn deliver(&self, changes: Vec<RecordChange>) {
        if self.active.load(Ordering::Acquire) {
            let host = self.host.clone();
            call_host(move || host.on_changes(changes));
        }
    }
}

impl sc::ChangeListener for ChangeAdapter {
    fn on_changes(&self, changes: &[sc::RecordChange]) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let changes: Vec<RecordChange> = changes.iter().map(Into::into).collect();
        {
            let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            if !gate.ready {
                gate.buffered.push(changes);
                return;
            }
        }
        self.deliver(changes);
    }
}

/// Keeps a `ChangeListener` subscribed. `cancel()` — or closing/dropping it — stops delivery at
/// once.
#[derive(uniffi::Object)]
pub struct ChangeSubscription {
    subscription: Mutex<Option<sc::Subscription>>,
    adapter: Arc<ChangeAdapter>,
}

impl std::fmt::Debug for ChangeSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeSubscription")
            .field("active", &self.adapter.active.load(Ordering::Relaxed))
            .finish()
    }
}

#[uniffi::export]
impl ChangeSubscription {
    /// Stops delivery; no listener call starts after this returns. Safe to call twice.
    pub fn cancel(&self) {
        self.adapter.active.store(false, Ordering::Release);
        let sub = self
            .subscription
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(sub);
    }

    /// Whether changes are still delivered.
    pub fn is_active(&self) -> bool {
        self.adapter.active.load(Ordering::Acquire)
    }
}

impl Drop for ChangeSubscription {
    fn drop(&mut self) {
        self.adapter.active.store(false, Ordering::Release);
    }
}
