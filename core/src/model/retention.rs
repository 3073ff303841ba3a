//! Retention periods: how long each [`RetentionClass`] of contact is kept before a lead's device
//! erases it everywhere (the same erasure as a GDPR Art. 17 request), and which records are due.
//!
//! The periods live in the Team document, so only leads set them and every device computes the
//! same dates. The numbers in [`RetentionPolicy::default`] are defaults a team starts from, not
//! legal advice: the team (with its data protection officer) sets the periods its funders, its
//! organisation and the law require.
//!
//! - `standard`: kept [`RetentionPolicy::standard_days`] after the day of the contact.
//! - `safeguarding`: kept [`RetentionPolicy::safeguarding_days`], which is never shorter than any
//!   other period. A contact with the child-protection flag (§ 8a SGB VIII) is treated as
//!   `safeguarding` whatever class it carries, so no shorter class removes it.
//! - `short`: kept until the statistics of a period covering its day have been produced and a
//!   lead marked that period as reported ([`ReportedPeriod`]); at most
//!   [`RetentionPolicy::short_days`], so a report that is never marked does not keep it for ever.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use streetsync_wire::{DeviceId, RecordId};

use crate::error::ValidationError;
use crate::model::vocab::RetentionClass;

/// The longest period accepted, in days (a hundred years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// When a lead's device erases the records past their period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// A lead looks at the list of records due for deletion and confirms it (the default: nothing
    /// is deleted without a person's word until the team decides otherwise).
    #[default]
    AfterConfirmation,
    /// A lead's device erases them on its first sync of each day, without asking.
    Automatic,
}

impl RetentionMode {
    /// The snake-case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::AfterConfirmation => "after_confirmation",
            RetentionMode::Automatic => "automatic",
        }
    }

    /// Reads a name back; unknown names mean the safe choice, confirmation.
    pub fn parse(s: &str) -> Self {
        match s {
            "automatic" => RetentionMode::Automatic,
            _ => RetentionMode::AfterConfirmation,
        }
    }
}

/// The team's retention periods, in days after the day of the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Routine contacts. Default 3 years (1,095 days).
    pub standard_days: u32,
    /// Child-protection cases; never shorter than the other periods. Default 10 years.
    pub safeguarding_days: u32,
    /// The longest a `short` contact is kept when its period is never marked as reported.
    /// Default 400 days (a yearly report and some weeks to write it).
    pub short_days: u32,
    /// Automatic on the daily sync, or after a lead confirms.
    pub mode: RetentionMode,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            standard_days: 1_095,
            safeguarding_days: 3_650,
            short_days: 400,
            mode: RetentionMode::AfterConfirmation,
        }
    }
}

impl RetentionPolicy {
    /// Whether these are the defaults (the team never set its own).
    pub fn is_default(&self) -> bool {
        *self == RetentionPolicy::default()
    }

    /// Refuses periods of zero or over [`MAX_RETENTION_DAYS`] days, and a safeguarding period
    /// shorter than another: a child-protection record is never removed by a shorter period.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, days) in [
            ("standard_days", self.standard_days),
            ("safeguarding_days", self.safeguarding_days),
            ("short_days", self.short_days),
        ] {
            if days == 0 || days > MAX_RETENTION_DAYS {
                return Err(ValidationError::new(
                    field,
                    format!("must be 1 to {MAX_RETENTION_DAYS} days, got {days}"),
                ));
            }
        }
        if self.safeguarding_days < self.standard_days.max(self.short_days) {
            return Err(ValidationError::new(
                "safeguarding_days",
                format!(
                    "{} days is shorter than another class's period ({} days); child-protection \
                     records are kept at least as long as any other",
                    self.safeguarding_days,
                    self.standard_days.max(self.short_days)
                ),
            ));
        }
        Ok(())
    }
}

/// A lead's mark that the statistics of a period were produced and sent: `short` contacts of
/// that period may go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedPeriod {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// The day it was marked.
    pub on: NaiveDate,
    /// The lead device that marked it.
    pub by: DeviceId,
}

/// What retention needs to know of one contact.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetentionSubject {
    /// The record.
    pub(crate) id: RecordId,
    /// The day of the contact.
    pub(crate) date: NaiveDate,
    /// Its class as recorded.
    pub(crate) class: RetentionClass,
    /// Whether it carries the child-protection flag.
    pub(crate) safeguarding: bool,
}

/// A contact and the day it is due for deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRecord {
    /// The record.
    pub id: RecordId,
    /// The day of the contact.
    pub date: NaiveDate,
    /// The class that decides its period (`safeguarding` for any flagged contact).
    pub class: RetentionClass,
    /// The first day it may be erased.
    pub due_on: NaiveDate,
}

/// Why a retention run erased records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionTrigger {
    /// The team chose automatic erasure: the lead's device ran it on its daily sync.
    DailySync,
    /// A lead confirmed the list of records due.
    Confirmed,
}

impl RetentionTrigger {
    /// The snake-case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionTrigger::DailySync => "daily_sync",
            RetentionTrigger::Confirmed => "confirmed",
        }
    }

    /// Reads a stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily_sync" => Some(RetentionTrigger::DailySync),
            "confirmed" => Some(RetentionTrigger::Confirmed),
            _ => None,
        }
    }
}

/// The audit entry one retention run leaves: counts and record ids, never content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionAudit {
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// The lead device that erased.
    pub device: DeviceId,
    /// Automatic or confirmed.
    pub trigger: RetentionTrigger,
    /// Standard contacts erased.
    pub standard: u64,
    /// Child-protection contacts erased.
    pub safeguarding: u64,
    /// Short contacts erased.
    pub short: u64,
    /// The erased records.
    pub records: Vec<RecordId>,
}

fn plus(date: NaiveDate, days: u32) -> NaiveDate {
    date.checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(NaiveDate::MAX)
}

/// The class that decides a contact's period: a flagged contact is a child-protection record.
pub(crate) fn effective_class(class: RetentionClass, safeguarding: bool) -> RetentionClass {
    if safeguarding {
        RetentionClass::Safeguarding
    } else {
        class
    }
}

/// The day `subject` is due for deletion under `policy` and the reported periods.
pub(crate) fn due_on(
    policy: &RetentionPolicy,
    reported: &[ReportedPeriod],
    subject: &RetentionSubject,
) -> NaiveDate {
    let class = effective_class(subject.class, subject.safeguarding);
    match class {
        RetentionClass::Standard => plus(subject.date, policy.standard_days),
        RetentionClass::Safeguarding => plus(subject.date, policy.safeguarding_days),
        RetentionClass::Short => {
            let cap = plus(subject.date, policy.short_days);
            reported
                .iter()
                .filter(|r| r.from <= subject.date && subject.date <= r.to)
                .map(|r| r.on.max(subject.date))
                .min()
                .map_or(cap, |on| on.min(cap))
        }
    }
}

/// The contacts due for deletion on or before `until`, earliest first.
pub(crate) fn due_until(
    policy: &RetentionPolicy,
    reported: &[ReportedPeriod],
    subjects: impl IntoIterator<Item = RetentionSubject>,
    until: NaiveDate,
) -> Vec<DueRecord> {
    let mut out: Vec<DueRecord> = subjects
        .into_iter()
        .map(|s| DueRecord {
            id: s.id,
            date: s.date,
            class: effective_class(s.class, s.safeguarding),
            due_on: due_on(policy, reported, &s),
        })
        .filter(|d| d.due_on <= until)
        .collect();
    out.sort_by_key(|d| (d.due_on, d.date, d.id));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn subject(class: RetentionClass, safeguarding: bool) -> RetentionSubject {
        RetentionSubject {
            id: RecordId::random(),
            date: day(2026, 1, 10),
            class,
            safeguarding,
        }
    }

    #[test]
    fn each_class_has_its_period() {
        let p = RetentionPolicy::default();
        assert_eq!(
            due_on(&p, &[], &subject(RetentionClass::Standard, false)),
            day(2029, 1, 9)
        );
        assert_eq!(
            due_on(&p, &[], &subject(RetentionClass::Safeguarding, false)),
            day(2036, 1, 8)
        );
        assert_eq!(
            due_on(&p, &[], &subject(RetentionClass::Short, false)),
            day(2027, 2, 14),
            "an unreported short contact is kept at most short_days"
        );
    }

    #[test]
    fn short_ends_when_its_period_is_marked_reported() {
        let p = RetentionPolicy::default();
        let by = DeviceId::from_public_key(&[1; 32]);
        let reported = [
            ReportedPeriod {
                from: day(2026, 2, 1),
                to: day(2026, 2, 28),
                on: day(2026, 3, 2),
                by,
            },
            ReportedPeriod {
                from: day(2026, 1, 1),
                to: day(2026, 3, 31),
                on: day(2026, 4, 3),
                by,
            },
        ];
        let s = subject(RetentionClass::Short, false);
        assert_eq!(due_on(&p, &reported, &s), day(2026, 4, 3));
        assert_eq!(
            due_on(&p, &reported, &subject(RetentionClass::Standard, false)),
            day(2029, 1, 9),
            "a report ends only short contacts"
        );
    }

    #[test]
    fn a_flagged_contact_is_never_removed_by_a_shorter_class() {
        let p = RetentionPolicy::default();
        let by = DeviceId::from_public_key(&[1; 32]);
        let reported = [ReportedPeriod {
            from: day(2026, 1, 1),
            to: day(2026, 12, 31),
            on: day(2027, 1, 5),
            by,
        }];
        for class in [RetentionClass::Short, RetentionClass::Standard] {
            let s = subject(class, true);
            assert_eq!(due_on(&p, &reported, &s), day(2036, 1, 8));
        }
        let due = due_until(
            &p,
            &reported,
            [subject(RetentionClass::Short, true)],
            day(2030, 1, 1),
        );
        assert!(due.is_empty());
    }

    #[test]
    fn policies_keep_safeguarding_longest() {
        assert!(RetentionPolicy::default().validate().is_ok());
        let short_safeguarding = RetentionPolicy {
            safeguarding_days: 100,
            ..RetentionPolicy::default()
        };
        assert_eq!(
            short_safeguarding.validate().unwrap_err().field,
            "safeguarding_days"
        );
        let zero = RetentionPolicy {
            standard_days: 0,
            ..RetentionPolicy::default()
        };
        assert!(zero.validate().is_err());
    }
}
