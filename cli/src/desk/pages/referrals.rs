//! `GET /referrals`: every referral (Vermittlung) with its consent (§ 67b SGB X), newest contact
//! first; recording consent for a referral that has none, and withdrawing it (the consent stays on
//! record as withdrawn, with the day).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::Uri;
use chrono::NaiveDate;
use maud::html;
use serde::Deserialize;
use streetsync_core::{Consent, Team};

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
        Ok(_) => {
            state.nudge_sync();
            Ok(back_with(state, "/referrals", false, lang.t(ok_key)))
        }
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
