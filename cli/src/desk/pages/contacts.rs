//! `GET /contacts`: every contact with filters (date range, area, topic, author, review state,
//! client code, child protection) and full-text search, 50 per page. It runs on the core's
//! in-memory projections (`Workspace::list_contacts`), so no document is opened for a list.

use axum::extract::{Query, State};
use axum::http::Uri;
use chrono::NaiveDate;
use maud::html;
use serde::Deserialize;
use streetsync_core::{Catalog, ContactFilter, ReviewState};

use super::layout::{Frame, Reply, Section, core_fail, page, pager, workspace};
use super::review::{PAGE_SIZE, contact_head, contact_rows};
use crate::desk::i18n::Lang;
use crate::desk::state::DeskState;

/// The query of `/contacts` (every field may be empty).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ContactQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    area: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    safeguarding: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A date field: `Ok(None)` when empty, `Err` when not a date.
fn day(s: &str) -> Result<Option<NaiveDate>, ()> {
    match opt(s) {
        None => Ok(None),
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ()),
    }
}

impl ContactQuery {
    /// The core's filter, and whether a date had to be left out.
    fn filter(&self) -> (ContactFilter, bool, usize) {
        let from = day(&self.from);
        let to = day(&self.to);
        let bad_date = from.is_err() || to.is_err();
        let (mut from, mut to) = (from.unwrap_or(None), to.unwrap_or(None));
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            // A reversed range is read the way the lead meant it.
            (from, to) = (Some(t), Some(f));
        }
        let page = self
            .page
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=100_000).contains(p))
            .unwrap_or(1);
        let f = ContactFilter {
            from,
            to,
            area_id: opt(&self.area),
            topic_id: opt(&self.topic),
            author: opt(&self.author),
            review: ReviewState::from_key(self.state.trim()),
            client_code: opt(&self.client),
            safeguarding: matches!(self.safeguarding.trim(), "1" | "true" | "on").then_some(true),
            text: opt(&self.q),
            safeguarding_first: false,
            offset: (page - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
        };
        (f, bad_date, page)
    }

    /// The query again, for the pager's links.
    fn pairs(&self) -> Vec<(String, String)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("area", &self.area),
            ("topic", &self.topic),
            ("author", &self.author),
            ("state", &self.state),
            ("client", &self.client),
            ("safeguarding", &self.safeguarding),
            ("q", &self.q),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
    }
}

/// `GET /contacts`.
pub(crate) async fn list(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Query(q): Query<ContactQuery>,
) -> Reply {
    let ws = workspace(&state)?;
    let team = ws.team().map_err(|e| core_fail(lang, &e))?;
    let (filter, bad_date, page_no) = q.filter();
    let found = ws.list_contacts(&filter).map_err(|e| core_fail(lang, &e))?;
    let sel = |a: &str, b: &str| a.trim() == b;
    let content = html! {
        h1 { (lang.t("contacts-title")) }
        form method="get" action="/contacts" role="search" {
            fieldset {
                legend { (lang.t("filter-legend")) }
                div {
                    label for="f-q" { (lang.t("filter-q")) }
                    input id="f-q" type="search" name="q" value=(q.q) data-testid="filter-q";
                }
                div {
                    label for="f-from" { (lang.t("filter-from")) }
                    input id="f-from" type="date" name="from" value=(q.from);
                }
                div {
                    label for="f-to" { (lang.t("filter-to")) }
                    input id="f-to" type="date" name="to" value=(q.to);
                }
                div {
                    label for="f-area" { (lang.t("filter-area")) }
                    select id="f-area" name="area" {
                        option value="" { (lang.t("filter-any")) }
                        @for a in team.catalog(Catalog::Area) {
                            option value=(a.id) selected[sel(&q.area, &a.id)] { (a.name) }
                        }
                    }
                }
                div {
                    label for="f-topic" { (lang.t("filter-topic")) }
                    select id="f-topic" name="topic" {
                        option value="" { (lang.t("filter-any")) }
                        @for t in team.catalog(Catalog::Topic) {
                            option value=(t.id) selected[sel(&q.topic, &t.id)] { (t.name) }
                        }
                    }
                }
                div {
                    label for="f-author" { (lang.t("filter-author")) }
                    select id="f-author" name="author" {
                        option value="" { (lang.t("filter-any")) }
                        @for d in &team.roster {
                            option value=(d.device_id.to_string()) selected[sel(&q.author, &d.device_id.to_string())] {
                                (d.member) " (" (super::layout::short(&d.device_id)) ")"
                            }
                        }
                    }
                }
                div {
                    label for="f-state" { (lang.t("filter-state")) }
                    select id="f-state" name="state" {
                        option value="" { (lang.t("filter-any")) }
                        @for s in ReviewState::ALL {
                            option value=(s.as_str()) selected[sel(&q.state, s.as_str())] { (lang.vocab("review", s.as_str())) }
                        }
                    }
                }
                div {
                    label for="f-client" { (lang.t("filter-client")) }
                    input id="f-client" type="text" name="client" value=(q.client) autocomplete="off";
                }
                div {
                    input id="f-sg" type="checkbox" name="safeguarding" value="1" checked[filter.safeguarding == Some(true)];
                    label.inline for="f-sg" { (lang.t("filter-safeguarding")) }
                }
                div.buttons {
                    button.primary type="submit" data-testid="filter-submit" { (lang.t("filter-submit")) }
                    a href="/contacts" { (lang.t("filter-reset")) }
                }
            }
        }
        @if bad_date {
            p.flash.error role="alert" { (lang.t("filter-bad-date")) }
        }
        div data-live-region="contacts" {
            p data-testid="contacts-total" { (lang.ta("contacts-found", &[("total", crate::desk::i18n::Arg::N(found.total as i64))])) }
            @if found.items.is_empty() {
                p { (lang.t("contacts-none")) }
            } @else {
                table {
                    caption.sr-only { (lang.t("contacts-title")) }
                    (contact_head(lang))
                    tbody { (contact_rows(lang, &team, &found.items, "contact-row")) }
                }
                (pager(lang, "/contacts", &q.pairs(), page_no, found.total, PAGE_SIZE))
            }
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Contacts,
        title: lang.t("contacts-title"),
    };
    Ok(page(&f, content))
}
