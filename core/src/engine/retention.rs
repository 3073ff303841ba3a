//! Retention: the records past their period, their erasure on a lead's device with the same
//! erasure as an Art. 17 request (local copy now, a tombstone for the relay and every device),
//! and the audit entry each run leaves. The periods and rules are in [`crate::model::retention`].

use chrono::NaiveDate;

use crate::error::{Error, Result, ValidationError};
use crate::kinds::RecordKind;
use crate::model::retention::{
    DueRecord, ReportedPeriod, RetentionAudit, RetentionPolicy, RetentionSubject, RetentionTrigger,
    due_until,
};
use crate::model::vocab::RetentionClass;

use super::Engine;

impl Engine {
    /// The contacts due for deletion on or before `until`, earliest first (any member may look;
    /// only a lead erases).
    pub(crate) fn retention_due(&self, until: NaiveDate) -> Result<Vec<DueRecord>> {
        self.store.read(|r| {
            let team = r.cache.team.as_deref().ok_or(Error::NoTeam)?;
            let subjects = r.cache.contacts.iter().map(|(id, c)| RetentionSubject {
                id: *id,
                date: c.date,
                class: c.retention,
                safeguarding: c.safeguarding,
            });
            Ok(due_until(&team.retention, &team.reported, subjects, until))
        })
    }

    /// Erases every contact due on or before `today` (leads only), in one transaction with its
    /// audit entry; the tombstones wait in the outbox for the next push. `None` if nothing was due.
    pub(crate) fn erase_due(
        &self,
        today: NaiveDate,
        trigger: RetentionTrigger,
    ) -> Result<Option<RetentionAudit>> {
        self.require_lead("erase records past their retention period")?;
        let due = self.retention_due(today)?;
        if due.is_empty() {
            return Ok(None);
        }
        let count = |c: RetentionClass| due.iter().filter(|d| d.class == c).count() as u64;
        let entry = RetentionAudit {
            at_ms: crate::clock::now_ms(),
            device: self.device_id(),
            trigger,
            standard: count(RetentionClass::Standard),
            safeguarding: count(RetentionClass::Safeguarding),
            short: count(RetentionClass::Short),
            records: due.iter().map(|d| d.id).collect(),
        };
        self.store.write(|w| {
            for d in &due {
                w.erase_record(&d.id, entry.at_ms)?;
                w.push_tombstone(&d.id, RecordKind::Contact)?;
            }
            w.log_retention(&entry)
        })?;
        for d in &due {
            self.local(d.id, RecordKind::Contact, true);
        }
        Ok(Some(entry))
    }

    /// Sets the team's retention periods and mode (leads only; checked again by every device).
    pub(crate) fn set_retention_policy(&self, policy: RetentionPolicy) -> Result<()> {
        policy.validate()?;
        self.change_team("set retention periods", |team| {
            team.retention = policy;
            Ok(())
        })
    }

    /// Marks the statistics of `from` to `to` as produced and sent (leads only): `short` contacts
    /// of those days become due for deletion.
    pub(crate) fn mark_reported(&self, from: NaiveDate, to: NaiveDate) -> Result<ReportedPeriod> {
        let today = crate::clock::today();
        if to < from {
            return Err(ValidationError::new("to", format!("{to} is before {from}")).into());
        }
        if to > today {
            return Err(ValidationError::new(
                "to",
                format!("{to} has not passed yet; mark a period reported once it is over"),
            )
            .into());
        }
        let mark = ReportedPeriod {
            from,
            to,
            on: today,
            by: self.device_id(),
        };
        self.change_team("mark statistics as reported", |team| {
            if !team.reported.iter().any(|r| r.from == from && r.to == to) {
                team.reported.push(mark.clone());
            }
            Ok(())
        })?;
        Ok(mark)
    }

    /// This device's retention audit trail, oldest first.
    pub(crate) fn retention_log(&self) -> Result<Vec<RetentionAudit>> {
        self.store.read(|r| r.retention_log())
    }
}
