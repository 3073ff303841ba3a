//! What applies to a record of either kind, contact or client: erasure everywhere (GDPR Art. 17)
//! and the audit trail of who changed which field.
//!
//! Both take any record id, so they belong to neither the contact nor the client module. Erasure
//! is for leads only and works offline; the history reads one Automerge document.

use streetsync_core as sc;

use crate::Result;
use crate::error::guard;
use crate::ids::record_id;
use crate::workspace::Workspace;

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

impl From<sc::HistoryEntry> for HistoryEntry {
    fn from(h: sc::HistoryEntry) -> Self {
        Self {
            at_ms: h.at_ms,
            device_id: h.device.map(|d| d.to_string()),
            member: h.member,
            fields: h.fields,
            message: h.message,
        }
    }
}

#[uniffi::export]
impl Workspace {
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
}
