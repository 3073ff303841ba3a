//! Bundles: opaque, sealed blobs (team-key bundles) from one device to another.
//!
//! The relay only stores and hands them to their addressee; it cannot open them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use streetsync_wire::{BundleCreated, BundleList, Empty, MAX_CIPHERTEXT_BYTES, PostBundle};

use super::AppState;
use super::auth::{Member, json_body};
use super::error::ApiError;
use crate::now_ms;

/// `POST /v1/teams/{team}/bundles`: leaves a bundle for a device of the team.
pub async fn post_bundle(
    State(state): State<AppState>,
    member: Member,
) -> Result<(StatusCode, Json<BundleCreated>), ApiError> {
    let body: PostBundle = json_body(&member.request.body)?;
    if body.blob.len() > MAX_CIPHERTEXT_BYTES {
        return Err(ApiError::TooLarge(format!(
            "a bundle is {} bytes, over the limit of {MAX_CIPHERTEXT_BYTES}",
            body.blob.len()
        )));
    }
    let (team, from, to, size) = (member.team, member.device.keys.id, body.to, body.blob.len());
    let id = state
        .db(move |s| s.post_bundle(team, from, to, &body.blob, now_ms()))
        .await?;
    tracing::debug!(%team, %from, %to, size, id, "bundle stored");
    Ok((StatusCode::CREATED, Json(BundleCreated { id })))
}

/// `GET /v1/teams/{team}/bundles`: the bundles addressed to the caller.
pub async fn list_bundles(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<BundleList>, ApiError> {
    let (team, to) = (member.team, member.device.keys.id);
    let bundles = state.db(move |s| s.bundles_for(team, to)).await?;
    Ok(Json(BundleList { bundles }))
}

/// `DELETE /v1/teams/{team}/bundles/{id}`: the addressee discards a bundle it has stored.
pub async fn delete_bundle(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    member: Member,
) -> Result<Json<Empty>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest("the bundle id in the path is not a number".into()))?;
    let (team, to) = (member.team, member.device.keys.id);
    if !state.db(move |s| s.delete_bundle(team, to, id)).await? {
        return Err(ApiError::NotFound("no such bundle for this device".into()));
    }
    Ok(Json(Empty {}))
}
