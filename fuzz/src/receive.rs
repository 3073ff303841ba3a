//! Receiving a teammate's Automerge bytes for a record the device already holds.
//!
//! This re-implements nothing: it hands the bytes to `streetsync_core::testing::merge_into_document`,
//! which runs the device's own receive path (`engine::remote::check_foreign` over
//! `doc::foreign`: pre-check, guarded `load_incremental`, missing dependencies, the authorship
//! check on the new changes' actors, kind, review rule, hydration, reload check) against real
//! documents made by `streetsync_core` (the seeds `fuzz/seeds/document/base-*.automerge`). A panic
//! that escapes it is a bug in the device's code, not only in Automerge.

/// Real documents: a contact with every field set, a client, and a team with a partner.
const BASES: [&[u8]; 3] = [
    include_bytes!("../seeds/document/base-contact.automerge"),
    include_bytes!("../seeds/document/base-client.automerge"),
    include_bytes!("../seeds/document/base-team.automerge"),
];

/// Merges `data` (with valid chunk checksums, see `targets::with_valid_checksums`) into one of the
/// base documents (chosen by the input's length) as a device does.
pub fn merge_into_existing(data: &[u8]) {
    let fixed = crate::targets::with_valid_checksums(data);
    let data = fixed.as_deref().unwrap_or(data);
    let base = BASES[data.len() % BASES.len()];
    let _ = streetsync_core::testing::merge_into_document(base, data);
}

thread_local! {
    static CURRENT_INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Remembers the input being run, so a caught panic can be saved with it.
pub fn set_current_input(data: &[u8]) {
    CURRENT_INPUT.with(|c| {
        let mut c = c.borrow_mut();
        c.clear();
        c.extend_from_slice(data);
    });
}

/// Replaces libFuzzer's panic hook (which aborts at once, before any `catch_unwind`) with one that
/// lets a panic unwind, so the guards of the receive path work as they do on a device. The first
/// panic at each source location is printed, and its input saved as
/// `fuzz/artifacts/document/caught-<file>-<line>` (a regression fixture: caught today, but a bug in
/// the library). A panic that escapes the target still ends the run: the `fuzz_target!` wrapper
/// aborts on it, and libFuzzer saves the input.
pub fn let_guarded_panics_unwind() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    std::panic::set_hook(Box::new(|info| {
        let (file, line) = info
            .location()
            .map(|l| (l.file().to_string(), l.line()))
            .unwrap_or_default();
        let at = format!("{file}:{line}");
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(at.clone()) {
            eprintln!("panic at {at}: {info}");
            // `.../automerge-0.12.0/src/...` names the crate `automerge`: fixture names stay the
            // same whichever registry path or version the build used.
            let crate_dir = file
                .rsplit_once("/src/")
                .and_then(|(d, _)| d.rsplit('/').next())
                .unwrap_or("streetsync");
            let crate_dir = crate_dir
                .match_indices('-')
                .find(|(i, _)| {
                    crate_dir[i + 1..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
                })
                .map_or(crate_dir, |(i, _)| &crate_dir[..i]);
            let base = std::path::Path::new(&file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/document");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("caught-{crate_dir}-{base}-{line}"));
            CURRENT_INPUT.with(|c| {
                if let Ok(c) = c.try_borrow() {
                    let _ = std::fs::write(path, &*c);
                }
            });
        }
    }));
}
