//! Change notification: which records changed, locally or through sync, delivered to a host
//! `ChangeListener` after a snapshot of the store, and the `ChangeSubscription` that ends it.
//!
//! The core calls its listeners after the transaction committed and with no lock held; the
//! adapter here converts each batch, holds batches back until the host has seen the snapshot, and
//! stops forwarding the moment the subscription is cancelled or dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use streetsync_core as sc;

use crate::Result;
use crate::error::guard;
use crate::mirror::mirror_enum;
use crate::runtime::call_host;
use crate::workspace::Workspace;

// ---- records ------------------------------------------------------------------------------

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

// ---- Workspace: subscribe ----------------------------------------------------------------

#[uniffi::export]
impl Workspace {
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
}

impl Workspace {
    /// Counts for the snapshot a new subscriber receives first.
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
