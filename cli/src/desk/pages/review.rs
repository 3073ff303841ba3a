//! The review queue (child-protection concerns first, then what was handed in), one contact with
//! all its fields, its review thread and its history, and the review steps: ask, comment, approve,
//! erase.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use maud::{Markup, html};
use serde::Deserialize;
use streetsync_core::{
    Catalog, Contact, ContactFilter, ContactSummary, MAX_PAGE, RecordId, ReviewState, Team,
};

use super::layout::{
    Frame, Reply, Section, back_with, back_with_error, core_fail, csrf_field, fail, member_name,
    page, see_other, short, workspace,
};
use crate::desk::i18n::{Arg, Lang, date, datetime};
use crate::desk::state::DeskState;

/// Rows per page of every list.
pub(crate) const PAGE_SIZE: usize = 50;

/// One row of a contact table (queue, contacts, client): date, place, area, author, state.
pub(crate) fn contact_rows(
    lang: Lang,
    team: &Team,
    rows: &[ContactSummary],
    testid: &str,
) -> Markup {
    html! {
        @for s in rows {
            tr data-testid=(testid) data-contact-id=(s.id.to_string()) {
                td { a href={"/contacts/" (s.id)} { (date(s.date)) " " (s.start_time.format("%H:%M")) } }
                td { (s.place) }
                td { (team.name_of(Catalog::Area, &s.area_id)) }
                td { (member_name(team, &s.author)) }
                td {
                    @if s.safeguarding {
                        strong.badge.alarm { (lang.t("safeguarding-short")) }
                        " "
                    }
                    span.state { (lang.vocab("review", s.review.as_str())) }
                }
                td.num { (s.comments) }
            }
        }
    }
}

/// The head of a contact table.
pub(crate) fn contact_head(lang: Lang) -> Markup {
    html! {
        thead {
            tr {
                th scope="col" { (lang.t("col-when")) }
                th scope="col" { (lang.t("col-place")) }
                th scope="col" { (lang.t("col-area")) }
                th scope="col" { (lang.t("col-author")) }
                th scope="col" { (lang.t("col-state")) }
                th scope="col" { (lang.t("col-comments")) }
            }
        }
    }
}

/// `GET /review`: the queue.
pub(crate) async fn queue(State(state): State<DeskState>, lang: Lang, uri: Uri) -> Reply {
    let ws = workspace(&state)?;
    let team = ws.team().map_err(|e| core_fail(lang, &e))?;
    // Child-protection concerns that are not approved yet, whatever their state.
    let urgent = ws
        .list_contacts(&ContactFilter {
            safeguarding: Some(true),
            limit: MAX_PAGE,
            ..Default::default()
        })
        .map_err(|e| core_fail(lang, &e))?;
    let urgent: Vec<ContactSummary> = urgent
        .items
        .into_iter()
        .filter(|s| s.review != ReviewState::Approved && s.review != ReviewState::Draft)
        .collect();
    let page_no = page_of(&uri);
    let submitted = ws
        .list_contacts(&ContactFilter {
            safeguarding: Some(false),
            review: Some(ReviewState::Submitted),
            offset: (page_no - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
            ..Default::default()
        })
        .map_err(|e| core_fail(lang, &e))?;
    let content = html! {
        h1 { (lang.t("review-title")) }
        div data-live-region="queue" {
            section aria-labelledby="urgent-h" {
                h2 id="urgent-h" { (lang.t("review-urgent")) " (" (urgent.len()) ")" }
                @if urgent.is_empty() {
                    p { (lang.t("review-urgent-none")) }
                } @else {
                    table {
                        caption.sr-only { (lang.t("review-urgent")) }
                        (contact_head(lang))
                        tbody { (contact_rows(lang, &team, &urgent, "review-row")) }
                    }
                }
            }
            section aria-labelledby="submitted-h" {
                h2 id="submitted-h" { (lang.t("review-queue-submitted")) " (" (submitted.total) ")" }
                @if submitted.items.is_empty() {
                    p { (lang.t("review-queue-submitted-none")) }
                } @else {
                    table {
                        caption.sr-only { (lang.t("review-queue-submitted")) }
                        (contact_head(lang))
                        tbody { (contact_rows(lang, &team, &submitted.items, "review-row")) }
                    }
                    (super::layout::pager(lang, "/review", &[], page_no, submitted.total, PAGE_SIZE))
                }
            }
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Review,
        title: lang.t("review-title"),
    };
    Ok(page(&f, content))
}

/// `page=N` of a query (1 when missing or wrong).
pub(crate) fn page_of(uri: &Uri) -> usize {
    uri.query()
        .map(crate::desk::i18n::form_pairs)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|p| *p >= 1 && *p <= 100_000)
        .unwrap_or(1)
}

/// A record id from the path, or a 404 page.
pub(crate) fn record_id(lang: Lang, text: &str) -> Result<RecordId, super::layout::Refusal> {
    text.parse::<RecordId>()
        .map_err(|_| fail(lang, StatusCode::NOT_FOUND, "error-no-record").into())
}

/// What a change was, in the lead's language (`create`, `approve`, ... from the core).
fn history_what(lang: Lang, message: &str) -> String {
    lang.try_t(&format!("hist-{}", message.replace(' ', "-")))
        .unwrap_or_else(|| message.to_owned())
}

/// The fields a change touched, by their names on the page.
fn history_fields(lang: Lang, fields: &[String]) -> String {
    let mut names: Vec<String> = fields
        .iter()
        .filter(|f| {
            !matches!(
                f.as_str(),
                "author" | "created_at" | "updated_at" | "schema"
            )
        })
        .map(|f| {
            lang.try_t(&format!("hfield-{f}"))
                .unwrap_or_else(|| f.clone())
        })
        .collect();
    names.dedup();
    names.join(", ")
}

fn yes_no(lang: Lang, b: bool) -> String {
    lang.t(if b { "yes" } else { "no" })
}

fn fields(lang: Lang, team: &Team, c: &Contact) -> Markup {
    let d = &c.fields;
    let none = lang.t("none");
    let list = |items: Vec<String>| {
        if items.is_empty() {
            none.clone()
        } else {
            items.join(", ")
        }
    };
    let names =
        |cat: Catalog, ids: &[String]| list(ids.iter().map(|i| team.name_of(cat, i)).collect());
    html! {
        dl.fields {
            dt { (lang.t("field-date")) } dd { (date(d.date)) }
            dt { (lang.t("field-time")) } dd {
                (d.start_time.format("%H:%M"))
                @if let Some(e) = d.end_time { "–" (e.format("%H:%M")) }
            }
            dt { (lang.t("field-area")) } dd { (team.name_of(Catalog::Area, &d.area_id)) }
            dt { (lang.t("field-place")) } dd { (d.place) }
            @if let Some(l) = d.location {
                dt { (lang.t("field-location")) } dd { (format!("{:.2}, {:.2}", l.lat, l.lon)) }
            }
            dt { (lang.t("field-setting")) } dd { (lang.vocab("setting", d.setting.as_str())) }
            dt { (lang.t("field-persons")) } dd { (d.persons) }
            dt { (lang.t("field-first-contact")) } dd { (yes_no(lang, d.first_contact)) }
            dt { (lang.t("field-age")) } dd { (lang.vocab("age", d.age_band.as_str())) }
            dt { (lang.t("field-gender")) } dd { (lang.vocab("gender", d.gender.as_str())) }
            dt { (lang.t("field-client")) } dd {
                @match &d.client_code {
                    Some(code) => a href={"/contacts?client=" (code)} { (code) },
                    None => (lang.t("none")),
                }
            }
            dt { (lang.t("field-housing")) } dd { (lang.vocab("housing", d.housing.as_str())) }
            dt { (lang.t("field-topics")) } dd { (names(Catalog::Topic, &d.topics)) }
            dt { (lang.t("field-interventions")) } dd {
                (list(d.interventions.iter().map(|i| lang.vocab("intervention", i.as_str())).collect()))
            }
            dt { (lang.t("field-materials")) } dd {
                (list(d.materials.iter().map(|m| format!("{} × {}", m.count, team.name_of(Catalog::Material, &m.material_id))).collect()))
            }
            dt { (lang.t("field-referrals")) } dd {
                @if d.referrals.is_empty() { (lang.t("none")) } @else {
                    a href="/referrals" { (d.referrals.len()) }
                }
            }
            dt { (lang.t("field-safeguarding")) } dd { (yes_no(lang, d.safeguarding)) }
            dt { (lang.t("field-retention")) } dd { (lang.vocab("retention", d.retention.as_str())) }
            dt { (lang.t("field-author")) } dd { (member_name(team, &c.author)) }
            dt { (lang.t("field-created")) } dd { (datetime(c.created_at)) }
            dt { (lang.t("field-updated")) } dd { (datetime(c.updated_at)) }
        }
    }
}

/// `GET /contacts/{id}`.
pub(crate) async fn contact(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let ws = workspace(&state)?;
    let id = record_id(lang, &id)?;
    let team = ws.team().map_err(|e| core_fail(lang, &e))?;
    let c = ws.get_contact(id).map_err(|e| core_fail(lang, &e))?;
    let history = ws.history(id).map_err(|e| core_fail(lang, &e))?;
    let base = format!("/contacts/{id}");
    let word = short(&id);
    let can_approve = c.review != ReviewState::Approved;
    let content = html! {
        h1 {
            (lang.t("contact-title")) " " (date(c.fields.date)) " · " (c.fields.place)
        }
        div data-live-region="contact-head" {
            p {
                (lang.t("field-review")) ": "
                strong data-testid="review-state" data-state=(c.review.as_str()) { (lang.vocab("review", c.review.as_str())) }
                @if c.fields.safeguarding {
                    " " strong.badge.alarm { (lang.t("safeguarding-long")) }
                }
            }
        }
        div.columns {
            section aria-labelledby="fields-h" {
                h2 id="fields-h" { (lang.t("contact-fields")) }
                (fields(lang, &team, &c))
                h3 { (lang.t("field-note")) }
                div.note data-testid="contact-note" data-live-region="note" { (c.fields.note) }
            }
            section aria-labelledby="thread-h" {
                h2 id="thread-h" { (lang.t("thread-title")) }
                div data-live-region="thread" {
                    @if c.comments.is_empty() {
                        p { (lang.t("thread-empty")) }
                    } @else {
                        ol.thread {
                            @for m in &c.comments {
                                li data-testid="thread-message" data-kind=(m.kind.as_str()) {
                                    p.meta {
                                        strong { (lang.vocab("comment", m.kind.as_str())) }
                                        " · " (member_name(&team, &m.author))
                                        " · " time datetime=(m.at.to_string()) { (datetime(m.at)) }
                                    }
                                    p { (m.text) }
                                }
                            }
                        }
                    }
                }
                form method="post" action={(base) "/ask"} {
                    (csrf_field(&state))
                    label for="ask-text" { (lang.t("ask-label")) }
                    textarea id="ask-text" name="text" rows="3" required data-testid="ask-text" {}
                    div.buttons {
                        button type="submit" data-testid="ask-submit" { (lang.t("ask-submit")) }
                        button type="submit" formaction={(base) "/comment"} data-testid="comment-submit" { (lang.t("comment-submit")) }
                    }
                }
                div data-live-region="approve" {
                    @if can_approve {
                        form method="post" action={(base) "/approve"} {
                            (csrf_field(&state))
                            button.primary type="submit" data-testid="approve-submit" { (lang.t("approve-submit")) }
                        }
                    }
                }
            }
        }
        (super::referrals::add_form(lang, &state, &team, &c))
        section aria-labelledby="history-h" data-live-region="history" {
            h2 id="history-h" { (lang.t("history-title")) }
            table {
                caption.sr-only { (lang.t("history-title")) }
                thead { tr {
                    th scope="col" { (lang.t("col-when")) }
                    th scope="col" { (lang.t("col-who")) }
                    th scope="col" { (lang.t("col-what")) }
                    th scope="col" { (lang.t("col-fields")) }
                } }
                tbody {
                    @for h in &history {
                        tr data-testid="history-row" {
                            td { (datetime(h.at_ms)) }
                            td { (h.member.clone().unwrap_or_else(|| h.device.map(|d| short(&d)).unwrap_or_default())) }
                            td { (history_what(lang, &h.message)) }
                            td { @if h.message != "create" { (history_fields(lang, &h.fields)) } }
                        }
                    }
                }
            }
        }
        section.danger aria-labelledby="erase-h" {
            h2 id="erase-h" { (lang.t("erase-title")) }
            p { (lang.t("erase-explain")) }
            form method="post" action={(base) "/erase"} {
                (csrf_field(&state))
                label for="erase-confirm" {
                    (lang.t("erase-type")) " " code data-testid="erase-word" { (word) }
                }
                input id="erase-confirm" name="confirm" type="text" autocomplete="off" required data-testid="erase-confirm";
                button.danger type="submit" data-testid="erase-submit" { (lang.t("erase-submit")) }
            }
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Review,
        title: lang.t("contact-title"),
    };
    Ok(page(&f, content))
}

/// A form with one text.
#[derive(Deserialize)]
pub(crate) struct TextForm {
    #[serde(default)]
    text: String,
}

/// A form with a typed confirmation.
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    pub(crate) confirm: String,
}

/// Runs one review step and goes back to the contact.
fn step(
    state: &DeskState,
    lang: Lang,
    id: &str,
    ok_key: &str,
    f: impl FnOnce(&streetsync_core::Workspace, RecordId) -> streetsync_core::Result<Contact>,
) -> Reply {
    let ws = workspace(state)?;
    let rid = record_id(lang, id)?;
    let to = format!("/contacts/{rid}");
    match f(&ws, rid) {
        Ok(_) => Ok(back_with(state, &to, false, lang.t(ok_key))),
        Err(e) => Ok(back_with_error(state, lang, &to, &e)),
    }
}

/// `POST /contacts/{id}/ask`.
pub(crate) async fn ask(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<TextForm>,
) -> Reply {
    step(&state, lang, &id, "done-ask", |ws, id| {
        ws.request_changes(id, f.text.trim())
    })
}

/// `POST /contacts/{id}/comment`.
pub(crate) async fn comment(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<TextForm>,
) -> Reply {
    step(&state, lang, &id, "done-comment", |ws, id| {
        ws.comment_contact(id, f.text.trim())
    })
}

/// `POST /contacts/{id}/approve`.
pub(crate) async fn approve(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
) -> Reply {
    step(&state, lang, &id, "done-approve", |ws, id| {
        ws.approve_contact(id)
    })
}

/// `POST /contacts/{id}/erase` with `confirm` = the first eight characters of the id.
pub(crate) async fn erase(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Reply {
    erase_confirmed(&state, lang, "/contacts", &id, &f.confirm, "done-erase")
}

/// Erases the record `id` everywhere once `confirm` is the first eight characters of its id, then
/// goes back to `section`'s list with the message `done_key`; a wrong word changes nothing and
/// returns to the record's page. Contacts and clients share this one confirmation rule.
pub(crate) fn erase_confirmed(
    state: &DeskState,
    lang: Lang,
    section: &str,
    id: &str,
    confirm: &str,
    done_key: &str,
) -> Reply {
    let ws = workspace(state)?;
    let rid = record_id(lang, id)?;
    let back = format!("{section}/{rid}");
    if confirm.trim() != short(&rid) {
        return Ok(back_with(state, &back, true, lang.t("erase-mismatch")));
    }
    match ws.erase_record(rid) {
        Ok(()) => Ok(back_with(
            state,
            section,
            false,
            lang.ta(done_key, &[("id", Arg::S(short(&rid)))]),
        )),
        Err(e) => Ok(back_with_error(state, lang, &back, &e)),
    }
}

/// `GET /`: the review queue is the desk's start page.
pub(crate) async fn home() -> axum::response::Response {
    see_other("/review")
}
