//! Numbered schema migrations of the device store.
//!
//! `PRAGMA user_version` holds the number of the last migration applied. Each migration is a SQL
//! file under `core/migrations/`, applied in order inside the opening transaction, so a store is
//! never left half-migrated. A store from a newer app is refused rather than guessed at.

use rusqlite::Transaction;

use crate::error::{Error, Result};

/// The migrations, in order. Migration `i` (1-based) brings a store from version `i-1` to `i`.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_sync.sql"),
    include_str!("../../migrations/0003_membership.sql"),
    include_str!("../../migrations/0004_sent_awaiting_echo.sql"),
    include_str!("../../migrations/0005_retention_log.sql"),
    include_str!("../../migrations/0006_lean_outbox.sql"),
    include_str!("../../migrations/0007_compact_records.sql"),
];

/// The first schema version whose outbox entries can point at their record's stored document
/// (migration 0006). Found by the migration's name, so its place in the list may change in a merge.
pub(crate) fn lean_outbox_version() -> u32 {
    MIGRATIONS
        .iter()
        .position(|m| m.starts_with("-- 0006"))
        .map_or(u32::MAX, |i| i as u32 + 1)
}

/// The first schema version whose documents and contact projections are in their compact forms
/// (migration 0007). A store opened at an older version (only tests do that, to build the stores
/// older apps left) is written as those apps wrote it.
pub(crate) fn compact_records_version() -> u32 {
    MIGRATIONS
        .iter()
        .position(|m| m.starts_with("-- 0007"))
        .map_or(u32::MAX, |i| i as u32 + 1)
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the store up to [`SCHEMA_VERSION`], applying migrations after `user_version` up to
/// `target` (all of them in normal use; tests stop early to build old stores).
pub(crate) fn migrate(tx: &Transaction<'_>, target: u32) -> Result<u32> {
    let current: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        if version > target {
            break;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
    }
    Ok(tx.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}
