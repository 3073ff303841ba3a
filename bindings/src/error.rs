//! The one public error of the bindings, and the one place where core errors are mapped to it.
//!
//! The core's `Error` is rich (SQLite, Automerge, relay codes); apps need a handful of cases they
//! can act on. Each variant says what the person can do; storage, crypto and CRDT details only
//! travel as the `detail` sentence. Kotlin sees `StreetsyncException.<Variant>`, Swift
//! `StreetsyncError.<variant>`, Python `StreetsyncError.<Variant>`.

use streetsync_core as sc;

/// Everything that can go wrong, as the host app sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum StreetsyncError {
    /// The storage key or passphrase does not open this store. Nothing was changed: ask for the
    /// passphrase again (or restore the key from the keystore).
    #[error("the storage key or passphrase does not open this store")]
    WrongKey,
    /// An input was refused and nothing was written. `field` names it as a dotted path
    /// (`materials[naloxone].count`, `referrals[0].consent.scope`) so a form can point at it.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field, as a dotted path.
        field: String,
        /// What is wrong and, where it helps, what would be accepted.
        reason: String,
    },
    /// The record does not exist on this device (or was deleted or erased).
    #[error("{what} {id} not found")]
    NotFound {
        /// What was asked for (`contact`, `client`, `team`).
        what: String,
        /// Its id.
        id: String,
    },
    /// This device is not (yet) a member of a team: create a team, or have a lead add the device
    /// and join.
    #[error("not a member: {detail}")]
    NotAMember {
        /// What is missing.
        detail: String,
    },
    /// A lead removed this device from the team; it can no longer sync.
    #[error("this device was removed from the team: {detail}")]
    Revoked {
        /// The relay's message.
        detail: String,
    },
    /// The device's role does not allow this (for example a worker approving a review).
    #[error("not allowed: {detail}")]
    NotAllowed {
        /// What is not allowed, and who may do it.
        detail: String,
    },
    /// The relay cannot be reached (or is busy). Local work is safe; sync again later.
    #[error("offline: {detail}")]
    Offline {
        /// Why.
        detail: String,
    },
    /// The operation conflicts with the current state (already in a team, a device already
    /// added, changes waiting for earlier ones). Refresh and try again.
    #[error("conflict: {detail}")]
    Conflict {
        /// What conflicts.
        detail: String,
    },
    /// Stored data is damaged or was tampered with; the rest of the store is still readable.
    #[error("damaged data: {detail}")]
    Corrupt {
        /// Which item, without revealing its content.
        detail: String,
    },
    /// The device storage failed (disk full, read-only, locked) or the store was written by a newer
    /// app version (update the app).
    #[error("storage failure: {detail}")]
    Storage {
        /// The failure.
        detail: String,
    },
    /// The relay or a teammate's device sent something unexpected; update the app or report it.
    #[error("protocol error: {detail}")]
    Protocol {
        /// The failure.
        detail: String,
    },
    /// A bug in streetsync (including a caught panic); please report it.
    #[error("internal error: {detail}")]
    Internal {
        /// The failure.
        detail: String,
    },
    /// The erasure is committed (the record is gone and its tombstone queued), but its old bytes
    /// are not yet wiped from the store's files because another connection holds the database
    /// open. The wipe is retried automatically; do not tell the user it is done yet.
    #[error("erasure not yet wiped: {detail}")]
    ErasurePending {
        /// Why.
        detail: String,
    },
}

impl From<sc::Error> for StreetsyncError {
    fn from(e: sc::Error) -> Self {
        let detail = e.to_string();
        match e {
            sc::Error::WrongKey => StreetsyncError::WrongKey,
            sc::Error::Invalid(v) => StreetsyncError::InvalidInput {
                field: v.field,
                reason: v.reason,
            },
            sc::Error::NotFound { kind, id } => StreetsyncError::NotFound {
                what: kind.to_string(),
                id: id.to_string(),
            },
            sc::Error::NoTeam => StreetsyncError::NotAMember { detail },
            sc::Error::AlreadyInTeam => StreetsyncError::Conflict { detail },
            sc::Error::NotAllowed(d) => StreetsyncError::NotAllowed { detail: d },
            sc::Error::Corrupt { .. } => StreetsyncError::Corrupt { detail },
            sc::Error::SchemaTooNew { .. } | sc::Error::Storage(_) | sc::Error::Io(_) => {
                StreetsyncError::Storage { detail }
            }
            sc::Error::Document(_) | sc::Error::Crypto(_) | sc::Error::Internal(_) => {
                StreetsyncError::Internal { detail }
            }
            sc::Error::Offline(d) => StreetsyncError::Offline { detail: d },
            sc::Error::ErasurePending => StreetsyncError::ErasurePending { detail },
            sc::Error::MissingDependencies { .. } => StreetsyncError::Conflict { detail },
            sc::Error::Protocol(_) => StreetsyncError::Protocol { detail },
            sc::Error::Relay { code, message } => match code {
                sc::ErrorCode::Revoked => StreetsyncError::Revoked { detail: message },
                sc::ErrorCode::UnknownDevice | sc::ErrorCode::WrongTeam => {
                    StreetsyncError::NotAMember { detail: message }
                }
                sc::ErrorCode::NotLead
                | sc::ErrorCode::InviteExpired
                | sc::ErrorCode::FoundingClosed => StreetsyncError::NotAllowed { detail: message },
                sc::ErrorCode::TeamExists
                | sc::ErrorCode::DeviceExists
                | sc::ErrorCode::InviteUsed => StreetsyncError::Conflict { detail: message },
                sc::ErrorCode::StorageUnavailable => StreetsyncError::Offline {
                    detail: format!(
                        "the relay's database is unavailable, try again shortly ({message})"
                    ),
                },
                sc::ErrorCode::RateLimited
                | sc::ErrorCode::QuotaExceeded
                | sc::ErrorCode::ErasurePending => StreetsyncError::Offline {
                    detail: format!("the relay is busy, try again shortly ({message})"),
                },
                sc::ErrorCode::ClockSkew => StreetsyncError::Protocol {
                    detail: format!("check the device clock: {message}"),
                },
                _ => StreetsyncError::Protocol { detail },
            },
        }
    }
}

impl StreetsyncError {
    /// An internal error from a caught panic's payload.
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        StreetsyncError::Internal {
            detail: format!("streetsync panicked: {what}"),
        }
    }
}

/// An [`StreetsyncError::InvalidInput`] for `field`; the date, id and filter parsers name the field
/// they were parsing with it.
pub(crate) fn invalid(field: &str, reason: String) -> StreetsyncError {
    StreetsyncError::InvalidInput {
        field: field.to_owned(),
        reason,
    }
}

/// Runs `f`, turning a panic into [`StreetsyncError::Internal`] so no panic crosses the FFI
/// boundary as an untyped failure. (uniffi would also catch it, as a generic internal error.)
pub(crate) fn guard<T>(
    f: impl FnOnce() -> Result<T, StreetsyncError>,
) -> Result<T, StreetsyncError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(StreetsyncError::from_panic(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_actionable_variants() {
        let v: StreetsyncError =
            sc::Error::from(sc::ValidationError::new("materials[x].count", "negative")).into();
        assert_eq!(
            v,
            StreetsyncError::InvalidInput {
                field: "materials[x].count".into(),
                reason: "negative".into()
            }
        );
        assert_eq!(
            StreetsyncError::from(sc::Error::WrongKey),
            StreetsyncError::WrongKey
        );
        assert!(matches!(
            StreetsyncError::from(sc::Error::NoTeam),
            StreetsyncError::NotAMember { .. }
        ));
        assert!(matches!(
            StreetsyncError::from(sc::Error::Relay {
                code: sc::ErrorCode::Revoked,
                message: "gone".into()
            }),
            StreetsyncError::Revoked { .. }
        ));
        assert!(matches!(
            StreetsyncError::from(sc::Error::Offline("down".into())),
            StreetsyncError::Offline { .. }
        ));
    }

    #[test]
    fn panics_become_internal_errors() {
        let r: Result<(), _> = guard(|| panic!("boom"));
        match r {
            Err(StreetsyncError::Internal { detail }) => assert!(detail.contains("boom")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
