//! Bundles: opaque, sealed blobs (team-key bundles) from one device to another.
//!
//! The relay only stores and hands them to their addressee; it cannot open them. What may wait
//! is capped per sender and per recipient ([`MailboxQuota`](super::limits::MailboxQuota)), and
//! the addressee reads its mailbox in pages.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use streetsync_wire::{
    BundleCreated, BundleList, BundleQuery, Empty, MAX_BODY_BYTES, MAX_BUNDLE_PAGE,
    MAX_CIPHERTEXT_BYTES, PostBundle,
};

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
    let quota = state.mailbox;
    let id = state
        .db(move |s| s.post_bundle(team, from, to, &body.blob, now_ms(), &quota))
        .await?;
    tracing::debug!(%team, %from, %to, size, id, "bundle stored");
    Ok((StatusCode::CREATED, Json(BundleCreated { id })))
}

/// `GET /v1/teams/{team}/bundles?after=ID&limit=N`: one page of the bundles addressed to the
/// caller; `more` tells it to ask again after the last id.
pub async fn list_bundles(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<BundleList>, ApiError> {
    let Query(query) = Query::<BundleQuery>::try_from_uri(&member.request.uri)
        .map_err(|e| ApiError::BadRequest(format!("the query is not `after=ID&limit=N`: {e}")))?;
    let after = super::sync::in_range("after", query.after)?;
    let limit = match query.limit {
        None => MAX_BUNDLE_PAGE,
        Some(0) => return Err(ApiError::BadRequest("limit must be at least 1".into())),
        Some(n) => n.min(MAX_BUNDLE_PAGE),
    };
    let (team, to) = (member.team, member.device.keys.id);
    // Base64 makes a blob a third larger; leave room for the JSON around the bundles.
    let max_bytes = (MAX_BODY_BYTES - 64 * 1024) / 4 * 3;
    let page = state
        .db(move |s| s.bundles_for(team, to, after, limit, max_bytes))
        .await?;
    Ok(Json(BundleList {
        bundles: page.bundles,
        more: page.more,
    }))
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
