//! Request authentication: the signed `Authorization` header.
//!
//! [`Signed`] reads the header and the body and checks the clock window; [`Member`] goes on to
//! find the device in the path's team, verify the signature against its registered key, refuse
//! wrong teams and revoked devices, and only then refuse replays and charge the device's rate
//! limit (so the replay cache holds only current members' nonces). Handlers that take
//! a [`Member`] therefore only ever run for an authenticated, current member of the team.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{Method, StatusCode, Uri, header};
use serde::de::DeserializeOwned;
use streetsync_wire::auth::AuthHeader;
use streetsync_wire::{CLOCK_TOLERANCE_MS, DeviceInfo, MAX_BODY_BYTES, TeamId};

use super::AppState;
use super::error::ApiError;
use super::limits::Replay;
use crate::now_ms;
use crate::storage::DeviceLookup;

/// A request whose `Authorization` header parsed and whose timestamp is within the window.
/// The signature is not checked yet: that needs the device's key.
#[derive(Debug)]
pub struct Signed {
    /// The parsed header.
    pub header: AuthHeader,
    /// The HTTP method.
    pub method: Method,
    /// The request URI (its path and query are signed).
    pub uri: Uri,
    /// The whole body.
    pub body: Bytes,
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!(
            "the request body is over the limit of {MAX_BODY_BYTES} bytes"
        ))
    } else {
        ApiError::BadRequest("the request body could not be read".into())
    }
}

impl FromRequest<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("this request needs a signed Authorization header".into())
        })?;
        let value = value.to_str().map_err(|_| {
            ApiError::Unauthenticated("the Authorization header is not ASCII".into())
        })?;
        let header =
            AuthHeader::parse(value).map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        let now = now_ms();
        if header.ts_ms.abs_diff(now) > CLOCK_TOLERANCE_MS.unsigned_abs()
            || header.ts_ms < state.started_ms
        {
            return Err(ApiError::ClockSkew { server_time: now });
        }
        let method = req.method().clone();
        let uri = req.uri().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        Ok(Signed {
            header,
            method,
            uri,
            body,
        })
    }
}

impl Signed {
    /// The signed request target: path and query exactly as received.
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// Verifies the signature under `sign_pk`.
    pub fn verify(&self, sign_pk: &[u8]) -> Result<(), ApiError> {
        self.header
            .verify(
                sign_pk,
                self.method.as_str(),
                self.path_and_query(),
                &self.body,
            )
            .map_err(|_| ApiError::BadSignature("the request signature does not verify".into()))
    }

    /// For a request whose signature verified and whose device may make it (a current member,
    /// or an allowed founder): refuses a replayed nonce, then charges the device's rate limit.
    ///
    /// Only here does a request reach the replay check, so that neither forged nor revoked
    /// devices' requests can fill it; and the nonce is recorded before the rate limit is charged,
    /// so a replay of a captured request does not spend its victim's budget.
    ///
    /// When the storage shares nonces between instances (PostgreSQL, ADR 0011), the database's
    /// nonce table is the replay check instead of this process's cache: a nonce seen by any
    /// instance on the same database is refused, and the in-memory cache would only duplicate it.
    pub async fn admit(&self, state: &AppState) -> Result<(), ApiError> {
        let (device, nonce, ts_ms) = (self.header.device, self.header.nonce, self.header.ts_ms);
        if state.storage.shares_nonces() {
            let fresh = state
                .db(move |s| s.remember_nonce(device, nonce, ts_ms, now_ms()))
                .await?;
            if !fresh {
                return Err(ApiError::Replayed);
            }
        } else {
            match state
                .replay
                .check_and_insert(device, nonce, ts_ms, now_ms())
            {
                Replay::Fresh => {}
                Replay::Replayed => return Err(ApiError::Replayed),
                Replay::Full { retry_after_ms } => {
                    tracing::warn!("the replay cache is full; refusing requests until it drains");
                    return Err(ApiError::RateLimited { retry_after_ms });
                }
            }
        }
        state
            .rate_limit
            .check(device)
            .map_err(|retry_after_ms| ApiError::RateLimited { retry_after_ms })
    }

    /// Parses the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        json_body(&self.body)
    }
}

/// Parses a JSON body, refusing it as `bad_request` with the parser's reason.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the body is not valid JSON for this request: {e}"))
    })
}

/// An authenticated, unrevoked member of the path's `{team}`.
#[derive(Debug)]
pub struct Member {
    /// The path's team.
    pub team: TeamId,
    /// The device, as registered in that team.
    pub device: DeviceInfo,
    /// The signed request.
    pub request: Signed,
}

impl Member {
    /// Refuses with `not_lead` unless the device is a lead.
    pub fn require_lead(&self) -> Result<(), ApiError> {
        match self.device.keys.role {
            streetsync_wire::Role::Lead => Ok(()),
            streetsync_wire::Role::Worker => Err(ApiError::NotLead),
        }
    }
}

impl FromRequest<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("the path could not be read".into()))?;
        let team: TeamId = params
            .iter()
            .find(|(name, _)| *name == "team")
            .ok_or_else(|| {
                ApiError::Internal("route without a {team} parameter uses Member".into())
            })?
            .1
            .parse()
            .map_err(|_| {
                ApiError::BadRequest(
                    "the team id in the path is not 32 lowercase hex characters".into(),
                )
            })?;
        let request = Signed::from_request(Request::from_parts(parts, body), state).await?;
        let device_id = request.header.device;
        let lookup = match state.storage.lookup_device_now(team, device_id) {
            Some(lookup) => lookup,
            None => {
                state
                    .db(move |s| {
                        let in_team = s.device(team, device_id)?;
                        let elsewhere = match in_team {
                            Some(_) => None,
                            None => s.device_in_any_team(device_id)?,
                        };
                        Ok(DeviceLookup { in_team, elsewhere })
                    })
                    .await?
            }
        };
        let DeviceLookup { in_team, elsewhere } = lookup;
        let Some(known) = in_team.as_ref().or(elsewhere.as_ref()) else {
            return Err(ApiError::UnknownDevice);
        };
        request.verify(&known.keys.sign_pk)?;
        let device = in_team.ok_or(ApiError::WrongTeam)?;
        if device.revoked {
            return Err(ApiError::Revoked);
        }
        request.admit(state).await?;
        Ok(Member {
            team,
            device,
            request,
        })
    }
}
