//! Helpers for the relay's end-to-end tests: start the real binary on 127.0.0.1 with a temporary
//! data directory, and sign requests and envelopes with the wire crate like a device would.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::Value;
use streetsync_wire::auth::authorization_header;
use streetsync_wire::{
    CreateInvite, DeviceId, DeviceKeys, ENVELOPE_VERSION, Envelope, EnvelopeId, EnvelopeKind,
    InviteId, InviteInfo, InviteList, RecordId, RedeemInvite, Role, TeamId,
};

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running relay process.
pub struct Relay {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    extra: Vec<String>,
    pub started: i64,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn spawn(data_dir: &std::path::Path, extra: &[String]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streetsync-relay"))
        .arg("--bind")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("STREETSYNC_RELAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn relay");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(WAIT)
        .expect("relay printed no `listening on` line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

impl Relay {
    pub fn start() -> Relay {
        Relay::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let started = now_ms();
        let (child, addr) = spawn(dir.path(), &extra);
        Relay {
            child,
            addr,
            data_dir: dir.path().to_path_buf(),
            _dir: Some(dir),
            extra,
            started,
        }
    }

    /// Kills the process hard (SIGKILL) and starts a new one on the same data directory.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.started = now_ms();
        let (child, addr) = spawn(&self.data_dir, &self.extra);
        self.child = child;
        self.addr = addr;
    }

    /// Sends SIGTERM to the process.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "relay did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device: an Ed25519 key and its id.
pub struct Device {
    pub key: Ed25519KeyPair,
    pub id: DeviceId,
    pub role: Role,
}

impl Device {
    pub fn new(role: Role) -> Device {
        let mut seed = [0u8; 32];
        SystemRandom::new().fill(&mut seed).unwrap();
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let id = DeviceId::from_public_key(key.public_key().as_ref());
        Device { key, id, role }
    }

    pub fn keys(&self) -> DeviceKeys {
        let mut sign_pk = [0u8; 32];
        sign_pk.copy_from_slice(self.key.public_key().as_ref());
        DeviceKeys {
            id: self.id,
            sign_pk,
            kx_pk: [9; 32],
            role: self.role,
        }
    }

    /// The `Authorization` header for a request signed now with a fresh nonce.
    pub fn auth(&self, method: &str, path_and_query: &str, body: &[u8]) -> String {
        self.auth_at(method, path_and_query, body, now_ms(), nonce())
    }

    pub fn auth_at(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        ts: i64,
        nonce: [u8; 16],
    ) -> String {
        authorization_header(&self.key, self.id, method, path_and_query, body, ts, nonce)
    }

    /// A signed envelope by this device.
    pub fn envelope(
        &self,
        team: TeamId,
        doc: RecordId,
        kind: EnvelopeKind,
        covers: u64,
    ) -> Envelope {
        let mut env = Envelope {
            v: ENVELOPE_VERSION,
            team,
            doc,
            id: EnvelopeId::random(),
            kind,
            epoch: 1,
            author: self.id,
            covers,
            nonce: [1; 12],
            ciphertext: b"opaque ciphertext".to_vec(),
            sig: [0; 64],
        };
        env.sign(&self.key);
        env
    }
}

pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    SystemRandom::new().fill(&mut n).unwrap();
    n
}

pub fn http() -> reqwest::Client {
    // reqwest is built without a default TLS provider; plain-HTTP tests still need one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// A response: status and JSON body (`Value::Null` if the body is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

/// Sends a request with an explicit `Authorization` value (or none).
pub async fn send_raw(
    relay: &Relay,
    method: Method,
    path: &str,
    body: Vec<u8>,
    auth: Option<String>,
) -> Answer {
    let mut req = http().request(method, relay.url(path)).body(body);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    Answer {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Sends a request signed by `device` now.
pub async fn send(
    relay: &Relay,
    device: &Device,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let auth = device.auth(method.as_str(), path, &body);
    send_raw(relay, method, path, body, Some(auth)).await
}

/// Creates a team founded by a new lead device.
pub async fn new_team(relay: &Relay) -> (TeamId, Device) {
    let team = TeamId::random();
    let lead = Device::new(Role::Lead);
    let body = serde_json::json!({ "team": team, "device": lead.keys() });
    let answer = send(relay, &lead, Method::POST, "/v1/teams", Some(&body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    (team, lead)
}

/// Adds a device with `role` to the team, by the lead.
pub async fn add_device(relay: &Relay, team: TeamId, lead: &Device, role: Role) -> Device {
    let device = Device::new(role);
    let answer = send(
        relay,
        lead,
        Method::POST,
        &format!("/v1/teams/{team}/devices"),
        Some(&serde_json::to_value(device.keys()).unwrap()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    device
}

pub async fn push(relay: &Relay, device: &Device, team: TeamId, envelopes: &[Envelope]) -> Answer {
    let body = serde_json::json!({ "envelopes": envelopes });
    send(
        relay,
        device,
        Method::POST,
        &format!("/v1/teams/{team}/push"),
        Some(&body),
    )
    .await
}

pub async fn pull(
    relay: &Relay,
    device: &Device,
    team: TeamId,
    after: u64,
    limit: Option<u32>,
) -> Answer {
    let path = match limit {
        Some(limit) => format!("/v1/teams/{team}/pull?after={after}&limit={limit}"),
        None => format!("/v1/teams/{team}/pull?after={after}"),
    };
    send(relay, device, Method::GET, &path, None).await
}

/// The `seq` of every entry of a pull answer.
pub fn seqs(answer: &Answer) -> Vec<u64> {
    answer.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

/// An invite as its creator knows it: the id and the key of the redemption proof.
pub struct TestInvite {
    pub id: InviteId,
    pub auth_key: [u8; 32],
    pub role: Role,
}

/// Creates an invite for `role` in `team` by `by`, valid for an hour; the answer and the invite.
pub async fn create_invite(
    relay: &Relay,
    team: TeamId,
    by: &Device,
    role: Role,
) -> (Answer, TestInvite) {
    let mut auth_key = [0u8; 32];
    SystemRandom::new().fill(&mut auth_key).unwrap();
    let invite = TestInvite {
        id: InviteId::random(),
        auth_key,
        role,
    };
    let body = CreateInvite {
        id: invite.id,
        auth_key,
        role,
        expires_ms: now_ms() + 3_600_000,
        blob: b"sealed bundle".to_vec(),
    };
    let answer = send(
        relay,
        by,
        Method::POST,
        &format!("/v1/teams/{team}/invites"),
        Some(&serde_json::to_value(body).unwrap()),
    )
    .await;
    (answer, invite)
}

/// Redeems `invite` for `device` with a valid proof and the given (opaque) confirmation.
pub async fn redeem(
    relay: &Relay,
    invite: &TestInvite,
    device: &Device,
    confirm: [u8; 32],
) -> Answer {
    let keys = device.keys();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &invite.auth_key);
    let tag = ring::hmac::sign(&key, &RedeemInvite::proof_input(&invite.id, &keys));
    let body = RedeemInvite {
        device: keys,
        proof: tag.as_ref().try_into().unwrap(),
        confirm,
    };
    // The redeem route takes axum's `Json`, which wants the content type.
    let resp = http()
        .post(relay.url(&format!("/v1/invites/{}/redeem", invite.id)))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    Answer {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// The team's invites as `lead` lists them.
pub async fn list_invites(relay: &Relay, team: TeamId, lead: &Device) -> Vec<InviteInfo> {
    let answer = send(
        relay,
        lead,
        Method::GET,
        &format!("/v1/teams/{team}/invites"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    serde_json::from_value::<InviteList>(answer.json)
        .unwrap()
        .invites
}

/// `DELETE /v1/teams/{team}/invites/{id}` signed by `by`.
pub async fn cancel_invite(relay: &Relay, team: TeamId, by: &Device, id: &str) -> Answer {
    send(
        relay,
        by,
        Method::DELETE,
        &format!("/v1/teams/{team}/invites/{id}"),
        None,
    )
    .await
}
