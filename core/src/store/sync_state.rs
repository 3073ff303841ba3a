//! What sync remembers between runs: counters (`sync_state`: cursor, registration), refused
//! envelopes kept for the report (`quarantine`), and per-record activity since the last snapshot
//! (`doc_activity`, the compaction trigger).

use rusqlite::{OptionalExtension, params};
use streetsync_wire::RecordId;
use zeroize::Zeroizing;

use super::{Reader, Writer, record_id};
use crate::crypto::Purpose;
use crate::error::{Error, Result};

/// One quarantined envelope: sequence number, stored reason, the raw envelope JSON.
pub(crate) type QuarantineRow = (u64, String, Zeroizing<Vec<u8>>);

reads! {
    /// A sync-state counter (cursor and the like); 0 when unset.
    pub(crate) fn sync_value(&self, key: &str) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM sync_state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0))
    }

    /// Quarantined envelopes: `(seq, reason, raw envelope JSON)`, oldest first.
    pub(crate) fn quarantined(&self) -> Result<Vec<QuarantineRow>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT seq, reason, body, doc_id FROM quarantine ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let body: Vec<u8> = r.get(2)?;
            let doc: Vec<u8> = r.get(3)?;
            let aad = [(seq as u64).to_be_bytes().as_slice(), doc.as_slice()].concat();
            let raw = self.sealer.open(
                Purpose::Quarantine,
                0,
                &aad,
                &body,
                || "quarantined envelope".into(),
            )?;
            out.push((seq as u64, r.get(1)?, raw));
        }
        Ok(out)
    }

    /// Records with at least `threshold` change envelopes since their last snapshot
    /// (`i64::MIN`: every record) and no quarantined envelope whose reason is one of `waiting`
    /// (changes that may still apply: a snapshot now would not contain them, and the relay would
    /// drop them). Envelopes refused for good do not hold a snapshot back.
    pub(crate) fn due_for_snapshot(&self, threshold: i64, waiting: &[&str]) -> Result<Vec<RecordId>> {
        let waiting = serde_json::to_string(waiting).map_err(|_| Error::Internal("reason list"))?;
        let mut stmt = self.conn().prepare_cached(
            "SELECT d.id FROM documents d
             LEFT JOIN doc_activity a ON a.doc_id = d.id
             WHERE coalesce(a.since_snapshot, 0) >= ?1
               AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.doc_id = d.id
                               AND q.reason IN (SELECT value FROM json_each(?2)))",
        )?;
        let ids = stmt
            .query_map(params![threshold, waiting], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids.iter().map(|b| record_id(b)).collect()
    }
}

impl Writer<'_> {
    /// Sets a sync-state counter.
    pub(crate) fn set_sync_value(&mut self, key: &str, value: i64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO sync_state (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Keeps a refused envelope (sealed) for the report.
    pub(crate) fn quarantine(
        &mut self,
        seq: u64,
        doc_id: &RecordId,
        reason: &str,
        at: i64,
        raw: &[u8],
    ) -> Result<()> {
        let aad = [seq.to_be_bytes().as_slice(), doc_id.as_bytes().as_slice()].concat();
        let sealed = self.sealer.seal(Purpose::Quarantine, 0, &aad, raw)?;
        self.tx.execute(
            "INSERT OR REPLACE INTO quarantine (seq, doc_id, reason, at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq as i64, doc_id.as_bytes().as_slice(), reason, at, sealed],
        )?;
        Ok(())
    }

    /// Drops a quarantined envelope that has now been applied.
    pub(crate) fn unquarantine(&mut self, seq: u64) -> Result<()> {
        self.tx
            .execute("DELETE FROM quarantine WHERE seq = ?1", [seq as i64])?;
        Ok(())
    }

    /// Updates the reason of a quarantined envelope.
    pub(crate) fn requarantine(&mut self, seq: u64, reason: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE quarantine SET reason = ?2 WHERE seq = ?1",
            params![seq as i64, reason],
        )?;
        Ok(())
    }

    /// Counts one more change envelope of `doc` since its last snapshot.
    pub(crate) fn bump_activity(&mut self, doc: &RecordId) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO doc_activity (doc_id, since_snapshot) VALUES (?1, 1)
             ON CONFLICT (doc_id) DO UPDATE SET since_snapshot = since_snapshot + 1",
            )?
            .execute([doc.as_bytes().as_slice()])?;
        Ok(())
    }

    /// A snapshot of `doc` is needed at the next compaction (someone's snapshot of it was
    /// refused here, and the relay may have dropped what that snapshot covered).
    pub(crate) fn mark_due(&mut self, doc: &RecordId) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO doc_activity (doc_id, since_snapshot) VALUES (?1, ?2)
             ON CONFLICT (doc_id) DO UPDATE SET since_snapshot = ?2",
            )?
            .execute(params![doc.as_bytes().as_slice(), i64::MAX / 2])?;
        Ok(())
    }

    /// A snapshot of `doc` now covers everything.
    pub(crate) fn reset_activity(&mut self, doc: &RecordId) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO doc_activity (doc_id, since_snapshot) VALUES (?1, 0)
             ON CONFLICT (doc_id) DO UPDATE SET since_snapshot = 0",
            )?
            .execute([doc.as_bytes().as_slice()])?;
        Ok(())
    }
}
