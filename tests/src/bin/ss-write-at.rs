//! `ss-write-at <file> <offset> <len> <byte> [sync]`: writes `len` copies of `byte` at `offset`
//! of `file` (created when missing) with one `pwrite`, then `fsync`s it when `sync` is given. The
//! power-cut harness test (`tests/tests/crash.rs`) runs it under `powercut.so` to show that the
//! simulated power cut takes away exactly the writes that were not synced, on a plain file
//! without SQLite in between.

use std::os::unix::fs::FileExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ss-write-at: {e}");
            eprintln!("usage: ss-write-at <file> <offset> <len> <byte> [sync]");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [file, offset, len, byte, rest @ ..] = args else {
        return Err("missing arguments".into());
    };
    let sync = match rest {
        [] => false,
        [s] if s == "sync" => true,
        _ => return Err(format!("unexpected arguments {rest:?}").into()),
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(file)?;
    let bytes = vec![byte.parse::<u8>()?; len.parse()?];
    f.write_all_at(&bytes, offset.parse()?)?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}
