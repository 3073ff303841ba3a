//! Anonymous statistics for the city and funders, computed from contact projections.
//!
//! Only aggregates leave the team, and small counts are suppressed so no person can be singled
//! out. The rules, in one place (docs/statistics.md explains them for people):
//!
//! - **Contacts** are counted per cell (a contact with two topics counts once in each topic row).
//! - **Persons are deduplicated per day by client code**: contacts with the same client code
//!   (case-insensitive) on the same day count as one group, whose size is the largest `persons`
//!   among them (usually 1). Contacts without a code count their `persons`. Across days a client
//!   is counted again (a month row sums its days).
//! - **Primary suppression**: any row (or chart cell) with fewer than [`SUPPRESS_BELOW`] persons
//!   is hidden: contacts, persons and amounts alike render as `<3`.
//! - **Secondary suppression** ([`crate::query::disclosure`]): further rows and chart cells are
//!   hidden (rendered as [`SECONDARY_SUPPRESSED`]) so that no hidden number can be worked out from
//!   the published ones by subtraction, in the tables whose rows add up to the total and in the
//!   chart with its month and area margins. A table (or the chart) that cannot be protected that
//!   way is withheld whole. A statistic of fewer than three persons publishes only its total.
//! - A [`Cell`] never holds the raw value of a hidden number, so it cannot leak through
//!   `Display`, `Debug` or `Serialize`, and the public API has no way to read it.
//!
//! The entry point is [`compute_from`] (`Workspace::statistics` reads the projections).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use serde::{Serialize, Serializer};

use crate::error::{Error, ValidationError};
use crate::model::team::{Catalog, Team};
use crate::query::ContactSummary;
use crate::query::disclosure::{self, ChartUnit, Layout, Unit};

/// Rows with fewer persons than this are suppressed.
pub const SUPPRESS_BELOW: u64 = 3;
/// The longest range one statistic may cover, in days (about ten years).
pub const MAX_RANGE_DAYS: i64 = 3_660;
/// How a cell hidden by primary suppression (fewer than three persons) is written in every output.
pub const SUPPRESSED: &str = "<3";
/// How a cell hidden by secondary suppression is written: it is not small, so writing `<3` would
/// be false; it is hidden so that a `<3` cell cannot be worked out by subtraction.
pub const SECONDARY_SUPPRESSED: &str = "x";

/// Why a number is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// Its row has fewer than three persons.
    Primary,
    /// Its row is not small, but publishing it would let a small one be worked out.
    Secondary,
}

/// One number of a statistic, or the mark of a hidden one. The raw value of a hidden cell is not
/// kept, so it cannot leak through any output.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell(Shown);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Shown {
    Value(u64),
    Hidden(Suppression),
}

impl Cell {
    fn shown(value: u64, hidden: Option<Suppression>) -> Self {
        match hidden {
            Some(s) => Cell(Shown::Hidden(s)),
            None => Cell(Shown::Value(value)),
        }
    }

    /// The number, or `None` when suppressed.
    pub fn value(self) -> Option<u64> {
        match self.0 {
            Shown::Value(v) => Some(v),
            Shown::Hidden(_) => None,
        }
    }

    /// Whether the cell is suppressed (primary or secondary).
    pub fn is_suppressed(self) -> bool {
        self.value().is_none()
    }

    /// Why the cell is hidden, if it is.
    pub fn suppression(self) -> Option<Suppression> {
        match self.0 {
            Shown::Value(_) => None,
            Shown::Hidden(s) => Some(s),
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Shown::Value(v) => write!(f, "{v}"),
            Shown::Hidden(Suppression::Primary) => f.write_str(SUPPRESSED),
            Shown::Hidden(Suppression::Secondary) => f.write_str(SECONDARY_SUPPRESSED),
        }
    }
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Serialize for Cell {
    /// A number, or the string `"<3"` (primary) or `"x"` (secondary).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Shown::Value(v) => s.serialize_u64(v),
            Shown::Hidden(_) => s.serialize_str(&self.to_string()),
        }
    }
}

/// What a statistic covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsQuery {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
}

/// Why a statistic could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The last day is before the first.
    #[error("the range ends ({to}) before it starts ({from})")]
    ReversedRange {
        /// First day asked for.
        from: NaiveDate,
        /// Last day asked for.
        to: NaiveDate,
    },
    /// The range is longer than [`MAX_RANGE_DAYS`].
    #[error("the range covers {days} days; the limit is {MAX_RANGE_DAYS}")]
    RangeTooLong {
        /// Days asked for.
        days: i64,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Core(#[from] Error),
}

impl From<StatsError> for Error {
    fn from(e: StatsError) -> Self {
        match e {
            StatsError::ReversedRange { .. } => {
                Error::Invalid(ValidationError::new("to", e.to_string()))
            }
            StatsError::RangeTooLong { .. } => {
                Error::Invalid(ValidationError::new("from", e.to_string()))
            }
            StatsError::Core(e) => e,
        }
    }
}

impl StatsQuery {
    /// Checks the range.
    pub fn validate(&self) -> Result<(), StatsError> {
        if self.to < self.from {
            return Err(StatsError::ReversedRange {
                from: self.from,
                to: self.to,
            });
        }
        let days = (self.to - self.from).num_days() + 1;
        if days > MAX_RANGE_DAYS {
            return Err(StatsError::RangeTooLong { days });
        }
        Ok(())
    }
}

/// What a table groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Calendar month (`2026-09`).
    Month,
    /// Area (Sozialraum).
    Area,
    /// Age band.
    AgeBand,
    /// Gender.
    Gender,
    /// Topic (a contact counts in each of its topics).
    Topic,
    /// Material handed out; the amount is the number of items.
    Material,
    /// Partner organisation referred to; the amount is the number of referrals.
    Referral,
}

impl Dimension {
    /// Every dimension, in output order.
    pub const ALL: &'static [Dimension] = &[
        Dimension::Month,
        Dimension::Area,
        Dimension::AgeBand,
        Dimension::Gender,
        Dimension::Topic,
        Dimension::Material,
        Dimension::Referral,
    ];

    /// The snake-case name used in CSV and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Month => "month",
            Dimension::Area => "area",
            Dimension::AgeBand => "age_band",
            Dimension::Gender => "gender",
            Dimension::Topic => "topic",
            Dimension::Material => "material",
            Dimension::Referral => "referral",
        }
    }

    /// A heading for tables.
    pub fn title(self) -> &'static str {
        match self {
            Dimension::Month => "Contacts per month",
            Dimension::Area => "Contacts per area (Sozialraum)",
            Dimension::AgeBand => "Contacts per age band",
            Dimension::Gender => "Contacts per gender",
            Dimension::Topic => "Contacts per topic",
            Dimension::Material => "Materials handed out",
            Dimension::Referral => "Referrals per partner organisation",
        }
    }

    /// What the amount column counts, for the dimensions that have one.
    pub fn amount_label(self) -> Option<&'static str> {
        match self {
            Dimension::Material => Some("items"),
            Dimension::Referral => Some("referrals"),
            _ => None,
        }
    }
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Stable key (`2026-09`, an area id, `14_17`, a partner id...).
    pub key: String,
    /// What a person reads (area name, partner name...).
    pub label: String,
    /// Contacts in this row.
    pub contacts: Cell,
    /// Persons, deduplicated per day by client code.
    pub persons: Cell,
    /// Items handed out (materials) or referrals made (partners); `None` for other dimensions.
    pub amount: Option<Cell>,
}

/// One table: a dimension and its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// What the rows group by.
    pub dimension: Dimension,
    /// Rows in a stable order (months ascending, catalog order, vocabulary order).
    pub rows: Vec<Row>,
    /// The table could not be protected against subtraction and is published without rows.
    pub withheld: bool,
}

/// Contacts of one area in one month, for the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthArea {
    /// `2026-09`.
    pub month: String,
    /// Area id.
    pub area_id: String,
    /// Contacts (suppressed if the cell has fewer than three persons, or to protect one that has).
    pub contacts: Cell,
}

/// How many numbers of one statistic are hidden, and why: what a reader needs to judge it, and
/// what the bench reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Disclosure {
    /// Numbers (contacts, persons, amounts, chart cells) hidden because their row is small.
    pub primary: u64,
    /// Numbers hidden so that the small ones cannot be worked out by subtraction.
    pub secondary: u64,
}

/// The statistics of one range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statistics {
    /// The team's name.
    pub team: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// All contacts of the range.
    pub total: Row,
    /// One table per [`Dimension`], in [`Dimension::ALL`] order.
    pub tables: Vec<Table>,
    /// Contacts per month and area (areas in catalog order), for a chart.
    pub month_area: Vec<MonthArea>,
    /// The chart could not be protected against subtraction and is published without cells.
    pub month_area_withheld: bool,
    /// Area ids and names in catalog order, for a chart's legend.
    pub areas: Vec<(String, String)>,
    /// How many numbers are hidden.
    pub disclosure: Disclosure,
}

impl Statistics {
    /// The table of one dimension.
    pub fn table(&self, dimension: Dimension) -> Option<&Table> {
        self.tables.iter().find(|t| t.dimension == dimension)
    }
}

/// Raw tallies of one row; never leaves this module.
#[derive(Default)]
struct Acc {
    contacts: u64,
    amount: u64,
    /// Persons of contacts without a client code.
    anonymous: u64,
    /// Largest group per (day, client code).
    coded: HashMap<(NaiveDate, String), u64>,
}

impl Acc {
    fn add(&mut self, s: &ContactSummary, code: Option<&str>, amount: u64) {
        self.contacts += 1;
        self.amount += amount;
        let persons = u64::try_from(s.persons).unwrap_or(0);
        match code {
            Some(code) => {
                let e = self.coded.entry((s.date, code.to_owned())).or_insert(0);
                *e = (*e).max(persons);
            }
            None => self.anonymous += persons,
        }
    }

    fn persons(&self) -> u64 {
        self.anonymous + self.coded.values().sum::<u64>()
    }

    fn unit(&self) -> Unit {
        Unit::new(self.contacts, self.persons())
    }
}

/// A row with its true numbers, before the hidden ones are replaced by marks.
struct RawRow {
    key: String,
    label: String,
    unit: Unit,
    amount: Option<u64>,
}

impl RawRow {
    fn publish(&self, counts: &mut Disclosure) -> Row {
        let h = self.unit.hidden;
        let n = 2 + u64::from(self.amount.is_some());
        match h {
            Some(Suppression::Primary) => counts.primary += n,
            Some(Suppression::Secondary) => counts.secondary += n,
            None => {}
        }
        Row {
            key: self.key.clone(),
            label: self.label.clone(),
            contacts: Cell::shown(self.unit.contacts, h),
            persons: Cell::shown(self.unit.persons, h),
            amount: self.amount.map(|a| Cell::shown(a, h)),
        }
    }
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// The dimensions in which every contact has exactly one value, so their rows add up to the
/// total; the first two are the chart's margins.
const PARTITIONS: [Dimension; 4] = [
    Dimension::Month,
    Dimension::Area,
    Dimension::AgeBand,
    Dimension::Gender,
];

/// Computes the statistics of `query` over given projections (`Workspace::statistics` reads
/// them from the store).
pub fn compute_from(
    team: &Team,
    contacts: &[ContactSummary],
    query: &StatsQuery,
) -> Result<Statistics, StatsError> {
    query.validate()?;
    let in_range: Vec<&ContactSummary> = contacts
        .iter()
        .filter(|s| s.date >= query.from && s.date <= query.to)
        .collect();

    let mut total = Acc::default();
    let mut by: BTreeMap<Dimension, HashMap<String, Acc>> = BTreeMap::new();
    let mut month_area: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for s in &in_range {
        let code: Option<String> = s
            .client_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_uppercase);
        let code = code.as_deref();
        total.add(s, code, 0);
        let mut put = |d: Dimension, key: String, amount: u64| {
            by.entry(d)
                .or_default()
                .entry(key)
                .or_default()
                .add(s, code, amount);
        };
        put(Dimension::Month, month_key(s.date), 0);
        put(Dimension::Area, s.area_id.clone(), 0);
        put(Dimension::AgeBand, s.age_band.as_str().to_owned(), 0);
        put(Dimension::Gender, s.gender.as_str().to_owned(), 0);
        let topics: BTreeSet<&String> = s.topics.iter().collect();
        for t in topics {
            put(Dimension::Topic, t.clone(), 0);
        }
        for m in &s.materials {
            let n = u64::try_from(m.count).unwrap_or(0);
            if n > 0 {
                put(Dimension::Material, m.material_id.clone(), n);
            }
        }
        let mut referred: BTreeMap<&String, u64> = BTreeMap::new();
        for p in &s.referral_partners {
            *referred.entry(p).or_insert(0) += 1;
        }
        for (p, n) in referred {
            put(Dimension::Referral, p.clone(), n);
        }
        month_area
            .entry((month_key(s.date), s.area_id.clone()))
            .or_default()
            .add(s, code, 0);
    }

    let catalog_pos = |c: Catalog, key: &str| {
        team.catalog(c)
            .iter()
            .position(|e| e.id == key)
            .unwrap_or(usize::MAX)
    };
    let mut raw: Vec<(Dimension, Vec<RawRow>)> = Vec::new();
    for &d in Dimension::ALL {
        let accs = by.remove(&d).unwrap_or_default();
        let mut rows: Vec<(usize, String, RawRow)> = accs
            .iter()
            .map(|(key, acc)| {
                let (pos, label) = match d {
                    Dimension::Month => (0, key.clone()),
                    Dimension::Area => (
                        catalog_pos(Catalog::Area, key),
                        team.name_of(Catalog::Area, key),
                    ),
                    Dimension::Topic => (
                        catalog_pos(Catalog::Topic, key),
                        team.name_of(Catalog::Topic, key),
                    ),
                    Dimension::Material => (
                        catalog_pos(Catalog::Material, key),
                        team.name_of(Catalog::Material, key),
                    ),
                    Dimension::AgeBand => {
                        let v = crate::model::vocab::AgeBand::from_key(key);
                        (
                            v.map_or(usize::MAX, |v| v as usize),
                            v.map_or_else(|| key.clone(), |v| v.label().to_owned()),
                        )
                    }
                    Dimension::Gender => {
                        let v = crate::model::vocab::Gender::from_key(key);
                        (
                            v.map_or(usize::MAX, |v| v as usize),
                            v.map_or_else(|| key.clone(), |v| v.label().to_owned()),
                        )
                    }
                    Dimension::Referral => (
                        0,
                        team.partners
                            .iter()
                            .find(|p| &p.id == key)
                            .map_or_else(|| key.clone(), |p| p.name.clone()),
                    ),
                };
                let row = RawRow {
                    key: key.clone(),
                    label: label.clone(),
                    unit: acc.unit(),
                    amount: d.amount_label().map(|_| acc.amount),
                };
                let sort = if d == Dimension::Month {
                    key.clone()
                } else {
                    label
                };
                (pos, sort, row)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        raw.push((d, rows.into_iter().map(|(_, _, r)| r).collect()));
    }

    let mut cells: Vec<(String, String, Unit)> = month_area
        .iter()
        .map(|((month, area), acc)| (month.clone(), area.clone(), acc.unit()))
        .collect();
    cells.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| catalog_pos(Catalog::Area, &a.1).cmp(&catalog_pos(Catalog::Area, &b.1)))
    });
    let mut areas: Vec<(String, String)> = team
        .areas
        .iter()
        .filter(|e| cells.iter().any(|c| c.1 == e.id) || !e.retired)
        .map(|e| (e.id.clone(), e.name.clone()))
        .collect();
    for c in &cells {
        if !areas.iter().any(|(id, _)| id == &c.1) {
            areas.push((c.1.clone(), c.1.clone()));
        }
    }

    // Secondary suppression over the partition tables and the chart.
    let total_unit = total.unit();
    let mut withheld = vec![false; raw.len()];
    let chart_withheld = if total_unit.hidden.is_some() {
        // Fewer than three persons in all: any listed row would pin them down.
        withheld.iter_mut().for_each(|w| *w = true);
        true
    } else {
        // `raw` is in `Dimension::ALL` order.
        let index = |d: Dimension| Dimension::ALL.iter().position(|x| *x == d);
        let mut layout = Layout::default();
        for d in PARTITIONS {
            let units = index(d).map_or_else(Vec::new, |i| {
                raw[i].1.iter().map(|r| r.unit.clone()).collect()
            });
            layout.tables.push(units);
        }
        let month_pos = |m: &str| {
            index(Dimension::Month).and_then(|i| raw[i].1.iter().position(|r| r.key == m))
        };
        let area_pos =
            |a: &str| index(Dimension::Area).and_then(|i| raw[i].1.iter().position(|r| r.key == a));
        for (m, a, u) in &cells {
            if let (Some(month), Some(area)) = (month_pos(m), area_pos(a)) {
                layout.chart.push(ChartUnit {
                    month,
                    area,
                    unit: u.clone(),
                });
            }
        }
        disclosure::protect(&mut layout);
        for (k, d) in PARTITIONS.iter().enumerate() {
            if let Some(i) = index(*d) {
                for (r, u) in raw[i].1.iter_mut().zip(&layout.tables[k]) {
                    r.unit.hidden = u.hidden;
                }
                withheld[i] = layout.withheld[k];
            }
        }
        for (c, u) in cells.iter_mut().zip(&layout.chart) {
            c.2.hidden = u.unit.hidden;
        }
        layout.chart_withheld
    };

    let mut counts = Disclosure::default();
    let tables = raw
        .iter()
        .zip(&withheld)
        .map(|((d, rows), &withheld)| Table {
            dimension: *d,
            rows: if withheld {
                Vec::new()
            } else {
                rows.iter().map(|r| r.publish(&mut counts)).collect()
            },
            withheld,
        })
        .collect();
    let month_area = if chart_withheld {
        Vec::new()
    } else {
        cells
            .iter()
            .map(|(month, area, u)| {
                match u.hidden {
                    Some(Suppression::Primary) => counts.primary += 1,
                    Some(Suppression::Secondary) => counts.secondary += 1,
                    None => {}
                }
                MonthArea {
                    month: month.clone(),
                    area_id: area.clone(),
                    contacts: Cell::shown(u.contacts, u.hidden),
                }
            })
            .collect()
    };
    let total = RawRow {
        key: "total".into(),
        label: "All contacts".into(),
        unit: total_unit,
        amount: None,
    }
    .publish(&mut counts);

    Ok(Statistics {
        team: team.name.clone(),
        from: query.from,
        to: query.to,
        total,
        tables,
        month_area,
        month_area_withheld: chart_withheld,
        areas,
        disclosure: counts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::contact::MaterialCount;
    use crate::model::team::{CatalogEntry, Partner};
    use crate::model::vocab::{AgeBand, Gender, ReviewState, Setting};
    use chrono::NaiveTime;
    use streetsync_wire::{RecordId, TeamId};

    fn team() -> Team {
        let entry = |id: &str| CatalogEntry {
            id: id.into(),
            name: format!("Name {id}"),
            retired: false,
        };
        Team {
            id: TeamId::random(),
            name: "T".into(),
            roster: vec![],
            areas: vec![entry("nord"), entry("sued")],
            topics: vec![entry("wohnen"), entry("sucht")],
            materials: vec![entry("essen")],
            partners: vec![Partner {
                id: "p1".into(),
                name: "Jobcenter".into(),
                ..Default::default()
            }],
            epochs: vec![],
            revocations: vec![],
            retention: Default::default(),
            reported: Vec::new(),
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 9, d).unwrap()
    }

    fn contact(date: NaiveDate, area: &str, persons: i64, code: Option<&str>) -> ContactSummary {
        ContactSummary {
            id: RecordId::random(),
            date,
            start_time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            area_id: area.into(),
            place: String::new(),
            setting: Setting::Street,
            persons,
            first_contact: false,
            age_band: AgeBand::From18To20,
            gender: Gender::Female,
            client_code: code.map(Into::into),
            topics: vec!["wohnen".into()],
            materials: vec![],
            referral_partners: vec![],
            safeguarding: false,
            review: ReviewState::Draft,
            comments: 0,
            author: "a".into(),
            updated_at: 0,
            note: "secret".into(),
            retention: crate::model::vocab::RetentionClass::Standard,
        }
    }

    fn query() -> StatsQuery {
        StatsQuery {
            from: day(1),
            to: day(30),
        }
    }

    fn row<'a>(s: &'a Statistics, d: Dimension, key: &str) -> &'a Row {
        s.table(d)
            .unwrap()
            .rows
            .iter()
            .find(|r| r.key == key)
            .unwrap()
    }

    #[test]
    fn the_same_client_code_on_one_day_counts_once() {
        let cs = vec![
            contact(day(1), "nord", 1, Some("AB-1990")),
            contact(day(1), "nord", 1, Some("ab-1990")), // same person, same day, other case
            contact(day(1), "nord", 1, Some("CD-1985")),
            contact(day(2), "nord", 1, Some("AB-1990")), // next day counts again
        ];
        let s = compute_from(&team(), &cs, &query()).unwrap();
        assert_eq!(s.total.contacts.value(), Some(4));
        assert_eq!(s.total.persons.value(), Some(3));
        let nord = row(&s, Dimension::Area, "nord");
        assert_eq!(nord.persons.value(), Some(3));
        assert_eq!(nord.label, "Name nord");
    }

    #[test]
    fn contacts_without_a_code_count_their_persons() {
        let cs = vec![
            contact(day(1), "nord", 4, None),
            contact(day(1), "nord", 2, None),
            contact(day(1), "nord", 1, Some("X1")),
        ];
        let s = compute_from(&team(), &cs, &query()).unwrap();
        assert_eq!(s.total.persons.value(), Some(7));
    }

    #[test]
    fn rows_below_three_persons_are_suppressed_everywhere() {
        let mut cs = vec![
            contact(day(1), "nord", 3, None),
            contact(day(1), "sued", 1, Some("AB1")),
            contact(day(1), "sued", 1, Some("AB1")),
            contact(day(1), "west", 4, None),
        ];
        cs[1].materials = vec![MaterialCount {
            material_id: "essen".into(),
            count: 40,
        }];
        cs[2].referral_partners = vec!["p1".into()];
        let s = compute_from(&team(), &cs, &query()).unwrap();
        let sued = row(&s, Dimension::Area, "sued");
        assert!(sued.contacts.is_suppressed() && sued.persons.is_suppressed());
        assert_eq!(sued.contacts.to_string(), "<3");
        assert_eq!(format!("{:?}", sued.persons), "<3");
        let essen = row(&s, Dimension::Material, "essen");
        assert!(
            essen.amount.unwrap().is_suppressed(),
            "40 items of one person"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("40"), "a suppressed amount leaked: {json}");
        assert!(json.contains("\"<3\""));
        let nord = row(&s, Dimension::Area, "nord");
        assert_eq!(nord.persons.value(), Some(3));
        // Total 8 - nord 3 would give sued away: west (4 persons, the smallest that can lend
        // one) is hidden too, and marked as not small.
        let west = row(&s, Dimension::Area, "west");
        assert_eq!(west.persons.suppression(), Some(Suppression::Secondary));
        assert_eq!(west.contacts.to_string(), "x");
        // West's row (contacts, persons) and its chart cell.
        assert_eq!(s.disclosure.secondary, 3);
        assert_eq!(row(&s, Dimension::Referral, "p1").label, "Jobcenter");
        // Dedup also decides suppression: two contacts of one client are one person.
        assert!(row(&s, Dimension::Referral, "p1").contacts.is_suppressed());
        assert!(!json.contains("secret"));
    }

    #[test]
    fn months_materials_and_topics_are_grouped() {
        let mut cs: Vec<ContactSummary> =
            (1..=4).map(|d| contact(day(d), "nord", 1, None)).collect();
        for c in &mut cs {
            c.materials = vec![MaterialCount {
                material_id: "essen".into(),
                count: 2,
            }];
        }
        cs[0].topics = vec!["wohnen".into(), "sucht".into(), "wohnen".into()];
        cs.push(contact(
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            "nord",
            5,
            None,
        ));
        let q = StatsQuery {
            from: day(1),
            to: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
        };
        let s = compute_from(&team(), &cs, &q).unwrap();
        let months: Vec<&str> = s
            .table(Dimension::Month)
            .unwrap()
            .rows
            .iter()
            .map(|r| r.key.as_str())
            .collect();
        assert_eq!(months, ["2026-09", "2026-10"]);
        assert_eq!(
            row(&s, Dimension::Material, "essen")
                .amount
                .unwrap()
                .value(),
            Some(8)
        );
        assert_eq!(
            row(&s, Dimension::Topic, "wohnen").contacts.value(),
            Some(5)
        );
        assert!(row(&s, Dimension::Topic, "sucht").contacts.is_suppressed());
        assert_eq!(s.month_area.len(), 2);
    }

    #[test]
    fn contacts_outside_the_range_do_not_count() {
        let cs = vec![
            contact(day(1), "nord", 5, None),
            contact(
                NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
                "nord",
                5,
                None,
            ),
        ];
        let s = compute_from(&team(), &cs, &query()).unwrap();
        assert_eq!(s.total.contacts.value(), Some(1));
    }

    #[test]
    fn bad_ranges_are_typed_errors() {
        let q = StatsQuery {
            from: day(10),
            to: day(1),
        };
        assert!(matches!(
            compute_from(&team(), &[], &q),
            Err(StatsError::ReversedRange { .. })
        ));
        let q = StatsQuery {
            from: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
            to: day(1),
        };
        assert!(matches!(
            compute_from(&team(), &[], &q),
            Err(StatsError::RangeTooLong { .. })
        ));
        assert!(matches!(
            Error::from(StatsError::ReversedRange {
                from: day(2),
                to: day(1)
            }),
            Error::Invalid(_)
        ));
    }
}
