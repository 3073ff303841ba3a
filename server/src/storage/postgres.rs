//! The PostgreSQL backend: several stateless relay instances on one database (ADR 0011).
//!
//! Built on `tokio-postgres` with a `deadpool-postgres` pool. The [`Storage`] trait stays
//! synchronous: the HTTP layer already calls it on tokio's blocking pool, and each method here
//! drives its async query there with [`Handle::block_on`] on the relay's runtime (the pool's
//! connection tasks run on that runtime's workers). Every write is one transaction committed
//! before the method returns, so an acknowledged write is durable in PostgreSQL's WAL.
//!
//! Sequence numbers: an append locks its team's `teams` row (`FOR NO KEY UPDATE`), reads the
//! head, inserts `head + 1 ..` and writes the new head back, all in one transaction. Appends of
//! one team therefore serialize across every instance and the numbers stay gap-free; a SEQUENCE
//! would leave gaps on rollback.
//!
//! Cross-instance signals ride on `NOTIFY`, sent inside the writing transaction (so PostgreSQL
//! delivers them only if it commits, in commit order): [`HEAD_CHANNEL`] carries `team:head`,
//! [`REVOKED_CHANNEL`] carries `team:device`. `crate::notify` listens and feeds the live sockets.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use streetsync_wire::{
    Bundle, CLOCK_TOLERANCE_MS, CreateInvite, DeviceId, DeviceInfo, DeviceKeys, Envelope,
    EnvelopeKind, InviteId, InviteInfo, PushResult, Role, TeamId,
};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, GenericClient, NoTls, Row, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::log_row::{ENVELOPE_COLUMNS, LogRow};
use super::{
    AppendOutcome, BundlePage, MailboxQuota, PageBuilder, PullPage, Storage, StorageError,
    StoredInvite,
};

/// The numbered migrations, in order; the `schema_version` table records the newest that ran.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_bundle_sender.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_binary_log.sql"),
    ),
];

/// The `NOTIFY` channel of log heads: payload `hex(team):head`.
pub const HEAD_CHANNEL: &str = "streetsync_head";

/// The `NOTIFY` channel of revocations: payload `hex(team):hex(device)`.
pub const REVOKED_CHANNEL: &str = "streetsync_revoked";

/// How often (at most) an instance deletes nonces older than the clock window.
const PRUNE_NONCES_EVERY_MS: i64 = 10_000;

/// How many times a transaction that lost a deadlock or serialization race is retried.
const RETRIES: usize = 5;

/// Where and how to connect: the parsed URL and the TLS it asks for.
#[derive(Clone)]
pub struct PgConnect {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PgConnect")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl PgConnect {
    /// Parses a `postgres://` URL (or key=value string). `sslmode=require` turns on TLS through
    /// rustls, verifying the server against the webpki roots plus the PEM certificates in
    /// `ca_file`; `prefer` (tokio-postgres' default) and `disable` connect without TLS, so a
    /// relay never silently trusts an unverified certificate.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, StorageError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StorageError::Config(format!("the database URL does not parse: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("streetsync-relay");
        }
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(rustls_connector(ca_file)?),
            _ => {
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        Ok(PgConnect { config, tls })
    }

    /// Whether connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A connection that only listens: `LISTEN`s on `channels` and forwards every notification
    /// as `(channel, payload)`; the receiver ends when the connection is lost.
    pub async fn listen(
        &self,
        channels: &[&str],
    ) -> Result<(Client, mpsc::UnboundedReceiver<(String, String)>), StorageError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = match &self.tls {
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await.map_err(pg_err)?;
                tokio::spawn(forward_notifications(conn, tx));
                client
            }
            None => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(pg_err)?;
                tokio::spawn(forward_notifications(conn, tx));
                client
            }
        };
        let sql: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
        client.batch_execute(&sql).await.map_err(pg_err)?;
        Ok((client, rx))
    }
}

/// Drives a listening connection, forwarding its notifications until it ends.
async fn forward_notifications<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    tx: mpsc::UnboundedSender<(String, String)>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio_postgres::tls::TlsStream + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    use futures_util::StreamExt as _;
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(n)) => {
                if tx
                    .send((n.channel().to_owned(), n.payload().to_owned()))
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "database listener connection failed");
                return;
            }
        }
    }
}

fn rustls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StorageError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert?;
            roots.add(cert).map_err(|e| {
                StorageError::Config(format!("{}: not a CA certificate: {e}", path.display()))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(StorageError::Config(format!(
                "{}: no PEM certificate in the file",
                path.display()
            )));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Maps a driver error: lost or refused connections are [`StorageError::Unavailable`] (the
/// client may retry; nothing was half-written, the transaction rolled back), lost races are
/// [`StorageError::Contention`] (retried here), the rest [`StorageError::Postgres`].
fn pg_err(e: tokio_postgres::Error) -> StorageError {
    if let Some(code) = e.code() {
        let c = code.code();
        if c.starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            return StorageError::Unavailable(e.to_string());
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StorageError::Contention(e.to_string());
        }
        let detail = e
            .as_db_error()
            .map(|d| format!("{} ({})", d.message(), c))
            .unwrap_or_else(|| e.to_string());
        return StorageError::Postgres(detail);
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // The driver's message names only the step ("error performing tls handshake"); the cause
    // (refused, unknown certificate) is in the source chain.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    if e.is_closed() || io || message.contains("timeout") || message.contains("tls") {
        StorageError::Unavailable(message)
    } else {
        StorageError::Postgres(message)
    }
}

fn pool_err(e: PoolError) -> StorageError {
    match e {
        PoolError::Backend(e) => pg_err(e),
        PoolError::Timeout(_) | PoolError::Closed | PoolError::PostCreateHook(_) => {
            StorageError::Unavailable(e.to_string())
        }
        PoolError::NoRuntimeSpecified => StorageError::Postgres(e.to_string()),
    }
}

/// A transaction body: borrows the transaction for as long as its future runs.
type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// [`Storage`] on a PostgreSQL database shared by any number of relay instances.
pub struct PgStorage {
    pool: Pool,
    connect: PgConnect,
    handle: Handle,
    /// When this instance last pruned the nonce table (unix ms).
    last_prune_ms: AtomicI64,
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStorage")
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

impl PgStorage {
    /// Connects (failing at once if the database cannot be reached), runs the migrations the
    /// database lacks and keeps a pool of up to `pool_size` connections. `handle` is the runtime
    /// that drives the connections; call this off its async workers (e.g. in `spawn_blocking`).
    pub fn open(
        connect: PgConnect,
        pool_size: usize,
        handle: Handle,
    ) -> Result<Self, StorageError> {
        let manager = match &connect.tls {
            Some(tls) => Manager::from_config(
                connect.config.clone(),
                tls.clone(),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            ),
            None => Manager::from_config(
                connect.config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            ),
        };
        let timeout = Some(Duration::from_secs(5));
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StorageError::Config(format!("database pool: {e}")))?;
        let storage = PgStorage {
            pool,
            connect,
            handle,
            last_prune_ms: AtomicI64::new(0),
        };
        storage.handle.block_on(async {
            let mut client = storage.pool.get().await.map_err(pool_err)?;
            migrate(&mut client).await
        })?;
        Ok(storage)
    }

    /// How to connect, for the notification listener.
    pub fn connector(&self) -> &PgConnect {
        &self.connect
    }

    /// Runs `f` in one transaction on a pooled connection and commits before returning; retries
    /// the whole transaction when it lost a deadlock or serialization race.
    fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send,
        F: for<'a> Fn(&'a Transaction<'a>) -> TxFuture<'a, T> + Send + Sync,
    {
        self.handle.block_on(self.write_async(f))
    }

    async fn write_async<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send,
        F: for<'a> Fn(&'a Transaction<'a>) -> TxFuture<'a, T> + Send + Sync,
    {
        let mut attempt = 0;
        loop {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let result = async {
                let tx = client.transaction().await.map_err(pg_err)?;
                let value = f(&tx).await?;
                tx.commit().await.map_err(pg_err)?;
                Ok(value)
            }
            .await;
            match result {
                Err(StorageError::Contention(why)) if attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, %why, "retrying a transaction that lost a race");
                }
                other => return other,
            }
        }
    }

    /// Runs a read on a pooled connection.
    fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        F: for<'a> Fn(&'a Client) -> TxFuture<'a, T>,
    {
        self.handle.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            f(&client).await
        })
    }

    /// The heads of `teams` that exist (for re-announcing after a lost listener connection).
    pub async fn heads(&self, teams: &[TeamId]) -> Result<Vec<(TeamId, u64)>, StorageError> {
        let ids: Vec<&[u8]> = teams.iter().map(|t| t.as_bytes().as_slice()).collect();
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query("SELECT id, head FROM teams WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    TeamId::from_bytes(array_of(r.get(0), "team")?),
                    u64_of(r.get(1))?,
                ))
            })
            .collect()
    }

    /// Which of `devices` are revoked or gone (for closing their sockets after a lost listener
    /// connection, which may have missed the revocation's notification).
    pub async fn revoked_among(
        &self,
        devices: &[(TeamId, DeviceId)],
    ) -> Result<Vec<(TeamId, DeviceId)>, StorageError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let mut out = Vec::new();
        for &(team, id) in devices {
            let row = client
                .query_opt(
                    "SELECT revoked FROM devices WHERE team = $1 AND id = $2",
                    &[&team.as_bytes().as_slice(), &id.as_bytes().as_slice()],
                )
                .await
                .map_err(pg_err)?;
            if row.is_none_or(|r| r.get::<_, bool>(0)) {
                out.push((team, id));
            }
        }
        Ok(out)
    }
}

/// Creates `schema_version` if missing and runs every newer migration, each in its own
/// transaction under an advisory lock, so instances starting together migrate once.
async fn migrate(client: &mut Client) -> Result<(), StorageError> {
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    let tx = client.transaction().await.map_err(pg_err)?;
    // 0x5757 = "SS": one key for the relay's migrations.
    tx.execute("SELECT pg_advisory_xact_lock(22359)", &[])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    bigint PRIMARY KEY,
             applied_ms bigint NOT NULL
         )",
    )
    .await
    .map_err(pg_err)?;
    let found: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg_err)?
        .get(0);
    if found > known {
        return Err(StorageError::SchemaTooNew { found, known });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)",
            &[version, &crate::now_ms()],
        )
        .await
        .map_err(pg_err)?;
        tracing::info!(version, "applied relay database migration (PostgreSQL)");
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(())
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Worker => "worker",
        Role::Lead => "lead",
    }
}

fn role_of(role: &str) -> Result<Role, StorageError> {
    match role {
        "worker" => Ok(Role::Worker),
        "lead" => Ok(Role::Lead),
        other => Err(StorageError::Corrupt(format!("unknown role {other:?}"))),
    }
}

fn i64_of(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Corrupt(format!("{n} does not fit bigint")))
}

fn u64_of(n: i64) -> Result<u64, StorageError> {
    u64::try_from(n).map_err(|_| StorageError::Corrupt(format!("negative counter {n}")))
}

fn array_of<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], StorageError> {
    <[u8; N]>::try_from(bytes)
        .map_err(|_| StorageError::Corrupt(format!("{what} has {} bytes, not {N}", bytes.len())))
}

const DEVICE_COLUMNS: &str = "id, sign_pk, kx_pk, role, revoked";

/// Reads the [`DEVICE_COLUMNS`] starting at column `at`.
fn device_at(row: &Row, at: usize) -> Result<DeviceInfo, StorageError> {
    Ok(DeviceInfo {
        keys: DeviceKeys {
            id: DeviceId::from_bytes(array_of(row.get(at), "device id")?),
            sign_pk: array_of(row.get(at + 1), "sign_pk")?,
            kx_pk: array_of(row.get(at + 2), "kx_pk")?,
            role: role_of(row.get(at + 3))?,
        },
        revoked: row.get(at + 4),
    })
}

async fn team_exists(tx: &impl GenericClient, team: &[u8]) -> Result<bool, StorageError> {
    Ok(tx
        .query_opt("SELECT 1 FROM teams WHERE id = $1", &[&team])
        .await
        .map_err(pg_err)?
        .is_some())
}

async fn insert_device(
    tx: &impl GenericClient,
    team: &[u8],
    d: &DeviceKeys,
    now_ms: i64,
) -> Result<(), StorageError> {
    let inserted = tx
        .execute(
            "INSERT INTO devices (team, id, sign_pk, kx_pk, role, revoked, added_ms)
             VALUES ($1, $2, $3, $4, $5, false, $6) ON CONFLICT DO NOTHING",
            &[
                &team,
                &d.id.as_bytes().as_slice(),
                &d.sign_pk.as_slice(),
                &d.kx_pk.as_slice(),
                &role_str(d.role),
                &now_ms,
            ],
        )
        .await
        .map_err(pg_err)?;
    if inserted == 0 {
        return Err(StorageError::DeviceExists);
    }
    Ok(())
}

/// Appends a batch (see [`Storage::append`]) inside the transaction.
async fn append_entries(
    tx: &Transaction<'_>,
    team: TeamId,
    entries: &[Envelope],
) -> Result<AppendOutcome, StorageError> {
    let t = team.as_bytes().as_slice();
    // The per-team lock: every append of this team, on any instance, waits here.
    let head: i64 = tx
        .query_opt(
            "SELECT head FROM teams WHERE id = $1 FOR NO KEY UPDATE",
            &[&t],
        )
        .await
        .map_err(pg_err)?
        .ok_or(StorageError::TeamNotFound)?
        .get(0);
    let mut head = u64_of(head)?;
    let mut outcome = AppendOutcome {
        results: Vec::with_capacity(entries.len()),
        head,
        appended: 0,
        dropped: 0,
        erased: false,
    };
    let seen = tx
        .prepare("SELECT seq FROM envelope_ids WHERE team = $1 AND id = $2")
        .await
        .map_err(pg_err)?;
    let tombstone = tx
        .prepare("SELECT seq FROM tombstones WHERE team = $1 AND doc = $2")
        .await
        .map_err(pg_err)?;
    let insert = tx
        .prepare(
            "WITH e AS (INSERT INTO envelope_ids (team, id, seq) VALUES ($1, $4, $2))
             INSERT INTO log (team, seq, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .await
        .map_err(pg_err)?;
    for env in entries {
        let id = env.id.as_bytes().as_slice();
        let doc = env.doc.as_bytes().as_slice();
        if let Some(row) = tx.query_opt(&seen, &[&t, &id]).await.map_err(pg_err)? {
            outcome.results.push(PushResult {
                id: env.id,
                seq: u64_of(row.get(0))?,
                duplicate: true,
            });
            continue;
        }
        // A record that was erased stays erased: late changes are acknowledged but never stored.
        if let Some(row) = tx
            .query_opt(&tombstone, &[&t, &doc])
            .await
            .map_err(pg_err)?
        {
            outcome.results.push(PushResult {
                id: env.id,
                seq: u64_of(row.get(0))?,
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
        let kind = i16::from(env.kind.code());
        let covers = i64_of(env.covers)?;
        // The envelope's `team` is `team` (the HTTP layer refuses an envelope of another team).
        let v = i16::from(env.v);
        let epoch = i64::from(env.epoch);
        let author = env.author.as_bytes().as_slice();
        let nonce = env.nonce.as_slice();
        let sig = env.sig.as_slice();
        let ciphertext = env.ciphertext.as_slice();
        tx.execute(
            &insert,
            &[
                &t,
                &seq,
                &doc,
                &id,
                &kind,
                &covers,
                &v,
                &epoch,
                &author,
                &nonce,
                &sig,
                &ciphertext,
            ],
        )
        .await
        .map_err(pg_err)?;
        outcome.dropped += match env.kind {
            EnvelopeKind::Change => 0,
            EnvelopeKind::Snapshot => tx
                .execute(
                    "DELETE FROM log WHERE team = $1 AND doc = $2 AND kind IN (1, 2) AND seq <= $3",
                    &[&t, &doc, &covers],
                )
                .await
                .map_err(pg_err)?,
            EnvelopeKind::Tombstone => {
                tx.execute(
                    "INSERT INTO tombstones (team, doc, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (team, doc) DO UPDATE SET seq = excluded.seq",
                    &[&t, &doc, &seq],
                )
                .await
                .map_err(pg_err)?;
                outcome.erased = true;
                tx.execute(
                    "DELETE FROM log WHERE team = $1 AND doc = $2 AND seq < $3",
                    &[&t, &doc, &seq],
                )
                .await
                .map_err(pg_err)?
            }
        };
        outcome.appended += 1;
        outcome.results.push(PushResult {
            id: env.id,
            seq: head,
            duplicate: false,
        });
    }
    if outcome.appended > 0 {
        let new_head = i64_of(head)?;
        tx.execute("UPDATE teams SET head = $1 WHERE id = $2", &[&new_head, &t])
            .await
            .map_err(pg_err)?;
        // Delivered to every listening instance only if this transaction commits.
        let payload = format!("{}:{head}", hex::encode(t));
        tx.execute("SELECT pg_notify($1, $2)", &[&HEAD_CHANNEL, &payload])
            .await
            .map_err(pg_err)?;
    }
    outcome.head = head;
    Ok(outcome)
}

impl Storage for PgStorage {
    fn create_team(
        &self,
        team: TeamId,
        founder: &DeviceKeys,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let founder = founder.clone();
        self.write(move |tx| {
            let founder = founder.clone();
            Box::pin(async move {
                let t = team.as_bytes().as_slice();
                let inserted = tx
                    .execute(
                        "INSERT INTO teams (id, head, created_ms) VALUES ($1, 0, $2)
                         ON CONFLICT DO NOTHING",
                        &[&t, &now_ms],
                    )
                    .await
                    .map_err(pg_err)?;
                if inserted == 0 {
                    return Err(StorageError::TeamExists);
                }
                insert_device(tx, t, &founder, now_ms).await
            })
        })
    }

    fn add_device(
        &self,
        team: TeamId,
        device: &DeviceKeys,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let device = device.clone();
        self.write(move |tx| {
            let device = device.clone();
            Box::pin(async move {
                let t = team.as_bytes().as_slice();
                if !team_exists(tx, t).await? {
                    return Err(StorageError::TeamNotFound);
                }
                insert_device(tx, t, &device, now_ms).await
            })
        })
    }

    fn device(&self, team: TeamId, id: DeviceId) -> Result<Option<DeviceInfo>, StorageError> {
        self.read(|c| {
            Box::pin(async move {
                c.query_opt(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE team = $1 AND id = $2"),
                    &[&team.as_bytes().as_slice(), &id.as_bytes().as_slice()],
                )
                .await
                .map_err(pg_err)?
                .map(|r| device_at(&r, 0))
                .transpose()
            })
        })
    }

    fn device_in_any_team(&self, id: DeviceId) -> Result<Option<DeviceInfo>, StorageError> {
        self.read(|c| {
            Box::pin(async move {
                c.query_opt(
                    &format!(
                        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1
                         ORDER BY added_ms, added LIMIT 1"
                    ),
                    &[&id.as_bytes().as_slice()],
                )
                .await
                .map_err(pg_err)?
                .map(|r| device_at(&r, 0))
                .transpose()
            })
        })
    }

    fn list_devices(&self, team: TeamId) -> Result<Vec<DeviceInfo>, StorageError> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        &format!(
                            "SELECT {DEVICE_COLUMNS} FROM devices WHERE team = $1
                             ORDER BY added_ms, id"
                        ),
                        &[&team.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| device_at(r, 0)).collect()
            })
        })
    }

    fn revoke_device(&self, team: TeamId, id: DeviceId) -> Result<u64, StorageError> {
        self.write(|tx| {
            Box::pin(async move {
                let (t, d) = (team.as_bytes().as_slice(), id.as_bytes().as_slice());
                let changed = tx
                    .execute(
                        "UPDATE devices SET revoked = true WHERE team = $1 AND id = $2",
                        &[&t, &d],
                    )
                    .await
                    .map_err(pg_err)?;
                if changed == 0 {
                    return Err(StorageError::DeviceNotFound);
                }
                // Redeemed ones stay: they record who joined, which the leads check.
                let cancelled = tx
                    .execute(
                        "DELETE FROM invites WHERE team = $1 AND created_by = $2
                         AND redeemed_by IS NULL",
                        &[&t, &d],
                    )
                    .await
                    .map_err(pg_err)?;
                let payload = format!("{}:{}", hex::encode(t), hex::encode(d));
                tx.execute("SELECT pg_notify($1, $2)", &[&REVOKED_CHANNEL, &payload])
                    .await
                    .map_err(pg_err)?;
                Ok(cancelled)
            })
        })
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
        let blob = std::sync::Arc::new(blob.to_vec());
        let quota = *quota;
        self.write(move |tx| {
            let blob = std::sync::Arc::clone(&blob);
            Box::pin(async move {
                let blob = blob.as_slice();
                let t = team.as_bytes().as_slice();
                let (f, r) = (from.as_bytes().as_slice(), to.as_bytes().as_slice());
                // The recipient's and the sender's device rows are locked, in id order (so two
                // posts in opposite directions cannot deadlock), before anything is counted:
                // every post to the same recipient or from the same sender, on any instance,
                // waits here, and its count (a new snapshot under READ COMMITTED) then sees the
                // bundle the previous one inserted. The lock also orders this post against a
                // revocation of the recipient.
                let ids: Vec<&[u8]> = vec![f, r];
                let locked = tx
                    .query(
                        "SELECT id, revoked FROM devices WHERE team = $1 AND id = ANY($2)
                         ORDER BY id FOR UPDATE",
                        &[&t, &ids],
                    )
                    .await
                    .map_err(pg_err)?;
                let known = locked.iter().any(|row| {
                    let id: &[u8] = row.get(0);
                    let revoked: bool = row.get(1);
                    id == r && !revoked
                });
                if !known {
                    return Err(StorageError::DeviceNotFound);
                }
                let size = blob.len() as u64;
                let waiting = |column: &str| {
                    format!(
                        "SELECT count(*), coalesce(sum(length(blob)), 0)::bigint FROM bundles
                         WHERE team = $1 AND {column} = $2"
                    )
                };
                let row = tx
                    .query_one(&waiting("recipient"), &[&t, &r])
                    .await
                    .map_err(pg_err)?;
                let (count, bytes) = (u64_of(row.get(0))?, u64_of(row.get(1))?);
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
                let row = tx
                    .query_one(&waiting("sender"), &[&t, &f])
                    .await
                    .map_err(pg_err)?;
                let (count, bytes) = (u64_of(row.get(0))?, u64_of(row.get(1))?);
                if count >= u64::from(quota.sender_bundles) || bytes + size > quota.sender_bytes {
                    return Err(StorageError::MailboxFull(format!(
                        "this device has {count} bundles ({bytes} bytes) waiting for their \
                         addressees, the most this relay keeps is {} bundles or {} bytes",
                        quota.sender_bundles, quota.sender_bytes
                    )));
                }
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO bundles (team, sender, recipient, blob, created_ms)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        &[&t, &f, &r, &blob, &now_ms],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                u64_of(id)
            })
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
        let after = i64_of(after)?;
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT id, sender, blob FROM bundles
                         WHERE team = $1 AND recipient = $2 AND id > $3
                         ORDER BY id LIMIT $4",
                        &[
                            &team.as_bytes().as_slice(),
                            &to.as_bytes().as_slice(),
                            &after,
                            &(i64::from(limit) + 1),
                        ],
                    )
                    .await
                    .map_err(pg_err)?;
                let mut bundles = Vec::new();
                let mut bytes = 0usize;
                let mut more = false;
                for row in &rows {
                    let blob: Vec<u8> = row.get(2);
                    if bundles.len() >= limit as usize
                        || (!bundles.is_empty() && bytes + blob.len() > max_bytes)
                    {
                        more = true;
                        break;
                    }
                    bytes += blob.len();
                    bundles.push(Bundle {
                        id: u64_of(row.get(0))?,
                        from: DeviceId::from_bytes(array_of(row.get(1), "bundle sender")?),
                        blob,
                    });
                }
                Ok(BundlePage { bundles, more })
            })
        })
    }

    fn delete_bundle(&self, team: TeamId, to: DeviceId, id: u64) -> Result<bool, StorageError> {
        let id = i64::try_from(id).unwrap_or(-1);
        self.write(|tx| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "DELETE FROM bundles WHERE id = $1 AND team = $2 AND recipient = $3",
                        &[&id, &team.as_bytes().as_slice(), &to.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(pg_err)?
                    == 1)
            })
        })
    }

    fn append(&self, team: TeamId, envelopes: &[Envelope]) -> Result<AppendOutcome, StorageError> {
        let entries = std::sync::Arc::new(envelopes.to_vec());
        self.write(move |tx| {
            let entries = std::sync::Arc::clone(&entries);
            Box::pin(async move { append_entries(tx, team, &entries).await })
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
            let invite = invite.clone();
            Box::pin(async move {
                let t = team.as_bytes().as_slice();
                if !team_exists(tx, t).await? {
                    return Err(StorageError::TeamNotFound);
                }
                // FOR SHARE waits for a revocation of `by` in flight on another instance and
                // then reads its outcome; the revocation's invite clean-up in turn waits for
                // this transaction, so no invite outlives its creator's revocation.
                let revoked: bool = tx
                    .query_opt(
                        "SELECT revoked FROM devices WHERE team = $1 AND id = $2 FOR SHARE",
                        &[&t, &by.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(pg_err)?
                    .ok_or(StorageError::DeviceNotFound)?
                    .get(0);
                if revoked {
                    return Err(StorageError::DeviceRevoked);
                }
                let inserted = tx
                    .execute(
                        "INSERT INTO invites
                         (id, team, auth_key, role, expires_ms, blob, created_by, created_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                        &[
                            &invite.id.as_bytes().as_slice(),
                            &t,
                            &invite.auth_key.as_slice(),
                            &role_str(invite.role),
                            &invite.expires_ms,
                            &invite.blob,
                            &by.as_bytes().as_slice(),
                            &now_ms,
                        ],
                    )
                    .await
                    .map_err(pg_err)?;
                if inserted == 0 {
                    return Err(StorageError::InviteUsed);
                }
                Ok(())
            })
        })
    }

    fn invite(&self, id: InviteId) -> Result<Option<StoredInvite>, StorageError> {
        self.read(|c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT team, auth_key, role, expires_ms, blob, redeemed_by IS NOT NULL
                         FROM invites WHERE id = $1",
                        &[&id.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(pg_err)?;
                row.map(|r| {
                    Ok(StoredInvite {
                        team: TeamId::from_bytes(array_of(r.get(0), "team")?),
                        auth_key: array_of(r.get(1), "auth_key")?,
                        role: role_of(r.get(2))?,
                        expires_ms: r.get(3),
                        blob: r.get(4),
                        redeemed: r.get(5),
                    })
                })
                .transpose()
            })
        })
    }

    fn redeem_invite(
        &self,
        id: InviteId,
        device: &DeviceKeys,
        confirm: &[u8; 32],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let (device, confirm) = (device.clone(), *confirm);
        self.write(move |tx| {
            let device = device.clone();
            Box::pin(async move {
                let i = id.as_bytes().as_slice();
                let row = tx
                    .query_opt(
                        "SELECT team, redeemed_by IS NOT NULL, expires_ms FROM invites
                         WHERE id = $1 FOR UPDATE",
                        &[&i],
                    )
                    .await
                    .map_err(pg_err)?
                    .ok_or(StorageError::InviteNotFound)?;
                if row.get::<_, bool>(1) {
                    return Err(StorageError::InviteUsed);
                }
                if row.get::<_, i64>(2) < now_ms {
                    return Err(StorageError::InviteExpired);
                }
                let team: &[u8] = row.get(0);
                insert_device(tx, team, &device, now_ms).await?;
                tx.execute(
                    "UPDATE invites SET redeemed_by = $2, confirm = $3 WHERE id = $1",
                    &[&i, &device.id.as_bytes().as_slice(), &confirm.as_slice()],
                )
                .await
                .map_err(pg_err)?;
                Ok(())
            })
        })
    }

    fn cancel_invite(&self, team: TeamId, id: InviteId) -> Result<bool, StorageError> {
        self.write(|tx| {
            Box::pin(async move {
                let i = id.as_bytes().as_slice();
                let row = tx
                    .query_opt(
                        "SELECT redeemed_by IS NOT NULL FROM invites WHERE id = $1 AND team = $2
                         FOR UPDATE",
                        &[&i, &team.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(pg_err)?;
                match row.map(|r| r.get::<_, bool>(0)) {
                    None => Ok(false),
                    Some(true) => Err(StorageError::InviteUsed),
                    Some(false) => {
                        tx.execute("DELETE FROM invites WHERE id = $1", &[&i])
                            .await
                            .map_err(pg_err)?;
                        Ok(true)
                    }
                }
            })
        })
    }

    fn list_invites(&self, team: TeamId) -> Result<Vec<InviteInfo>, StorageError> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT i.id, i.role, i.expires_ms, i.confirm,
                                d.id, d.sign_pk, d.kx_pk, d.role, d.revoked
                         FROM invites i
                         LEFT JOIN devices d ON d.team = i.team AND d.id = i.redeemed_by
                         WHERE i.team = $1 ORDER BY i.created_ms, i.id",
                        &[&team.as_bytes().as_slice()],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        let confirm: Option<&[u8]> = r.get(3);
                        let has_device: Option<&[u8]> = r.get(4);
                        Ok(InviteInfo {
                            id: InviteId::from_bytes(array_of(r.get(0), "invite id")?),
                            role: role_of(r.get(1))?,
                            expires_ms: r.get(2),
                            redeemed_by: match has_device {
                                Some(_) => Some(device_at(r, 4)?.keys),
                                None => None,
                            },
                            confirm: confirm.map(|c| array_of(c, "invite confirm")).transpose()?,
                        })
                    })
                    .collect()
            })
        })
    }

    fn pull(
        &self,
        team: TeamId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<PullPage, StorageError> {
        self.handle.block_on(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            // One snapshot for head and entries, like the SQLite backend's read transaction.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_err)?;
            let t = team.as_bytes().as_slice();
            let head: i64 = tx
                .query_opt("SELECT head FROM teams WHERE id = $1", &[&t])
                .await
                .map_err(pg_err)?
                .ok_or(StorageError::TeamNotFound)?
                .get(0);
            let head = u64_of(head)?;
            let rows = tx
                .query(
                    &format!(
                        "SELECT seq, {ENVELOPE_COLUMNS} FROM log WHERE team = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                    ),
                    &[&t, &i64_of(after)?, &(i64::from(limit) + 1)],
                )
                .await
                .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            let mut page = PageBuilder::new(limit, max_bytes);
            for row in rows {
                let log_row = LogRow {
                    v: i64::from(row.try_get::<_, i16>(1).map_err(pg_err)?),
                    doc: row.try_get(2).map_err(pg_err)?,
                    id: row.try_get(3).map_err(pg_err)?,
                    kind: i64::from(row.try_get::<_, i16>(4).map_err(pg_err)?),
                    epoch: row.try_get(5).map_err(pg_err)?,
                    author: row.try_get(6).map_err(pg_err)?,
                    covers: row.try_get(7).map_err(pg_err)?,
                    nonce: row.try_get(8).map_err(pg_err)?,
                    ciphertext: row.try_get(9).map_err(pg_err)?,
                    sig: row.try_get(10).map_err(pg_err)?,
                };
                if !page.push(team, u64_of(row.try_get(0).map_err(pg_err)?)?, log_row)? {
                    break;
                }
            }
            Ok(page.finish(head))
        })
    }

    fn head(&self, team: TeamId) -> Result<Option<u64>, StorageError> {
        self.read(|c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT head FROM teams WHERE id = $1",
                    &[&team.as_bytes().as_slice()],
                )
                .await
                .map_err(pg_err)?
                .map(|r| u64_of(r.get(0)))
                .transpose()
            })
        })
    }

    fn shares_nonces(&self) -> bool {
        true
    }

    fn remember_nonce(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        ts_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let prune = {
            let last = self.last_prune_ms.load(Ordering::Relaxed);
            now_ms - last >= PRUNE_NONCES_EVERY_MS
                && self
                    .last_prune_ms
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        };
        self.handle.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            if prune {
                // The clock check refuses a request older than the window before it gets here,
                // so a nonce older than that can never be replayed.
                let horizon = now_ms - 2 * CLOCK_TOLERANCE_MS;
                client
                    .execute("DELETE FROM nonces WHERE ts_ms < $1", &[&horizon])
                    .await
                    .map_err(pg_err)?;
            }
            // Autocommit: durable before the request goes on.
            let inserted = client
                .execute(
                    "INSERT INTO nonces (device, nonce, ts_ms) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&device.as_bytes().as_slice(), &nonce.as_slice(), &ts_ms],
                )
                .await
                .map_err(pg_err)?;
            Ok(inserted == 1)
        })
    }
}
