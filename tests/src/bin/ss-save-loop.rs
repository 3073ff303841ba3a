//! `ss-save-loop <store>`: opens the store (whose team must already exist) with the crash-test key
//! and saves realistic contacts forever. After each `create_contact` returns, i.e. once the save is
//! durable, a line `<id> <draft as JSON>` is printed and stdout is flushed. The crash tests kill
//! this process with SIGKILL at a random moment (with a simulated power cut after it, in the
//! power-cut test) and then check that every printed contact is there with exactly those fields.

use std::io::Write;
use std::process::ExitCode;

use streetsync_core::{KeySource, StorageKey, Workspace};

#[path = "../../../core/tests/common/mod.rs"]
mod common;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: ss-save-loop <store>");
        return ExitCode::from(2);
    };
    match run(std::path::Path::new(&path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ss-save-loop: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let key = StorageKey::from_bytes(&streetsync_tests::CRASH_KEY)?;
    let ws = Workspace::open(path, KeySource::Key(key))?;
    // Seeded from the clock and pid so every round writes different data.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let seed = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    let mut rng = common::Rng(seed);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let day = rng.below(730) as u32;
        let mut draft = common::draft(&mut rng, day);
        // The store keeps each topic once; the printed draft is what must come back.
        draft.topics.dedup();
        let contact = ws.create_contact(draft.clone())?;
        writeln!(out, "{} {}", contact.id, serde_json::to_string(&draft)?)?;
        out.flush()?;
    }
}
