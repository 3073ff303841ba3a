//! `GET /clients`: the pseudonymous clients (code, alias, age band, gender, consents in force), and
//! `GET /clients/{id}`: one client with the contacts logged under its code.

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use maud::html;
use serde::Deserialize;
use streetsync_core::{ClientFilter, ContactFilter, MAX_PAGE};

use axum::Form;

use super::layout::{Frame, Reply, Section, core_fail, csrf_field, page, short, workspace};
use super::review::{ConfirmForm, erase_confirmed};
use super::review::{PAGE_SIZE, contact_head, contact_rows, page_of, record_id};
use crate::desk::i18n::{Lang, datetime};
use crate::desk::state::DeskState;

/// The search of `/clients`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClientQuery {
    #[serde(default)]
    q: String,
}

/// `GET /clients`.
pub(crate) async fn list(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Query(q): Query<ClientQuery>,
) -> Reply {
    let ws = workspace(&state)?;
    let text = q.q.trim();
    let list = ws
        .list_clients(&ClientFilter {
            text: (!text.is_empty()).then(|| text.to_owned()),
        })
        .map_err(|e| core_fail(lang, &e))?;
    let page_no = page_of(&uri);
    let total = list.len();
    let shown: Vec<_> = list
        .iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    let pairs: Vec<(String, String)> = if text.is_empty() {
        Vec::new()
    } else {
        vec![("q".to_owned(), text.to_owned())]
    };
    let content = html! {
        h1 { (lang.t("clients-title")) }
        p { (lang.t("clients-explain")) }
        form method="get" action="/clients" role="search" {
            label for="c-q" { (lang.t("clients-search")) }
            input id="c-q" type="search" name="q" value=(q.q);
            " "
            button type="submit" { (lang.t("clients-search-submit")) }
        }
        div data-live-region="clients" {
            @if shown.is_empty() {
                p { (lang.t("clients-none")) }
            } @else {
                table {
                    caption.sr-only { (lang.t("clients-title")) }
                    thead { tr {
                        th scope="col" { (lang.t("col-code")) }
                        th scope="col" { (lang.t("col-alias")) }
                        th scope="col" { (lang.t("col-age")) }
                        th scope="col" { (lang.t("col-gender")) }
                        th scope="col" { (lang.t("col-consents")) }
                    } }
                    tbody {
                        @for c in &shown {
                            tr data-testid="client-row" {
                                th scope="row" { a href={"/clients/" (c.id)} { (c.code) } }
                                td { (c.alias.clone().unwrap_or_default()) }
                                td { (lang.vocab("age", c.age_band.as_str())) }
                                td { (lang.vocab("gender", c.gender.as_str())) }
                                td.num { (c.active_consents) }
                            }
                        }
                    }
                }
                (super::layout::pager(lang, "/clients", &pairs, page_no, total, PAGE_SIZE))
            }
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Clients,
        title: lang.t("clients-title"),
    };
    Ok(page(&f, content))
}

/// `GET /clients/{id}`.
pub(crate) async fn show(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let ws = workspace(&state)?;
    let id = record_id(lang, &id)?;
    let team = ws.team().map_err(|e| core_fail(lang, &e))?;
    let client = ws.get_client(id).map_err(|e| core_fail(lang, &e))?;
    let contacts = ws
        .list_contacts(&ContactFilter {
            client_code: Some(client.fields.code.clone()),
            limit: MAX_PAGE,
            ..Default::default()
        })
        .map_err(|e| core_fail(lang, &e))?;
    let c = &client.fields;
    let content = html! {
        h1 { (lang.t("client-title")) " " (c.code) }
        dl.fields {
            dt { (lang.t("col-alias")) } dd { (c.alias.clone().unwrap_or_default()) }
            dt { (lang.t("col-age")) } dd { (lang.vocab("age", c.age_band.as_str())) }
            dt { (lang.t("col-gender")) } dd { (lang.vocab("gender", c.gender.as_str())) }
            dt { (lang.t("field-updated")) } dd { (datetime(client.updated_at)) }
        }
        @if !c.notes.is_empty() {
            h2 { (lang.t("client-notes")) }
            div.note { (c.notes) }
        }
        h2 { (lang.t("client-contacts")) " (" (contacts.total) ")" }
        div data-live-region="client-contacts" {
            table {
                caption.sr-only { (lang.t("client-contacts")) }
                (contact_head(lang))
                tbody { (contact_rows(lang, &team, &contacts.items, "contact-row")) }
            }
        }
        section.danger aria-labelledby="erase-h" {
            h2 id="erase-h" { (lang.t("erase-client-title")) }
            p { (lang.t("erase-client-explain")) }
            form method="post" action={"/clients/" (client.id) "/erase"} {
                (csrf_field(&state))
                label for="erase-confirm" {
                    (lang.t("erase-type")) " " code data-testid="erase-word" { (short(&client.id)) }
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
        section: Section::Clients,
        title: lang.t("client-title"),
    };
    Ok(page(&f, content))
}

/// `POST /clients/{id}/erase` with `confirm` = the first eight characters of the id: the client
/// record is erased everywhere (its contacts stay, with the code as logged).
pub(crate) async fn erase(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Reply {
    erase_confirmed(
        &state,
        lang,
        "/clients",
        &id,
        &f.confirm,
        "done-erase-client",
    )
}
