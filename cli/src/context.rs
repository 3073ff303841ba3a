//! Opening the store: where it is, the passphrase, and the relay address remembered next to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streetsync_core::{KeySource, SyncClient, Workspace};
use zeroize::Zeroizing;

use crate::args::Global;
use crate::error::{CliError, CliResult};

/// PBKDF2 iterations for new stores (the core's recommendation).
const ITERATIONS: u32 = 600_000;
/// Test suites may lower the iterations of NEW stores with this variable (never below
/// [`MIN_TEST_ITERATIONS`]); an existing store always keeps the count it was made with. Only debug
/// builds (the test suite's) honour it: a release build always uses the full count.
const TEST_ITERATIONS_ENV: &str = "STREETSYNC_TEST_KDF_ITERATIONS";
/// The floor of [`TEST_ITERATIONS_ENV`].
const MIN_TEST_ITERATIONS: u32 = 1_000;

/// The PBKDF2 iterations for a new store (the demo's kept stores use them too).
pub(crate) fn iterations() -> u32 {
    if !cfg!(debug_assertions) {
        return ITERATIONS;
    }
    std::env::var(TEST_ITERATIONS_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(ITERATIONS, |n| n.max(MIN_TEST_ITERATIONS))
}

/// Deletes a store created by a command that then failed (init, join), so a refused command
/// leaves nothing behind. Disarm it once the command succeeded.
pub struct NewStoreGuard {
    path: Option<PathBuf>,
}

impl NewStoreGuard {
    /// Guards `path` if it does not exist yet.
    pub fn new(path: &Path) -> Self {
        Self {
            path: (!path.exists()).then(|| path.to_owned()),
        }
    }

    /// Keeps the store.
    pub fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for NewStoreGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut f = p.as_os_str().to_owned();
                f.push(suffix);
                let _ = std::fs::remove_file(f);
            }
            let _ = std::fs::remove_file(settings_path(p));
        }
    }
}

/// The small settings file next to the store (`<store>.config.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// The relay's address.
    pub relay: Option<String>,
}

/// Where the settings of `store` live.
pub fn settings_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".config.json");
    PathBuf::from(name)
}

/// Reads the settings (empty when there are none yet).
pub fn read_settings(store: &Path) -> CliResult<Settings> {
    match std::fs::read(settings_path(store)) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            CliError::other(format!(
                "the settings file {} is damaged ({e}); delete it and give --relay again",
                settings_path(store).display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(e.into()),
    }
}

/// The passphrase from `--passphrase-file` or `STREETSYNC_PASSPHRASE`.
fn passphrase(global: &Global) -> CliResult<Zeroizing<String>> {
    let p = if let Some(file) = &global.passphrase_file {
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
            CliError::invalid(format!(
                "cannot read the passphrase file {}: {e}",
                file.display()
            ))
        })?);
        Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
    } else {
        match std::env::var("STREETSYNC_PASSPHRASE") {
            Ok(p) => Zeroizing::new(p),
            Err(_) => {
                return Err(CliError::invalid(
                    "no passphrase: set STREETSYNC_PASSPHRASE or give --passphrase-file FILE",
                ));
            }
        }
    };
    if p.trim().is_empty() {
        return Err(CliError::invalid("the passphrase is empty"));
    }
    Ok(p)
}

/// Everything a command needs.
pub struct Context {
    /// Global options.
    pub global: Global,
}

impl Context {
    /// Opens the store; `create` allows a new file (init, join), otherwise a missing store is an
    /// error and no file is created.
    pub fn open(&self, create: bool) -> CliResult<Arc<Workspace>> {
        let path = &self.global.store;
        if !create && !path.exists() {
            return Err(CliError::not_found(format!(
                "there is no store at {}: create a team with `streetsync init` or join one with `streetsync join CODE` (or give --store)",
                path.display()
            )));
        }
        let key = KeySource::Passphrase {
            passphrase: passphrase(&self.global)?,
            iterations: iterations(),
        };
        Ok(Arc::new(Workspace::open(path, key)?))
    }

    /// Opens an existing store for the desk: like [`Context::open`], but when neither
    /// `--passphrase-file` nor `STREETSYNC_PASSPHRASE` gives the passphrase and a person sits at
    /// the terminal, it asks for it (without echo).
    pub fn open_or_prompt(&self) -> CliResult<Arc<Workspace>> {
        let given = self.global.passphrase_file.is_some()
            || std::env::var_os("STREETSYNC_PASSPHRASE").is_some();
        if given || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return self.open(false);
        }
        let path = &self.global.store;
        if !path.exists() {
            return self.open(false);
        }
        let p = Zeroizing::new(
            dialoguer::Password::new()
                .with_prompt(format!("Passphrase for {}", path.display()))
                .interact()
                .map_err(|e| CliError::invalid(format!("no passphrase given ({e})")))?,
        );
        Ok(Arc::new(open_store(path, &p)?))
    }

    /// The relay address: `--relay` (then remembered) or the remembered one.
    pub fn relay(&self) -> CliResult<String> {
        if let Some(url) = &self.global.relay {
            let url = url.trim().trim_end_matches('/').to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(CliError::invalid(format!(
                    "'{url}' is not a relay address; it looks like http://host:7878"
                )));
            }
            return Ok(url);
        }
        read_settings(&self.global.store)?.relay.ok_or_else(|| {
            CliError::invalid(
                "no relay address known for this store: give --relay URL once (or set STREETSYNC_RELAY)",
            )
        })
    }

    /// Remembers the relay address next to the store (after it worked).
    pub fn remember_relay(&self, url: &str) -> CliResult<()> {
        let mut s = read_settings(&self.global.store)?;
        if s.relay.as_deref() == Some(url) {
            return Ok(());
        }
        s.relay = Some(url.to_owned());
        std::fs::write(
            settings_path(&self.global.store),
            serde_json::to_vec_pretty(&s)?,
        )?;
        Ok(())
    }

    /// A sync client for the store and relay.
    pub fn sync_client(&self, ws: &Arc<Workspace>) -> CliResult<(SyncClient, String)> {
        let url = self.relay()?;
        Ok((SyncClient::new(ws.clone(), &url)?, url))
    }
}

/// Opens the existing store at `path` with `passphrase` (the desk's unlock page uses this too).
pub fn open_store(path: &Path, passphrase: &str) -> streetsync_core::Result<Workspace> {
    Workspace::open(
        path,
        KeySource::Passphrase {
            passphrase: Zeroizing::new(passphrase.to_owned()),
            iterations: iterations(),
        },
    )
}

/// A tokio runtime for the network commands.
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::other(format!("cannot start the network runtime: {e}")))
}
