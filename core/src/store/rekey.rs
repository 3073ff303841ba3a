//! Changing the storage key: every sealed blob re-sealed in one transaction, then checkpoint and
//! vacuum so nothing sealed under the old key stays in the file or its WAL.

use rusqlite::{TransactionBehavior, params};

use super::{Db, META_WIPE_PENDING, Store, WIPE_BUDGET, meta_put};
use crate::crypto::{Purpose, Sealer, sha256};
use crate::error::{Error, Result};

impl Store {
    /// Re-seals every blob under a new storage key in one transaction, then checkpoints and
    /// Re-seals every blob under a new storage key in one transaction, then checkpoints and
    /// vacuums so no page sealed under the old key stays in the file or its WAL.
    pub(crate) fn rekey(&self, key: &crate::crypto::KeySource) -> Result<()> {
        let mut db = self.lock()?;
        let Db {
            conn,
            sealer,
            schema,
            ..
        } = &mut *db;
        let outbox_sealed_rows = if *schema >= super::schema::lean_outbox_version() {
            "body_is_document = 0"
        } else {
            "1"
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (storage_key, kdf) = match key {
            crate::crypto::KeySource::Key(k) => (k.clone(), None),
            crate::crypto::KeySource::Passphrase {
                passphrase,
                iterations,
            } => {
                let salt = crate::crypto::random_bytes::<16>()?.to_vec();
                (
                    crate::crypto::StorageKey::from_passphrase(passphrase, &salt, *iterations)?,
                    Some((salt, *iterations)),
                )
            }
        };
        let new = Sealer::new(&storage_key)?;
        let old: &Sealer = sealer;
        // (table, purpose, kind column, id column, extra AAD column, rows holding a sealed body)
        for (table, purpose, kind_col, id_col, extra_col, sealed_rows) in [
            ("documents", Purpose::Document, "kind", "id", "NULL", "1"),
            (
                "projections",
                Purpose::Projection,
                "kind",
                "id",
                "NULL",
                "1",
            ),
            // An entry pointing at its record's document has no body of its own.
            (
                "outbox",
                Purpose::Outbox,
                "kind",
                "envelope_id",
                "doc_id",
                outbox_sealed_rows,
            ),
            ("secrets", Purpose::Secret, "0", "name", "NULL", "1"),
            ("quarantine", Purpose::Quarantine, "0", "seq", "doc_id", "1"),
        ] {
            // Rows are rewritten by rowid: every table here has one, and not every id column
            // is indexed (the outbox's envelope id is not).
            type Row = (rusqlite::types::Value, u8, Vec<u8>, Option<Vec<u8>>, i64);
            let rows: Vec<Row> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {id_col}, {kind_col}, body, {extra_col}, rowid FROM {table} WHERE {sealed_rows}"
                ))?;
                stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            for (id, kind, body, extra, rowid) in rows {
                let mut aad: Vec<u8> = match &id {
                    rusqlite::types::Value::Blob(b) => b.clone(),
                    rusqlite::types::Value::Text(t) => t.as_bytes().to_vec(),
                    rusqlite::types::Value::Integer(i) => (*i as u64).to_be_bytes().to_vec(),
                    _ => {
                        return Err(Error::Corrupt {
                            what: format!("{table}: id"),
                        });
                    }
                };
                aad.extend_from_slice(extra.as_deref().unwrap_or_default());
                let plain = old.open(purpose, kind, &aad, &body, || format!("{table} row"))?;
                let sealed = new.seal(purpose, kind, &aad, &plain)?;
                tx.execute(
                    &format!("UPDATE {table} SET body = ?1 WHERE rowid = ?2"),
                    params![sealed, rowid],
                )?;
            }
        }
        let canary = new.make_canary()?;
        meta_put(&tx, "canary_sha256", &sha256(&canary))?;
        meta_put(&tx, "canary", &canary)?;
        tx.execute(
            "DELETE FROM meta WHERE key IN ('kdf_salt', 'kdf_iterations')",
            [],
        )?;
        if let Some((salt, iterations)) = kdf {
            meta_put(&tx, "kdf_salt", &salt)?;
            meta_put(&tx, "kdf_iterations", &iterations.to_be_bytes())?;
        }
        // Pending until the pages sealed under the old key are gone from the files.
        meta_put(&tx, META_WIPE_PENDING, &[1])?;
        tx.commit()?;
        *sealer = new;
        db.wipe_pending = true;
        db.cache = None;
        // VACUUM rewrites every page (into the WAL); the checkpoint then replaces the main
        // file's pages and empties the WAL, and only a checkpoint that ran to the end counts.
        db.conn.execute_batch("VACUUM")?;
        Self::finish_wipe(&mut db, WIPE_BUDGET)?;
        if db.wipe_pending {
            return Err(Error::ErasurePending);
        }
        Ok(())
    }
}
