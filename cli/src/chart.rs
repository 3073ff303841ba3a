//! The SVG chart of contacts per month by area, drawn with plotters' SVG backend.
//!
//! Text is laid out with plotters' built-in size estimate (no font feature is compiled in), so
//! no system fonts are needed; the viewer draws the `<text>` elements with its own fonts.
//! Hidden cells (fewer than 3 persons, or hidden by secondary suppression to protect one) are
//! drawn as 0 and the chart says so; a withheld chart draws no cells.

use std::path::Path;

use chrono::{Datelike as _, NaiveDate};
use plotters::prelude::*;
use streetsync_core::Statistics;

use crate::error::{CliError, CliResult};

fn months(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut out = Vec::new();
    let (mut y, mut m) = (from.year(), from.month());
    while (y, m) <= (to.year(), to.month()) && out.len() < 240 {
        out.push(format!("{y:04}-{m:02}"));
        if m == 12 {
            y += 1;
            m = 1;
        } else {
            m += 1;
        }
    }
    out
}

/// Draws the chart into `path`.
pub fn draw(s: &Statistics, path: &Path) -> CliResult<()> {
    draw_inner(s, path)
        .map_err(|e| CliError::invalid(format!("cannot draw {}: {e}", path.display())))
}

fn draw_inner(s: &Statistics, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let months = months(s.from, s.to);
    let areas: Vec<&(String, String)> = s
        .areas
        .iter()
        .filter(|(id, _)| s.month_area.iter().any(|c| &c.area_id == id))
        .collect();
    let value = |month: &str, area: &str| -> u64 {
        s.month_area
            .iter()
            .find(|c| c.month == month && c.area_id == area)
            .and_then(|c| c.contacts.value())
            .unwrap_or(0)
    };
    let max = months
        .iter()
        .flat_map(|m| areas.iter().map(move |(a, _)| (m, a)))
        .map(|(m, a)| value(m, a))
        .max()
        .unwrap_or(0)
        .max(3);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let (body, foot) = root.split_vertically(510);
    let n = months.len().max(1);
    let mut chart = ChartBuilder::on(&body)
        .caption(
            format!(
                "{}: contacts per month by area, {} to {}",
                s.team, s.from, s.to
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .margin_right(45)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            0usize..n.saturating_sub(1).max(1),
            0u64..(max + max / 10 + 1),
        )?;
    let labels = months.clone();
    chart
        .configure_mesh()
        .x_labels(n.min(24))
        .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
        .y_desc("contacts")
        .draw()?;
    for (i, (id, name)) in areas.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(usize, u64)> = months
            .iter()
            .enumerate()
            .map(|(mi, m)| (mi, value(m, id)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(move |p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    foot.draw_text(
        if s.month_area_withheld {
            "Withheld: the small cells of this chart could not be protected against subtraction."
        } else {
            "Hidden cells (fewer than 3 persons, or hidden to protect one) are drawn as 0. Persons counted once per day per client code."
        },
        &("sans-serif", 13).into_font().color(&BLACK),
        (15, 8),
    )?;
    root.present()?;
    Ok(())
}
