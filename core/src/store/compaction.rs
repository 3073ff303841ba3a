//! The Rust half of migration 0007: documents and contact projections re-encoded in their
//! compact forms (`document_format`, `projection_format`), in the opening transaction. SQL cannot
//! do it, because both are sealed with the storage key.
//!
//! Rows are read in batches by rowid, so a store of 100,000 contacts never holds more than a
//! batch of re-sealed bodies in memory.

use rusqlite::{Connection, params};

use super::cache::{contact_from_document, rewrite_projection};
use super::projection_format::{self, Decoded};
use super::{document_format, record_id};
use crate::crypto::{Purpose, Sealer};
use crate::error::Result;
use crate::kinds::RecordKind;

/// Rows read and rewritten at a time.
const BATCH: i64 = 512;

/// Re-encodes every document and contact projection not yet in its compact form. A projection
/// that does not open or decode is rebuilt from its document; one whose document does not open
/// either is left for the load to report as damaged. A document that does not open is left as
/// it is, for the same reason.
pub(super) fn compact_records(conn: &Connection, sealer: &Sealer) -> Result<()> {
    compact_documents(conn, sealer)?;
    compact_projections(conn, sealer)
}

/// A row of `documents` or `projections`: rowid, record id, kind code, sealed body.
type Row = (i64, Vec<u8>, u8, Vec<u8>);

/// The rows of `table` after rowid `after`, at most [`BATCH`].
fn batch(conn: &Connection, table: &str, after: i64) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT rowid, id, kind, body FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![after, BATCH], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn compact_documents(conn: &Connection, sealer: &Sealer) -> Result<()> {
    let mut after = 0;
    loop {
        let rows = batch(conn, "documents", after)?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(());
        };
        for (rowid, id, kind, body) in rows {
            // Opened as sealed: a body already in the compact form is left alone.
            let Ok(stored) = sealer.open(Purpose::Document, kind, &id, &body, String::new) else {
                continue;
            };
            if document_format::is_compact(&stored) {
                continue;
            }
            let sealed = document_format::seal(sealer, kind, &id, &stored)?;
            conn.prepare_cached("UPDATE documents SET body = ?1 WHERE rowid = ?2")?
                .execute(params![sealed, rowid])?;
        }
        after = last;
    }
}

fn compact_projections(conn: &Connection, sealer: &Sealer) -> Result<()> {
    let contact = RecordKind::Contact.code();
    let mut after = 0;
    loop {
        let rows = batch(conn, "projections", after)?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(());
        };
        for (_, id_bytes, kind, body) in rows {
            if kind != contact {
                continue;
            }
            let Ok(id) = record_id(&id_bytes) else {
                continue;
            };
            let decoded = sealer
                .open(Purpose::Projection, kind, &id_bytes, &body, String::new)
                .ok()
                .and_then(|p| projection_format::decode_contact(id, &p));
            let summary = match decoded {
                Some(Decoded::Current(_)) => continue,
                Some(Decoded::Format1(s)) => Some(s),
                None => contact_from_document(conn, sealer, &id_bytes),
            };
            if let Some(s) = summary {
                rewrite_projection(conn, sealer, &id_bytes, &s)?;
            }
        }
        after = last;
    }
}
