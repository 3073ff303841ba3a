//! Applying a pulled page: envelopes opened and verified ahead on several threads, then merged
//! in one transaction together with the new cursor.

use streetsync_wire::{DeviceId, Envelope, EnvelopeKind, PullEntry};
use zeroize::Zeroizing;

use crate::crypto::TeamKey;
use crate::doc::foreign;
use crate::error::{Error, Result};
use crate::kinds::RecordKind;
use crate::model::team::Team;
use crate::store::Writer;

use super::Engine;
use super::events::{ChangeOrigin, RecordChange};
use super::remote::{QuarantineReason, Quarantined, RemoteAuthor, apply_checked, open_envelope};

/// The sync-state key of the pull cursor.
pub(crate) const SYNC_CURSOR: &str = "cursor";
/// Meta key: the id of the envelope at the pull cursor, so a relay that rolls its log back and
/// refills it is caught (public data: the relay knows it).
pub(crate) const META_CURSOR_ENVELOPE: &str = "cursor_envelope";

/// What applying one pulled envelope did.
pub(crate) enum Applied {
    /// Merged into a record.
    Merged,
    /// Nothing to do (our own envelope, or a record erased here).
    Skipped,
    /// A lead's tombstone erased the record here.
    Erased,
}

/// An envelope opened ahead of its page's transaction (see [`open_chunk`]).
pub(crate) struct Opened {
    /// The key its signature was checked with: the roster decides again when it is applied.
    sign_pk: [u8; 32],
    /// The envelope's plaintext.
    plain: Zeroizing<Vec<u8>>,
    /// The record loaded strictly from the plaintext, when the record was new on this device.
    doc: Option<automerge::AutoCommit>,
}

/// At most this many threads open envelopes ahead: enough for a phone's big cores, and a bound
/// on the memory the documents being loaded at once may take (`document::precheck::MAX_ROWS`).
const MAX_OPEN_THREADS: usize = 4;

/// Envelopes opened ahead are handed to the page's transaction in chunks of this many: enough to
/// spread over threads, few enough that loaded documents waiting to be stored stay a few MB.
const OPEN_CHUNK: usize = 64;

/// Which entries of a page are the first envelope of a record not stored here: those are loaded
/// ahead (later envelopes of the same record merge into it).
fn fresh_records(engine: &Engine, me: DeviceId, entries: &[PullEntry]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    engine
        .store
        .read(|r| {
            entries
                .iter()
                .map(|e| {
                    let env = &e.envelope;
                    Ok(env.author != me
                        && env.kind != EnvelopeKind::Tombstone
                        && seen.insert(env.doc)
                        && !r.has_doc(&env.doc)?
                        && !r.is_erased(&env.doc)?)
                })
                .collect()
        })
        .unwrap_or_else(|_| vec![false; entries.len()])
}

/// Opens envelopes (Ed25519 verification, AEAD) and loads the records new on this device
/// (Automerge's document load) on several threads: these are the bulk of a fresh device's
/// bootstrap, and each is independent of the others. Whatever fails here is left to the serial
/// path ([`apply_envelope`]), which repeats it and gives the reason; so this only ever saves work.
fn open_chunk(
    entries: &[PullEntry],
    fresh: &[bool],
    team: &Team,
    me: DeviceId,
    keys: &[TeamKey],
) -> Vec<Option<Opened>> {
    let open_one = |(entry, fresh): (&PullEntry, &bool)| {
        let env = &entry.envelope;
        if env.author == me {
            return None;
        }
        let sign_pk = team.device(&env.author)?.sign_pk;
        let plain = open_envelope(env, team, keys).ok()?;
        let doc = if *fresh {
            foreign::load_new(env.doc, &plain).ok().flatten()
        } else {
            None
        };
        Some(Opened {
            sign_pk,
            plain,
            doc,
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_OPEN_THREADS)
        .min(entries.len().div_ceil(8))
        .max(1);
    if threads == 1 {
        return entries.iter().zip(fresh).map(open_one).collect();
    }
    let part = entries.len().div_ceil(threads);
    std::thread::scope(|s| {
        let open_one = &open_one;
        let workers: Vec<_> = entries
            .chunks(part)
            .zip(fresh.chunks(part))
            .map(|(es, fs)| {
                let n = es.len();
                (
                    n,
                    s.spawn(move || es.iter().zip(fs).map(open_one).collect::<Vec<_>>()),
                )
            })
            .collect();
        let mut opened = Vec::with_capacity(entries.len());
        for (n, w) in workers {
            // A worker that panicked (it runs only guarded code) leaves its part to the serial path.
            opened.extend(w.join().unwrap_or_else(|_| (0..n).map(|_| None).collect()));
        }
        opened
    })
}

/// Applies a pulled page in one transaction, together with the new cursor. On a large page the
/// envelopes are opened ahead ([`open_chunk`]) on other threads while the transaction applies the
/// chunks already opened, so the serial part (merge checks, projections, SQLite) overlaps the
/// parallel part. Returns the last sequence number applied.
pub(crate) fn apply_page(
    engine: &Engine,
    me: DeviceId,
    entries: &[PullEntry],
    keys: &[TeamKey],
    out: &mut PageOutcome,
) -> Result<u64> {
    let team = if entries.len() > OPEN_CHUNK / 4 {
        engine.team().ok()
    } else {
        None
    };
    let fresh = match &team {
        Some(_) => fresh_records(engine, me, entries),
        None => Vec::new(),
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Option<Opened>>>(1);
        if let Some(team) = &team {
            let fresh = &fresh;
            s.spawn(move || {
                for (es, fs) in entries.chunks(OPEN_CHUNK).zip(fresh.chunks(OPEN_CHUNK)) {
                    // The receiver is gone when the transaction failed: stop opening.
                    if tx.send(open_chunk(es, fs, team, me, keys)).is_err() {
                        break;
                    }
                }
            });
        } else {
            drop(tx);
        }
        engine.store.write(|w| {
            let now = crate::clock::now_ms();
            let mut opened = rx.iter().flatten();
            let mut last = 0;
            for entry in entries {
                last = entry.seq;
                let env = &entry.envelope;
                #[cfg(feature = "testing")]
                stall_in_apply_if_asked();
                let mut refused_snapshot = false;
                match apply_envelope(
                    w,
                    me,
                    entry.seq,
                    env,
                    keys,
                    opened.next().flatten(),
                    &mut out.changes,
                )? {
                    Ok(Applied::Merged) => out.applied += 1,
                    Ok(Applied::Erased) => out.erased += 1,
                    Ok(Applied::Skipped) => {}
                    Err(reason) => {
                        refused_snapshot = env.kind == EnvelopeKind::Snapshot;
                        let raw =
                            serde_json::to_vec(env).map_err(|e| Error::Protocol(e.to_string()))?;
                        w.quarantine(entry.seq, &env.doc, reason.as_str(), now, &raw)?;
                        if env.kind == EnvelopeKind::Snapshot
                            && !reason.is_retryable()
                            && w.has_doc(&env.doc)?
                        {
                            // The relay may have dropped what the refused snapshot covered: this
                            // device's own snapshot (a lead's, at the next compaction) restores it.
                            w.mark_due(&env.doc)?;
                        }
                        out.quarantined.push(Quarantined {
                            seq: entry.seq,
                            doc: env.doc,
                            author: env.author,
                            reason,
                        });
                    }
                }
                if !refused_snapshot {
                    note_activity(w, env)?;
                }
            }
            w.set_sync_value(SYNC_CURSOR, last as i64)?;
            if let Some(e) = entries.last() {
                w.put_meta(META_CURSOR_ENVELOPE, e.envelope.id.as_bytes())?;
            }
            Ok(last)
        })
    })
}

/// Only with the `testing` feature (the fault suite; the library that ships in apps has no such
/// point): with `STREETSYNC_TEST_STALL_IN_APPLY=<n>` the process stops for good just before
/// applying the n-th pulled envelope, inside the open page transaction, after saying so on stderr
/// (`stalled in apply`). The test then kills it with SIGKILL at a known point in the middle of a
/// page, which timing alone cannot guarantee.
#[cfg(feature = "testing")]
fn stall_in_apply_if_asked() {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static APPLYING: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("STREETSYNC_TEST_STALL_IN_APPLY")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(at) = at
        && APPLYING.fetch_add(1, Ordering::Relaxed) + 1 == *at
    {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "stalled in apply");
        let _ = err.flush();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// What applying one page did, for the sync report and the change listeners.
#[derive(Default)]
pub(crate) struct PageOutcome {
    pub(crate) changes: Vec<RecordChange>,
    pub(crate) quarantined: Vec<Quarantined>,
    pub(crate) applied: u64,
    pub(crate) erased: u64,
}

/// Applies one pulled envelope inside a page transaction. `Ok(Err(reason))` refuses the envelope
/// (it is quarantined, the page goes on); `Err` is a failure of this device (its database), which
/// rolls the whole page back so nothing is half-applied and the next sync tries again.
/// `opened` is the envelope as [`open_chunk`] opened it, if it could.
pub(crate) fn apply_envelope(
    w: &mut Writer<'_>,
    me: DeviceId,
    seq: u64,
    env: &Envelope,
    keys: &[TeamKey],
    opened: Option<Opened>,
    changes: &mut Vec<RecordChange>,
) -> Result<std::result::Result<Applied, QuarantineReason>> {
    if env.author == me {
        // Our own envelope coming back: the store already holds it, and the relay really kept it.
        w.confirm_echo(&env.doc, &env.id)?;
        return Ok(Ok(Applied::Skipped));
    }
    let Some(team) = w.cache().team.clone() else {
        return Ok(Err(QuarantineReason::NoTeam));
    };
    // Opened ahead with the key the roster still gives this author: taken as it is.
    let (plain, preloaded) = match opened {
        Some(o)
            if env.team == team.id
                && team.device(&env.author).map(|d| d.sign_pk) == Some(o.sign_pk) =>
        {
            (o.plain, o.doc)
        }
        _ => match open_envelope(env, &team, keys) {
            Ok(plain) => (plain, None),
            Err(reason) => return Ok(Err(reason)),
        },
    };
    let Some(author) = team.device(&env.author) else {
        return Ok(Err(QuarantineReason::UnknownDevice));
    };
    let role = author.role;
    if author.revoked {
        // A removed device's envelopes count only up to the log position its revocation recorded.
        // A revocation from before positions were recorded keeps the device's old contacts and
        // clients readable, but nothing that changes the team, erases or compacts.
        let allowed = match team.revocation(&env.author) {
            Some(r) => seq <= r.after_seq,
            None => env.kind == EnvelopeKind::Change,
        };
        if !allowed {
            return Ok(Err(QuarantineReason::RevokedAuthor));
        }
    }
    if env.kind == EnvelopeKind::Snapshot && role != streetsync_wire::Role::Lead {
        // A snapshot carries other members' changes, whose authorship only its maker vouches
        // for; only leads, who already decide the roster, may vouch.
        return Ok(Err(QuarantineReason::NotAllowed));
    }
    match env.kind {
        EnvelopeKind::Change | EnvelopeKind::Snapshot => {
            let author = RemoteAuthor {
                device: env.author,
                role,
                snapshot: env.kind == EnvelopeKind::Snapshot,
            };
            match apply_checked(w, env.doc, &plain, Some(&author), preloaded) {
                Ok(applied) => {
                    if env.kind == EnvelopeKind::Snapshot {
                        w.confirm_covered(&env.doc, env.covers)?;
                    }
                    changes.push(RecordChange {
                        id: env.doc,
                        kind: applied.kind,
                        origin: ChangeOrigin::Remote,
                        removed: applied.deleted,
                    });
                    Ok(Ok(Applied::Merged))
                }
                Err(Error::NotFound { .. }) => Ok(Ok(Applied::Skipped)),
                Err(Error::NotAllowed(_)) => Ok(Err(QuarantineReason::NotAllowed)),
                Err(Error::MissingDependencies { .. }) => {
                    Ok(Err(QuarantineReason::MissingDependencies))
                }
                Err(Error::Protocol(_) | Error::Corrupt { .. } | Error::Document(_)) => {
                    Ok(Err(QuarantineReason::MalformedDocument))
                }
                Err(e) => Err(e),
            }
        }
        EnvelopeKind::Tombstone => {
            if role != streetsync_wire::Role::Lead {
                return Ok(Err(QuarantineReason::NotAllowed));
            }
            let kind = w.doc(&env.doc).ok().flatten().map(|(k, _)| k);
            if kind == Some(RecordKind::Team) {
                return Ok(Err(QuarantineReason::NotAllowed));
            }
            w.erase_record(&env.doc, crate::clock::now_ms())?;
            changes.push(RecordChange {
                id: env.doc,
                kind: kind.unwrap_or(RecordKind::Contact),
                origin: ChangeOrigin::Remote,
                removed: true,
            });
            Ok(Ok(Applied::Erased))
        }
    }
}

/// Counts change envelopes per record since its last snapshot (the compaction trigger).
fn note_activity(w: &mut Writer<'_>, env: &Envelope) -> Result<()> {
    match env.kind {
        EnvelopeKind::Change => w.bump_activity(&env.doc),
        EnvelopeKind::Snapshot => w.reset_activity(&env.doc),
        EnvelopeKind::Tombstone => Ok(()),
    }
}
