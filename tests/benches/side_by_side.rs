//! Side-by-side benchmark against Automerge's own sync stack (issue 7, item 4).
//!
//! For N field contacts (default 100, 1,000, 3,000 and 10,000; `SIDE_BY_SIDE_NS=100,1000` runs a
//! subset), in one run on the same machine:
//!
//! - **streetsync**: the real `streetsync-relay` process (release build); device A (a store in a
//!   temp dir, the team lead, in this process) saves N contacts and pushes them; device B (a fresh
//!   store, its own `ss-device join-live` process) joins with an invite and syncs until all N are
//!   listed. Then A, with live sync running, edits one note several times and each edit is timed
//!   until B's change listener sees it.
//! - **peer**: the npm packages `@automerge/automerge-repo`, `-network-websocket` and
//!   `-storage-nodefs` (installed into `tests/peer/node_modules` by this bench with `npm ci`,
//!   cached), a sync server built like the official `automerge-repo-sync-server`
//!   (`tests/peer/server.mjs`) and two devices (`tests/peer/client.mjs`) doing the same work with
//!   the same contacts in the same document shape.
//!
//! Every step of either side (upload, bootstrap, live) is bounded by a time budget
//! (`SIDE_BY_SIDE_TIMEOUT_SECS`, default 600 s per step); a timeout or crash is recorded as the
//! result (`timeout (...)` / `failed: ...`) and the bench goes on.
//!
//! Printed for both: wall times (create + upload, bootstrap, live latency), bytes on disk (relay or
//! server data dir, device B's store), peak RSS (relay or server process, device B process) and the
//! ratios. Figures go to `target/bench/side_by_side.json` (or `$CARGO_TARGET_DIR/bench/`).
//! Method and results: `docs/benchmarks.md`.
//!
//! Other knobs: `SIDE_BY_SIDE_EDITS` (live edits per N, default 5), `STREETSYNC_RELAY_BIN` (a
//! prebuilt relay instead of building one into `target/bench-relay`).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../core/tests/common/mod.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streetsync_core::*;

/// Pause between two live edits (and before the first), so each is measured on an idle system.
const EDIT_GAP: Duration = Duration::from_millis(700);

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Unix time in ms with sub-ms precision: device processes print their own clock readings, and
/// all of them share this machine's clock.
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The `q` quantile (0..=1) by the nearest-rank method: with few edits p99 is the slowest one.
fn percentile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Why a side did not finish.
#[derive(Debug)]
enum Failure {
    /// The step did not finish within the time budget.
    Timeout(String),
    /// The step failed (a crash, an error line, a wrong count).
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(step) => write!(f, "timeout ({step})"),
            Failure::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

/// A child process whose stdout lines arrive on a channel and whose stderr goes to a file.
struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
    /// The last `progress` line the process printed.
    progress: Option<String>,
    /// The largest `VmHWM` seen by the sampler, in kB.
    sampled_kb: Arc<AtomicU64>,
}

impl Proc {
    fn spawn(mut cmd: Command, name: &str, logs: &Path) -> Result<Proc, Failure> {
        let stderr = logs.join(format!("{name}.stderr"));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).map_err(failed)?)
            .spawn()
            .map_err(|e| failed(format!("{name} did not start: {e}")))?;
        // Sample the peak RSS twice a second, so it is known even after a crash.
        let sampled_kb = Arc::new(AtomicU64::new(0));
        let (pid, sampled) = (child.id(), sampled_kb.clone());
        std::thread::spawn(move || {
            while let Some(kb) = streetsync_tests::vm_hwm_kb(pid) {
                sampled.fetch_max(kb, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Proc {
            name: name.to_owned(),
            child,
            lines,
            stderr,
            progress: None,
            sampled_kb,
        })
    }

    /// The rest of the next line that starts with `word`; other lines are skipped. A `fatal`
    /// line, the process exiting, or the deadline passing is a failure.
    fn expect(&mut self, word: &str, deadline: Instant) -> Result<String, Failure> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if line.starts_with("fatal") {
                        return Err(Failure::Failed(format!("{}: {line}", self.name)));
                    }
                    if line.starts_with("progress") {
                        self.progress = Some(line.clone());
                    }
                    if let Some(rest) = line.strip_prefix(word)
                        && (rest.is_empty() || rest.starts_with(' '))
                    {
                        return Ok(rest.trim().to_owned());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let at = self
                        .progress
                        .as_deref()
                        .map_or(String::new(), |p| format!(", at {p}"));
                    return Err(Failure::Timeout(format!(
                        "{} waiting for `{word}`{at}",
                        self.name
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(Failure::Failed(format!(
                        "{} exited ({status}) before `{word}`: {}",
                        self.name,
                        self.stderr_error()
                    )));
                }
            }
        }
    }

    /// The next `word` line's first number.
    fn expect_num(&mut self, word: &str, deadline: Instant) -> Result<f64, Failure> {
        let rest = self.expect(word, deadline)?;
        first_num(&rest).ok_or_else(|| failed(format!("{}: bad line `{word} {rest}`", self.name)))
    }

    /// Peak resident set (`VmHWM`) so far, in MB.
    /// Peak resident set (`VmHWM`) so far, in MB; for a process that already exited, the last
    /// value the sampler saw.
    fn peak_rss_mb(&self) -> Option<f64> {
        let now = streetsync_tests::vm_hwm_kb(self.child.id()).unwrap_or(0);
        let kb = now.max(self.sampled_kb.load(Ordering::Relaxed));
        (kb > 0).then(|| kb as f64 / 1024.0)
    }

    /// The first line of stderr that names an error (node prints the source line and a caret
    /// first), else its last non-empty line; at most 200 characters.
    fn stderr_error(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let line = lines
            .iter()
            .find(|l| l.contains("Error") || l.starts_with("error"))
            .or(lines.last())
            .copied()
            .unwrap_or("");
        line.chars().take(200).collect()
    }

    /// Whether the process has exited, and if so a short account (status, end of stderr).
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        Some(format!(
            "{} exited ({status}): {}",
            self.name,
            self.stderr_error()
        ))
    }

    fn wait_exit(&mut self, deadline: Instant) -> Result<(), Failure> {
        loop {
            match self.child.try_wait().map_err(failed)? {
                Some(s) if s.success() => return Ok(()),
                Some(s) => return Err(failed(format!("{} exited with {s}", self.name))),
                None if Instant::now() >= deadline => {
                    return Err(Failure::Timeout(format!("{} to exit", self.name)));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_num(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            let (a, b) = dir_size(&e.path());
            total.0 += a;
            total.1 += b;
        } else {
            total.0 += meta.len();
            total.1 += meta.blocks() * 512;
        }
    }
    total
}

/// What one side did for one N. Options stay `None` where it did not get that far.
#[derive(Debug, Default)]
struct Run {
    outcome: String,
    /// Creating the N documents on A, from the first until the last returned.
    create_ms: Option<f64>,
    /// From the first document created until the relay/server held all of them.
    upload_ms: Option<f64>,
    /// Device B, measured inside its process: from the start of the join (first `find` for the
    /// peer) until all N contacts are listed (every handle ready).
    bootstrap_ms: Option<f64>,
    /// The same, measured here from spawning B's process (adds the runtime's start).
    bootstrap_wall_ms: Option<f64>,
    /// Peer only: `repo.flush()` on B after loading (our B's data is durable when listed).
    b_flush_ms: Option<f64>,
    /// When B did not finish loading: how long it had been trying when the side stopped.
    bootstrap_waited_ms: Option<f64>,
    /// Whether the side stopped on its time budget.
    timed_out: bool,
    live_ms: Vec<f64>,
    server_disk: Option<(u64, u64)>,
    b_disk: Option<(u64, u64)>,
    server_rss_mb: Option<f64>,
    b_rss_mb: Option<f64>,
}

impl Run {
    fn ok(&self) -> bool {
        self.outcome == "ok"
    }

    /// `ok`, `timeout` or `failed`, for the table (the details are printed under it).
    fn short(&self) -> &str {
        self.outcome.split([' ', ':']).next().unwrap_or("")
    }
}

/// Processes and dirs of one side's run, kept outside the steps so figures can still be read
/// after a failure.
struct Ctx {
    dir: tempfile::TempDir,
    server: Option<Proc>,
    /// Time allowed for each step (upload, bootstrap, live).
    budget: Duration,
    edits: usize,
    /// When device B's process was started.
    b_spawned: Option<Instant>,
}

impl Ctx {
    fn new(budget: Duration, edits: usize) -> Ctx {
        Ctx {
            dir: tempfile::tempdir().unwrap(),
            server: None,
            budget,
            edits,
            b_spawned: None,
        }
    }

    /// The deadline of a step that starts now.
    fn step(&self) -> Instant {
        Instant::now() + self.budget
    }

    fn finish(mut self, run: &mut Run, result: Result<(), Failure>) {
        run.timed_out = matches!(result, Err(Failure::Timeout(_)));
        run.outcome = match result {
            Ok(()) => "ok".into(),
            Err(f) => f.to_string(),
        };
        // A client failing is often the server having died under it: say so.
        if let Some(why) = self.server.as_mut().and_then(Proc::exited) {
            run.outcome = format!("{}; {why}", run.outcome);
        }
        if run.bootstrap_ms.is_none() {
            run.bootstrap_waited_ms = self.b_spawned.map(ms);
        }
        if let Some(s) = &self.server {
            run.server_rss_mb = s.peak_rss_mb();
        }
        self.server = None;
        run.server_disk = Some(dir_size(&self.dir.path().join("server")));
    }
}

// ---- streetsync ------------------------------------------------------------------------------

struct Idle(AtomicBool);

impl SyncListener for Idle {
    fn on_status(&self, status: SyncStatus) {
        if matches!(status, SyncStatus::Idle { .. }) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    fn on_progress(&self, _: SyncProgress) {}
}

async fn streetsync_steps(
    ctx: &mut Ctx,
    run: &mut Run,
    relay_bin: &Path,
    contacts: &[ContactDraft],
) -> Result<(), Failure> {
    let deadline = ctx.step();
    let root = ctx.dir.path().to_owned();
    let mut relay = Command::new(relay_bin);
    relay
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(root.join("server"))
        .args(["--log", "warn"]);
    let relay = ctx.server.insert(Proc::spawn(relay, "relay", &root)?);
    let url = format!("http://{}", relay.expect("listening on", deadline)?);

    // Device A: the lead's store, in this process.
    let a = Arc::new(Workspace::open(root.join("a.db"), fixtures::key(1)).map_err(failed)?);
    a.create_team(fixtures::setup()).map_err(failed)?;
    let lead = Arc::new(SyncClient::new(a.clone(), &url).map_err(failed)?);
    lead.sync_once(None).await.map_err(failed)?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(contacts.len());
    for d in contacts {
        ids.push(a.create_contact(d.clone()).map_err(failed)?.id);
    }
    run.create_ms = Some(ms(started));
    let pushed = lead.sync_once(None).await.map_err(failed)?.pushed;
    run.upload_ms = Some(ms(started));
    if pushed as usize != contacts.len() {
        return Err(failed(format!("pushed {pushed} of {}", contacts.len())));
    }

    // Device B: a fresh store in its own process joins with an invite and loads everything.
    let invite = lead
        .create_invite("Gerät B", Role::Worker, 3600)
        .await
        .map_err(failed)?;
    std::fs::create_dir_all(root.join("b")).map_err(failed)?;
    // `SIDE_BY_SIDE_B_WRAPPER` runs device B under a profiler, e.g. `perf record -g -o b.perf --`.
    let wrapper = std::env::var("SIDE_BY_SIDE_B_WRAPPER").unwrap_or_default();
    let mut wrapper = wrapper.split_whitespace();
    let mut cmd = match wrapper.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(wrapper).arg(env!("CARGO_BIN_EXE_ss-device"));
            cmd
        }
        None => Command::new(env!("CARGO_BIN_EXE_ss-device")),
    };
    cmd.arg(root.join("b").join("b.db"))
        .arg(&url)
        .args(["join-live", &invite.code, &contacts.len().to_string()])
        .env("SS_DEVICE_KEY_BYTE", "2");
    let deadline = ctx.step();
    let spawned = *ctx.b_spawned.insert(Instant::now());
    let mut b = Proc::spawn(cmd, "device-b", &root)?;
    let loaded = b.expect("loaded", deadline)?;
    run.bootstrap_wall_ms = Some(ms(spawned));
    run.b_rss_mb = b.peak_rss_mb();
    let count = loaded
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<usize>().ok());
    if count != Some(contacts.len()) {
        return Err(failed(format!(
            "device B listed {count:?} of {}",
            contacts.len()
        )));
    }
    run.bootstrap_ms = first_num(&loaded);
    run.b_disk = Some(dir_size(&root.join("b")));

    let deadline = ctx.step();
    // Live: A runs live sync (a local change wakes it), B prints when the change is stored.
    let idle = Arc::new(Idle(AtomicBool::new(false)));
    let live = lead.start_live(idle.clone());
    while !idle.0.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return Err(Failure::Timeout("device A live sync".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.expect("live-ready", deadline)?;
    for i in 0..ctx.edits {
        tokio::time::sleep(EDIT_GAP).await;
        let mut draft = a.get_contact(ids[0]).map_err(failed)?.fields;
        draft.note = format!("Nachtrag {}: {}", i + 1, draft.note);
        let stamp = unix_ms();
        a.update_contact(ids[0], draft).map_err(failed)?;
        loop {
            let seen = b.expect_num("changed", deadline)?;
            if seen >= stamp {
                run.live_ms.push(seen - stamp);
                break;
            }
        }
    }
    live.stop().await;
    Ok(())
}

fn streetsync(relay_bin: &Path, contacts: &[ContactDraft], budget: Duration, edits: usize) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ctx = Ctx::new(budget, edits);
    let mut run = Run::default();
    let result = rt.block_on(streetsync_steps(&mut ctx, &mut run, relay_bin, contacts));
    ctx.finish(&mut run, result);
    run
}

// ---- peer ------------------------------------------------------------------------------------

struct Peer {
    dir: PathBuf,
    versions: Vec<(String, String)>,
}

/// Checks node, installs the npm packages into `tests/peer/node_modules` if they are missing.
fn peer_setup(root: &Path) -> Result<Peer, String> {
    let dir = root.join("tests").join("peer");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node not found: {e}"))?;
    let node = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let installed = |p: &str| dir.join("node_modules").join(p).join("package.json");
    let packages = [
        "@automerge/automerge-repo",
        "@automerge/automerge-repo-network-websocket",
        "@automerge/automerge-repo-storage-nodefs",
        "@automerge/automerge",
        "ws",
    ];
    if !packages.iter().all(|p| installed(p).exists()) {
        println!("installing the peer's npm packages in {}", dir.display());
        let npm = |args: &[&str]| {
            Command::new("npm")
                .args(args)
                .args(["--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .map_err(|e| format!("npm not found: {e}"))
        };
        // `npm ci` installs exactly the lock file. It refuses the lock when an optional
        // dependency it names is missing from the registry (here: cbor-extract 2.2.3 names
        // platform packages of 2.2.3, and the registry snapshot holds 2.2.2 only); `npm install`
        // then installs the same locked versions and skips the optional ones, without rewriting
        // the lock (`--no-save`).
        let ci = npm(&["ci"])?;
        if !ci.success() {
            println!(
                "npm ci refused the lock file ({ci}); installing the locked versions with npm install"
            );
            let status = npm(&["install", "--no-save"])?;
            if !status.success() {
                return Err(format!("npm install failed: {status}"));
            }
        }
    }
    let mut versions = vec![("node".to_owned(), node)];
    for p in packages {
        let text = std::fs::read_to_string(installed(p)).map_err(|e| format!("{p}: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{p}: {e}"))?;
        versions.push((
            p.to_owned(),
            v["version"].as_str().unwrap_or("?").to_owned(),
        ));
    }
    Ok(Peer { dir, versions })
}

/// A setting of the peer's client, from the environment or the bench's default. The defaults give
/// the peer its best chance (docs/benchmarks.md):
/// - `SBS_PEER_CREATE_BATCH` (500): device A creates documents in batches and waits until the
///   server holds each batch. Creating 10,000 in one go floods the server until it crashes.
/// - `SBS_PEER_FIND_CONCURRENCY` (100): finds in flight on device B. Starting all at once (`0`)
///   blocks B's event loop long enough at 3,000 documents for the server to drop the connection,
///   and most documents come back unavailable; 100 at a time loads them all and is as fast at
///   1,000.
fn peer_env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn node(peer: &Peer, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(peer.dir.join(script)).args(args);
    cmd
}

fn peer_steps(
    ctx: &mut Ctx,
    run: &mut Run,
    peer: &Peer,
    n: usize,
    contacts: &Path,
) -> Result<(), Failure> {
    let deadline = ctx.step();
    let root = ctx.dir.path().to_owned();
    let s = |p: &str| root.join(p).to_string_lossy().into_owned();
    let server_dir = s("server");
    let server = node(peer, "server.mjs", &["0", &server_dir]);
    let server = ctx
        .server
        .insert(Proc::spawn(server, "peer-server", &root)?);
    let url = format!("ws://{}", server.expect("listening on", deadline)?);
    let (a_dir, b_dir, urls) = (s("a"), s("b"), s("urls.txt"));

    let mut create = node(
        peer,
        "client.mjs",
        &[
            &url,
            &a_dir,
            "create",
            &n.to_string(),
            &urls,
            &contacts.to_string_lossy(),
        ],
    );
    create.env(
        "SBS_PEER_CREATE_BATCH",
        peer_env("SBS_PEER_CREATE_BATCH", "500"),
    );
    let mut a = Proc::spawn(create, "peer-a-create", &root)?;
    run.create_ms = Some(a.expect_num("created", deadline)?);
    run.upload_ms = Some(a.expect_num("uploaded", deadline)?);
    a.expect("done", deadline)?;
    a.wait_exit(deadline)?;

    let deadline = ctx.step();
    let spawned = *ctx.b_spawned.insert(Instant::now());
    let mut load = node(peer, "client.mjs", &[&url, &b_dir, "load", &urls, "--live"]);
    load.env(
        "SBS_PEER_FIND_CONCURRENCY",
        peer_env("SBS_PEER_FIND_CONCURRENCY", "100"),
    );
    let mut b = Proc::spawn(load, "peer-b", &root)?;
    let loaded = b.expect("loaded", deadline)?;
    run.bootstrap_wall_ms = Some(ms(spawned));
    let nums: Vec<f64> = loaded
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if nums.len() < 3 || nums[1] as usize != n {
        let why = b
            .expect("first-error", Instant::now() + Duration::from_secs(1))
            .unwrap_or_default();
        return Err(failed(format!(
            "device B loaded `{loaded}` (ms ok failed) of {n}: {why}"
        )));
    }
    run.bootstrap_ms = Some(nums[0]);
    run.b_flush_ms = Some(b.expect_num("flushed", deadline)?);
    run.b_rss_mb = b.peak_rss_mb();
    run.b_disk = Some(dir_size(&root.join("b")));
    b.expect("live-ready", deadline)?;

    let deadline = ctx.step();
    let first = std::fs::read_to_string(&urls).map_err(failed)?;
    let first = first.lines().next().unwrap_or_default().to_owned();
    let edit = node(
        peer,
        "client.mjs",
        &[
            &url,
            &a_dir,
            "edit",
            &first,
            &ctx.edits.to_string(),
            &EDIT_GAP.as_millis().to_string(),
        ],
    );
    let mut e = Proc::spawn(edit, "peer-a-edit", &root)?;
    for _ in 0..ctx.edits {
        let stamp = e.expect_num("edit", deadline)?;
        loop {
            let seen = b.expect_num("changed", deadline)?;
            if seen >= stamp {
                run.live_ms.push(seen - stamp);
                break;
            }
        }
    }
    e.expect("done", deadline)?;
    Ok(())
}

fn peer_run(peer: &Peer, n: usize, contacts: &Path, budget: Duration, edits: usize) -> Run {
    let mut ctx = Ctx::new(budget, edits);
    let mut run = Run::default();
    let result = peer_steps(&mut ctx, &mut run, peer, n, contacts);
    ctx.finish(&mut run, result);
    run
}

// ---- setup and report ------------------------------------------------------------------------

/// A contact as the peer's document holds it: the values exactly as streetsync's `ContactDoc`
/// stores them (`HH:MM` times, vocabulary under its Automerge variant names).
fn doc_shape(d: &ContactDraft) -> Value {
    json!({
        "date": d.date.format("%Y-%m-%d").to_string(),
        "start_time": d.start_time.format("%H:%M").to_string(),
        "end_time": d.end_time.map(|t| t.format("%H:%M").to_string()),
        "area_id": d.area_id,
        "place": d.place,
        "setting": format!("{:?}", d.setting),
        "persons": d.persons,
        "first_contact": d.first_contact,
        "age_band": format!("{:?}", d.age_band),
        "gender": format!("{:?}", d.gender),
        "client_code": d.client_code,
        "housing": format!("{:?}", d.housing),
        "topics": d.topics,
        "interventions": d.interventions.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>(),
        "materials": d.materials.iter().map(|m| json!([m.material_id, m.count])).collect::<Vec<_>>(),
        "safeguarding": d.safeguarding,
        "note": d.note,
        "retention": format!("{:?}", d.retention),
    })
}

fn mb(bytes: Option<(u64, u64)>) -> Option<f64> {
    bytes.map(|(a, _)| a as f64 / 1e6)
}

fn cell(v: Option<f64>, scale: f64, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{:.*}", digits, v / scale))
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

struct Figures(BTreeMap<String, Value>);

impl Figures {
    fn add(
        &mut self,
        key: &str,
        value: impl Into<Value>,
        unit: &str,
        goal: Option<f64>,
        lower_is_better: bool,
    ) {
        self.0.insert(
            key.to_owned(),
            json!({"value": value.into(), "unit": unit, "goal": goal, "lower_is_better": lower_is_better}),
        );
    }

    fn opt(&mut self, key: &str, value: Option<f64>, unit: &str, digits: i32) {
        if let Some(v) = value {
            self.add(key, round(v, digits), unit, None, true);
        }
    }

    fn side(&mut self, side: &str, n: usize, r: &Run) {
        // Numbers only in the figures file: 1 when the side finished this N, 0 when it timed out
        // or failed (the reason is printed with the results table). The goal: streetsync
        // completes 10,000 contacts.
        let goal = (side == "streetsync" && n == 10_000).then_some(1.0);
        self.add(
            &format!("{side}_{n}_completed"),
            f64::from(u8::from(r.ok())),
            "bool",
            goal,
            false,
        );
        self.opt(&format!("{side}_{n}_create_ms"), r.create_ms, "ms", 1);
        self.opt(&format!("{side}_{n}_upload_ms"), r.upload_ms, "ms", 1);
        if let Some(v) = r.bootstrap_ms {
            // Issue 18's goals: 10,000 contacts in 1.5 s, 100,000 in 10 s.
            let goal = match (side, n) {
                ("streetsync", 10_000) => Some(1_500.0),
                ("streetsync", 100_000) => Some(10_000.0),
                _ => None,
            };
            self.add(
                &format!("{side}_{n}_bootstrap_ms"),
                round(v, 1),
                "ms",
                goal,
                true,
            );
        }
        if let (Some(v), ("streetsync", 100_000)) = (r.b_rss_mb, (side, n)) {
            self.add(
                &format!("{side}_{n}_b_bootstrap_rss_mb"),
                round(v, 1),
                "MB",
                Some(150.0),
                true,
            );
        }
        self.opt(
            &format!("{side}_{n}_bootstrap_wall_ms"),
            r.bootstrap_wall_ms,
            "ms",
            1,
        );
        self.opt(&format!("{side}_{n}_b_flush_ms"), r.b_flush_ms, "ms", 1);
        self.opt(
            &format!("{side}_{n}_live_median_ms"),
            median(&r.live_ms),
            "ms",
            2,
        );
        self.opt(
            &format!("{side}_{n}_server_disk_bytes"),
            r.server_disk.map(|d| d.0 as f64),
            "bytes",
            0,
        );
        self.opt(
            &format!("{side}_{n}_server_disk_allocated_bytes"),
            r.server_disk.map(|d| d.1 as f64),
            "bytes",
            0,
        );
        self.opt(
            &format!("{side}_{n}_b_disk_bytes"),
            r.b_disk.map(|d| d.0 as f64),
            "bytes",
            0,
        );
        self.opt(
            &format!("{side}_{n}_b_disk_allocated_bytes"),
            r.b_disk.map(|d| d.1 as f64),
            "bytes",
            0,
        );
        self.opt(
            &format!("{side}_{n}_server_peak_rss_mb"),
            r.server_rss_mb,
            "MB",
            1,
        );
        self.opt(&format!("{side}_{n}_b_peak_rss_mb"), r.b_rss_mb, "MB", 1);
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let ns: Vec<usize> = std::env::var("SIDE_BY_SIDE_NS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().replace('_', "").parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![100, 1_000, 3_000, 10_000]);
    let budget = Duration::from_secs(
        std::env::var("SIDE_BY_SIDE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600),
    );
    let edits: usize = std::env::var("SIDE_BY_SIDE_EDITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let relay_bin = streetsync_tests::relay_binary(true);
    // `SIDE_BY_SIDE_PEER=0` measures streetsync alone (profiling, scaling runs).
    let peer = if std::env::var("SIDE_BY_SIDE_PEER").is_ok_and(|v| v == "0") {
        Err("skipped (SIDE_BY_SIDE_PEER=0)".to_owned())
    } else {
        peer_setup(&root)
    };
    match &peer {
        Ok(p) => {
            let v: Vec<String> = p.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("peer: {}", v.join(", "));
        }
        Err(e) => println!("peer unavailable: {e}"),
    }

    // The same realistic contacts on both sides (the store bench's generator and seed).
    let max = ns.iter().copied().max().unwrap_or(0);
    let mut rng = fixtures::Rng(0x5eed_2025_0bad_cafe);
    let contacts: Vec<ContactDraft> = (0..max)
        .map(|_| {
            let day = rng.below(730) as u32;
            fixtures::draft(&mut rng, day)
        })
        .collect();
    let data = tempfile::tempdir().unwrap();
    let contacts_file = data.path().join("contacts.json");
    let shaped: Vec<Value> = contacts.iter().map(doc_shape).collect();
    std::fs::write(&contacts_file, serde_json::to_vec(&shaped).unwrap()).unwrap();

    let mut results = Vec::new();
    for &n in &ns {
        println!("\n== N = {n} (load average {})", load_average());
        let ours = streetsync(&relay_bin, &contacts[..n], budget, edits);
        println!("streetsync: {ours:?}");
        let theirs = match &peer {
            Ok(p) => peer_run(p, n, &contacts_file, budget, edits),
            Err(e) => Run {
                outcome: format!("failed: {e}"),
                ..Run::default()
            },
        };
        println!("peer:       {theirs:?}");
        results.push((n, ours, theirs, load_average()));
    }

    // The table.
    println!(
        "\n| N | side | result | create + upload (s) | bootstrap B (s) | live edit → B (ms, median) | relay/server disk (MB) | B disk (MB) | relay/server peak RSS (MB) | B peak RSS (MB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (n, ours, theirs, _) in &results {
        for (side, r) in [("streetsync", ours), ("automerge-repo", theirs)] {
            println!(
                "| {n} | {side} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.short(),
                cell(r.upload_ms, 1000.0, 2),
                cell(r.bootstrap_ms, 1000.0, 2),
                cell(median(&r.live_ms), 1.0, 1),
                cell(mb(r.server_disk), 1.0, 1),
                cell(mb(r.b_disk), 1.0, 1),
                cell(r.server_rss_mb, 1.0, 1),
                cell(r.b_rss_mb, 1.0, 1),
            );
        }
    }

    for (n, ours, theirs, _) in &results {
        for (side, r) in [("streetsync", ours), ("automerge-repo", theirs)] {
            if !r.ok() {
                println!("N = {n}, {side}: {}", r.outcome);
            }
        }
    }

    // Figures and ratios.
    let mut f = Figures(BTreeMap::new());
    let mut rss_ratios = Vec::new();
    let (mut our_live, mut peer_live) = (Vec::new(), Vec::new());
    println!();
    for (n, ours, theirs, _) in &results {
        f.side("streetsync", *n, ours);
        f.side("peer", *n, theirs);
        let goal = if matches!(n, 1_000 | 3_000) {
            Some(10.0)
        } else {
            None
        };
        if let Some(o) = ours.bootstrap_ms {
            // A peer that timed out loading had been loading at least that long: a lower bound.
            // One that crashed or never started loading has no time to compare.
            let key = format!("bootstrap_{n}_speedup");
            match (theirs.bootstrap_ms, theirs.bootstrap_waited_ms) {
                (Some(t), _) => {
                    println!("N = {n}: bootstrap speedup {:.1}x", t / o);
                    f.add(&key, round(t / o, 1), "x", goal, false);
                }
                (None, Some(waited)) if theirs.timed_out => {
                    println!(
                        "N = {n}: bootstrap speedup at least {:.1}x (peer timed out)",
                        waited / o
                    );
                    f.add(
                        &key,
                        round(waited / o, 1),
                        "x (lower bound: the peer timed out)",
                        goal,
                        false,
                    );
                }
                _ => {
                    println!(
                        "N = {n}: bootstrap speedup: none, the peer {}",
                        theirs.outcome
                    );
                    // No number to give: null, not a string, so readers of the figures file
                    // always find a number or nothing.
                    f.add(&key, Value::Null, "x", goal, false);
                }
            }
        }
        if let (Some(o), Some(t)) = (ours.server_rss_mb, theirs.server_rss_mb) {
            println!("N = {n}: relay RSS / peer server RSS = {:.3}", o / t);
            f.add(
                &format!("relay_rss_ratio_{n}"),
                round(o / t, 3),
                "ratio",
                Some(0.2),
                true,
            );
            if theirs.ok() {
                rss_ratios.push(o / t);
            }
        }
        if let (Some(o), Some(t)) = (ours.b_rss_mb, theirs.b_rss_mb) {
            f.add(
                &format!("device_b_rss_ratio_{n}"),
                round(o / t, 3),
                "ratio",
                None,
                true,
            );
        }
        if let (Some(o), Some(t)) = (mb(ours.server_disk), mb(theirs.server_disk)) {
            f.add(
                &format!("server_disk_ratio_{n}"),
                round(o / t, 3),
                "ratio",
                None,
                true,
            );
        }
        if let (Some(o), Some(t)) = (mb(ours.b_disk), mb(theirs.b_disk)) {
            f.add(
                &format!("device_b_disk_ratio_{n}"),
                round(o / t, 3),
                "ratio",
                None,
                true,
            );
        }
        our_live.extend(&ours.live_ms);
        peer_live.extend(&theirs.live_ms);
    }
    // Headline figures: the worst RSS ratio where the peer finished; live latency over all N.
    if let Some(worst) = rss_ratios.iter().copied().reduce(f64::max) {
        f.add(
            "relay_rss_ratio",
            round(worst, 3),
            "ratio (worst N the peer finished)",
            Some(0.2),
            true,
        );
    }
    let peer_live_median = median(&peer_live);
    if let Some(o) = median(&our_live) {
        f.add(
            "live_latency_ms",
            round(o, 2),
            "ms (median over all edits)",
            peer_live_median.map(|p| round(p, 2)),
            true,
        );
    }
    // Issue 18's goals for an edit to reach a teammate on loopback: p50 5 ms, p99 20 ms.
    if let Some(p50) = percentile(&our_live, 0.50) {
        f.add(
            "live_p50_ms",
            round(p50, 2),
            "ms (all edits)",
            Some(5.0),
            true,
        );
    }
    if let Some(p99) = percentile(&our_live, 0.99) {
        f.add(
            "live_p99_ms",
            round(p99, 2),
            "ms (all edits)",
            Some(20.0),
            true,
        );
    }
    if let Some(p) = peer_live_median {
        f.add(
            "peer_live_latency_ms",
            round(p, 2),
            "ms (median over all edits)",
            None,
            true,
        );
    }
    f.add(
        "load_average_at_end",
        load_average(),
        "1/5/15 min",
        None,
        true,
    );

    let text = serde_json::to_string_pretty(&f.0).unwrap();
    println!("side by side: {text}");
    let out = std::env::var("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|_| root.join("target"))
        .join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("side_by_side.json"), text).unwrap();
    println!("written to {}", out.join("side_by_side.json").display());
}
