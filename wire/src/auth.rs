//! Request signing: the `Authorization: StreetSync-Ed25519 ...` header.
//!
//! Every request under `/v1/teams` is signed by the sending device over its method, path, query,
//! timestamp, a fresh nonce and the SHA-256 of its body. This module writes and parses that header
//! and checks its signature; the clock window and the replay cache are the relay's business.

use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};

use crate::{DeviceId, WireError};

/// The scheme word that starts the header value.
pub const AUTH_SCHEME: &str = "StreetSync-Ed25519";

/// The domain-separation prefix of the signed request string.
pub const REQUEST_CONTEXT: &str = "streetsync-request-v1\n";

/// The bytes a device signs for a request:
/// `"streetsync-request-v1\n" METHOD "\n" PATH_AND_QUERY "\n" ts "\n" hex(nonce) "\n" hex(sha256(body))`.
///
/// `method` is the upper-case HTTP method and `path_and_query` the request target exactly as sent
/// (for example `/v1/teams/<id>/pull?after=0&limit=500`).
pub fn signing_bytes(
    method: &str,
    path_and_query: &str,
    body: &[u8],
    ts_ms: i64,
    nonce: &[u8; 16],
) -> Vec<u8> {
    let body_hash = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "{REQUEST_CONTEXT}{method}\n{path_and_query}\n{ts_ms}\n{}\n{}",
        hex::encode(nonce),
        hex::encode(body_hash.as_ref())
    )
    .into_bytes()
}

/// Signs a request and returns the whole `Authorization` header value.
///
/// `device` must be the [`DeviceId`] of `key`; `nonce` must be fresh for every request.
pub fn authorization_header(
    key: &Ed25519KeyPair,
    device: DeviceId,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    ts_ms: i64,
    nonce: [u8; 16],
) -> String {
    let sig = key.sign(&signing_bytes(method, path_and_query, body, ts_ms, &nonce));
    format!(
        "{AUTH_SCHEME} device={device}, ts={ts_ms}, nonce={}, sig={}",
        hex::encode(nonce),
        crate::b64::encode(sig.as_ref())
    )
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// The device that claims to have signed the request.
    pub device: DeviceId,
    /// The signing time, unix milliseconds, by the device's clock.
    pub ts_ms: i64,
    /// The request's fresh random nonce.
    pub nonce: [u8; 16],
    /// Ed25519 signature over [`signing_bytes`].
    pub sig: [u8; 64],
}

impl AuthHeader {
    /// Parses `StreetSync-Ed25519 device=<hex>, ts=<ms>, nonce=<32 hex>, sig=<base64url>`.
    ///
    /// Each of the four parameters must appear exactly once; their order does not matter.
    pub fn parse(value: &str) -> Result<Self, WireError> {
        let bad = |why: &str| WireError::BadAuthHeader(why.to_string());
        let rest = value
            .strip_prefix(AUTH_SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| bad("expected the StreetSync-Ed25519 scheme"))?;
        let (mut device, mut ts_ms, mut nonce, mut sig) = (None, None, None, None);
        for part in rest.split(',') {
            let (name, val) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| bad("expected name=value parameters"))?;
            let slot_taken = match name {
                "device" => device
                    .replace(
                        val.parse::<DeviceId>()
                            .map_err(|_| bad("device is not an id"))?,
                    )
                    .is_some(),
                "ts" => ts_ms
                    .replace(
                        val.parse::<i64>()
                            .map_err(|_| bad("ts is not an integer"))?,
                    )
                    .is_some(),
                "nonce" => {
                    let mut n = [0u8; 16];
                    let canonical = val.len() == 32
                        && val.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                    if !canonical || hex::decode_to_slice(val, &mut n).is_err() {
                        return Err(bad("nonce is not 32 lowercase hex characters"));
                    }
                    nonce.replace(n).is_some()
                }
                "sig" => sig
                    .replace(
                        crate::b64::decode_array::<64>("sig", val)
                            .map_err(|_| bad("sig is not 64 bytes of base64url"))?,
                    )
                    .is_some(),
                _ => return Err(bad("unknown parameter")),
            };
            if slot_taken {
                return Err(bad("repeated parameter"));
            }
        }
        Ok(AuthHeader {
            device: device.ok_or_else(|| bad("missing device"))?,
            ts_ms: ts_ms.ok_or_else(|| bad("missing ts"))?,
            nonce: nonce.ok_or_else(|| bad("missing nonce"))?,
            sig: sig.ok_or_else(|| bad("missing sig"))?,
        })
    }

    /// Checks the signature against the device's Ed25519 public key for this request.
    ///
    /// Only the signature: the caller checks `ts_ms` against its clock and `nonce` against replays.
    pub fn verify(
        &self,
        sign_pk: &[u8],
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), WireError> {
        let msg = signing_bytes(method, path_and_query, body, self.ts_ms, &self.nonce);
        UnparsedPublicKey::new(&ED25519, sign_pk)
            .verify(&msg, &self.sig)
            .map_err(|_| WireError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use ring::signature::KeyPair as _;

    use super::*;

    fn key() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap()
    }

    fn header() -> (String, DeviceId) {
        let key = key();
        let device = DeviceId::from_public_key(key.public_key().as_ref());
        let h = authorization_header(
            &key,
            device,
            "POST",
            "/v1/teams/11111111111111111111111111111111/push",
            b"{}",
            1_700_000_000_000,
            [0xaa; 16],
        );
        (h, device)
    }

    #[test]
    fn golden_header() {
        let (h, _) = header();
        assert_eq!(h, GOLDEN_HEADER);
    }

    const GOLDEN_HEADER: &str = "StreetSync-Ed25519 device=fe812c12f3ab4ce6ac5db69ac352f906, ts=1700000000000, nonce=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, sig=2EE9vHk9dKqj-UJHUdm6A0x7253Fr0UlfvO0UPmjQCje_3TsvHO12FSkv_SZQY6RPDmXKvnmnGc_e1inQ5kXBw";

    #[test]
    fn parse_and_verify() {
        let (h, device) = header();
        let pk = key().public_key().as_ref().to_vec();
        let parsed = AuthHeader::parse(&h).unwrap();
        assert_eq!(parsed.device, device);
        assert_eq!(parsed.ts_ms, 1_700_000_000_000);
        assert_eq!(parsed.nonce, [0xaa; 16]);
        let path = "/v1/teams/11111111111111111111111111111111/push";
        parsed.verify(&pk, "POST", path, b"{}").unwrap();
        for (method, p, body) in [
            ("GET", path, &b"{}"[..]),
            (
                "POST",
                "/v1/teams/11111111111111111111111111111111/pull",
                &b"{}"[..],
            ),
            ("POST", path, &b"{ }"[..]),
        ] {
            assert_eq!(
                parsed.verify(&pk, method, p, body),
                Err(WireError::BadSignature)
            );
        }
        let mut other = parsed.clone();
        other.ts_ms += 1;
        assert_eq!(
            other.verify(&pk, "POST", path, b"{}"),
            Err(WireError::BadSignature)
        );
        let mut other = parsed;
        other.nonce[0] ^= 1;
        assert_eq!(
            other.verify(&pk, "POST", path, b"{}"),
            Err(WireError::BadSignature)
        );
    }

    #[test]
    fn reordered_parameters_parse() {
        let (h, _) = header();
        let params: Vec<&str> = h[AUTH_SCHEME.len() + 1..].split(", ").collect();
        let reordered = format!(
            "{AUTH_SCHEME} {},{},{},{}",
            params[3], params[2], params[1], params[0]
        );
        assert_eq!(
            AuthHeader::parse(&reordered).unwrap(),
            AuthHeader::parse(&h).unwrap()
        );
    }

    #[test]
    fn parse_errors_are_typed() {
        let (h, _) = header();
        let cases = [
            String::new(),
            "Bearer abc".to_string(),
            h.replace("StreetSync-Ed25519 ", "StreetSync-Ed25519"),
            h.replace("ts=", "time="),
            h.replace("ts=1700000000000", "ts=soon"),
            h.replace("nonce=aaaa", "nonce=AAAA"),
            h.replace(", sig=", ", sig=x"),
            format!("{h}, ts=1"),
            h.split(", sig=").next().unwrap().to_string(),
        ];
        for case in cases {
            assert!(
                matches!(AuthHeader::parse(&case), Err(WireError::BadAuthHeader(_))),
                "{case}"
            );
        }
    }
}
