//! Sync through the blind relay.
//!
//! `sync_once` pushes the outbox, then pulls pages of envelopes after the device's cursor. Each
//! envelope is checked against the roster in the Team document (never the relay's word): team,
//! known author, Ed25519 signature, a key for its epoch, and the AEAD tag over its header. Good
//! envelopes are merged; bad ones are quarantined and reported while the rest goes on. Every page,
//! with the new cursor, is stored in one local transaction. Network I/O never holds the store lock,
//! so sync never blocks local writes.

pub(crate) mod invites;
mod live;
mod relay;
pub(crate) mod rotation;

use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use streetsync_wire::{
    DeviceId, Envelope, EnvelopeId, EnvelopeKind, InviteId, PullResponse, PushRequest,
    PushResponse, RecordId, TeamId,
};
use zeroize::Zeroizing;

pub use invites::{Invite, MAX_INVITE_TTL_SECS, OpenInvite};
pub use live::{LiveHandle, SyncListener, SyncStatus};

use crate::engine::Engine;
use crate::engine::page::{
    META_CURSOR_ENVELOPE, PageOutcome, SYNC_CURSOR, apply_envelope, apply_page,
};
use crate::engine::remote::{Head, QuarantineReason, Quarantined, seal_envelope};
use crate::error::{Error, Result};
use crate::model::team::Team;
use crate::workspace::Workspace;
use relay::RelayClient;

const SYNC_REGISTERED: &str = "registered";
/// Sync-state key: a lead owes the relay a snapshot of every record (its log was lost).
const SYNC_REUPLOAD_ALL: &str = "reupload_all";
/// The last day (days since 0001-01-01) a lead's device ran automatic retention.
const SYNC_RETENTION_DAY: &str = "retention_day";
/// Largest push batch by bytes, well under the relay's body limit.
const PUSH_BATCH_BYTES: usize = 4 * 1024 * 1024;

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
    /// Records this lead's device erased in this sync because their retention period ended (the
    /// team chose automatic erasure; at most once a day). The audit entry is in
    /// `Workspace::retention_log`.
    #[serde(default)]
    pub retention_erased: u64,
    /// The relay's log was behind this device's cursor (restored from a backup, or rolled back):
    /// the device pulled everything again, and re-sent what the log lost (a lead uploads
    /// snapshots of every record, a worker its own changes), so nothing is lost.
    pub relay_restored: bool,
    /// What the relay, or a member through it, tried that the protocol does not allow: each was
    /// refused, and is listed here so the app can tell the user (and the lead the operator).
    pub alerts: Vec<SecurityAlert>,
}

/// Something refused because the relay, or a member through it, broke the protocol. The data it
/// concerns is safe (nothing was taken on the relay's word); the alert says what was tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "alert")]
pub enum SecurityAlert {
    /// An invite was redeemed by a device that cannot prove it holds the invite code (what a relay
    /// operator enrolling its own device looks like): it was not put on the roster, and the
    /// invite is gone. Make a new invite for the member.
    ForgedEnrolment {
        /// The invite.
        invite: InviteId,
        /// The device that claimed it.
        device: DeviceId,
    },
    /// An invite was redeemed by a device already on the roster: its entry was left as it is.
    InviteForExistingDevice {
        /// The invite.
        invite: InviteId,
        /// The device named.
        device: DeviceId,
    },
    /// A key bundle that is not a grant signed by an active lead of this team was refused.
    ForgedGrant {
        /// The device the relay says sent it.
        from: DeviceId,
    },
    /// Changes the relay acknowledged never showed up in its log (dropped, or answered as
    /// "duplicate" without being stored): they were queued again and will be sent again.
    DroppedChanges {
        /// How many outbox entries were queued again.
        count: u64,
    },
    /// The relay's log went back behind what this device had already pulled.
    LogRolledBack {
        /// This device's cursor before.
        cursor: u64,
        /// The relay's head.
        head: u64,
    },
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

/// When a sync reads the relay's mailbox of key grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mailbox {
    /// Every time: manual syncs, and the live loop's first and periodic ones.
    Always,
    /// Only while the Team document settles an epoch on a key this device lacks.
    WhenAwaitingKey,
}

/// Syncs one workspace with one relay.
pub struct SyncClient {
    ws: Arc<Workspace>,
    engine: Arc<Engine>,
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

impl SyncClient {
    /// A client for `relay_url` (for example `http://127.0.0.1:7878`).
    pub fn new(ws: Arc<Workspace>, relay_url: &str) -> Result<Self> {
        Self::with_options(ws, relay_url, SyncOptions::default())
    }

    /// A client with explicit tunables.
    pub fn with_options(ws: Arc<Workspace>, relay_url: &str, options: SyncOptions) -> Result<Self> {
        Ok(Self {
            engine: ws.engine().clone(),
            ws,
            relay: RelayClient::new(relay_url, options.trusted_roots_pem.as_deref())?,
            options,
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// Refuses what only a lead may do, before anything is sent.
    pub(crate) fn require_lead(&self, what: &str) -> Result<()> {
        match self.engine.my_role()? {
            streetsync_wire::Role::Lead => Ok(()),
            streetsync_wire::Role::Worker => {
                Err(Error::NotAllowed(format!("only a team lead can {what}")))
            }
        }
    }

    /// How far this device has pulled the relay's log.
    pub(crate) fn cursor(&self) -> Result<u64> {
        Ok(self.engine.store.read(|r| r.sync_value(SYNC_CURSOR))? as u64)
    }

    /// The workspace this client syncs.
    pub fn workspace(&self) -> &Arc<Workspace> {
        &self.ws
    }

    /// Runs blocking store work off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let ws = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&ws))
            .await
            .map_err(|e| {
                Error::Internal(if e.is_panic() {
                    "store task panicked"
                } else {
                    "store task cancelled"
                })
            })?
    }

    /// Registers the team on the relay (the founding lead's device, once).
    async fn ensure_registered(&self, team: &Team) -> Result<()> {
        let registered = self.engine.store.read(|r| r.sync_value(SYNC_REGISTERED))?;
        if registered != 0 {
            return Ok(());
        }
        let me = self.engine.device_id();
        // Only the founder registers; other devices were added by a lead.
        if team.roster.first().map(|d| d.device_id) == Some(me) {
            let body = streetsync_wire::CreateTeam {
                team: team.id,
                device: self.engine.device_keys(streetsync_wire::Role::Lead),
            };
            match self
                .relay
                .call::<_, streetsync_wire::Empty>(
                    self.engine.identity(),
                    Method::POST,
                    "/v1/teams",
                    Some(&body),
                )
                .await
            {
                Ok(_) => {}
                Err(Error::Relay {
                    code: streetsync_wire::ErrorCode::TeamExists,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        self.engine
            .store
            .write(|w| w.set_sync_value(SYNC_REGISTERED, 1))
    }

    /// Pushes the outbox, pulls everything new, retries quarantined envelopes and uploads due
    /// snapshots. Safe to call at any time; a failure leaves the store consistent and the next call
    /// picks up where this one stopped.
    pub async fn sync_once(&self, listener: Option<&dyn SyncListener>) -> Result<SyncReport> {
        self.sync_with(Mailbox::Always, listener).await
    }

    /// One sync of the live loop, woken by a local change or by the relay's announcement of a new
    /// head: the same as [`SyncClient::sync_once`], except that the mailbox is read only while a
    /// key grant can be of use ([`Engine::awaits_key`]). That spares a request on each side of
    /// an edit's way to a teammate; the loop's first sync after connecting, and its periodic one,
    /// read the mailbox always.
    pub(crate) async fn sync_live(
        &self,
        listener: Option<&dyn SyncListener>,
    ) -> Result<SyncReport> {
        self.sync_with(Mailbox::WhenAwaitingKey, listener).await
    }

    async fn sync_with(
        &self,
        mailbox: Mailbox,
        listener: Option<&dyn SyncListener>,
    ) -> Result<SyncReport> {
        let _guard = self.running.lock().await;
        let team = self.engine.team()?;
        self.ensure_registered(&team).await?;
        let mut alerts = Vec::new();
        // New epoch keys first, so this sync already seals with the newest key.
        let mailbox_read = mailbox == Mailbox::Always || self.engine.awaits_key()?;
        let keys_received = if mailbox_read {
            self.receive_bundles(team.id, &mut alerts).await?
        } else {
            0
        };
        let devices_enrolled = self.complete_invites(team.id, &mut alerts).await?;
        let mut report = SyncReport {
            keys_received,
            devices_enrolled,
            ..SyncReport::default()
        };
        if self.has_kept_grants()? {
            // A lead rotated the key: pull its commitment first, so nothing is pushed under the
            // old key, which the removed device holds.
            self.pull(team.id, listener, &mut report).await?;
            report.keys_received += self.take_grants()?;
        }
        report.pushed = self.push(team.id, listener).await?;
        self.pull(team.id, listener, &mut report).await?;
        // Pulled to the head: every change the relay acknowledged must have come back by now.
        let lost = self.engine.store.write(|w| w.requeue_unechoed())?;
        if lost > 0 {
            alerts.push(SecurityAlert::DroppedChanges { count: lost });
        }
        if !mailbox_read && self.engine.awaits_key()? {
            // This pull brought a commitment to an epoch whose key is not here: its grant may be
            // waiting (what the pull could not open is retried below, once it is taken).
            report.keys_received += self.receive_bundles(team.id, &mut alerts).await?;
        }
        // A key this device took for an epoch the Team document now settles on another key goes
        // first; then grants whose epoch was committed to only in this pull are taken.
        let (dropped, own_lost) = self.engine.resolve_contested_epochs()?;
        report.keys_received += self.take_grants()?;
        if dropped {
            // What this device sealed under the dropped key reaches nobody: it goes out again.
            self.engine.requeue_own_changes()?;
        }
        if own_lost && self.engine.my_role().ok() == Some(streetsync_wire::Role::Lead) {
            // Another lead rotated at the same moment and its key won: a new epoch leaves out
            // every device either lead removed.
            let key = self.engine.start_rotation()?;
            self.engine.commit_epoch(&key)?;
        }
        // The change committing to a new key is in the log now: seal under it, grant it, and
        // send what was held back while the old key was still the sealing key.
        if self.finish_rotation(team.id).await? {
            report.pushed += self.push(team.id, listener).await?;
        }
        report.recovered = self.retry_quarantine().await?;
        let lead = self.engine.my_role().ok() == Some(streetsync_wire::Role::Lead);
        if report.relay_restored {
            if lead {
                // Remembered until done: a rotation in progress may hold the snapshots back.
                self.engine
                    .store
                    .write(|w| w.set_sync_value(SYNC_REUPLOAD_ALL, 1))?;
            } else {
                // Only leads' snapshots are accepted: a worker sends its own changes again.
                self.engine.requeue_own_changes()?;
            }
        }
        // While a revocation's new key is not in use yet, nothing else is sealed: a snapshot under
        // the old key would hand the removed device whole records.
        let rotating = self.engine.pending_rotation()?.is_some_and(|p| !p.active);
        let reupload = self
            .engine
            .store
            .read(|r| r.sync_value(SYNC_REUPLOAD_ALL))?
            != 0;
        report.snapshots = match (lead && !rotating, reupload) {
            (true, true) => {
                let all = self
                    .engine
                    .store
                    .read(|r| r.due_for_snapshot(i64::MIN, QuarantineReason::RETRYABLE))?;
                let n = self.upload_snapshots(team.id, all, listener).await?;
                self.engine
                    .store
                    .write(|w| w.set_sync_value(SYNC_REUPLOAD_ALL, 0))?;
                n
            }
            (true, false) => self.compact_due(team.id, listener).await?,
            (false, _) => 0,
        };
        if lead {
            report.retention_erased = self.daily_retention()?;
        }
        if lost > 0 || dropped || report.relay_restored || report.retention_erased > 0 {
            report.pushed += self.push(team.id, listener).await?;
        }
        report.alerts.extend(alerts);
        report.cursor = self.engine.store.read(|r| r.sync_value(SYNC_CURSOR))? as u64;
        Ok(report)
    }

    /// A lead's daily retention run, when the team chose automatic erasure: the contacts past
    /// their period are erased here and their tombstones queued (pushed in this sync). Once per
    /// day; the day is remembered only after the erasure committed.
    fn daily_retention(&self) -> Result<u64> {
        let team = self.engine.team()?;
        if team.retention.mode != crate::model::retention::RetentionMode::Automatic {
            return Ok(0);
        }
        let today = crate::clock::today();
        let day = i64::from(chrono::Datelike::num_days_from_ce(&today));
        if self
            .engine
            .store
            .read(|r| r.sync_value(SYNC_RETENTION_DAY))?
            >= day
        {
            return Ok(0);
        }
        let erased = self
            .engine
            .erase_due(today, crate::model::retention::RetentionTrigger::DailySync)?
            .map_or(0, |a| a.records.len() as u64);
        self.engine
            .store
            .write(|w| w.set_sync_value(SYNC_RETENTION_DAY, day))?;
        Ok(erased)
    }

    async fn push(&self, team: TeamId, listener: Option<&dyn SyncListener>) -> Result<u64> {
        let mut pushed = 0;
        let total = self.engine.pending_changes()?;
        // While a revocation's new key waits for its commitment to reach the log, only the Team
        // document goes out: anything else would be sealed under the key the removed device holds.
        let team_only = match self.engine.pending_rotation()? {
            Some(p) if !p.active => Some(self.engine.team_doc_id()?),
            _ => None,
        };
        loop {
            let keys = self.engine.team_keys()?;
            let key = keys.last().ok_or(Error::NoTeam)?.clone();
            let mut entries = match team_only {
                None => {
                    self.blocking(|ws| ws.pending_outbox(streetsync_wire::MAX_BATCH))
                        .await?
                }
                Some(_) => {
                    self.blocking(|ws| ws.pending_outbox(usize::MAX >> 1))
                        .await?
                }
            };
            if let Some(doc) = team_only {
                entries.retain(|e| e.doc_id == doc);
                entries.truncate(streetsync_wire::MAX_BATCH);
            }
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
                    self.engine.identity(),
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
                    self.engine.identity(),
                    Method::POST,
                    &team_path(team, "/push"),
                    Some(&PushRequest { envelopes }),
                )
                .await?;
            // Only what the relay acknowledged by id is marked sent, with the position it names;
            // it leaves the outbox only when it comes back from the log. An answer that does not
            // match the batch is a protocol error and nothing is marked.
            let acked: Vec<(i64, EnvelopeId, u64)> = seqs
                .iter()
                .zip(&sent)
                .filter_map(|((s, _), id)| {
                    resp.results
                        .iter()
                        .find(|r| &r.id == id && r.seq > 0)
                        .map(|r| (*s, *id, r.seq))
                })
                .collect();
            if acked.len() != sent.len() {
                return Err(Error::Protocol(format!(
                    "the relay acknowledged {} of {} envelopes",
                    acked.len(),
                    sent.len()
                )));
            }
            self.blocking(move |ws| ws.store.write(|w| w.ack_outbox(&acked)))
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
        let start = self.engine.store.read(|r| r.sync_value(SYNC_CURSOR))? as u64;
        let mut cursor = start;
        let mut prefetched: Option<PullResponse> = None;
        // The entry at the cursor is asked for again: if the relay now has another envelope at
        // that position, its log was rolled back and refilled (a comparison of heads alone misses
        // that once new envelopes pass the old head). An entry compacted away proves nothing.
        let at_cursor = self.engine.store.read(|r| r.meta(META_CURSOR_ENVELOPE))?;
        let mut check_cursor = cursor > 0 && at_cursor.is_some();
        loop {
            let mut page = match prefetched.take() {
                Some(page) => page,
                None if check_cursor => self.fetch_page(team, cursor - 1, 1).await?,
                None => self.fetch_page(team, cursor, 0).await?,
            };
            let mut rolled_back = page.head < cursor;
            if std::mem::take(&mut check_cursor)
                && let Some(first) = page.entries.first()
                && first.seq == cursor
            {
                if Some(first.envelope.id.as_bytes().as_slice()) == at_cursor.as_deref() {
                    page.entries.remove(0);
                } else {
                    rolled_back = true;
                }
            }
            if rolled_back {
                // The relay lost entries this device already has (restored from a backup).
                report.relay_restored = true;
                report.alerts.push(SecurityAlert::LogRolledBack {
                    cursor,
                    head: page.head,
                });
                cursor = 0;
                self.engine
                    .store
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
            let me = self.engine.device_id();
            let keys = self.engine.team_keys()?;
            let page_len = page.entries.len() as u64;
            let more = page.more;
            let page_last = page.entries.last().map_or(cursor, |e| e.seq);
            // While this page is applied (CPU-bound, on a blocking thread), the next one is already
            // on its way: a fresh device's bootstrap overlaps the relay's answer with the merge.
            let next = async {
                if more {
                    Some(self.fetch_page(team, page_last, 0).await)
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
            self.engine.events.emit(&out.changes);
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

    /// Asks the relay for the page of its log after `after`; `extra` more entries than a page
    /// (the entry at the cursor, asked for again, still leaves a whole page of new ones).
    async fn fetch_page(&self, team: TeamId, after: u64, extra: u32) -> Result<PullResponse> {
        let limit = self.options.page_size.saturating_add(extra);
        let path = team_path(team, &format!("/pull?after={after}&limit={limit}"));
        self.relay
            .call::<(), _>(self.engine.identity(), Method::GET, &path, None)
            .await
    }

    /// Tries quarantined envelopes again whose reason may have cleared up. Returns how many applied.
    async fn retry_quarantine(&self) -> Result<u64> {
        let me = self.engine.device_id();
        let keys = self.engine.team_keys()?;
        let (n, changes) = self
            .blocking(move |ws| {
                let mut changes = Vec::new();
                let n = ws.store.write(|w| {
                    let mut n = 0;
                    for (seq, reason, raw) in w.quarantined()? {
                        let reason = QuarantineReason::parse(&reason);
                        if !reason.is_retryable() {
                            continue;
                        }
                        let Ok(env) = serde_json::from_slice::<Envelope>(&raw) else {
                            continue;
                        };
                        match apply_envelope(w, me, seq, &env, &keys, None, &mut changes)? {
                            Ok(_) => {
                                w.unquarantine(seq)?;
                                n += 1;
                            }
                            Err(r) if r != reason => w.requarantine(seq, r.as_str())?,
                            Err(_) => {}
                        }
                    }
                    Ok(n)
                })?;
                Ok((n, changes))
            })
            .await?;
        self.engine.events.emit(&changes);
        Ok(n)
    }

    /// Envelopes this device refused, oldest first (for a report to the lead).
    pub fn quarantine_report(&self) -> Result<Vec<Quarantined>> {
        self.engine.store.read(|r| {
            r.quarantined()?
                .into_iter()
                .map(|(seq, reason, raw)| {
                    let env: Envelope =
                        serde_json::from_slice(&raw).map_err(|e| Error::Protocol(e.to_string()))?;
                    Ok(Quarantined {
                        seq,
                        doc: env.doc,
                        author: env.author,
                        reason: QuarantineReason::parse(&reason),
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
        let due = self
            .engine
            .store
            .read(|r| r.due_for_snapshot(threshold, QuarantineReason::RETRYABLE))?;
        self.upload_snapshots(team, due, listener).await
    }

    /// Uploads a snapshot of every record (used before inviting many devices, and by benchmarks;
    /// leads only, since only leads' snapshots are accepted).
    pub async fn compact_all(&self) -> Result<u64> {
        self.require_lead("upload snapshots")?;
        if self.engine.pending_rotation()?.is_some_and(|p| !p.active) {
            return Err(Error::NotAllowed(
                "a key rotation is not finished yet; sync first, then compact".into(),
            ));
        }
        let _guard = self.running.lock().await;
        let team = self.engine.team()?;
        let all = self
            .engine
            .store
            .read(|r| r.due_for_snapshot(i64::MIN, QuarantineReason::RETRYABLE))?;
        self.upload_snapshots(team.id, all, None).await
    }

    async fn upload_snapshots(
        &self,
        team: TeamId,
        docs: Vec<RecordId>,
        listener: Option<&dyn SyncListener>,
    ) -> Result<u64> {
        let key = self
            .engine
            .team_keys()?
            .last()
            .ok_or(Error::NoTeam)?
            .clone();
        let total = docs.len() as u64;
        let mut done = 0;
        // Everything up to the cursor is in this device's documents; the cursor cannot move while
        // this client holds its sync lock.
        let cursor = self.engine.store.read(|r| r.sync_value(SYNC_CURSOR))? as u64;
        for doc in docs {
            let bytes = match self.engine.export_document(doc) {
                Ok(b) => Zeroizing::new(b),
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let env = seal_envelope(
                team,
                &key,
                self.engine.identity(),
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
                    self.engine.identity(),
                    Method::POST,
                    &team_path(team, "/snapshot"),
                    Some(&env),
                )
                .await?;
            // The relay drops what the snapshot covers, own pushed changes of this record among
            // them: they are in the snapshot, so their echoes are no longer awaited.
            self.engine.store.write(|w| {
                w.reset_activity(&doc)?;
                w.confirm_covered(&doc, cursor)
            })?;
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
