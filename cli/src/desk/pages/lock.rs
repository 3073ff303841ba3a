//! Locking: the lead's button and the idle timer close the store; the unlock page opens it again
//! with the passphrase.

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;

use super::layout::{Frame, Reply, Section, csrf_field, page, see_other};
use crate::desk::i18n::Lang;
use crate::desk::state::DeskState;

/// `POST /lock`.
pub(crate) async fn lock(State(state): State<DeskState>) -> Reply {
    state.lock().await;
    Ok(see_other("/unlock"))
}

fn unlock_page(state: &DeskState, lang: Lang, uri: &Uri, wrong: bool) -> axum::response::Response {
    let content = html! {
        h1 { (lang.t("unlock-title")) }
        p { (lang.t("unlock-explain")) }
        @if wrong {
            p.flash.error role="alert" data-testid="unlock-error" { (lang.t("unlock-wrong")) }
        }
        form method="post" action="/unlock" {
            (csrf_field(state))
            label for="passphrase" { (lang.t("unlock-passphrase")) }
            input id="passphrase" name="passphrase" type="password" autocomplete="current-password" required data-testid="unlock-passphrase";
            button.primary type="submit" data-testid="unlock-submit" { (lang.t("unlock-submit")) }
        }
    };
    let f = Frame {
        lang,
        state,
        uri,
        section: Section::None,
        title: lang.t("unlock-title"),
    };
    page(&f, content)
}

/// `GET /unlock`.
pub(crate) async fn unlock_form(State(state): State<DeskState>, lang: Lang, uri: Uri) -> Reply {
    if !state.is_locked() {
        return Ok(see_other("/review"));
    }
    Ok(unlock_page(&state, lang, &uri, false))
}

/// The unlock form.
#[derive(Deserialize)]
pub(crate) struct UnlockForm {
    #[serde(default)]
    passphrase: String,
}

/// `POST /unlock`.
pub(crate) async fn unlock(
    State(state): State<DeskState>,
    lang: Lang,
    uri: Uri,
    Form(f): Form<UnlockForm>,
) -> Reply {
    if !state.is_locked() {
        return Ok(see_other("/review"));
    }
    match state.unlock(f.passphrase).await {
        Ok(()) => Ok(see_other("/review")),
        Err(_) => {
            // A wrong guess costs time (PBKDF2 already does; this adds a floor).
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let mut res = unlock_page(&state, lang, &uri, true);
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(res.into_response())
        }
    }
}
