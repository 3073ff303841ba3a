//! Request and response bodies of the relay's HTTP API, and its error codes.
//!
//! The relay serializes exactly these types and the sync client deserializes exactly these types,
//! so the JSON of `docs/protocol.md` has one definition.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, Envelope, EnvelopeId, InviteId, TeamId};

/// A device's role in its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A field worker: reads and writes records.
    Worker,
    /// A team lead: may also add and revoke devices.
    Lead,
}

/// A device's public keys and role, as registered with the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeys {
    /// The device id; must equal [`DeviceId::from_public_key`] of `sign_pk`.
    pub id: DeviceId,
    /// Ed25519 public key that signs requests and envelopes (base64url).
    #[serde(with = "crate::b64::array")]
    pub sign_pk: [u8; 32],
    /// Static X25519 public key for key wrapping in bundles (base64url).
    #[serde(with = "crate::b64::array")]
    pub kx_pk: [u8; 32],
    /// The device's role.
    pub role: Role,
}

/// `POST /v1/teams`: found a team with its first (lead) device; the request is signed by that
/// device's own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTeam {
    /// The new team's random id.
    pub team: TeamId,
    /// The founding device; its role must be [`Role::Lead`].
    pub device: DeviceKeys,
}

/// One device of a team as the relay knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Keys and role (flattened into this object).
    #[serde(flatten)]
    pub keys: DeviceKeys,
    /// Whether a lead revoked the device.
    pub revoked: bool,
}

/// `GET /v1/teams/{team}/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Every device ever registered in the team, revoked ones included.
    pub devices: Vec<DeviceInfo>,
}

/// `POST /v1/teams/{team}/bundles`: an opaque blob (a sealed key bundle) for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostBundle {
    /// The addressee; only it can fetch the bundle.
    pub to: DeviceId,
    /// Sealed bytes the relay cannot open (base64url).
    #[serde(with = "crate::b64::vec")]
    pub blob: Vec<u8>,
}

/// Answer to [`PostBundle`]: the id the relay gave the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleCreated {
    /// The bundle's id, unique within the relay.
    pub id: u64,
}

/// One bundle addressed to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The bundle's id, unique within the relay.
    pub id: u64,
    /// The sending device.
    pub from: DeviceId,
    /// Sealed bytes (base64url).
    #[serde(with = "crate::b64::vec")]
    pub blob: Vec<u8>,
}

/// `GET /v1/teams/{team}/bundles?after=ID&limit=N`: one page of the caller's mailbox.
///
/// Paged so that a mailbox someone filled cannot turn into one huge answer the device must read
/// whole before its sync can go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleList {
    /// Bundles addressed to the caller with `id > after`, oldest first.
    pub bundles: Vec<Bundle>,
    /// Whether bundles after the last one of this page wait (absent from relays before paging:
    /// they answered with the whole mailbox).
    #[serde(default)]
    pub more: bool,
}

/// Query of `GET /v1/teams/{team}/bundles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BundleQuery {
    /// Return bundles with `id > after`.
    #[serde(default)]
    pub after: u64,
    /// At most this many bundles ([`MAX_BUNDLE_PAGE`](crate::MAX_BUNDLE_PAGE) if absent or
    /// larger).
    pub limit: Option<u32>,
}

/// `POST /v1/teams/{team}/push`: at most [`MAX_BATCH`](crate::MAX_BATCH) envelopes, applied in one
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The envelopes, in the order they should enter the log.
    pub envelopes: Vec<Envelope>,
}

/// The fate of one pushed envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    /// The envelope's id.
    pub id: EnvelopeId,
    /// Its sequence number in the team's log.
    pub seq: u64,
    /// True if the log already held this id (a retry); nothing changed then.
    pub duplicate: bool,
}

/// Answer to [`PushRequest`]: one result per envelope, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// One result per pushed envelope.
    pub results: Vec<PushResult>,
}

/// The query of `GET /v1/teams/{team}/pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullQuery {
    /// Return entries with `seq > after`.
    #[serde(default)]
    pub after: u64,
    /// At most this many entries ([`DEFAULT_PULL_LIMIT`](crate::DEFAULT_PULL_LIMIT) if absent,
    /// capped at [`MAX_PULL_LIMIT`](crate::MAX_PULL_LIMIT)).
    pub limit: Option<u32>,
}

/// One entry of the team's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullEntry {
    /// The entry's sequence number.
    pub seq: u64,
    /// The envelope as pushed.
    pub envelope: Envelope,
}

/// Answer to a pull: one page of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullResponse {
    /// Entries with `seq > after`, ascending.
    pub entries: Vec<PullEntry>,
    /// The team's highest sequence number.
    pub head: u64,
    /// Whether entries after the last one of this page exist.
    pub more: bool,
}

/// Answer to `POST /v1/teams/{team}/snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The snapshot's sequence number.
    pub seq: u64,
    /// How many log entries the snapshot replaced.
    pub dropped: u64,
}

/// A text frame of the live WebSocket: the team's log now reaches `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMessage {
    /// The team's highest sequence number.
    pub head: u64,
}

/// The empty JSON object `{}` that several endpoints answer with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Every refusal's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The machine-readable code.
    pub error: ErrorCode,
    /// A sentence a person can act on.
    pub message: String,
    /// The relay's clock (unix ms), on [`ErrorCode::ClockSkew`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<i64>,
    /// How long to wait before retrying, on [`ErrorCode::RateLimited`] and
    /// [`ErrorCode::ErasurePending`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// `POST /v1/teams/{team}/invites` (a lead): a one-time invite, with the team-key bundle sealed
/// under a key derived from the invite secret, which the relay never sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateInvite {
    /// Address of the invite (a one-way derivation of the secret).
    pub id: InviteId,
    /// Key that authenticates the redemption (HMAC over the redeeming device's keys); derived from
    /// the secret, but it does not open the bundle.
    #[serde(with = "crate::b64::array")]
    pub auth_key: [u8; 32],
    /// Role the redeeming device gets.
    pub role: Role,
    /// Unix milliseconds after which the invite cannot be redeemed.
    pub expires_ms: i64,
    /// The sealed bundle.
    #[serde(with = "crate::b64::vec")]
    pub blob: Vec<u8>,
}

/// `POST /v1/invites/{id}/redeem` (no device signature: the device is not known yet; the proof is
/// the HMAC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemInvite {
    /// The keys of the device that joins.
    pub device: DeviceKeys,
    /// HMAC-SHA256 under the invite's `auth_key` over [`RedeemInvite::proof_input`]. The relay
    /// checks it, but it holds `auth_key`, so this proves nothing to the lead.
    #[serde(with = "crate::b64::array")]
    pub proof: [u8; 32],
    /// HMAC-SHA256 under a key derived from the invite secret that the relay never holds, over
    /// [`RedeemInvite::confirm_input`]. Opaque to the relay, which stores it and hands it to the
    /// lead with the invite list; the lead adds the device to the roster only if it verifies, so
    /// a relay cannot enrol a device of its own. (Zero from clients before this field existed;
    /// such a redemption is refused by the lead.)
    #[serde(with = "crate::b64::array", default = "zero32")]
    pub confirm: [u8; 32],
}

fn zero32() -> [u8; 32] {
    [0; 32]
}

impl RedeemInvite {
    /// The bytes the lead's confirmation covers: its own context, the invite id, the device id and
    /// both public keys, so a confirmation for one device's keys fits no other device.
    pub fn confirm_input(invite: &InviteId, device: &DeviceKeys) -> Vec<u8> {
        let mut v = b"streetsync-enrol-v1\0".to_vec();
        v.extend_from_slice(invite.as_bytes());
        v.extend_from_slice(device.id.as_bytes());
        v.extend_from_slice(&device.sign_pk);
        v.extend_from_slice(&device.kx_pk);
        v
    }

    /// The bytes the proof covers: context, invite id, device id and both public keys.
    pub fn proof_input(invite: &InviteId, device: &DeviceKeys) -> Vec<u8> {
        let mut v = b"streetsync-redeem-v1\0".to_vec();
        v.extend_from_slice(invite.as_bytes());
        v.extend_from_slice(device.id.as_bytes());
        v.extend_from_slice(&device.sign_pk);
        v.extend_from_slice(&device.kx_pk);
        v
    }
}

/// Answer to a redemption: the team and the sealed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemResponse {
    /// The team joined.
    pub team: TeamId,
    /// The sealed bundle.
    #[serde(with = "crate::b64::vec")]
    pub blob: Vec<u8>,
}

/// One invite as a lead sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// The invite.
    pub id: InviteId,
    /// Role it grants.
    pub role: Role,
    /// Expiry, unix milliseconds.
    pub expires_ms: i64,
    /// The device that redeemed it, if any. The relay's word only: the lead checks
    /// [`InviteInfo::confirm`] before it believes it.
    pub redeemed_by: Option<DeviceKeys>,
    /// The redeeming device's [`RedeemInvite::confirm`], as it was posted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::b64::opt_array"
    )]
    pub confirm: Option<[u8; 32]>,
}

/// `GET /v1/teams/{team}/invites` (a lead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteList {
    /// The team's invites, oldest first.
    pub invites: Vec<InviteInfo>,
}

/// The relay's error codes (snake case on the wire). Clients match on this enum, never on
/// strings; a code from a newer relay that this build does not know reads as
/// [`ErrorCode::Unknown`] instead of failing to parse the whole error body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed.
    BadRequest,
    /// 400: an envelope is malformed or contradicts the request.
    BadEnvelope,
    /// 400: an envelope version the relay does not know.
    UnsupportedVersion,
    /// 401: no or malformed `Authorization` header.
    Unauthenticated,
    /// 401: the request or an envelope signature does not verify.
    BadSignature,
    /// 401: the relay knows no such device.
    UnknownDevice,
    /// 401: the request's timestamp is too far from the relay's clock.
    ClockSkew,
    /// 401: the `(device, nonce)` pair was seen before.
    Replayed,
    /// 401: the device was revoked.
    Revoked,
    /// 403: only a lead may do this.
    NotLead,
    /// 403: the device is not a member of the path's team.
    WrongTeam,
    /// 404: no such team, device or bundle.
    NotFound,
    /// 409: the team id is taken.
    TeamExists,
    /// 409: the device is already registered in the team.
    DeviceExists,
    /// 409: the invite was already redeemed.
    InviteUsed,
    /// 410: the invite expired.
    InviteExpired,
    /// 413: body, envelope or batch over its limit.
    TooLarge,
    /// 429: the device's request budget is spent.
    RateLimited,
    /// 500: the relay failed; details are only in its log.
    Internal,
    /// 503: the relay's database cannot be reached right now; nothing of the request was
    /// written, so retrying later (with a fresh signature) is safe.
    StorageUnavailable,
    /// 400: a query parameter is outside the range the relay serves (for example `after`
    /// beyond the largest sequence number a log can hold).
    OutOfRange,
    /// 429: a mailbox quota is full (bundles waiting from this sender, or for this recipient);
    /// retry once the recipient has fetched its bundles.
    QuotaExceeded,
    /// 403: this relay's operator does not let this device found a team.
    FoundingClosed,
    /// 503: an erasure committed, but its old pages are not wiped from the relay's files yet
    /// (a checkpoint was blocked); retry the same request later, it is answered once they are.
    ErasurePending,
    /// A code this build does not know (a newer relay). The relay itself never sends one.
    #[serde(untagged)]
    Unknown(String),
}

impl ErrorCode {
    /// Every code, for exhaustive tests and metrics.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::BadRequest,
        ErrorCode::BadEnvelope,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unauthenticated,
        ErrorCode::BadSignature,
        ErrorCode::UnknownDevice,
        ErrorCode::ClockSkew,
        ErrorCode::Replayed,
        ErrorCode::Revoked,
        ErrorCode::NotLead,
        ErrorCode::WrongTeam,
        ErrorCode::NotFound,
        ErrorCode::TeamExists,
        ErrorCode::DeviceExists,
        ErrorCode::InviteUsed,
        ErrorCode::InviteExpired,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::StorageUnavailable,
        ErrorCode::OutOfRange,
        ErrorCode::QuotaExceeded,
        ErrorCode::FoundingClosed,
        ErrorCode::ErasurePending,
    ];

    /// The HTTP status that carries this code.
    pub fn status(&self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | BadEnvelope | UnsupportedVersion | OutOfRange => 400,
            Unauthenticated | BadSignature | UnknownDevice | ClockSkew | Replayed | Revoked => 401,
            NotLead | WrongTeam | FoundingClosed => 403,
            NotFound => 404,
            TeamExists | DeviceExists | InviteUsed => 409,
            InviteExpired => 410,
            TooLarge => 413,
            RateLimited | QuotaExceeded => 429,
            Internal | Unknown(_) => 500,
            StorageUnavailable | ErasurePending => 503,
        }
    }

    /// The snake-case name, as in the JSON.
    pub fn as_str(&self) -> &str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            BadEnvelope => "bad_envelope",
            UnsupportedVersion => "unsupported_version",
            Unauthenticated => "unauthenticated",
            BadSignature => "bad_signature",
            UnknownDevice => "unknown_device",
            ClockSkew => "clock_skew",
            Replayed => "replayed",
            Revoked => "revoked",
            NotLead => "not_lead",
            WrongTeam => "wrong_team",
            NotFound => "not_found",
            TeamExists => "team_exists",
            DeviceExists => "device_exists",
            InviteUsed => "invite_used",
            InviteExpired => "invite_expired",
            TooLarge => "too_large",
            RateLimited => "rate_limited",
            Internal => "internal",
            StorageUnavailable => "storage_unavailable",
            OutOfRange => "out_of_range",
            QuotaExceeded => "quota_exceeded",
            FoundingClosed => "founding_closed",
            ErasurePending => "erasure_pending",
            Unknown(code) => code,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!((400..600).contains(&code.status()));
        }
        // Each code once: ALL is the closed label set of the relay's metrics.
        let names: std::collections::HashSet<&str> =
            ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(
            !ErrorCode::ALL
                .iter()
                .any(|c| matches!(c, ErrorCode::Unknown(_)))
        );
    }

    #[test]
    fn a_code_from_a_newer_relay_reads_as_unknown() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"storage_full","message":"later"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Unknown("storage_full".into()));
        assert_eq!(body.error.as_str(), "storage_full");
        // A code this build added is no longer unknown.
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"quota_exceeded\"").unwrap(),
            ErrorCode::QuotaExceeded
        );
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"not_found\"").unwrap(),
            ErrorCode::NotFound
        );
    }

    #[test]
    fn error_body_json() {
        let body = ErrorBody {
            error: ErrorCode::ClockSkew,
            message: "fix the clock".into(),
            server_time: Some(5),
            retry_after_ms: None,
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"error":"clock_skew","message":"fix the clock","server_time":5}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), body);
    }

    #[test]
    fn device_info_is_flat() {
        let info = DeviceInfo {
            keys: DeviceKeys {
                id: DeviceId::from_bytes([1; 16]),
                sign_pk: [2; 32],
                kx_pk: [3; 32],
                role: Role::Lead,
            },
            revoked: false,
        };
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(
            json,
            r#"{"id":"01010101010101010101010101010101","sign_pk":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI","kx_pk":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM","role":"lead","revoked":false}"#
        );
        assert_eq!(serde_json::from_str::<DeviceInfo>(&json).unwrap(), info);
        let bad = json.replace("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI", "AgIC");
        assert!(serde_json::from_str::<DeviceInfo>(&bad).is_err());
    }

    #[test]
    fn messages_round_trip() {
        let live = LiveMessage { head: 42 };
        assert_eq!(serde_json::to_string(&live).unwrap(), r#"{"head":42}"#);
        assert_eq!(serde_json::to_string(&Empty {}).unwrap(), "{}");
        let bundle = PostBundle {
            to: DeviceId::from_bytes([9; 16]),
            blob: vec![0xff, 0x00],
        };
        let json = serde_json::to_string(&bundle).unwrap();
        assert_eq!(
            json,
            r#"{"to":"09090909090909090909090909090909","blob":"_wA"}"#
        );
        assert_eq!(serde_json::from_str::<PostBundle>(&json).unwrap(), bundle);
    }
}
