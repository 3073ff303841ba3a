//! How an envelope is kept in a `log` row: each field in a column of its own, the ciphertext, the
//! nonce, the signature and the ids as raw bytes (SQLite migration 0005, PostgreSQL migration 3).
//!
//! Until then the row held the envelope's JSON, with base64url ciphertext: a third more bytes for
//! every ciphertext byte, and the ids, the kind and `covers` a second time beside their columns.
//! Every field of [`Envelope`] has its column, so a row gives back exactly the envelope that was
//! pushed: the same signed bytes (`Envelope::signed_bytes`) and, serialized, the same JSON.

use streetsync_wire::{DeviceId, Envelope, EnvelopeId, EnvelopeKind, RecordId, TeamId};

use super::StorageError;

/// The `log` columns a pull reads, in this order (after `seq`), in both backends.
pub(crate) const ENVELOPE_COLUMNS: &str =
    "v, doc, envelope_id, kind, epoch, author, covers, nonce, ciphertext, sig";

/// One `log` row's envelope columns, as a backend read them and before they are checked.
#[derive(Debug)]
pub(crate) struct LogRow {
    /// `v`.
    pub v: i64,
    /// `doc`.
    pub doc: Vec<u8>,
    /// `envelope_id`.
    pub id: Vec<u8>,
    /// `kind`: the kind's code.
    pub kind: i64,
    /// `epoch`.
    pub epoch: i64,
    /// `author`.
    pub author: Vec<u8>,
    /// `covers`.
    pub covers: i64,
    /// `nonce`.
    pub nonce: Vec<u8>,
    /// `ciphertext`.
    pub ciphertext: Vec<u8>,
    /// `sig`.
    pub sig: Vec<u8>,
}

fn array<const N: usize>(seq: u64, what: &str, bytes: &[u8]) -> Result<[u8; N], StorageError> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        StorageError::Corrupt(format!(
            "log entry {seq}: {what} has {} bytes, not {N}",
            bytes.len()
        ))
    })
}

fn number<T: TryFrom<i64>>(seq: u64, what: &str, n: i64) -> Result<T, StorageError> {
    T::try_from(n)
        .map_err(|_| StorageError::Corrupt(format!("log entry {seq}: {what} {n} is out of range")))
}

impl LogRow {
    /// The envelope of entry `seq` of `team`'s log; [`StorageError::Corrupt`] if a column does not
    /// fit its field (a damaged file: the schema's checks keep the relay from writing one).
    pub(crate) fn into_envelope(self, team: TeamId, seq: u64) -> Result<Envelope, StorageError> {
        let kind = EnvelopeKind::from_code(number(seq, "kind", self.kind)?)
            .map_err(|e| StorageError::Corrupt(format!("log entry {seq}: {e}")))?;
        Ok(Envelope {
            v: number(seq, "v", self.v)?,
            team,
            doc: RecordId::from_bytes(array(seq, "doc", &self.doc)?),
            id: EnvelopeId::from_bytes(array(seq, "envelope_id", &self.id)?),
            kind,
            epoch: number(seq, "epoch", self.epoch)?,
            author: DeviceId::from_bytes(array(seq, "author", &self.author)?),
            covers: number(seq, "covers", self.covers)?,
            nonce: array(seq, "nonce", &self.nonce)?,
            ciphertext: self.ciphertext,
            sig: array(seq, "sig", &self.sig)?,
        })
    }
}

/// The envelope JSON of a `log` row written before the binary columns (SQLite migration 0005,
/// PostgreSQL migration 3), checked against the row's own columns: a body that does not parse,
/// or that names another record, id, kind or `covers` than its row, stops the migration, which
/// then leaves the database as it was.
pub(crate) fn envelope_of_json_body(
    team: &[u8],
    seq: i64,
    columns: (&[u8], &[u8], i64, i64),
    body: &str,
) -> Result<Envelope, StorageError> {
    let env: Envelope = serde_json::from_str(body).map_err(|e| {
        // The parser's message could quote stored bytes; say only where it failed.
        StorageError::Corrupt(format!(
            "log entry {seq}: the stored envelope is not an envelope's JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let (doc, id, kind, covers) = columns;
    let agrees = env.team.as_bytes() == team
        && env.doc.as_bytes() == doc
        && env.id.as_bytes() == id
        && i64::from(env.kind.code()) == kind
        && i64::try_from(env.covers).ok() == Some(covers);
    if !agrees {
        return Err(StorageError::Corrupt(format!(
            "log entry {seq}: the stored envelope does not match its row's team, doc, id, kind or covers"
        )));
    }
    Ok(env)
}
