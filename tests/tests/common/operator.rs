//! The relay operator as an adversary (issue 12, deliverable 7). It holds everything a curious or
//! compromised operator holds, and nothing more:
//!
//! - [`Operator`]: the relay process and its own SQLite file. It can stop the relay, read and
//!   write any row (devices, invites, bundles, log, tombstones), and start it again on the same
//!   port and data, so the relay's in-memory device cache is rebuilt from what the operator wrote.
//! - [`RewritingProxy`]: a plain-HTTP proxy in front of the relay whose answers can be replaced or
//!   rewritten per path by a closure (an operator can run any code in its relay; this is the
//!   smallest way to play "the relay lies").
//!
//! Nothing here knows a team key or a device's secret: what an attacker device can read is in
//! `attacker.rs`, and it gets keys only the way the relay could.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use streetsync_core::{DeviceId, RecordId, Role, TeamId};
use streetsync_wire::{DeviceKeys, Envelope, EnvelopeId, EnvelopeKind};

use crate::common::Relay;

/// The relay, as its operator sees it.
pub struct Operator {
    pub relay: Relay,
}

fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Lead => "lead",
        Role::Worker => "worker",
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Operator {
    /// Starts a relay on a free port with its data in `data`.
    pub fn start(data: &Path) -> Operator {
        Operator {
            relay: Relay::start(data),
        }
    }

    pub fn url(&self) -> String {
        self.relay.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.relay.addr
    }

    /// Reads the relay's database while the relay runs (WAL lets a reader in beside its writer).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> T {
        let conn = open(&self.relay.db_path());
        f(&conn).unwrap()
    }

    /// Stops the relay, changes its database in one transaction, and starts it again on the same
    /// port: the relay then serves exactly what the operator wrote.
    pub fn edit<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> T {
        self.relay.kill();
        let mut conn = open(&self.relay.db_path());
        let tx = conn.transaction().unwrap();
        let out = f(&tx).unwrap();
        tx.commit().unwrap();
        drop(conn);
        self.relay.restart();
        out
    }

    /// The team's head (highest sequence number handed out).
    pub fn head(&self, team: TeamId) -> u64 {
        self.read(|c| {
            c.query_row(
                "SELECT head FROM teams WHERE id = ?1",
                [team.as_bytes()],
                |r| r.get::<_, i64>(0),
            )
        }) as u64
    }

    /// Every log entry with `seq > after`, as stored: (seq, envelope).
    pub fn log_after(&self, team: TeamId, after: u64) -> Vec<(u64, Envelope)> {
        self.rows_after(team, after)
    }

    /// Every log entry with `seq > after`, read from the log's columns (the relay stores each
    /// field of the envelope in its own column, byte strings raw).
    pub fn rows_after(&self, team: TeamId, after: u64) -> Vec<(u64, Envelope)> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT l.seq, l.v, l.doc, l.envelope_id, l.kind, l.epoch, a.id, l.covers, l.nonce,
                        l.ciphertext, l.sig
                 FROM log l JOIN authors a ON a.n = l.author
                 WHERE l.team = (SELECT n FROM teams WHERE id = ?1) AND l.seq > ?2 ORDER BY l.seq",
            )?;
            let rows = stmt
                .query_map(params![team.as_bytes(), after as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        Envelope {
                            v: r.get(1)?,
                            team,
                            doc: RecordId::from_bytes(r.get(2)?),
                            id: EnvelopeId::from_bytes(r.get(3)?),
                            kind: EnvelopeKind::from_code(r.get(4)?).unwrap(),
                            epoch: r.get(5)?,
                            author: DeviceId::from_bytes(r.get(6)?),
                            covers: r.get::<_, i64>(7)? as u64,
                            nonce: r.get(8)?,
                            ciphertext: r.get(9)?,
                            sig: r.get(10)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The sealed bundles waiting for `to` (whoever sent them).
    pub fn bundles_for(&self, to: DeviceId) -> Vec<Vec<u8>> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT blob FROM bundles WHERE recipient = ?1 ORDER BY id")?;
            let rows = stmt
                .query_map([to.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// A device's keys as the relay registered them (the operator seals bundles to `kx_pk`).
    pub fn device(&self, team: TeamId, id: DeviceId) -> DeviceKeys {
        self.read(|c| {
            c.query_row(
                "SELECT sign_pk, kx_pk, role FROM devices WHERE team = ?1 AND id = ?2",
                params![team.as_bytes(), id.as_bytes()],
                |r| {
                    let sign_pk: Vec<u8> = r.get(0)?;
                    let kx_pk: Vec<u8> = r.get(1)?;
                    let role: String = r.get(2)?;
                    Ok(DeviceKeys {
                        id,
                        sign_pk: sign_pk.try_into().unwrap(),
                        kx_pk: kx_pk.try_into().unwrap(),
                        role: if role == "lead" {
                            Role::Lead
                        } else {
                            Role::Worker
                        },
                    })
                },
            )
        })
    }

    /// The sealed join bundle the relay keeps for an invite.
    pub fn invite_blob(&self, invite: &[u8; 16]) -> Vec<u8> {
        self.read(|c| {
            c.query_row(
                "SELECT blob FROM invites WHERE id = ?1",
                [invite.as_slice()],
                |r| r.get(0),
            )
        })
    }

    /// The operator's copy of its data directory, taken with the relay stopped (a nightly backup).
    pub fn backup(&mut self) -> tempfile::TempDir {
        self.relay.kill();
        let copy = tempfile::tempdir().unwrap();
        for (path, bytes) in self.relay.files() {
            std::fs::write(copy.path().join(path.file_name().unwrap()), bytes).unwrap();
        }
        self.relay.restart();
        copy
    }

    /// Puts an old backup back in place of the relay's data (a rollback) and starts the relay.
    pub fn restore(&mut self, backup: &tempfile::TempDir) {
        self.relay.kill();
        for (path, _) in self.relay.files() {
            std::fs::remove_file(path).unwrap();
        }
        for entry in std::fs::read_dir(backup.path()).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, self.relay.data.join(p.file_name().unwrap())).unwrap();
        }
        self.relay.restart();
    }
}

// ---- row edits, inside `Operator::edit` --------------------------------------------------------

/// Registers a device in the relay's own table, as if a lead had added it.
pub fn insert_device(
    tx: &Transaction<'_>,
    team: TeamId,
    keys: &DeviceKeys,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO devices (team, id, sign_pk, kx_pk, role, revoked, added_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
        params![
            team.as_bytes(),
            keys.id.as_bytes(),
            keys.sign_pk,
            keys.kx_pk,
            role_str(keys.role),
            now_ms()
        ],
    )?;
    Ok(())
}

/// Marks the newest open invite of `role` as redeemed by `device` (which must be in `devices`,
/// or the relay's invite list shows no redeemer). Returns how many invites it changed (0 or 1).
pub fn mark_redeemed(
    tx: &Transaction<'_>,
    team: TeamId,
    role: Role,
    device: DeviceId,
) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE invites SET redeemed_by = ?3 WHERE id = (
             SELECT id FROM invites WHERE team = ?1 AND role = ?2 AND redeemed_by IS NULL
             ORDER BY created_ms DESC, rowid DESC LIMIT 1)",
        params![team.as_bytes(), role_str(role), device.as_bytes()],
    )
}

/// Sets a device's role in the relay's own table (a colluding operator promoting a member, so the
/// relay takes what only leads may send).
pub fn set_role(
    tx: &Transaction<'_>,
    team: TeamId,
    device: DeviceId,
    role: Role,
) -> rusqlite::Result<()> {
    let n = tx.execute(
        "UPDATE devices SET role = ?3 WHERE team = ?1 AND id = ?2",
        params![team.as_bytes(), device.as_bytes(), role_str(role)],
    )?;
    assert_eq!(n, 1, "no such device in the relay's table");
    Ok(())
}

/// Sets a device's revoked flag in the relay's table (un-revoking is what a colluding relay does).
pub fn set_revoked(
    tx: &Transaction<'_>,
    team: TeamId,
    device: DeviceId,
    revoked: bool,
) -> rusqlite::Result<()> {
    let n = tx.execute(
        "UPDATE devices SET revoked = ?3 WHERE team = ?1 AND id = ?2",
        params![team.as_bytes(), device.as_bytes(), revoked],
    )?;
    assert_eq!(n, 1, "no such device in the relay's table");
    Ok(())
}

/// Leaves a bundle in `to`'s mailbox, claiming it comes from `from`.
pub fn insert_bundle(
    tx: &Transaction<'_>,
    team: TeamId,
    from: DeviceId,
    to: DeviceId,
    blob: &[u8],
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO bundles (team, sender, recipient, blob, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![team.as_bytes(), from.as_bytes(), to.as_bytes(), blob, now_ms()],
    )?;
    Ok(())
}

/// Removes the relay's tombstone of a record and every tombstone envelope of it from the log:
/// the relay behaves again for that record.
pub fn forget_erasure(tx: &Transaction<'_>, team: TeamId, doc: RecordId) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM tombstones WHERE team = ?1 AND doc = ?2",
        params![team.as_bytes(), doc.as_bytes()],
    )?;
    tx.execute(
        "DELETE FROM log WHERE team = (SELECT n FROM teams WHERE id = ?1) AND doc = ?2 AND kind = 3",
        params![team.as_bytes(), doc.as_bytes()],
    )?;
    Ok(())
}

/// Appends copies of stored log rows at new sequence numbers after the head; the envelope a
/// device pulls is the original, byte for byte (the log has no unique index of its own on the
/// envelope id; `envelope_ids`, which the copies bypass, is where the relay recognises repeats).
pub fn reappend(
    tx: &Transaction<'_>,
    team: TeamId,
    rows: &[(u64, Envelope)],
) -> rusqlite::Result<Vec<u64>> {
    let envs: Vec<Envelope> = rows.iter().map(|(_, e)| e.clone()).collect();
    append(tx, team, &envs)
}

/// Appends envelopes at new sequence numbers after the head, as the relay's push would store
/// them, but without any of its checks (role, tombstones): what a colluding operator writes into
/// its own log. Returns their sequence numbers.
pub fn append(tx: &Transaction<'_>, team: TeamId, envs: &[Envelope]) -> rusqlite::Result<Vec<u64>> {
    let (n, mut head): (i64, i64) = tx.query_row(
        "SELECT n, head FROM teams WHERE id = ?1",
        [team.as_bytes()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut seqs = Vec::new();
    for env in envs {
        head += 1;
        tx.execute(
            "INSERT INTO authors (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
            [env.author.as_bytes()],
        )?;
        tx.execute(
            // The entry's position: the team's number times 2^40 plus its seq (migration 6).
            "INSERT INTO log (pos, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
             VALUES (?1 * 1099511627776 + ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                     (SELECT n FROM authors WHERE id = ?9), ?10, ?11, ?12)",
            params![
                n,
                head,
                env.doc.as_bytes(),
                env.id.as_bytes(),
                env.kind.code(),
                env.covers as i64,
                env.v,
                env.epoch,
                env.author.as_bytes(),
                env.nonce,
                env.sig,
                env.ciphertext,
            ],
        )?;
        seqs.push(head as u64);
    }
    tx.execute(
        "UPDATE teams SET head = ?1 WHERE id = ?2",
        params![head, team.as_bytes()],
    )?;
    Ok(seqs)
}

/// Whether the relay holds a tombstone for a record.
pub fn has_tombstone(conn: &Connection, team: TeamId, doc: RecordId) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM tombstones WHERE team = ?1 AND doc = ?2",
            params![team.as_bytes(), doc.as_bytes()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

// ---- the rewriting proxy ------------------------------------------------------------------------

/// A request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Request {
    /// Upper case (`POST`).
    pub method: String,
    /// Without the query (`/v1/teams/<id>/push`).
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
    /// The device named in the request's `authorization` header (the relay checks the signature;
    /// the proxy only reads the name, to play a relay that treats one device differently).
    pub device: Option<DeviceId>,
}

impl Request {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An answer, as the device will receive it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        Response {
            status,
            body: serde_json::to_vec(value).unwrap(),
        }
    }
}

type AnswerFn = dyn Fn(&Request) -> Response + Send + Sync;
type RewriteFn = dyn Fn(&Request, Response) -> Response + Send + Sync;

#[derive(Clone)]
enum Action {
    /// The proxy answers; the relay never sees the request.
    Answer(Arc<AnswerFn>),
    /// The relay answers; the proxy changes the answer.
    Rewrite(Arc<RewriteFn>),
}

struct Rule {
    method: &'static str,
    path_suffix: String,
    /// Only requests signed in the name of this device, if set.
    device: Option<DeviceId>,
    action: Action,
}

struct Shared {
    upstream: SocketAddr,
    client: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    /// How many requests a rule answered or rewrote.
    hits: std::sync::atomic::AtomicUsize,
}

/// A plain-HTTP proxy in front of the relay whose answers the test rewrites by path. Devices talk
/// to it instead of the relay; with no rule it is a transparent pipe. The relay can be stopped and
/// started behind it (same port). No WebSocket upgrade: these tests sync with `sync_once`.
pub struct RewritingProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RewritingProxy {
    pub async fn start(upstream: SocketAddr) -> RewritingProxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Arc::new(Shared {
            upstream,
            // No pooled connections: the relay behind may have been restarted since the last call.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            rules: Mutex::new(Vec::new()),
            hits: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RewritingProxy { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `method` requests whose path ends with `path_suffix` itself, without the relay.
    pub fn answer(
        &self,
        method: &'static str,
        path_suffix: &str,
        f: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) {
        self.add(method, path_suffix, None, Action::Answer(Arc::new(f)));
    }

    /// Like [`RewritingProxy::answer`], for requests signed in the name of `device` only (for
    /// example: one device is cut off while the others get through).
    pub fn answer_for(
        &self,
        device: DeviceId,
        method: &'static str,
        path_suffix: &str,
        f: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) {
        self.add(
            method,
            path_suffix,
            Some(device),
            Action::Answer(Arc::new(f)),
        );
    }

    /// Passes matching requests to the relay and hands its answer through `f`.
    pub fn rewrite(
        &self,
        method: &'static str,
        path_suffix: &str,
        f: impl Fn(&Request, Response) -> Response + Send + Sync + 'static,
    ) {
        self.add(method, path_suffix, None, Action::Rewrite(Arc::new(f)));
    }

    fn add(
        &self,
        method: &'static str,
        path_suffix: &str,
        device: Option<DeviceId>,
        action: Action,
    ) {
        self.shared.rules.lock().unwrap().push(Rule {
            method,
            path_suffix: path_suffix.to_owned(),
            device,
            action,
        });
    }

    /// Drops every rule: a transparent pipe again.
    pub fn behave(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// How many requests the rules answered or rewrote so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for RewritingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    axum::extract::State(s): axum::extract::State<Arc<Shared>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        body,
        device: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| streetsync_wire::auth::AuthHeader::parse(v).ok())
            .map(|h| h.device),
    };
    let actions: Vec<Action> = s
        .rules
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r.method == request.method
                && request.path.ends_with(&r.path_suffix)
                && r.device.is_none_or(|d| request.device == Some(d))
        })
        .map(|r| r.action.clone())
        .collect();
    let bump = || s.hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if let Some(Action::Answer(f)) = actions.iter().find(|a| matches!(a, Action::Answer(_))) {
        bump();
        return reply(f(&request));
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut upstream = s.client.request(
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap(),
        format!("http://{}{target}", s.upstream),
    );
    for name in ["authorization", "content-type"] {
        if let Some(v) = parts.headers.get(name) {
            upstream = upstream.header(name, v.as_bytes());
        }
    }
    let mut response = match upstream.body(request.body.clone()).send().await {
        Ok(r) => Response {
            status: r.status().as_u16(),
            body: r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        },
        // The relay is down (being edited): the device sees what it would see without a proxy.
        Err(_) => Response {
            status: 502,
            body: b"relay unreachable".to_vec(),
        },
    };
    for action in actions {
        if let Action::Rewrite(f) = action {
            bump();
            response = f(&request, response);
        }
    }
    reply(response)
}

fn reply(r: Response) -> axum::response::Response {
    axum::response::Response::builder()
        .status(r.status)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r.body))
        .unwrap()
}
