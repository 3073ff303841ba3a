//! Printing: tables for people, JSON for scripts, progress bars only on a terminal.

use std::io::IsTerminal as _;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::error::CliResult;

/// A table with the client's look.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> CliResult<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Whether progress bars should be drawn (stderr is a terminal).
pub fn interactive_stderr() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether prompts can be asked (stdin and stderr are terminals).
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A progress bar on stderr, or a hidden one when piped or with `--json`.
pub fn progress(json: bool, message: &str) -> indicatif::ProgressBar {
    if json || !interactive_stderr() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:30.cyan/blue}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

/// The first 8 characters of an id, enough to name it on the command line.
pub fn short(id: &impl std::fmt::Display) -> String {
    id.to_string().chars().take(8).collect()
}

/// A date and time of unix milliseconds, local time.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// A text cut to `n` characters on one line.
pub fn clip(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > n {
        let mut c: String = one.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    } else {
        one
    }
}
