//! Group commit: one thread owns SQLite's writer connection and commits the writes that queued up
//! while it was busy in one transaction, so one fsync makes a whole group durable.
//!
//! With `synchronous=FULL` every commit waits for an fsync of the WAL (milliseconds on a real
//! disk), and SQLite has one writer at a time, so with one transaction per push the pushes queued
//! behind each other's fsyncs. Here each caller hands its work to the writer thread and waits;
//! the thread takes every waiting job (up to [`MAX_GROUP`]), runs each in a savepoint of one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers the callers. So a caller
//! still hears "done" only when its write is on disk, a job that fails (or panics) is rolled back
//! to its savepoint without touching the others, and an idle relay commits a lone push at once,
//! without waiting for company.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StorageError;

/// Most jobs committed in one transaction. Bounds the time a group holds the write lock (and so
/// the time until its first job is answered) when a burst arrives.
pub const MAX_GROUP: usize = 64;

/// How long the writer waits for readers to let an erasure's checkpoint through before it
/// answers `erasure_pending` (and goes on retrying in the background). The writer thread holds
/// every other write meanwhile, so this stays short.
pub const WIPE_BUDGET: Duration = Duration::from_millis(1_000);

/// How often a pending wipe is retried while no writes arrive.
const WIPE_RETRY_EVERY: Duration = Duration::from_millis(500);

/// The busy timeout of the writer connection outside a wipe (see `sqlite::open_connection`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a job's write is not acknowledged, past its own refusal.
#[derive(Debug, Clone, Copy)]
pub enum Failure<'a> {
    /// The group's transaction failed.
    Write(&'a str),
    /// The group committed an erasure, but its old pages are still in the WAL or the main file.
    ErasurePending,
}

/// One `PRAGMA wal_checkpoint(TRUNCATE)`: true only if it ran to the end (`busy` is 0 and every
/// frame of the WAL was copied back, `log == checkpointed`), so the WAL holds no old page and
/// the main file holds the new ones, which `secure_delete` zeroed.
pub fn checkpoint_truncate(conn: &Connection) -> rusqlite::Result<bool> {
    let (busy, log, checkpointed): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(busy == 0 && log == checkpointed && log >= 0)
}

/// Checkpoints until it completes or `budget` is spent, backing off between attempts (a reader
/// holding the WAL blocks it). True once the erased pages are gone from the files.
pub fn wipe(conn: &Connection, budget: Duration) -> rusqlite::Result<bool> {
    let deadline = Instant::now() + budget;
    let mut pause = Duration::from_millis(5);
    // Each attempt waits only briefly for readers itself; the loop does the waiting.
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
        pause = (pause * 2).min(Duration::from_millis(100));
    })();
    conn.busy_timeout(BUSY_TIMEOUT)?;
    result
}

/// Work for the writer thread.
pub trait WriteJob: Send {
    /// Runs the work on the writer connection, inside the group's transaction (in a savepoint of
    /// its own). True if it succeeded and its changes are to be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the WAL is to be checkpointed after the group committed (erasure).
    fn wants_checkpoint(&self) -> bool;
    /// Answers the waiting caller: `None` if the group committed (and, if asked, checkpointed),
    /// else why not.
    fn finish(self: Box<Self>, failure: Option<Failure<'_>>);
}

/// Runs on the writer thread after the job's group committed, before the caller is answered, in
/// commit order: keeps in-memory state (the device cache) in step with the database.
pub type AfterCommit<T> = Box<dyn FnOnce(&T) + Send>;

/// A caller's closure and the channel its answer goes back on.
pub struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StorageError>>,
    checkpoint: fn(&T) -> bool,
    after_commit: Option<AfterCommit<T>>,
    reply: mpsc::SyncSender<Result<T, StorageError>>,
}

impl<T, F> Pending<T, F> {
    /// A job running `work`; `checkpoint` says from its result whether the WAL must be
    /// checkpointed before the caller is answered. The answer arrives on the returned receiver.
    pub fn new(
        work: F,
        checkpoint: fn(&T) -> bool,
    ) -> (Self, mpsc::Receiver<Result<T, StorageError>>) {
        let (reply, answer) = mpsc::sync_channel(1);
        (
            Pending {
                work: Some(work),
                result: None,
                checkpoint,
                after_commit: None,
                reply,
            },
            answer,
        )
    }
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StorageError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn wants_checkpoint(&self) -> bool {
        matches!(&self.result, Some(Ok(v)) if (self.checkpoint)(v))
    }

    fn finish(self: Box<Self>, failure: Option<Failure<'_>>) {
        let answer = match (self.result, failure) {
            // Its own refusal: its savepoint was rolled back, whatever became of the group.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (Some(Ok(_)), Some(Failure::ErasurePending)) => Err(StorageError::ErasurePending),
            (Some(Ok(_)), Some(Failure::Write(why))) | (None, Some(Failure::Write(why))) => {
                Err(StorageError::Write(why.to_owned()))
            }
            (None, Some(Failure::ErasurePending)) => Err(StorageError::Write(
                "the write stopped before it finished".into(),
            )),
            // It panicked; the panic was caught and its savepoint rolled back.
            (None, None) => Err(StorageError::Write(
                "the write stopped before it finished".into(),
            )),
        };
        if let (Ok(v), Some(after)) = (&answer, self.after_commit) {
            after(v);
        }
        // The caller may have gone (its thread panicked); nothing to tell then.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread and the queue into it. Dropping it lets the thread finish the queued jobs,
/// close the connection and end, and waits for that.
pub struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    thread: Option<JoinHandle<()>>,
    groups: Arc<AtomicU64>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("groups", &self.groups.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> Result<Self, StorageError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn WriteJob>>();
        let groups = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&groups);
        let thread = std::thread::Builder::new()
            .name("relay-db-writer".into())
            .spawn(move || {
                let mut wipe_pending = false;
                loop {
                    let first = if wipe_pending {
                        match queue.recv_timeout(WIPE_RETRY_EVERY) {
                            Ok(job) => job,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                wipe_pending = !retry_wipe(&conn);
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    } else {
                        match queue.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    };
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    wipe_pending = commit_group(&conn, group, wipe_pending);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            groups,
        })
    }

    /// Runs `work` in the next group transaction and returns its result once the group is
    /// durable. `checkpoint` says from the result whether to checkpoint the WAL first;
    /// `after_commit` runs on the result once committed.
    pub fn run<T, F>(
        &self,
        work: F,
        checkpoint: fn(&T) -> bool,
        after_commit: Option<AfterCommit<T>>,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let stopped = || StorageError::Write("the database writer thread stopped".into());
        let (mut job, answer) = Pending::new(work, checkpoint);
        job.after_commit = after_commit;
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(Box::new(job))
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// How many group transactions the thread has run (each one fsync when it wrote anything).
    #[cfg(test)]
    pub fn groups(&self) -> u64 {
        self.groups.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One quick checkpoint attempt for an erasure whose wipe is pending; true once it is done.
fn retry_wipe(conn: &Connection) -> bool {
    match wipe(conn, Duration::ZERO) {
        Ok(true) => {
            tracing::info!("a pending erasure is now wiped from the database files");
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint for a pending erasure failed");
            false
        }
    }
}

/// Runs a group in one transaction, then, if a job erased something (or an earlier erasure's
/// wipe is still pending), checkpoints until the old pages are gone from the WAL and the main
/// file, for at most [`WIPE_BUDGET`]; then answers every job. A job that asked for the
/// checkpoint hears [`StorageError::ErasurePending`] if it did not complete. Returns whether a
/// wipe is still pending (the writer thread retries it).
pub fn commit_group(
    conn: &Connection,
    mut group: Vec<Box<dyn WriteJob>>,
    wipe_pending: bool,
) -> bool {
    let failure = run_group(conn, &mut group).err().map(|e| {
        tracing::error!(error = %e, jobs = group.len(), "a group of writes failed to commit");
        format!("the write transaction failed: {e}")
    });
    let wants = failure.is_none() && group.iter().any(|j| j.wants_checkpoint());
    let still_pending = if wants {
        // Old frames of erased pages stay in the WAL, and old pages in the main file, until a
        // checkpoint runs to the end; a reader holding the WAL blocks it.
        match wipe(conn, WIPE_BUDGET) {
            Ok(true) => false,
            Ok(false) => {
                tracing::warn!("an erasure's checkpoint is blocked by readers; retrying");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpointing the WAL after an erasure failed");
                true
            }
        }
    } else if wipe_pending {
        !retry_wipe(conn)
    } else {
        false
    };
    for job in group {
        let job_failure = match &failure {
            Some(why) => Some(Failure::Write(why.as_str())),
            None if still_pending && job.wants_checkpoint() => Some(Failure::ErasurePending),
            None => None,
        };
        job.finish(job_failure);
    }
    still_pending
}

/// `BEGIN IMMEDIATE`, each job in a savepoint (released if it succeeded, rolled back if it
/// failed or panicked), `COMMIT`. On an error of the transaction itself everything is rolled back.
fn run_group(conn: &Connection, group: &mut [Box<dyn WriteJob>]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for job in group.iter_mut() {
            conn.execute_batch("SAVEPOINT job")?;
            let ok = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn))).unwrap_or(false);
            if ok {
                conn.execute_batch("RELEASE job")?;
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            }
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() && !conn.is_autocommit() {
        // Some errors (a full disk, I/O) end the transaction themselves; otherwise end it here.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn insert(x: i64) -> impl FnOnce(&Connection) -> Result<i64, StorageError> + Send {
        move |c: &Connection| {
            c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
            Ok(x)
        }
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn a_failing_or_panicking_job_leaves_the_rest_of_its_group_alone() {
        let conn = conn();
        let (a, a_answer) = Pending::new(insert(1), |_| false);
        // Inserts 2, then fails on the duplicate 1: its own 2 must be rolled back too.
        let (b, b_answer) = Pending::new(
            |c: &Connection| -> Result<i64, StorageError> {
                c.execute("INSERT INTO t (x) VALUES (2)", [])?;
                c.execute("INSERT INTO t (x) VALUES (1)", [])?;
                Ok(0)
            },
            |_| false,
        );
        let (p, p_answer) = Pending::new(
            |c: &Connection| -> Result<i64, StorageError> {
                c.execute("INSERT INTO t (x) VALUES (4)", [])?;
                panic!("a bug in a write")
            },
            |_| false,
        );
        let (d, d_answer) = Pending::new(insert(3), |_| false);
        // After-commit hooks run for committed jobs only.
        let hooked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hook = |hooked: &Arc<std::sync::Mutex<Vec<i64>>>| -> AfterCommit<i64> {
            let hooked = Arc::clone(hooked);
            Box::new(move |v: &i64| hooked.lock().unwrap().push(*v))
        };
        let (mut a, mut b) = (a, b);
        a.after_commit = Some(hook(&hooked));
        b.after_commit = Some(hook(&hooked));
        commit_group(
            &conn,
            vec![Box::new(a), Box::new(b), Box::new(p), Box::new(d)],
            false,
        );
        assert_eq!(a_answer.recv().unwrap().unwrap(), 1);
        assert!(matches!(b_answer.recv().unwrap(), Err(StorageError::Db(_))));
        assert!(matches!(
            p_answer.recv().unwrap(),
            Err(StorageError::Write(_))
        ));
        assert_eq!(d_answer.recv().unwrap().unwrap(), 3);
        assert_eq!(rows(&conn), [1, 3]);
        assert_eq!(*hooked.lock().unwrap(), [1]);
        assert!(conn.is_autocommit(), "the group's transaction ended");
    }

    #[test]
    fn a_failed_commit_fails_every_job_and_keeps_nothing() {
        let conn = conn();
        // A deferred foreign key violation only shows at COMMIT.
        conn.execute_batch(
            "CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);
             PRAGMA foreign_keys = ON;",
        )
        .unwrap();
        let (a, a_answer) = Pending::new(insert(1), |_| false);
        let (b, b_answer) = Pending::new(
            |c: &Connection| -> Result<i64, StorageError> {
                c.execute("INSERT INTO c (p) VALUES (42)", [])?;
                Ok(0)
            },
            |_| false,
        );
        commit_group(&conn, vec![Box::new(a), Box::new(b)], false);
        assert!(matches!(
            a_answer.recv().unwrap(),
            Err(StorageError::Write(_))
        ));
        assert!(matches!(
            b_answer.recv().unwrap(),
            Err(StorageError::Write(_))
        ));
        assert!(rows(&conn).is_empty());
        assert!(conn.is_autocommit());
    }

    #[test]
    fn an_erasure_blocked_by_a_reader_is_pending_until_its_checkpoint_completes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        let writer = Writer::start(conn).unwrap();
        writer.run(insert(1), |_| false, None).unwrap();
        // A reader holding a snapshot keeps the WAL from being reset.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let erase = |c: &Connection| -> Result<i64, StorageError> {
            c.execute("DELETE FROM t WHERE x = 1", [])?;
            Ok(0)
        };
        assert!(matches!(
            writer.run(erase, |_| true, None),
            Err(StorageError::ErasurePending)
        ));
        // Writes that erase nothing go on meanwhile.
        writer.run(insert(2), |_| false, None).unwrap();
        drop(reader);
        // Asking again (as a pushed-again tombstone does) is answered once the wipe is done.
        let again = |_: &Connection| -> Result<i64, StorageError> { Ok(0) };
        writer.run(again, |_| true, None).unwrap();
        // Still open, so the file is there: truncated by the checkpoint, not by closing.
        let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len();
        assert_eq!(wal, 0, "the WAL was truncated");
    }

    #[test]
    fn concurrent_writes_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        let writer = Arc::new(Writer::start(conn).unwrap());
        let threads: Vec<_> = (0..200)
            .map(|x| {
                let writer = Arc::clone(&writer);
                std::thread::spawn(move || writer.run(insert(x), |_| false, None).unwrap())
            })
            .collect();
        let mut done: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        done.sort_unstable();
        assert_eq!(done, (0..200).collect::<Vec<_>>());
        let groups = writer.groups();
        // Usually far fewer than 200 on a disk where fsync takes time; not asserted, since on
        // tmpfs every write may find the writer idle.
        assert!((1..=200).contains(&groups), "{groups} groups");
        eprintln!("200 concurrent writes committed in {groups} transactions");
        let count: i64 = writer
            .run(
                |c: &Connection| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?),
                |_| false,
                None,
            )
            .unwrap();
        assert_eq!(count, 200);
        // Dropping the writer waits for its thread, which closes the connection.
        let writer = Arc::into_inner(writer).unwrap();
        drop(writer);
        let reopened = Connection::open(dir.path().join("db")).unwrap();
        assert_eq!(rows(&reopened).len(), 200);
    }
}
