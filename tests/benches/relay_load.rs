//! Load test of the relay: many simulated devices (default 500) against the real
//! `streetsync-relay` process (release build) on 127.0.0.1 for a bounded time (default 60 s;
//! `LOAD_SECS=300` for the five-minute run). Reports offered and achieved throughput, p50/p99 push
//! and pull latency, how long a change takes to reach a teammate, relay and load-generator CPU, the
//! relay's peak RSS, and checks that no envelope is lost or duplicated: every acknowledged
//! envelope must be in its team's log exactly once, and every device must have received its
//! team's whole log.
//!
//! Two load models (`LOAD_MODE`), see `docs/benchmarks.md`:
//! - `field` (default): open loop, like the sync client in the field. Devices are split into teams
//!   of `LOAD_TEAM_SIZE` (default 25). Each device keeps the live WebSocket open, pushes a batch of
//!   1-4 changes at random times (exponential gaps, mean `LOAD_PUSH_EVERY_SECS`, default 30 s, far
//!   more often than a streetworker saves contacts) and then pulls, and pulls whenever the socket
//!   announces a head beyond its cursor. The schedule does not wait for the relay, so a slow relay
//!   shows as achieved < offered throughput and as a long delivery latency.
//! - `closed`: the first version of this bench, kept for comparison and as a saturation test.
//!   One team of all devices (`LOAD_TEAM_SIZE` default = devices); each device pushes, pulls one
//!   page of up to 500 entries from its cursor (which starts at 0, so pulls stay full pages), and
//!   sleeps 2-4 s (`LOAD_THINK_MS` scales the sleep), in a loop.
//!
//! Figures go to stdout and to `target/bench/relay_load.json` (under `CARGO_TARGET_DIR` if set).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ring::signature::{Ed25519KeyPair, KeyPair};
use streetsync_wire::*;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

struct Sim {
    key: Ed25519KeyPair,
    id: DeviceId,
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).unwrap();
    n
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sim() -> Sim {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let id = DeviceId::from_public_key(key.public_key().as_ref());
    Sim { key, id }
}

fn keys(s: &Sim, role: Role) -> DeviceKeys {
    let mut sign_pk = [0u8; 32];
    sign_pk.copy_from_slice(s.key.public_key().as_ref());
    DeviceKeys {
        id: s.id,
        sign_pk,
        kx_pk: [9; 32],
        role,
    }
}

/// A small deterministic generator (splitmix64), so a run's schedule is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential gap with the given mean (Poisson arrivals), capped at 5x the mean.
    fn exp_ms(&mut self, mean_ms: f64) -> u64 {
        let x = -(1.0 - self.unit()).ln() * mean_ms;
        x.min(5.0 * mean_ms) as u64
    }
}

#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    base: String,
    /// Time zero of the run: envelope ciphertexts carry their scheduled time relative to it.
    t0: Instant,
}

/// One signed request; `Err` is a transport failure (counted, never a panic).
async fn call(
    ctx: &Ctx,
    s: &Sim,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let auth = auth::authorization_header(&s.key, s.id, method, path, &body, now(), nonce());
    let url = format!("{}{path}", ctx.base);
    let req = match method {
        "POST" => ctx
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body),
        _ => ctx.http.get(url),
    };
    let resp = req.header("authorization", auth).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?.to_vec()))
}

/// An envelope of `size` ciphertext bytes whose first 8 bytes are `sent_us` (microseconds since
/// the run's time zero), so a receiver can tell how long it took to arrive.
fn envelope(team: TeamId, s: &Sim, size: usize, sent_us: u64) -> Envelope {
    let mut ciphertext = vec![0xA5; size.max(8)];
    ciphertext[..8].copy_from_slice(&sent_us.to_le_bytes());
    let mut e = Envelope {
        v: ENVELOPE_VERSION,
        team,
        doc: RecordId::random(),
        id: EnvelopeId::random(),
        kind: EnvelopeKind::Change,
        epoch: 1,
        author: s.id,
        covers: 0,
        nonce: [1; 12],
        ciphertext,
        sig: [0; 64],
    };
    e.sign(&s.key);
    e
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let x = v[((v.len() as f64 - 1.0) * p).round() as usize];
    (x * 10.0).round() / 10.0
}

/// (utime + stime in seconds, VmHWM in MB) of a process.
fn proc_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let hwm = streetsync_tests::vm_hwm_kb(pid).unwrap_or(0) as f64;
    (ticks / 100.0, hwm / 1024.0)
}

/// The 1-minute load average of the machine (other engineers' builds share it).
fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The relay process; killed when dropped, also when the bench fails half-way.
pub struct Relay(pub std::process::Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Field,
    Closed,
}

/// What one simulated device measured.
#[derive(Default)]
struct Stats {
    push_ms: Vec<f64>,
    pull_ms: Vec<f64>,
    /// From the moment a teammate's push was due until this device had pulled it.
    delivery_ms: Vec<f64>,
    acked: Vec<EnvelopeId>,
    /// Envelopes the schedule asked for (offered load).
    scheduled: u64,
    /// Log entries this device received, its own included.
    received: u64,
    /// A pull returned a seq at or below one it already had.
    out_of_order: u64,
    failed: u64,
    cursor: u64,
}

struct Device {
    sim: Arc<Sim>,
    team: TeamId,
    index: usize,
}

impl Device {
    async fn push(&self, ctx: &Ctx, st: &mut Stats, batch: Vec<Envelope>) {
        let ids: Vec<EnvelopeId> = batch.iter().map(|e| e.id).collect();
        let body = serde_json::to_vec(&PushRequest { envelopes: batch }).unwrap();
        let t = Instant::now();
        let path = format!("/v1/teams/{}/push", self.team);
        match call(ctx, &self.sim, "POST", &path, body).await {
            Ok((200, resp)) => {
                st.push_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                let r: PushResponse = serde_json::from_slice(&resp).unwrap();
                assert_eq!(r.results.len(), ids.len());
                st.acked.extend(ids);
            }
            _ => st.failed += 1,
        }
    }

    /// One pull page from the cursor; `Some(more)` on success.
    async fn pull_page(&self, ctx: &Ctx, st: &mut Stats, limit: u32, timed: bool) -> Option<bool> {
        let path = format!(
            "/v1/teams/{}/pull?after={}&limit={limit}",
            self.team, st.cursor
        );
        let t = Instant::now();
        match call(ctx, &self.sim, "GET", &path, Vec::new()).await {
            Ok((200, resp)) => {
                let p: PullResponse = serde_json::from_slice(&resp).unwrap();
                let now_us = ctx.t0.elapsed().as_micros() as u64;
                if timed {
                    st.pull_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                for e in &p.entries {
                    if e.seq <= st.cursor {
                        st.out_of_order += 1;
                    }
                    st.cursor = e.seq;
                    st.received += 1;
                    if timed && e.envelope.author != self.sim.id {
                        let mut sent = [0u8; 8];
                        sent.copy_from_slice(&e.envelope.ciphertext[..8]);
                        let sent_us = u64::from_le_bytes(sent);
                        st.delivery_ms
                            .push(now_us.saturating_sub(sent_us) as f64 / 1000.0);
                    }
                }
                Some(p.more)
            }
            _ => {
                st.failed += 1;
                None
            }
        }
    }

    /// Pulls until the relay says there is no more, like the sync client.
    async fn pull_all(&self, ctx: &Ctx, st: &mut Stats, timed: bool) {
        while let Some(true) = self.pull_page(ctx, st, DEFAULT_PULL_LIMIT, timed).await {}
    }

    fn batch(&self, rng: &mut Rng, sent_us: u64) -> Vec<Envelope> {
        let n = 1 + (rng.next() % 4) as usize;
        (0..n)
            .map(|_| {
                let size = 300 + (rng.next() % 1500) as usize;
                envelope(self.team, &self.sim, size, sent_us)
            })
            .collect()
    }

    async fn live_socket(
        &self,
        ctx: &Ctx,
    ) -> Option<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let path = format!("/v1/teams/{}/live", self.team);
        let url = format!("{}{path}", ctx.base.replacen("http", "ws", 1));
        let mut req = url.into_client_request().ok()?;
        let auth = auth::authorization_header(
            &self.sim.key,
            self.sim.id,
            "GET",
            &path,
            &[],
            now(),
            nonce(),
        );
        req.headers_mut()
            .insert("authorization", auth.parse().ok()?);
        tokio_tungstenite::connect_async(req)
            .await
            .ok()
            .map(|(s, _)| s)
    }

    /// The field model: live socket, open-loop pushes, pull on every announced head.
    async fn field(self, ctx: Ctx, deadline: Instant, mean_ms: f64) -> Stats {
        let mut st = Stats::default();
        let mut rng = Rng(0x5EED ^ (self.index as u64).wrapping_mul(0x1000_0001));
        let Some(mut socket) = self.live_socket(&ctx).await else {
            st.failed += 1;
            return st;
        };
        // Like `connected()` in the sync client: sync once when the socket is up.
        self.pull_all(&ctx, &mut st, true).await;
        let mut due = ctx.t0 + Duration::from_millis(rng.exp_ms(mean_ms));
        loop {
            let wake = due.min(deadline);
            if Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {
                    if due >= deadline {
                        continue;
                    }
                    let sent_us = due.duration_since(ctx.t0).as_micros() as u64;
                    let batch = self.batch(&mut rng, sent_us);
                    st.scheduled += batch.len() as u64;
                    self.push(&ctx, &mut st, batch).await;
                    self.pull_all(&ctx, &mut st, true).await;
                    // Open loop: the next push is due on the schedule, however long this one took.
                    due += Duration::from_millis(rng.exp_ms(mean_ms));
                }
                msg = socket.next() => match msg {
                    Some(Ok(tungstenite::Message::Text(text))) => {
                        let head = serde_json::from_str::<LiveMessage>(&text).map(|m| m.head).unwrap_or(u64::MAX);
                        if head > st.cursor {
                            self.pull_all(&ctx, &mut st, true).await;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        // The socket broke: count it and go on without it (pushes still pull).
                        st.failed += 1;
                        socket = match self.live_socket(&ctx).await {
                            Some(s) => s,
                            None => { tokio::time::sleep_until(deadline.into()).await; break; }
                        };
                    }
                },
            }
        }
        let _ = socket.close(None).await;
        st
    }

    /// The closed model of the first version: push, pull one page, think, repeat.
    async fn closed(self, ctx: Ctx, deadline: Instant, think_ms: u64) -> Stats {
        let mut st = Stats::default();
        let i = self.index;
        tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 3000)).await;
        while Instant::now() < deadline {
            let sent_us = ctx.t0.elapsed().as_micros() as u64;
            let batch: Vec<Envelope> = (0..1 + i % 4)
                .map(|k| {
                    envelope(
                        self.team,
                        &self.sim,
                        300 + (k * 211 + i * 13) % 1500,
                        sent_us,
                    )
                })
                .collect();
            st.scheduled += batch.len() as u64;
            self.push(&ctx, &mut st, batch).await;
            self.pull_page(&ctx, &mut st, 500, true).await;
            let think = think_ms + (i as u64 * 53) % think_ms.max(1);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        st
    }
}

#[allow(dead_code)] // relay_postgres.rs includes this file for `measure` and has its own main.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let load = Load::from_env();
    let data = tempfile::tempdir().unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["--data-dir".into(), data.path().into()];
    if load.mode == Mode::Closed {
        // The closed loop makes more requests per device than the default bucket allows.
        args.extend(["--rate-limit-per-sec", "1000", "--rate-limit-burst", "1000"].map(Into::into));
    }
    let (relay, base) = start_relay(&args);
    let pid = relay.0.id();
    let m = measure(&load, &[base], &[pid]).await;
    println!(
        "relay load ({} model): {}",
        if load.mode == Mode::Field {
            "field"
        } else {
            "closed"
        },
        serde_json::to_string_pretty(&m.figures).unwrap()
    );
    write_figures("relay_load", &m.figures);
    drop(relay);
    m.check();
}

/// The load settings, from the environment (see the top of this file).
pub struct Load {
    pub mode: Mode,
    pub devices: usize,
    pub secs: u64,
    pub team_size: usize,
    pub push_every_s: f64,
    pub think_ms: u64,
}

impl Load {
    pub fn from_env() -> Load {
        let mode = match std::env::var("LOAD_MODE").as_deref() {
            Ok("closed") => Mode::Closed,
            Ok("field") | Err(_) => Mode::Field,
            Ok(other) => panic!("LOAD_MODE is `field` or `closed`, not {other:?}"),
        };
        let devices: usize = env_or("LOAD_DEVICES", 500).max(1);
        let secs: u64 = env_or("LOAD_SECS", 60);
        let team_size: usize = env_or(
            "LOAD_TEAM_SIZE",
            if mode == Mode::Field { 25 } else { devices },
        )
        .clamp(1, devices);
        Load {
            mode,
            devices,
            secs,
            team_size,
            push_every_s: env_or("LOAD_PUSH_EVERY_SECS", 30.0),
            think_ms: env_or("LOAD_THINK_MS", 2000),
        }
    }
}

/// Starts the release relay on a free port with `args` and `--log warn`; the process and its
/// base URL.
pub fn start_relay(args: &[std::ffi::OsString]) -> (Relay, String) {
    let mut relay = Command::new(streetsync_tests::relay_binary(true));
    relay
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .args(["--log", "warn"]);
    let mut relay = Relay(relay.stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(relay.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!(
        "http://{}",
        line.trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the relay did not start: {line:?}"))
    );
    (relay, base)
}

/// Writes `target/bench/<name>.json` (under `CARGO_TARGET_DIR` if set).
pub fn write_figures(name: &str, figures: &serde_json::Value) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let out = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_string_pretty(figures).unwrap(),
    )
    .unwrap();
}

/// The figures of one run and its correctness counts.
pub struct Measured {
    pub figures: serde_json::Value,
    pub lost: usize,
    pub duplicated: u64,
    pub behind: u64,
}

impl Measured {
    /// Fails the bench if anything was lost, duplicated or not delivered.
    pub fn check(&self) {
        assert_eq!(self.lost, 0, "lost envelopes");
        assert_eq!(self.duplicated, 0, "duplicated envelopes");
        assert_eq!(
            self.behind, 0,
            "devices that did not receive their whole team log"
        );
    }
}

/// Runs the load against the relay instances at `bases` (device `i` talks to `bases[i % n]`,
/// teams are founded through the first) whose processes are `pids`.
pub async fn measure(load: &Load, bases: &[String], pids: &[u32]) -> Measured {
    let Load {
        mode,
        devices,
        secs,
        team_size,
        push_every_s,
        think_ms,
    } = *load;
    let load_start = load_avg();
    // Every device keeps its own keep-alive connection, as a phone would.
    let ctx = Ctx {
        http: reqwest::Client::builder().build().unwrap(),
        base: bases[0].clone(),
        t0: Instant::now(),
    };
    // One lead per team founds it and registers the team's simulated devices.
    let sims: Vec<Arc<Sim>> = (0..devices).map(|_| Arc::new(sim())).collect();
    let mut teams = Vec::new();
    for chunk in sims.chunks(team_size) {
        let team = TeamId::random();
        let lead = sim();
        let body = serde_json::to_vec(&CreateTeam {
            team,
            device: keys(&lead, Role::Lead),
        })
        .unwrap();
        let (st, _) = call(&ctx, &lead, "POST", "/v1/teams", body).await.unwrap();
        assert_eq!(st, 201);
        for s in chunk {
            let body = serde_json::to_vec(&keys(s, Role::Worker)).unwrap();
            let path = format!("/v1/teams/{team}/devices");
            loop {
                let (st, resp) = call(&ctx, &lead, "POST", &path, body.clone())
                    .await
                    .unwrap();
                if st != 429 {
                    assert_eq!(st, 201);
                    break;
                }
                // One lead registering a team of hundreds exhausts its request bucket.
                let wait = serde_json::from_slice::<ErrorBody>(&resp)
                    .ok()
                    .and_then(|e| e.retry_after_ms)
                    .unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
        teams.push(team);
    }
    let team_of = |i: usize| teams[i / team_size];

    let cpu_of = |pids: &[u32]| {
        pids.iter()
            .map(|p| proc_usage(*p))
            .fold((0.0, 0.0), |(c, r), (c1, r1)| (c + c1, r + r1))
    };
    let (cpu0, _) = cpu_of(pids);
    let (gen0, _) = proc_usage(std::process::id());
    let ctx = Ctx {
        t0: Instant::now(),
        ..ctx
    };
    let deadline = ctx.t0 + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, s) in sims.iter().enumerate() {
        let device = Device {
            sim: s.clone(),
            team: team_of(i),
            index: i,
        };
        let ctx = Ctx {
            base: bases[i % bases.len()].clone(),
            ..ctx.clone()
        };
        tasks.push(tokio::spawn(async move {
            match mode {
                Mode::Field => device.field(ctx, deadline, push_every_s * 1000.0).await,
                Mode::Closed => device.closed(ctx, deadline, think_ms).await,
            }
        }));
    }
    let mut stats = Vec::new();
    for t in tasks {
        stats.push(t.await.unwrap());
    }
    let elapsed = ctx.t0.elapsed().as_secs_f64();
    let (cpu1, rss) = cpu_of(pids);
    let (gen1, _) = proc_usage(std::process::id());
    let load_end = load_avg();

    // Nothing lost, nothing duplicated: per team, a full pull holds every acknowledged envelope
    // exactly once; and every device catches up and must then have received the whole log.
    let mut lost = 0usize;
    let mut dup = 0u64;
    let mut acked_total = 0usize;
    let mut log_len = vec![0u64; teams.len()];
    for (t, team) in teams.iter().enumerate() {
        let members: Vec<usize> = (0..devices).filter(|i| i / team_size == t).collect();
        let acked: Vec<EnvelopeId> = members
            .iter()
            .flat_map(|i| stats[*i].acked.iter().copied())
            .collect();
        let expected: HashSet<EnvelopeId> = acked.iter().copied().collect();
        assert_eq!(
            expected.len(),
            acked.len(),
            "an envelope id was acknowledged twice"
        );
        acked_total += acked.len();
        let checker = &sims[members[0]];
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            let path = format!("/v1/teams/{team}/pull?after={cursor}&limit=1000");
            let (st, resp) = call(&ctx, checker, "GET", &path, Vec::new()).await.unwrap();
            assert_eq!(st, 200);
            let p: PullResponse = serde_json::from_slice(&resp).unwrap();
            for e in &p.entries {
                if !seen.insert(e.envelope.id) {
                    dup += 1;
                }
                cursor = e.seq;
                log_len[t] += 1;
            }
            if !p.more {
                break;
            }
        }
        lost += expected.difference(&seen).count();
    }
    // In the closed model devices fall behind by design (one page per round), so only the field
    // model checks that each device ends up with its team's whole log.
    let mut behind = 0u64;
    let mut out_of_order = 0u64;
    for (i, s) in sims.iter().enumerate() {
        let st = &mut stats[i];
        if mode == Mode::Field {
            let device = Device {
                sim: s.clone(),
                team: team_of(i),
                index: i,
            };
            let ctx = Ctx {
                base: bases[i % bases.len()].clone(),
                ..ctx.clone()
            };
            device.pull_all(&ctx, st, false).await;
            if st.received != log_len[i / team_size] {
                behind += 1;
            }
        }
        out_of_order += st.out_of_order;
    }

    let mut push: Vec<f64> = stats.iter().flat_map(|s| s.push_ms.clone()).collect();
    let mut pull: Vec<f64> = stats.iter().flat_map(|s| s.pull_ms.clone()).collect();
    let mut delivery: Vec<f64> = stats.iter().flat_map(|s| s.delivery_ms.clone()).collect();
    let scheduled: u64 = stats.iter().map(|s| s.scheduled).sum();
    let failed: u64 = stats.iter().map(|s| s.failed).sum();
    let requests = push.len() + pull.len();
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let field = mode == Mode::Field;
    // Latency goals hold for the field model; the closed model is a saturation test.
    let goal = |g: f64| {
        if field {
            serde_json::json!(g)
        } else {
            serde_json::Value::Null
        }
    };
    let offered = scheduled as f64 / elapsed;
    let figures = serde_json::json!({
        "devices": {"value": devices, "unit": "devices", "goal": 500, "lower_is_better": false},
        "team_size": {"value": team_size, "unit": "devices", "goal": null, "lower_is_better": false},
        "push_interval_mean_s": {"value": if field { serde_json::json!(push_every_s) } else { serde_json::Value::Null }, "unit": "s", "goal": null, "lower_is_better": true},
        "duration_s": {"value": round(elapsed), "unit": "s", "goal": null, "lower_is_better": false},
        "offered_envelopes_per_s": {"value": round(offered), "unit": "envelopes/s", "goal": null, "lower_is_better": false},
        "envelopes_per_s": {"value": round(acked_total as f64 / elapsed), "unit": "envelopes/s", "goal": if field { serde_json::json!(round(offered)) } else { serde_json::Value::Null }, "lower_is_better": false},
        "requests_per_s": {"value": round(requests as f64 / elapsed), "unit": "requests/s", "goal": null, "lower_is_better": false},
        "push_p50_ms": {"value": percentile(&mut push, 0.5), "unit": "ms", "goal": goal(100.0), "lower_is_better": true},
        "push_p99_ms": {"value": percentile(&mut push, 0.99), "unit": "ms", "goal": goal(1000.0), "lower_is_better": true},
        "pull_p50_ms": {"value": percentile(&mut pull, 0.5), "unit": "ms", "goal": goal(100.0), "lower_is_better": true},
        "pull_p99_ms": {"value": percentile(&mut pull, 0.99), "unit": "ms", "goal": goal(1000.0), "lower_is_better": true},
        "delivery_p50_ms": {"value": percentile(&mut delivery, 0.5), "unit": "ms", "goal": goal(200.0), "lower_is_better": true},
        "delivery_p99_ms": {"value": percentile(&mut delivery, 0.99), "unit": "ms", "goal": goal(2000.0), "lower_is_better": true},
        "relay_cpu_ms_per_request": {"value": if requests > 0 { ((cpu1 - cpu0) * 1000.0 / requests as f64 * 1000.0).round() / 1000.0 } else { 0.0 }, "unit": "ms of relay CPU per push or pull", "goal": null, "lower_is_better": true},
        "relay_cpu_percent": {"value": round((cpu1 - cpu0) / elapsed * 100.0), "unit": "% of one core", "goal": null, "lower_is_better": true},
        "loadgen_cpu_percent": {"value": round((gen1 - gen0) / elapsed * 100.0), "unit": "% of one core", "goal": null, "lower_is_better": true},
        "relay_peak_rss_mb": {"value": round(rss), "unit": "MB (sum over instances)", "goal": null, "lower_is_better": true},
        "lost_envelopes": {"value": lost, "unit": "envelopes", "goal": 0, "lower_is_better": true},
        "duplicated_envelopes": {"value": dup + out_of_order, "unit": "envelopes", "goal": 0, "lower_is_better": true},
        "devices_missing_entries": {"value": behind, "unit": "devices", "goal": 0, "lower_is_better": true},
        "failed_requests": {"value": failed, "unit": "requests", "goal": 0, "lower_is_better": true},
        "load_average_start": {"value": load_start, "unit": "1-min load average", "goal": null, "lower_is_better": true},
        "load_average_end": {"value": load_end, "unit": "1-min load average", "goal": null, "lower_is_better": true},
    });
    Measured {
        figures,
        lost,
        duplicated: dup + out_of_order,
        behind,
    }
}
