//! The relay on PostgreSQL with two instances, for the end-to-end suites (issue 16).
//!
//! With `STREETSYNC_TEST_RELAY_BACKEND=postgres`, [`super::Relay`] starts two relay processes on
//! one database of the test cluster (`STREETSYNC_TEST_DATABASE_URL`) behind a round-robin TCP
//! proxy on the address the tests use: consecutive connections of one device land on different
//! instances, so a push on one must reach a live socket on the other. The database's URL is kept
//! in the data directory, so a restart finds the same database.

use std::io::{BufRead as _, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Whether the end-to-end suites run against PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("STREETSYNC_TEST_RELAY_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The database of the relay whose data directory is `data`: created on first use.
fn database_url(data: &Path) -> String {
    let file = data.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    let cluster = std::env::var("STREETSYNC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "STREETSYNC_TEST_RELAY_BACKEND=postgres needs STREETSYNC_TEST_DATABASE_URL \
             (tests/postgres/cluster.sh start DIR prints it; tests/run-all.sh exports it)"
        )
    });
    let mut id = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).unwrap();
    let db = format!("e2e_{}", hex::encode(id));
    let status = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", &cluster, "-c"])
        .arg(format!("CREATE DATABASE {db}"))
        .status()
        .expect("psql (the PostgreSQL client) is needed to create the test database");
    assert!(status.success(), "creating {db} on {cluster} failed");
    let (base, query) = cluster.split_once('?').unwrap_or((&cluster, ""));
    let server = base.rsplit_once('/').unwrap().0;
    let url = if query.is_empty() {
        format!("{server}/{db}")
    } else {
        format!("{server}/{db}?{query}")
    };
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&file, &url).unwrap();
    url
}

/// Two relay instances and the proxy in front of them.
pub struct Instances {
    children: Vec<Child>,
    proxy: RoundRobin,
}

impl Instances {
    /// Starts both instances and the proxy on `bind`; the proxy's address.
    pub fn start(relay: &Path, data: &Path, bind: &str) -> (Instances, SocketAddr) {
        let url = database_url(data);
        let mut children = Vec::new();
        let mut upstreams = Vec::new();
        for _ in 0..2 {
            let mut child = Command::new(relay)
                .args(["--bind", "127.0.0.1:0", "--database-url", &url])
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
            let addr: SocketAddr = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected relay output: {line:?}"))
                .parse()
                .unwrap();
            children.push(child);
            upstreams.push(addr);
        }
        let proxy = RoundRobin::start(bind, upstreams);
        let addr = proxy.addr;
        (Instances { children, proxy }, addr)
    }

    /// The first instance's process id (a test that kills "the relay" kills one instance; the
    /// proxy then sends everything to the other).
    pub fn pid(&self) -> u32 {
        self.children.first().map_or(0, Child::id)
    }

    /// SIGKILL both instances and stop the proxy, freeing its port.
    pub fn kill(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.proxy.stop();
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy that hands each new connection to the next instance that accepts it.
struct RoundRobin {
    addr: SocketAddr,
    stopped: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl RoundRobin {
    fn start(bind: &str, upstreams: Vec<SocketAddr>) -> RoundRobin {
        let mut listener = None;
        // After a restart the old port may take a moment to be free.
        for _ in 0..50 {
            match TcpListener::bind(bind) {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        let listener = listener.unwrap_or_else(|| panic!("cannot bind the proxy on {bind}"));
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let next = AtomicUsize::new(0);
        let (stop, conns) = (Arc::clone(&stopped), Arc::clone(&open));
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let upstream = (0..upstreams.len()).find_map(|k| {
                    TcpStream::connect(upstreams[(first + k) % upstreams.len()]).ok()
                });
                let Some(upstream) = upstream else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                {
                    let mut conns = conns.lock().unwrap();
                    conns.retain(|s: &TcpStream| s.peer_addr().is_ok());
                    conns.push(client.try_clone().unwrap());
                    conns.push(upstream.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        RoundRobin {
            addr,
            stopped,
            open,
            accept: Some(accept),
        }
    }

    fn stop(&mut self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wakes the accept loop, which then drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
