//! The in-memory cache of decrypted projections and the team, loaded once and kept current by
//! every write, so listing and filtering never open an Automerge document.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use streetsync_wire::RecordId;
use zeroize::Zeroizing;

use super::document_format;
use super::projection_format::{self, Decoded};
use super::{Writer, record_id};
use crate::crypto::{Purpose, Sealer};
use crate::error::{Error, Result};
use crate::kinds::RecordKind;
use crate::model::team::Team;
use crate::query::{ClientSummary, ContactRow, ContactSummary, SharedIds};

/// Decrypted projections and the team, kept in memory so listing never touches Automerge.
#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) contacts: HashMap<RecordId, ContactRow>,
    /// The ids the contact rows share (areas, topics, materials, partners, authors).
    pub(crate) ids: SharedIds,
    pub(crate) clients: HashMap<RecordId, ClientSummary>,
    /// Shared, because every envelope of a pull page checks its author against it.
    pub(crate) team: Option<std::sync::Arc<Team>>,
    /// Records whose stored projection or document failed to open.
    pub(crate) damaged: Vec<RecordId>,
}

pub(super) enum CacheUpdate {
    Contact(RecordId, Box<ContactSummary>),
    Client(RecordId, ClientSummary),
    Team(Box<Team>),
    Remove(RecordId),
}

/// A projection to write next to a document.
pub(crate) enum Projection {
    Contact(Box<ContactSummary>),
    Client(ClientSummary),
}

/// A contact's projection computed from its stored document, or `None` if it does not open.
pub(super) fn contact_from_document(
    conn: &Connection,
    sealer: &Sealer,
    id_bytes: &[u8],
) -> Option<ContactSummary> {
    let body: Vec<u8> = conn
        .query_row(
            "SELECT body FROM documents WHERE id = ?1 AND kind = ?2",
            params![id_bytes, RecordKind::Contact.code()],
            |r| r.get(0),
        )
        .ok()?;
    let plain = document_format::open(
        sealer,
        RecordKind::Contact.code(),
        id_bytes,
        &body,
        String::new,
    )
    .ok()?;
    let doc = crate::doc::load(&plain).ok()?;
    let d: crate::doc::contact::ContactDoc = autosurgeon::hydrate(&doc).ok()?;
    Some(ContactSummary::of(&d.to_contact().ok()?))
}

/// Writes a rebuilt projection back in place (best effort: a failure only means it is rebuilt
/// again at the next load).
pub(super) fn rewrite_projection(
    conn: &Connection,
    sealer: &Sealer,
    id_bytes: &[u8],
    s: &ContactSummary,
) -> Result<()> {
    let bytes = Zeroizing::new(projection_format::encode_contact(s)?);
    let body = sealer.seal(
        Purpose::Projection,
        RecordKind::Contact.code(),
        id_bytes,
        &bytes,
    )?;
    conn.execute(
        "UPDATE projections SET body = ?1 WHERE id = ?2",
        params![body, id_bytes],
    )?;
    Ok(())
}

pub(super) fn load_cache(conn: &Connection, sealer: &Sealer) -> Result<Cache> {
    let mut cache = Cache::default();
    let mut stmt = conn.prepare_cached("SELECT id, kind, body FROM projections")?;
    let mut rows = stmt.query([])?;
    let mut rebuilt: Vec<(Vec<u8>, ContactSummary)> = Vec::new();
    while let Some(row) = rows.next()? {
        let id_bytes: Vec<u8> = row.get(0)?;
        let kind: u8 = row.get(1)?;
        let body: Vec<u8> = row.get(2)?;
        let Ok(id) = record_id(&id_bytes) else {
            continue;
        };
        let opened = sealer.open(Purpose::Projection, kind, &id_bytes, &body, String::new);
        let ok = match (RecordKind::from_code(kind), opened) {
            (Some(RecordKind::Contact), Ok(p)) => {
                // Format 1 is left to migration 0007 (only a store opened at an older schema
                // still has it). One that does not decode (format 1 from before the retention
                // class, one field short) is rebuilt from the document and written back once.
                let summary = match projection_format::decode_contact(id, &p) {
                    Some(Decoded::Current(s) | Decoded::Format1(s)) => Some(s),
                    None => contact_from_document(conn, sealer, &id_bytes).inspect(|s| {
                        rebuilt.push((id_bytes.clone(), s.clone()));
                    }),
                };
                summary
                    .map(|s| {
                        let row = ContactRow::new(s, &mut cache.ids);
                        cache.contacts.insert(id, row);
                    })
                    .is_some()
            }
            (Some(RecordKind::Client), Ok(p)) => postcard::from_bytes::<ClientSummary>(&p)
                .map(|s| {
                    cache.clients.insert(id, s);
                })
                .is_ok(),
            _ => false,
        };
        if !ok {
            cache.damaged.push(id);
        }
    }
    drop(rows);
    drop(stmt);
    // Written back once the table is read, in one transaction; if that fails (another process
    // holds the write lock), the next load tries again.
    if !rebuilt.is_empty()
        && let Ok(tx) = conn.unchecked_transaction()
    {
        let all = rebuilt
            .iter()
            .all(|(id_bytes, s)| rewrite_projection(&tx, sealer, id_bytes, s).is_ok());
        if all {
            let _ = tx.commit();
        }
    }
    // The team document is the one named in meta, never just any document of kind team.
    let team_row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT d.id, d.body FROM documents d JOIN meta m ON m.key = 'team_doc_id' AND m.value = d.id
             WHERE d.kind = ?1",
            [RecordKind::Team.code()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, body)) = team_row {
        let plain = document_format::open(sealer, RecordKind::Team.code(), &id, &body, || {
            "team document".into()
        })?;
        let doc = crate::doc::load(&plain)?;
        let team: crate::doc::team::TeamDoc = autosurgeon::hydrate(&doc)?;
        cache.team = Some(std::sync::Arc::new(team.to_team()?));
    }
    Ok(cache)
}

impl Writer<'_> {
    /// The cache as of the start of this transaction (updates apply after commit).
    pub(crate) fn cache(&self) -> &Cache {
        self.cache
    }

    /// Saves a record's projection, sealed, and schedules the cache update.
    pub(crate) fn put_projection(&mut self, id: &RecordId, projection: Projection) -> Result<()> {
        let (kind, bytes) = match &projection {
            Projection::Contact(s) if !self.writes_compact_records() => (
                RecordKind::Contact,
                postcard::to_stdvec(s.as_ref())
                    .map_err(|_| Error::Internal("projection encoding"))?,
            ),
            Projection::Contact(s) => (RecordKind::Contact, projection_format::encode_contact(s)?),
            Projection::Client(s) => (
                RecordKind::Client,
                postcard::to_stdvec(s).map_err(|_| Error::Internal("projection encoding"))?,
            ),
        };
        let bytes = Zeroizing::new(bytes);
        let sealed = self
            .sealer
            .seal(Purpose::Projection, kind.code(), id.as_bytes(), &bytes)?;
        self.tx
            .prepare_cached(
                "INSERT INTO projections (id, kind, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, body = excluded.body",
            )?
            .execute(params![id.as_bytes().as_slice(), kind.code(), sealed])?;
        self.updates.push(match projection {
            Projection::Contact(s) => CacheUpdate::Contact(*id, s),
            Projection::Client(s) => CacheUpdate::Client(*id, s),
        });
        Ok(())
    }

    /// Drops a projection only (the record stays, but is not listed: used for deleted records).
    pub(crate) fn remove_projection(&mut self, id: &RecordId) -> Result<()> {
        self.tx.execute(
            "DELETE FROM projections WHERE id = ?1",
            [id.as_bytes().as_slice()],
        )?;
        self.updates.push(CacheUpdate::Remove(*id));
        Ok(())
    }

    /// Schedules the cache's team to be replaced after commit.
    pub(crate) fn set_team(&mut self, team: Team) {
        self.updates.push(CacheUpdate::Team(Box::new(team)));
    }

    /// The team as this transaction leaves it: the last [`Writer::set_team`], else the cache's.
    pub(crate) fn pending_team(&self) -> Option<&Team> {
        self.updates
            .iter()
            .rev()
            .find_map(|u| match u {
                CacheUpdate::Team(t) => Some(t.as_ref()),
                _ => None,
            })
            .or(self.cache.team.as_deref())
    }
}
