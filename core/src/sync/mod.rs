//! Sync through the blind relay.
//!
//! `sync_once` pushes the outbox, then pulls pages of envelopes after the device's cursor. Each
//! envelope is checked against the roster in the Team document (never the relay's word): team,
//! known author, Ed25519 signature, a key for its epoch, and the AEAD tag over its header. Good
//! envelopes are merged; bad ones are quarantined and reported while the rest goes on. Every page,
//! with the new cursor, is stored in one local transaction. Network I/O never holds the store lock,
//! so sync never blocks local writes.

mod live;
mod membership;
/// Hooks for `crate::fuzzing`.
pub(crate) mod membership_fuzz {
    /// Parses an invite code.
    pub(crate) fn parse_invite(code: &str) -> bool {
        super::membership::fuzz_parse_invite(code)
    }
    /// Decodes a bundle message.
    pub(crate) fn decode_bundle(data: &[u8]) -> bool {
        super::membership::fuzz_decode_bundle(data)
    }
}
mod relay;

use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use streetsync_wire::{
    DeviceId, ENVELOPE_VERSION, Envelope, EnvelopeId, EnvelopeKind, PullEntry, PullResponse,
    PushRequest, PushResponse, RecordId, TeamId,
};
use zeroize::Zeroizing;

pub use live::{LiveHandle, SyncListener, SyncStatus};
pub use membership::{Invite, MAX_INVITE_TTL_SECS};

use crate::crypto::{DeviceIdentity, TeamKey};
use crate::store::Writer;
use crate::team::Team;
use crate::workspace::{ChangeOrigin, RecordChange, RemoteAuthor, apply_checked};
use crate::{Error, Result, Workspace};
use relay::RelayClient;

const SYNC_REGISTERED: &str = "registered";
const SYNC_CURSOR: &str = "cursor";
/// Largest push batch by bytes, well under the relay's body limit.
const PUSH_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What a new device receives, sealed to its X25519 key, to join a team.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub(crate) struct JoinBundle {
    #[zeroize(skip)]
    pub(crate) team_id: TeamId,
    #[zeroize(skip)]
    pub(crate) team_doc_id: RecordId,
    pub(crate) keys: Vec<TeamKey>,
    pub(crate) team_doc: Vec<u8>,
}

/// Which step a sync is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// Sending local changes.
    Pushing,
    /// Receiving teammates' changes.
    Pulling,
    /// Uploading snapshots so the relay can drop old envelopes.
    Compacting,
}

/// Progress of one sync, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    /// The step.
    pub phase: SyncPhase,
    /// Items done in this step.
    pub done: u64,
    /// Items in this step (for pulling: the relay's head minus the starting cursor).
    pub total: u64,
}

/// An envelope that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// Its sequence number on the relay.
    pub seq: u64,
    /// The record it claims to change.
    pub doc: RecordId,
    /// The device it claims to come from.
    pub author: DeviceId,
    /// Why it was refused (`bad_signature`, `unknown_device`, `tag_failed`, ...).
    pub reason: String,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Local changes the relay acknowledged.
    pub pushed: u64,
    /// Envelopes received.
    pub pulled: u64,
    /// Envelopes merged into records.
    pub applied: u64,
    /// Envelopes refused in this sync.
    pub quarantined: Vec<Quarantined>,
    /// Earlier refused envelopes that could be applied now (their author or dependency arrived).
    pub recovered: u64,
    /// Snapshots uploaded.
    pub snapshots: u64,
    /// The device's cursor afterwards.
    pub cursor: u64,
    /// Key grants received (after a revocation elsewhere).
    pub keys_received: u64,
    /// Devices that redeemed this lead's invites and were put on the roster.
    pub devices_enrolled: u64,
    /// Records erased by a lead and deleted here.
    pub erased: u64,
    /// The relay's log was behind this device's cursor (restored from a backup): the device
    /// pulled everything again and re-uploaded snapshots of every record, so nothing is lost.
    pub relay_restored: bool,
}

/// Tunables of the sync client.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Envelopes per pull page.
    pub page_size: u32,
    /// Upload a snapshot of a record once it gathered this many change envelopes (0 = never).
    pub compact_after: u32,
    /// Extra TLS root certificates (PEM) to trust besides the public web roots, for a relay
    /// behind a team's own certificate authority.
    pub trusted_roots_pem: Option<String>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            page_size: streetsync_wire::DEFAULT_PULL_LIMIT,
            compact_after: 64,
            trusted_roots_pem: None,
        }
    }
}

/// Syncs one workspace with one relay.
pub struct SyncClient {
    ws: Arc<Workspace>,
    relay: RelayClient,
    options: SyncOptions,
    /// One sync at a time per client (live loop and manual syncs share it).
    running: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClient")
            .field("relay", &self.relay.base())
            .finish()
    }
}

fn team_path(team: TeamId, rest: &str) -> String {
    format!("/v1/teams/{team}{rest}")
}

/// What an envelope is about, before it is sealed.
struct Head {
    doc: RecordId,
    id: EnvelopeId,
    kind: EnvelopeKind,
    covers: u64,
}

/// Seals and signs one envelope.
fn seal_envelope(
    team: TeamId,
    key: &TeamKey,
    me: &DeviceIdentity,
    head: Head,
    plaintext: &[u8],
) -> Result<Envelope> {
    let mut env = Envelope {
        v: ENVELOPE_VERSION,
        team,
        doc: head.doc,
        id: head.id,
        kind: head.kind,
        epoch: key.epoch,
        author: me.device_id(),
        covers: head.covers,
        nonce: crate::crypto::random_bytes()?,
        ciphertext: Vec::new(),
        sig: [0u8; 64],
    };
    let header = env.header_bytes();
    env.ciphertext = key.seal(env.nonce, &header, plaintext)?;
    env.sign(me.signing_key());
    Ok(env)
}

/// Checks an envelope against the roster and opens it. The error is the quarantine reason.
fn open_envelope(
    env: &Envelope,
    team: &Team,
    keys: &[TeamKey],
) -> std::result::Result<Zeroizing<Vec<u8>>, &'static str> {
    if env.team != team.id {
        return Err("wrong_team");
    }
    if env.validate_shape().is_err() {
        return Err("malformed");
    }
    let device = team.device(&env.author).ok_or("unknown_device")?;
    env.verify(&device.sign_pk).map_err(|_| "bad_signature")?;
    let key = keys
        .iter()
        .find(|k| k.epoch == env.epoch)
        .ok_or("no_key_for_epoch")?;
    key.open(env.nonce, &env.header_bytes(), &env.ciphertext)
        .ok_or("tag_failed")
}

/// Reasons that may clear up later (the roster, a key or earlier changes arrive).
fn retryable(reason: &str) -> bool {
    matches!(
        reason,
        "unknown_device" | "no_key_for_epoch" | "missing_dependencies"
    )
}

/// What applying one pulled envelope did.
enum Applied {
    /// Merged into a record.
    Merged,
    /// Nothing to do (our own envelope, or a record erased here).
    Skipped,
    /// A lead's tombstone erased the record here.
    Erased,
}

/// An envelope opened ahead of its page's transaction (see [`open_page`]).
struct Opened {
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
fn fresh_records(ws: &Workspace, me: DeviceId, entries: &[PullEntry]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    ws.store()
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
            crate::workspace::preload_foreign(env.doc, &plain)
                .ok()
                .flatten()
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
fn apply_page(
    ws: &Workspace,
    me: DeviceId,
    entries: &[PullEntry],
    keys: &[TeamKey],
    out: &mut PageOutcome,
) -> Result<u64> {
    let team = if entries.len() > OPEN_CHUNK / 4 {
        ws.team().ok()
    } else {
        None
    };
    let fresh = match &team {
        Some(_) => fresh_records(ws, me, entries),
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
        ws.store().write(|w| {
            let now = crate::workspace::now_ms();
            let mut opened = rx.iter().flatten();
            let mut last = 0;
            for entry in entries {
                last = entry.seq;
                let env = &entry.envelope;
                #[cfg(debug_assertions)]
                stall_in_apply_if_asked();
                match apply_envelope(w, me, env, keys, opened.next().flatten(), &mut out.changes) {
                    Ok(Applied::Merged) => out.applied += 1,
                    Ok(Applied::Erased) => out.erased += 1,
                    Ok(Applied::Skipped) => {}
                    Err(reason) => {
                        let raw =
                            serde_json::to_vec(env).map_err(|e| Error::Protocol(e.to_string()))?;
                        w.quarantine(entry.seq, &env.doc, &reason, now, &raw)?;
                        out.quarantined.push(Quarantined {
                            seq: entry.seq,
                            doc: env.doc,
                            author: env.author,
                            reason,
                        });
                    }
                }
                note_activity(w, env)?;
            }
            w.set_sync_value(SYNC_CURSOR, last as i64)?;
            Ok(last)
        })
    })
}

/// Debug builds only (the fault suite; release builds, and so the shipped library, have no such
/// point): with `STREETSYNC_TEST_STALL_IN_APPLY=<n>` the process stops for good just before
/// applying the n-th pulled envelope, inside the open page transaction, after saying so on stderr
/// (`stalled in apply`). The test then kills it with SIGKILL at a known point in the middle of a
/// page, which timing alone cannot guarantee.
#[cfg(debug_assertions)]
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
struct PageOutcome {
    changes: Vec<RecordChange>,
    quarantined: Vec<Quarantined>,
    applied: u64,
    erased: u64,
}

/// Applies one pulled envelope inside a page transaction. The error is the quarantine reason.
/// `opened` is the envelope as [`open_page`] opened it, if it could.
fn apply_envelope(
    w: &mut Writer<'_>,
    me: DeviceId,
    env: &Envelope,
    keys: &[TeamKey],
    opened: Option<Opened>,
    changes: &mut Vec<RecordChange>,
) -> std::result::Result<Applied, String> {
    if env.author == me {
        // Our own envelope coming back: the store already holds it.
        return Ok(Applied::Skipped);
    }
    let team = w.cache().team.clone().ok_or("no_team")?;
    // Opened ahead with the key the roster still gives this author: taken as it is.
    let (plain, preloaded) = match opened {
        Some(o)
            if env.team == team.id
                && team.device(&env.author).map(|d| d.sign_pk) == Some(o.sign_pk) =>
        {
            (o.plain, o.doc)
        }
        _ => (
            open_envelope(env, &team, keys).map_err(str::to_owned)?,
            None,
        ),
    };
    let role = team
        .device(&env.author)
        .map(|d| d.role)
        .ok_or("unknown_device")?;
    match env.kind {
        EnvelopeKind::Change | EnvelopeKind::Snapshot => {
            let author = RemoteAuthor {
                device: env.author,
                role,
                snapshot: env.kind == EnvelopeKind::Snapshot,
            };
            match apply_checked(w, env.doc, &plain, Some(&author), preloaded) {
                Ok(applied) => {
                    changes.push(RecordChange {
                        id: env.doc,
                        kind: applied.kind,
                        origin: ChangeOrigin::Remote,
                        removed: applied.deleted,
                    });
                    Ok(Applied::Merged)
                }
                Err(Error::NotFound { .. }) => Ok(Applied::Skipped),
                Err(Error::NotAllowed(_)) => Err("not_allowed".into()),
                Err(Error::MissingDependencies { .. }) => Err("missing_dependencies".into()),
                Err(Error::Protocol(_)) | Err(Error::Corrupt { .. }) | Err(Error::Document(_)) => {
                    Err("malformed_document".into())
                }
                Err(e) => Err(format!("store: {e}")),
            }
        }
        EnvelopeKind::Tombstone => {
            if role != streetsync_wire::Role::Lead {
                return Err("not_allowed".into());
            }
            let kind = w.doc(&env.doc).ok().flatten().map(|(k, _)| k);
            if kind == Some(crate::RecordKind::Team) {
                return Err("not_allowed".into());
            }
            w.erase_record(&env.doc, crate::workspace::now_ms())
                .map_err(|e| format!("store: {e}"))?;
            changes.push(RecordChange {
                id: env.doc,
                kind: kind.unwrap_or(crate::RecordKind::Contact),
                origin: ChangeOrigin::Remote,
                removed: true,
            });
            Ok(Applied::Erased)
        }
    }
}

impl SyncClient {
    /// A client for `relay_url` (for example `http://127.0.0.1:7878`).
    pub fn new(ws: Arc<Workspace>, relay_url: &str) -> Result<Self> {
        Self::with_options(ws, relay_url, SyncOptions::default())
    }

    /// A client with explicit tunables.
    pub fn with_options(ws: Arc<Workspace>, relay_url: &str, options: SyncOptions) -> Result<Self> {
        Ok(Self {
            ws,
            relay: RelayClient::new(relay_url, options.trusted_roots_pem.as_deref())?,
            options,
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The workspace this client syncs.
    pub fn workspace(&self) -> &Arc<Workspace> {
        &self.ws
    }

    /// Runs blocking store work off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let ws = self.ws.clone();
        tokio::task::spawn_blocking(move || f(&ws))
            .await
            .map_err(|e| {
                Error::Crypto(if e.is_panic() {
                    "store task panicked"
                } else {
                    "store task cancelled"
                })
            })?
    }

    /// Registers the team on the relay (the founding lead's device, once).
    async fn ensure_registered(&self, team: &Team) -> Result<()> {
        let registered = self.ws.store().read(|r| r.sync_value(SYNC_REGISTERED))?;
        if registered != 0 {
            return Ok(());
        }
        let me = self.ws.device_id();
        // Only the founder registers; other devices were added by a lead.
        if team.roster.first().map(|d| d.device_id) == Some(me) {
            let body = streetsync_wire::CreateTeam {
                team: team.id,
                device: self.ws.device_keys(streetsync_wire::Role::Lead),
            };
            match self
                .relay
                .call::<_, streetsync_wire::Empty>(
                    self.ws.identity(),
                    Method::POST,
                    "/v1/teams",
                    Some(&body),
                )
                .await
            {
                Ok(_) => {}
                Err(Error::Relay { code, .. }) if code == "team_exists" => {}
                Err(e) => return Err(e),
            }
        }
        self.ws
            .store()
            .write(|w| w.set_sync_value(SYNC_REGISTERED, 1))
    }

    /// Pushes the outbox, pulls everything new, retries quarantined envelopes and uploads due
    /// snapshots. Safe to call at any time; a failure leaves the store consistent and the next call
    /// picks up where this one stopped.
    pub async fn sync_once(&self, listener: Option<&dyn SyncListener>) -> Result<SyncReport> {
        let _guard = self.running.lock().await;
        let team = self.ws.team()?;
        self.ensure_registered(&team).await?;
        // New epoch keys first, so this sync already seals with the newest key.
        let keys_received = self.receive_bundles(team.id).await?;
        let devices_enrolled = self.complete_invites(team.id).await?;
        let mut report = SyncReport {
            keys_received,
            devices_enrolled,
            pushed: self.push(team.id, listener).await?,
            ..SyncReport::default()
        };
        self.pull(team.id, listener, &mut report).await?;
        report.recovered = self.retry_quarantine().await?;
        report.snapshots = if report.relay_restored {
            let all = self.ws.store().read(|r| r.due_for_snapshot(i64::MIN))?;
            self.upload_snapshots(team.id, all, listener).await?
        } else {
            self.compact_due(team.id, listener).await?
        };
        report.cursor = self.ws.store().read(|r| r.sync_value(SYNC_CURSOR))? as u64;
        Ok(report)
    }

    async fn push(&self, team: TeamId, listener: Option<&dyn SyncListener>) -> Result<u64> {
        let mut pushed = 0;
        let total = self.ws.pending_changes()?;
        loop {
            let keys = self.ws.team_keys()?;
            let key = keys.last().ok_or(Error::NoTeam)?.clone();
            let entries = self
                .blocking(|ws| ws.pending_outbox(streetsync_wire::MAX_BATCH))
                .await?;
            if entries.is_empty() {
                return Ok(pushed);
            }
            let mut envelopes = Vec::new();
            let mut seqs = Vec::new();
            let mut bytes = 0;
            for e in &entries {
                if bytes > PUSH_BATCH_BYTES && !envelopes.is_empty() {
                    break;
                }
                let env = seal_envelope(
                    team,
                    &key,
                    self.ws.identity(),
                    Head {
                        doc: e.doc_id,
                        id: e.envelope_id,
                        kind: if e.tombstone {
                            EnvelopeKind::Tombstone
                        } else {
                            EnvelopeKind::Change
                        },
                        covers: 0,
                    },
                    &e.changes,
                )?;
                bytes += env.ciphertext.len() + 300;
                envelopes.push(env);
                seqs.push((e.seq, e.doc_id));
            }
            let n = envelopes.len() as u64;
            let sent: Vec<EnvelopeId> = envelopes.iter().map(|e| e.id).collect();
            let resp: PushResponse = self
                .relay
                .call(
                    self.ws.identity(),
                    Method::POST,
                    &team_path(team, "/push"),
                    Some(&PushRequest { envelopes }),
                )
                .await?;
            // Only what the relay acknowledged by id leaves the outbox; an answer that does not
            // match the batch is a protocol error and nothing is dropped.
            let acked: Vec<i64> = seqs
                .iter()
                .zip(&sent)
                .filter(|(_, id)| resp.results.iter().any(|r| &r.id == *id && r.seq > 0))
                .map(|((s, _), _)| *s)
                .collect();
            if acked.len() != sent.len() {
                return Err(Error::Protocol(format!(
                    "the relay acknowledged {} of {} envelopes",
                    acked.len(),
                    sent.len()
                )));
            }
            self.blocking(move |ws| ws.store().write(|w| w.ack_outbox(&acked)))
                .await?;
            pushed += n;
            if let Some(l) = listener {
                l.on_progress(SyncProgress {
                    phase: SyncPhase::Pushing,
                    done: pushed,
                    total: total.max(pushed),
                });
            }
        }
    }

    async fn pull(
        &self,
        team: TeamId,
        listener: Option<&dyn SyncListener>,
        report: &mut SyncReport,
    ) -> Result<()> {
        let start = self.ws.store().read(|r| r.sync_value(SYNC_CURSOR))? as u64;
        let mut cursor = start;
        let mut prefetched: Option<PullResponse> = None;
        loop {
            let page = match prefetched.take() {
                Some(page) => page,
                None => self.fetch_page(team, cursor).await?,
            };
            if page.head < cursor {
                // The relay lost entries this device already has (restored from a backup).
                report.relay_restored = true;
                cursor = 0;
                self.ws
                    .store()
                    .write(|w| w.set_sync_value(SYNC_CURSOR, 0))?;
                continue;
            }
            if page.entries.is_empty() {
                return Ok(());
            }
            if page.entries.iter().any(|e| e.seq <= cursor) {
                return Err(Error::Protocol(
                    "the relay sent entries at or before the cursor".into(),
                ));
            }
            let me = self.ws.device_id();
            let keys = self.ws.team_keys()?;
            let page_len = page.entries.len() as u64;
            let more = page.more;
            let page_last = page.entries.last().map_or(cursor, |e| e.seq);
            // While this page is applied (CPU-bound, on a blocking thread), the next one is already
            // on its way: a fresh device's bootstrap overlaps the relay's answer with the merge.
            let next = async {
                if more {
                    Some(self.fetch_page(team, page_last).await)
                } else {
                    None
                }
            };
            let apply = self.blocking(move |ws| {
                let mut out = PageOutcome::default();
                let last = apply_page(ws, me, &page.entries, &keys, &mut out)?;
                Ok((last, out))
            });
            let (applied_page, next) = tokio::join!(apply, next);
            let (last, out) = applied_page?;
            self.ws.listeners.emit(&out.changes);
            report.pulled += page_len;
            report.applied += out.applied;
            report.erased += out.erased;
            report.quarantined.extend(out.quarantined);
            cursor = last;
            if let Some(l) = listener {
                l.on_progress(SyncProgress {
                    phase: SyncPhase::Pulling,
                    done: cursor - start,
                    total: page.head.saturating_sub(start).max(cursor - start),
                });
            }
            // Only now: the page above is stored and announced even if fetching the next failed.
            prefetched = next.transpose()?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Asks the relay for the page of its log after `after`.
    async fn fetch_page(&self, team: TeamId, after: u64) -> Result<PullResponse> {
        let path = team_path(
            team,
            &format!("/pull?after={after}&limit={}", self.options.page_size),
        );
        self.relay
            .call::<(), _>(self.ws.identity(), Method::GET, &path, None)
            .await
    }

    /// Tries quarantined envelopes again whose reason may have cleared up. Returns how many applied.
    async fn retry_quarantine(&self) -> Result<u64> {
        let me = self.ws.device_id();
        let keys = self.ws.team_keys()?;
        let (n, changes) = self
            .blocking(move |ws| {
                let mut changes = Vec::new();
                let n = ws.store().write(|w| {
                    let mut n = 0;
                    for (seq, reason, raw) in w.quarantined()? {
                        if !retryable(&reason) {
                            continue;
                        }
                        let Ok(env) = serde_json::from_slice::<Envelope>(&raw) else {
                            continue;
                        };
                        match apply_envelope(w, me, &env, &keys, None, &mut changes) {
                            Ok(_) => {
                                w.unquarantine(seq)?;
                                n += 1;
                            }
                            Err(r) if r != reason => w.requarantine(seq, &r)?,
                            Err(_) => {}
                        }
                    }
                    Ok(n)
                })?;
                Ok((n, changes))
            })
            .await?;
        self.ws.listeners.emit(&changes);
        Ok(n)
    }

    /// Envelopes this device refused, oldest first (for a report to the lead).
    pub fn quarantine_report(&self) -> Result<Vec<Quarantined>> {
        self.ws.store().read(|r| {
            r.quarantined()?
                .into_iter()
                .map(|(seq, reason, raw)| {
                    let env: Envelope =
                        serde_json::from_slice(&raw).map_err(|e| Error::Protocol(e.to_string()))?;
                    Ok(Quarantined {
                        seq,
                        doc: env.doc,
                        author: env.author,
                        reason,
                    })
                })
                .collect()
        })
    }

    /// Uploads snapshots of records that gathered many change envelopes, so the relay can drop
    /// them and new devices bootstrap fast. Records with quarantined envelopes are skipped: their
    /// snapshot would not contain those changes.
    async fn compact_due(&self, team: TeamId, listener: Option<&dyn SyncListener>) -> Result<u64> {
        if self.options.compact_after == 0 {
            return Ok(0);
        }
        let threshold = self.options.compact_after as i64;
        let due = self.ws.store().read(|r| r.due_for_snapshot(threshold))?;
        self.upload_snapshots(team, due, listener).await
    }

    /// Uploads a snapshot of every record (used before inviting many devices, and by benchmarks).
    pub async fn compact_all(&self) -> Result<u64> {
        let _guard = self.running.lock().await;
        let team = self.ws.team()?;
        let all = self.ws.store().read(|r| r.due_for_snapshot(i64::MIN))?;
        self.upload_snapshots(team.id, all, None).await
    }

    async fn upload_snapshots(
        &self,
        team: TeamId,
        docs: Vec<RecordId>,
        listener: Option<&dyn SyncListener>,
    ) -> Result<u64> {
        let key = self.ws.team_keys()?.last().ok_or(Error::NoTeam)?.clone();
        let total = docs.len() as u64;
        let mut done = 0;
        // Everything up to the cursor is in this device's documents; the cursor cannot move while
        // this client holds its sync lock.
        let cursor = self.ws.store().read(|r| r.sync_value(SYNC_CURSOR))? as u64;
        for doc in docs {
            let bytes = match self.ws.export_document(doc) {
                Ok(b) => Zeroizing::new(b),
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let env = seal_envelope(
                team,
                &key,
                self.ws.identity(),
                Head {
                    doc,
                    id: EnvelopeId::random(),
                    kind: EnvelopeKind::Snapshot,
                    covers: cursor,
                },
                &bytes,
            )?;
            let _resp: streetsync_wire::SnapshotResponse = self
                .relay
                .call(
                    self.ws.identity(),
                    Method::POST,
                    &team_path(team, "/snapshot"),
                    Some(&env),
                )
                .await?;
            self.ws.store().write(|w| w.reset_activity(&doc))?;
            done += 1;
            if let Some(l) = listener {
                l.on_progress(SyncProgress {
                    phase: SyncPhase::Compacting,
                    done,
                    total,
                });
            }
        }
        Ok(done)
    }

    /// Starts live sync: a WebSocket tells this device about new envelopes, local changes are
    /// pushed at once, and lost connections are retried with backoff. Stops when the handle drops.
    pub fn start_live(self: &Arc<Self>, listener: Arc<dyn SyncListener>) -> LiveHandle {
        live::start(self.clone(), listener)
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
