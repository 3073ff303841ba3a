//! Anonymous statistics for the city and funders: the FFI copies of the core's statistics tables,
//! and the `Workspace` methods that compute them for a date range, as records or as CSV.
//!
//! Suppression happens in the core (cells under three persons, and the further cells secondary
//! suppression hides so that no small one can be worked out by subtraction), so the raw value of
//! a hidden cell never reaches this crate; a [`StatCell`] carries only what may be shown.

use streetsync_core as sc;

use crate::Result;
use crate::dates::{fmt_date, parse_date};
use crate::error::{StreetsyncError, guard};
use crate::workspace::Workspace;

/// One number of a statistic. Rows with fewer than three persons are suppressed in every output,
/// so no person can be singled out: then `value` is `None` and `text` is `"<3"`. A cell hidden so
/// that a small one cannot be worked out by subtraction has `text` `"x"` and `secondary` set.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatCell {
    /// The number, or `None` when suppressed.
    pub value: Option<u64>,
    /// What to show: the number, `"<3"` or `"x"`.
    pub text: String,
    /// Hidden by secondary suppression (the number itself is not small).
    pub secondary: bool,
}

impl From<sc::Cell> for StatCell {
    fn from(c: sc::Cell) -> Self {
        StatCell {
            value: c.value(),
            text: c.to_string(),
            secondary: c.suppression() == Some(sc::Suppression::Secondary),
        }
    }
}

/// One row of a statistics table.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatRow {
    /// Stable key (`2026-09`, an area id, an age band...).
    pub key: String,
    /// What a person reads.
    pub label: String,
    /// Contacts.
    pub contacts: StatCell,
    /// Persons, deduplicated per day by client code.
    pub persons: StatCell,
    /// Items handed out (materials) or referrals (partners); absent for other tables.
    pub amount: Option<StatCell>,
}

impl From<&sc::Row> for StatRow {
    fn from(r: &sc::Row) -> Self {
        StatRow {
            key: r.key.clone(),
            label: r.label.clone(),
            contacts: r.contacts.into(),
            persons: r.persons.into(),
            amount: r.amount.map(Into::into),
        }
    }
}

/// One table: what it groups by and its rows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StatTable {
    /// `month`, `area`, `age_band`, `gender`, `topic`, `material` or `partner`.
    pub dimension: String,
    /// A heading for people.
    pub title: String,
    /// The rows.
    pub rows: Vec<StatRow>,
    /// The table could not be protected against subtraction and has no rows.
    pub withheld: bool,
}

/// Anonymous statistics of a date range, ready for the city and funders.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Statistics {
    /// Team name.
    pub team: String,
    /// First day (`2026-01-01`).
    pub from_date: String,
    /// Last day.
    pub to_date: String,
    /// All contacts of the range.
    pub total: StatRow,
    /// One table per dimension.
    pub tables: Vec<StatTable>,
    /// Numbers hidden because their row has fewer than three persons.
    pub primary_suppressed: u64,
    /// Numbers hidden so that the small ones cannot be worked out by subtraction.
    pub secondary_suppressed: u64,
}

impl From<&sc::Statistics> for Statistics {
    fn from(s: &sc::Statistics) -> Self {
        Statistics {
            team: s.team.clone(),
            from_date: fmt_date(s.from),
            to_date: fmt_date(s.to),
            total: (&s.total).into(),
            tables: s
                .tables
                .iter()
                .map(|t| StatTable {
                    dimension: t.dimension.as_str().to_owned(),
                    title: t.dimension.title().to_owned(),
                    rows: t.rows.iter().map(Into::into).collect(),
                    withheld: t.withheld,
                })
                .collect(),
            primary_suppressed: s.disclosure.primary,
            secondary_suppressed: s.disclosure.secondary,
        }
    }
}

/// The core's query for `from_date` to `to_date`, both inclusive, with the field named in errors.
fn query(from_date: &str, to_date: &str) -> Result<sc::StatsQuery> {
    Ok(sc::StatsQuery {
        from: parse_date("from_date", from_date)?,
        to: parse_date("to_date", to_date)?,
    })
}

#[uniffi::export]
impl Workspace {
    /// Anonymous statistics for a date range (`"2026-01-01"` to `"2026-06-30"`), grouped by month,
    /// area, age band, gender, topic, materials and partner organisation; cells under three
    /// persons are suppressed. Reads projections only. Blocking, fast.
    pub fn statistics(&self, from_date: String, to_date: String) -> Result<Statistics> {
        guard(|| {
            let query = query(&from_date, &to_date)?;
            let stats = self.inner.statistics(&query)?;
            Ok((&stats).into())
        })
    }

    /// The same statistics as CSV text (suppressed cells written `<3`). Blocking, fast.
    pub fn statistics_csv(&self, from_date: String, to_date: String) -> Result<String> {
        guard(|| {
            let query = query(&from_date, &to_date)?;
            let stats = self.inner.statistics(&query)?;
            let mut out = Vec::new();
            sc::write_statistics(&stats, &mut out)?;
            String::from_utf8(out).map_err(|_| StreetsyncError::Internal {
                detail: "the CSV is not UTF-8".into(),
            })
        })
    }
}
