//! Retention for the host: the team's periods, the contacts due for deletion with their dates,
//! a lead's confirmation that erases them (the same erasure as `erase_record`), marking a
//! statistics period as reported, and this device's audit trail of retention erasures.
//!
//! The periods live in the core's Team document (leads only); the defaults are a starting point,
//! not legal advice.

use streetsync_core as sc;

use crate::Result;
use crate::contact::RetentionClass;
use crate::dates::{fmt_date, parse_date};
use crate::error::guard;
use crate::mirror::mirror_enum;
use crate::workspace::Workspace;

mirror_enum!(
    /// When a lead's device erases the records past their period.
    RetentionMode = sc::RetentionMode {
        /// After a lead confirms the list (the default).
        AfterConfirmation,
        /// On a lead's first sync of each day, without asking.
        Automatic,
    }
);

/// The team's retention periods, in days after the day of the contact.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RetentionPolicy {
    /// Routine contacts.
    pub standard_days: u32,
    /// Child-protection contacts (and any contact flagged as a concern); never shorter than the
    /// other periods.
    pub safeguarding_days: u32,
    /// The longest a `short` contact is kept if its period is never marked as reported.
    pub short_days: u32,
    /// Automatic or after confirmation.
    pub mode: RetentionMode,
}

impl From<sc::RetentionPolicy> for RetentionPolicy {
    fn from(p: sc::RetentionPolicy) -> Self {
        RetentionPolicy {
            standard_days: p.standard_days,
            safeguarding_days: p.safeguarding_days,
            short_days: p.short_days,
            mode: p.mode.into(),
        }
    }
}

impl From<RetentionPolicy> for sc::RetentionPolicy {
    fn from(p: RetentionPolicy) -> Self {
        sc::RetentionPolicy {
            standard_days: p.standard_days,
            safeguarding_days: p.safeguarding_days,
            short_days: p.short_days,
            mode: p.mode.into(),
        }
    }
}

/// A contact due for deletion, and when.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DueRecord {
    /// The contact's id.
    pub id: String,
    /// The day of the contact (`2026-01-10`).
    pub date: String,
    /// The class that decides its period.
    pub retention: RetentionClass,
    /// The first day it may be erased.
    pub due_on: String,
}

impl From<sc::DueRecord> for DueRecord {
    fn from(d: sc::DueRecord) -> Self {
        DueRecord {
            id: d.id.to_string(),
            date: fmt_date(d.date),
            retention: d.class.into(),
            due_on: fmt_date(d.due_on),
        }
    }
}

/// What one retention run erased: counts and ids, never content.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RetentionAudit {
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// The lead device that erased.
    pub device_id: String,
    /// `daily_sync` or `confirmed`.
    pub trigger: String,
    /// Standard contacts erased.
    pub standard: u64,
    /// Child-protection contacts erased.
    pub safeguarding: u64,
    /// Short contacts erased.
    pub short: u64,
    /// The erased contacts' ids.
    pub record_ids: Vec<String>,
}

impl From<sc::RetentionAudit> for RetentionAudit {
    fn from(a: sc::RetentionAudit) -> Self {
        RetentionAudit {
            at_ms: a.at_ms,
            device_id: a.device.to_string(),
            trigger: a.trigger.as_str().to_owned(),
            standard: a.standard,
            safeguarding: a.safeguarding,
            short: a.short,
            record_ids: a.records.iter().map(ToString::to_string).collect(),
        }
    }
}

#[uniffi::export]
impl Workspace {
    /// The team's retention periods and mode.
    pub fn retention_policy(&self) -> Result<RetentionPolicy> {
        guard(|| Ok(self.inner.team()?.retention.into()))
    }

    /// Sets the team's retention periods and mode (leads only; `Invalid` if the child-protection
    /// period is shorter than another).
    pub fn set_retention_policy(&self, policy: RetentionPolicy) -> Result<()> {
        guard(|| Ok(self.inner.set_retention_policy(policy.into())?))
    }

    /// The contacts due for deletion on or before `until_date` (`"2026-12-31"`), earliest first,
    /// with the day each is due. Blocking, fast (reads projections only).
    pub fn retention_due(&self, until_date: String) -> Result<Vec<DueRecord>> {
        guard(|| {
            let until = parse_date("until_date", &until_date)?;
            Ok(self
                .inner
                .retention_due(until)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Erases every contact due today, everywhere (leads only; the tombstones go out with the next
    /// sync). `None` if nothing was due. Cannot be undone.
    pub fn erase_due_records(&self) -> Result<Option<RetentionAudit>> {
        guard(|| Ok(self.inner.erase_due_records()?.map(Into::into)))
    }

    /// Marks the statistics of a finished period as produced and sent (leads only): `short`
    /// contacts of those days become due for deletion.
    pub fn mark_statistics_reported(&self, from_date: String, to_date: String) -> Result<()> {
        guard(|| {
            let from = parse_date("from_date", &from_date)?;
            let to = parse_date("to_date", &to_date)?;
            self.inner.mark_statistics_reported(from, to)?;
            Ok(())
        })
    }

    /// This device's retention audit trail, oldest first.
    pub fn retention_log(&self) -> Result<Vec<RetentionAudit>> {
        guard(|| {
            Ok(self
                .inner
                .retention_log()?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }
}
