//! The audit history of a record, read from its Automerge changes: every change's actor starts
//! with the author's device id, which remote apply checks against the signed envelope.

use streetsync_wire::{DeviceId, RecordId};

use crate::error::{Error, Result};
use crate::kinds::RecordKind;

use super::Engine;

/// One change in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// When, unix milliseconds (the author's clock, second precision).
    pub at_ms: i64,
    /// The device that made the change.
    pub device: Option<DeviceId>,
    /// The roster name of that device's member, when known.
    pub member: Option<String>,
    /// Top-level fields the change touched (`note`, `review`, `materials`...).
    pub fields: Vec<String>,
    /// What the change was (`create`, `edit contact`, `approve`...).
    pub message: String,
}

impl Engine {
    /// Who changed which field of a record, when and from which device, oldest first. Derived
    /// from the Automerge history: every change's actor starts with the author's device id, which
    /// sync checks against the signed envelope that carried the change.
    pub(crate) fn history(&self, id: RecordId) -> Result<Vec<HistoryEntry>> {
        let team = self.team().ok();
        self.store.read(|r| {
            let (_, mut doc) = r.doc(&id)?.ok_or(Error::NotFound {
                kind: RecordKind::Contact,
                id,
            })?;
            // The stored document holds teammates' bytes, and Automerge 0.12 panics reading the
            // change graph of some that it loads without complaint
            // (`fuzz/regressions/document/history-get_changes-collector-753.automerge`): such a
            // record's history is reported damaged instead of taking the app down.
            crate::doc::foreign::guard(id, move || entries(&mut doc, team.as_ref())).map_err(|_| {
                Error::Corrupt {
                    what: format!("history of record {id}"),
                }
            })
        })
    }
}

/// The history entries of a document, oldest first.
fn entries(
    doc: &mut automerge::AutoCommit,
    team: Option<&crate::model::team::Team>,
) -> Vec<HistoryEntry> {
    type Meta = (
        automerge::ChangeHash,
        Vec<automerge::ChangeHash>,
        Vec<u8>,
        i64,
        Option<String>,
    );
    let changes: Vec<Meta> = doc
        .get_changes(&[])
        .iter()
        .map(|c| {
            (
                c.hash(),
                c.deps().to_vec(),
                c.actor_id().to_bytes().to_vec(),
                c.timestamp(),
                c.message().map(str::to_owned),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (hash, deps, actor, ts, message) in changes {
        let mut fields: Vec<String> = doc
            .diff(&deps, &[hash])
            .into_iter()
            .filter_map(|p| match p.path.first() {
                Some((_, automerge::Prop::Map(k))) => Some(k.clone()),
                Some(_) => None,
                None => match &p.action {
                    automerge::PatchAction::PutMap { key, .. }
                    | automerge::PatchAction::DeleteMap { key } => Some(key.clone()),
                    _ => None,
                },
            })
            .filter(|k| !matches!(k.as_str(), "updated_at" | "schema_version" | "kind" | "id"))
            .collect();
        fields.sort();
        fields.dedup();
        let device = actor
            .get(..16)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(DeviceId::from_bytes);
        let member = device.and_then(|d| team.and_then(|t| t.device(&d)).map(|d| d.member.clone()));
        out.push(HistoryEntry {
            at_ms: ts * 1000,
            device,
            member,
            fields,
            message: message.unwrap_or_default(),
        });
    }
    out
}
