//! `GET /team`: the members and their devices; inviting a device (the code as text and as a QR
//! code drawn on this computer, never by a web service) and revoking one with a typed
//! confirmation. Both go through the relay (`SyncClient::create_invite`, `revoke_device`).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::Uri;
use maud::{Markup, html};
use serde::Deserialize;
use streetsync_core::{DeviceId, Invite, Role};

use super::layout::{
    Frame, Reply, Section, back_with, back_with_error, core_fail, csrf_field, page, short,
    trusted_svg, workspace,
};
use crate::desk::i18n::{Arg, Lang, datetime};
use crate::desk::state::DeskState;

fn role_key(r: Role) -> &'static str {
    match r {
        Role::Lead => "role-lead",
        Role::Worker => "role-worker",
    }
}

/// The invite code as an SVG QR code, made here (the `qrcode` crate), with the test hook and an
/// accessible name.
fn qr_svg(lang: Lang, code: &str) -> Option<String> {
    let qr = qrcode::QrCode::new(code.as_bytes()).ok()?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    let label = maud::html! { (lang.t("invite-qr-label")) }.into_string();
    Some(svg[start..].replacen(
        "<svg",
        &format!(r#"<svg data-testid="invite-qr" role="img" aria-label="{label}""#),
        1,
    ))
}

fn invite_box(lang: Lang, inv: &Invite) -> Markup {
    html! {
        section.invite aria-labelledby="code-h" {
            h2 id="code-h" { (lang.t("invite-code-label")) ": " (inv.member) " (" (lang.t(role_key(inv.role))) ")" }
            p.code data-testid="invite-code" { (inv.code) }
            @if let Some(svg) = qr_svg(lang, &inv.code) {
                div.qr { (trusted_svg(svg)) }
            }
            p { (lang.ta("invite-valid-until", &[("when", Arg::S(datetime(inv.expires_at_ms)))])) }
        }
    }
}

/// `GET /team`.
pub(crate) async fn show(State(state): State<DeskState>, lang: Lang, uri: Uri) -> Reply {
    let ws = workspace(&state)?;
    let team = ws.team().map_err(|e| core_fail(lang, &e))?;
    let me = ws.device_id();
    let can_relay = state.sync_client().is_some();
    let invite = state.last_invite();
    let content = html! {
        h1 { (lang.t("team-title")) ": " (team.name) }
        @if let Some(inv) = &invite { (invite_box(lang, inv)) }
        section aria-labelledby="members-h" {
            h2 id="members-h" { (lang.t("team-members")) }
            div data-live-region="devices" {
                table {
                    caption.sr-only { (lang.t("team-members")) }
                    thead { tr {
                        th scope="col" { (lang.t("col-member")) }
                        th scope="col" { (lang.t("col-role")) }
                        th scope="col" { (lang.t("col-device")) }
                        th scope="col" { (lang.t("col-status")) }
                        th scope="col" { (lang.t("col-actions")) }
                    } }
                    tbody {
                        @for d in &team.roster {
                            @let sid = short(&d.device_id);
                            tr data-testid="device-row" data-device-id=(d.device_id.to_string()) data-revoked=(d.revoked.to_string()) {
                                th scope="row" { (d.member) }
                                td { (lang.t(role_key(d.role))) }
                                td { code data-testid="revoke-word" { (sid) } }
                                td {
                                    @if d.revoked { (lang.t("device-revoked")) }
                                    @else if d.device_id == me { (lang.t("device-this")) }
                                    @else { (lang.t("device-active")) }
                                }
                                td {
                                    @if !d.revoked && d.device_id != me && can_relay {
                                        form method="post" action={"/team/devices/" (d.device_id) "/revoke"} {
                                            (csrf_field(&state))
                                            label for={"revoke-" (sid)} { (lang.t("revoke-type")) " " code { (sid) } }
                                            input id={"revoke-" (sid)} type="text" name="confirm" autocomplete="off" required data-testid="revoke-confirm";
                                            button.danger type="submit" data-testid="revoke-submit" { (lang.t("revoke-submit")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="invite-h" {
            h2 id="invite-h" { (lang.t("invite-title")) }
            @if can_relay {
                form method="post" action="/team/invite" {
                    (csrf_field(&state))
                    label for="invite-name" { (lang.t("invite-name")) }
                    input id="invite-name" type="text" name="name" required data-testid="invite-name";
                    label for="invite-role" { (lang.t("invite-role")) }
                    select id="invite-role" name="role" data-testid="invite-role" {
                        option value="worker" selected { (lang.t("role-worker")) }
                        option value="lead" { (lang.t("role-lead")) }
                    }
                    label for="invite-hours" { (lang.t("invite-hours")) }
                    input id="invite-hours" type="number" name="hours" min="1" max="168" value="24";
                    div.buttons {
                        button.primary type="submit" data-testid="invite-submit" { (lang.t("invite-submit")) }
                    }
                }
            } @else {
                p { (lang.t("invite-no-relay")) }
            }
        }
    };
    let f = Frame {
        lang,
        state: &state,
        uri: &uri,
        section: Section::Team,
        title: lang.t("team-title"),
    };
    Ok(page(&f, content))
}

/// The invite form.
#[derive(Debug, Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    hours: String,
}

/// `POST /team/invite`.
pub(crate) async fn invite(
    State(state): State<DeskState>,
    lang: Lang,
    Form(f): Form<InviteForm>,
) -> Reply {
    workspace(&state)?;
    let Some(client) = state.sync_client() else {
        return Ok(back_with(&state, "/team", true, lang.t("invite-no-relay")));
    };
    let role = match f.role.trim() {
        "lead" => Role::Lead,
        _ => Role::Worker,
    };
    let hours = f
        .hours
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|h| (1..=168).contains(h))
        .unwrap_or(24);
    match client
        .create_invite(f.name.trim(), role, hours * 3600)
        .await
    {
        Ok(inv) => {
            state.set_last_invite(inv);
            Ok(back_with(&state, "/team", false, lang.t("done-invite")))
        }
        Err(e) => Ok(back_with_error(&state, lang, "/team", &e)),
    }
}

/// The revoke form.
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /team/devices/{id}/revoke` with `confirm` = the first eight characters of the device id.
pub(crate) async fn revoke(
    State(state): State<DeskState>,
    lang: Lang,
    Path(id): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Reply {
    let ws = workspace(&state)?;
    let Ok(device) = id.parse::<DeviceId>() else {
        return Ok(back_with(&state, "/team", true, lang.t("error-no-record")));
    };
    if f.confirm.trim() != short(&device) {
        return Ok(back_with(&state, "/team", true, lang.t("revoke-mismatch")));
    }
    let Some(client) = state.sync_client() else {
        return Ok(back_with(&state, "/team", true, lang.t("invite-no-relay")));
    };
    let member = ws
        .team()
        .ok()
        .and_then(|t| t.device(&device).map(|d| d.member.clone()))
        .unwrap_or_default();
    match client.revoke_device(device).await {
        Ok(()) => {
            let _ = client.sync_once(None).await;
            Ok(back_with(
                &state,
                "/team",
                false,
                lang.ta("done-revoke", &[("member", Arg::S(member))]),
            ))
        }
        Err(e) => Ok(back_with_error(&state, lang, "/team", &e)),
    }
}
