//! The `documents` table (sealed Automerge documents) and the `erased` markers a lead's erasure
//! leaves, so late changes of an erased record are ignored.

use rusqlite::{OptionalExtension, params};
use streetsync_wire::RecordId;

use automerge::AutoCommit;

use super::{CacheUpdate, Reader, Writer, document_format};
use crate::error::{Error, Result};
use crate::kinds::RecordKind;

reads! {
    /// The record's document, opened.
    pub(crate) fn doc(&self, id: &RecordId) -> Result<Option<(RecordKind, AutoCommit)>> {
        let row: Option<(u8, Vec<u8>)> = self
            .conn()
            .prepare_cached("SELECT kind, body FROM documents WHERE id = ?1")?
            .query_row(
                [id.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((kind_code, body)) = row else {
            return Ok(None);
        };
        let kind = RecordKind::from_code(kind_code).ok_or_else(|| Error::Corrupt {
            what: format!("record {id}: kind"),
        })?;
        let plain = document_format::open(self.sealer, kind_code, id.as_bytes(), &body, || {
            format!("{kind} {id}")
        })?;
        let doc = crate::doc::load(&plain).map_err(|_| Error::Corrupt {
            what: format!("{kind} {id}: document"),
        })?;
        Ok(Some((kind, doc)))
    }

    /// Whether the record is stored here (without opening it).
    pub(crate) fn has_doc(&self, id: &RecordId) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Whether a lead erased this record.
    pub(crate) fn is_erased(&self, id: &RecordId) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM erased WHERE doc_id = ?1")?
            .query_row(
                [id.as_bytes().as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl Writer<'_> {
    /// Whether documents and contact projections are written in their compact forms (migration
    /// 0007); a store left at an older schema (migration tests only) is written as those apps
    /// wrote it.
    pub(super) fn writes_compact_records(&self) -> bool {
        self.schema >= super::schema::compact_records_version()
    }

    /// Stores a saved document (`Automerge::save` bytes), sealed. An outbox entry that points at
    /// the document it replaces gets its own copy first.
    pub(crate) fn put_doc_bytes(
        &mut self,
        id: &RecordId,
        kind: RecordKind,
        bytes: &[u8],
    ) -> Result<()> {
        self.detach_outbox_document(id)?;
        let sealed = if !self.writes_compact_records() {
            self.sealer.seal(
                crate::crypto::Purpose::Document,
                kind.code(),
                id.as_bytes(),
                bytes,
            )?
        } else {
            document_format::seal(self.sealer, kind.code(), id.as_bytes(), bytes)?
        };
        self.tx
            .prepare_cached(
                "INSERT INTO documents (id, kind, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, body = excluded.body",
            )?
            .execute(params![id.as_bytes().as_slice(), kind.code(), sealed])?;
        Ok(())
    }

    /// Erases a record: document, projection, activity, quarantined and pending envelopes go;
    /// a marker stays so late changes are ignored. The WAL is checkpointed after the commit.
    pub(crate) fn erase_record(&mut self, id: &RecordId, at: i64) -> Result<()> {
        let idb = id.as_bytes().as_slice();
        for sql in [
            "DELETE FROM documents WHERE id = ?1",
            "DELETE FROM projections WHERE id = ?1",
            "DELETE FROM outbox WHERE doc_id = ?1",
            "DELETE FROM quarantine WHERE doc_id = ?1",
            "DELETE FROM doc_activity WHERE doc_id = ?1",
        ] {
            self.tx.execute(sql, [idb])?;
        }
        self.tx.execute(
            "INSERT OR REPLACE INTO erased (doc_id, at) VALUES (?1, ?2)",
            params![idb, at],
        )?;
        self.updates.push(CacheUpdate::Remove(*id));
        self.erased = true;
        Ok(())
    }
}
