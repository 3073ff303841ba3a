//! The one error type of the HTTP layer and its mapping to the protocol's JSON refusals.
//!
//! Every variant documents its status. Internal failures are logged with their cause and reach
//! the client only as a generic `internal` answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use streetsync_wire::{ErrorBody, ErrorCode, WireError};

use crate::storage::StorageError;

/// How long a client is told to wait before retrying a request answered `erasure_pending`.
const ERASURE_RETRY_MS: u64 = 2_000;

/// A refusal, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `bad_request`: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 400 `bad_envelope`: an envelope is malformed or does not fit the request.
    #[error("{0}")]
    BadEnvelope(String),
    /// 400 `unsupported_version`: an envelope version this relay does not know.
    #[error("envelope version {0} is not supported by this relay; it knows version 1")]
    UnsupportedVersion(u8),
    /// 401 `unauthenticated`: no or malformed `Authorization` header.
    #[error("{0}")]
    Unauthenticated(String),
    /// 401 `bad_signature`: the request's or an envelope's signature does not verify.
    #[error("{0}")]
    BadSignature(String),
    /// 401 `unknown_device`: no team knows this device.
    #[error("this device is not registered with the relay; ask a team lead to add it")]
    UnknownDevice,
    /// 401 `clock_skew`: the request's timestamp is too far from the relay's clock.
    #[error(
        "the request's timestamp is too far from the relay's clock; correct the device clock or its offset"
    )]
    ClockSkew {
        /// The relay's clock, unix ms.
        server_time: i64,
    },
    /// 401 `replayed`: this `(device, nonce)` pair was already used.
    #[error("this request was already received; sign every request with a fresh nonce")]
    Replayed,
    /// 401 `revoked`: a lead revoked this device.
    #[error("this device was revoked by a team lead")]
    Revoked,
    /// 403 `not_lead`: only a team lead may do this.
    #[error("only a team lead may do this")]
    NotLead,
    /// 403 `wrong_team`: the device is not a member of the path's team.
    #[error("this device is not a member of that team")]
    WrongTeam,
    /// 404 `not_found`: no such team, device, bundle or invite.
    #[error("{0}")]
    NotFound(String),
    /// 409 `team_exists`: the team id is taken.
    #[error("a team with this id exists already")]
    TeamExists,
    /// 409 `device_exists`: the device is already registered in the team.
    #[error("this device is already registered in the team")]
    DeviceExists,
    /// 409 `invite_used`: the invite was redeemed already (so it can be neither redeemed nor
    /// cancelled).
    #[error("this invite code was used already; ask your team lead for a new one")]
    InviteUsed,
    /// 410 `invite_expired`: the invite's time ran out.
    #[error("this invite code has expired; ask your team lead for a new one")]
    InviteExpired,
    /// 413 `too_large`: body, envelope or batch over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429 `rate_limited`: the device's request budget is spent.
    #[error("too many requests from this device; retry later")]
    RateLimited {
        /// How long until a request will be accepted again.
        retry_after_ms: u64,
    },
    /// 400 `out_of_range`: a query parameter outside the range the relay serves.
    #[error("{0}")]
    OutOfRange(String),
    /// 429 `quota_exceeded`: a mailbox quota is full.
    #[error("{0}")]
    QuotaExceeded(String),
    /// 403 `founding_closed`: the operator does not let this device found a team.
    #[error("this relay does not let this device found a team; ask its operator (--team-founding)")]
    FoundingClosed,
    /// 503 `erasure_pending`: an erasure committed but its old pages are not wiped from the
    /// relay's files yet; the same request is answered once they are.
    #[error("the erasure is stored but not yet wiped from the relay's files; retry shortly")]
    ErasurePending,
    /// 500 `internal`: a relay failure; the cause is logged, never sent.
    #[error("internal: {0}")]
    Internal(String),
    /// 503 `storage_unavailable`: the database cannot be reached; the cause is logged, never
    /// sent. Nothing was written, so the client retries later.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
}

impl ApiError {
    /// The protocol code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::BadEnvelope(_) => ErrorCode::BadEnvelope,
            ApiError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::BadSignature(_) => ErrorCode::BadSignature,
            ApiError::UnknownDevice => ErrorCode::UnknownDevice,
            ApiError::ClockSkew { .. } => ErrorCode::ClockSkew,
            ApiError::Replayed => ErrorCode::Replayed,
            ApiError::Revoked => ErrorCode::Revoked,
            ApiError::NotLead => ErrorCode::NotLead,
            ApiError::WrongTeam => ErrorCode::WrongTeam,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::TeamExists => ErrorCode::TeamExists,
            ApiError::DeviceExists => ErrorCode::DeviceExists,
            ApiError::InviteUsed => ErrorCode::InviteUsed,
            ApiError::InviteExpired => ErrorCode::InviteExpired,
            ApiError::TooLarge(_) => ErrorCode::TooLarge,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::StorageUnavailable(_) => ErrorCode::StorageUnavailable,
            ApiError::OutOfRange(_) => ErrorCode::OutOfRange,
            ApiError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApiError::FoundingClosed => ErrorCode::FoundingClosed,
            ApiError::ErasurePending => ErrorCode::ErasurePending,
        }
    }

    /// An envelope refusal from the wire crate's shape check.
    pub fn from_envelope_shape(err: WireError) -> Self {
        match err {
            WireError::UnsupportedVersion(v) => ApiError::UnsupportedVersion(v),
            WireError::TooLarge { .. } => ApiError::TooLarge(err.to_string()),
            other => ApiError::BadEnvelope(other.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::TeamExists => ApiError::TeamExists,
            StorageError::DeviceExists => ApiError::DeviceExists,
            StorageError::TeamNotFound => ApiError::NotFound("no such team".into()),
            StorageError::DeviceNotFound => {
                ApiError::NotFound("no such device in this team".into())
            }
            StorageError::InviteNotFound => {
                ApiError::NotFound("no such invite; check the code for typing mistakes".into())
            }
            StorageError::DeviceRevoked => ApiError::Revoked,
            StorageError::InviteUsed => ApiError::InviteUsed,
            StorageError::InviteExpired => ApiError::InviteExpired,
            StorageError::ErasurePending => ApiError::ErasurePending,
            StorageError::MailboxFull(why) => ApiError::QuotaExceeded(why),
            StorageError::CoversBeyondHead { covers, head } => ApiError::BadRequest(format!(
                "the snapshot covers sequence number {covers}, but the log only reaches {head}"
            )),
            StorageError::Unavailable(cause) => ApiError::StorageUnavailable(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "the relay failed; the operator can find the cause in its log".to_owned()
            }
            ApiError::StorageUnavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                "the relay's database is unavailable; nothing was written, try again shortly"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: code.clone(),
            message,
            server_time: match self {
                ApiError::ClockSkew { server_time } => Some(server_time),
                _ => None,
            },
            retry_after_ms: match self {
                ApiError::RateLimited { retry_after_ms } => Some(retry_after_ms),
                ApiError::ErasurePending => Some(ERASURE_RETRY_MS),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_ms } = self {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(value) = secs.to_string().parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        // The metrics middleware reads the code from here.
        response.extensions_mut().insert(code);
        response
    }
}
