//! Disclosure control, checked the way an attacker would attack it: from the published numbers of
//! one statistic alone, enumerate every assignment of values to the hidden cells that agrees with
//! all published sums, and demand that every hidden cell can take at least two values.
//!
//! The attacker knows the domain of each hidden number from its mark: a `<3` row has 1 or 2
//! persons, an `x` row (hidden by secondary suppression) has at least 3, and every hidden contacts
//! count is at least 1 (rows and cells without contacts are not listed). The relations: the rows
//! of month, area, age band and gender each add up to the total (contacts and persons), and the
//! chart's cells add up to the month and area rows (contacts).

#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{NaiveDate, NaiveTime};
use proptest::prelude::*;
use streetsync_core::{
    AgeBand, Cell, ContactSummary, Dimension, Gender, ReviewState, Setting, Statistics, StatsQuery,
    Suppression, Team, compute_from,
};
use streetsync_core::{CatalogEntry, MaterialCount};
use streetsync_wire::{RecordId, TeamId};

/// The attacker's model: integer unknowns with bounds and linear equations over them.
#[derive(Default)]
struct Model {
    /// Bounds of each unknown and a name for messages.
    vars: Vec<(i64, i64, String)>,
    /// `sum(coefficient * unknown) = value`, the published part moved to the value.
    eqs: Vec<(Vec<(usize, i64)>, i64)>,
}

/// One side of an equation being built: published numbers add to the constant, hidden ones are
/// unknowns.
#[derive(Default)]
struct Sum {
    vars: Vec<usize>,
    published: i64,
}

impl Model {
    fn var(&mut self, lo: i64, hi: i64, name: String) -> usize {
        self.vars.push((lo, hi, name));
        self.vars.len() - 1
    }

    /// `sum = value`.
    fn eq(&mut self, sum: Sum, value: i64) {
        if !sum.vars.is_empty() {
            let vs = sum.vars.iter().map(|&v| (v, 1)).collect();
            self.eqs.push((vs, value - sum.published));
        }
    }

    /// `cells = margin`, both with unknowns.
    fn eq_sums(&mut self, cells: Sum, margin: Sum) {
        let mut vs: Vec<(usize, i64)> = cells.vars.iter().map(|&v| (v, 1)).collect();
        vs.extend(margin.vars.iter().map(|&v| (v, -1)));
        if !vs.is_empty() {
            self.eqs.push((vs, margin.published - cells.published));
        }
    }

    /// Narrows `b` to the values each unknown can still take given every equation and the other
    /// unknowns' bounds, until nothing changes; false if some equation cannot hold. Sound (only
    /// values no solution uses are removed), so [`Model::feasible`] stays exact. The equations'
    /// coefficients are 1 and -1.
    fn propagate(&self, b: &mut [(i64, i64)]) -> bool {
        loop {
            let mut changed = false;
            for (vs, target) in &self.eqs {
                let range = |b: &[(i64, i64)], v: usize, k: i64| {
                    let (x, y) = (k * b[v].0, k * b[v].1);
                    (x.min(y), x.max(y))
                };
                let lo: i64 = vs.iter().map(|&(v, k)| range(b, v, k).0).sum();
                let hi: i64 = vs.iter().map(|&(v, k)| range(b, v, k).1).sum();
                if *target < lo || *target > hi {
                    return false;
                }
                for &(v, k) in vs {
                    let (vmin, vmax) = range(b, v, k);
                    // k * x must make up what the others (between lo - vmin and hi - vmax) leave.
                    let (tlo, thi) = (target - (hi - vmax), target - (lo - vmin));
                    let (nlo, nhi) = match k {
                        1 => (tlo, thi),
                        -1 => (-thi, -tlo),
                        _ => continue,
                    };
                    let (olo, ohi) = b[v];
                    let (nlo, nhi) = (olo.max(nlo), ohi.min(nhi));
                    if nlo > nhi {
                        return false;
                    }
                    if (nlo, nhi) != (olo, ohi) {
                        b[v] = (nlo, nhi);
                        changed = true;
                    }
                }
            }
            if !changed {
                return true;
            }
        }
    }

    /// Whether some assignment within `bounds` satisfies every equation (bounds narrowed by
    /// [`Model::propagate`] at every step, then depth first over the first unknown not fixed).
    fn feasible(&self, bounds: &[(i64, i64)]) -> bool {
        let mut b = bounds.to_vec();
        if !self.propagate(&mut b) {
            return false;
        }
        let Some(v) = (0..b.len()).find(|&v| b[v].0 < b[v].1) else {
            return true;
        };
        let (lo, hi) = b[v];
        (lo..=hi).any(|x| {
            let mut c = b.clone();
            c[v] = (x, x);
            self.feasible(&c)
        })
    }

    /// The unknowns that take only one value across all consistent assignments.
    fn pinned(&self) -> Vec<String> {
        let base: Vec<(i64, i64)> = self.vars.iter().map(|v| (v.0, v.1)).collect();
        let mut out = Vec::new();
        for (i, (lo, hi, name)) in self.vars.iter().enumerate() {
            let values = (*lo..=*hi)
                .filter(|&x| {
                    let mut b = base.clone();
                    b[i] = (x, x);
                    self.feasible(&b)
                })
                .take(2)
                .count();
            if values < 2 {
                out.push(format!("{name} ({values} value(s) possible)"));
            }
        }
        out
    }
}

/// Builds the attacker's model from the published output only.
fn model_of(s: &Statistics) -> Model {
    let mut m = Model::default();
    let (Some(c), Some(p)) = (s.total.contacts.value(), s.total.persons.value()) else {
        // Fewer than three persons in all: only the total may be published.
        assert!(s.tables.iter().all(|t| t.rows.is_empty() && t.withheld));
        assert!(s.month_area.is_empty());
        return m;
    };
    let (c, p) = (c as i64, p as i64);
    let term = |m: &mut Model, sum: &mut Sum, cell: Cell, persons: bool, name: String| match (
        cell.value(),
        cell.suppression(),
    ) {
        (Some(v), _) => sum.published += v as i64,
        (None, Some(Suppression::Primary)) if persons => sum.vars.push(m.var(1, 2, name)),
        (None, Some(Suppression::Secondary)) if persons => sum.vars.push(m.var(3, p, name)),
        (None, _) => sum.vars.push(m.var(1, c, name)),
    };
    let partitions = [
        Dimension::Month,
        Dimension::Area,
        Dimension::AgeBand,
        Dimension::Gender,
    ];
    // Row contacts unknowns of month and area, for the chart's equations.
    let mut margins: Vec<(Dimension, String, Sum)> = Vec::new();
    for t in &s.tables {
        if t.withheld {
            assert!(t.rows.is_empty());
            continue;
        }
        let bound = partitions.contains(&t.dimension);
        let (mut contacts, mut persons) = (Sum::default(), Sum::default());
        for r in &t.rows {
            let at = |col: &str| format!("{}/{}/{col}", t.dimension.as_str(), r.key);
            let before = contacts.vars.len();
            let published = contacts.published;
            term(&mut m, &mut contacts, r.contacts, false, at("contacts"));
            term(&mut m, &mut persons, r.persons, true, at("persons"));
            if let Some(a) = r.amount {
                // Amounts are bound by nothing; still an unknown the attacker must guess.
                term(&mut m, &mut Sum::default(), a, false, at("amount"));
            }
            if matches!(t.dimension, Dimension::Month | Dimension::Area) {
                margins.push((
                    t.dimension,
                    r.key.clone(),
                    Sum {
                        vars: contacts.vars[before..].to_vec(),
                        published: contacts.published - published,
                    },
                ));
            }
        }
        if bound {
            m.eq(contacts, c);
            m.eq(persons, p);
        }
    }
    if s.month_area_withheld {
        assert!(s.month_area.is_empty());
        return m;
    }
    assert!(
        !s.table(Dimension::Month).unwrap().withheld && !s.table(Dimension::Area).unwrap().withheld,
        "a chart whose margins are withheld is published"
    );
    let mut cell_terms: Vec<(String, String, Sum)> = Vec::new();
    for cell in &s.month_area {
        let mut one = Sum::default();
        let name = format!("chart/{}/{}", cell.month, cell.area_id);
        term(&mut m, &mut one, cell.contacts, false, name);
        cell_terms.push((cell.month.clone(), cell.area_id.clone(), one));
    }
    for (d, key, margin) in margins {
        // cells of the line - margin = 0
        let mut sum = Sum::default();
        for (month, area, one) in &cell_terms {
            let on_line = match d {
                Dimension::Month => month == &key,
                _ => area == &key,
            };
            if on_line {
                sum.vars.extend(&one.vars);
                sum.published += one.published;
            }
        }
        m.eq_sums(sum, margin);
    }
    m
}

fn team() -> Team {
    let entry = |id: &str| CatalogEntry {
        id: id.into(),
        name: id.into(),
        retired: false,
    };
    Team {
        id: TeamId::random(),
        name: "T".into(),
        roster: vec![],
        areas: vec![entry("a"), entry("b"), entry("c")],
        topics: vec![entry("t1"), entry("t2")],
        materials: vec![entry("m1")],
        partners: vec![],
        epochs: vec![],
        revocations: vec![],
        retention: Default::default(),
        reported: Vec::new(),
    }
}

/// A generated contact: month, area, age band, gender, persons, client (None or one of three
/// clients whose area, age band and gender are fixed, as they are in life), topic, material.
type Gen = (u8, u8, u8, u8, i64, Option<u8>, u8, u8);

fn contacts(spec: &[Gen]) -> Vec<ContactSummary> {
    let areas = ["a", "b", "c"];
    let ages = [
        AgeBand::From14To17,
        AgeBand::From18To20,
        AgeBand::From27To39,
    ];
    let genders = [Gender::Female, Gender::Male];
    spec.iter()
        .enumerate()
        .map(
            |(i, &(month, area, age, gender, persons, client, topic, material))| {
                let (area, age, gender, persons, code) = match client {
                    Some(k) => (k % 3, k % 3, k % 2, 1, Some(format!("CL-{k}"))),
                    None => (area % 3, age % 3, gender % 2, persons, None),
                };
                ContactSummary {
                    id: RecordId::random(),
                    date: NaiveDate::from_ymd_opt(
                        2026,
                        9 + u32::from(month % 2),
                        1 + (i as u32 % 3),
                    )
                    .unwrap(),
                    start_time: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                    area_id: areas[area as usize].into(),
                    place: String::new(),
                    setting: Setting::Street,
                    persons,
                    first_contact: false,
                    age_band: ages[age as usize],
                    gender: genders[gender as usize],
                    client_code: code,
                    topics: vec![format!("t{}", 1 + topic % 2)],
                    materials: if material % 3 == 0 {
                        vec![MaterialCount {
                            material_id: "m1".into(),
                            count: 1 + i64::from(material),
                        }]
                    } else {
                        vec![]
                    },
                    referral_partners: vec![],
                    safeguarding: false,
                    review: ReviewState::Draft,
                    comments: 0,
                    author: "a".into(),
                    updated_at: 0,
                    note: String::new(),
                    retention: streetsync_core::RetentionClass::Standard,
                }
            },
        )
        .collect()
}

fn query() -> StatsQuery {
    StatsQuery {
        from: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
    }
}

fn pinned_cells(s: &Statistics) -> Vec<String> {
    model_of(s).pinned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_hidden_cell_can_be_worked_out_from_the_published_ones(
        spec in prop::collection::vec(
            (0u8..2, 0u8..3, 0u8..3, 0u8..2, 1i64..4, prop::option::weighted(0.3, 0u8..3), 0u8..2, 0u8..6),
            1..16,
        )
    ) {
        let s = compute_from(&team(), &contacts(&spec), &query()).unwrap();
        let pinned = pinned_cells(&s);
        prop_assert!(pinned.is_empty(), "pinned: {pinned:?}\n{}", serde_json::to_string(&s).unwrap());
    }
}

/// The demo's leak (issue 14): age bands 25 + 32 + 34 of 92 persons and one `<3` row.
#[test]
fn the_demo_age_band_leak_is_closed() {
    let mut spec: Vec<Gen> = Vec::new();
    for (age, n) in [(0u8, 25), (1, 32), (2, 34)] {
        for i in 0..n {
            spec.push((i % 2, i % 3, age, i % 2, 1, None, 0, 1));
        }
    }
    let mut cs = contacts(&spec);
    let mut old = contacts(&[(0, 0, 0, 0, 1, None, 0, 1)]);
    old[0].age_band = AgeBand::Over64;
    cs.extend(old);
    let s = compute_from(&team(), &cs, &query()).unwrap();
    let ages = s.table(Dimension::AgeBand).unwrap();
    let hidden: Vec<_> = ages
        .rows
        .iter()
        .filter_map(|r| r.persons.suppression())
        .collect();
    assert_eq!(hidden, [Suppression::Secondary, Suppression::Primary]);
    assert_eq!(
        ages.rows[0].persons.suppression(),
        Some(Suppression::Secondary),
        "the smallest row (25) is the complement"
    );
    assert!(pinned_cells(&s).is_empty());
}
