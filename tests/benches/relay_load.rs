//! Load test of the relay: many simulated devices (default 500) push and pull sealed, signed
//! envelopes against the real `streetsync-relay` process on 127.0.0.1 for a bounded time
//! (default 60 s; `LOAD_SECS=300` for the five-minute run). Reports throughput, p50/p99 push and
//! pull latency, relay CPU and peak RSS, and checks that no envelope is lost or duplicated: at the
//! end every device pulls the whole log and must see every acknowledged envelope exactly once.
//!
//! Figures go to stdout and to `target/bench/relay_load.json`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::signature::{Ed25519KeyPair, KeyPair};
use streetsync_wire::*;
use tokio::sync::Mutex;

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

async fn call(
    http: &reqwest::Client,
    base: &str,
    s: &Sim,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let auth = auth::authorization_header(&s.key, s.id, method, path, &body, now(), nonce());
    let req = match method {
        "POST" => http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body),
        _ => http.get(format!("{base}{path}")),
    };
    let resp = req.header("authorization", auth).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

fn envelope(team: TeamId, s: &Sim, size: usize) -> Envelope {
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
        ciphertext: vec![0xA5; size],
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
    v[((v.len() as f64 - 1.0) * p).round() as usize]
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let devices: usize = std::env::var("LOAD_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let data = tempfile::tempdir().unwrap();
    let mut relay = Command::new(streetsync_tests::relay_binary(true))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args([
            "--rate-limit-per-sec",
            "1000",
            "--rate-limit-burst",
            "1000",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(relay.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!(
        "http://{}",
        line.trim().strip_prefix("listening on ").unwrap()
    );
    let pid = relay.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // One lead founds the team and registers every simulated device.
    let team = TeamId::random();
    let lead = sim();
    let body = serde_json::to_vec(&CreateTeam {
        team,
        device: keys(&lead, Role::Lead),
    })
    .unwrap();
    assert_eq!(
        call(&http, &base, &lead, "POST", "/v1/teams", body).await.0,
        201
    );
    let sims: Vec<Arc<Sim>> = (0..devices).map(|_| Arc::new(sim())).collect();
    for s in &sims {
        let body = serde_json::to_vec(&keys(s, Role::Worker)).unwrap();
        let (st, _) = call(
            &http,
            &base,
            &lead,
            "POST",
            &format!("/v1/teams/{team}/devices"),
            body,
        )
        .await;
        assert_eq!(st, 201);
    }
    let (cpu0, _) = proc_usage(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let acked: Arc<Mutex<Vec<EnvelopeId>>> = Arc::default();
    let push_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let pull_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, s) in sims.iter().enumerate() {
        let (s, http, base) = (s.clone(), http.clone(), base.clone());
        let (acked, push_ms, pull_ms, errors) = (
            acked.clone(),
            push_ms.clone(),
            pull_ms.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Devices are in the field: they wake at different times, push a small batch of
            // changes, pull what is new, and go quiet for a while.
            tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 3000)).await;
            let mut cursor = 0u64;
            while Instant::now() < deadline {
                let batch: Vec<Envelope> = (0..1 + i % 4)
                    .map(|k| envelope(team, &s, 300 + (k * 211 + i * 13) % 1500))
                    .collect();
                let ids: Vec<EnvelopeId> = batch.iter().map(|e| e.id).collect();
                let body = serde_json::to_vec(&PushRequest { envelopes: batch }).unwrap();
                let t = Instant::now();
                let (st, resp) = call(
                    &http,
                    &base,
                    &s,
                    "POST",
                    &format!("/v1/teams/{team}/push"),
                    body,
                )
                .await;
                if st == 200 {
                    push_ms
                        .lock()
                        .await
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                    let r: PushResponse = serde_json::from_slice(&resp).unwrap();
                    assert_eq!(r.results.len(), ids.len());
                    acked.lock().await.extend(ids);
                } else {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let t = Instant::now();
                let (st, resp) = call(
                    &http,
                    &base,
                    &s,
                    "GET",
                    &format!("/v1/teams/{team}/pull?after={cursor}&limit=500"),
                    Vec::new(),
                )
                .await;
                if st == 200 {
                    pull_ms
                        .lock()
                        .await
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                    let p: PullResponse = serde_json::from_slice(&resp).unwrap();
                    if let Some(last) = p.entries.last() {
                        cursor = last.seq;
                    }
                } else {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2000 + (i as u64 * 53) % 2000)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_usage(pid);

    // Nothing lost, nothing duplicated: a full pull sees every acknowledged envelope once.
    let acked = acked.lock().await.clone();
    let expected: HashSet<EnvelopeId> = acked.iter().copied().collect();
    assert_eq!(
        expected.len(),
        acked.len(),
        "an envelope id was acknowledged twice"
    );
    let checker = &sims[0];
    let mut seen = HashSet::new();
    let mut dup = 0u64;
    let mut cursor = 0;
    loop {
        let (st, resp) = call(
            &http,
            &base,
            checker,
            "GET",
            &format!("/v1/teams/{team}/pull?after={cursor}&limit=1000"),
            Vec::new(),
        )
        .await;
        assert_eq!(st, 200);
        let p: PullResponse = serde_json::from_slice(&resp).unwrap();
        for e in &p.entries {
            if !seen.insert(e.envelope.id) {
                dup += 1;
            }
            cursor = e.seq;
        }
        if !p.more {
            break;
        }
    }
    let lost = expected.difference(&seen).count();
    let mut push = push_ms.lock().await.clone();
    let mut pull = pull_ms.lock().await.clone();
    let requests = push.len() + pull.len();
    let figures = serde_json::json!({
        "devices": {"value": devices, "unit": "devices", "goal": 500, "lower_is_better": false},
        "duration_s": {"value": (elapsed * 10.0).round() / 10.0, "unit": "s", "goal": null, "lower_is_better": false},
        "envelopes_per_s": {"value": (acked.len() as f64 / elapsed).round(), "unit": "envelopes/s", "goal": null, "lower_is_better": false},
        "requests_per_s": {"value": (requests as f64 / elapsed).round(), "unit": "requests/s", "goal": null, "lower_is_better": false},
        "push_p50_ms": {"value": percentile(&mut push, 0.5), "unit": "ms", "goal": null, "lower_is_better": true},
        "push_p99_ms": {"value": percentile(&mut push, 0.99), "unit": "ms", "goal": null, "lower_is_better": true},
        "pull_p50_ms": {"value": percentile(&mut pull, 0.5), "unit": "ms", "goal": null, "lower_is_better": true},
        "pull_p99_ms": {"value": percentile(&mut pull, 0.99), "unit": "ms", "goal": null, "lower_is_better": true},
        "relay_cpu_percent": {"value": ((cpu1 - cpu0) / elapsed * 1000.0).round() / 10.0, "unit": "% of one core", "goal": null, "lower_is_better": true},
        "relay_peak_rss_mb": {"value": (rss * 10.0).round() / 10.0, "unit": "MB", "goal": null, "lower_is_better": true},
        "lost_envelopes": {"value": lost, "unit": "envelopes", "goal": 0, "lower_is_better": true},
        "duplicated_envelopes": {"value": dup, "unit": "envelopes", "goal": 0, "lower_is_better": true},
        "failed_requests": {"value": errors.load(std::sync::atomic::Ordering::Relaxed), "unit": "requests", "goal": 0, "lower_is_better": true},
    });
    println!(
        "relay load: {}",
        serde_json::to_string_pretty(&figures).unwrap()
    );
    let out = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("relay_load.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = relay.wait();
    assert_eq!(lost, 0, "lost envelopes");
    assert_eq!(dup, 0, "duplicated envelopes");
}
