//! Push, pull and snapshot: the team's log of sealed envelopes.
//!
//! The relay checks what it can without keys (shape, limits, team, author, signature against the
//! author's registered key) and then appends. It never opens a ciphertext.

use axum::Json;
use axum::extract::{Query, State};
use streetsync_wire::{
    DEFAULT_PULL_LIMIT, Envelope, EnvelopeKind, MAX_BATCH, MAX_BODY_BYTES, MAX_PULL_LIMIT,
    PullQuery, PushRequest, PushResponse, SnapshotResponse,
};

use super::AppState;
use super::auth::{Member, json_body};
use super::error::ApiError;
use crate::storage::{AppendOutcome, PullPage};

/// Refuses an envelope the authenticated member may not append to the path's team.
fn check_envelope(member: &Member, env: &Envelope) -> Result<(), ApiError> {
    env.validate_shape()
        .map_err(ApiError::from_envelope_shape)?;
    if env.team != member.team {
        return Err(ApiError::BadEnvelope(format!(
            "envelope {} belongs to another team than the request path's",
            env.id
        )));
    }
    if env.author != member.device.keys.id {
        return Err(ApiError::BadEnvelope(format!(
            "envelope {} names another author than the device that signed the request",
            env.id
        )));
    }
    // A tombstone deletes the record's history here and turns every later push for it into a
    // `duplicate`, so the relay's own table decides who may send one: a lead. Devices refuse a
    // worker's tombstone too, but only after the relay would already have dropped the entries.
    if env.kind == EnvelopeKind::Tombstone {
        member.require_lead()?;
    }
    env.verify(&member.device.keys.sign_pk).map_err(|_| {
        ApiError::BadSignature(format!(
            "the signature of envelope {} does not verify",
            env.id
        ))
    })
}

/// Appends verified envelopes, then counts and announces the new head.
async fn append(
    state: &AppState,
    member: &Member,
    envelopes: Vec<Envelope>,
) -> Result<AppendOutcome, ApiError> {
    let team = member.team;
    let count = envelopes.len();
    let outcome = match state.db(move |s| s.append(team, &envelopes)).await {
        Ok(outcome) => outcome,
        Err(ApiError::ErasurePending) => {
            // The tombstone is in the log although its wipe is not done: online devices may
            // pull it now (the sender's retry will be a duplicate, which publishes nothing).
            if let Ok(Some(head)) = state.db(move |s| s.head(team)).await {
                state.live.publish(team, head);
            }
            return Err(ApiError::ErasurePending);
        }
        Err(e) => return Err(e),
    };
    let m = &state.metrics;
    m.envelopes_stored.inc_by(outcome.appended);
    m.envelopes_duplicate
        .inc_by(count as u64 - outcome.appended);
    m.envelopes_dropped.inc_by(outcome.dropped);
    if outcome.appended > 0 {
        state.live.publish(team, outcome.head);
    }
    tracing::debug!(
        %team,
        device = %member.device.keys.id,
        count,
        appended = outcome.appended,
        dropped = outcome.dropped,
        head = outcome.head,
        "appended"
    );
    Ok(outcome)
}

/// `POST /v1/teams/{team}/push`: appends a batch, all or nothing, idempotent by envelope id.
pub async fn push(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<PushResponse>, ApiError> {
    let body: PushRequest = json_body(&member.request.body)?;
    if body.envelopes.len() > MAX_BATCH {
        return Err(ApiError::TooLarge(format!(
            "a push holds {} envelopes, over the limit of {MAX_BATCH}",
            body.envelopes.len()
        )));
    }
    for env in &body.envelopes {
        check_envelope(&member, env)?;
    }
    let outcome = append(&state, &member, body.envelopes).await?;
    Ok(Json(PushResponse {
        results: outcome.results,
    }))
}

/// Refuses a cursor beyond the largest number SQLite's `INTEGER` (and so the log) can hold: it
/// cannot name an entry, and used to surface as a 500 ("corrupt stored data").
pub(crate) fn in_range(name: &str, value: u64) -> Result<u64, ApiError> {
    if i64::try_from(value).is_err() {
        return Err(ApiError::OutOfRange(format!(
            "`{name}` is {value}, beyond the largest value the relay serves ({})",
            i64::MAX
        )));
    }
    Ok(value)
}

/// `GET /v1/teams/{team}/pull?after=N&limit=M`: one page of the log, in the JSON of the wire's
/// `PullResponse` (the envelopes as stored, see [`PullPage`]).
pub async fn pull(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<PullPage>, ApiError> {
    let Query(query) = Query::<PullQuery>::try_from_uri(&member.request.uri)
        .map_err(|e| ApiError::BadRequest(format!("the query is not `after=N&limit=M`: {e}")))?;
    let limit = match query.limit {
        None => DEFAULT_PULL_LIMIT,
        Some(0) => return Err(ApiError::BadRequest("limit must be at least 1".into())),
        Some(n) => n.min(MAX_PULL_LIMIT),
    };
    let after = in_range("after", query.after)?;
    let team = member.team;
    // Leave room for the JSON around the entries.
    let max_bytes = MAX_BODY_BYTES - 64 * 1024;
    let page = state
        .db(move |s| s.pull(team, after, limit, max_bytes))
        .await?;
    Ok(Json(page))
}

/// `POST /v1/teams/{team}/snapshot`: appends a snapshot and drops the entries it covers.
pub async fn snapshot(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<SnapshotResponse>, ApiError> {
    let env: Envelope = json_body(&member.request.body)?;
    if env.kind != EnvelopeKind::Snapshot {
        return Err(ApiError::BadEnvelope(
            "the snapshot endpoint takes a snapshot envelope".into(),
        ));
    }
    // A snapshot makes the relay drop every envelope it covers, and devices accept only leads'
    // snapshots (a snapshot carries other members' changes, whose authorship only its maker
    // vouches for): a worker's snapshot would destroy what it covers for every new device.
    member.require_lead()?;
    check_envelope(&member, &env)?;
    let outcome = append(&state, &member, vec![env]).await?;
    let seq =
        outcome.results.first().map(|r| r.seq).ok_or_else(|| {
            ApiError::Internal("append of one envelope returned no result".into())
        })?;
    Ok(Json(SnapshotResponse {
        seq,
        dropped: outcome.dropped,
    }))
}
