//! The encrypted device store: SQLite (WAL, `synchronous=FULL`) holding sealed Automerge documents,
//! sealed projections, the outbox and sealed secrets.
//!
//! One connection behind a mutex serves every thread: SQLite serialises writers anyway, and the
//! work done while holding the lock is short (no network I/O ever happens under it). Reads of lists
//! come from an in-memory cache of decrypted projections, loaded once and kept current by every
//! write; `PRAGMA data_version` tells when another process changed the file so the cache reloads.

pub(crate) mod schema;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use automerge::AutoCommit;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use streetsync_wire::{EnvelopeId, RecordId};
use zeroize::Zeroizing;

use crate::crypto::{Purpose, Sealer, sha256};
use crate::query::{ClientSummary, ContactRow, ContactSummary};
use crate::team::Team;
use crate::{Error, RecordKind, Result};

/// Decrypted projections and the team, kept in memory so listing never touches Automerge.
#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) contacts: HashMap<RecordId, ContactRow>,
    pub(crate) clients: HashMap<RecordId, ClientSummary>,
    /// Shared, because every envelope of a pull page checks its author against it.
    pub(crate) team: Option<std::sync::Arc<Team>>,
    /// Records whose stored projection or document failed to open.
    pub(crate) damaged: Vec<RecordId>,
}

enum CacheUpdate {
    Contact(RecordId, Box<ContactSummary>),
    Client(RecordId, ClientSummary),
    Team(Box<Team>),
    Remove(RecordId),
}

struct Db {
    conn: Connection,
    cache: Option<Cache>,
    data_version: i64,
    /// Under the same lock as the connection, so a storage-key change swaps it atomically.
    sealer: Sealer,
}

/// The store. Cheap to share behind an `Arc`; every method takes `&self`.
pub(crate) struct Store {
    db: Mutex<Db>,
}

/// A projection to write next to a document.
pub(crate) enum Projection {
    Contact(Box<ContactSummary>),
    Client(ClientSummary),
}

fn sqlite_pragmas(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Corrupt {
            what: format!("store could not switch to WAL (journal mode {mode})"),
        });
    }
    // A save is durable when it returns: fsync the WAL on every commit.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Deleted records are overwritten, not left in free pages (erasure, GDPR Art. 17).
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store at `path`, migrates it up to schema `version` (the
    /// newest in normal use) and checks the key against the canary.
    pub(crate) fn open(path: &Path, key: &crate::KeySource, version: u32) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        sqlite_pragmas(&conn)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        schema::migrate(&tx, version)?;
        let salt = meta_get(&tx, "kdf_salt")?;
        let storage_key = match key {
            crate::KeySource::Key(k) => k.clone(),
            crate::KeySource::Passphrase {
                passphrase,
                iterations,
            } => {
                let salt = match salt {
                    Some(s) => s,
                    None => {
                        let s = crate::crypto::random_bytes::<16>()?.to_vec();
                        meta_put(&tx, "kdf_salt", &s)?;
                        meta_put(&tx, "kdf_iterations", &iterations.to_be_bytes())?;
                        s
                    }
                };
                let iterations = match meta_get(&tx, "kdf_iterations")? {
                    Some(b) => {
                        u32::from_be_bytes(b.as_slice().try_into().map_err(|_| Error::Corrupt {
                            what: "KDF parameters".into(),
                        })?)
                    }
                    None => *iterations,
                };
                crate::StorageKey::from_passphrase(passphrase, &salt, iterations)?
            }
        };
        let sealer = Sealer::new(&storage_key)?;
        match (meta_get(&tx, "canary")?, meta_get(&tx, "canary_sha256")?) {
            (Some(canary), Some(sum)) => sealer.check_canary(&canary, &sum)?,
            (None, None) => {
                let canary = sealer.make_canary()?;
                meta_put(&tx, "canary_sha256", &sha256(&canary))?;
                meta_put(&tx, "canary", &canary)?;
            }
            _ => {
                return Err(Error::Corrupt {
                    what: "key canary".into(),
                });
            }
        }
        tx.commit()?;
        let data_version = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(Self {
            db: Mutex::new(Db {
                conn,
                cache: None,
                data_version,
                sealer,
            }),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Db>> {
        // A panic elsewhere while holding the lock cannot leave SQLite half-written (transactions
        // roll back on drop), so a poisoned lock is safe to reuse.
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let v: i64 = db.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if v != db.data_version {
            db.data_version = v;
            db.cache = None;
        }
        Ok(db)
    }

    fn ensure_cache(db: &mut Db) -> Result<()> {
        if db.cache.is_none() {
            db.cache = Some(load_cache(&db.conn, &db.sealer)?);
        }
        Ok(())
    }

    /// Reads from the cache (and, if needed, the database) under the lock.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let mut db = self.lock()?;
        Self::ensure_cache(&mut db)?;
        let Db {
            conn,
            cache,
            sealer,
            ..
        } = &*db;
        let cache = cache.as_ref().ok_or(Error::Crypto("cache missing"))?;
        f(&Reader {
            conn,
            sealer,
            cache,
        })
    }

    /// Runs `f` in one immediate transaction; commits (durably) only if `f` returns `Ok`, and only
    /// then updates the cache.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let mut db = self.lock()?;
        Self::ensure_cache(&mut db)?;
        let (out, erased) = {
            let Db {
                conn,
                cache,
                sealer,
                ..
            } = &mut *db;
            let cache = cache.as_mut().ok_or(Error::Crypto("cache missing"))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut w = Writer {
                tx,
                sealer,
                cache,
                updates: Vec::new(),
                erased: false,
            };
            let out = f(&mut w)?;
            let Writer {
                tx,
                updates,
                cache,
                erased,
                ..
            } = w;
            tx.commit()?;
            for u in updates {
                match u {
                    CacheUpdate::Contact(id, s) => {
                        cache.contacts.insert(id, ContactRow::new(*s));
                    }
                    CacheUpdate::Client(id, s) => {
                        cache.clients.insert(id, s);
                    }
                    CacheUpdate::Team(t) => cache.team = Some(std::sync::Arc::new(*t)),
                    CacheUpdate::Remove(id) => {
                        cache.contacts.remove(&id);
                        cache.clients.remove(&id);
                    }
                }
            }
            (out, erased)
        };
        if erased {
            // Old page versions of erased records would stay in the WAL until a checkpoint.
            db.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(out)
    }
}

impl Store {
    /// Re-seals every blob under a new storage key in one transaction, then checkpoints and
    /// vacuums so no page sealed under the old key stays in the file or its WAL.
    pub(crate) fn rekey(&self, key: &crate::KeySource) -> Result<()> {
        let mut db = self.lock()?;
        let Db { conn, sealer, .. } = &mut *db;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (storage_key, kdf) = match key {
            crate::KeySource::Key(k) => (k.clone(), None),
            crate::KeySource::Passphrase {
                passphrase,
                iterations,
            } => {
                let salt = crate::crypto::random_bytes::<16>()?.to_vec();
                (
                    crate::StorageKey::from_passphrase(passphrase, &salt, *iterations)?,
                    Some((salt, *iterations)),
                )
            }
        };
        let new = Sealer::new(&storage_key)?;
        let old: &Sealer = sealer;
        // (table, purpose, kind column, id column, extra AAD column)
        for (table, purpose, kind_col, id_col, extra_col) in [
            ("documents", Purpose::Document, "kind", "id", "NULL"),
            ("projections", Purpose::Projection, "kind", "id", "NULL"),
            ("outbox", Purpose::Outbox, "kind", "envelope_id", "doc_id"),
            ("secrets", Purpose::Secret, "0", "name", "NULL"),
            ("quarantine", Purpose::Quarantine, "0", "seq", "doc_id"),
        ] {
            type Row = (rusqlite::types::Value, u8, Vec<u8>, Option<Vec<u8>>);
            let rows: Vec<Row> = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {id_col}, {kind_col}, body, {extra_col} FROM {table}"
                ))?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            for (id, kind, body, extra) in rows {
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
                    &format!("UPDATE {table} SET body = ?1 WHERE {id_col} = ?2"),
                    params![sealed, id],
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
        tx.commit()?;
        *sealer = new;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.execute_batch("VACUUM")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        db.cache = None;
        Ok(())
    }
}

fn load_cache(conn: &Connection, sealer: &Sealer) -> Result<Cache> {
    let mut cache = Cache::default();
    let mut stmt = conn.prepare_cached("SELECT id, kind, body FROM projections")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id_bytes: Vec<u8> = row.get(0)?;
        let kind: u8 = row.get(1)?;
        let body: Vec<u8> = row.get(2)?;
        let Ok(id) = record_id(&id_bytes) else {
            continue;
        };
        let opened = sealer.open(Purpose::Projection, kind, &id_bytes, &body, String::new);
        let ok = match (RecordKind::from_code(kind), opened) {
            (Some(RecordKind::Contact), Ok(p)) => postcard::from_bytes::<ContactSummary>(&p)
                .map(|s| {
                    cache.contacts.insert(id, ContactRow::new(s));
                })
                .is_ok(),
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
        let plain = sealer.open(
            Purpose::Document,
            RecordKind::Team.code(),
            &id,
            &body,
            || "team document".into(),
        )?;
        let doc = crate::document::load(&plain)?;
        let team: crate::team::TeamDoc = autosurgeon::hydrate(&doc)?;
        cache.team = Some(std::sync::Arc::new(team.to_team()?));
    }
    Ok(cache)
}

pub(crate) fn record_id(bytes: &[u8]) -> Result<RecordId> {
    let arr: [u8; 16] = bytes.try_into().map_err(|_| Error::Corrupt {
        what: "record id".into(),
    })?;
    Ok(RecordId::from_bytes(arr))
}

fn meta_get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn meta_put(conn: &Connection, key: &str, value: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Read access under the store lock.
pub(crate) struct Reader<'a> {
    conn: &'a Connection,
    sealer: &'a Sealer,
    pub(crate) cache: &'a Cache,
}

/// Write access inside one transaction.
pub(crate) struct Writer<'a> {
    tx: rusqlite::Transaction<'a>,
    sealer: &'a Sealer,
    cache: &'a mut Cache,
    updates: Vec<CacheUpdate>,
    /// Set when a record was erased: the WAL is checkpointed after the commit.
    erased: bool,
}

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

macro_rules! shared_reads {
    ($t:ident) => {
        // Both readers and writers get every read; not every read is used on both.
        #[allow(dead_code)]
        impl $t<'_> {
            fn conn(&self) -> &Connection {
                &self.tx_or_conn()
            }

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
                let plain =
                    self.sealer
                        .open(Purpose::Document, kind_code, id.as_bytes(), &body, || {
                            format!("{kind} {id}")
                        })?;
                let doc = crate::document::load(&plain).map_err(|_| Error::Corrupt {
                    what: format!("{kind} {id}: document"),
                })?;
                Ok(Some((kind, doc)))
            }

            /// A sealed secret, opened.
            pub(crate) fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
                let body: Option<Vec<u8>> = self
                    .conn()
                    .query_row("SELECT body FROM secrets WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                body.map(|b| {
                    self.sealer
                        .open(Purpose::Secret, 0, name.as_bytes(), &b, || {
                            format!("secret {name}")
                        })
                })
                .transpose()
            }

            /// A plain meta value.
            pub(crate) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
                meta_get(self.conn(), key)
            }

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

            /// Quarantined envelopes: `(seq, reason, raw envelope JSON)`, oldest first.
            pub(crate) fn quarantined(&self) -> Result<Vec<(u64, String, Zeroizing<Vec<u8>>)>> {
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

            /// Records with at least `threshold` change envelopes since their last snapshot and
            /// no quarantined envelope (`i64::MIN`: every record).
            pub(crate) fn due_for_snapshot(&self, threshold: i64) -> Result<Vec<RecordId>> {
                let mut stmt = self.conn().prepare_cached(
                    "SELECT d.id FROM documents d
                     LEFT JOIN doc_activity a ON a.doc_id = d.id
                     WHERE coalesce(a.since_snapshot, 0) >= ?1
                       AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.doc_id = d.id)",
                )?;
                let ids = stmt
                    .query_map([threshold], |r| r.get::<_, Vec<u8>>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                ids.iter().map(|b| record_id(b)).collect()
            }

            /// Sealed secrets whose name starts with `prefix`, opened.
            pub(crate) fn secrets_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
                let mut stmt = self
                    .conn()
                    .prepare_cached("SELECT name, body FROM secrets WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name")?;
                let rows = stmt
                    .query_map([prefix], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.into_iter()
                    .map(|(name, body)| {
                        let plain = self.sealer.open(Purpose::Secret, 0, name.as_bytes(), &body, || format!("secret {name}"))?;
                        Ok((name, plain))
                    })
                    .collect()
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

            /// How many local changes wait to be pushed.
            pub(crate) fn outbox_len(&self) -> Result<u64> {
                Ok(self
                    .conn()
                    .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))?
                    as u64)
            }
        }
    };
}

impl Reader<'_> {
    fn tx_or_conn(&self) -> &Connection {
        self.conn
    }
}

impl Writer<'_> {
    fn tx_or_conn(&self) -> &Connection {
        &self.tx
    }
}

shared_reads!(Reader);
shared_reads!(Writer);

impl Writer<'_> {
    /// The cache as of the start of this transaction (updates apply after commit).
    pub(crate) fn cache(&self) -> &Cache {
        self.cache
    }

    /// Stores a saved document (`Automerge::save` bytes), sealed.
    pub(crate) fn put_doc_bytes(
        &mut self,
        id: &RecordId,
        kind: RecordKind,
        bytes: &[u8],
    ) -> Result<()> {
        let sealed = self
            .sealer
            .seal(Purpose::Document, kind.code(), id.as_bytes(), bytes)?;
        self.tx
            .prepare_cached(
                "INSERT INTO documents (id, kind, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, body = excluded.body",
            )?
            .execute(params![id.as_bytes().as_slice(), kind.code(), sealed])?;
        Ok(())
    }

    /// Saves a record's projection, sealed, and schedules the cache update.
    pub(crate) fn put_projection(&mut self, id: &RecordId, projection: Projection) -> Result<()> {
        let (kind, bytes) = match &projection {
            Projection::Contact(s) => (RecordKind::Contact, postcard::to_stdvec(s.as_ref())),
            Projection::Client(s) => (RecordKind::Client, postcard::to_stdvec(s)),
        };
        let bytes = Zeroizing::new(bytes.map_err(|_| Error::Crypto("projection encoding"))?);
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

    /// Schedules the cache's team to be replaced after commit.
    pub(crate) fn set_team(&mut self, team: Team) {
        self.updates.push(CacheUpdate::Team(Box::new(team)));
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

    /// Queues a tombstone for the relay (the lead's erasure).
    pub(crate) fn push_tombstone(&mut self, doc_id: &RecordId, kind: RecordKind) -> Result<()> {
        self.queue(doc_id, kind, &[], true).map(|_| ())
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

    /// Stores a secret, sealed.
    pub(crate) fn put_secret(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let sealed = self
            .sealer
            .seal(Purpose::Secret, 0, name.as_bytes(), value)?;
        self.tx.execute(
            "INSERT INTO secrets (name, body) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            params![name, sealed],
        )?;
        Ok(())
    }

    /// Deletes a secret.
    pub(crate) fn delete_secret(&mut self, name: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM secrets WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Stores a plain meta value (never anything secret).
    pub(crate) fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        meta_put(&self.tx, key, value)
    }

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
