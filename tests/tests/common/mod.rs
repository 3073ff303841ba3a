//! End-to-end harness: the real `streetsync-relay` binary on 127.0.0.1 (port 0), device stores
//! in temp dirs, and a small TCP proxy that can drop a reply on purpose.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod postgres;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use streetsync_core::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The real relay binary. `STREETSYNC_RELAY_BIN` names a prebuilt one (CI builds the workspace
/// first); otherwise it is built once per test process into its own target dir, so a stale binary
/// is never tested and the outer `cargo test` lock is never waited on.
pub fn relay_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| streetsync_tests::relay_binary(false))
        .clone()
}

/// A running relay process.
pub struct Relay {
    child: Option<Child>,
    /// With `STREETSYNC_TEST_RELAY_BACKEND=postgres`: two instances behind a proxy on `addr`.
    instances: Option<postgres::Instances>,
    pub addr: SocketAddr,
    pub data: PathBuf,
}

impl Relay {
    /// Starts a relay on a free port with its data in `data`.
    pub fn start(data: &Path) -> Relay {
        Self::start_on(data, "127.0.0.1:0")
    }

    pub fn start_on(data: &Path, bind: &str) -> Relay {
        Self::start_with_env(data, bind, &[])
    }

    /// Starts a relay with extra environment variables (the power-cut test's LD_PRELOAD shim).
    pub fn start_with_env(data: &Path, bind: &str, env: &[(&str, String)]) -> Relay {
        if postgres::enabled() {
            let (instances, addr) = postgres::Instances::start(&relay_binary(), data, bind);
            return Relay {
                child: None,
                instances: Some(instances),
                addr,
                data: data.to_owned(),
            };
        }
        let mut child = Command::new(relay_binary())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["--bind", bind, "--data-dir"])
            .arg(data)
            .args([
                "--rate-limit-per-sec",
                "100000",
                "--rate-limit-burst",
                "100000",
            ])
            .env("STREETSYNC_RELAY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected relay output: {line:?}"))
            .parse()
            .unwrap();
        Relay {
            child: Some(child),
            instances: None,
            addr,
            data: data.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id, to kill it from elsewhere.
    pub fn pid(&self) -> u32 {
        if let Some(instances) = &self.instances {
            return instances.pid();
        }
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, no chance to clean up (a no-op if it is already dead).
    pub fn kill(&mut self) {
        if let Some(mut instances) = self.instances.take() {
            instances.kill();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            c.wait().unwrap();
        }
    }

    /// Kill and start again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let bind = self.addr.to_string();
        // The port is free again once the process is gone; retry briefly if the OS is slow.
        for _ in 0..50 {
            let probe = std::net::TcpListener::bind(&bind);
            if probe.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *self = Relay::start_on(&self.data.clone(), &bind);
    }

    /// Every file of the relay's data directory, as bytes.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        assert!(
            self.instances.is_none(),
            "this test reads the relay's SQLite files; it is not one of the PostgreSQL subset"
        );
        std::fs::read_dir(&self.data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect()
    }

    /// The relay's SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        assert!(
            self.instances.is_none(),
            "this test reads the relay's SQLite file; it is not one of the PostgreSQL subset"
        );
        self.data.join("relay.sqlite3")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn key(n: u8) -> KeySource {
    KeySource::Key(StorageKey::from_bytes(&[n; 32]).unwrap())
}

pub fn setup() -> TeamSetup {
    TeamSetup {
        team_name: "Streetwork Mitte".into(),
        member_name: "Lea".into(),
        areas: vec!["Hauptbahnhof".into(), "Stadtpark".into(), "Südstadt".into()],
        topics: vec![],
        materials: vec![],
    }
}

/// One device: a store in a temp dir plus a sync client.
pub struct Device {
    pub ws: Arc<Workspace>,
    pub sync: SyncClient,
    pub name: String,
}

impl Device {
    pub fn open(dir: &Path, name: &str, url: &str) -> Device {
        let ws = Arc::new(Workspace::open(dir.join(format!("{name}.db")), key(9)).unwrap());
        Device {
            sync: SyncClient::new(ws.clone(), url).unwrap(),
            ws,
            name: name.into(),
        }
    }

    /// Point the device at another relay address (after a restart on a new port).
    pub fn reconnect(&mut self, url: &str) {
        self.sync = SyncClient::new(self.ws.clone(), url).unwrap();
    }

    pub fn with_options(dir: &Path, name: &str, url: &str, options: SyncOptions) -> Device {
        let ws = Arc::new(Workspace::open(dir.join(format!("{name}.db")), key(9)).unwrap());
        Device {
            sync: SyncClient::with_options(ws.clone(), url, options).unwrap(),
            ws,
            name: name.into(),
        }
    }

    pub fn contact(&self, day: u32, note: &str) -> Contact {
        let mut d = ContactDraft::new(
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(day as u64),
            NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            "hauptbahnhof",
        );
        d.note = note.into();
        d.place = format!("Nordausgang {}", self.name);
        self.ws.create_contact(d).unwrap()
    }

    pub fn all(&self) -> Vec<ContactSummary> {
        self.ws.contact_summaries().unwrap()
    }
}

/// A lead's device with a team, plus `workers` devices added to it and joined.
pub async fn team(dir: &Path, url: &str, workers: usize) -> Vec<Device> {
    team_with(dir, url, workers, SyncOptions::default()).await
}

pub async fn team_with(dir: &Path, url: &str, workers: usize, options: SyncOptions) -> Vec<Device> {
    let lead = Device::with_options(dir, "lead", url, options.clone());
    lead.ws.create_team(setup()).unwrap();
    lead.sync.sync_once(None).await.unwrap();
    let mut devices = vec![lead];
    for i in 0..workers {
        let w = join(
            dir,
            url,
            &devices[0],
            &format!("worker{i}"),
            options.clone(),
        )
        .await;
        devices.push(w);
    }
    // The lead puts the new devices on the roster; everyone learns the roster.
    devices[0].sync.sync_once(None).await.unwrap();
    for d in &devices[1..] {
        d.sync.sync_once(None).await.unwrap();
    }
    devices
}

/// A new device that joins the lead's team with a fresh invite.
pub async fn join(
    dir: &Path,
    url: &str,
    lead: &Device,
    name: &str,
    options: SyncOptions,
) -> Device {
    let invite = lead
        .sync
        .create_invite(name, Role::Worker, 3600)
        .await
        .unwrap();
    let d = Device::with_options(dir, name, url, options);
    d.sync.join_with_invite(&invite.code).await.unwrap();
    d
}

/// Everything every device holds, as comparable values.
pub fn state(d: &Device) -> Vec<(RecordId, String, i64)> {
    let mut v: Vec<_> = d
        .all()
        .into_iter()
        .map(|s| (s.id, s.note, s.persons))
        .collect();
    v.sort();
    v
}

/// A TCP proxy in front of the relay. When `drop_push_reply` is armed, the first reply to a
/// push request is swallowed and the connection closed, as if the network died right then.
pub struct Proxy {
    pub addr: SocketAddr,
    pub drop_push_reply: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let drop_push_reply = Arc::new(AtomicBool::new(false));
        let armed = drop_push_reply.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let armed = armed.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let saw_push = Arc::new(AtomicBool::new(false));
                    let saw = saw_push.clone();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let text = String::from_utf8_lossy(&buf[..n]);
                            if text.contains("POST ") && text.contains("/push ") {
                                saw.store(true, Ordering::SeqCst);
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if saw_push.load(Ordering::SeqCst) && armed.swap(false, Ordering::SeqCst) {
                            // The relay has processed the push; the device never hears of it.
                            break;
                        }
                        saw_push.store(false, Ordering::SeqCst);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Proxy {
            addr,
            drop_push_reply,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS-terminating proxy (as nginx or caddy would be in production) in front of the relay, with
/// a certificate for `localhost` made for this test; `cert_pem` is what a device must trust.
pub struct TlsProxy {
    pub port: u16,
    pub cert_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(upstream: SocketAddr) -> TlsProxy {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_pem = certified.cert.pem();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsProxy {
            port,
            cert_pem,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP client for poking the relay directly (reqwest is built without a default TLS
/// provider, so one is installed first).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A proxy that misbehaves at random, like a train's mobile network: for every chunk a device
/// sends it passes it, delays it, resets the connection, sends the whole request it starts to the
/// relay a second time on another connection, or lets the relay's reply be cut short. `calm()` makes it a plain pipe again.
pub struct ChaosProxy {
    pub addr: SocketAddr,
    calm: Arc<AtomicBool>,
    pub faults: Arc<std::sync::atomic::AtomicU64>,
    /// Whole requests the duplicate fault sent to the relay a second time.
    pub duplicated: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The value of one series of the relay's `/metrics`, named without the `streetsync_relay_` prefix
/// (e.g. `errors_total{code="replayed"}`); 0 when the series does not exist yet.
pub async fn relay_metric(url: &str, series: &str) -> u64 {
    let text = http()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("streetsync_relay_")?
                .strip_prefix(series)?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0, |v| v as u64)
}

/// Whether `buf` starts with a whole HTTP/1.1 request (headers and `Content-Length` body).
fn whole_request(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    u32::from_le_bytes(b)
}

impl ChaosProxy {
    pub async fn start(upstream: SocketAddr) -> ChaosProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calm = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let duplicated = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (calm2, faults2, dup2) = (calm.clone(), faults.clone(), duplicated.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(chaos_connection(
                    client,
                    upstream,
                    calm2.clone(),
                    faults2.clone(),
                    dup2.clone(),
                ));
            }
        });
        ChaosProxy {
            addr,
            calm,
            faults,
            duplicated,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calm(&self) {
        self.calm.store(true, Ordering::SeqCst);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn chaos_connection(
    client: tokio::net::TcpStream,
    upstream: SocketAddr,
    calm: Arc<AtomicBool>,
    faults: Arc<std::sync::atomic::AtomicU64>,
    duplicated: Arc<std::sync::atomic::AtomicU64>,
) {
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let reset = Arc::new(tokio::sync::Notify::new());
    let (cut2, reset2) = (cut.clone(), reset.clone());
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        // The request being copied for the duplicate fault, until it is whole.
        let mut copy: Option<Vec<u8>> = None;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // 0-4: pass, 5: delay, 6: cut the reply, 7: reset, 8: duplicate.
            let action = if calm.load(Ordering::SeqCst) {
                0
            } else {
                random_u32() % 9
            };
            if action >= 5 {
                faults.fetch_add(1, Ordering::Relaxed);
            }
            match action {
                5 => tokio::time::sleep(Duration::from_millis(u64::from(random_u32() % 300))).await,
                6 => cut2.store(true, Ordering::SeqCst),
                7 => break,
                // Only at the start of a request; the copy grows until the request is whole.
                8 if copy.is_none()
                    && [&b"GET "[..], b"POST ", b"PUT ", b"DELETE "]
                        .iter()
                        .any(|m| buf[..n].starts_with(m)) =>
                {
                    copy = Some(Vec::new());
                }
                _ => {}
            }
            if let Some(c) = copy.as_mut() {
                c.extend_from_slice(&buf[..n]);
                if whole_request(c) {
                    let request = copy.take().unwrap_or_default();
                    let duplicated = duplicated.clone();
                    tokio::spawn(async move {
                        if let Ok(mut s) = tokio::net::TcpStream::connect(upstream).await
                            && s.write_all(&request).await.is_ok()
                        {
                            duplicated.fetch_add(1, Ordering::Relaxed);
                            let mut sink = vec![0u8; 4096];
                            let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut sink))
                                .await;
                        }
                    });
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        reset2.notify_one();
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = sr.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = reset.notified() => break,
        };
        if cut.swap(false, Ordering::SeqCst) {
            let keep = 1 + (random_u32() as usize % n.max(1));
            let _ = cw.write_all(&buf[..keep.min(n)]).await;
            break;
        }
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
}
