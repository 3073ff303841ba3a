//! Turning command-line text into core values, shared by the command groups: the fixed
//! vocabulary (`--age 18_20`), material counts (`essen=2`), contact ids given by their first
//! characters, and today's date and time for arguments left out.
//!
//! Each parser names the flag and the accepted values in its error, so a refused value tells the
//! user what to type instead.

use std::str::FromStr as _;

use chrono::{Local, NaiveDate, Timelike as _};
use streetsync_core::{AgeBand, Gender, Housing, Intervention, ReviewState, Setting};
use streetsync_core::{MaterialCount, RecordId, Workspace};

use crate::error::{CliError, CliResult};

/// Parses one value of the fixed vocabulary; the error lists every accepted key.
fn vocab<T: Copy>(
    flag: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> CliResult<T> {
    parse(value.trim()).ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        CliError::invalid(format!(
            "--{flag} '{value}' is not known; use one of: {}",
            known.join(", ")
        ))
    })
}

/// Parses `--setting`.
pub(super) fn setting(v: &str) -> CliResult<Setting> {
    vocab(
        "setting",
        v,
        Setting::from_key,
        Setting::ALL,
        Setting::as_str,
    )
}

/// Parses `--age`.
pub(super) fn age(v: &str) -> CliResult<AgeBand> {
    vocab("age", v, AgeBand::from_key, AgeBand::ALL, AgeBand::as_str)
}

/// Parses `--gender`.
pub(super) fn gender(v: &str) -> CliResult<Gender> {
    vocab("gender", v, Gender::from_key, Gender::ALL, Gender::as_str)
}

/// Parses `--housing`.
pub(super) fn housing(v: &str) -> CliResult<Housing> {
    vocab(
        "housing",
        v,
        Housing::from_key,
        Housing::ALL,
        Housing::as_str,
    )
}

/// Parses `--intervention`.
pub(super) fn intervention(v: &str) -> CliResult<Intervention> {
    vocab(
        "intervention",
        v,
        Intervention::from_key,
        Intervention::ALL,
        Intervention::as_str,
    )
}

/// Parses `--review`.
pub(super) fn review_state(v: &str) -> CliResult<ReviewState> {
    vocab(
        "review",
        v,
        ReviewState::from_key,
        ReviewState::ALL,
        ReviewState::as_str,
    )
}

/// Parses `--material id=count`.
pub(super) fn material(v: &str) -> CliResult<MaterialCount> {
    let (id, count) = v.split_once('=').ok_or_else(|| {
        CliError::invalid(format!(
            "--material '{v}' needs a count, written as id=count (e.g. essen=2)"
        ))
    })?;
    let count: i64 = count.trim().parse().map_err(|_| {
        CliError::invalid(format!("--material '{v}': '{count}' is not a whole number"))
    })?;
    Ok(MaterialCount {
        material_id: id.trim().to_owned(),
        count,
    })
}

/// Finds a contact by its id or the first characters of it.
pub(super) fn resolve_contact(ws: &Workspace, text: &str) -> CliResult<RecordId> {
    let t = text.trim().to_lowercase();
    if let Ok(id) = RecordId::from_str(&t) {
        return Ok(id);
    }
    if t.len() < 4 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CliError::invalid(format!(
            "'{text}' is not a contact id; give at least the first 4 characters shown by `contact list`"
        )));
    }
    let hits: Vec<RecordId> = ws
        .contact_summaries()?
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id.to_string().starts_with(&t))
        .collect();
    match hits.as_slice() {
        [id] => Ok(*id),
        [] => Err(CliError::not_found(format!("no contact with id '{text}'"))),
        _ => Err(CliError::invalid(format!(
            "'{text}' matches {} contacts; give more characters of the id",
            hits.len()
        ))),
    }
}

/// Today in local time: the default date of a contact and of a consent.
pub(super) fn today() -> NaiveDate {
    Local::now().date_naive()
}

/// Now in local time, to the minute: the default start of a contact.
pub(super) fn now_time() -> chrono::NaiveTime {
    let t = Local::now().time();
    chrono::NaiveTime::from_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t)
}
