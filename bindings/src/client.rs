//! Clients: pseudonymous persons followed across visits (code, alias, age band, gender, consents,
//! notes), with the `Workspace` methods that write and read them.
//!
//! A client record never holds a legal name; the code (`MA-1987-K`) links it to contacts. The age
//! band, gender and consent types are the contact module's, since both records describe a person
//! with the same vocabulary.

use streetsync_core as sc;

use crate::Result;
use crate::contact::{AgeBand, Consent, Gender};
use crate::error::guard;
use crate::ids::record_id;
use crate::workspace::Workspace;

/// What a worker enters for a client.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientDraft {
    /// Pseudonymous code, unique in the team (letters, digits and `-`, e.g. `MA-1987-K`).
    pub code: String,
    /// A nickname colleagues recognise (optional, never the legal name).
    #[uniffi(default = None)]
    pub alias: Option<String>,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Consents given by the client.
    #[uniffi(default = [])]
    pub consents: Vec<Consent>,
    /// Notes about the person across visits.
    #[uniffi(default = "")]
    pub notes: String,
}

impl From<sc::ClientDraft> for ClientDraft {
    fn from(d: sc::ClientDraft) -> Self {
        Self {
            code: d.code,
            alias: d.alias,
            age_band: d.age_band.into(),
            gender: d.gender.into(),
            consents: d.consents.into_iter().map(Into::into).collect(),
            notes: d.notes,
        }
    }
}

impl ClientDraft {
    /// Parses the consents' dates (errors name `consents[i]`); the core validates the rest.
    fn into_core(self) -> Result<sc::ClientDraft> {
        Ok(sc::ClientDraft {
            consents: self
                .consents
                .into_iter()
                .enumerate()
                .map(|(i, c)| c.into_core(&format!("consents[{i}]")))
                .collect::<Result<Vec<_>>>()?,
            code: self.code,
            alias: self.alias,
            age_band: self.age_band.into(),
            gender: self.gender.into(),
            notes: self.notes,
        })
    }
}

/// A client as read back.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Client {
    /// Record id.
    pub id: String,
    /// The editable fields.
    pub fields: ClientDraft,
    /// Device id of the worker who created it.
    pub author: String,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last change.
    pub updated_at_ms: i64,
}

impl From<sc::Client> for Client {
    fn from(c: sc::Client) -> Self {
        Self {
            id: c.id.to_string(),
            fields: c.fields.into(),
            author: c.author,
            created_at_ms: c.created_at,
            updated_at_ms: c.updated_at,
        }
    }
}

/// What a list shows of a client.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientSummary {
    /// Record id.
    pub id: String,
    /// Pseudonymous code.
    pub code: String,
    /// Nickname.
    pub alias: Option<String>,
    /// Age band.
    pub age_band: AgeBand,
    /// Gender.
    pub gender: Gender,
    /// Consents in force.
    pub active_consents: u32,
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
}

impl From<sc::ClientSummary> for ClientSummary {
    fn from(c: sc::ClientSummary) -> Self {
        Self {
            id: c.id.to_string(),
            code: c.code,
            alias: c.alias,
            age_band: c.age_band.into(),
            gender: c.gender.into(),
            active_consents: c.active_consents,
            updated_at_ms: c.updated_at,
        }
    }
}

/// Filters for listing clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientFilter {
    /// Codes or aliases containing this text (case-insensitive).
    #[uniffi(default = None)]
    pub text: Option<String>,
}

impl From<ClientFilter> for sc::ClientFilter {
    fn from(f: ClientFilter) -> Self {
        sc::ClientFilter { text: f.text }
    }
}

/// A client draft with just a pseudonymous code (`MA-1987-K`); everything else unknown or empty.
#[uniffi::export]
pub fn new_client_draft(code: String) -> ClientDraft {
    sc::ClientDraft::new(code).into()
}

#[uniffi::export]
impl Workspace {
    /// Creates a client record (pseudonymous code, consents). Blocking, fast.
    pub fn create_client(&self, draft: ClientDraft) -> Result<Client> {
        guard(|| Ok(self.inner.create_client(draft.into_core()?)?.into()))
    }

    /// Replaces a client's fields; notes merge by character. Blocking, fast.
    pub fn update_client(&self, id: String, draft: ClientDraft) -> Result<Client> {
        guard(|| {
            let id = record_id(&id)?;
            Ok(self.inner.update_client(id, draft.into_core()?)?.into())
        })
    }

    /// One client. Blocking, fast.
    pub fn get_client(&self, id: String) -> Result<Client> {
        guard(|| Ok(self.inner.get_client(record_id(&id)?)?.into()))
    }

    /// Lists clients matching `filter`, by code. Blocking, fast.
    pub fn list_clients(&self, filter: ClientFilter) -> Result<Vec<ClientSummary>> {
        guard(|| {
            Ok(self
                .inner
                .list_clients(&filter.into())?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Deletes a client record; the deletion syncs to the team. Blocking, fast.
    pub fn delete_client(&self, id: String) -> Result<()> {
        guard(|| Ok(self.inner.delete_client(record_id(&id)?)?))
    }
}
