//! The partner directory (Jobcenter, Suchthilfe, ...): `GET /partners` lists and adds,
//! `GET /partners/{id}` edits; both save through the team document (`Workspace::add_partner`,
//! `update_partner`), so every device gets the change at the next sync.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use maud::{Markup, html};
use serde::Deserialize;
use streetsync_core::{Partner, PartnerDraft};

use super::layout::{
    Frame, Reply, Section, back_with, back_with_error, core_fail, csrf_field, fail, page, workspace,
};
use crate::desk::i18n::Lang;
use crate::desk::state::DeskState;

/// The partner form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PartnerForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    offers: String,
    #[serde(default)]
    contact_person: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    notes: String,
}

impl PartnerForm {
    fn draft(&self) -> PartnerDraft {
        PartnerDraft {
            name: self.name.trim().to_owned(),
            offers: self
                .offers
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            contact_person: self.contact_person.trim().to_owned(),
            phone: self.phone.trim().to_owned(),
            address: self.address.trim().to_owned(),
            notes: self.notes.trim().to_owned(),
        }
    }
}

/// The add or edit form; `p` fills it in.
fn form(lang: Lang, state: &DeskState, action: &str, p: Option<&Partner>, prefix: &str) -> Markup {
    let v = |f: fn(&Partner) -> String| p.map(f).unwrap_or_default();
    let id = |n: &str| format!("{prefix}-{n}");
    html! {
        form method="post" action=(action) {
            (csrf_field(state))
            label for=(id("name")) { (lang.t("partner-name")) }
            input id=(id("name")) type="text" name="name" required value=(v(|p| p.name.clone())) data-testid="partner-name";
            label for=(id("offers")) { (lang.t("partner-offers")) " (" (lang.t("partner-offers-hint")) ")" }
            input id=(id("offers")) type="text" name="offers" value=(v(|p| p.offers.join(", ")));
            label for=(id("person")) { (lang.t("partner-person")) }
            input id=(id("person")) type="text" name="contact_person" value=(v(|p| p.contact_person.clone()));
            label for=(id("phone")) { (lang.t("partner-phone")) }
            input id=(id("phone")) type="text" name="phone" value=(v(|p| p.phone.clone()));
            label for=(id("address")) { (lang.t("partner-address")) }
            input id=(id("address")) type="text" name="address" value=(v(|p| p.address.clone()));
            label for=(id("notes")) { (lang.t("partner-notes")) }
            textarea id=(id("notes")) name="notes" rows="3" { (v(|p| p.notes.clone())) }
            div.buttons {
                button.primary type="submit" data-testid="partner-submit" { (lang.t("partner-save")) }
            }
        }
    }
}

/// `GET /partners`.
pub(crate) async fn list(State(state): State<DeskState>, lang: Lang, uri: Uri) -> Reply {
    let ws = workspace(&state)?;
    let partners = ws.partners().map_err(|e| core_fail(lang, &e))?;
    let content = html! {
        h1 { (lang.t("partners-title")) }
        div data-live-region="partners" {
            @if partners.is_empty() {
                p { (lang.t("partners-none")) }
            } @else {
                table {
                    caption.sr-only { (lang.t("partners-title")) }
                    thead { tr {
                        th scope="col" { (lang.t("col-name")) }
                        th scope="col" { (lang.t("col-offers")) }
                        th scope="col" { (lang.t("col-contact-person")) }
                        th scope="col" { (lang.t("col-phone")) }
                    } }
                    tbody {
                        @for p in &partners {
                            tr data-testid="partner-row" data-partner-id=(p.id) {
                                th scope="row" {
                                    a href={"/partners/" (p.id)} { (p.name) }
                                    @if p.retired { " (" (lang.t("partner-retired")) ")" }
                                }
                                td { (p.offers.join(", ")) }
                                td { (p.contact_person) }
                                td { (p.phone) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="add-h" {
            h2 id="add-h" { (lang.t("partner-add")) }
            (form(lang, &state, "/partners", None, "add"))
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Partners,
        title: lang.t("partners-title"),
    };
    Ok(page(&f, content))
}

/// `GET /partners/{id}`.
pub(crate) async fn edit(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Path(id): Path<String>,
) -> Reply {
    let ws = workspace(&state)?;
    let partners = ws.partners().map_err(|e| core_fail(lang, &e))?;
    let Some(p) = partners.iter().find(|p| p.id == id) else {
        return Err(fail(lang, StatusCode::NOT_FOUND, "error-no-record").into());
    };
    let content = html! {
        h1 { (lang.t("partner-edit")) ": " (p.name) }
        (form(lang, &state, &format!("/partners/{}", p.id), Some(p), "edit"))
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Partners,
        title: lang.t("partner-edit"),
    };
    Ok(page(&f, content))
}

/// `POST /partners`.
pub(crate) async fn add(
    State(state): State<DeskState>,
    lang: Lang,
    Form(f): Form<PartnerForm>,
) -> Reply {
    let ws = workspace(&state)?;
    match ws.add_partner(f.draft()) {
        Ok(_) => Ok(back_with(
            &state,
            "/partners",
            false,
            lang.t("done-partner-add"),
        )),
        Err(e) => Ok(back_with_error(&state, lang, "/partners", &e)),
    }
}

/// `POST /partners/{id}`.
pub(crate) async fn save(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<PartnerForm>,
) -> Reply {
    let ws = workspace(&state)?;
    match ws.update_partner(&id, f.draft()) {
        Ok(_) => Ok(back_with(
            &state,
            "/partners",
            false,
            lang.t("done-partner-edit"),
        )),
        Err(e) => Ok(back_with_error(
            &state,
            lang,
            &format!("/partners/{id}"),
            &e,
        )),
    }
}
