//! The client record: a pseudonymous person followed across visits and workers.
//!
//! A client is known by a code (letters of the name plus birth year, for example), never by a real
//! name by default. Consents to pass data on live here, because they belong to the person, not to
//! a single contact.

use serde::{Deserialize, Serialize};
use streetsync_wire::RecordId;

use crate::error::{Result, ValidationError};
use crate::model::contact::{Consent, validate_client_code};
use crate::model::vocab::{AgeBand, Gender};

/// Schema version written into every Client document.
pub const CLIENT_SCHEMA_VERSION: u64 = 1;
/// Longest client note accepted.
pub const MAX_CLIENT_NOTE_CHARS: usize = 10_000;

/// What a worker enters for a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDraft {
    /// Pseudonymous code, unique in the team.
    pub code: String,
    /// A nickname colleagues recognise (optional, never the legal name).
    pub alias: Option<String>,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Consents given by the client.
    pub consents: Vec<Consent>,
    /// Notes about the person across visits. Merges by character.
    pub notes: String,
}

impl ClientDraft {
    /// A draft with just a code.
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            alias: None,
            age_band: AgeBand::Unknown,
            gender: Gender::Unknown,
            consents: Vec::new(),
            notes: String::new(),
        }
    }

    /// Checks code shape, lengths and consents.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_client_code("code", &self.code)?;
        if let Some(a) = &self.alias
            && a.chars().count() > 100
        {
            return Err(ValidationError::new("alias", "the limit is 100 characters"));
        }
        let n = self.notes.chars().count();
        if n > MAX_CLIENT_NOTE_CHARS {
            return Err(ValidationError::new(
                "notes",
                format!("is {n} characters long; the limit is {MAX_CLIENT_NOTE_CHARS}"),
            ));
        }
        for (i, c) in self.consents.iter().enumerate() {
            c.validate(&format!("consents[{i}]"))?;
        }
        Ok(())
    }
}

/// A client as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Record id.
    pub id: RecordId,
    /// The editable fields.
    pub fields: ClientDraft,
    /// Device id of the worker who created it.
    pub author: String,
    /// Unix milliseconds of creation.
    pub created_at: i64,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
}
