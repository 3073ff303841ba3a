//! `GET /statistics`: the core's anonymous statistics for a date range, as tables and an SVG bar
//! chart of contacts per month; suppressed cells (fewer than 3 persons) are marked as such and
//! never show a number. `GET /statistics.csv`: the same as the core's CSV, as a download.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::IntoResponse;
use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use serde::Deserialize;
use streetsync_core::{Cell, Dimension, Row, Statistics, StatsQuery};

use super::layout::{Frame, Reply, Section, core_fail, page, workspace};
use crate::desk::i18n::{Arg, Lang, date};
use crate::desk::state::DeskState;

/// The range of `/statistics` (empty: this year up to today).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RangeQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl RangeQuery {
    fn query(&self) -> StatsQuery {
        let today = chrono::Local::now().date_naive();
        let start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
        let parse =
            |s: &str, d: NaiveDate| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").unwrap_or(d);
        StatsQuery {
            from: parse(&self.from, start),
            to: parse(&self.to, today),
        }
    }
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// One number cell: `data-suppressed="true"` and the core's mark when suppressed.
fn cell(lang: Lang, c: Cell) -> Markup {
    html! {
        @if c.is_suppressed() {
            td.num data-testid="stat-cell" data-suppressed="true" {
                abbr title=(lang.t("stats-suppressed")) { (c.to_string()) }
            }
        } @else {
            td.num data-testid="stat-cell" { (c.to_string()) }
        }
    }
}

/// A row's label in the lead's language (vocabulary values are translated; catalog names are the
/// team's own).
fn label(lang: Lang, d: Dimension, r: &Row) -> String {
    match d {
        Dimension::AgeBand => lang.vocab("age", &r.key),
        Dimension::Gender => lang.vocab("gender", &r.key),
        Dimension::Month => month(&r.key),
        _ => r.label.clone(),
    }
}

/// `2026-09` as `09.2026`.
fn month(key: &str) -> String {
    match key.split_once('-') {
        Some((y, m)) => format!("{m}.{y}"),
        None => key.to_owned(),
    }
}

/// The bar chart of contacts per month; suppressed months are drawn as an outlined bar marked
/// with the suppression mark, never with a height that would tell the number.
fn chart(lang: Lang, s: &Statistics, d: Dimension) -> Markup {
    let Some(t) = s.table(d) else {
        return html! {};
    };
    if t.rows.is_empty() {
        return html! {};
    }
    let max = t
        .rows
        .iter()
        .filter_map(|r| r.contacts.value())
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, h, pad) = (640.0_f64, 220.0_f64, 30.0_f64);
    let n = t.rows.len().max(1) as f64;
    let slot = (w - 2.0 * pad) / n;
    let bar_w = (slot * 0.7).clamp(2.0, 48.0);
    let title = lang.vocab("stats-dim", d.as_str());
    let title_id = format!("chart-{}", d.as_str());
    html! {
        figure {
            svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (w) " " (h + 40.0)} role="img" aria-labelledby=(title_id) data-testid="stats-chart" {
                title id=(title_id) { (title) }
                line.axis x1=(pad) y1=(h) x2=(w - pad) y2=(h) {}
                @for (i, r) in t.rows.iter().enumerate() {
                    @let x = pad + i as f64 * slot + (slot - bar_w) / 2.0;
                    @match r.contacts.value() {
                        Some(v) => {
                            @let bh = (v as f64 / max as f64) * (h - 20.0);
                            rect.bar x=(format!("{x:.1}")) y=(format!("{:.1}", h - bh)) width=(format!("{bar_w:.1}")) height=(format!("{bh:.1}")) {
                                title { (label(lang, d, r)) ": " (v) }
                            }
                            text x=(format!("{:.1}", x + bar_w / 2.0)) y=(format!("{:.1}", h - bh - 4.0)) text-anchor="middle" { (v) }
                        },
                        None => {
                            rect.bar.suppressed data-suppressed="true" x=(format!("{x:.1}")) y=(format!("{:.1}", h - 20.0)) width=(format!("{bar_w:.1}")) height="20" {
                                title { (label(lang, d, r)) ": " (lang.t("stats-chart-suppressed")) }
                            }
                            text x=(format!("{:.1}", x + bar_w / 2.0)) y=(format!("{:.1}", h - 24.0)) text-anchor="middle" { (r.contacts.to_string()) }
                        },
                    }
                    text x=(format!("{:.1}", x + bar_w / 2.0)) y=(format!("{:.1}", h + 16.0)) text-anchor="middle" { (label(lang, d, r)) }
                }
            }
            figcaption { (title) }
        }
    }
}

/// `GET /statistics`.
pub(crate) async fn show(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Query(r): Query<RangeQuery>,
) -> Reply {
    let ws = workspace(&state)?;
    let q = r.query();
    let csv_href = format!("/statistics.csv?from={}&to={}", iso(q.from), iso(q.to));
    let stats = match q.validate() {
        Ok(()) => Some(ws.statistics(&q).map_err(|e| core_fail(lang, &e))?),
        Err(e) => {
            state.set_flash(
                true,
                lang.ta("stats-bad-range", &[("detail", Arg::S(e.to_string()))]),
            );
            None
        }
    };
    let content = html! {
        h1 { (lang.t("stats-title")) }
        p { (lang.t("stats-explain")) }
        form method="get" action="/statistics" {
            fieldset {
                legend.sr-only { (lang.t("stats-title")) }
                div {
                    label for="s-from" { (lang.t("stats-from")) }
                    input id="s-from" type="date" name="from" value=(iso(q.from)) required;
                }
                div {
                    label for="s-to" { (lang.t("stats-to")) }
                    input id="s-to" type="date" name="to" value=(iso(q.to)) required;
                }
                div.buttons {
                    button.primary type="submit" { (lang.t("stats-show")) }
                    a.button href=(csv_href) download data-testid="csv-download" { (lang.t("stats-csv")) }
                }
            }
        }
        @if let Some(s) = &stats {
            div data-live-region="statistics" {
                p { (date(s.from)) " – " (date(s.to)) }
                table.stats {
                    caption { (lang.t("stats-total")) }
                    thead { tr {
                        th scope="col" { (lang.t("stats-col-label")) }
                        th scope="col" class="num" { (lang.t("stats-col-contacts")) }
                        th scope="col" class="num" { (lang.t("stats-col-persons")) }
                    } }
                    tbody { tr {
                        th scope="row" { (lang.t("stats-total")) }
                        (cell(lang, s.total.contacts))
                        (cell(lang, s.total.persons))
                    } }
                }
                div.charts {
                    (chart(lang, s, Dimension::Month))
                    (chart(lang, s, Dimension::Area))
                }
                @for t in &s.tables {
                    @let has_amount = t.rows.iter().any(|r| r.amount.is_some());
                    table.stats data-dimension=(t.dimension.as_str()) {
                        caption { (lang.vocab("stats-dim", t.dimension.as_str())) }
                        thead { tr {
                            th scope="col" { (lang.t("stats-col-label")) }
                            th scope="col" class="num" { (lang.t("stats-col-contacts")) }
                            th scope="col" class="num" { (lang.t("stats-col-persons")) }
                            @if has_amount { th scope="col" class="num" { (lang.t("stats-col-amount")) } }
                        } }
                        tbody {
                            @if t.rows.is_empty() {
                                tr { td colspan=(if has_amount { 4 } else { 3 }) { (lang.t("stats-empty")) } }
                            }
                            @for r in &t.rows {
                                tr {
                                    th scope="row" { (label(lang, t.dimension, r)) }
                                    (cell(lang, r.contacts))
                                    (cell(lang, r.persons))
                                    @if has_amount {
                                        @match r.amount {
                                            Some(a) => (cell(lang, a)),
                                            None => td {},
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Statistics,
        title: lang.t("stats-title"),
    };
    Ok(page(&f, content))
}

/// `GET /statistics.csv`: the download the lead asked for (the only file the desk hands out).
pub(crate) async fn csv(
    State(state): State<DeskState>,
    lang: Lang,
    Query(r): Query<RangeQuery>,
) -> Reply {
    let ws = workspace(&state)?;
    let q = r.query();
    let s = ws.statistics(&q).map_err(|e| core_fail(lang, &e))?;
    let mut out = Vec::new();
    streetsync_core::write_statistics(&s, &mut out).map_err(|e| core_fail(lang, &e))?;
    let name = format!("statistik-{}-{}.csv", iso(q.from), iso(q.to));
    let mut res = out.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
