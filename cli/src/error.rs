//! One error type for the terminal, with the exit code a script can act on.
//!
//! Core errors are mapped here, once: invalid input 2, not allowed 3, not found 4, relay
//! unreachable 5, wrong key 6, everything else 1. The message is one line on stderr.

use streetsync_core::{Error, ErrorCode};

/// Exit code: any other failure.
pub const EXIT_OTHER: u8 = 1;
/// Exit code: the input was refused; nothing changed.
pub const EXIT_INVALID: u8 = 2;
/// Exit code: the role or state does not allow it.
pub const EXIT_NOT_ALLOWED: u8 = 3;
/// Exit code: no such record.
pub const EXIT_NOT_FOUND: u8 = 4;
/// Exit code: the relay could not be reached.
pub const EXIT_OFFLINE: u8 = 5;
/// Exit code: the passphrase does not open the store.
pub const EXIT_WRONG_KEY: u8 = 6;

/// A failure as the terminal shows it.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// One line for a person.
    pub message: String,
}

impl CliError {
    /// Invalid input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_INVALID,
            message: message.into(),
        }
    }

    /// Not allowed.
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_NOT_ALLOWED,
            message: message.into(),
        }
    }

    /// Not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_NOT_FOUND,
            message: message.into(),
        }
    }

    /// Any other failure.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_OTHER,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Invalid(_) => EXIT_INVALID,
            Error::NotAllowed(_) | Error::NoTeam | Error::AlreadyInTeam => EXIT_NOT_ALLOWED,
            Error::NotFound { .. } => EXIT_NOT_FOUND,
            Error::Offline(_) => EXIT_OFFLINE,
            Error::WrongKey => EXIT_WRONG_KEY,
            Error::Relay { code, .. } => match code {
                ErrorCode::Revoked
                | ErrorCode::NotLead
                | ErrorCode::UnknownDevice
                | ErrorCode::WrongTeam
                | ErrorCode::Unauthenticated => EXIT_NOT_ALLOWED,
                ErrorCode::NotFound => EXIT_NOT_FOUND,
                ErrorCode::FoundingClosed => EXIT_NOT_ALLOWED,
                ErrorCode::BadRequest
                | ErrorCode::OutOfRange
                | ErrorCode::InviteUsed
                | ErrorCode::InviteExpired
                | ErrorCode::TooLarge => EXIT_INVALID,
                _ => EXIT_OTHER,
            },
            _ => EXIT_OTHER,
        };
        let message = match &e {
            Error::WrongKey => {
                "the passphrase does not open this store (check STREETSYNC_PASSPHRASE or --passphrase-file)"
                    .to_owned()
            }
            Error::NoTeam => {
                "this store is not in a team yet: run `streetsync init` (new team) or `streetsync join CODE`"
                    .to_owned()
            }
            Error::Offline(why) => format!(
                "the relay cannot be reached ({why}); your work is saved here and will be sent at the next sync"
            ),
            other => other.to_string(),
        };
        Self {
            code,
            message: message.replace('\n', " "),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::other(format!("file error: {e}"))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        Self::other(format!("JSON error: {e}"))
    }
}

/// Result of a command.
pub type CliResult<T> = Result<T, CliError>;
