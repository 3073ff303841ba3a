//! One-time invites: a lead leaves a sealed team-key bundle under an id derived from the invite
//! secret; the new device proves it knows the secret (HMAC over its own keys) and is registered
//! with the invite's role, once, before the invite expires.
//!
//! The relay never sees the secret or the key that opens the bundle. It does hold `auth_key`, so
//! its check of the redemption proof convinces nobody but itself: the joiner also sends `confirm`,
//! an HMAC under a key the relay never holds, which the relay stores untouched and hands to the
//! team's leads with the invite list; they enrol the device only if it verifies.
//!
//! An invite ends when it is redeemed, cancelled by a lead (`DELETE`), or its creator is revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use streetsync_wire::{
    CreateInvite, DeviceId, Empty, InviteId, InviteList, MAX_CIPHERTEXT_BYTES, RedeemInvite,
    RedeemResponse,
};

use super::AppState;
use super::auth::{Member, json_body};
use super::error::ApiError;
use crate::now_ms;

/// Longest an invite may stay valid: a week.
pub const MAX_INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// `POST /v1/teams/{team}/invites` (a lead): stores an invite.
pub async fn create_invite(
    State(state): State<AppState>,
    member: Member,
) -> Result<(StatusCode, Json<Empty>), ApiError> {
    member.require_lead()?;
    let invite: CreateInvite = json_body(&member.request.body)?;
    if invite.blob.len() > MAX_CIPHERTEXT_BYTES {
        return Err(ApiError::TooLarge(format!(
            "an invite bundle is {} bytes, over the limit of {MAX_CIPHERTEXT_BYTES}",
            invite.blob.len()
        )));
    }
    let now = now_ms();
    if invite.expires_ms <= now || invite.expires_ms > now + MAX_INVITE_TTL_MS {
        return Err(ApiError::BadRequest(
            "an invite must expire in the future and within 7 days".into(),
        ));
    }
    let (team, by, id) = (member.team, member.device.keys.id, invite.id);
    state
        .db(move |s| s.create_invite(team, by, &invite, now))
        .await?;
    tracing::info!(%team, invite = %id, %by, "invite created");
    Ok((StatusCode::CREATED, Json(Empty {})))
}

/// `GET /v1/teams/{team}/invites` (a lead): the team's invites, who redeemed them and the
/// redeemer's `confirm`, which the lead checks before it believes `redeemed_by`.
pub async fn list_invites(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<InviteList>, ApiError> {
    member.require_lead()?;
    let team = member.team;
    let invites = state.db(move |s| s.list_invites(team)).await?;
    Ok(Json(InviteList { invites }))
}

/// `POST /v1/invites/{id}/redeem` (no device signature): checks the HMAC proof, registers the
/// device once, and hands out the sealed bundle.
pub async fn redeem(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RedeemInvite>,
) -> Result<Json<RedeemResponse>, ApiError> {
    let id: InviteId = id.parse().map_err(|_| {
        ApiError::BadRequest("the invite id is not 32 lowercase hex characters".into())
    })?;
    if DeviceId::from_public_key(&body.device.sign_pk) != body.device.id {
        return Err(ApiError::BadRequest(
            "the device id must be the first 16 bytes of SHA-256 of its sign_pk".into(),
        ));
    }
    let invite = state.db(move |s| s.invite(id)).await?.ok_or_else(|| {
        ApiError::NotFound("no such invite; check the code for typing mistakes".into())
    })?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &invite.auth_key);
    ring::hmac::verify(
        &key,
        &RedeemInvite::proof_input(&id, &body.device),
        &body.proof,
    )
    .map_err(|_| ApiError::BadSignature("the invite proof does not verify".into()))?;
    if invite.redeemed {
        return Err(ApiError::InviteUsed);
    }
    let mut device = body.device;
    device.role = invite.role;
    let joined = device.id;
    let confirm = body.confirm;
    state
        .db(move |s| s.redeem_invite(id, &device, &confirm, now_ms()))
        .await?;
    tracing::info!(team = %invite.team, invite = %id, device = %joined, "invite redeemed");
    Ok(Json(RedeemResponse {
        team: invite.team,
        blob: invite.blob,
    }))
}

/// `DELETE /v1/teams/{team}/invites/{id}` (a lead): cancels an open invite, so its code stops
/// working before it expires (a code shown to the wrong person, a worker who did not start).
/// A redeemed invite is refused with `invite_used`: its record is the lead's evidence of who
/// joined, and the device it registered is removed by revoking it instead.
pub async fn cancel_invite(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    member: Member,
) -> Result<Json<Empty>, ApiError> {
    member.require_lead()?;
    let id: InviteId = id.parse().map_err(|_| {
        ApiError::BadRequest("the invite id in the path is not 32 lowercase hex characters".into())
    })?;
    let team = member.team;
    if !state.db(move |s| s.cancel_invite(team, id)).await? {
        return Err(ApiError::NotFound("no such invite in this team".into()));
    }
    tracing::info!(%team, invite = %id, by = %member.device.keys.id, "invite cancelled");
    Ok(Json(Empty {}))
}
