//! The Client document's Automerge mapping; notes are `Text` and merge by character.

use autosurgeon::{Hydrate, Reconcile, Text};
use streetsync_wire::RecordId;

use crate::doc::contact::{ConsentDoc, consent_doc, consent_from_doc};
use crate::error::{Error, Result};
use crate::model::client::*;
use crate::model::vocab::{AgeBand, Gender};

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub(crate) struct ClientDoc {
    schema_version: u64,
    kind: String,
    id: String,
    code: String,
    alias: Option<String>,
    age_band: AgeBand,
    gender: Gender,
    consents: Vec<ConsentDoc>,
    notes: Text,
    author: String,
    created_at: i64,
    updated_at: i64,
}

impl ClientDoc {
    pub(crate) fn new(id: RecordId, d: &ClientDraft, author: &str, now: i64) -> Self {
        let mut doc = ClientDoc {
            schema_version: CLIENT_SCHEMA_VERSION,
            kind: "client".into(),
            id: id.to_string(),
            code: String::new(),
            alias: None,
            age_band: AgeBand::Unknown,
            gender: Gender::Unknown,
            consents: Vec::new(),
            notes: Text::default(),
            author: author.to_owned(),
            created_at: now,
            updated_at: now,
        };
        doc.apply(d, now);
        doc
    }

    pub(crate) fn apply(&mut self, d: &ClientDraft, now: i64) {
        self.code = d.code.clone();
        self.alias = d.alias.clone();
        self.age_band = d.age_band;
        self.gender = d.gender;
        self.consents = d.consents.iter().map(consent_doc).collect();
        if self.notes.as_str() != d.notes {
            self.notes.update(&d.notes);
        }
        self.updated_at = now;
    }

    pub(crate) fn to_client(&self) -> Result<Client> {
        Ok(Client {
            id: self.id.parse().map_err(|_| Error::Corrupt {
                what: "client document: id".into(),
            })?,
            fields: ClientDraft {
                code: self.code.clone(),
                alias: self.alias.clone(),
                age_band: self.age_band,
                gender: self.gender,
                consents: self
                    .consents
                    .iter()
                    .map(consent_from_doc)
                    .collect::<Result<_>>()?,
                notes: self.notes.as_str().to_owned(),
            },
            author: self.author.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
