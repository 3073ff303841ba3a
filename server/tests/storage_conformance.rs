//! One conformance suite for every storage backend (issue 16), in the manner of matrix-rust-sdk's
//! `statestore_integration_tests!`: each test below is a function of a [`Storage`], and
//! [`conformance!`] instantiates it once on a fresh SQLite file and once on a fresh PostgreSQL
//! database.
//!
//! PostgreSQL comes from `STREETSYNC_TEST_DATABASE_URL` (tests/postgres/cluster.sh starts a
//! throwaway cluster and tests/run-all.sh exports it). Each test creates its own database there,
//! so the tests run in parallel. A missing URL fails the PostgreSQL tests; none is skipped.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};

use streetsync_relay::storage::postgres::{PgConnect, PgStorage};
use streetsync_relay::storage::sqlite::SqliteStorage;
use streetsync_relay::storage::{DeviceLookup, MailboxQuota, Storage, StorageError};
use streetsync_wire::{
    CreateInvite, DeviceId, DeviceKeys, ENVELOPE_VERSION, Envelope, EnvelopeId, EnvelopeKind,
    InviteId, PushResult, RecordId, Role, TeamId,
};

/// A backend under test: the storage, and a way to open a second handle on the same database
/// (another relay instance, or the same one after a restart).
trait Backend {
    fn storage(&self) -> Arc<dyn Storage>;
    fn second(&self) -> Arc<dyn Storage>;
}

struct Sqlite {
    dir: tempfile::TempDir,
    storage: Arc<SqliteStorage>,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(SqliteStorage::open(dir.path()).unwrap());
        Sqlite { dir, storage }
    }
}

impl Backend for Sqlite {
    fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }
    fn second(&self) -> Arc<dyn Storage> {
        Arc::new(SqliteStorage::open(self.dir.path()).unwrap())
    }
}

/// The runtime that drives the PostgreSQL connections of every test in this binary.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The cluster URL; a clear failure if it is missing.
fn cluster_url() -> String {
    std::env::var("STREETSYNC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "STREETSYNC_TEST_DATABASE_URL is not set: the PostgreSQL tests need a database. \
             Start one with `tests/postgres/cluster.sh start DIR` and export the URL it prints \
             (tests/run-all.sh does both)"
        )
    })
}

/// `url` with its database name replaced.
fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (server, _) = base.rsplit_once('/').unwrap();
    if query.is_empty() {
        format!("{server}/{db}")
    } else {
        format!("{server}/{db}?{query}")
    }
}

/// A fresh, empty database on the test cluster; returns its URL.
fn fresh_database() -> String {
    let url = cluster_url();
    let db = format!("conformance_{}", hex::encode(TeamId::random().as_bytes()));
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test cluster at {url}: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    });
    with_dbname(&url, &db)
}

struct Postgres {
    url: String,
    storage: Arc<PgStorage>,
}

fn open_pg(url: &str) -> Result<PgStorage, StorageError> {
    PgStorage::open(PgConnect::parse(url, None)?, 8, runtime().handle().clone())
}

impl Postgres {
    fn new() -> Self {
        let url = fresh_database();
        let storage = Arc::new(open_pg(&url).unwrap());
        Postgres { url, storage }
    }
}

impl Backend for Postgres {
    fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }
    fn second(&self) -> Arc<dyn Storage> {
        Arc::new(open_pg(&self.url).unwrap())
    }
}

/// Runs every named test against both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Sqlite::new());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Postgres::new());
                }
            )*
        }
    };
}

conformance!(
    append_pull_compact_erase,
    batches_are_atomic,
    concurrent_appends_stay_gap_free,
    pull_pages_serialize_as_the_wire_pull_response,
    stored_envelopes_pull_back_byte_identical,
    the_page_byte_budget_counts_the_wire_json,
    devices_register_list_and_revoke,
    invites_end_with_cancel_or_their_creators_revocation,
    invites_redeem_once_before_expiry,
    bundles_reach_only_current_members,
    mailbox_quotas_count_per_recipient_and_per_sender,
    concurrent_posts_never_overshoot_a_quota,
    mailboxes_are_read_in_pages,
    writes_survive_reopening,
    nonces_are_shared_when_the_backend_says_so,
);

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

fn seqs(s: &dyn Storage, team: TeamId) -> Vec<u64> {
    s.pull(team, 0, 10_000, usize::MAX)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.seq)
        .collect()
}

fn invite(n: u8, expires_ms: i64) -> CreateInvite {
    CreateInvite {
        id: InviteId::from_bytes([n; 16]),
        auth_key: [n; 32],
        role: Role::Worker,
        expires_ms,
        blob: vec![n],
    }
}

/// Sequence numbers, idempotent retries, snapshot compaction and tombstones (ADR 0003).
fn append_pull_compact_erase(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
    assert!(matches!(
        s.create_team(team, &keys(1, Role::Lead), 0),
        Err(StorageError::TeamExists)
    ));
    assert!(matches!(
        s.append(
            TeamId::random(),
            &[env(team, RecordId::random(), EnvelopeKind::Change, 0)]
        ),
        Err(StorageError::TeamNotFound)
    ));
    assert_eq!(s.head(team).unwrap(), Some(0));
    assert_eq!(s.head(TeamId::random()).unwrap(), None);
    let (a, r) = (RecordId::random(), RecordId::random());
    let batch: Vec<_> = [a, r, a, r]
        .iter()
        .map(|d| env(team, *d, EnvelopeKind::Change, 0))
        .collect();
    let out = s.append(team, &batch).unwrap();
    assert_eq!((out.head, out.appended), (4, 4));
    assert_eq!(
        out.results.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let again = s.append(team, &batch).unwrap();
    assert!(again.results.iter().all(|r| r.duplicate));
    assert_eq!((again.head, again.appended), (4, 0));

    let too_far = env(team, a, EnvelopeKind::Snapshot, 5);
    assert!(matches!(
        s.append(team, &[too_far]),
        Err(StorageError::CoversBeyondHead { covers: 5, head: 4 })
    ));
    let snap = s
        .append(team, &[env(team, a, EnvelopeKind::Snapshot, 3)])
        .unwrap();
    assert_eq!((snap.head, snap.dropped), (5, 2));
    assert_eq!(seqs(s.as_ref(), team), [2, 4, 5]);
    // A retry of a compacted change is still a duplicate with its old seq.
    let retry = s.append(team, &batch[..1]).unwrap();
    assert_eq!(
        retry.results[0],
        PushResult {
            id: batch[0].id,
            seq: 1,
            duplicate: true
        }
    );

    let erased = s
        .append(team, &[env(team, r, EnvelopeKind::Tombstone, 0)])
        .unwrap();
    assert!(erased.erased);
    assert_eq!(erased.dropped, 2);
    assert_eq!(seqs(s.as_ref(), team), [5, 6]);
    // A late change of the erased record is acknowledged (with the tombstone's seq) but not
    // stored.
    let late = s
        .append(team, &[env(team, r, EnvelopeKind::Change, 0)])
        .unwrap();
    assert_eq!(
        (late.results[0].seq, late.results[0].duplicate, late.head),
        (6, true, 6)
    );
    let page = s.pull(team, 0, 1, usize::MAX).unwrap();
    assert_eq!((page.entries.len(), page.more, page.head), (1, true, 6));
    let page = s.pull(team, 5, 10, 1).unwrap();
    assert_eq!(page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
    assert!(!page.more);
    // The byte budget stops a page after its first entry, never before.
    let page = s.pull(team, 0, 10, 1).unwrap();
    assert_eq!((page.entries.len(), page.more), (1, true));
    assert!(matches!(
        s.pull(TeamId::random(), 0, 10, usize::MAX),
        Err(StorageError::TeamNotFound)
    ));
}

/// A batch whose third envelope is refused leaves nothing of the first two behind.
fn batches_are_atomic(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
    let doc = RecordId::random();
    let batch = vec![
        env(team, doc, EnvelopeKind::Change, 0),
        env(team, doc, EnvelopeKind::Change, 0),
        env(team, doc, EnvelopeKind::Snapshot, 99),
    ];
    assert!(s.append(team, &batch).is_err());
    assert_eq!(s.head(team).unwrap(), Some(0));
    assert!(seqs(s.as_ref(), team).is_empty());
    // The ids were not remembered either: the same changes append as new.
    let out = s.append(team, &batch[..2]).unwrap();
    assert_eq!(out.appended, 2);
    assert_eq!(seqs(s.as_ref(), team), [1, 2]);
}

/// Writers on several handles of one database (several relay instances, for PostgreSQL) push to
/// one team at once: every envelope gets exactly one seq, and the seqs are 1..=n without a gap.
fn concurrent_appends_stay_gap_free(b: &dyn Backend) {
    let team = TeamId::random();
    b.storage()
        .create_team(team, &keys(1, Role::Lead), 0)
        .unwrap();
    let handles: Vec<Arc<dyn Storage>> = vec![b.storage(), b.second(), b.second()];
    let (threads, batches, per_batch) = (6, 15, 3);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let s = Arc::clone(&handles[t % handles.len()]);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..batches {
                    let batch: Vec<_> = (0..per_batch)
                        .map(|_| env(team, RecordId::random(), EnvelopeKind::Change, 0))
                        .collect();
                    let out = s.append(team, &batch).unwrap();
                    let mine: Vec<u64> = out.results.iter().map(|r| r.seq).collect();
                    // A batch's seqs are consecutive: one transaction.
                    assert!(mine.windows(2).all(|w| w[1] == w[0] + 1), "{mine:?}");
                    got.extend(mine);
                }
                got
            })
        })
        .collect();
    let mut all: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    all.sort_unstable();
    let n = (threads * batches * per_batch) as u64;
    assert_eq!(all, (1..=n).collect::<Vec<_>>());
    assert_eq!(seqs(b.storage().as_ref(), team), all);
    assert_eq!(b.storage().head(team).unwrap(), Some(n));
}

fn pull_pages_serialize_as_the_wire_pull_response(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
    let mut batch: Vec<_> = (0..3)
        .map(|_| env(team, RecordId::random(), EnvelopeKind::Change, 0))
        .collect();
    // Bytes that need escaping or padding in JSON and base64.
    batch[1].ciphertext = b"\"\\\n\x00\xff<>".to_vec();
    s.append(team, &batch).unwrap();
    let page = s.pull(team, 0, 2, usize::MAX).unwrap();
    let json = serde_json::to_string(&page).unwrap();
    let typed = streetsync_wire::PullResponse {
        entries: batch[..2]
            .iter()
            .zip(1..)
            .map(|(e, seq)| streetsync_wire::PullEntry {
                seq,
                envelope: e.clone(),
            })
            .collect(),
        head: 3,
        more: true,
    };
    // Byte for byte what serializing the wire type gives.
    assert_eq!(json, serde_json::to_string(&typed).unwrap());
    let parsed: streetsync_wire::PullResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, typed);
}

/// Real signed envelopes of every kind with the edge values of each field (epoch 0 and
/// `u32::MAX`, `covers` large, every byte value, an empty tombstone, a ciphertext of the wire's
/// limit), and the author's public key.
fn signed_envelopes(team: TeamId) -> (Vec<Envelope>, Vec<u8>) {
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    let key = Ed25519KeyPair::from_seed_unchecked(&[5; 32]).unwrap();
    let author = DeviceId::from_public_key(key.public_key().as_ref());
    let doc = RecordId::random();
    let shapes: Vec<(EnvelopeKind, u64, u32, Vec<u8>)> = vec![
        (EnvelopeKind::Change, 0, 0, vec![0]),
        (EnvelopeKind::Change, 0, u32::MAX, (0..=255).collect()),
        (EnvelopeKind::Change, 0, 7, b"\"\\\n\x00<>".to_vec()),
        (
            EnvelopeKind::Change,
            0,
            3,
            vec![0xa5; streetsync_wire::MAX_CIPHERTEXT_BYTES],
        ),
        (EnvelopeKind::Snapshot, 4, 1, vec![0xff; 1500]),
        (EnvelopeKind::Tombstone, 0, 1, Vec::new()),
    ];
    let envelopes = shapes
        .into_iter()
        .enumerate()
        .map(|(n, (kind, covers, epoch, ciphertext))| {
            let mut e = Envelope {
                v: ENVELOPE_VERSION,
                team,
                // The first on a record of its own, so the snapshot and tombstone leave it.
                doc: if n == 0 { RecordId::random() } else { doc },
                id: EnvelopeId::random(),
                kind,
                epoch,
                author,
                covers,
                nonce: [n as u8 ^ 0x5a; 12],
                ciphertext,
                sig: [0; 64],
            };
            e.sign(&key);
            e
        })
        .collect();
    (envelopes, key.public_key().as_ref().to_vec())
}

/// What a pull hands out is, byte for byte, the wire JSON of the envelope that was pushed, and its
/// signature verifies: the binary row loses nothing (each envelope is pushed alone, so
/// compaction and erasure do not drop the earlier ones before they are read back).
fn stored_envelopes_pull_back_byte_identical(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
    let (envelopes, pk) = signed_envelopes(team);
    for (pushed, seq) in envelopes.iter().zip(1u64..) {
        assert_eq!(
            s.append(team, std::slice::from_ref(pushed)).unwrap().head,
            seq
        );
        for storage in [s.clone(), b.second()] {
            let page = storage.pull(team, seq - 1, 1, usize::MAX).unwrap();
            assert_eq!(page.entries.len(), 1);
            let got = page.entries[0].envelope.get();
            assert_eq!(got, serde_json::to_string(pushed).unwrap(), "entry {seq}");
            let back: Envelope = serde_json::from_str(got).unwrap();
            assert_eq!(&back, pushed);
            assert_eq!(back.signed_bytes(), pushed.signed_bytes());
            back.verify(&pk).unwrap();
        }
    }
}

/// The byte budget of a page counts the envelopes' JSON, what the page takes on the wire (the
/// rows are smaller): a budget of two envelopes' JSON gives pages of two.
fn the_page_byte_budget_counts_the_wire_json(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
    let batch: Vec<_> = (0..5)
        .map(|n| {
            let mut e = env(team, RecordId::random(), EnvelopeKind::Change, 0);
            e.ciphertext = vec![n; 900];
            e
        })
        .collect();
    s.append(team, &batch).unwrap();
    let one = serde_json::to_string(&batch[0]).unwrap().len();
    let pages = |budget: usize| -> Vec<usize> {
        let (mut after, mut sizes) = (0, Vec::new());
        loop {
            let page = s.pull(team, after, 100, budget).unwrap();
            sizes.push(page.entries.len());
            after = page.entries.last().map_or(after, |e| e.seq);
            if !page.more {
                return sizes;
            }
        }
    };
    assert_eq!(pages(2 * one), [2, 2, 1]);
    assert_eq!(pages(2 * one - 1), [1, 1, 1, 1, 1]);
    // The first entry always comes, whatever the budget.
    assert_eq!(pages(1), [1, 1, 1, 1, 1]);
}

/// Registration, lookups across teams, listing in registration order, revocation; and the
/// in-memory lookup, where a backend has one, agrees with the database.
fn devices_register_list_and_revoke(b: &dyn Backend) {
    let s = b.storage();
    let (a, t2) = (TeamId::random(), TeamId::random());
    s.create_team(a, &keys(1, Role::Lead), 0).unwrap();
    s.create_team(t2, &keys(2, Role::Lead), 0).unwrap();
    s.add_device(a, &keys(3, Role::Worker), 1).unwrap();
    s.add_device(t2, &keys(3, Role::Worker), 2).unwrap();
    assert!(matches!(
        s.add_device(a, &keys(3, Role::Lead), 3),
        Err(StorageError::DeviceExists)
    ));
    assert!(matches!(
        s.add_device(TeamId::random(), &keys(4, Role::Worker), 3),
        Err(StorageError::TeamNotFound)
    ));
    assert!(matches!(
        s.create_team(TeamId::random(), &keys(1, Role::Lead), 3),
        Ok(())
    ));
    assert_eq!(
        s.revoke_device(a, DeviceId::from_bytes([3; 16])).unwrap(),
        0
    );
    assert!(matches!(
        s.revoke_device(a, DeviceId::from_bytes([9; 16])),
        Err(StorageError::DeviceNotFound)
    ));
    let listed: Vec<_> = s
        .list_devices(a)
        .unwrap()
        .into_iter()
        .map(|d| (d.keys, d.revoked))
        .collect();
    assert_eq!(
        listed,
        [(keys(1, Role::Lead), false), (keys(3, Role::Worker), true)]
    );
    let three = DeviceId::from_bytes([3; 16]);
    assert!(s.device(a, three).unwrap().unwrap().revoked);
    assert!(!s.device(t2, three).unwrap().unwrap().revoked);
    assert_eq!(s.device(a, DeviceId::from_bytes([2; 16])).unwrap(), None);
    assert_eq!(
        s.device_in_any_team(DeviceId::from_bytes([2; 16]))
            .unwrap()
            .map(|d| d.keys),
        Some(keys(2, Role::Lead))
    );
    assert_eq!(
        s.device_in_any_team(DeviceId::from_bytes([8; 16])).unwrap(),
        None
    );
    for team in [a, t2, TeamId::random()] {
        for n in 1..=9 {
            let id = DeviceId::from_bytes([n; 16]);
            let in_team = s.device(team, id).unwrap();
            let elsewhere = match in_team {
                Some(_) => None,
                None => s.device_in_any_team(id).unwrap(),
            };
            if let Some(now) = s.lookup_device_now(team, id) {
                assert_eq!(now, DeviceLookup { in_team, elsewhere }, "{n}");
            }
        }
    }
}

/// Cancel, revocation and the creator check.
fn invites_end_with_cancel_or_their_creators_revocation(b: &dyn Backend) {
    let s = b.storage();
    let (team, other_team) = (TeamId::random(), TeamId::random());
    let (a, l2) = (keys(1, Role::Lead), keys(2, Role::Lead));
    s.create_team(team, &a, 0).unwrap();
    s.add_device(team, &l2, 0).unwrap();
    s.create_team(other_team, &keys(3, Role::Lead), 0).unwrap();
    for (n, by) in [(10, &l2), (11, &l2), (12, &l2), (20, &a)] {
        s.create_invite(team, by.id, &invite(n, i64::MAX), i64::from(n))
            .unwrap();
    }
    assert!(matches!(
        s.create_invite(team, a.id, &invite(10, i64::MAX), 30),
        Err(StorageError::InviteUsed)
    ));
    s.redeem_invite(invite(11, 0).id, &keys(7, Role::Worker), &[7; 32], 0)
        .unwrap();

    assert!(!s.cancel_invite(other_team, invite(12, 0).id).unwrap());
    assert!(matches!(
        s.cancel_invite(team, invite(11, 0).id),
        Err(StorageError::InviteUsed)
    ));
    assert!(s.cancel_invite(team, invite(12, 0).id).unwrap());
    assert!(!s.cancel_invite(team, invite(12, 0).id).unwrap());
    assert!(matches!(
        s.redeem_invite(invite(12, 0).id, &keys(8, Role::Worker), &[8; 32], 0),
        Err(StorageError::InviteNotFound)
    ));

    // Revoking l2 takes its open invite 10, keeps its redeemed 11 and a's 20.
    assert_eq!(s.revoke_device(team, l2.id).unwrap(), 1);
    let left = s.list_invites(team).unwrap();
    assert_eq!(
        left.iter().map(|i| i.id).collect::<Vec<_>>(),
        [invite(11, 0).id, invite(20, 0).id]
    );
    assert_eq!(left[0].confirm, Some([7; 32]));
    assert_eq!(
        left[0].redeemed_by.as_ref().map(|k| k.id),
        Some(keys(7, Role::Worker).id)
    );
    assert_eq!(
        (left[1].confirm, left[1].redeemed_by.as_ref()),
        (None, None)
    );
    assert!(s.invite(invite(10, 0).id).unwrap().is_none());
    assert!(matches!(
        s.create_invite(team, l2.id, &invite(13, i64::MAX), 0),
        Err(StorageError::DeviceRevoked)
    ));
    assert!(matches!(
        s.create_invite(
            team,
            DeviceId::from_bytes([9; 16]),
            &invite(14, i64::MAX),
            0
        ),
        Err(StorageError::DeviceNotFound)
    ));
    assert!(matches!(
        s.create_invite(TeamId::random(), a.id, &invite(15, i64::MAX), 0),
        Err(StorageError::TeamNotFound)
    ));
    assert!(s.invite(invite(13, 0).id).unwrap().is_none());
}

fn invites_redeem_once_before_expiry(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    let lead = keys(1, Role::Lead);
    s.create_team(team, &lead, 0).unwrap();
    s.create_invite(team, lead.id, &invite(5, 100), 0).unwrap();
    s.create_invite(team, lead.id, &invite(6, 100), 0).unwrap();
    let stored = s.invite(invite(5, 100).id).unwrap().unwrap();
    assert_eq!(
        (
            stored.team,
            stored.auth_key,
            stored.role,
            stored.expires_ms,
            stored.blob,
            stored.redeemed
        ),
        (team, [5; 32], Role::Worker, 100, vec![5], false)
    );
    assert!(matches!(
        s.redeem_invite(invite(6, 100).id, &keys(2, Role::Worker), &[2; 32], 101),
        Err(StorageError::InviteExpired)
    ));
    // A redemption that fails on the device changes nothing: the invite stays open.
    assert!(matches!(
        s.redeem_invite(invite(5, 100).id, &lead, &[1; 32], 50),
        Err(StorageError::DeviceExists)
    ));
    assert!(!s.invite(invite(5, 100).id).unwrap().unwrap().redeemed);
    s.redeem_invite(invite(5, 100).id, &keys(3, Role::Worker), &[3; 32], 50)
        .unwrap();
    assert!(s.invite(invite(5, 100).id).unwrap().unwrap().redeemed);
    assert!(
        s.device(team, DeviceId::from_bytes([3; 16]))
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.redeem_invite(invite(5, 100).id, &keys(4, Role::Worker), &[4; 32], 50),
        Err(StorageError::InviteUsed)
    ));
    assert!(matches!(
        s.redeem_invite(
            InviteId::from_bytes([9; 16]),
            &keys(4, Role::Worker),
            &[4; 32],
            50
        ),
        Err(StorageError::InviteNotFound)
    ));
}

/// A quota no test here reaches, for the tests that are not about quotas.
const ROOMY: MailboxQuota = MailboxQuota {
    recipient_bundles: 1000,
    recipient_bytes: 1 << 20,
    sender_bundles: 1000,
    sender_bytes: 1 << 20,
};

/// Every bundle waiting for `to`, read with a page size no test here reaches.
fn mailbox(s: &dyn Storage, team: TeamId, to: DeviceId) -> Vec<(u64, DeviceId, Vec<u8>)> {
    let page = s.bundles_for(team, to, 0, 1000, 1 << 20).unwrap();
    assert!(!page.more);
    page.bundles
        .into_iter()
        .map(|b| (b.id, b.from, b.blob))
        .collect()
}

fn bundles_reach_only_current_members(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    let (lead, w, gone) = (
        keys(1, Role::Lead),
        keys(2, Role::Worker),
        keys(3, Role::Worker),
    );
    s.create_team(team, &lead, 0).unwrap();
    s.add_device(team, &w, 0).unwrap();
    s.add_device(team, &gone, 0).unwrap();
    s.revoke_device(team, gone.id).unwrap();
    let first = s
        .post_bundle(team, lead.id, w.id, b"one", 1, &ROOMY)
        .unwrap();
    let second = s
        .post_bundle(team, lead.id, w.id, b"two", 2, &ROOMY)
        .unwrap();
    assert!(second > first);
    assert!(matches!(
        s.post_bundle(team, lead.id, gone.id, b"x", 3, &ROOMY),
        Err(StorageError::DeviceNotFound)
    ));
    assert!(matches!(
        s.post_bundle(
            team,
            lead.id,
            DeviceId::from_bytes([9; 16]),
            b"x",
            3,
            &ROOMY
        ),
        Err(StorageError::DeviceNotFound)
    ));
    assert_eq!(
        mailbox(s.as_ref(), team, w.id),
        [
            (first, lead.id, b"one".to_vec()),
            (second, lead.id, b"two".to_vec())
        ]
    );
    assert!(mailbox(s.as_ref(), team, lead.id).is_empty());
    // Only its recipient deletes a bundle.
    assert!(!s.delete_bundle(team, lead.id, first).unwrap());
    assert!(s.delete_bundle(team, w.id, first).unwrap());
    assert!(!s.delete_bundle(team, w.id, first).unwrap());
    assert_eq!(mailbox(s.as_ref(), team, w.id).len(), 1);
}

/// Issue 13's quota, at the storage level: the recipient's cap (count and bytes) and the
/// sender's cap over all recipients (count and bytes) each refuse with `MailboxFull`, a refused
/// post stores nothing, and deleting frees the room again.
fn mailbox_quotas_count_per_recipient_and_per_sender(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    let (lead, w1, w2, w3) = (
        keys(1, Role::Lead),
        keys(2, Role::Worker),
        keys(3, Role::Worker),
        keys(4, Role::Worker),
    );
    s.create_team(team, &lead, 0).unwrap();
    for w in [&w1, &w2, &w3] {
        s.add_device(team, w, 0).unwrap();
    }
    let full = |r: Result<u64, StorageError>| matches!(r, Err(StorageError::MailboxFull(_)));

    // Recipient count: two bundles wait for w1, a third from anyone is refused.
    let q = MailboxQuota {
        recipient_bundles: 2,
        ..ROOMY
    };
    let first = s.post_bundle(team, lead.id, w1.id, b"a", 1, &q).unwrap();
    s.post_bundle(team, w2.id, w1.id, b"b", 1, &q).unwrap();
    assert!(full(s.post_bundle(team, w3.id, w1.id, b"c", 1, &q)));
    assert_eq!(mailbox(s.as_ref(), team, w1.id).len(), 2);
    // Other mailboxes are not affected, and fetching (deleting) makes room.
    s.post_bundle(team, lead.id, w2.id, b"d", 1, &q).unwrap();
    assert!(s.delete_bundle(team, w1.id, first).unwrap());
    s.post_bundle(team, w3.id, w1.id, b"c", 1, &q).unwrap();
    assert_eq!(mailbox(s.as_ref(), team, w1.id).len(), 2);

    // Recipient bytes: w3's mailbox takes 10 bytes; exactly 10 fit, 11 do not.
    let q = MailboxQuota {
        recipient_bytes: 10,
        ..ROOMY
    };
    s.post_bundle(team, lead.id, w3.id, &[0; 6], 1, &q).unwrap();
    assert!(full(s.post_bundle(team, w1.id, w3.id, &[0; 5], 1, &q)));
    s.post_bundle(team, w1.id, w3.id, &[0; 4], 1, &q).unwrap();
    assert!(full(s.post_bundle(team, w2.id, w3.id, &[0; 1], 1, &q)));

    // Sender count, over all recipients: the lead already has 2 waiting (for w2 and w3).
    let q = MailboxQuota {
        sender_bundles: 3,
        ..ROOMY
    };
    s.post_bundle(team, lead.id, w1.id, b"e", 1, &q).unwrap();
    assert!(full(s.post_bundle(team, lead.id, w2.id, b"f", 1, &q)));
    assert!(full(s.post_bundle(team, lead.id, w3.id, b"f", 1, &q)));
    // Another sender is not affected.
    s.post_bundle(team, w2.id, w3.id, b"g", 1, &q).unwrap();

    // Sender bytes: w2 has "b" (1 byte) for w1 and "g" (1 byte) for w3 waiting.
    let q = MailboxQuota {
        sender_bytes: 8,
        ..ROOMY
    };
    assert!(full(s.post_bundle(team, w2.id, lead.id, &[0; 7], 1, &q)));
    s.post_bundle(team, w2.id, lead.id, &[0; 6], 1, &q).unwrap();
    assert!(full(s.post_bundle(team, w2.id, w1.id, &[0; 1], 1, &q)));

    // The refusal says which quota and what waits, so a person can act on it.
    let q = MailboxQuota {
        recipient_bundles: 0,
        ..ROOMY
    };
    match s.post_bundle(team, lead.id, w1.id, b"x", 1, &q) {
        Err(StorageError::MailboxFull(why)) => assert!(why.contains("addressee"), "{why}"),
        other => panic!("expected MailboxFull, got {other:?}"),
    }
    let q = MailboxQuota {
        sender_bundles: 0,
        ..ROOMY
    };
    match s.post_bundle(team, lead.id, w1.id, b"x", 1, &q) {
        Err(StorageError::MailboxFull(why)) => assert!(why.contains("this device"), "{why}"),
        other => panic!("expected MailboxFull, got {other:?}"),
    }
}

/// Posts racing on several handles (instances) never store more than the quota allows: the
/// count and the insert are one transaction, serialized per recipient and per sender.
fn concurrent_posts_never_overshoot_a_quota(b: &dyn Backend) {
    let team = TeamId::random();
    let lead = keys(1, Role::Lead);
    let workers: Vec<DeviceKeys> = (2..8).map(|n| keys(n, Role::Worker)).collect();
    let s = b.storage();
    s.create_team(team, &lead, 0).unwrap();
    for w in &workers {
        s.add_device(team, w, 0).unwrap();
    }
    let handles: Vec<Arc<dyn Storage>> = vec![b.storage(), b.second(), b.second()];
    // Six senders post 10 bundles each to the lead (recipient cap 25); the first of them also
    // posts 10 to each of two teammates (its sender cap is 12 over all recipients).
    let q = MailboxQuota {
        recipient_bundles: 25,
        sender_bundles: 12,
        ..ROOMY
    };
    let (first, second) = (workers[1].id, workers[2].id);
    let threads: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let s = Arc::clone(&handles[i % handles.len()]);
            let from = w.id;
            let to = lead.id;
            std::thread::spawn(move || {
                let mut stored = 0u32;
                for n in 0..10u8 {
                    let targets: &[DeviceId] = if i == 0 { &[to, first, second] } else { &[to] };
                    for target in targets {
                        match s.post_bundle(team, from, *target, &[n], 1, &q) {
                            Ok(_) => stored += 1,
                            Err(StorageError::MailboxFull(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                stored
            })
        })
        .collect();
    let stored: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let to_lead = mailbox(s.as_ref(), team, lead.id);
    let from_first = [lead.id, first, second]
        .iter()
        .flat_map(|to| mailbox(s.as_ref(), team, *to))
        .filter(|(_, from, _)| *from == workers[0].id)
        .count();
    assert_eq!(
        to_lead.len(),
        25,
        "the lead's mailbox fills to its cap exactly"
    );
    assert_eq!(from_first, 12, "the first sender stops at its cap exactly");
    let total: usize = std::iter::once(lead.id)
        .chain(workers.iter().map(|w| w.id))
        .map(|to| mailbox(s.as_ref(), team, to).len())
        .sum();
    assert_eq!(
        total as u32, stored,
        "every acknowledged post is stored, nothing else"
    );
}

/// Issue 13's paging: `after` is exclusive, `limit` caps the count, the byte budget caps the
/// blob bytes past the first bundle (a bundle larger than the budget still comes, alone), and
/// `more` says whether anything waits after the page.
fn mailboxes_are_read_in_pages(b: &dyn Backend) {
    let s = b.storage();
    let team = TeamId::random();
    let (lead, w) = (keys(1, Role::Lead), keys(2, Role::Worker));
    s.create_team(team, &lead, 0).unwrap();
    s.add_device(team, &w, 0).unwrap();
    let empty = s.bundles_for(team, w.id, 0, 10, 100).unwrap();
    assert!(empty.bundles.is_empty() && !empty.more);
    let sizes = [3usize, 3, 3, 20, 1, 1, 1];
    let ids: Vec<u64> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            s.post_bundle(team, lead.id, w.id, &vec![i as u8; *n], 1, &ROOMY)
                .unwrap()
        })
        .collect();
    let page_ids = |after, limit, max_bytes| {
        let page = s.bundles_for(team, w.id, after, limit, max_bytes).unwrap();
        let got: Vec<u64> = page.bundles.iter().map(|b| b.id).collect();
        for bundle in &page.bundles {
            let i = ids.iter().position(|id| *id == bundle.id).unwrap();
            assert_eq!(bundle.blob, vec![i as u8; sizes[i]]);
            assert_eq!(bundle.from, lead.id);
        }
        (got, page.more)
    };
    // By count.
    assert_eq!(page_ids(0, 2, 1000), (ids[0..2].to_vec(), true));
    assert_eq!(page_ids(ids[1], 2, 1000), (ids[2..4].to_vec(), true));
    assert_eq!(page_ids(ids[3], 3, 1000), (ids[4..7].to_vec(), false));
    assert_eq!(page_ids(ids[3], 4, 1000), (ids[4..7].to_vec(), false));
    assert_eq!(page_ids(ids[6], 4, 1000), (vec![], false));
    // By bytes: 3 + 3 fit in 7, the third would not.
    assert_eq!(page_ids(0, 10, 7), (ids[0..2].to_vec(), true));
    // The 20-byte bundle comes alone when it is first, even over the budget ...
    assert_eq!(page_ids(ids[2], 10, 7), (vec![ids[3]], true));
    // ... and ends a page it does not fit in.
    assert_eq!(page_ids(ids[1], 10, 7), (vec![ids[2]], true));
    // Reading every page in turn returns each bundle once, in order.
    let (mut after, mut seen) = (0, Vec::<u64>::new());
    loop {
        let (got, more) = page_ids(after, 2, 5);
        seen.extend(&got);
        after = *got.last().unwrap_or(&after);
        if !more {
            break;
        }
    }
    assert_eq!(seen, ids);
}

/// What one handle acknowledged, a second handle on the same database (a restarted process, or
/// another instance) reads.
fn writes_survive_reopening(b: &dyn Backend) {
    let team = TeamId::random();
    {
        let s = b.storage();
        s.create_team(team, &keys(1, Role::Lead), 0).unwrap();
        s.append(
            team,
            &[env(team, RecordId::random(), EnvelopeKind::Change, 0)],
        )
        .unwrap();
        s.revoke_device(team, DeviceId::from_bytes([1; 16]))
            .unwrap();
    }
    let again = b.second();
    assert_eq!(again.head(team).unwrap(), Some(1));
    assert_eq!(seqs(again.as_ref(), team), [1]);
    assert!(
        again
            .device(team, DeviceId::from_bytes([1; 16]))
            .unwrap()
            .unwrap()
            .revoked
    );
    if let Some(lookup) = again.lookup_device_now(team, DeviceId::from_bytes([1; 16])) {
        assert!(lookup.in_team.unwrap().revoked);
    }
}

/// A backend that shares nonces refuses a pair any handle on the database saw; one that does not
/// says so (the relay then relies on its in-memory cache).
fn nonces_are_shared_when_the_backend_says_so(b: &dyn Backend) {
    let (first, second) = (b.storage(), b.second());
    let device = DeviceId::random();
    if !first.shares_nonces() {
        assert!(first.remember_nonce(device, [1; 16], 0, 0).is_err());
        return;
    }
    let now = 1_000_000_000;
    assert!(first.remember_nonce(device, [1; 16], now, now).unwrap());
    assert!(!first.remember_nonce(device, [1; 16], now, now).unwrap());
    assert!(
        !second
            .remember_nonce(device, [1; 16], now, now + 1)
            .unwrap()
    );
    assert!(second.remember_nonce(device, [2; 16], now, now).unwrap());
    assert!(
        second
            .remember_nonce(DeviceId::random(), [1; 16], now, now)
            .unwrap()
    );
    // Far beyond the clock window the old nonces are pruned, and nothing else.
    let later = now + 100 * streetsync_wire::CLOCK_TOLERANCE_MS;
    assert!(first.remember_nonce(device, [3; 16], later, later).unwrap());
    assert!(first.remember_nonce(device, [1; 16], later, later).unwrap());
    assert!(
        !second
            .remember_nonce(device, [3; 16], later, later)
            .unwrap()
    );
}

// PostgreSQL only: migrations, a schema newer than the build, an unreachable server.

#[test]
fn postgres_migrations_are_versioned_and_a_newer_schema_is_refused() {
    let url = fresh_database();
    drop(open_pg(&url).unwrap());
    // Opening again (a second instance, or a restart) runs nothing twice.
    drop(open_pg(&url).unwrap());
    let known = streetsync_relay::storage::postgres::MIGRATIONS
        .last()
        .unwrap()
        .0;
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let versions: Vec<i64> = client
            .query("SELECT version FROM schema_version ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=known).collect::<Vec<_>>());
        client
            .execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES ($1, 0)",
                &[&(known + 1)],
            )
            .await
            .unwrap();
    });
    match open_pg(&url) {
        Err(StorageError::SchemaTooNew { found, known: k }) => {
            assert_eq!((found, k), (known + 1, known));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn postgres_unreachable_is_unavailable_and_bad_settings_are_refused() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    match open_pg(&url) {
        Err(StorageError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        PgConnect::parse("postgres://[::1", None),
        Err(StorageError::Config(_))
    ));
    let connect = PgConnect::parse(&format!("{url}&sslmode=require"), None);
    // `sslmode=require` after `disable`: the last one wins, and asks for TLS.
    assert!(connect.unwrap().uses_tls());
    assert!(!PgConnect::parse(&url, None).unwrap().uses_tls());
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    assert!(matches!(
        PgConnect::parse(
            "postgres://postgres@127.0.0.1/postgres?sslmode=require",
            Some(&not_pem)
        ),
        Err(StorageError::Config(_))
    ));
}

/// Writes a version-2 PostgreSQL database (the log as JSON bodies) at `url` holding `envelopes`
/// as the version-2 relay wrote them, seq 1, 2, ...; returns the bodies.
fn write_postgres_version_2(url: &str, team: TeamId, envelopes: &[Envelope]) -> Vec<String> {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE schema_version (version bigint PRIMARY KEY, applied_ms bigint NOT NULL)",
            )
            .await
            .unwrap();
        for (version, sql) in &streetsync_relay::storage::postgres::MIGRATIONS[..2] {
            client.batch_execute(sql).await.unwrap();
            client
                .execute(
                    "INSERT INTO schema_version (version, applied_ms) VALUES ($1, 0)",
                    &[version],
                )
                .await
                .unwrap();
        }
        let t = team.as_bytes().as_slice();
        client
            .execute(
                "INSERT INTO teams (id, head, created_ms) VALUES ($1, $2, 0)",
                &[&t, &(envelopes.len() as i64)],
            )
            .await
            .unwrap();
        let mut bodies = Vec::new();
        for (e, seq) in envelopes.iter().zip(1i64..) {
            // The version-2 relay's append: the body is the envelope's JSON.
            let body = serde_json::to_string(e).unwrap();
            client
                .execute(
                    "INSERT INTO log (team, seq, doc, envelope_id, kind, covers, body)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &t,
                        &seq,
                        &e.doc.as_bytes().as_slice(),
                        &e.id.as_bytes().as_slice(),
                        &i16::from(e.kind.code()),
                        &(e.covers as i64),
                        &body,
                    ],
                )
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO envelope_ids (team, id, seq) VALUES ($1, $2, $3)",
                    &[&t, &e.id.as_bytes().as_slice(), &seq],
                )
                .await
                .unwrap();
            bodies.push(body);
        }
        bodies
    })
}

/// The newest migration recorded in the database at `url`.
fn postgres_version(url: &str) -> i64 {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query_one("SELECT max(version) FROM schema_version", &[])
            .await
            .unwrap()
            .get(0)
    })
}

/// Migration 3 converts a version-2 database in place: every envelope pulls back as the same
/// JSON, byte for byte, as the version-2 relay handed out, its signature verifies, and the log
/// keeps working (a retry is a duplicate, a new envelope gets the next seq).
#[test]
fn postgres_migration_3_moves_json_bodies_into_binary_columns() {
    let url = fresh_database();
    let team = TeamId::random();
    let (mut envelopes, pk) = signed_envelopes(team);
    // The wire's largest ciphertext is covered by the round-trip test; keep this one quick.
    envelopes.retain(|e| e.ciphertext.len() < 100_000);
    let bodies = write_postgres_version_2(&url, team, &envelopes);
    let s = open_pg(&url).unwrap();
    assert_eq!(
        postgres_version(&url),
        streetsync_relay::storage::postgres::MIGRATIONS
            .last()
            .unwrap()
            .0
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
    let again = s.append(team, &envelopes[..1]).unwrap();
    assert!(again.results[0].duplicate);
    let (more, _) = signed_envelopes(team);
    let next = s.append(team, &more[..1]).unwrap();
    assert_eq!(next.results[0].seq, envelopes.len() as u64 + 1);
}

/// A body that disagrees with its row, or is not JSON, fails migration 3 and leaves the database
/// at version 2.
#[test]
fn postgres_migration_3_refuses_a_damaged_body_and_changes_nothing() {
    for damage in [
        "UPDATE log SET doc = '\\x00000000000000000000000000000000'::bytea WHERE seq = 3",
        "UPDATE log SET body = '{\"v\":1,' WHERE seq = 2",
    ] {
        let url = fresh_database();
        let team = TeamId::random();
        let (mut envelopes, _) = signed_envelopes(team);
        envelopes.retain(|e| e.ciphertext.len() < 100_000);
        write_postgres_version_2(&url, team, &envelopes);
        runtime().block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(damage).await.unwrap();
        });
        assert!(open_pg(&url).is_err(), "{damage}: the migration took it");
        assert_eq!(postgres_version(&url), 2, "{damage}");
    }
}
