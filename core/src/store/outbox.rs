//! The `outbox` table: local changes and tombstones waiting for the relay, written in the same
//! transaction as the change itself so nothing is lost between a save and a push.

use rusqlite::params;
use streetsync_wire::{EnvelopeId, RecordId};
use zeroize::Zeroizing;

use super::{Reader, Writer, record_id};
use crate::crypto::Purpose;
use crate::error::{Error, Result};
use crate::kinds::RecordKind;

/// One outbox entry: a local change waiting to be pushed.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Local order.
    pub seq: i64,
    /// Idempotency key on the relay.
    pub envelope_id: EnvelopeId,
    /// The record changed.
    pub doc_id: RecordId,
    /// Its kind.
    pub kind: RecordKind,
    /// The Automerge change bytes (plaintext, zeroized on drop); empty for a tombstone.
    pub changes: Zeroizing<Vec<u8>>,
    /// Whether this entry erases the record (sent as a tombstone envelope).
    pub tombstone: bool,
}

reads! {
    /// Up to `limit` outbox entries, oldest first.
    pub(crate) fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, envelope_id, doc_id, kind, body, tombstone FROM outbox ORDER BY seq LIMIT ?1",
        )?;
        let mut rows = stmt.query([limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let env: Vec<u8> = r.get(1)?;
            let doc: Vec<u8> = r.get(2)?;
            let kind_code: u8 = r.get(3)?;
            let body: Vec<u8> = r.get(4)?;
            let env_arr: [u8; 16] =
                env.as_slice().try_into().map_err(|_| Error::Corrupt {
                    what: "outbox entry id".into(),
                })?;
            let changes =
                self.sealer
                    .open(
                        Purpose::Outbox,
                        kind_code,
                        &[env.as_slice(), doc.as_slice()].concat(),
                        &body,
                        || "outbox entry".into(),
                    )?;
            out.push(OutboxEntry {
                seq: r.get(0)?,
                envelope_id: EnvelopeId::from_bytes(env_arr),
                doc_id: record_id(&doc)?,
                kind: RecordKind::from_code(kind_code).ok_or_else(|| Error::Corrupt {
                    what: "outbox entry kind".into(),
                })?,
                changes,
                tombstone: r.get::<_, i64>(5)? != 0,
            });
        }
        Ok(out)
    }

    /// How many local changes wait to be pushed.
    pub(crate) fn outbox_len(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}

impl Writer<'_> {
    /// Queues a tombstone for the relay (the lead's erasure).
    pub(crate) fn push_tombstone(&mut self, doc_id: &RecordId, kind: RecordKind) -> Result<()> {
        self.queue(doc_id, kind, &[], true).map(|_| ())
    }

    /// Records a local change for the relay, in this same transaction.
    pub(crate) fn push_outbox(
        &mut self,
        doc_id: &RecordId,
        kind: RecordKind,
        changes: &[u8],
    ) -> Result<EnvelopeId> {
        self.queue(doc_id, kind, changes, false)
    }

    /// Writes one outbox entry: changes, or a tombstone (empty body).
    fn queue(
        &mut self,
        doc_id: &RecordId,
        kind: RecordKind,
        body: &[u8],
        tombstone: bool,
    ) -> Result<EnvelopeId> {
        let envelope_id = EnvelopeId::random();
        let aad = [
            envelope_id.as_bytes().as_slice(),
            doc_id.as_bytes().as_slice(),
        ]
        .concat();
        let sealed = self.sealer.seal(Purpose::Outbox, kind.code(), &aad, body)?;
        // Plain changes leave `tombstone` at its default, so this also writes to a store still
        // at schema 1 or 2 (the migration test writes through that path).
        let sql = if tombstone {
            "INSERT INTO outbox (envelope_id, doc_id, kind, body, tombstone) VALUES (?1, ?2, ?3, ?4, 1)"
        } else {
            "INSERT INTO outbox (envelope_id, doc_id, kind, body) VALUES (?1, ?2, ?3, ?4)"
        };
        self.tx.execute(
            sql,
            params![
                envelope_id.as_bytes().as_slice(),
                doc_id.as_bytes().as_slice(),
                kind.code(),
                sealed
            ],
        )?;
        Ok(envelope_id)
    }

    /// Removes acknowledged outbox entries.
    pub(crate) fn ack_outbox(&mut self, seqs: &[i64]) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached("DELETE FROM outbox WHERE seq = ?1")?;
        for s in seqs {
            stmt.execute([s])?;
        }
        Ok(())
    }
}
