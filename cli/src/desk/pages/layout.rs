//! The frame of every page: language, skip link, navigation, the live status bar (sync state and
//! last sync), one-time messages, and the error page. Also the small helpers every page uses
//! (the CSRF field, redirects after a form, mapping core errors to a message).

use std::sync::Arc;

use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use streetsync_core::{Error, SyncStatus, Workspace};

use crate::desk::i18n::{Arg, Lang, datetime, form_pairs};
use crate::desk::security::CSRF_FIELD;
use crate::desk::state::{DeskState, SyncView};

/// The result of a handler: a page, or the page of what went wrong.
pub(crate) type Reply = Result<Response, Refusal>;

/// The page of what went wrong (boxed: a `Response` is large, and most replies are pages).
pub(crate) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Refusal(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The sections in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Review,
    Contacts,
    Clients,
    Partners,
    Referrals,
    Statistics,
    Team,
    None,
}

const NAV: &[(Section, &str, &str)] = &[
    (Section::Review, "/review", "nav-review"),
    (Section::Contacts, "/contacts", "nav-contacts"),
    (Section::Clients, "/clients", "nav-clients"),
    (Section::Partners, "/partners", "nav-partners"),
    (Section::Referrals, "/referrals", "nav-referrals"),
    (Section::Statistics, "/statistics", "nav-statistics"),
    (Section::Team, "/team", "nav-team"),
];

/// The hidden CSRF field of a form.
pub(crate) fn csrf_field(state: &DeskState) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(state.csrf()); }
}

/// The current address with `lang=` set to `lang` (the language switch).
fn with_lang(uri: &Uri, lang: Lang) -> String {
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(form_pairs)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "lang" && k != "token")
        .collect();
    pairs.push(("lang".into(), lang.code().into()));
    let q = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{}?{q}", uri.path())
}

/// The sync state as text and a stable machine word (`data-state`).
fn sync_words(lang: Lang, view: &SyncView) -> (&'static str, String) {
    match view {
        SyncView::NoRelay => ("no_relay", lang.t("sync-no-relay")),
        SyncView::Live(s) => match s {
            SyncStatus::Connecting => ("connecting", lang.t("sync-connecting")),
            SyncStatus::Syncing => ("syncing", lang.t("sync-syncing")),
            SyncStatus::Idle { .. } => ("idle", lang.t("sync-idle")),
            SyncStatus::Offline { reason, .. } => (
                "offline",
                lang.ta("sync-offline", &[("reason", Arg::S(reason.clone()))]),
            ),
            SyncStatus::Refused { reason } => (
                "refused",
                lang.ta("sync-refused", &[("reason", Arg::S(reason.clone()))]),
            ),
            SyncStatus::Stopped => ("stopped", lang.t("sync-stopped")),
        },
    }
}

/// The status bar: sync state and last sync (refreshed live).
pub(crate) fn status_bar(lang: Lang, state: &DeskState) -> Markup {
    let (view, last) = state.sync_view();
    let (word, text) = sync_words(lang, &view);
    html! {
        div.status data-live-region="status" role="status" {
            span { (lang.t("status-sync")) ": " }
            span data-testid="sync-state" data-state=(word) { (text) }
            " · "
            span { (lang.t("status-last-sync")) ": " }
            span data-testid="last-sync" {
                @match last {
                    Some(ms) => time datetime=(ms.to_string()) { (datetime(ms)) },
                    None => (lang.t("status-never")),
                }
            }
        }
    }
}

/// Everything a page frame needs.
pub(crate) struct Frame<'a> {
    pub(crate) lang: Lang,
    pub(crate) state: &'a DeskState,
    pub(crate) uri: &'a Uri,
    pub(crate) section: Section,
    pub(crate) title: String,
}

/// A whole page around `content`.
pub(crate) fn page(f: &Frame<'_>, content: Markup) -> Response {
    let lang = f.lang;
    let flash = f.state.take_flash();
    let locked = f.state.is_locked();
    let body = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(f.state.csrf());
                title { (f.title) " · " (lang.t("app-name")) }
                link rel="stylesheet" href="/assets/desk.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/desk.js" defer {}
            }
            body {
                a.skip href="#main" { (lang.t("skip-to-content")) }
                header.top {
                    div.brand { (lang.t("app-name")) }
                    @if !locked {
                        nav aria-label=(lang.t("nav-label")) {
                            ul {
                                @for (s, href, key) in NAV {
                                    li {
                                        @if *s == f.section {
                                            a href=(href) aria-current="page" { (lang.t(key)) }
                                        } @else {
                                            a href=(href) { (lang.t(key)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div.tools {
                        a data-testid="lang-switch" href=(with_lang(f.uri, lang.other())) hreflang=(lang.other().code()) lang=(lang.other().code()) {
                            (lang.t("lang-switch"))
                        }
                        @if !locked {
                            form method="post" action="/lock" {
                                (csrf_field(f.state))
                                button type="submit" { (lang.t("lock-now")) }
                            }
                        }
                    }
                    (status_bar(lang, f.state))
                }
                main id="main" tabindex="-1" {
                    @if let Some(m) = flash {
                        @if m.error {
                            p.flash.error role="alert" { (m.text) }
                        } @else {
                            p.flash role="status" { (m.text) }
                        }
                    }
                    (content)
                }
                footer { p { (lang.t("footer-private")) } }
            }
        }
    };
    Html(body.into_string()).into_response()
}

/// A small page of its own for refusals (no token, foreign host, ...): no data, no navigation.
pub(crate) fn error_page(lang: Lang, status: StatusCode, key: &str) -> Html<String> {
    let body = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (lang.t("error-title")) " · " (lang.t("app-name")) }
                link rel="stylesheet" href="/assets/desk.css";
            }
            body {
                main id="main" {
                    h1 { (lang.t("error-title")) " (" (status.as_u16()) ")" }
                    p data-testid="error-message" { (lang.t(key)) }
                }
            }
        }
    };
    Html(body.into_string())
}

/// A refusal or failure as a page with its status.
pub(crate) fn fail(lang: Lang, status: StatusCode, key: &str) -> Response {
    (status, error_page(lang, status, key)).into_response()
}

/// The message of a core error, in the lead's language (the core's detail follows in its words).
pub(crate) fn core_message(lang: Lang, e: &Error) -> String {
    let (key, detail) = match e {
        Error::Invalid(v) => ("core-invalid", v.to_string()),
        Error::NotAllowed(m) => ("core-not-allowed", m.clone()),
        Error::NotFound { .. } => ("core-not-found", e.to_string()),
        Error::Offline(m) => ("core-offline", m.clone()),
        Error::WrongKey => ("core-wrong-key", String::new()),
        other => ("core-other", other.to_string()),
    };
    lang.ta(key, &[("detail", Arg::S(detail))])
}

/// A core error on a page load.
pub(crate) fn core_fail(lang: Lang, e: &Error) -> Response {
    let status = match e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::NotAllowed(_) | Error::NoTeam => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                title { (lang.t("error-title")) " · " (lang.t("app-name")) }
                link rel="stylesheet" href="/assets/desk.css";
            }
            body {
                main id="main" {
                    h1 { (lang.t("error-title")) " (" (status.as_u16()) ")" }
                    p data-testid="error-message" { (core_message(lang, e)) }
                    p { a href="/review" { (lang.t("back-to-review")) } }
                }
            }
        }
    };
    (status, Html(body.into_string())).into_response()
}

/// The open store, or a redirect to the unlock page.
pub(crate) fn workspace(state: &DeskState) -> Result<Arc<Workspace>, Refusal> {
    state
        .workspace()
        .ok_or_else(|| Redirect::to("/unlock").into_response().into())
}

/// After a form: back to `to` (303, so a reload does not repeat the POST).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// After a form that failed: the message on the next page, then back to `to`.
pub(crate) fn back_with_error(state: &DeskState, lang: Lang, to: &str, e: &Error) -> Response {
    state.set_flash(true, core_message(lang, e));
    see_other(to)
}

/// After a form that failed for a reason the desk found itself.
pub(crate) fn back_with(state: &DeskState, to: &str, error: bool, text: String) -> Response {
    state.set_flash(error, text);
    see_other(to)
}

/// Raw markup the desk made itself (the QR code's SVG).
pub(crate) fn trusted_svg(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}

/// The member name of a device id, or its short form.
pub(crate) fn member_name(team: &streetsync_core::Team, author: &str) -> String {
    author
        .parse::<streetsync_core::DeviceId>()
        .ok()
        .and_then(|d| team.device(&d).map(|d| d.member.clone()))
        .unwrap_or_else(|| author.chars().take(8).collect())
}

/// The first eight characters of an id (what the lead types to confirm).
pub(crate) fn short(id: &impl std::fmt::Display) -> String {
    id.to_string().chars().take(8).collect()
}

/// Pagination links.
pub(crate) fn pager(
    lang: Lang,
    base: &str,
    query: &[(String, String)],
    page: usize,
    total: usize,
    size: usize,
) -> Markup {
    let pages = total.div_ceil(size).max(1);
    let link = |p: usize| {
        let mut q: Vec<(String, String)> =
            query.iter().filter(|(k, _)| k != "page").cloned().collect();
        q.push(("page".into(), p.to_string()));
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    html! {
        nav.pager aria-label=(lang.t("pager-label")) {
            @if page > 1 {
                a href=(link(page - 1)) rel="prev" { (lang.t("pager-prev")) }
            }
            span { (lang.ta("pager-of", &[("page", Arg::N(page as i64)), ("pages", Arg::N(pages as i64)), ("total", Arg::N(total as i64))])) }
            @if page < pages {
                a href=(link(page + 1)) rel="next" { (lang.t("pager-next")) }
            }
        }
    }
}
