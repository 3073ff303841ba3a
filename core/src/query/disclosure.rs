//! Secondary (complementary) suppression: which further numbers of one statistic must be hidden
//! so that nobody who knows every published number can work out a hidden one exactly.
//!
//! Primary suppression hides every row (and chart cell) of fewer than three persons. That alone
//! leaks: a table in which every contact has exactly one value (month, area, age band, gender)
//! sums to the published total, so a single hidden row is the total minus the rest. The chart of
//! contacts per month by area is a two-way table whose margins are the month and area tables.
//!
//! The attacker this module defends against knows every published number, the linear relations
//! between them, and the domain of every hidden number: a row marked as primary has 1 or 2 persons,
//! a row hidden by this module has at least 3, every hidden contacts count is at least 1. A hidden
//! number is safe when a second assignment exists that satisfies all of that and gives it another
//! value. This module proves safety constructively: for every hidden number it finds a
//! *perturbation* of the true values (+1 here, -1 there) that keeps every published sum and every
//! domain, so the truth and the perturbed truth are two consistent assignments that differ in it.
//!
//! - One-way relations (persons of the four partition tables; contacts of age band and gender, and
//!   of month and area when the chart is withheld): a pair of hidden rows of one table, one going
//!   up by 1 and the other down by 1.
//! - The two-way relation (contacts of chart cells with the month and area rows as margins): a
//!   rectangle of four hidden cells of the table extended by its margins, +1 and -1 alternating
//!   (a margin cell moves with the opposite sign to the inner cells of its row, since it is their
//!   sum).
//!
//! Each perturbation touches only numbers of one relation, so all of them hold together. Where a
//! hidden number has none, the cheapest published numbers that give it one are hidden too
//! (smallest first) and the search repeats until nothing changes. If no choice works (a rare table
//! such as `1, 3, 3`: the 1 cannot go up without a 3 going below 3), the whole table is withheld.

use super::stats::Suppression;

/// Persons below this are hidden by primary suppression.
const SMALL: u64 = super::stats::SUPPRESS_BELOW;

/// One row of a table (or one chart cell) as this module sees it: its true counts and whether it
/// is hidden. Never leaves the query layer.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) contacts: u64,
    pub(crate) persons: u64,
    pub(crate) hidden: Option<Suppression>,
}

impl Unit {
    /// A unit, hidden as primary when it has fewer than three persons.
    pub(crate) fn new(contacts: u64, persons: u64) -> Self {
        Unit {
            contacts,
            persons,
            hidden: (persons < SMALL).then_some(Suppression::Primary),
        }
    }
}

/// A chart cell: the index of its month row in table 0 and of its area row in table 1.
#[derive(Debug, Clone)]
pub(crate) struct ChartUnit {
    pub(crate) month: usize,
    pub(crate) area: usize,
    pub(crate) unit: Unit,
}

/// Everything of one statistic that is bound by a published sum. Table 0 is months, table 1 areas
/// (the chart's margins); the rest are further partition tables (age band, gender).
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub(crate) tables: Vec<Vec<Unit>>,
    pub(crate) withheld: Vec<bool>,
    pub(crate) chart: Vec<ChartUnit>,
    pub(crate) chart_withheld: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Contacts,
    Persons,
}

fn value(u: &Unit, c: Column) -> u64 {
    match c {
        Column::Contacts => u.contacts,
        Column::Persons => u.persons,
    }
}

/// Whether the number may go up by one inside its domain, were it hidden as `as_`.
fn can_up(u: &Unit, c: Column, as_: Suppression) -> bool {
    match (c, as_) {
        (Column::Persons, Suppression::Primary) => u.persons + 1 < SMALL,
        _ => true,
    }
}

/// Whether the number may go down by one inside its domain, were it hidden as `as_`.
fn can_down(u: &Unit, c: Column, as_: Suppression) -> bool {
    let v = value(u, c);
    match (c, as_) {
        (Column::Persons, Suppression::Primary) => v >= 2,
        (Column::Persons, Suppression::Secondary) => v > SMALL,
        (Column::Contacts, _) => v >= 2,
    }
}

/// The suppression `u` has, or would get if hidden now.
fn kind(u: &Unit) -> Suppression {
    u.hidden.unwrap_or(Suppression::Secondary)
}

/// Whether `u` and `v` can move by one in opposite directions.
fn pair_moves(u: &Unit, v: &Unit, c: Column) -> bool {
    (can_up(u, c, kind(u)) && can_down(v, c, kind(v)))
        || (can_down(u, c, kind(u)) && can_up(v, c, kind(v)))
}

/// Gives every hidden number of one table and column a partner. `Ok(true)` if it hid more,
/// `Err(())` if some hidden number cannot get one.
fn fix_pairs(units: &mut [Unit], c: Column) -> Result<bool, ()> {
    let mut changed = false;
    for i in 0..units.len() {
        if units[i].hidden.is_none() {
            continue;
        }
        let safe = units
            .iter()
            .enumerate()
            .any(|(j, v)| j != i && v.hidden.is_some() && pair_moves(&units[i], v, c));
        if safe {
            continue;
        }
        let best = units
            .iter()
            .enumerate()
            .filter(|(j, v)| *j != i && v.hidden.is_none() && pair_moves(&units[i], v, c))
            .min_by_key(|(j, v)| (v.persons, v.contacts, *j))
            .map(|(j, _)| j);
        match best {
            Some(j) => {
                units[j].hidden = Some(Suppression::Secondary);
                changed = true;
            }
            None => return Err(()),
        }
    }
    Ok(changed)
}

/// A cell of the chart extended by its margins: `None` stands for the margin position.
type Pos = (Option<usize>, Option<usize>);

/// Gives every hidden contacts number of the chart and its margins a rectangle. `Ok(true)` if it
/// hid more, `Err(())` if some hidden number cannot get one.
fn fix_rectangles(layout: &mut Layout) -> Result<bool, ()> {
    let months = layout.tables[0].len();
    let areas = layout.tables[1].len();
    let mut inner = vec![vec![None::<usize>; areas]; months];
    for (i, c) in layout.chart.iter().enumerate() {
        if let Some(slot) = inner.get_mut(c.month).and_then(|r| r.get_mut(c.area)) {
            *slot = Some(i);
        }
    }
    let unit = |l: &Layout, p: Pos| -> Option<Unit> {
        match p {
            (Some(m), Some(a)) => inner[m][a].map(|i| l.chart[i].unit.clone()),
            (Some(m), None) => Some(l.tables[0][m].clone()),
            (None, Some(a)) => Some(l.tables[1][a].clone()),
            (None, None) => None,
        }
    };
    let rows: Vec<Option<usize>> = (0..months).map(Some).chain([None]).collect();
    let cols: Vec<Option<usize>> = (0..areas).map(Some).chain([None]).collect();
    let mut changed = false;
    for &r1 in &rows {
        for &c1 in &cols {
            let Some(u) = unit(layout, (r1, c1)) else {
                continue;
            };
            if u.hidden.is_none() {
                continue;
            }
            // The cheapest rectangle through (r1, c1): cost is what it newly hides.
            let mut best: Option<(u64, [Pos; 3])> = None;
            for &r2 in &rows {
                for &c2 in &cols {
                    if r2 == r1 || c2 == c1 {
                        continue;
                    }
                    let corners = [(r1, c2), (r2, c2), (r2, c1)];
                    let Some(others) = corners
                        .iter()
                        .map(|&p| unit(layout, p))
                        .collect::<Option<Vec<Unit>>>()
                    else {
                        continue;
                    };
                    let cells = [(r1, c1), corners[0], corners[1], corners[2]];
                    let units = [&u, &others[0], &others[1], &others[2]];
                    let feasible = [1i8, -1].iter().any(|&sigma| {
                        cells.iter().zip(units).enumerate().all(|(k, (p, v))| {
                            let alternating = if k % 2 == 0 { sigma } else { -sigma };
                            let margin = p.0.is_none() != p.1.is_none();
                            let delta = if margin { -alternating } else { alternating };
                            delta > 0 || can_down(v, Column::Contacts, kind(v))
                        })
                    });
                    if !feasible {
                        continue;
                    }
                    let cost: u64 = others
                        .iter()
                        .filter(|v| v.hidden.is_none())
                        .map(|v| v.contacts)
                        .sum();
                    if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                        best = Some((cost, corners));
                    }
                }
            }
            match best {
                Some((0, _)) => {}
                Some((_, corners)) => {
                    for p in corners {
                        let target = match p {
                            (Some(m), Some(a)) => inner[m][a].map(|i| &mut layout.chart[i].unit),
                            (Some(m), None) => Some(&mut layout.tables[0][m]),
                            (None, Some(a)) => Some(&mut layout.tables[1][a]),
                            (None, None) => None,
                        };
                        if let Some(t) = target
                            && t.hidden.is_none()
                        {
                            t.hidden = Some(Suppression::Secondary);
                        }
                    }
                    changed = true;
                }
                None => return Err(()),
            }
        }
    }
    Ok(changed)
}

/// Hides further numbers of `layout` (smallest first) until every hidden number has a
/// perturbation, withholding a table or the chart where none can be found.
pub(crate) fn protect(layout: &mut Layout) {
    layout.withheld.resize(layout.tables.len(), false);
    if layout.tables.len() < 2 {
        layout.chart_withheld = true;
    }
    loop {
        let mut changed = false;
        for t in 0..layout.tables.len() {
            if layout.withheld[t] {
                continue;
            }
            let mut columns = vec![Column::Persons];
            // Month and area contacts are bound by the chart while it is published.
            if t >= 2 || layout.chart_withheld {
                columns.push(Column::Contacts);
            }
            for c in columns {
                match fix_pairs(&mut layout.tables[t], c) {
                    Ok(more) => changed |= more,
                    Err(()) => {
                        layout.withheld[t] = true;
                        if t < 2 {
                            layout.chart_withheld = true;
                        }
                        changed = true;
                        break;
                    }
                }
            }
        }
        if !layout.chart_withheld {
            match fix_rectangles(layout) {
                Ok(more) => changed |= more,
                Err(()) => {
                    layout.chart_withheld = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(values: &[(u64, u64)]) -> Vec<Unit> {
        values.iter().map(|&(c, p)| Unit::new(c, p)).collect()
    }

    fn hidden(units: &[Unit]) -> Vec<Option<Suppression>> {
        units.iter().map(|u| u.hidden).collect()
    }

    #[test]
    fn a_lone_small_row_gets_the_smallest_partner_that_can_absorb_it() {
        // 65+ has 1 person: its partner must be able to go down by one and stay >= 3, so 3 is no
        // use and 4 is the smallest.
        let mut l = Layout {
            tables: vec![
                vec![],
                vec![],
                table(&[(20, 25), (3, 3), (4, 4), (30, 34), (1, 1)]),
            ],
            ..Layout::default()
        };
        protect(&mut l);
        assert_eq!(
            hidden(&l.tables[2]),
            [
                None,
                None,
                Some(Suppression::Secondary),
                None,
                Some(Suppression::Primary)
            ]
        );
    }

    #[test]
    fn two_small_rows_of_one_person_are_not_safe_together() {
        // 1 + 1 would be pinned by the total (both can only be 1 if their sum is 2).
        let mut l = Layout {
            tables: vec![vec![], vec![], table(&[(1, 1), (1, 1), (9, 9), (5, 5)])],
            ..Layout::default()
        };
        protect(&mut l);
        assert_eq!(l.tables[2][3].hidden, Some(Suppression::Secondary));
        assert_eq!(l.tables[2][2].hidden, None);
    }

    #[test]
    fn a_table_that_cannot_be_protected_is_withheld() {
        let mut l = Layout {
            tables: vec![vec![], vec![], table(&[(1, 1), (3, 3), (3, 3)])],
            ..Layout::default()
        };
        protect(&mut l);
        assert!(l.withheld[2]);
    }

    #[test]
    fn a_hidden_chart_cell_gets_a_rectangle() {
        // Two months, two areas; (m0, a0) is small.
        let chart = |m, a, c, p| ChartUnit {
            month: m,
            area: a,
            unit: Unit::new(c, p),
        };
        let mut l = Layout {
            tables: vec![table(&[(12, 12), (20, 20)]), table(&[(10, 10), (22, 22)])],
            chart: vec![
                chart(0, 0, 2, 2),
                chart(0, 1, 10, 10),
                chart(1, 0, 8, 8),
                chart(1, 1, 12, 12),
            ],
            ..Layout::default()
        };
        protect(&mut l);
        assert!(!l.chart_withheld);
        assert!(l.chart.iter().all(|c| c.unit.hidden.is_some()));
        assert!(l.tables.iter().flatten().all(|u| u.hidden.is_none()));
    }
}
