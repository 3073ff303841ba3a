//! The bodies of the fuzz targets, one function per decoder family.
//!
//! This file is shared: the libFuzzer binaries in `fuzz/fuzz_targets/` call it, and the stable
//! regression test `tests/tests/fuzz_regressions.rs` includes it by path and replays every fixture
//! in `fuzz/regressions/` and every seed in `fuzz/seeds/` through the same functions, without
//! libFuzzer. It may use only `streetsync_core`, `streetsync_wire`, `serde_json` and `ring` (what the
//! test package has).
//!
//! Every function must return for any input. A panic (including a failed `assert!` below, which
//! states a property the decoder promises) is a bug.

#![allow(dead_code)]

use std::sync::OnceLock;

use streetsync_wire as wire;

/// Serializes a parsed value, parses it again and asserts the same value comes back: a message the
/// relay stores and forwards must mean the same thing to every reader.
macro_rules! roundtrip {
    ($ty:ty, $value:expr) => {{
        let value: &$ty = $value;
        let json = serde_json::to_vec(value).expect("a parsed value serializes");
        let back: $ty = match serde_json::from_slice(&json) {
            Ok(back) => back,
            Err(e) => panic!(
                "{} does not parse its own JSON: {e}: {}",
                stringify!($ty),
                String::from_utf8_lossy(&json)
            ),
        };
        assert_eq!(
            &back,
            value,
            "{} changed in a JSON round trip",
            stringify!($ty)
        );
    }};
}

/// The targets, by the name of their binary and of their folders under `seeds/` and `regressions/`.
pub const TARGETS: &[&str] = &[
    "envelope",
    "auth_header",
    "api_json",
    "sealed_blob",
    "invite_code",
    "bundle",
    "document",
];

/// Runs the target `name` on `data`. Unknown names panic (a typo in a folder name).
pub fn run(name: &str, data: &[u8]) {
    match name {
        "envelope" => envelope(data),
        "auth_header" => auth_header(data),
        "api_json" => api_json(data),
        "sealed_blob" => sealed_blob(data),
        "invite_code" => invite_code(data),
        "bundle" => bundle(data),
        "document" => document(data),
        other => panic!("no fuzz target named {other}"),
    }
}

/// An envelope as the relay reads it from a push or snapshot body, and as a device reads it from a
/// pull page: JSON, shape check, header bytes, signed bytes, signature check.
pub fn envelope(data: &[u8]) {
    let Ok(env) = serde_json::from_slice::<wire::Envelope>(data) else {
        return;
    };
    check_envelope(&env);
    roundtrip!(wire::Envelope, &env);
}

/// What a device and the relay do with any envelope they parsed: nothing here may panic, and the
/// header has its fixed layout.
fn check_envelope(env: &wire::Envelope) {
    let _ = env.validate_shape();
    let header = env.header_bytes();
    assert_eq!(
        header.len(),
        wire::ENVELOPE_CONTEXT.len() + 1 + 16 * 3 + 1 + 4 + 16 + 8 + 12
    );
    let signed = env.signed_bytes();
    assert!(signed.starts_with(&header));
    assert_eq!(signed.len(), header.len() + 4 + env.ciphertext.len());
    let _ = env.verify(&[0; 32]);
    let _ = wire::EnvelopeKind::from_code(env.kind.code());
}

/// The `Authorization` header the relay parses on every request, and the base64url and hex id
/// decoders every JSON body goes through.
pub fn auth_header(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(h) = wire::auth::AuthHeader::parse(&text) {
        let _ = h.verify(&[0; 32], "POST", "/v1/teams/x/push", data);
        // The canonical spelling of what was parsed parses to the same header.
        let canonical = format!(
            "{} device={}, ts={}, nonce={}, sig={}",
            wire::auth::AUTH_SCHEME,
            h.device,
            h.ts_ms,
            hex_lower(&h.nonce),
            wire::b64::encode(&h.sig)
        );
        assert_eq!(
            wire::auth::AuthHeader::parse(&canonical).as_ref(),
            Ok(&h),
            "canonical header {canonical}"
        );
    }
    if let Ok(bytes) = wire::b64::decode("fuzz", &text) {
        // base64url without padding has one spelling per byte string.
        assert_eq!(
            wire::b64::encode(&bytes),
            text,
            "base64url is not canonical"
        );
    }
    let _ = wire::b64::decode_array::<32>("fuzz", &text);
    let _ = wire::b64::decode_array::<64>("fuzz", &text);
    if let Ok(id) = text.parse::<wire::TeamId>() {
        assert_eq!(id.to_string(), text, "an id has one spelling");
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every JSON request and response body of the protocol. The relay parses the requests, the sync
/// client the responses; the input is tried as each of them.
pub fn api_json(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<wire::PushRequest>(data) {
        for env in &v.envelopes {
            check_envelope(env);
        }
        roundtrip!(wire::PushRequest, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::PullResponse>(data) {
        for entry in &v.entries {
            check_envelope(&entry.envelope);
        }
        roundtrip!(wire::PullResponse, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::CreateInvite>(data) {
        roundtrip!(wire::CreateInvite, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::RedeemInvite>(data) {
        let _ = wire::RedeemInvite::proof_input(&wire::InviteId::from_bytes([0; 16]), &v.device);
        roundtrip!(wire::RedeemInvite, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::BundleList>(data) {
        roundtrip!(wire::BundleList, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::ErrorBody>(data) {
        let _ = (v.error.status(), v.error.as_str());
        roundtrip!(wire::ErrorBody, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::CreateTeam>(data) {
        roundtrip!(wire::CreateTeam, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::DeviceKeys>(data) {
        let _ = wire::DeviceId::from_public_key(&v.sign_pk) == v.id;
        roundtrip!(wire::DeviceKeys, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::DeviceList>(data) {
        roundtrip!(wire::DeviceList, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::PostBundle>(data) {
        roundtrip!(wire::PostBundle, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::BundleCreated>(data) {
        roundtrip!(wire::BundleCreated, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::PushResponse>(data) {
        roundtrip!(wire::PushResponse, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::SnapshotResponse>(data) {
        roundtrip!(wire::SnapshotResponse, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::LiveMessage>(data) {
        roundtrip!(wire::LiveMessage, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::RedeemResponse>(data) {
        roundtrip!(wire::RedeemResponse, &v);
    }
    if let Ok(v) = serde_json::from_slice::<wire::InviteList>(data) {
        roundtrip!(wire::InviteList, &v);
    }
}

/// Sealed blobs: an at-rest blob of the device store (`version | nonce | ciphertext`), and a key
/// bundle sealed to this device's X25519 key (`eph_pub | nonce | ciphertext`) as it arrives in the
/// relay mailbox.
pub fn sealed_blob(data: &[u8]) {
    let _ = streetsync_core::testing::open_sealed(data);
    static IDENTITY: OnceLock<streetsync_core::DeviceIdentity> = OnceLock::new();
    let identity = IDENTITY
        .get_or_init(|| streetsync_core::DeviceIdentity::generate().expect("a device identity"));
    let _ = identity.open_bundle(data);
}

/// An invite code as a person types it.
pub fn invite_code(data: &[u8]) {
    let _ = streetsync_core::testing::parse_invite_code(&String::from_utf8_lossy(data));
}

/// A bundle message (postcard), what a device finds in its relay mailbox once the outer seal is open.
pub fn bundle(data: &[u8]) {
    let _ = streetsync_core::testing::decode_bundle_message(data);
}

/// Automerge changes or a saved document from a teammate, loaded and hydrated as every record kind:
/// once as they are, and once with every chunk's checksum made valid.
pub fn document(data: &[u8]) {
    let _ = streetsync_core::testing::merge_document(data);
    if let Some(fixed) = with_valid_checksums(data) {
        let _ = streetsync_core::testing::merge_document(&fixed);
    }
}

/// The magic bytes that start every Automerge chunk.
const AUTOMERGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// `data` with the checksum of each Automerge chunk set to what Automerge computes, or `None` if
/// nothing changed.
///
/// Every chunk (`magic | checksum:4 | type:1 | len:uleb128 | data`) carries the first 4 bytes of
/// SHA-256 over `type | len | data`, and Automerge refuses a chunk whose checksum does not match
/// before it looks at the data. A random mutation almost never keeps it valid, so without this the
/// fuzzer would spend its time on the checksum. A malicious teammate writes valid checksums, so
/// this is the input that matters. Compressed change chunks (type 2), whose checksum covers the
/// inflated change, are left as they are.
pub fn with_valid_checksums(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut pos = 0;
    while pos + 9 <= out.len() && out[pos..pos + 4] == AUTOMERGE_MAGIC {
        let typ = out[pos + 8];
        let (len, leb_len) = read_uleb128(&out[pos + 9..])?;
        let start = pos + 9 + leb_len;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))?;
        if end > out.len() {
            break;
        }
        if typ != 2 {
            let mut hashed = vec![typ];
            write_uleb128(end - start, &mut hashed);
            hashed.extend_from_slice(&out[start..end]);
            let digest = ring::digest::digest(&ring::digest::SHA256, &hashed);
            out[pos + 4..pos + 8].copy_from_slice(&digest.as_ref()[..4]);
        }
        pos = end;
    }
    (out != data).then_some(out)
}

fn read_uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_uleb128(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}
