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
//! ## Layers
//! The crate is built in layers; a module imports only from layers below it (a test in
//! `core/tests/layers.rs` fails otherwise, and on any import circle):
//!
//! | layer | modules | job |
//! |---|---|---|
//! | leaves | `kinds`, `clock`, `error`, `crypto` | record kinds, the wall clock, the one error type, keys and sealing |
//! | records | `model` | drafts, records and validation, plain Rust |
//! | documents | `doc` | the Automerge mapping; `doc::foreign` is the only way in for a teammate's bytes |
//! | queries | `query` | projections, filters, statistics with suppression, CSV |
//! | storage | `store` | the encrypted SQLite store, one file per table group |
//! | engine | `engine` | local writes, remote apply with authorship and role rules, team keys, history, events |
//! | facade | `workspace` | [`Workspace`], each method delegating to the engine |
//! | network | `sync` | push, pull, quarantine, compaction, live, relay client, membership |
//!
//! Everything public is re-exported below; the modules themselves are private, so each item has
//! one path. Test hooks live in `testing`, only with the `testing` cargo feature.

#![warn(unreachable_pub)]

mod allocator;
mod clock;
mod crypto;
mod doc;
mod engine;
mod error;
mod kinds;
mod model;
mod query;
mod store;
mod sync;
mod workspace;

#[cfg(feature = "testing")]
pub mod testing;

pub use allocator::tune_host_allocator;
pub use crypto::{
    DeviceIdentity, KeySource, PASSPHRASE_ITERATIONS, StorageKey, TeamKey, seal_to_device,
};
pub use engine::events::{ChangeListener, ChangeOrigin, RecordChange, Subscription};
pub use engine::history::HistoryEntry;
pub use engine::remote::{QuarantineReason, Quarantined, RemoteApplied};
pub use engine::team::TeamSetup;
pub use error::{Error, Result, ValidationError};
pub use kinds::RecordKind;
pub use model::client::{CLIENT_SCHEMA_VERSION, Client, ClientDraft, MAX_CLIENT_NOTE_CHARS};
pub use model::contact::{
    CONTACT_SCHEMA_VERSION, CoarseLocation, Comment, Consent, Contact, ContactDraft,
    MAX_CLIENT_CODE_CHARS, MAX_COMMENT_CHARS, MAX_MATERIAL_COUNT, MAX_NOTE_CHARS, MAX_PERSONS,
    MAX_PLACE_CHARS, MaterialCount, Referral, validate_client_code,
};
pub use model::retention::{
    DueRecord, MAX_RETENTION_DAYS, ReportedPeriod, RetentionAudit, RetentionMode, RetentionPolicy,
    RetentionTrigger,
};
pub use model::team::{
    Catalog, CatalogEntry, DEFAULT_MATERIALS, DEFAULT_TOPICS, EpochCommitment,
    MAX_PARTNER_NOTE_CHARS, Partner, PartnerDraft, Revocation, RosterDevice, TEAM_SCHEMA_VERSION,
    Team, entries_from_names, slug,
};
pub use model::vocab::{
    AgeBand, CommentKind, Gender, Housing, Intervention, ReferralOutcome, RetentionClass,
    ReviewState, Setting,
};
pub use query::export::{CONTACT_COLUMNS, ContactExport, write_contacts, write_statistics};
pub use query::stats::{
    Cell, Dimension, Disclosure, MAX_RANGE_DAYS, MonthArea, Row, SECONDARY_SUPPRESSED,
    SUPPRESS_BELOW, SUPPRESSED, Statistics, StatsError, StatsQuery, Suppression, Table,
    compute_from,
};
pub use query::{
    ClientFilter, ClientSummary, ContactFilter, ContactPage, ContactSummary, DEFAULT_PAGE, MAX_PAGE,
};
pub use store::OutboxEntry;
pub use store::schema::SCHEMA_VERSION;
pub use streetsync_wire::{DeviceId, ErrorCode, InviteId, RecordId, Role, TeamId};
pub use sync::{
    Invite, LiveHandle, MAX_INVITE_TTL_SECS, OpenInvite, SecurityAlert, SyncClient, SyncListener,
    SyncOptions, SyncPhase, SyncProgress, SyncReport, SyncStatus,
};
pub use workspace::Workspace;
