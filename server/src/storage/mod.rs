//! Where the relay keeps teams, devices, the envelope logs and bundles.
//!
//! The HTTP layer talks only to the [`Storage`] trait: the embedded SQLite backend
//! ([`sqlite::SqliteStorage`], the default) or the PostgreSQL one ([`postgres::PgStorage`]), which
//! lets several stateless relay instances share one database (see `docs/adr/0003-relay-storage.md`
//! and `docs/adr/0011-relay-on-postgresql.md`).
//!
//! The trait is synchronous: implementations block, and the HTTP layer calls them from
//! `tokio::task::spawn_blocking`, never on the async workers. The one exception is
//! [`Storage::lookup_device_now`], which answers from memory or not at all.

mod log_row;
pub mod postgres;
pub mod sqlite;
mod writer;

use serde::Serialize;
use serde_json::value::RawValue;
use streetsync_wire::{
    Bundle, CreateInvite, DeviceId, DeviceInfo, DeviceKeys, Envelope, InviteId, InviteInfo,
    PushResult, Role, TeamId,
};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The team id is already taken.
    #[error("team exists")]
    TeamExists,
    /// The device is already registered in this team.
    #[error("device exists")]
    DeviceExists,
    /// No such team.
    #[error("no such team")]
    TeamNotFound,
    /// No such device in this team.
    #[error("no such device")]
    DeviceNotFound,
    /// The device doing this was revoked, after the request was authenticated but before its
    /// write committed (writes are serialized, so the check in the transaction is the last word).
    #[error("device revoked")]
    DeviceRevoked,
    /// No invite with that id (never created, or mistyped).
    #[error("no such invite")]
    InviteNotFound,
    /// The invite was redeemed already (or its id is taken).
    #[error("invite already used")]
    InviteUsed,
    /// The invite's time ran out.
    #[error("invite expired")]
    InviteExpired,
    /// A snapshot claims to cover sequence numbers the log has not given out yet.
    #[error("snapshot covers {covers}, but the log's head is {head}")]
    CoversBeyondHead {
        /// The snapshot's `covers`.
        covers: u64,
        /// The log's head when the snapshot was appended.
        head: u64,
    },
    /// The database schema is newer than this build.
    #[error(
        "database schema version {found} is newer than this relay's {known}; upgrade the relay"
    )]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A mailbox quota is full; the reason says which.
    #[error("mailbox full: {0}")]
    MailboxFull(String),
    /// An erasure committed, but the checkpoint that wipes its old pages from the WAL and the
    /// main file was blocked by readers for longer than the writer waits. Retried after every
    /// later write group and at the next start; the caller is told to retry.
    #[error("the erased pages are not wiped from the database files yet")]
    ErasurePending,
    /// Stored data that does not parse (a bug or a damaged file).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A database failure.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The write was not made durable: its group transaction failed, or the writer thread is gone.
    #[error("write: {0}")]
    Write(String),
    /// A filesystem failure while opening the database.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The database server cannot be reached (refused, lost, shutting down, pool exhausted for
    /// too long). Nothing of the operation was committed; retrying later is safe.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The transaction lost a deadlock or serialization race after its retries.
    #[error("database contention: {0}")]
    Contention(String),
    /// A PostgreSQL failure that is not about reaching the server.
    #[error("postgres: {0}")]
    Postgres(String),
    /// The database settings are unusable (URL, TLS certificates).
    #[error("database settings: {0}")]
    Config(String),
}

/// What appending a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// One result per envelope, in order.
    pub results: Vec<PushResult>,
    /// The team's head after the batch.
    pub head: u64,
    /// How many envelopes were new (not duplicates).
    pub appended: u64,
    /// How many older entries compaction or erasure deleted.
    pub dropped: u64,
    /// Whether the batch erased a record (a tombstone).
    pub erased: bool,
}

/// One page of a team's log, serialized exactly like the wire's
/// [`PullResponse`](streetsync_wire::PullResponse).
///
/// Each envelope is serialized once, straight from its row into its JSON
/// ([`serde_json::value::to_raw_value`]), and the page is then written around those strings:
/// nothing is parsed back, and no typed [`PullResponse`](streetsync_wire::PullResponse) is built.
#[derive(Debug, Serialize)]
pub struct PullPage {
    /// Entries with `seq > after`, ascending.
    pub entries: Vec<RawEntry>,
    /// The team's highest sequence number.
    pub head: u64,
    /// Whether entries after the last one of this page exist.
    pub more: bool,
}

/// Fills a [`PullPage`] from a backend's rows, so both backends cut pages the same way: at most
/// `limit` entries and, past the first, at most about `max_bytes` of envelope JSON (the bytes the
/// page takes on the wire, not the smaller bytes of the row).
pub(crate) struct PageBuilder {
    entries: Vec<RawEntry>,
    bytes: usize,
    limit: usize,
    max_bytes: usize,
    more: bool,
}

impl PageBuilder {
    /// An empty page with these bounds.
    pub(crate) fn new(limit: u32, max_bytes: usize) -> Self {
        Self {
            entries: Vec::new(),
            bytes: 0,
            limit: limit as usize,
            max_bytes,
            more: false,
        }
    }

    /// Adds the entry `seq` of `team` read from its row; `Ok(false)` once the page is full (the
    /// entry is not taken, and the page says `more`). The caller reads one row past `limit` so a
    /// full page knows that more exist. A row whose columns do not make an envelope (a damaged
    /// file) is [`StorageError::Corrupt`], and fails the page rather than reaching the client.
    pub(crate) fn push(
        &mut self,
        team: TeamId,
        seq: u64,
        row: log_row::LogRow,
    ) -> Result<bool, StorageError> {
        if self.entries.len() >= self.limit {
            self.more = true;
            return Ok(false);
        }
        let envelope = row.into_envelope(team, seq)?;
        let envelope = serde_json::value::to_raw_value(&envelope)
            .map_err(|e| StorageError::Corrupt(format!("log entry {seq}: {e}")))?;
        let len = envelope.get().len();
        if !self.entries.is_empty() && self.bytes + len > self.max_bytes {
            self.more = true;
            return Ok(false);
        }
        self.bytes += len;
        self.entries.push(RawEntry { seq, envelope });
        Ok(true)
    }

    /// The page, with the team's `head`.
    pub(crate) fn finish(self, head: u64) -> PullPage {
        PullPage {
            entries: self.entries,
            head,
            more: self.more,
        }
    }
}

/// One log entry with its envelope's JSON; serializes like
/// [`PullEntry`](streetsync_wire::PullEntry).
#[derive(Debug, Serialize)]
pub struct RawEntry {
    /// The entry's sequence number.
    pub seq: u64,
    /// The envelope's JSON, exactly as serializing the [`Envelope`] gives it.
    pub envelope: Box<RawValue>,
}

/// How many bundles, and how many of their bytes, may wait in the relay's mailboxes.
///
/// Bundles wait until their addressee fetches and deletes them. Without a cap any member could
/// fill a teammate's mailbox (and the relay's disk); the recipient's cap bounds what one mailbox
/// holds, the sender's cap what one device can leave over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxQuota {
    /// Bundles waiting for one device.
    pub recipient_bundles: u32,
    /// Bytes of bundles waiting for one device.
    pub recipient_bytes: u64,
    /// Bundles one device has waiting, over all recipients.
    pub sender_bundles: u32,
    /// Bytes of bundles one device has waiting, over all recipients.
    pub sender_bytes: u64,
}

impl Default for MailboxQuota {
    fn default() -> Self {
        MailboxQuota {
            recipient_bundles: 256,
            recipient_bytes: 32 * 1024 * 1024,
            sender_bundles: 1024,
            sender_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One page of a device's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundlePage {
    /// Bundles with `id > after`, oldest first.
    pub bundles: Vec<Bundle>,
    /// Whether more bundles wait after the last one.
    pub more: bool,
}

/// Who the signer of a request is registered as, for authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLookup {
    /// The device in the path's team, revoked or not.
    pub in_team: Option<DeviceInfo>,
    /// If it is not in that team: the device in another team (to tell `wrong_team` from
    /// `unknown_device`).
    pub elsewhere: Option<DeviceInfo>,
}

/// An invite as the relay keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvite {
    /// The team it joins.
    pub team: TeamId,
    /// Key of the redemption HMAC.
    pub auth_key: [u8; 32],
    /// Role it grants.
    pub role: Role,
    /// Expiry, unix milliseconds.
    pub expires_ms: i64,
    /// The sealed bundle.
    pub blob: Vec<u8>,
    /// Whether it was redeemed.
    pub redeemed: bool,
}

/// The relay's persistent state. Every method is one atomic operation.
pub trait Storage: Send + Sync + 'static {
    /// Creates a team with its founding device; [`StorageError::TeamExists`] if the id is taken.
    fn create_team(
        &self,
        team: TeamId,
        founder: &DeviceKeys,
        now_ms: i64,
    ) -> Result<(), StorageError>;

    /// Registers a device in an existing team; [`StorageError::DeviceExists`] if it is there.
    fn add_device(
        &self,
        team: TeamId,
        device: &DeviceKeys,
        now_ms: i64,
    ) -> Result<(), StorageError>;

    /// The device `id` of `team`, if registered (revoked or not).
    fn device(&self, team: TeamId, id: DeviceId) -> Result<Option<DeviceInfo>, StorageError>;

    /// The device `id` in any team (to tell "wrong team" from "unknown device").
    fn device_in_any_team(&self, id: DeviceId) -> Result<Option<DeviceInfo>, StorageError>;

    /// [`DeviceLookup`] at once, without blocking, if this backend keeps the devices in memory;
    /// `None` tells the caller to ask [`Storage::device`] and [`Storage::device_in_any_team`] on
    /// the blocking pool instead. Every request is authenticated, and the trip through the
    /// blocking pool (two thread wake-ups) cost more than the lookup itself.
    fn lookup_device_now(&self, team: TeamId, id: DeviceId) -> Option<DeviceLookup> {
        let _ = (team, id);
        None
    }

    /// Every device of the team, revoked ones included, in registration order.
    fn list_devices(&self, team: TeamId) -> Result<Vec<DeviceInfo>, StorageError>;

    /// Marks a device revoked and, in the same transaction, deletes every invite of the team it
    /// created that is not redeemed yet, so no invite outlives the trust in its creator. Returns
    /// how many invites it deleted; [`StorageError::DeviceNotFound`] if the team has no such
    /// device.
    fn revoke_device(&self, team: TeamId, id: DeviceId) -> Result<u64, StorageError>;

    /// Stores a bundle for `to`; [`StorageError::DeviceNotFound`] if `to` is not in the team,
    /// [`StorageError::MailboxFull`] if it would break `quota` (checked in the same
    /// transaction as the insert).
    fn post_bundle(
        &self,
        team: TeamId,
        from: DeviceId,
        to: DeviceId,
        blob: &[u8],
        now_ms: i64,
        quota: &MailboxQuota,
    ) -> Result<u64, StorageError>;

    /// Bundles addressed to `to` with `id > after`, oldest first: at most `limit`, and past the
    /// first at most about `max_bytes` of blob.
    fn bundles_for(
        &self,
        team: TeamId,
        to: DeviceId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<BundlePage, StorageError>;

    /// Deletes bundle `id` if it is addressed to `to`; false if there is no such bundle.
    fn delete_bundle(&self, team: TeamId, to: DeviceId, id: u64) -> Result<bool, StorageError>;

    /// Appends envelopes (already verified by the caller) in one transaction.
    ///
    /// An id the log already accepted gets its old seq and `duplicate: true`. A new snapshot then
    /// deletes its record's change and snapshot entries with `seq <= covers`; a new tombstone
    /// deletes every earlier entry of its record. Any error rolls the whole batch back.
    fn append(&self, team: TeamId, envelopes: &[Envelope]) -> Result<AppendOutcome, StorageError>;

    /// Stores a new invite of `team`, created by lead device `by`; [`StorageError::DeviceRevoked`]
    /// if `by` was revoked meanwhile (else the invite would escape the revocation's clean-up).
    fn create_invite(
        &self,
        team: TeamId,
        by: DeviceId,
        invite: &CreateInvite,
        now_ms: i64,
    ) -> Result<(), StorageError>;

    /// An invite by id.
    fn invite(&self, id: InviteId) -> Result<Option<StoredInvite>, StorageError>;

    /// Redeems an invite once: registers `device` in the invite's team as given and keeps
    /// `confirm` (opaque here: only the lead can check it) for [`Storage::list_invites`]. The
    /// caller sets the device's role to the invite's (the HTTP layer does, `http::invites`), so a
    /// storage backend never needs to decide roles. Fails with [`StorageError::InviteNotFound`]
    /// (also if it was cancelled meanwhile), [`StorageError::InviteUsed`] or
    /// [`StorageError::InviteExpired`].
    fn redeem_invite(
        &self,
        id: InviteId,
        device: &DeviceKeys,
        confirm: &[u8; 32],
        now_ms: i64,
    ) -> Result<(), StorageError>;

    /// Deletes an open invite of `team`, so it can no longer be redeemed. False if the team has
    /// no such invite; [`StorageError::InviteUsed`] if it was redeemed already (its record is what
    /// the lead checks the redeemer against, so it stays; revoking the device is the way out).
    fn cancel_invite(&self, team: TeamId, id: InviteId) -> Result<bool, StorageError>;

    /// The team's invites with the device that redeemed each and its confirmation.
    fn list_invites(&self, team: TeamId) -> Result<Vec<InviteInfo>, StorageError>;

    /// Entries with `seq > after`, ascending, at most `limit` and (past the first) at most about
    /// `max_bytes` of envelope JSON. The envelopes are the ones pushed, field for field.
    fn pull(
        &self,
        team: TeamId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<PullPage, StorageError>;

    /// The team's head, or `None` if there is no such team.
    fn head(&self, team: TeamId) -> Result<Option<u64>, StorageError>;

    /// Whether this backend keeps request nonces for every relay instance on the same database
    /// ([`Storage::remember_nonce`]); false (the default) leaves replay protection to the
    /// process's in-memory cache, which is enough for a backend one process owns.
    fn shares_nonces(&self) -> bool {
        false
    }

    /// Records a request's `(device, nonce)` where every instance sees it; false if some
    /// instance recorded it before (a replay). Only called if [`Storage::shares_nonces`].
    fn remember_nonce(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        ts_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let _ = (device, nonce, ts_ms, now_ms);
        Err(StorageError::Config(
            "this backend keeps no shared nonces".into(),
        ))
    }
}
