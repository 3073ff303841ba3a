//! The `retention_log` table: one audit entry per retention run, counts and record ids only.

use rusqlite::params;

use super::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::retention::{RetentionAudit, RetentionTrigger};

reads! {
    /// Every retention run recorded on this device, oldest first.
    pub(crate) fn retention_log(&self) -> Result<Vec<RetentionAudit>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT at_ms, device, trigger, standard, safeguarding, short, records
             FROM retention_log ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let corrupt = |what: &str| Error::Corrupt {
            what: format!("retention log: {what}"),
        };
        let mut out = Vec::new();
        for row in rows {
            let (at_ms, device, trigger, standard, safeguarding, short, records) = row?;
            let ids: Vec<String> =
                serde_json::from_str(&records).map_err(|_| corrupt("record ids"))?;
            out.push(RetentionAudit {
                at_ms,
                device: device.parse().map_err(|_| corrupt("device"))?,
                trigger: RetentionTrigger::parse(&trigger).ok_or_else(|| corrupt("trigger"))?,
                standard: u64::try_from(standard).map_err(|_| corrupt("count"))?,
                safeguarding: u64::try_from(safeguarding).map_err(|_| corrupt("count"))?,
                short: u64::try_from(short).map_err(|_| corrupt("count"))?,
                records: ids
                    .iter()
                    .map(|s| s.parse().map_err(|_| corrupt("record id")))
                    .collect::<Result<_>>()?,
            });
        }
        Ok(out)
    }
}

impl Writer<'_> {
    /// Records a retention run, in the same transaction as the erasures it made.
    pub(crate) fn log_retention(&mut self, entry: &RetentionAudit) -> Result<()> {
        let ids: Vec<String> = entry.records.iter().map(ToString::to_string).collect();
        let records = serde_json::to_string(&ids).map_err(|_| Error::Internal("record ids"))?;
        let count = |n: u64| i64::try_from(n).map_err(|_| Error::Internal("count"));
        self.tx.execute(
            "INSERT INTO retention_log (at_ms, device, trigger, standard, safeguarding, short, records)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                entry.at_ms,
                entry.device.to_string(),
                entry.trigger.as_str(),
                count(entry.standard)?,
                count(entry.safeguarding)?,
                count(entry.short)?,
                records
            ],
        )?;
        Ok(())
    }
}
