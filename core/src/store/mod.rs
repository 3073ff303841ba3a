//! The encrypted device store: SQLite (WAL, `synchronous=FULL`) holding sealed Automerge documents,
//! sealed projections, the outbox and sealed secrets.
//!
//! One connection behind a mutex serves every thread: SQLite serialises writers anyway, and the
//! work done while holding the lock is short (no network I/O ever happens under it). Reads of lists
//! come from an in-memory cache of decrypted projections, loaded once and kept current by every
//! write; `PRAGMA data_version` tells when another process changed the file so the cache reloads.

pub(crate) mod schema;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use streetsync_wire::RecordId;

use crate::crypto::{KeySource, Sealer, StorageKey, sha256};
use crate::error::{Error, Result};
use crate::query::ContactRow;
use cache::{CacheUpdate, load_cache};

pub(crate) use cache::{Cache, Projection};
pub use outbox::OutboxEntry;

struct Db {
    conn: Connection,
    cache: Option<Cache>,
    data_version: i64,
    /// An erasure committed whose old pages may still be in the WAL or the main file (mirrors
    /// the `erasure_pending` meta row, which survives a restart).
    wipe_pending: bool,
    /// The schema version the store was opened at (older ones only in migration tests).
    schema: u32,
    /// Under the same lock as the connection, so a storage-key change swaps it atomically.
    sealer: Sealer,
}

/// The store. Cheap to share behind an `Arc`; every method takes `&self`.
pub(crate) struct Store {
    db: Mutex<Db>,
}

/// The store's busy timeout outside a wipe.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an erasure waits for other connections (another process on the same file, a backup)
/// to let its checkpoint through before it reports [`Error::ErasurePending`].
const WIPE_BUDGET: Duration = Duration::from_secs(2);

/// The meta row that says an erasure is committed but not yet wiped from the files.
const META_WIPE_PENDING: &str = "erasure_pending";
/// Set by migration 0007 until documents and contact projections are in their compact forms.
const META_COMPACT_RECORDS: &str = "compact_records";

/// One `PRAGMA wal_checkpoint(TRUNCATE)`, read: true only if it ran to the end (`busy` is 0 and
/// every WAL frame was copied back), so the WAL is empty and the main file holds the pages
/// `secure_delete` zeroed, not the old ones.
fn checkpoint_truncate(conn: &Connection) -> Result<bool> {
    let (busy, log, checkpointed): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(busy == 0 && log >= 0 && log == checkpointed)
}

/// Checkpoints until the WAL is emptied or `budget` is spent, backing off between attempts (an
/// open read transaction elsewhere blocks a checkpoint). True once the old pages are gone.
fn wipe(conn: &Connection, budget: Duration) -> Result<bool> {
    let deadline = Instant::now() + budget;
    let mut pause = Duration::from_millis(5);
    // Each attempt waits only briefly for readers; the loop does the waiting.
    conn.busy_timeout(Duration::from_millis(20))?;
    let result = (|| loop {
        if checkpoint_truncate(conn)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(200));
    })();
    conn.busy_timeout(BUSY_TIMEOUT)?;
    result
}

fn sqlite_pragmas(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
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
    pub(crate) fn open(path: &Path, key: &KeySource, version: u32) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        sqlite_pragmas(&conn)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let schema = schema::migrate(&tx, version)?;
        let salt = meta_get(&tx, "kdf_salt")?;
        let storage_key = match key {
            KeySource::Key(k) => k.clone(),
            KeySource::Passphrase {
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
                StorageKey::from_passphrase(passphrase, &salt, iterations)?
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
        let wipe_pending = meta_get(&tx, META_WIPE_PENDING)?.is_some();
        // Migration 0007's second half: it needs the key, which SQL has not got.
        let reencoded = meta_get(&tx, META_COMPACT_RECORDS)?.is_some();
        if reencoded {
            compaction::compact_records(&tx, &sealer)?;
            tx.execute("DELETE FROM meta WHERE key = ?1", [META_COMPACT_RECORDS])?;
        }
        tx.commit()?;
        if reencoded {
            // The smaller rows leave free space in their pages; give it back once. A failure
            // (another connection reading) only means the file stays as large as it was.
            if let Err(e) = conn.execute_batch("VACUUM") {
                tracing::warn!(error = %e, "VACUUM after compacting the records failed");
            }
        }
        let data_version = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let mut db = Db {
            conn,
            cache: None,
            data_version,
            wipe_pending,
            schema,
            sealer,
        };
        if db.wipe_pending {
            // An erasure from before a crash or a blocked checkpoint: wipe it now if possible.
            Self::try_wipe(&mut db, WIPE_BUDGET);
        }
        Ok(Self { db: Mutex::new(db) })
    }

    /// Wipes a pending erasure's old pages: checkpoints for up to `budget`, and once that
    /// completes clears the pending mark (its own small write is checkpointed too). Leaves
    /// `db.wipe_pending` set if readers still block it.
    fn finish_wipe(db: &mut Db, budget: Duration) -> Result<()> {
        if !wipe(&db.conn, budget)? {
            db.wipe_pending = true;
            return Ok(());
        }
        db.conn
            .execute("DELETE FROM meta WHERE key = ?1", [META_WIPE_PENDING])?;
        db.wipe_pending = false;
        // Only the meta row's page is in the WAL now; no reader blocked the wipe a moment ago.
        let _ = checkpoint_truncate(&db.conn)?;
        Ok(())
    }

    /// [`Store::finish_wipe`] where the caller cannot act on a failure (the erasure is committed
    /// already): it is logged and the wipe stays pending.
    fn try_wipe(db: &mut Db, budget: Duration) {
        if let Err(e) = Self::finish_wipe(db, budget) {
            tracing::warn!(error = %e, "checkpoint for an erasure failed; retried later");
            db.wipe_pending = true;
        }
    }

    /// Fails with [`Error::ErasurePending`] while an erasure's old pages may still be in the
    /// store's files; tries the wipe once more first. The erasure itself is committed either
    /// way, and every later write (and the next open) retries the wipe.
    pub(crate) fn check_wiped(&self) -> Result<()> {
        let mut db = self.lock()?;
        if db.wipe_pending {
            Self::finish_wipe(&mut db, Duration::ZERO)?;
        }
        if db.wipe_pending {
            return Err(Error::ErasurePending);
        }
        Ok(())
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
            schema,
            ..
        } = &*db;
        let cache = cache.as_ref().ok_or(Error::Internal("cache missing"))?;
        f(&Reader {
            conn,
            sealer,
            cache,
            schema: *schema,
        })
    }

    /// Runs `f` in one immediate transaction; commits (durably) only if `f` returns `Ok`, and only
    /// then updates the cache.
    ///
    /// A write that erased a record marks the erasure pending in the same transaction, then
    /// checkpoints until the old pages are gone from the WAL and the main file (for up to
    /// [`WIPE_BUDGET`]). If readers elsewhere block that, the write still returns `Ok` (it is
    /// committed) with the mark left for the next write, [`Store::check_wiped`] and the next open
    /// to retry; callers that report an erasure ask [`Store::check_wiped`] first.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let mut db = self.lock()?;
        if db.wipe_pending {
            Self::try_wipe(&mut db, Duration::ZERO);
        }
        Self::ensure_cache(&mut db)?;
        let (out, erased) = {
            let Db {
                conn,
                cache,
                sealer,
                schema,
                ..
            } = &mut *db;
            let cache = cache.as_mut().ok_or(Error::Internal("cache missing"))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut w = Writer {
                tx,
                sealer,
                schema: *schema,
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
            if erased {
                meta_put(&tx, META_WIPE_PENDING, &[1])?;
            }
            tx.commit()?;
            for u in updates {
                match u {
                    CacheUpdate::Contact(id, s) => {
                        let row = ContactRow::new(*s, &mut cache.ids);
                        cache.contacts.insert(id, row);
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
            // Old page versions of erased records stay in the WAL (and the main file) until a
            // checkpoint runs to the end.
            db.wipe_pending = true;
            Self::try_wipe(&mut db, WIPE_BUDGET);
            if db.wipe_pending {
                tracing::warn!("an erasure's checkpoint is blocked by another connection");
            }
        }
        Ok(out)
    }
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
    schema: u32,
    pub(crate) cache: &'a Cache,
}

/// Write access inside one transaction.
pub(crate) struct Writer<'a> {
    tx: rusqlite::Transaction<'a>,
    sealer: &'a Sealer,
    schema: u32,
    cache: &'a mut Cache,
    updates: Vec<CacheUpdate>,
    /// Set when a record was erased: the WAL is checkpointed after the commit.
    erased: bool,
}

/// Both [`Reader`] and [`Writer`] get the same read methods, so a read inside a write
/// transaction sees that transaction's own writes. Each table group's file declares its reads
/// through this macro.
macro_rules! reads {
    ($($item:item)*) => {
        // Not every read is used on both sides.
        #[allow(dead_code)]
        impl Reader<'_> {
            $($item)*
        }
        #[allow(dead_code)]
        impl Writer<'_> {
            $($item)*
        }
    };
}

impl Reader<'_> {
    fn conn(&self) -> &Connection {
        self.conn
    }
}

impl Writer<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }

    /// Stores a plain meta value (never anything secret).
    pub(crate) fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        meta_put(&self.tx, key, value)
    }
}

reads! {
    /// A plain meta value.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        meta_get(self.conn(), key)
    }
}

// The table groups, one file each (after `reads!`, which they use).
mod cache;
mod compaction;
mod compression;
mod document_format;
mod outbox;
mod projection_format;
mod records;
mod rekey;
mod retention_log;
mod secrets;
mod sync_state;
