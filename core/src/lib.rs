//! # streetsync-core
//!
//! The offline-first, end-to-end encrypted core of streetsync: field contacts of street outreach
//! (Streetwork, aufsuchende Sozialarbeit) stored as Automerge documents in an encrypted SQLite
//! store, and synchronised between a team's devices through a blind relay.
//!
//! ```no_run
//! use streetsync_core::{Workspace, KeySource, StorageKey, TeamSetup, ContactDraft, ContactFilter};
//! # fn main() -> streetsync_core::Result<()> {
//! // The key comes from the Android Keystore / iOS Keychain in an app.
//! let key = StorageKey::generate()?;
//! let ws = Workspace::open("field.db", KeySource::Key(key))?;
//! ws.create_team(TeamSetup {
//!     team_name: "Streetwork Mitte".into(),
//!     member_name: "Alex".into(),
//!     areas: vec!["Hauptbahnhof".into(), "Stadtpark".into()],
//!     topics: vec![],
//!     materials: vec![],
//! })?;
//! let mut draft = ContactDraft::new(
//!     chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
//!     chrono::NaiveTime::from_hms_opt(14, 30, 0).unwrap(),
//!     "hauptbahnhof",
//! );
//! draft.note = "Talked about the night shelter.".into();
//! let contact = ws.create_contact(draft)?; // durable when this returns
//! let page = ws.list_contacts(&ContactFilter { text: Some("shelter".into()), ..Default::default() })?;
//! assert_eq!(page.items[0].id, contact.id);
//! # Ok(()) }
//! ```
//!
//! Modules are named after the domain: [`contact`], [`client`], [`team`], [`vocab`] hold the
//! records; [`crypto`] the key hierarchy; `store` the encrypted SQLite store; [`query`] lists and
//! filters; [`workspace`] the public API.

pub mod client;
pub mod contact;
pub mod crypto;
mod error;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod query;
pub mod stats;
mod store;
pub mod sync;
pub mod team;
pub mod vocab;
pub mod workspace;

pub use client::{Client, ClientDraft};
pub use contact::{
    CoarseLocation, Comment, Consent, Contact, ContactDraft, MaterialCount, Referral,
};
pub use crypto::{DeviceIdentity, StorageKey};
pub use error::{Error, Result, ValidationError};
pub use query::{ClientFilter, ClientSummary, ContactFilter, ContactPage, ContactSummary};
pub use store::OutboxEntry;
pub use store::schema::SCHEMA_VERSION;
pub use streetsync_wire::{DeviceId, RecordId, Role, TeamId};
pub use sync::{
    LiveHandle, Quarantined, SyncClient, SyncListener, SyncOptions, SyncPhase, SyncProgress,
    SyncReport, SyncStatus,
};
pub use team::{Catalog, CatalogEntry, Partner, PartnerDraft, RosterDevice, Team};
pub use workspace::{
    ChangeListener, ChangeOrigin, RecordChange, RemoteApplied, Subscription, TeamSetup, Workspace,
};

/// Automerge documents as this crate opens them, and the pre-check of a teammate's bytes
/// (`document::precheck`) that runs before Automerge sees them.
pub(crate) mod document;

/// Where the storage key comes from.
pub enum KeySource {
    /// 32 bytes from the host keystore.
    Key(StorageKey),
    /// A passphrase, stretched with PBKDF2 (salt kept in the store).
    Passphrase {
        /// The passphrase.
        passphrase: zeroize::Zeroizing<String>,
        /// PBKDF2 iterations for a new store; an existing store keeps the count it was made with.
        iterations: u32,
    },
}

impl KeySource {
    /// A passphrase with the recommended iteration count.
    pub fn passphrase(p: impl Into<String>) -> Self {
        KeySource::Passphrase {
            passphrase: zeroize::Zeroizing::new(p.into()),
            iterations: crypto::PASSPHRASE_ITERATIONS,
        }
    }
}

/// The kinds of record, each one Automerge document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A contact (Kontakt).
    Contact,
    /// A client (pseudonymous person).
    Client,
    /// The team document.
    Team,
}

impl RecordKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            RecordKind::Contact => 1,
            RecordKind::Client => 2,
            RecordKind::Team => 3,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(RecordKind::Contact),
            2 => Some(RecordKind::Client),
            3 => Some(RecordKind::Team),
            _ => None,
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Self> {
        match s {
            "contact" => Some(RecordKind::Contact),
            "client" => Some(RecordKind::Client),
            "team" => Some(RecordKind::Team),
            _ => None,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Contact => "contact",
            RecordKind::Client => "client",
            RecordKind::Team => "team",
        })
    }
}
