//! The one error type of the core crate.
//!
//! Every failure a caller can act on has its own variant, so the FFI and CLI edges can map them
//! once into messages a person understands. Storage, crypto and CRDT internals are wrapped here and
//! never leak as foreign error types.

use streetsync_wire::{ErrorCode, RecordId};

use crate::kinds::RecordKind;

/// Result type of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an input was refused. Names the field so a form can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The field, as a dotted path (`materials[naloxone].count`).
    pub field: String,
    /// What is wrong and, where it helps, what would be accepted.
    pub reason: String,
}

impl ValidationError {
    /// Builds a validation error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage key (or passphrase) does not open this store. Nothing is damaged.
    #[error("the storage key or passphrase does not open this store")]
    WrongKey,
    /// Stored bytes failed authentication or decoding: the file was damaged or tampered with.
    #[error("stored data is damaged ({what}); the rest of the store is still readable")]
    Corrupt {
        /// Which item is damaged, without revealing its content.
        what: String,
    },
    /// An input was refused; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// The record does not exist (or was erased).
    #[error("{kind} {id} not found")]
    NotFound {
        /// What kind of record was asked for.
        kind: RecordKind,
        /// Its id.
        id: RecordId,
    },
    /// The store has no team yet; most operations need the team's catalogs and keys.
    #[error("this device is not in a team yet: create a team or join one with an invite")]
    NoTeam,
    /// The store already belongs to a team.
    #[error("this device already belongs to a team")]
    AlreadyInTeam,
    /// The caller's role does not allow the operation (for example a worker approving a review).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The store file was written by a newer version of streetsync.
    #[error(
        "the store has schema version {found}, newer than this app supports ({supported}); update the app"
    )]
    SchemaTooNew {
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The device's database failed (disk full, read-only file, locked, I/O error). The text is
    /// the database's own description; the database library's error type stays inside the crate.
    #[error("storage failure: {0}")]
    Storage(String),
    /// File-system failure outside SQLite.
    #[error("file failure: {0}")]
    Io(#[from] std::io::Error),
    /// An Automerge document could not be read or changed.
    #[error("document failure: {0}")]
    Document(String),
    /// A cryptographic operation failed unexpectedly (not a wrong key and not damaged data).
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
    /// An invariant of this crate failed (an encoding that cannot fail did, a worker task
    /// panicked). A bug to report, never the user's fault.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The relay could not be reached; local work is unaffected and sync will retry.
    #[error("relay unreachable: {0}")]
    Offline(String),
    /// The relay refused a request.
    #[error("relay refused the request ({code}): {message}")]
    Relay {
        /// The relay's error code; [`ErrorCode::Unknown`] for a code from a newer relay.
        code: ErrorCode,
        /// The relay's message.
        message: String,
    },
    /// Remote changes depend on earlier changes this device has not received yet; they are kept
    /// and applied once those arrive.
    #[error("changes for record {id} depend on changes not received yet")]
    MissingDependencies {
        /// The record.
        id: RecordId,
    },
    /// An erasure is committed (the record is gone from every query, its tombstone queued), but
    /// its old bytes may still be in the store's files: another connection to the database (a
    /// second process, a backup) kept the checkpoint from running to the end. The wipe is retried
    /// by every later write and at the next open; ask again to learn when it is done.
    #[error(
        "the record is erased, but its old bytes are not yet wiped from the store's files \
         (another program holds the database open); the wipe is retried automatically"
    )]
    ErasurePending,
    /// The relay or a teammate sent something that does not follow the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Document(e.to_string())
    }
}

impl From<autosurgeon::HydrateError> for Error {
    fn from(e: autosurgeon::HydrateError) -> Self {
        Error::Document(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for Error {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        Error::Document(e.to_string())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
