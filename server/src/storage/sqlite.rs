//! The embedded SQLite backend, the relay's default.
//!
//! One file in the data directory, WAL journal, `synchronous=FULL` so an acknowledged push
//! survives a power cut, numbered migrations from `server/migrations/`. All writes go through one
//! writer connection (SQLite allows one writer at a time anyway), owned by a thread that commits
//! the writes queued while it was busy in one transaction ([`super::writer`], group commit);
//! reads use a small pool of reader connections, which WAL lets run beside the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use streetsync_wire::{
    Bundle, CreateInvite, DeviceId, DeviceInfo, DeviceKeys, Envelope, EnvelopeKind, InviteId,
    InviteInfo, PushResult, Role, TeamId,
};

use super::log_row::{self, LogRow};
use super::writer::{AfterCommit, Writer};
use super::{
    AppendOutcome, BundlePage, DeviceLookup, MailboxQuota, PageBuilder, PullPage, Storage,
    StorageError, StoredInvite,
};

/// A step of a migration that SQL cannot do, run after its SQL in the same transaction.
type MigrationStep = fn(&Connection) -> Result<(), StorageError>;

/// The numbered migrations, in order, each its SQL and maybe a step in Rust after it;
/// `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[(i64, &str, Option<MigrationStep>)] = &[
    (1, include_str!("../../migrations/0001_init.sql"), None),
    (2, include_str!("../../migrations/0002_invites.sql"), None),
    (
        3,
        include_str!("../../migrations/0003_invite_confirm.sql"),
        None,
    ),
    (
        4,
        include_str!("../../migrations/0004_bundle_sender.sql"),
        None,
    ),
    (
        5,
        include_str!("../../migrations/0005_binary_log.sql"),
        Some(convert_json_log),
    ),
    (
        6,
        include_str!("../../migrations/0006_log_positions.sql"),
        Some(check_log_positions),
    ),
];

/// The page size of the relay's file. Log rows are about 1 KB (an envelope of about 900 bytes of
/// ciphertext): a 4 KiB page holds three and leaves a quarter unused, a 16 KiB page fifteen, so
/// the file is about 0.2 bytes per ciphertext byte smaller (docs/benchmarks.md, "Relay bytes on
/// disk"). Each commit writes whole pages to the WAL, so a lone push of one envelope writes about
/// 2.6 times the WAL bytes it wrote at 4 KiB (about 69 KB instead of 27 KB), an envelope in a
/// batch of 50 about 1.2 times (`relay_bytes` bench); pushes under load share their group's pages.
pub const PAGE_SIZE: i64 = 16 * 1024;

/// Bits of a log position (`log.pos`, migration 6) that hold the entry's seq; the bits above
/// hold its team's number (`teams.n`).
const SEQ_BITS: u32 = 40;

/// The highest seq a team's log can give out (about 10^12).
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

/// The position of entry `seq` of team number `team_n` in the `log` table.
fn log_pos(team_n: i64, seq: u64) -> Result<i64, StorageError> {
    if seq > MAX_SEQ {
        return Err(StorageError::Write(format!(
            "the team's log is full: seq {seq} is past {MAX_SEQ}"
        )));
    }
    team_n
        .checked_mul(1 << SEQ_BITS)
        .and_then(|base| base.checked_add(i64_of(seq).ok()?))
        .filter(|_| team_n > 0)
        .ok_or_else(|| StorageError::Corrupt(format!("team number {team_n} is out of range")))
}

/// The seq of the entry at `pos` of team number `team_n`'s log.
fn seq_at(team_n: i64, pos: i64) -> Result<u64, StorageError> {
    let base = log_pos(team_n, 0)?;
    match pos.checked_sub(base).map(u64_of) {
        Some(Ok(seq)) if seq <= MAX_SEQ => Ok(seq),
        _ => Err(StorageError::Corrupt(format!(
            "log position {pos} is not in team {team_n}'s range"
        ))),
    }
}

/// Reader connections, opened on demand and kept open. Reads beyond this many wait for one
/// instead of opening a connection per read: opening one (file, WAL index, schema parse) costs
/// more than most reads, and the relay has few cores to run reads on anyway.
const MAX_READERS: usize = 8;

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "relay.sqlite3";

/// [`Storage`] on one SQLite file.
pub struct SqliteStorage {
    path: PathBuf,
    writer: Writer,
    readers: ReaderPool,
    devices: Arc<DeviceCache>,
}

/// Every registered device, kept in memory so that authenticating a request needs neither a
/// query nor a trip through the blocking pool ([`Storage::lookup_device_now`]).
///
/// Filled from the database at open and then changed only by the writer thread, right after the
/// transaction that changed the devices committed and before that write is answered, in commit
/// order: a revocation is in the cache before the lead hears it succeeded. A few hundred bytes
/// per device.
#[derive(Debug, Default)]
struct DeviceCache {
    /// By device id: each team it is registered in (almost always one), in registration order.
    by_id: RwLock<HashMap<DeviceId, Vec<(TeamId, DeviceInfo)>>>,
}

impl DeviceCache {
    fn load(conn: &Connection) -> Result<Self, StorageError> {
        let mut stmt = conn.prepare(&format!(
            "SELECT team, {DEVICE_COLUMNS} FROM devices ORDER BY added_ms, rowid"
        ))?;
        let mut rows = stmt.query([])?;
        let mut by_id: HashMap<DeviceId, Vec<(TeamId, DeviceInfo)>> = HashMap::new();
        while let Some(row) = rows.next()? {
            let team = TeamId::from_bytes(array_of(row.get(0)?, "team")?);
            let info = device_info(read_device_row_at(row, 1)?)?;
            by_id.entry(info.keys.id).or_default().push((team, info));
        }
        Ok(DeviceCache {
            by_id: RwLock::new(by_id),
        })
    }

    fn lookup(&self, team: TeamId, id: DeviceId) -> DeviceLookup {
        let by_id = self.by_id.read().unwrap_or_else(|p| p.into_inner());
        let teams = by_id.get(&id).map(Vec::as_slice).unwrap_or_default();
        let in_team = teams
            .iter()
            .find(|(t, _)| *t == team)
            .map(|(_, info)| info.clone());
        let elsewhere = match in_team {
            Some(_) => None,
            None => teams.first().map(|(_, info)| info.clone()),
        };
        DeviceLookup { in_team, elsewhere }
    }

    /// After-commit hook: `device` was registered in the team the write returns.
    fn added(self: &Arc<Self>, device: DeviceKeys) -> AfterCommit<TeamId> {
        let cache = Arc::clone(self);
        Box::new(move |&team| {
            let mut by_id = cache.by_id.write().unwrap_or_else(|p| p.into_inner());
            let teams = by_id.entry(device.id).or_default();
            if !teams.iter().any(|(t, _)| *t == team) {
                teams.push((
                    team,
                    DeviceInfo {
                        keys: device,
                        revoked: false,
                    },
                ));
            }
        })
    }

    /// After-commit hook: the device `id` of `team` was revoked (the write returns how many of
    /// its invites went with it).
    fn revoked(self: &Arc<Self>, team: TeamId, id: DeviceId) -> AfterCommit<u64> {
        let cache = Arc::clone(self);
        Box::new(move |_| {
            let mut by_id = cache.by_id.write().unwrap_or_else(|p| p.into_inner());
            for (t, info) in by_id.get_mut(&id).into_iter().flatten() {
                if *t == team {
                    info.revoked = true;
                }
            }
        })
    }
}

/// At most [`MAX_READERS`] reader connections; a read waits for an idle one.
#[derive(Default)]
struct ReaderPool {
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Connection>,
    /// Connections open, idle or lent out.
    open: usize,
}

/// A reader connection lent out by the pool; goes back to it on drop, also when the read panics.
struct Lease<'a> {
    pool: &'a ReaderPool,
    /// `Some` until the drop hands it back.
    conn: Option<Connection>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until it is dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.state).idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}

impl ReaderPool {
    /// An idle connection, a new one if fewer than [`MAX_READERS`] are open, else the next one
    /// returned.
    fn lease(&self, path: &Path) -> Result<Lease<'_>, StorageError> {
        let mut state = lock(&self.state);
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < MAX_READERS {
                state.open += 1;
                break;
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(state);
        match open_reader(path) {
            Ok(conn) => Ok(Lease {
                pool: self,
                conn: Some(conn),
            }),
            Err(e) => {
                // Give the slot back.
                lock(&self.state).open -= 1;
                self.returned.notify_one();
                Err(e)
            }
        }
    }
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, ignoring poisoning: a panic elsewhere rolled its transaction back already.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_connection(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Takes effect only on a new, empty file (before WAL mode writes its first page); an older
    // file keeps its page size until `rebuild`.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Erased envelopes are overwritten, not left in free pages (GDPR Art. 17).
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(conn)
}

/// A connection for reads only (`query_only`: a bug cannot write through it).
fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Runs every migration newer than the file's `user_version`, each in its own transaction;
/// returns the version the file had (0 for a new file).
///
/// Foreign keys are off while they run and checked before each commit
/// (`PRAGMA foreign_key_check`), SQLite's documented way to rebuild a table that others refer to
/// (migration 6 rebuilds `teams`): with them on, dropping the old table would fail on its
/// children, which the new table then serves.
fn migrate(conn: &mut Connection) -> Result<i64, StorageError> {
    let known = MIGRATIONS.last().map_or(0, |(v, _, _)| *v);
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StorageError::SchemaTooNew { found, known });
    }
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = run_migrations(conn, found);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result?;
    Ok(found)
}

fn run_migrations(conn: &mut Connection, found: i64) -> Result<(), StorageError> {
    for (version, sql, step) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        if let Some(step) = step {
            step(&tx)?;
        }
        let broken: i64 =
            tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(StorageError::Corrupt(format!(
                "migration {version}: {broken} rows refer to rows that do not exist"
            )));
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied relay database migration");
    }
    Ok(())
}

/// Rebuilds the file with VACUUM in pages of [`PAGE_SIZE`]: after a migration that rewrote the
/// log (the freed pages go back to the disk), and for a file made with smaller pages. SQLite
/// cannot change the page size of a file in WAL mode, so the journal leaves WAL for the VACUUM
/// (which is atomic under the rollback journal too) and returns to it after. Runs at open, before
/// any other connection exists; if another process holds the file, the page size stays and the
/// VACUUM still compacts.
fn rebuild(conn: &Connection) -> Result<(), StorageError> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
    if mode.eq_ignore_ascii_case("delete") {
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    } else {
        tracing::warn!(
            mode,
            "the database stays in WAL mode (another process has it open), so its page size stays"
        );
    }
    conn.execute_batch("VACUUM")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    tracing::info!(page_size, "rebuilt the database file");
    Ok(())
}

/// Migration 6's step: every row of the schema-5 log and `envelope_ids` moved into the new tables
/// (the SQL moves them; a row of a team that does not exist, or with a seq outside 1..2^40, would
/// have been left behind), then the old tables go.
fn check_log_positions(tx: &Connection) -> Result<(), StorageError> {
    let count =
        |sql: &str| -> Result<i64, StorageError> { Ok(tx.query_row(sql, [], |r| r.get(0))?) };
    for (old, new) in [("log_v5", "log"), ("envelope_ids_v5", "envelope_ids")] {
        let (before, after) = (
            count(&format!("SELECT count(*) FROM {old}"))?,
            count(&format!("SELECT count(*) FROM {new}"))?,
        );
        if before != after {
            return Err(StorageError::Corrupt(format!(
                "migration 6: {} of the {before} rows of {new} belong to no team or have a seq out of range",
                before - after
            )));
        }
    }
    tx.execute_batch("DROP TABLE log_v5; DROP TABLE envelope_ids_v5;")?;
    tracing::info!("moved the log to positions and team numbers");
    Ok(())
}

/// Migration 5's step: moves every row of `log_json` (the log as JSON bodies, renamed by
/// `0005_binary_log.sql`) into the new binary `log`, each body decoded and checked against its
/// row ([`log_row::envelope_of_json_body`]), then drops `log_json`. Rows are read and written one
/// at a time, so a large log does not have to fit in memory.
fn convert_json_log(tx: &Connection) -> Result<(), StorageError> {
    let mut read = tx.prepare(
        "SELECT team, seq, doc, envelope_id, kind, covers, body FROM log_json ORDER BY team, seq",
    )?;
    let mut insert = tx.prepare(
        "INSERT INTO log (team, seq, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut rows = read.query([])?;
    let mut moved = 0u64;
    while let Some(row) = rows.next()? {
        let team: Vec<u8> = row.get(0)?;
        let seq: i64 = row.get(1)?;
        let doc: Vec<u8> = row.get(2)?;
        let id: Vec<u8> = row.get(3)?;
        let kind: i64 = row.get(4)?;
        let covers: i64 = row.get(5)?;
        let body: String = row.get(6)?;
        let env = log_row::envelope_of_json_body(&team, seq, (&doc, &id, kind, covers), &body)?;
        insert.execute(params![
            team,
            seq,
            env.doc.as_bytes(),
            env.id.as_bytes(),
            env.kind.code(),
            i64_of(env.covers)?,
            env.v,
            env.epoch,
            env.author.as_bytes(),
            env.nonce,
            env.sig,
            env.ciphertext,
        ])?;
        moved += 1;
    }
    drop(rows);
    drop(read);
    drop(insert);
    tx.execute_batch("DROP TABLE log_json")?;
    tracing::info!(
        envelopes = moved,
        "moved the log's envelopes from JSON into binary columns"
    );
    Ok(())
}

/// The columns of [`log_row::ENVELOPE_COLUMNS`] from `log l` with `authors a` joined: the row
/// names its author by number (migration 6). An author number with no `authors` row reads as
/// NULL and fails the page, like any damaged column.
const SQLITE_ENVELOPE_COLUMNS: &str =
    "l.v, l.doc, l.envelope_id, l.kind, l.epoch, a.id, l.covers, l.nonce, l.ciphertext, l.sig";

/// The one insert of a `log` row, in the order of [`insert_log_row`]'s parameters.
const INSERT_LOG: &str = "INSERT INTO log (pos, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Writes `env` at log position `pos` ([`log_pos`]) with its author's number `author`
/// ([`author_number`]): every other field in its column, bytes as bytes. The envelope's `team`
/// is not written: `pos` says it (the HTTP layer refuses an envelope of another team than the
/// request's, and migration 5 checked it of every old row).
fn insert_log_row(
    insert: &mut rusqlite::Statement<'_>,
    env: &Envelope,
    pos: i64,
    author: i64,
) -> Result<(), StorageError> {
    insert.execute(params![
        pos,
        env.doc.as_bytes(),
        env.id.as_bytes(),
        env.kind.code(),
        i64_of(env.covers)?,
        env.v,
        env.epoch,
        author,
        env.nonce,
        env.sig,
        env.ciphertext,
    ])?;
    Ok(())
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Worker => "worker",
        Role::Lead => "lead",
    }
}

fn i64_of(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n)
        .map_err(|_| StorageError::Corrupt(format!("{n} does not fit SQLite's INTEGER")))
}

fn u64_of(n: i64) -> Result<u64, StorageError> {
    u64::try_from(n).map_err(|_| StorageError::Corrupt(format!("negative counter {n}")))
}

fn array_of<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], StorageError> {
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| StorageError::Corrupt(format!("{what} has {} bytes, not {N}", bytes.len())))
}

/// A `devices` row as read.
type DeviceRow = (Vec<u8>, Vec<u8>, Vec<u8>, String, bool);

const DEVICE_COLUMNS: &str = "id, sign_pk, kx_pk, role, revoked";

fn read_device_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    read_device_row_at(row, 0)
}

/// Reads the [`DEVICE_COLUMNS`] starting at column `at`.
fn read_device_row_at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<DeviceRow> {
    Ok((
        row.get(at)?,
        row.get(at + 1)?,
        row.get(at + 2)?,
        row.get(at + 3)?,
        row.get(at + 4)?,
    ))
}

fn device_info((id, sign_pk, kx_pk, role, revoked): DeviceRow) -> Result<DeviceInfo, StorageError> {
    let role = match role.as_str() {
        "worker" => Role::Worker,
        "lead" => Role::Lead,
        other => return Err(StorageError::Corrupt(format!("unknown role {other:?}"))),
    };
    Ok(DeviceInfo {
        keys: DeviceKeys {
            id: DeviceId::from_bytes(array_of(id, "device id")?),
            sign_pk: array_of(sign_pk, "sign_pk")?,
            kx_pk: array_of(kx_pk, "kx_pk")?,
            role,
        },
        revoked,
    })
}

impl SqliteStorage {
    /// Opens (creating if needed) `relay.sqlite3` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut writer = open_connection(&path)?;
        let found = migrate(&mut writer)?;
        let page_size: i64 = writer.pragma_query_value(None, "page_size", |r| r.get(0))?;
        if (1..6).contains(&found) || page_size != PAGE_SIZE {
            // Migrations 5 and 6 rewrote the whole log and dropped the old copy; VACUUM (which
            // cannot run inside a migration's transaction) gives the freed pages back to the
            // disk, and writes the file in pages of PAGE_SIZE.
            rebuild(&writer)?;
            // A fresh connection: on the one that left WAL mode and came back, the checkpoint
            // below failed with SQLITE_LOCKED (seen with the bundled SQLite; the cause is not
            // pinned down, a new connection does not have it).
            drop(writer);
            writer = open_connection(&path)?;
        }
        // An erasure acknowledged as pending (or cut off by a crash before its checkpoint) is
        // wiped here, before any request is served.
        if !super::writer::wipe(&writer, super::writer::WIPE_BUDGET)? {
            tracing::warn!("the database's WAL could not be checkpointed at start");
        }
        let devices = Arc::new(DeviceCache::load(&writer)?);
        Ok(SqliteStorage {
            path,
            writer: Writer::start(writer)?,
            readers: ReaderPool::default(),
            devices,
        })
    }

    /// Runs `f` on the writer connection inside a transaction, together with whatever other
    /// writes are queued (group commit), and returns once that transaction is on disk. Only `f`'s
    /// own changes are rolled back if it returns an error.
    fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.writer.run(f, |_| false, None)
    }

    /// Runs `f` on a pooled reader connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let conn = self.readers.lease(&self.path)?;
        f(&conn)
    }
}

fn team_exists(conn: &Connection, team: TeamId) -> Result<bool, StorageError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM teams WHERE id = ?1",
            [team.as_bytes()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn insert_device(
    conn: &Connection,
    team: TeamId,
    d: &DeviceKeys,
    now_ms: i64,
) -> Result<(), StorageError> {
    let inserted = conn.execute(
        "INSERT INTO devices (team, id, sign_pk, kx_pk, role, revoked, added_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6) ON CONFLICT DO NOTHING",
        params![
            team.as_bytes(),
            d.id.as_bytes(),
            d.sign_pk,
            d.kx_pk,
            role_str(d.role),
            now_ms
        ],
    )?;
    if inserted == 0 {
        return Err(StorageError::DeviceExists);
    }
    Ok(())
}

impl Storage for SqliteStorage {
    fn create_team(
        &self,
        team: TeamId,
        founder: &DeviceKeys,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let founder = founder.clone();
        let cached = self.devices.added(founder.clone());
        self.writer.run(
            move |tx| {
                let inserted = tx.execute(
                    "INSERT INTO teams (id, head, created_ms) VALUES (?1, 0, ?2) ON CONFLICT DO NOTHING",
                    params![team.as_bytes(), now_ms],
                )?;
                if inserted == 0 {
                    return Err(StorageError::TeamExists);
                }
                insert_device(tx, team, &founder, now_ms)?;
                Ok(team)
            },
            |_| false,
            Some(cached),
        )?;
        Ok(())
    }

    fn add_device(
        &self,
        team: TeamId,
        device: &DeviceKeys,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let device = device.clone();
        let cached = self.devices.added(device.clone());
        self.writer.run(
            move |tx| {
                if !team_exists(tx, team)? {
                    return Err(StorageError::TeamNotFound);
                }
                insert_device(tx, team, &device, now_ms)?;
                Ok(team)
            },
            |_| false,
            Some(cached),
        )?;
        Ok(())
    }

    fn device(&self, team: TeamId, id: DeviceId) -> Result<Option<DeviceInfo>, StorageError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE team = ?1 AND id = ?2"
            ))?
            .query_row(params![team.as_bytes(), id.as_bytes()], read_device_row)
            .optional()?
            .map(device_info)
            .transpose()
        })
    }

    fn device_in_any_team(&self, id: DeviceId) -> Result<Option<DeviceInfo>, StorageError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1 LIMIT 1"
            ))?
            .query_row([id.as_bytes()], read_device_row)
            .optional()?
            .map(device_info)
            .transpose()
        })
    }

    fn list_devices(&self, team: TeamId) -> Result<Vec<DeviceInfo>, StorageError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE team = ?1 ORDER BY added_ms, id"
            ))?;
            let rows = stmt.query_map([team.as_bytes()], read_device_row)?;
            rows.map(|row| device_info(row?)).collect()
        })
    }

    fn revoke_device(&self, team: TeamId, id: DeviceId) -> Result<u64, StorageError> {
        self.writer.run(
            move |tx| {
                let changed = tx.execute(
                    "UPDATE devices SET revoked = 1 WHERE team = ?1 AND id = ?2",
                    params![team.as_bytes(), id.as_bytes()],
                )?;
                if changed == 0 {
                    return Err(StorageError::DeviceNotFound);
                }
                // Redeemed ones stay: they record who joined, which the leads check.
                let cancelled = tx.execute(
                    "DELETE FROM invites WHERE team = ?1 AND created_by = ?2 AND redeemed_by IS NULL",
                    params![team.as_bytes(), id.as_bytes()],
                )?;
                Ok(cancelled as u64)
            },
            |_| false,
            Some(self.devices.revoked(team, id)),
        )
    }

    fn lookup_device_now(&self, team: TeamId, id: DeviceId) -> Option<DeviceLookup> {
        Some(self.devices.lookup(team, id))
    }

    fn post_bundle(
        &self,
        team: TeamId,
        from: DeviceId,
        to: DeviceId,
        blob: &[u8],
        now_ms: i64,
        quota: &MailboxQuota,
    ) -> Result<u64, StorageError> {
        let blob = blob.to_vec();
        let quota = *quota;
        self.write(move |tx| {
            let known = tx
                .query_row(
                    "SELECT 1 FROM devices WHERE team = ?1 AND id = ?2 AND revoked = 0",
                    params![team.as_bytes(), to.as_bytes()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !known {
                return Err(StorageError::DeviceNotFound);
            }
            let size = blob.len() as u64;
            let waiting = |column: &str, device: DeviceId| -> Result<(u64, u64), StorageError> {
                let (count, bytes): (i64, i64) = tx.query_row(
                    &format!(
                        "SELECT count(*), coalesce(sum(length(blob)), 0) FROM bundles \
                         WHERE team = ?1 AND {column} = ?2"
                    ),
                    params![team.as_bytes(), device.as_bytes()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                Ok((u64_of(count)?, u64_of(bytes)?))
            };
            let (count, bytes) = waiting("recipient", to)?;
            if count >= u64::from(quota.recipient_bundles)
                || bytes + size > quota.recipient_bytes
            {
                return Err(StorageError::MailboxFull(format!(
                    "the addressee's mailbox holds {count} bundles ({bytes} bytes), the most \
                     this relay keeps is {} bundles or {} bytes; it empties when the addressee \
                     syncs",
                    quota.recipient_bundles, quota.recipient_bytes
                )));
            }
            let (count, bytes) = waiting("sender", from)?;
            if count >= u64::from(quota.sender_bundles) || bytes + size > quota.sender_bytes {
                return Err(StorageError::MailboxFull(format!(
                    "this device has {count} bundles ({bytes} bytes) waiting for their \
                     addressees, the most this relay keeps is {} bundles or {} bytes",
                    quota.sender_bundles, quota.sender_bytes
                )));
            }
            tx.execute(
                "INSERT INTO bundles (team, sender, recipient, blob, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![team.as_bytes(), from.as_bytes(), to.as_bytes(), blob, now_ms],
            )?;
            u64_of(tx.last_insert_rowid())
        })
    }

    fn bundles_for(
        &self,
        team: TeamId,
        to: DeviceId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<BundlePage, StorageError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, sender, blob FROM bundles WHERE team = ?1 AND recipient = ?2 AND id > ?3 \
                 ORDER BY id LIMIT ?4",
            )?;
            let mut rows = stmt.query(params![
                team.as_bytes(),
                to.as_bytes(),
                i64_of(after)?,
                i64::from(limit) + 1
            ])?;
            let mut bundles = Vec::new();
            let mut bytes = 0usize;
            let mut more = false;
            while let Some(row) = rows.next()? {
                let blob: Vec<u8> = row.get(2)?;
                if bundles.len() >= limit as usize
                    || (!bundles.is_empty() && bytes + blob.len() > max_bytes)
                {
                    more = true;
                    break;
                }
                bytes += blob.len();
                bundles.push(Bundle {
                    id: u64_of(row.get(0)?)?,
                    from: DeviceId::from_bytes(array_of(row.get(1)?, "bundle sender")?),
                    blob,
                });
            }
            Ok(BundlePage { bundles, more })
        })
    }

    fn delete_bundle(&self, team: TeamId, to: DeviceId, id: u64) -> Result<bool, StorageError> {
        let id = i64::try_from(id).unwrap_or(-1);
        self.write(move |tx| {
            Ok(tx.execute(
                "DELETE FROM bundles WHERE id = ?1 AND team = ?2 AND recipient = ?3",
                params![id, team.as_bytes(), to.as_bytes()],
            )? == 1)
        })
    }

    fn append(&self, team: TeamId, envelopes: &[Envelope]) -> Result<AppendOutcome, StorageError> {
        // The writer thread needs its own copy; the envelopes go into their columns as they are.
        let entries = envelopes.to_vec();
        // An erasure checkpoints the WAL before it is acknowledged: old frames of the erased
        // pages would otherwise stay in the WAL until the next checkpoint.
        self.writer.run(
            move |tx| append_entries(tx, team, &entries),
            |outcome: &AppendOutcome| outcome.erased,
            None,
        )
    }

    fn pull(
        &self,
        team: TeamId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<PullPage, StorageError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let (team_n, head) = team_number(&tx, team)?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT l.pos, {SQLITE_ENVELOPE_COLUMNS} FROM log l LEFT JOIN authors a ON a.n = l.author
                 WHERE l.pos > ?1 AND l.pos <= ?2 ORDER BY l.pos LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![
                log_pos(team_n, after.min(MAX_SEQ))?,
                log_pos(team_n, MAX_SEQ)?,
                i64::from(limit) + 1
            ])?;
            let mut page = PageBuilder::new(limit, max_bytes);
            while let Some(row) = rows.next()? {
                let log_row = LogRow {
                    v: row.get(1)?,
                    doc: row.get(2)?,
                    id: row.get(3)?,
                    kind: row.get(4)?,
                    epoch: row.get(5)?,
                    author: row.get(6)?,
                    covers: row.get(7)?,
                    nonce: row.get(8)?,
                    ciphertext: row.get(9)?,
                    sig: row.get(10)?,
                };
                if !page.push(team, seq_at(team_n, row.get(0)?)?, log_row)? {
                    break;
                }
            }
            Ok(page.finish(head))
        })
    }

    fn head(&self, team: TeamId) -> Result<Option<u64>, StorageError> {
        self.read(|conn| {
            let head: Option<i64> = conn
                .prepare_cached("SELECT head FROM teams WHERE id = ?1")?
                .query_row([team.as_bytes()], |r| r.get(0))
                .optional()?;
            head.map(u64_of).transpose()
        })
    }

    fn create_invite(
        &self,
        team: TeamId,
        by: DeviceId,
        invite: &CreateInvite,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let invite = invite.clone();
        self.write(move |tx| {
            if !team_exists(tx, team)? {
                return Err(StorageError::TeamNotFound);
            }
            // The request was authenticated against the device cache before this write queued; a
            // revocation that committed in between must not leave this invite behind it.
            let revoked: bool = tx
                .query_row(
                    "SELECT revoked FROM devices WHERE team = ?1 AND id = ?2",
                    params![team.as_bytes(), by.as_bytes()],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(StorageError::DeviceNotFound)?;
            if revoked {
                return Err(StorageError::DeviceRevoked);
            }
            let inserted = tx.execute(
                "INSERT INTO invites (id, team, auth_key, role, expires_ms, blob, created_by, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                params![
                    invite.id.as_bytes(),
                    team.as_bytes(),
                    invite.auth_key,
                    role_str(invite.role),
                    invite.expires_ms,
                    invite.blob,
                    by.as_bytes(),
                    now_ms
                ],
            )?;
            if inserted == 0 {
                return Err(StorageError::InviteUsed);
            }
            Ok(())
        })
    }

    fn invite(&self, id: InviteId) -> Result<Option<StoredInvite>, StorageError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT team, auth_key, role, expires_ms, blob, redeemed_by FROM invites WHERE id = ?1",
                [id.as_bytes()],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                },
            )
            .optional()?
            .map(|(team, auth_key, role, expires_ms, blob, redeemed)| {
                Ok(StoredInvite {
                    team: TeamId::from_bytes(array_of(team, "team")?),
                    auth_key: array_of(auth_key, "auth_key")?,
                    role: if role == "lead" { Role::Lead } else { Role::Worker },
                    expires_ms,
                    blob,
                    redeemed: redeemed.is_some(),
                })
            })
            .transpose()
        })
    }

    fn redeem_invite(
        &self,
        id: InviteId,
        device: &DeviceKeys,
        confirm: &[u8; 32],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let device = device.clone();
        let confirm = *confirm;
        let cached = self.devices.added(device.clone());
        self.writer.run(
            move |tx| {
                let (team, redeemed, expires_ms): (Vec<u8>, Option<Vec<u8>>, i64) = tx
                    .query_row(
                        "SELECT team, redeemed_by, expires_ms FROM invites WHERE id = ?1",
                        [id.as_bytes()],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?
                    .ok_or(StorageError::InviteNotFound)?;
                if redeemed.is_some() {
                    return Err(StorageError::InviteUsed);
                }
                if expires_ms < now_ms {
                    return Err(StorageError::InviteExpired);
                }
                let team = TeamId::from_bytes(array_of(team, "team")?);
                insert_device(tx, team, &device, now_ms)?;
                tx.execute(
                    "UPDATE invites SET redeemed_by = ?2, confirm = ?3 WHERE id = ?1",
                    params![id.as_bytes(), device.id.as_bytes(), confirm],
                )?;
                Ok(team)
            },
            |_| false,
            Some(cached),
        )?;
        Ok(())
    }

    fn cancel_invite(&self, team: TeamId, id: InviteId) -> Result<bool, StorageError> {
        self.write(move |tx| {
            let redeemed: Option<Option<Vec<u8>>> = tx
                .query_row(
                    "SELECT redeemed_by FROM invites WHERE id = ?1 AND team = ?2",
                    params![id.as_bytes(), team.as_bytes()],
                    |r| r.get(0),
                )
                .optional()?;
            match redeemed {
                None => Ok(false),
                Some(Some(_)) => Err(StorageError::InviteUsed),
                Some(None) => {
                    tx.execute("DELETE FROM invites WHERE id = ?1", [id.as_bytes()])?;
                    Ok(true)
                }
            }
        })
    }

    fn list_invites(&self, team: TeamId) -> Result<Vec<InviteInfo>, StorageError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT i.id, i.role, i.expires_ms, i.confirm, {cols}
                 FROM invites i LEFT JOIN devices d ON d.team = i.team AND d.id = i.redeemed_by
                 WHERE i.team = ?1 ORDER BY i.created_ms, i.id",
                cols = DEVICE_COLUMNS
                    .split(',')
                    .map(|c| format!("d.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
            let mut rows = stmt.query([team.as_bytes()])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let id: Vec<u8> = r.get(0)?;
                let role: String = r.get(1)?;
                let confirm = r
                    .get::<_, Option<Vec<u8>>>(3)?
                    .map(|c| array_of(c, "invite confirm"))
                    .transpose()?;
                let has_device: Option<Vec<u8>> = r.get(4)?;
                let redeemed_by = match has_device {
                    Some(_) => Some(device_info(read_device_row_at(r, 4)?)?.keys),
                    None => None,
                };
                out.push(InviteInfo {
                    id: InviteId::from_bytes(array_of(id, "invite id")?),
                    role: if role == "lead" {
                        Role::Lead
                    } else {
                        Role::Worker
                    },
                    expires_ms: r.get(2)?,
                    redeemed_by,
                    confirm,
                });
            }
            Ok(out)
        })
    }
}

/// A snapshot's compaction: the change and snapshot entries of record `?1` at positions `?2..=?3`
/// (its team's, up to `covers`). The `substr` is `log_by_doc`'s expression, so the search goes
/// through that index; the whole doc is compared on the row.
const COMPACT: &str = "DELETE FROM log WHERE substr(doc, 1, 8) = substr(?1, 1, 8) AND doc = ?1
     AND pos BETWEEN ?2 AND ?3 AND kind IN (1, 2)";

/// A tombstone's erasure: every entry of record `?1` at positions `?2..=?3` (its team's, before
/// the tombstone), through `log_by_doc` like [`COMPACT`].
const ERASE: &str = "DELETE FROM log WHERE substr(doc, 1, 8) = substr(?1, 1, 8) AND doc = ?1
     AND pos BETWEEN ?2 AND ?3";

/// The number (`authors.n`) of the device `author`, given it now if it authors its first
/// envelope.
fn author_number(conn: &Connection, author: DeviceId) -> Result<i64, StorageError> {
    conn.prepare_cached("INSERT INTO authors (id) VALUES (?1) ON CONFLICT (id) DO NOTHING")?
        .execute([author.as_bytes()])?;
    Ok(conn
        .prepare_cached("SELECT n FROM authors WHERE id = ?1")?
        .query_row([author.as_bytes()], |r| r.get(0))?)
}

/// The number (`teams.n`) and head of `team`; [`StorageError::TeamNotFound`] if there is none.
fn team_number(conn: &Connection, team: TeamId) -> Result<(i64, u64), StorageError> {
    let found: Option<(i64, i64)> = conn
        .prepare_cached("SELECT n, head FROM teams WHERE id = ?1")?
        .query_row([team.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (n, head) = found.ok_or(StorageError::TeamNotFound)?;
    Ok((n, u64_of(head)?))
}

/// Appends a batch (see [`Storage::append`]) inside the writer's transaction.
fn append_entries(
    tx: &Connection,
    team: TeamId,
    entries: &[Envelope],
) -> Result<AppendOutcome, StorageError> {
    let (team_n, mut head) = team_number(tx, team)?;
    let mut outcome = AppendOutcome {
        results: Vec::with_capacity(entries.len()),
        head,
        appended: 0,
        dropped: 0,
        erased: false,
    };
    let mut seen = tx.prepare_cached("SELECT seq FROM envelope_ids WHERE team = ?1 AND id = ?2")?;
    let mut tombstone =
        tx.prepare_cached("SELECT seq FROM tombstones WHERE team = ?1 AND doc = ?2")?;
    let mut remember =
        tx.prepare_cached("INSERT INTO envelope_ids (team, id, seq) VALUES (?1, ?2, ?3)")?;
    let mut insert = tx.prepare_cached(INSERT_LOG)?;
    let mut last_author: Option<(DeviceId, i64)> = None;
    // A team's entries of one record are a range of `log_by_doc`: (the doc's first 8 bytes, pos)
    // with pos in the team's positions from `first`; the row's whole doc is compared too.
    let first = log_pos(team_n, 1)?;
    for env in entries {
        let existing: Option<i64> = seen
            .query_row(params![team_n, env.id.as_bytes()], |r| r.get(0))
            .optional()?;
        if let Some(seq) = existing {
            // A tombstone pushed again (its first push was answered `erasure_pending`): the
            // answer waits for the wipe again.
            outcome.erased |= env.kind == EnvelopeKind::Tombstone;
            outcome.results.push(PushResult {
                id: env.id,
                seq: u64_of(seq)?,
                duplicate: true,
            });
            continue;
        }
        // A record that was erased stays erased: late changes are acknowledged (so the
        // sender's outbox drains) but never stored.
        let erased: Option<i64> = tombstone
            .query_row(params![team.as_bytes(), env.doc.as_bytes()], |r| r.get(0))
            .optional()?;
        if let Some(seq) = erased {
            outcome.erased |= env.kind == EnvelopeKind::Tombstone;
            outcome.results.push(PushResult {
                id: env.id,
                seq: u64_of(seq)?,
                duplicate: true,
            });
            continue;
        }
        if env.kind == EnvelopeKind::Snapshot && env.covers > head {
            return Err(StorageError::CoversBeyondHead {
                covers: env.covers,
                head,
            });
        }
        head += 1;
        let seq = i64_of(head)?;
        let pos = log_pos(team_n, head)?;
        // A batch is almost always one device's.
        let author_n = match last_author {
            Some((id, n)) if id == env.author => n,
            _ => author_number(tx, env.author)?,
        };
        last_author = Some((env.author, author_n));
        insert_log_row(&mut insert, env, pos, author_n)?;
        remember.execute(params![team_n, env.id.as_bytes(), seq])?;
        outcome.dropped += match env.kind {
            EnvelopeKind::Change => 0,
            EnvelopeKind::Snapshot => tx.prepare_cached(COMPACT)?.execute(params![
                env.doc.as_bytes(),
                first,
                log_pos(team_n, env.covers)?
            ])? as u64,
            EnvelopeKind::Tombstone => {
                tx.execute(
                    "INSERT OR REPLACE INTO tombstones (team, doc, seq) VALUES (?1, ?2, ?3)",
                    params![team.as_bytes(), env.doc.as_bytes(), seq],
                )?;
                outcome.erased = true;
                tx.prepare_cached(ERASE)?
                    .execute(params![env.doc.as_bytes(), first, pos - 1])? as u64
            }
        };
        outcome.appended += 1;
        outcome.results.push(PushResult {
            id: env.id,
            seq: head,
            duplicate: false,
        });
    }
    tx.prepare_cached("UPDATE teams SET head = ?1 WHERE id = ?2")?
        .execute(params![i64_of(head)?, team.as_bytes()])?;
    outcome.head = head;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use streetsync_wire::{ENVELOPE_VERSION, EnvelopeId, RecordId};

    use super::*;

    fn keys(n: u8, role: Role) -> DeviceKeys {
        DeviceKeys {
            id: DeviceId::from_bytes([n; 16]),
            sign_pk: [n; 32],
            kx_pk: [n; 32],
            role,
        }
    }

    fn env(team: TeamId, doc: RecordId, kind: EnvelopeKind, covers: u64) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            team,
            doc,
            id: EnvelopeId::random(),
            kind,
            epoch: 1,
            author: DeviceId::from_bytes([1; 16]),
            covers,
            nonce: [0; 12],
            ciphertext: vec![1, 2, 3],
            sig: [0; 64],
        }
    }

    /// Pulls, compaction and erasure search by key, never scan the log.
    #[test]
    fn log_queries_use_the_key_and_log_by_doc() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(dir.path()).unwrap();
        let pull = format!(
            "SELECT l.pos, {SQLITE_ENVELOPE_COLUMNS} FROM log l LEFT JOIN authors a ON a.n = l.author
             WHERE l.pos > ?1 AND l.pos <= ?2 ORDER BY l.pos LIMIT ?3"
        );
        let plans = s
            .write(move |c| {
                let mut plans = Vec::new();
                for sql in [pull.as_str(), COMPACT, ERASE] {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let steps = stmt
                        .query_map(params![vec![0u8; 16], 1, 2], |r| r.get::<_, String>(3))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    plans.push(steps.join("; "));
                }
                Ok(plans)
            })
            .unwrap();
        assert!(
            plans[0].contains("SEARCH l USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
            "{}",
            plans[0]
        );
        for plan in &plans[1..] {
            assert!(
                plan.contains("USING INDEX log_by_doc (<expr>=? AND rowid>? AND rowid<?)"),
                "{plan}"
            );
        }
    }

    /// Two records whose ids share the 8 bytes `log_by_doc` keeps: a snapshot or a tombstone of
    /// one leaves the other's entries alone, in its own team and in another.
    #[test]
    fn records_sharing_an_id_prefix_are_compacted_and_erased_apart() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(dir.path()).unwrap();
        let (a, b) = (TeamId::random(), TeamId::random());
        s.create_team(a, &keys(1, Role::Lead), 0).unwrap();
        s.create_team(b, &keys(2, Role::Lead), 0).unwrap();
        let (one, two) = (RecordId::from_bytes([7; 16]), {
            let mut id = [7; 16];
            id[15] = 8;
            RecordId::from_bytes(id)
        });
        for team in [a, b] {
            let batch = [
                env(team, one, EnvelopeKind::Change, 0),
                env(team, two, EnvelopeKind::Change, 0),
                env(team, one, EnvelopeKind::Change, 0),
            ];
            s.append(team, &batch).unwrap();
        }
        let snapshot = s
            .append(a, &[env(a, one, EnvelopeKind::Snapshot, 3)])
            .unwrap();
        assert_eq!(snapshot.dropped, 2);
        assert_eq!(seqs_of(&s, a), [2, 4]);
        let tombstone = s
            .append(a, &[env(a, two, EnvelopeKind::Tombstone, 0)])
            .unwrap();
        assert_eq!(tombstone.dropped, 1);
        assert_eq!(seqs_of(&s, a), [4, 5]);
        assert_eq!(seqs_of(&s, b), [1, 2, 3]);
    }

    /// The pull reads the columns of both backends' list, in its order.
    #[test]
    fn sqlite_envelope_columns_are_the_shared_list() {
        let names: Vec<&str> = SQLITE_ENVELOPE_COLUMNS
            .split(", ")
            .map(|c| match c {
                "a.id" => "author",
                other => other.trim_start_matches("l."),
            })
            .collect();
        assert_eq!(names.join(", "), log_row::ENVELOPE_COLUMNS);
    }

    #[test]
    fn migrations_are_idempotent_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStorage::open(dir.path()).unwrap());
        let s = SqliteStorage::open(dir.path()).unwrap();
        let v: i64 = s
            .write(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(v, MIGRATIONS.last().map(|(v, _, _)| *v).unwrap());
        assert_eq!(v, 6);
        let (mode, page_size, foreign_keys): (String, i64, bool) = s
            .write(|c| {
                Ok((
                    c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
                    c.pragma_query_value(None, "page_size", |r| r.get(0))?,
                    c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!(
            (mode.as_str(), page_size, foreign_keys),
            ("wal", PAGE_SIZE, true)
        );
        s.write(|c| Ok(c.pragma_update(None, "user_version", 99)?))
            .unwrap();
        drop(s);
        assert!(matches!(
            SqliteStorage::open(dir.path()),
            Err(StorageError::SchemaTooNew {
                found: 99,
                known: 6
            })
        ));
    }

    /// A version-2 file gains `confirm` (NULL on old rows) and loses the open invites of devices
    /// revoked before revocation started to cancel them; everything else stays.
    #[test]
    fn migration_3_upgrades_a_version_2_file() {
        let dir = tempfile::tempdir().unwrap();
        let team = TeamId::random();
        let (current, revoked) = (keys(1, Role::Lead), keys(2, Role::Lead));
        let invite = |n: u8, by: &DeviceKeys, redeemed: bool| {
            format!(
                "INSERT INTO invites (id, team, auth_key, role, expires_ms, blob, created_by, redeemed_by, created_ms)
                 VALUES (x'{}', x'{}', x'{}', 'worker', 1, x'00', x'{}', {}, {n});",
                hex::encode([n; 16]),
                hex::encode(team.as_bytes()),
                hex::encode([n; 32]),
                hex::encode(by.id.as_bytes()),
                if redeemed { format!("x'{}'", hex::encode([9u8; 16])) } else { "NULL".into() },
            )
        };
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            for (_, sql, _) in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO teams (id, head, created_ms) VALUES (?1, 0, 0)",
                [team.as_bytes()],
            )
            .unwrap();
            for (d, is_revoked) in [(&current, 0), (&revoked, 1)] {
                conn.execute(
                    "INSERT INTO devices (team, id, sign_pk, kx_pk, role, revoked, added_ms)
                     VALUES (?1, ?2, ?3, ?4, 'lead', ?5, 0)",
                    params![
                        team.as_bytes(),
                        d.id.as_bytes(),
                        d.sign_pk,
                        d.kx_pk,
                        is_revoked
                    ],
                )
                .unwrap();
            }
            conn.execute_batch(
                &[
                    invite(3, &current, false),
                    invite(4, &revoked, false),
                    invite(5, &revoked, true),
                ]
                .concat(),
            )
            .unwrap();
        }
        let s = SqliteStorage::open(dir.path()).unwrap();
        let v: i64 = s
            .write(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(v, MIGRATIONS.last().map(|(v, _, _)| *v).unwrap());
        let left = s.list_invites(team).unwrap();
        assert_eq!(
            left.iter().map(|i| i.id).collect::<Vec<_>>(),
            [InviteId::from_bytes([3; 16]), InviteId::from_bytes([5; 16])]
        );
        assert!(left.iter().all(|i| i.confirm.is_none()));
        // The open invite of the current lead still redeems, and keeps its confirmation.
        s.redeem_invite(
            InviteId::from_bytes([3; 16]),
            &keys(6, Role::Worker),
            &[6; 32],
            0,
        )
        .unwrap();
        let redeemed = s.list_invites(team).unwrap();
        assert_eq!(redeemed[0].confirm, Some([6; 32]));
        assert_eq!(
            redeemed[0].redeemed_by.as_ref().map(|k| k.id),
            Some(keys(6, Role::Worker).id)
        );
    }

    /// Real signed envelopes of every kind, with the edge values of each field.
    fn signed_envelopes(team: TeamId) -> (Vec<Envelope>, Vec<u8>) {
        use ring::signature::{Ed25519KeyPair, KeyPair as _};
        let key = Ed25519KeyPair::from_seed_unchecked(&[5; 32]).unwrap();
        let author = DeviceId::from_public_key(key.public_key().as_ref());
        let doc = RecordId::random();
        let shapes: [(EnvelopeKind, u64, u32, Vec<u8>); 5] = [
            (EnvelopeKind::Change, 0, 0, vec![0]),
            (EnvelopeKind::Change, 0, u32::MAX, (0..=255).collect()),
            (EnvelopeKind::Change, 0, 7, vec![0xff; 3000]),
            (EnvelopeKind::Snapshot, 2, 1, b"\"\\\n<>".to_vec()),
            (EnvelopeKind::Tombstone, 0, 1, Vec::new()),
        ];
        let envelopes = shapes
            .into_iter()
            .enumerate()
            .map(|(n, (kind, covers, epoch, ciphertext))| {
                let mut e = Envelope {
                    v: ENVELOPE_VERSION,
                    team,
                    doc: if n == 0 { RecordId::random() } else { doc },
                    id: EnvelopeId::random(),
                    kind,
                    epoch,
                    author,
                    covers,
                    nonce: [n as u8; 12],
                    ciphertext,
                    sig: [0; 64],
                };
                e.sign(&key);
                e
            })
            .collect();
        (envelopes, key.public_key().as_ref().to_vec())
    }

    /// Writes a version-4 file (the log as JSON bodies) holding `envelopes` as the relay of
    /// version 4 wrote them, seq 1, 2, ...
    fn write_version_4(path: &Path, team: TeamId, envelopes: &[Envelope]) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        for (_, sql, _) in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO teams (id, head, created_ms) VALUES (?1, ?2, 0)",
            params![team.as_bytes(), envelopes.len() as i64],
        )
        .unwrap();
        envelopes
            .iter()
            .zip(1i64..)
            .map(|(e, seq)| {
                // The version-4 relay's append: the body is the envelope's JSON.
                let body = serde_json::to_string(e).unwrap();
                conn.execute(
                    "INSERT INTO log (team, seq, doc, envelope_id, kind, covers, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        team.as_bytes(),
                        seq,
                        e.doc.as_bytes(),
                        e.id.as_bytes(),
                        e.kind.code(),
                        e.covers as i64,
                        body
                    ],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO envelope_ids (team, id, seq) VALUES (?1, ?2, ?3)",
                    params![team.as_bytes(), e.id.as_bytes(), seq],
                )
                .unwrap();
                body
            })
            .collect()
    }

    /// Migration 5 converts a version-4 file in place: every envelope pulls back as the same
    /// JSON, byte for byte, as the version-4 relay handed out (its stored body), its signature
    /// still verifies, the JSON table is gone, and the log keeps working (duplicates, appends).
    #[test]
    fn migration_5_moves_json_bodies_into_binary_columns() {
        let dir = tempfile::tempdir().unwrap();
        let team = TeamId::random();
        let (envelopes, pk) = signed_envelopes(team);
        let bodies = write_version_4(&dir.path().join(DB_FILE), team, &envelopes);
        let s = SqliteStorage::open(dir.path()).unwrap();
        let (version, json_tables): (i64, i64) = s
            .write(|c| {
                Ok((
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                    c.query_row(
                        "SELECT count(*) FROM sqlite_master WHERE name = 'log_json'",
                        [],
                        |r| r.get(0),
                    )?,
                ))
            })
            .unwrap();
        assert_eq!((version, json_tables), (6, 0));
        // The migrated schema is the one a fresh file gets.
        let fresh_dir = tempfile::tempdir().unwrap();
        assert_eq!(
            schema(&s),
            schema(&SqliteStorage::open(fresh_dir.path()).unwrap())
        );
        let page = s.pull(team, 0, 100, usize::MAX).unwrap();
        assert_eq!(page.head, envelopes.len() as u64);
        assert_eq!(page.entries.len(), envelopes.len());
        for ((entry, body), pushed) in page.entries.iter().zip(&bodies).zip(&envelopes) {
            assert_eq!(entry.envelope.get(), body, "entry {}", entry.seq);
            let back: Envelope = serde_json::from_str(entry.envelope.get()).unwrap();
            assert_eq!(&back, pushed);
            back.verify(&pk).unwrap();
        }
        // A retry of a migrated envelope is still a duplicate; a new one gets the next seq.
        let again = s.append(team, &envelopes[..1]).unwrap();
        assert!(again.results[0].duplicate);
        let (more, _) = signed_envelopes(team);
        let next = s.append(team, &more[..1]).unwrap();
        assert_eq!(next.results[0].seq, envelopes.len() as u64 + 1);
    }

    /// Every table and index of the file, with its SQL.
    fn schema(s: &SqliteStorage) -> Vec<(String, Option<String>)> {
        s.write(|c| {
            let mut stmt = c.prepare("SELECT name, sql FROM sqlite_master ORDER BY type, name")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .unwrap()
    }

    /// Writes a version-5 file (4 KiB pages, WAL, the log keyed by `(team, seq)` with the team's
    /// 16-byte id) holding each team's `(seq, envelope)` entries as the relay of version 5 wrote
    /// them: the log row, its `envelope_ids` row, the team's head. Each team also gets a device,
    /// which refers to it.
    fn write_version_5(path: &Path, teams: &[(TeamId, Vec<(i64, Envelope)>)]) {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        for (_, sql, step) in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
            if let Some(step) = step {
                step(&conn).unwrap();
            }
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        for (n, (team, entries)) in teams.iter().enumerate() {
            conn.execute(
                "INSERT INTO teams (id, head, created_ms) VALUES (?1, 0, ?2)",
                params![team.as_bytes(), n as i64],
            )
            .unwrap();
            let d = keys(n as u8 + 1, Role::Lead);
            conn.execute(
                "INSERT INTO devices (team, id, sign_pk, kx_pk, role, revoked, added_ms)
                 VALUES (?1, ?2, ?3, ?4, 'lead', 0, 0)",
                params![team.as_bytes(), d.id.as_bytes(), d.sign_pk, d.kx_pk],
            )
            .unwrap();
            for (seq, e) in entries {
                conn.execute(
                    "INSERT INTO log (team, seq, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        team.as_bytes(),
                        seq,
                        e.doc.as_bytes(),
                        e.id.as_bytes(),
                        e.kind.code(),
                        e.covers as i64,
                        e.v,
                        e.epoch,
                        e.author.as_bytes(),
                        e.nonce,
                        e.sig,
                        e.ciphertext
                    ],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO envelope_ids (team, id, seq) VALUES (?1, ?2, ?3)",
                    params![team.as_bytes(), e.id.as_bytes(), seq],
                )
                .unwrap();
                conn.execute(
                    "UPDATE teams SET head = max(head, ?1) WHERE id = ?2",
                    params![seq, team.as_bytes()],
                )
                .unwrap();
            }
        }
    }

    /// Migration 6 converts a version-5 file in place: every team's entries pull back with the
    /// seqs they had and as the same envelopes, signatures and all; heads stay; a retry of a live
    /// or of a compacted envelope is still a duplicate with its old seq; an erased record stays
    /// erased; appends go on at head + 1 in each team; the devices still refer to their teams;
    /// and the file is rebuilt in 16 KiB pages with the schema of a fresh file.
    #[test]
    fn migration_6_moves_the_log_to_positions_keeping_every_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let (a, b) = (TeamId::random(), TeamId::random());
        let (a_envs, pk) = signed_envelopes(a);
        let (b_envs, _) = signed_envelopes(b);
        let a_entries: Vec<(i64, Envelope)> = (1i64..).zip(a_envs.iter().cloned()).collect();
        let b_entries: Vec<(i64, Envelope)> = (1i64..).zip(b_envs[..2].iter().cloned()).collect();
        write_version_5(&path, &[(a, a_entries.clone()), (b, b_entries.clone())]);
        let erased = RecordId::random();
        {
            let conn = Connection::open(&path).unwrap();
            // Compaction deleted entry 2 of `a`; its id stays in `envelope_ids`. A record of `a`
            // was erased.
            conn.execute(
                "DELETE FROM log WHERE seq = 2 AND team = ?1",
                [a.as_bytes()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO tombstones (team, doc, seq) VALUES (?1, ?2, 5)",
                params![a.as_bytes(), erased.as_bytes()],
            )
            .unwrap();
            let page_size: i64 = conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap();
            assert_eq!(page_size, 4096);
        }

        let s = SqliteStorage::open(dir.path()).unwrap();
        let (version, page_size, old_tables, broken): (i64, i64, i64, i64) = s
            .write(|c| {
                Ok((
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                    c.pragma_query_value(None, "page_size", |r| r.get(0))?,
                    c.query_row(
                        "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_v5'",
                        [],
                        |r| r.get(0),
                    )?,
                    c.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    })?,
                ))
            })
            .unwrap();
        assert_eq!(
            (version, page_size, old_tables, broken),
            (6, PAGE_SIZE, 0, 0)
        );
        let fresh_dir = tempfile::tempdir().unwrap();
        assert_eq!(
            schema(&s),
            schema(&SqliteStorage::open(fresh_dir.path()).unwrap())
        );

        // The same entries at the same seqs, the same envelopes.
        for (team, entries, head) in [(a, &a_entries, 5), (b, &b_entries, 2)] {
            let page = s.pull(team, 0, 100, usize::MAX).unwrap();
            assert_eq!(page.head, head);
            let expected: Vec<_> = entries
                .iter()
                .filter(|(seq, _)| team != a || *seq != 2)
                .collect();
            assert_eq!(page.entries.len(), expected.len());
            for (entry, (seq, pushed)) in page.entries.iter().zip(expected) {
                assert_eq!(entry.seq, *seq as u64);
                assert_eq!(entry.envelope.get(), serde_json::to_string(pushed).unwrap());
                let back: Envelope = serde_json::from_str(entry.envelope.get()).unwrap();
                back.verify(&pk).unwrap();
            }
        }
        let seqs = |team, after| -> Vec<u64> {
            let page = s.pull(team, after, 100, usize::MAX).unwrap();
            page.entries.iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs(a, 3), [4, 5]);
        assert_eq!(seqs(a, 1), [3, 4, 5]);
        assert_eq!(seqs(b, 1), [2]);
        assert_eq!(seqs(b, u64::MAX), Vec::<u64>::new());

        // Retries of a compacted and of a live envelope are duplicates with their old seqs; an
        // erased record's late change is acknowledged and not stored.
        let mut late = env(a, erased, EnvelopeKind::Change, 0);
        let again = s
            .append(a, &[a_envs[1].clone(), a_envs[3].clone(), late.clone()])
            .unwrap();
        let answered: Vec<_> = again.results.iter().map(|r| (r.seq, r.duplicate)).collect();
        assert_eq!(answered, [(2, true), (4, true), (5, true)]);
        assert_eq!((again.head, again.appended), (5, 0));
        // A retry in the other team is that team's own: `b`'s first envelope is not `a`'s.
        assert!(s.append(b, &b_envs[..1]).unwrap().results[0].duplicate);

        // New entries go on at head + 1 in each team, and a snapshot still compacts.
        late.doc = a_envs[1].doc;
        late.id = EnvelopeId::random();
        let next = s.append(a, &[late]).unwrap();
        assert_eq!((next.results[0].seq, next.results[0].duplicate), (6, false));
        let mut snapshot = env(a, a_envs[1].doc, EnvelopeKind::Snapshot, 6);
        snapshot.id = EnvelopeId::random();
        let compacted = s.append(a, &[snapshot]).unwrap();
        // Entries 3, 4 and 6 go; 5 is the record's tombstone envelope, which snapshots keep.
        assert_eq!((compacted.head, compacted.dropped), (7, 3));
        assert_eq!(seqs(a, 0), [1, 5, 7]);
        assert_eq!(
            s.append(b, &[env(b, RecordId::random(), EnvelopeKind::Change, 0)])
                .unwrap()
                .head,
            3
        );

        // The devices still belong to their teams, and a team created now gets the next number.
        assert_eq!(
            s.list_devices(a).unwrap()[0].keys.id,
            keys(1, Role::Lead).id
        );
        assert_eq!(
            s.list_devices(b).unwrap()[0].keys.id,
            keys(2, Role::Lead).id
        );
        let c = TeamId::random();
        s.create_team(c, &keys(7, Role::Lead), 9).unwrap();
        let numbers: Vec<i64> = s
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT n FROM teams ORDER BY created_ms")?;
                let rows = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .unwrap();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(
            s.append(c, &[env(c, RecordId::random(), EnvelopeKind::Change, 0)])
                .unwrap()
                .results[0]
                .seq,
            1
        );
        drop(s);
        // Reopening a migrated file neither migrates nor rebuilds it again.
        let s = SqliteStorage::open(dir.path()).unwrap();
        assert_eq!(seqs_of(&s, a), [1, 5, 7]);
    }

    fn seqs_of(s: &SqliteStorage, team: TeamId) -> Vec<u64> {
        let page = s.pull(team, 0, 100, usize::MAX).unwrap();
        page.entries.iter().map(|e| e.seq).collect()
    }

    /// A version-5 log row of a team that does not exist (the relay never wrote one; a damaged or
    /// hand-edited file) would be lost by migration 6, so it fails instead, and its transaction
    /// leaves the file at version 5 with the log as it was.
    #[test]
    fn migration_6_refuses_a_row_of_no_team_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let team = TeamId::random();
        let (envelopes, _) = signed_envelopes(team);
        let entries: Vec<(i64, Envelope)> = (1i64..).zip(envelopes).collect();
        write_version_5(&path, &[(team, entries.clone())]);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        conn.execute(
            "UPDATE log SET team = ?1 WHERE seq = 3",
            [TeamId::random().as_bytes()],
        )
        .unwrap();
        drop(conn);
        match SqliteStorage::open(dir.path()) {
            Err(StorageError::Corrupt(why)) => assert!(why.contains("migration 6"), "{why}"),
            Err(other) => panic!("expected Corrupt, got {other:?}"),
            Ok(_) => panic!("the migration lost a row"),
        }
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let rows: i64 = conn
            .query_row(
                "SELECT count(*) FROM log WHERE length(team) = 16",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((version, rows), (5, entries.len() as i64));
    }

    /// A body that does not decode, or disagrees with its row, fails migration 5, and its
    /// transaction leaves the file at version 4 with the log as it was.
    #[test]
    fn migration_5_refuses_a_damaged_body_and_changes_nothing() {
        for damage in [
            "UPDATE log SET body = '{\"v\":1,' WHERE seq = 2",
            "UPDATE log SET doc = x'00000000000000000000000000000000' WHERE seq = 3",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DB_FILE);
            let team = TeamId::random();
            let (envelopes, _) = signed_envelopes(team);
            write_version_4(&path, team, &envelopes);
            Connection::open(&path)
                .unwrap()
                .execute(damage, [])
                .unwrap();
            match SqliteStorage::open(dir.path()) {
                Err(StorageError::Corrupt(why)) => assert!(why.contains("log entry"), "{why}"),
                Err(other) => panic!("{damage}: expected Corrupt, got {other:?}"),
                Ok(_) => panic!("{damage}: the migration took a damaged body"),
            }
            let conn = Connection::open(&path).unwrap();
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            let rows: i64 = conn
                .query_row("SELECT count(*) FROM log WHERE body IS NOT NULL", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!((version, rows), (4, envelopes.len() as i64), "{damage}");
        }
    }

    /// Cancel, revocation and the creator check, below the HTTP layer.
    /// A damaged row (here a signature cut short, which the schema's checks keep the relay from
    /// writing) is refused as corrupt instead of reaching the client (the page format itself is
    /// `storage_conformance::pull_pages_serialize_as_the_wire_pull_response`, on both backends).
    #[test]
    fn a_damaged_log_row_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(dir.path()).unwrap();
        let team = TeamId::random();
        s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
        let batch: Vec<_> = (0..3)
            .map(|_| env(team, RecordId::random(), EnvelopeKind::Change, 0))
            .collect();
        s.append(team, &batch).unwrap();
        s.write(|c| {
            c.pragma_update(None, "ignore_check_constraints", "ON")?;
            let n = c.execute("UPDATE log SET sig = x'0102' WHERE seq = 2", [])?;
            c.pragma_update(None, "ignore_check_constraints", "OFF")?;
            Ok(n)
        })
        .unwrap();
        assert!(matches!(
            s.pull(team, 0, 10, usize::MAX),
            Err(StorageError::Corrupt(_))
        ));
        assert_eq!(s.pull(team, 2, 10, usize::MAX).unwrap().entries.len(), 1);
    }

    /// The lookup from memory agrees with the database after every kind of device change, also
    /// after failed writes and after reopening.
    #[test]
    fn device_cache_follows_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(dir.path()).unwrap();
        let (a, b) = (TeamId::random(), TeamId::random());
        s.create_team(a, &keys(1, Role::Lead), 0).unwrap();
        s.create_team(b, &keys(2, Role::Lead), 0).unwrap();
        s.add_device(a, &keys(3, Role::Worker), 1).unwrap();
        // The same device in a second team.
        s.add_device(b, &keys(3, Role::Worker), 2).unwrap();
        s.revoke_device(a, DeviceId::from_bytes([3; 16])).unwrap();
        // Failed writes change nothing.
        assert!(s.add_device(a, &keys(3, Role::Lead), 3).is_err());
        assert!(
            s.add_device(TeamId::random(), &keys(4, Role::Worker), 3)
                .is_err()
        );
        assert!(s.create_team(a, &keys(5, Role::Lead), 3).is_err());
        assert!(s.revoke_device(b, DeviceId::from_bytes([9; 16])).is_err());
        let invite = CreateInvite {
            id: InviteId::from_bytes([6; 16]),
            auth_key: [6; 32],
            role: Role::Worker,
            expires_ms: 100,
            blob: vec![6],
        };
        s.create_invite(b, DeviceId::from_bytes([2; 16]), &invite, 4)
            .unwrap();
        s.redeem_invite(invite.id, &keys(6, Role::Lead), &[7; 32], 5)
            .unwrap();

        let check = |s: &SqliteStorage| {
            for team in [a, b, TeamId::random()] {
                for n in 1..=9 {
                    let id = DeviceId::from_bytes([n; 16]);
                    let in_team = s.device(team, id).unwrap();
                    let elsewhere = match in_team {
                        Some(_) => None,
                        None => s.device_in_any_team(id).unwrap(),
                    };
                    let expected = DeviceLookup { in_team, elsewhere };
                    assert_eq!(s.lookup_device_now(team, id).unwrap(), expected, "{n}");
                }
            }
        };
        check(&s);
        let lookup = s
            .lookup_device_now(a, DeviceId::from_bytes([3; 16]))
            .unwrap();
        assert!(lookup.in_team.unwrap().revoked);
        let lookup = s
            .lookup_device_now(b, DeviceId::from_bytes([6; 16]))
            .unwrap();
        assert!(!lookup.in_team.unwrap().revoked);
        drop(s);
        check(&SqliteStorage::open(dir.path()).unwrap());
    }

    #[test]
    fn reads_share_a_bounded_pool_of_connections() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SqliteStorage::open(dir.path()).unwrap());
        let team = TeamId::random();
        s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
        let threads: Vec<_> = (0..4 * MAX_READERS)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        assert_eq!(s.head(team).unwrap(), Some(0));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let state = lock(&s.readers.state);
        assert!(state.open <= MAX_READERS, "{} readers open", state.open);
        assert_eq!(state.idle.len(), state.open);
        drop(state);

        // A read that panics still gives its connection back.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = s.read(|_| -> Result<(), StorageError> { panic!("in a read") });
        }));
        assert!(caught.is_err());
        let state = lock(&s.readers.state);
        assert_eq!(state.idle.len(), state.open);
        drop(state);

        // Reader connections cannot write.
        let refused = s.read(|conn| {
            conn.execute("DELETE FROM teams", [])?;
            Ok(())
        });
        assert!(refused.is_err());
        assert_eq!(s.head(team).unwrap(), Some(0));
    }
}
