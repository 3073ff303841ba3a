//! Teams and their devices: founding a team, adding, listing and revoking devices.
//!
//! The relay's device table is what it checks signatures against; the authoritative roster is the
//! Team document on the devices, which the relay cannot read.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use streetsync_wire::{CreateTeam, DeviceId, DeviceKeys, DeviceList, Empty, Role};

use super::AppState;
use super::auth::{Member, Signed, json_body};
use super::error::ApiError;
use crate::now_ms;

/// Refuses keys whose id is not derived from their signing key.
fn check_keys(keys: &DeviceKeys) -> Result<(), ApiError> {
    if DeviceId::from_public_key(&keys.sign_pk) != keys.id {
        return Err(ApiError::BadRequest(
            "the device id must be the first 16 bytes of SHA-256 of its sign_pk".into(),
        ));
    }
    Ok(())
}

/// `POST /v1/teams`: founds a team; self-signed by the founding lead device.
pub async fn create_team(
    State(state): State<AppState>,
    request: Signed,
) -> Result<(StatusCode, Json<Empty>), ApiError> {
    let body: CreateTeam = request.json()?;
    check_keys(&body.device)?;
    if body.device.role != Role::Lead {
        return Err(ApiError::BadRequest(
            "the founding device must be a lead".into(),
        ));
    }
    if request.header.device != body.device.id {
        return Err(ApiError::BadRequest(
            "a team must be created by its founding device, signing with its own key".into(),
        ));
    }
    request.verify(&body.device.sign_pk)?;
    if !state.founding.allows(body.device.id) {
        // The operator adds a founder by this id (`--founders-file`) after checking with them.
        tracing::info!(device = %body.device.id, "team founding refused by --team-founding");
        return Err(ApiError::FoundingClosed);
    }
    request.admit(&state).await?;
    let (team, device) = (body.team, body.device);
    let founder = device.id;
    state
        .db(move |s| s.create_team(team, &device, now_ms()))
        .await?;
    tracing::info!(%team, device = %founder, "team created");
    Ok((StatusCode::CREATED, Json(Empty {})))
}

/// `POST /v1/teams/{team}/devices`: a lead registers a device.
pub async fn add_device(
    State(state): State<AppState>,
    member: Member,
) -> Result<(StatusCode, Json<Empty>), ApiError> {
    member.require_lead()?;
    let keys: DeviceKeys = json_body(&member.request.body)?;
    check_keys(&keys)?;
    let (team, id) = (member.team, keys.id);
    state
        .db(move |s| s.add_device(team, &keys, now_ms()))
        .await?;
    tracing::info!(%team, device = %id, by = %member.device.keys.id, "device added");
    Ok((StatusCode::CREATED, Json(Empty {})))
}

/// `GET /v1/teams/{team}/devices`: every device of the team.
pub async fn list_devices(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<DeviceList>, ApiError> {
    let team = member.team;
    let devices = state.db(move |s| s.list_devices(team)).await?;
    Ok(Json(DeviceList { devices }))
}

/// `DELETE /v1/teams/{team}/devices/{device}`: a lead revokes a device; the relay refuses it at
/// once, deletes the open invites it created (in the same transaction) and closes its live
/// sockets. A lead cannot revoke itself (the team would be left without the device that did it).
pub async fn revoke_device(
    State(state): State<AppState>,
    Path((_, device)): Path<(String, String)>,
    member: Member,
) -> Result<Json<Empty>, ApiError> {
    member.require_lead()?;
    let device: DeviceId = device.parse().map_err(|_| {
        ApiError::BadRequest("the device id in the path is not 32 lowercase hex characters".into())
    })?;
    if device == member.device.keys.id {
        return Err(ApiError::BadRequest(
            "a lead cannot revoke its own device".into(),
        ));
    }
    let team = member.team;
    // On a task of its own: if the lead's connection drops while the write runs, this handler is
    // dropped, but the sockets of a device whose revocation committed must still close.
    let task = state.clone();
    let (cancelled, sockets) = tokio::spawn(async move {
        let cancelled = task.db(move |s| s.revoke_device(team, device)).await?;
        Ok::<_, ApiError>((cancelled, task.live.revoke(team, device)))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("revocation task failed: {e}")))??;
    tracing::info!(
        %team,
        %device,
        by = %member.device.keys.id,
        invites_cancelled = cancelled,
        sockets_closed = sockets,
        "device revoked"
    );
    Ok(Json(Empty {}))
}
