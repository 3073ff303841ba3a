//! `GET /referrals`: every referral (Vermittlung) with its consent (§ 67b SGB X), newest contact
//! first; recording consent for a referral that has none, and withdrawing it (the consent stays on
//! record as withdrawn, with the day).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::NaiveDate;
use maud::Markup;
use maud::html;
use serde::Deserialize;
use streetsync_core::{Consent, Contact, Intervention, RecordId, Referral, ReferralOutcome, Team};

use super::layout::{
    Frame, Reply, Section, back_with, back_with_error, core_fail, csrf_field, page, pager, short,
    workspace,
};
use super::review::{PAGE_SIZE, page_of, record_id};
use crate::desk::i18n::{Arg, Lang, date};
use crate::desk::state::DeskState;

fn partner_name(team: &Team, id: &str) -> String {
    team.partners
        .iter()
        .find(|p| p.id == id)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| id.to_owned())
}

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// `GET /referrals`.
pub(crate) async fn list(State(state): State<DeskState>, lang: Lang, uri: Uri) -> Reply {
    let ws = workspace(&state)?;
    let team = ws.team().map_err(|e| core_fail(lang, &e))?;
    let mut with: Vec<_> = ws
        .contact_summaries()
        .map_err(|e| core_fail(lang, &e))?
        .into_iter()
        .filter(|s| !s.referral_partners.is_empty())
        .collect();
    with.sort_by_key(|s| std::cmp::Reverse((s.date, s.start_time)));
    let total = with.len();
    let page_no = page_of(&uri);
    let mut contacts = Vec::new();
    for s in with.iter().skip((page_no - 1) * PAGE_SIZE).take(PAGE_SIZE) {
        contacts.push(ws.get_contact(s.id).map_err(|e| core_fail(lang, &e))?);
    }
    let today = today().format("%Y-%m-%d").to_string();
    let content = html! {
        h1 { (lang.t("referrals-title")) }
        p { (lang.t("referrals-explain")) }
        @if contacts.is_empty() {
            p { (lang.t("referrals-none")) }
        } @else {
            table {
                caption.sr-only { (lang.t("referrals-title")) }
                thead { tr {
                    th scope="col" { (lang.t("col-contact")) }
                    th scope="col" { (lang.t("col-partner")) }
                    th scope="col" { (lang.t("col-reason")) }
                    th scope="col" { (lang.t("col-outcome")) }
                    th scope="col" { (lang.t("col-consent")) }
                    th scope="col" { (lang.t("col-actions")) }
                } }
                tbody {
                    @for c in &contacts {
                        @for r in &c.fields.referrals {
                            @let base = format!("/referrals/{}/{}", c.id, r.id);
                            @let fid = format!("{}-{}", short(&c.id), r.id);
                            tr data-testid="referral-row" data-contact-id=(c.id.to_string()) data-referral-id=(r.id) {
                                th scope="row" {
                                    a href={"/contacts/" (c.id)} { (date(c.fields.date)) " · " (c.fields.place) }
                                    @if let Some(code) = &c.fields.client_code { " (" (code) ")" }
                                }
                                td { (partner_name(&team, &r.partner_id)) }
                                td { (r.reason) }
                                td { (lang.vocab("outcome", r.outcome.as_str())) }
                                td data-testid="consent-state" {
                                    @match &r.consent {
                                        None => (lang.t("consent-none")),
                                        Some(k) => {
                                            @match k.revoked_on {
                                                Some(d) => (lang.ta("consent-withdrawn", &[("date", Arg::S(date(d)))])),
                                                None => (lang.ta("consent-active", &[("date", Arg::S(date(k.given_on)))])),
                                            }
                                            br;
                                            small { (k.scope) " → " (k.recipient) ": " (k.purpose) }
                                        }
                                    }
                                }
                                td {
                                    @match &r.consent {
                                        None => {
                                            details {
                                                summary { (lang.t("consent-record")) }
                                                form method="post" action={(base) "/consent"} {
                                                    (csrf_field(&state))
                                                    label for={"scope-" (fid)} { (lang.t("consent-scope")) }
                                                    input id={"scope-" (fid)} type="text" name="scope" required;
                                                    label for={"recipient-" (fid)} { (lang.t("consent-recipient")) }
                                                    input id={"recipient-" (fid)} type="text" name="recipient" required;
                                                    label for={"purpose-" (fid)} { (lang.t("consent-purpose")) }
                                                    input id={"purpose-" (fid)} type="text" name="purpose" required;
                                                    label for={"given-" (fid)} { (lang.t("consent-given-on")) }
                                                    input id={"given-" (fid)} type="date" name="given_on" value=(today) required;
                                                    button type="submit" data-testid="consent-submit" { (lang.t("consent-record")) }
                                                }
                                            }
                                        },
                                        Some(k) if k.revoked_on.is_none() => {
                                            form method="post" action={(base) "/withdraw"} {
                                                (csrf_field(&state))
                                                label for={"on-" (fid)} { (lang.t("consent-withdraw-on")) }
                                                input id={"on-" (fid)} type="date" name="on" value=(today) required;
                                                button.danger type="submit" data-testid="withdraw-submit" { (lang.t("consent-withdraw")) }
                                            }
                                        },
                                        Some(_) => {},
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager(lang, "/referrals", &[], page_no, total, PAGE_SIZE))
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Referrals,
        title: lang.t("referrals-title"),
    };
    Ok(page(&f, content))
}

/// The consent form.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsentForm {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    given_on: String,
}

/// The withdraw form.
#[derive(Debug, Deserialize)]
pub(crate) struct WithdrawForm {
    #[serde(default)]
    on: String,
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.is_empty() {
        return Some(today());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Changes one referral's consent with `f`, which says why it cannot (a localized key) or does it.
fn change_consent(
    state: &DeskState,
    lang: Lang,
    contact: &str,
    referral: &str,
    ok_key: &str,
    f: impl FnOnce(&mut Option<Consent>) -> Result<(), &'static str>,
) -> Reply {
    let ws = workspace(state)?;
    let id = record_id(lang, contact)?;
    let c = ws.get_contact(id).map_err(|e| core_fail(lang, &e))?;
    let mut draft = c.fields.clone();
    let Some(r) = draft.referrals.iter_mut().find(|r| r.id == referral) else {
        return Ok(back_with(
            state,
            "/referrals",
            true,
            lang.t("referral-missing"),
        ));
    };
    if let Err(key) = f(&mut r.consent) {
        return Ok(back_with(state, "/referrals", true, lang.t(key)));
    }
    match ws.update_contact(id, draft) {
        Ok(_) => Ok(back_with(state, "/referrals", false, lang.t(ok_key))),
        Err(e) => Ok(back_with_error(state, lang, "/referrals", &e)),
    }
}

/// `POST /referrals/{contact_id}/{referral_id}/consent`.
pub(crate) async fn consent(
    State(state): State<DeskState>,
    lang: Lang,
    Path((contact, referral)): Path<(String, String)>,
    Form(f): Form<ConsentForm>,
) -> Reply {
    let Some(given_on) = parse_day(&f.given_on) else {
        return Ok(back_with(&state, "/referrals", true, lang.t("bad-date")));
    };
    change_consent(&state, lang, &contact, &referral, "done-consent", |c| {
        if c.is_some() {
            return Err("consent-already-given");
        }
        *c = Some(Consent {
            scope: f.scope.trim().to_owned(),
            recipient: f.recipient.trim().to_owned(),
            purpose: f.purpose.trim().to_owned(),
            given_on,
            revoked_on: None,
        });
        Ok(())
    })
}

/// `POST /referrals/{contact_id}/{referral_id}/withdraw`.
pub(crate) async fn withdraw(
    State(state): State<DeskState>,
    lang: Lang,
    Path((contact, referral)): Path<(String, String)>,
    Form(f): Form<WithdrawForm>,
) -> Reply {
    let Some(on) = parse_day(&f.on) else {
        return Ok(back_with(&state, "/referrals", true, lang.t("bad-date")));
    };
    change_consent(
        &state,
        lang,
        &contact,
        &referral,
        "done-withdraw",
        |c| match c {
            None => Err("consent-nothing"),
            Some(k) if k.revoked_on.is_some() => Err("consent-already-withdrawn"),
            Some(k) => {
                k.revoked_on = Some(on);
                Ok(())
            }
        },
    )
}

/// The form for a new referral on a contact's page: partner, reason, and the client's consent
/// (which data, to whom, for what; required when the contact has a client code).
pub(crate) fn add_form(lang: Lang, state: &DeskState, team: &Team, c: &Contact) -> Markup {
    let today = today().format("%Y-%m-%d").to_string();
    let partners: Vec<_> = team.partners.iter().filter(|p| !p.retired).collect();
    html! {
        section aria-labelledby="referral-add-h" {
            h2 id="referral-add-h" { (lang.t("referral-add")) }
            @if partners.is_empty() {
                p { (lang.t("referral-no-partners")) " " a href="/partners" { (lang.t("nav-partners")) } }
            } @else {
                form method="post" action={"/contacts/" (c.id) "/referrals"} {
                    (csrf_field(state))
                    label for="ref-partner" { (lang.t("col-partner")) }
                    select id="ref-partner" name="partner" required data-testid="referral-partner" {
                        @for p in &partners { option value=(p.id) { (p.name) } }
                    }
                    label for="ref-reason" { (lang.t("col-reason")) }
                    input id="ref-reason" type="text" name="reason" data-testid="referral-reason";
                    fieldset {
                        legend { (lang.t("col-consent")) }
                        p { (lang.t(if c.fields.client_code.is_some() { "referral-consent-needed" } else { "referral-consent-optional" })) }
                        div {
                            label for="ref-scope" { (lang.t("consent-scope")) }
                            input id="ref-scope" type="text" name="scope";
                        }
                        div {
                            label for="ref-recipient" { (lang.t("consent-recipient")) }
                            input id="ref-recipient" type="text" name="recipient";
                        }
                        div {
                            label for="ref-purpose" { (lang.t("consent-purpose")) }
                            input id="ref-purpose" type="text" name="purpose";
                        }
                        div {
                            label for="ref-given" { (lang.t("consent-given-on")) }
                            input id="ref-given" type="date" name="given_on" value=(today);
                        }
                    }
                    div.buttons {
                        button type="submit" data-testid="referral-submit" { (lang.t("referral-add")) }
                    }
                }
            }
        }
    }
}

/// The new-referral form.
#[derive(Debug, Deserialize)]
pub(crate) struct ReferralForm {
    #[serde(default)]
    partner: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    given_on: String,
}

/// `POST /contacts/{id}/referrals`: a new referral; with consent when any consent field is given
/// (the core then requires all three), anonymous otherwise (the core refuses that for a contact
/// with a client code).
pub(crate) async fn add(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<ReferralForm>,
) -> Reply {
    let ws = workspace(&state)?;
    let id = record_id(lang, &id)?;
    let back = format!("/contacts/{id}");
    let c = ws.get_contact(id).map_err(|e| core_fail(lang, &e))?;
    let Some(given_on) = parse_day(&f.given_on) else {
        return Ok(back_with(&state, &back, true, lang.t("bad-date")));
    };
    let any = [&f.scope, &f.recipient, &f.purpose]
        .iter()
        .any(|s| !s.trim().is_empty());
    let consent = any.then(|| Consent {
        scope: f.scope.trim().to_owned(),
        recipient: f.recipient.trim().to_owned(),
        purpose: f.purpose.trim().to_owned(),
        given_on,
        revoked_on: None,
    });
    let mut draft = c.fields.clone();
    draft.referrals.push(Referral {
        id: format!("r-{}", &RecordId::random().to_string()[..6]),
        partner_id: f.partner.trim().to_owned(),
        reason: f.reason.trim().to_owned(),
        consent,
        outcome: ReferralOutcome::Open,
    });
    if !draft.interventions.contains(&Intervention::Referral) {
        draft.interventions.push(Intervention::Referral);
    }
    match ws.update_contact(id, draft) {
        Ok(_) => Ok(back_with(&state, &back, false, lang.t("done-referral"))),
        Err(e) => Ok(back_with_error(&state, lang, &back, &e)),
    }
}
