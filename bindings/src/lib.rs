//! # streetsync-ffi
//!
//! The uniffi bindings of `streetsync-core` for Kotlin (Android and JVM), Swift (iOS) and Python.
//! This crate is a thin wrapper: each object holds an `Arc` of the core object, records and enums
//! are plain FFI copies of the core types, and every core error becomes one [`StreetsyncError`]
//! (mapped once, in `error`).
//!
//! - [`Workspace`]: one opened, encrypted store. Its calls are blocking and fast. The object and
//!   its keys live in `workspace`; each domain adds its methods in its own module: `team` (roster,
//!   catalogs, partner directory), `contact` (contacts with referrals and consents, review, CSV
//!   export), `client`, `records` (erasure, history), `stats` (anonymous statistics) and
//!   `changes` (the [`ChangeListener`]).
//! - [`SyncClient`] (`sync`): async sync with the relay (`sync_once`, invites, `join_with_invite`,
//!   `revoke_device`) and live sync ([`LiveSync`]) with a [`SyncListener`].
//!
//! Each domain module holds its records and enums next to the methods that use them, with their
//! conversions from and to the core types. Shared by all of them: `dates` and `ids` (how dates,
//! times and ids travel as text), `mirror` (the macro that mirrors a core enum) and `runtime`. The
//! module graph has no circle: the domain modules depend on `workspace` and the shared pieces,
//! `client` also on `contact` (the vocabulary describing a person) and `sync` on `team` (roles).
//! Everything public is re-exported here, at the crate root.
//!
//! Async exports run on tokio (`async_runtime = "tokio"`), so Kotlin gets `suspend fun`, Swift
//! `async` and Python awaitables. The actual work is spawned onto one runtime owned by this library
//! (`runtime`), so live sync keeps running between calls and cancelling the caller cancels the
//! Rust task. No panic crosses the boundary: sync exports run inside a `catch_unwind` guard,
//! async work is joined and a panic becomes [`StreetsyncError::Internal`], and calls into host
//! listeners are guarded too (an exception thrown by a host listener is ignored rather than
//! tearing down the sync task).

// The uniffi scaffolding exports `extern "C"` functions with `#[no_mangle]`, which the workspace's
// `unsafe_code` lint counts as unsafe. This crate itself writes no unsafe code.
#![allow(unsafe_code)]

mod changes;
mod client;
mod contact;
mod dates;
mod error;
mod ids;
mod mirror;
mod records;
mod retention;
mod runtime;
mod stats;
mod sync;
mod team;
mod workspace;

pub use changes::{
    ChangeListener, ChangeOrigin, ChangeSubscription, RecordChange, RecordKind, StoreSnapshot,
};
pub use client::{Client, ClientDraft, ClientFilter, ClientSummary, new_client_draft};
pub use contact::{
    AgeBand, CoarseLocation, Comment, CommentKind, Consent, Contact, ContactDraft, ContactFilter,
    ContactPage, ContactSummary, Gender, Housing, Intervention, MaterialCount, Referral,
    ReferralOutcome, RetentionClass, ReviewState, Setting, new_contact_draft,
};
pub use error::StreetsyncError;
pub use records::HistoryEntry;
pub use retention::{DueRecord, RetentionAudit, RetentionMode, RetentionPolicy};
pub use stats::{StatCell, StatRow, StatTable, Statistics};
pub use sync::{
    Invite, LiveSync, Quarantined, SyncClient, SyncListener, SyncPhase, SyncProgress, SyncReport,
    SyncStatus,
};
pub use team::{Catalog, CatalogEntry, Partner, PartnerDraft, Role, RosterDevice, Team, TeamSetup};
pub use workspace::{Workspace, generate_storage_key};

uniffi::setup_scaffolding!("streetsync");

/// Result of every fallible export.
pub type Result<T, E = StreetsyncError> = std::result::Result<T, E>;

/// The version of the streetsync library (`0.1.0`).
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
