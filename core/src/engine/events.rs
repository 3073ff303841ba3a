//! The event bus of one store: listeners of record changes, and the wake-up of the live sync loop
//! when a local change waits in the outbox. Events go out only after the change is durably
//! stored, and host code is never called while a lock is held.

use streetsync_wire::RecordId;

use crate::kinds::RecordKind;

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
    events: std::sync::Weak<Events>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(l) = self.events.upgrade() {
            l.list
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(id, _)| *id != self.id);
        }
    }
}

#[derive(Default)]
pub(crate) struct Events {
    next: std::sync::atomic::AtomicU64,
    list: std::sync::Mutex<Vec<(u64, std::sync::Arc<dyn ChangeListener>)>>,
    /// Wakes the live sync loop when a local change waits in the outbox.
    pub(crate) local_change: tokio::sync::Notify,
}

impl Events {
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

impl Events {
    /// Adds a listener; the returned handle removes it when dropped.
    pub(crate) fn subscribe(
        self: &std::sync::Arc<Self>,
        listener: std::sync::Arc<dyn ChangeListener>,
    ) -> Subscription {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, listener));
        Subscription {
            id,
            events: std::sync::Arc::downgrade(self),
        }
    }
}
