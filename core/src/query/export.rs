//! CSV export: the team's contact list (for its own use) and statistics (to send out).
//!
//! The contact export is one row per contact, without the confidential note unless the caller
//! sets [`ContactExport::include_notes`] (off by default). The statistics export writes suppressed
//! cells as `<3`, exactly as every other output of [`crate::query::stats`].

use std::io::Write;

use chrono::NaiveDate;

use crate::error::{Error, Result, ValidationError};
use crate::model::team::{Catalog, Team};
use crate::query::ContactSummary;
use crate::query::stats::{Cell, Statistics};

/// What to export of the contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactExport {
    /// First day, inclusive.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    pub to: Option<NaiveDate>,
    /// Include the confidential note (for the team's own use only). Off by default.
    pub include_notes: bool,
}

/// The columns of the contact export, in order (`note` only with `include_notes`).
pub const CONTACT_COLUMNS: &[&str] = &[
    "id",
    "date",
    "start_time",
    "area_id",
    "area",
    "place",
    "setting",
    "persons",
    "first_contact",
    "age_band",
    "gender",
    "client_code",
    "topics",
    "materials",
    "referral_partners",
    "safeguarding",
    "review",
    "comments",
    "author",
    "updated_at_ms",
];

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::Io(io),
        other => Error::Io(std::io::Error::other(format!("{other:?}"))),
    }
}

/// Writes given projections as CSV, oldest first, and returns how many rows were written
/// (`Workspace::export_contacts` reads them from the store). `progress(done, total)` is called as
/// rows are written, for a progress bar.
pub fn write_contacts<W: Write>(
    team: &Team,
    contacts: &[ContactSummary],
    export: &ContactExport,
    out: W,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    if let (Some(f), Some(t)) = (export.from, export.to)
        && t < f
    {
        return Err(ValidationError::new("to", format!("{t} is before from {f}")).into());
    }
    let mut rows: Vec<&ContactSummary> = contacts
        .iter()
        .filter(|s| export.from.is_none_or(|f| s.date >= f))
        .filter(|s| export.to.is_none_or(|t| s.date <= t))
        .collect();
    rows.sort_by_key(|s| (s.date, s.start_time, s.id));
    let total = rows.len() as u64;
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = CONTACT_COLUMNS.to_vec();
    if export.include_notes {
        header.push("note");
    }
    w.write_record(&header).map_err(csv_error)?;
    for (i, s) in rows.iter().enumerate() {
        let mut rec = vec![
            s.id.to_string(),
            s.date.to_string(),
            s.start_time.format("%H:%M").to_string(),
            s.area_id.clone(),
            team.name_of(Catalog::Area, &s.area_id),
            s.place.clone(),
            s.setting.as_str().to_owned(),
            s.persons.to_string(),
            s.first_contact.to_string(),
            s.age_band.as_str().to_owned(),
            s.gender.as_str().to_owned(),
            s.client_code.clone().unwrap_or_default(),
            s.topics.join(";"),
            s.materials
                .iter()
                .map(|m| format!("{}={}", m.material_id, m.count))
                .collect::<Vec<_>>()
                .join(";"),
            s.referral_partners.join(";"),
            s.safeguarding.to_string(),
            s.review.as_str().to_owned(),
            s.comments.to_string(),
            s.author.clone(),
            s.updated_at.to_string(),
        ];
        if export.include_notes {
            rec.push(s.note.clone());
        }
        w.write_record(&rec).map_err(csv_error)?;
        progress(i as u64 + 1, total);
    }
    w.flush()?;
    Ok(total)
}

/// Writes statistics as CSV: `dimension,key,label,contacts,persons,amount`, with the total first.
/// Suppressed cells are `<3`; `amount` is empty where a dimension has none.
pub fn write_statistics<W: Write>(stats: &Statistics, out: W) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["dimension", "key", "label", "contacts", "persons", "amount"])
        .map_err(csv_error)?;
    let cell = |c: Option<Cell>| c.map(|c| c.to_string()).unwrap_or_default();
    let t = &stats.total;
    w.write_record([
        "total",
        &t.key,
        &t.label,
        &t.contacts.to_string(),
        &t.persons.to_string(),
        "",
    ])
    .map_err(csv_error)?;
    for table in &stats.tables {
        for r in &table.rows {
            w.write_record([
                table.dimension.as_str(),
                &r.key,
                &r.label,
                &r.contacts.to_string(),
                &r.persons.to_string(),
                &cell(r.amount),
            ])
            .map_err(csv_error)?;
        }
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::team::CatalogEntry;
    use crate::model::vocab::{AgeBand, Gender, ReviewState, Setting};
    use crate::query::stats::{StatsQuery, compute_from};
    use chrono::NaiveTime;
    use streetsync_wire::{RecordId, TeamId};

    fn team() -> Team {
        Team {
            id: TeamId::random(),
            name: "T".into(),
            roster: vec![],
            areas: vec![CatalogEntry {
                id: "nord".into(),
                name: "Nordstadt".into(),
                retired: false,
            }],
            topics: vec![],
            materials: vec![],
            partners: vec![],
            epochs: vec![],
            revocations: vec![],
            retention: Default::default(),
            reported: Vec::new(),
        }
    }

    fn contact(d: u32, persons: i64, note: &str) -> ContactSummary {
        ContactSummary {
            id: RecordId::random(),
            date: NaiveDate::from_ymd_opt(2026, 9, d).unwrap(),
            start_time: NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
            area_id: "nord".into(),
            place: "Park, \"Nord\"".into(),
            setting: Setting::DropIn,
            persons,
            first_contact: true,
            age_band: AgeBand::From14To17,
            gender: Gender::Diverse,
            client_code: None,
            topics: vec!["a".into(), "b".into()],
            materials: vec![],
            referral_partners: vec![],
            safeguarding: true,
            review: ReviewState::Submitted,
            comments: 1,
            author: "dev".into(),
            updated_at: 5,
            note: note.into(),
            retention: crate::model::vocab::RetentionClass::Standard,
        }
    }

    fn read(bytes: &[u8]) -> Vec<csv::StringRecord> {
        csv::Reader::from_reader(bytes)
            .records()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn contacts_export_leaves_notes_out_by_default() {
        let cs = vec![contact(2, 1, "confidential words"), contact(1, 2, "other")];
        let mut out = Vec::new();
        let mut calls = 0;
        let n = write_contacts(
            &team(),
            &cs,
            &ContactExport::default(),
            &mut out,
            &mut |_, _| calls += 1,
        )
        .unwrap();
        assert_eq!((n, calls), (2, 2));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("confidential"));
        let rows = read(&out);
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][1], "2026-09-01", "oldest first");
        assert_eq!(&rows[0][4], "Nordstadt");
        assert_eq!(&rows[0][5], "Park, \"Nord\"", "quoting round-trips");
        assert_eq!(&rows[0][12], "a;b");
        assert_eq!(rows[0].len(), CONTACT_COLUMNS.len());
    }

    #[test]
    fn notes_are_included_only_on_request_and_ranges_filter() {
        let cs = vec![contact(2, 1, "line one\nline two"), contact(1, 2, "other")];
        let mut out = Vec::new();
        let export = ContactExport {
            from: NaiveDate::from_ymd_opt(2026, 9, 2),
            to: None,
            include_notes: true,
        };
        write_contacts(&team(), &cs, &export, &mut out, &mut |_, _| {}).unwrap();
        let rows = read(&out);
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][CONTACT_COLUMNS.len()], "line one\nline two");
        let bad = ContactExport {
            from: NaiveDate::from_ymd_opt(2026, 9, 2),
            to: NaiveDate::from_ymd_opt(2026, 9, 1),
            include_notes: false,
        };
        assert!(matches!(
            write_contacts(&team(), &cs, &bad, Vec::new(), &mut |_, _| {}),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn statistics_csv_writes_suppressed_cells_as_less_than_three() {
        let cs = vec![contact(1, 1, "x"), contact(2, 4, "y")];
        let q = StatsQuery {
            from: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 9, 30).unwrap(),
        };
        let s = compute_from(&team(), &cs, &q).unwrap();
        let mut out = Vec::new();
        write_statistics(&s, &mut out).unwrap();
        let rows = read(&out);
        assert_eq!(&rows[0][0], "total");
        assert_eq!(&rows[0][4], "5");
        assert!(
            rows.iter()
                .any(|r| &r[0] == "gender" && &r[3] == "2" && &r[4] == "5")
        );
        // The age band row of 14-17 has 5 persons; a single-person row would read <3.
        let single = vec![contact(1, 1, "x")];
        let s = compute_from(&team(), &single, &q).unwrap();
        let mut out = Vec::new();
        write_statistics(&s, &mut out).unwrap();
        let rows = read(&out);
        assert!(rows.iter().all(|r| &r[3] == "<3" && &r[4] == "<3"));
    }
}
