//! A structural pre-check of a teammate's Automerge bytes, run before Automerge loads them.
//!
//! Automerge 0.12 trusts the sizes a chunk declares. A run-length-encoded column may declare a run
//! of 2^30 entries in a couple of bytes, and `load_incremental` expands it with `collect()`
//! (`ChangeGraphCols::load`, `change_graph.rs:945`): a 1,781-byte document asks for 4 GiB
//! (`fuzz/regressions/document/oom-881a4fa6*`, found by the `document` fuzz target). A failed
//! allocation aborts the process, so `doc::foreign::guard` cannot catch it; a malicious member
//! could crash every device that pulls such an envelope, on every sync.
//!
//! [`check`] walks every chunk the way Automerge 0.12 parses it (`storage/chunk.rs`,
//! `storage/document.rs`, `storage/change.rs`, `storage/columns/raw_column.rs`, and the column
//! decoders of `columnar/encoding/` and hexane) without expanding anything: it reads each column's
//! runs, adds up the rows they declare, and refuses the input as soon as a declared size exceeds
//! what a streetsync record can hold. It allocates in proportion to the bytes it actually holds
//! (the input, and deflated parts inflated up to [`MAX_INFLATED_BYTES`]), never to a declared size.
//!
//! It is deliberately conservative: anything Automerge would reject anyway may be refused here too
//! (unknown chunk types, bundle chunks, bytes after the last chunk, columns that do not decode),
//! because the core never produces such input and a teammate's device running the same core does
//! not either. What it accepts is still checked in full by Automerge.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;

/// The most rows all the columns of one input may declare, summed over its chunks (for each chunk,
/// its longest column, and for a document chunk its change table and its operation table).
///
/// Automerge keeps one operation per character ever typed into a text field (deleted characters
/// stay as tombstones) and one per field set. The core's longest fields are the contact and client
/// notes (`contact::MAX_NOTE_CHARS`, `client::MAX_CLIENT_NOTE_CHARS`: 10,000 characters) and the
/// comments and partner notes (4,000 each), so a record of 2^18 (262,144) operations would have had
/// its note retyped from scratch 26 times, or a team directory would hold 65 partners with notes of
/// the full 4,000 characters; a real record with a long edit history stays far below (autosurgeon
/// splices only the edited characters). A record that ever grew beyond this could no longer be sent
/// as a snapshot.
///
/// The bound is also what Automerge's memory follows: merging rows into an existing document
/// (`load_incremental`) took automerge 0.12 about 520 bytes per row (measured in release builds,
/// with text, map and list operations: 2^19 rows 280 MB, 2^20 rows 530 MB, 2^21 rows 1 GB and
/// 8 s, from a saved document of a few KB), so at 2^18 a crafted input costs a device about
/// 140 MB, not gigabytes: a phone survives that, even with a few such inputs loaded at once by the
/// sync client's page opener (at most four threads).
pub(crate) const MAX_ROWS: u64 = 1 << 18;

/// The most bytes the deflated parts of one input (compressed change chunks and deflated document
/// columns) may inflate to, together. Automerge inflates them with `read_to_end`, unbounded; a
/// deflate stream can expand about 1,000-fold. The relay takes at most 1 MiB of ciphertext per
/// envelope (`streetsync_wire::MAX_CIPHERTEXT_BYTES`), and Automerge's columns deflate by far less
/// than 64-fold, so a real envelope stays well inside this.
pub(crate) const MAX_INFLATED_BYTES: u64 = 64 << 20;

/// The most actor ids one input may declare (a document's actor list, and each change's actor and
/// other actors, counted every time they are declared). An actor id costs one byte of input and
/// about a hundred bytes inside Automerge, so without a bound an inflated change could make
/// Automerge hold gigabytes of them. The core makes one actor per device and session
/// (`Workspace::open`), so a record's actors are the sessions that edited it, and an input of
/// concatenated changes declares one per change; both stay far below 2^18 for an envelope of at
/// most 1 MiB.
pub(crate) const MAX_ACTOR_ENTRIES: u64 = 1 << 18;

/// The most (changes × distinct actors) one input may declare. Automerge keeps a vector clock of 4
/// bytes per actor of the document for every 16th change (`change_graph.rs`, `CACHE_STEP`) and for
/// every change whose hash starts with a zero byte (a "fragment", which a sender can make every
/// change by trying timestamps), so its memory grows with this product, not with the input: a
/// 519 KB document of 40,000 one-key changes by 40,000 actors made automerge 0.12 take 435 MB to
/// load, and 2^21 empty changes (a few RLE bytes) with 2^16 two-byte actor ids would take 32 GiB.
/// At 2^24 those clocks stay below 64 MiB even if every change were a fragment. A real input stays
/// well below: a contact's few hundred changes by a few dozen sessions is about 2^13, and a team
/// document with 10,000 changes by 1,000 lead sessions about 2^23.
pub(crate) const MAX_CLOCK_CELLS: u64 = 1 << 24;

/// The four bytes that start every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The length of a change hash (SHA-256) in a chunk.
const HASH_BYTES: u64 = 32;

/// The deflate bit of a column specification (`id << 4 | deflate << 3 | type`).
const DEFLATE_BIT: u32 = 0b1000;

/// Why [`check`] refused an input. The message names what was declared and the limit, so a
/// quarantined envelope can be understood from its reason alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PrecheckError {
    /// The bytes at `offset` are not the magic bytes of an Automerge chunk.
    #[error("byte {offset} does not start an Automerge chunk")]
    NotAChunk {
        /// Where the chunk should have started.
        offset: usize,
    },
    /// A chunk type Automerge 0.12 does not know.
    #[error("unknown Automerge chunk type {0}")]
    UnknownChunkType(u8),
    /// A bundle chunk (type 3): Automerge 0.12 reads them, but streetsync never makes them, and
    /// this check does not mirror their format.
    #[error("Automerge bundle chunks are not accepted (streetsync never makes them)")]
    Bundle,
    /// A length that runs past the end of its chunk (or of the input).
    #[error("{what} declares {declared} bytes, but only {remaining} remain")]
    Truncated {
        /// What declared the length.
        what: &'static str,
        /// The declared length.
        declared: u64,
        /// The bytes that were left.
        remaining: usize,
    },
    /// A count of entries that the remaining bytes cannot hold (each entry takes at least
    /// `min_bytes`).
    #[error("{what}: {count} declared, more than the {remaining} bytes that remain can hold")]
    CountExceedsBytes {
        /// What was counted.
        what: &'static str,
        /// The declared count.
        count: u64,
        /// The bytes that were left.
        remaining: usize,
    },
    /// Bytes that do not follow the format at all.
    #[error("malformed Automerge data: {0}")]
    Malformed(&'static str),
    /// The columns declare more rows than [`MAX_ROWS`].
    #[error("the columns declare more than {MAX_ROWS} rows (the limit for one input)")]
    TooManyRows,
    /// An actor column refers to an actor the chunk does not declare.
    #[error("a column refers to actor {index}, but the chunk declares {actors} actors")]
    ActorIndex {
        /// The index found.
        index: u64,
        /// The number of actors the chunk declares.
        actors: u64,
    },
    /// The lengths of a value-metadata column add up to more bytes than the chunk holds.
    #[error("the values of a column declare more bytes than the chunk holds ({available})")]
    ValueBytes {
        /// The column data the chunk holds, inflated.
        available: u64,
    },
    /// A change chunk with a deflated column (Automerge refuses those too).
    #[error("a change chunk has a deflated column")]
    DeflatedChangeColumn,
    /// A deflated part that does not inflate.
    #[error("a deflated part of the data does not inflate")]
    Inflate,
    /// The deflated parts inflate to more than [`MAX_INFLATED_BYTES`].
    #[error(
        "the deflated parts inflate to more than {MAX_INFLATED_BYTES} bytes (the limit for one input)"
    )]
    InflatedTooLarge,
    /// More actor ids than [`MAX_ACTOR_ENTRIES`].
    #[error("more than {MAX_ACTOR_ENTRIES} actor ids declared (the limit for one input)")]
    TooManyActors,
    /// More (changes × actors) than [`MAX_CLOCK_CELLS`].
    #[error(
        "{changes} changes by {actors} actors exceed the limit of {MAX_CLOCK_CELLS} for one input"
    )]
    ClockTooLarge {
        /// The changes declared.
        changes: u64,
        /// The actors declared.
        actors: u64,
    },
}

/// Checks that `bytes` (Automerge chunks from a teammate: changes, compressed changes or a saved
/// document, possibly concatenated) declare no size beyond what a record can hold, before
/// `load_incremental` expands them. Empty input passes (Automerge loads it as nothing).
///
/// Runs in time linear in the input and the inflated data; allocates only in proportion to them.
pub(crate) fn check(bytes: &[u8]) -> Result<(), PrecheckError> {
    let walked = walk(bytes)?;
    tracing::trace!(
        documents = walked.documents,
        changes = walked.change_chunks,
        compressed = walked.compressed_chunks,
        deflated_columns = walked.deflated_columns,
        rows = walked.rows,
        inflated = walked.inflated,
        "foreign Automerge bytes passed the pre-check"
    );
    Ok(())
}

/// What [`walk`] saw in an input that passed (logged, and checked by the tests).
#[derive(Debug, Default)]
struct Walked {
    /// Document chunks.
    documents: u64,
    /// Change chunks (compressed ones included).
    change_chunks: u64,
    /// Compressed change chunks.
    compressed_chunks: u64,
    /// Deflated document columns.
    deflated_columns: u64,
    /// Rows counted against [`MAX_ROWS`].
    rows: u64,
    /// Bytes inflated, counted against [`MAX_INFLATED_BYTES`].
    inflated: u64,
}

/// Walks every chunk of `bytes`, refusing the first declared size beyond the limits.
fn walk(bytes: &[u8]) -> Result<Walked, PrecheckError> {
    let mut walker = Walker::default();
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let offset = bytes.len() - r.remaining();
        if r.bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(PrecheckError::NotAChunk { offset });
        }
        r.take(8, "chunk header")?; // magic and checksum (Automerge verifies the checksum)
        let chunk_type = r.byte()?;
        let len = r.uleb()?;
        let body = r.take(len, "a chunk")?;
        match chunk_type {
            0 => walker.document(body)?,
            1 => walker.change(body)?,
            2 => {
                // Automerge inflates the body and parses it as the body of a change chunk.
                let inflated = walker.inflate(body)?;
                walker.walked.compressed_chunks += 1;
                walker.change(&inflated)?;
            }
            3 => return Err(PrecheckError::Bundle),
            other => return Err(PrecheckError::UnknownChunkType(other)),
        }
    }
    walker.check_clock()?;
    Ok(walker.walked)
}

/// The budgets of one input, spent chunk by chunk.
#[derive(Default)]
struct Walker {
    /// What was seen so far; `rows` and `inflated` are the spent budgets.
    walked: Walked,
    /// Actor ids declared so far (against [`MAX_ACTOR_ENTRIES`]).
    actor_entries: u64,
    /// Fingerprints of the distinct actor ids declared (for [`MAX_CLOCK_CELLS`]); bounded by
    /// [`MAX_ACTOR_ENTRIES`].
    distinct_actors: HashSet<u64>,
    /// The largest actor list of one document chunk (Automerge sizes its clocks by it).
    largest_actor_list: u64,
    /// Keys the actor fingerprints, so they cannot be made to collide.
    hasher: RandomState,
    /// Changes declared so far (one per change chunk, a document's change rows).
    changes: u64,
}

/// A column as the metadata of a chunk declares it.
#[derive(Clone, Copy)]
struct ColumnMeta {
    /// `id << 4 | deflate << 3 | type`.
    spec: u32,
    /// The bytes of its data (deflated, if the deflate bit is set).
    len: u64,
}

impl Walker {
    /// A document chunk (`storage/document.rs`, `Document::parse`): actors, heads, change and
    /// operation column metadata, their data, and the optional head indices.
    fn document(&mut self, body: &[u8]) -> Result<(), PrecheckError> {
        self.walked.documents += 1;
        let mut r = Reader::new(body);
        let actors = r.count("actors", 1)?;
        for _ in 0..actors {
            let len = r.uleb()?;
            let id = r.take(len, "an actor id")?;
            self.actor(id)?;
        }
        self.largest_actor_list = self.largest_actor_list.max(actors);
        let heads = r.count("heads", HASH_BYTES)?;
        r.take(heads * HASH_BYTES, "the heads")?;
        let change_cols = column_metadata(&mut r)?;
        let op_cols = column_metadata(&mut r)?;
        let change_data = r.take(data_len(&change_cols)?, "the change columns")?;
        let op_data = r.take(data_len(&op_cols)?, "the operation columns")?;
        if !r.is_empty() {
            // Head indices, absent in documents of older JavaScript implementations.
            for _ in 0..heads {
                r.uleb()?;
            }
            if !r.is_empty() {
                return Err(PrecheckError::Malformed(
                    "bytes after the end of a document",
                ));
            }
        }
        let change_rows = self.columns(&change_cols, change_data, actors, true)?;
        self.changes = self.changes.saturating_add(change_rows);
        self.columns(&op_cols, op_data, actors, true)?;
        Ok(())
    }

    /// The body of a change chunk (`storage/change.rs`, `Change::parse_following_header`):
    /// dependencies, actor, sequence number, start op, time, message, other actors, operation
    /// column metadata, their data, and extra bytes to the end.
    fn change(&mut self, body: &[u8]) -> Result<(), PrecheckError> {
        self.walked.change_chunks += 1;
        let mut r = Reader::new(body);
        let deps = r.count("dependencies", HASH_BYTES)?;
        r.take(deps * HASH_BYTES, "the dependencies")?;
        let len = r.uleb()?;
        let actor = r.take(len, "an actor id")?;
        self.actor(actor)?;
        r.uleb()?; // sequence number
        r.uleb()?; // start op
        r.sleb()?; // time
        let message = r.uleb()?;
        r.take(message, "the message")?;
        let others = r.count("other actors", 1)?;
        for _ in 0..others {
            let len = r.uleb()?;
            let id = r.take(len, "an actor id")?;
            self.actor(id)?;
        }
        let cols = column_metadata(&mut r)?;
        let data = r.take(data_len(&cols)?, "the operation columns")?;
        // The rest are extra bytes, kept as they are.
        self.changes = self.changes.saturating_add(1);
        self.columns(&cols, data, others + 1, false)?;
        Ok(())
    }

    /// Counts an actor id against the limits.
    fn actor(&mut self, id: &[u8]) -> Result<(), PrecheckError> {
        self.actor_entries += 1;
        if self.actor_entries > MAX_ACTOR_ENTRIES {
            return Err(PrecheckError::TooManyActors);
        }
        self.distinct_actors.insert(self.hasher.hash_one(id));
        Ok(())
    }

    /// Refuses inputs whose changes and actors would make Automerge's clock cache too large.
    fn check_clock(&self) -> Result<(), PrecheckError> {
        let actors = (self.distinct_actors.len() as u64).max(self.largest_actor_list);
        if self.changes.saturating_mul(actors) > MAX_CLOCK_CELLS {
            return Err(PrecheckError::ClockTooLarge {
                changes: self.changes,
                actors,
            });
        }
        Ok(())
    }

    /// Checks the columns of one table (a document's changes or operations, or a change's
    /// operations) and spends its rows (its longest column, or the longest group of a group
    /// column) from the budget. Returns those rows. `deflate_allowed` is false in change chunks,
    /// whose deflated columns Automerge refuses.
    fn columns(
        &mut self,
        cols: &[ColumnMeta],
        data: &[u8],
        actors: u64,
        deflate_allowed: bool,
    ) -> Result<u64, PrecheckError> {
        // Inflate first: the value lengths are checked against all the column data of the table.
        let mut datas: Vec<(u32, Cow<'_, [u8]>)> = Vec::new();
        let mut r = Reader::new(data);
        let mut available = 0u64;
        for col in cols {
            let raw = r.take(col.len, "a column")?;
            let bytes = if col.spec & DEFLATE_BIT != 0 {
                if !deflate_allowed {
                    return Err(PrecheckError::DeflatedChangeColumn);
                }
                self.walked.deflated_columns += 1;
                Cow::Owned(self.inflate(raw)?)
            } else {
                Cow::Borrowed(raw)
            };
            available = available.saturating_add(bytes.len() as u64);
            datas.push((col.spec, bytes));
        }
        let limits = Limits {
            rows: MAX_ROWS - self.walked.rows,
            actors,
            value_bytes: available,
        };
        let mut rows = 0;
        for (spec, bytes) in &datas {
            let counted = scan_column(ColumnKind::of(*spec), bytes, &limits)?;
            rows = rows.max(counted.rows).max(counted.grouped);
        }
        self.walked.rows += rows;
        Ok(rows)
    }

    /// Inflates a deflated part (raw deflate, as Automerge's `flate2::bufread::DeflateDecoder`),
    /// reading no more than the input's remaining budget of [`MAX_INFLATED_BYTES`].
    fn inflate(&mut self, deflated: &[u8]) -> Result<Vec<u8>, PrecheckError> {
        let left = MAX_INFLATED_BYTES - self.walked.inflated;
        let mut out = Vec::new();
        flate2::bufread::DeflateDecoder::new(deflated)
            .take(left + 1)
            .read_to_end(&mut out)
            .map_err(|_| PrecheckError::Inflate)?;
        let len = out.len() as u64;
        if len > left {
            return Err(PrecheckError::InflatedTooLarge);
        }
        self.walked.inflated += len;
        Ok(out)
    }
}

/// Reads column metadata (`RawColumns::parse`): a count, then per column its specification (a
/// 32-bit LEB128) and data length.
fn column_metadata(r: &mut Reader<'_>) -> Result<Vec<ColumnMeta>, PrecheckError> {
    let n = r.count("columns", 2)?;
    let mut cols = Vec::new();
    for _ in 0..n {
        let spec = u32::try_from(r.uleb()?)
            .map_err(|_| PrecheckError::Malformed("a column specification beyond 32 bits"))?;
        let len = r.uleb()?;
        cols.push(ColumnMeta { spec, len });
    }
    Ok(cols)
}

/// The bytes the columns' data takes, all together.
fn data_len(cols: &[ColumnMeta]) -> Result<u64, PrecheckError> {
    cols.iter().try_fold(0u64, |sum, c| {
        sum.checked_add(c.len)
            .ok_or(PrecheckError::Malformed("column lengths beyond 64 bits"))
    })
}

/// The limits a column is checked against.
struct Limits {
    /// Rows left in the input's budget.
    rows: u64,
    /// Actors the chunk declares (an actor column's values index them).
    actors: u64,
    /// Column data the table holds, inflated (the most a value-metadata column may declare).
    value_bytes: u64,
}

/// The encodings of columns, from the low three bits of a column specification
/// (`storage/columns/column_specification.rs`, `ColumnType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    /// RLE of unsigned counts: how many entries of the grouped columns each row has.
    Group,
    /// RLE of unsigned indexes into the chunk's actors.
    Actor,
    /// RLE of LEB128 integers.
    Integer,
    /// RLE of signed LEB128 deltas.
    Delta,
    /// Alternating unsigned run lengths of false and true.
    Boolean,
    /// RLE of length-prefixed UTF-8 strings.
    String,
    /// RLE of unsigned `length << 4 | type` of the values in the matching value column.
    ValueMeta,
    /// Raw bytes, sliced by a value-metadata column; no rows of its own.
    Value,
}

impl ColumnKind {
    /// The kind of a column from its specification.
    fn of(spec: u32) -> Self {
        match spec & 0b111 {
            0 => ColumnKind::Group,
            1 => ColumnKind::Actor,
            2 => ColumnKind::Integer,
            3 => ColumnKind::Delta,
            4 => ColumnKind::Boolean,
            5 => ColumnKind::String,
            6 => ColumnKind::ValueMeta,
            _ => ColumnKind::Value,
        }
    }
}

/// What a column declares.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counted {
    /// Its rows.
    rows: u64,
    /// For a group column, the rows of the columns it groups (the sum of its values).
    grouped: u64,
}

/// Adds up the rows a column declares, refusing it as soon as they exceed `limits.rows`, and checks
/// the values that index or size something: actor indexes, group counts and value lengths.
fn scan_column(kind: ColumnKind, data: &[u8], limits: &Limits) -> Result<Counted, PrecheckError> {
    let mut r = Reader::new(data);
    let mut counted = Counted::default();
    match kind {
        ColumnKind::Value => {}
        ColumnKind::Boolean => {
            while !r.is_empty() {
                counted.rows = add_rows(counted.rows, r.uleb()?, limits)?;
            }
        }
        _ => {
            let mut value_bytes = 0u64;
            while !r.is_empty() {
                // `count > 0`: one value repeated; `< 0`: that many literal values follow;
                // `0`: a run of nulls, its length follows.
                let count = r.sleb()?;
                if count == 0 {
                    counted.rows = add_rows(counted.rows, r.uleb()?, limits)?;
                    continue;
                }
                let n = count.unsigned_abs();
                if count < 0 && n > r.remaining() as u64 {
                    return Err(PrecheckError::CountExceedsBytes {
                        what: "literal values in a column",
                        count: n,
                        remaining: r.remaining(),
                    });
                }
                counted.rows = add_rows(counted.rows, n, limits)?;
                let (values, repeat) = if count > 0 { (1, n) } else { (n, 1) };
                for _ in 0..values {
                    let value = read_value(&mut r, kind)?;
                    match kind {
                        ColumnKind::Actor if value >= limits.actors => {
                            return Err(PrecheckError::ActorIndex {
                                index: value,
                                actors: limits.actors,
                            });
                        }
                        ColumnKind::Group => {
                            counted.grouped =
                                add_rows(counted.grouped, value.saturating_mul(repeat), limits)?;
                        }
                        ColumnKind::ValueMeta => {
                            value_bytes =
                                value_bytes.saturating_add((value >> 4).saturating_mul(repeat));
                            if value_bytes > limits.value_bytes {
                                return Err(PrecheckError::ValueBytes {
                                    available: limits.value_bytes,
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(counted)
}

/// `rows + more`, refused beyond the input's budget.
fn add_rows(rows: u64, more: u64, limits: &Limits) -> Result<u64, PrecheckError> {
    let sum = rows.saturating_add(more);
    if sum > limits.rows {
        return Err(PrecheckError::TooManyRows);
    }
    Ok(sum)
}

/// Reads one value of an RLE column; returns it for the kinds whose values are unsigned and
/// checked (actor indexes, group counts, value metadata), 0 for the others.
fn read_value(r: &mut Reader<'_>, kind: ColumnKind) -> Result<u64, PrecheckError> {
    match kind {
        ColumnKind::Actor | ColumnKind::Group | ColumnKind::ValueMeta => r.uleb(),
        ColumnKind::String => {
            let len = r.uleb()?;
            r.take(len, "a string in a column")?;
            Ok(0)
        }
        // Integer columns hold unsigned or signed numbers depending on the column; only their
        // length matters here.
        _ => r.skip_leb().map(|()| 0),
    }
}

/// A cursor over bytes whose reads fail, never panic, at the end.
struct Reader<'a> {
    /// What is left to read.
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether everything was read.
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes left.
    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// One byte.
    fn byte(&mut self) -> Result<u8, PrecheckError> {
        let (&b, rest) = self.bytes.split_first().ok_or(PrecheckError::Malformed(
            "the data ends in the middle of a number",
        ))?;
        self.bytes = rest;
        Ok(b)
    }

    /// The next `n` bytes, which `what` declared.
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], PrecheckError> {
        let truncated = || PrecheckError::Truncated {
            what,
            declared: n,
            remaining: self.bytes.len(),
        };
        let n = usize::try_from(n).map_err(|_| truncated())?;
        if n > self.bytes.len() {
            return Err(truncated());
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    /// A count of entries of at least `min_bytes` each, refused if the bytes left cannot hold
    /// them (so no loop over a declared count runs longer than the input).
    fn count(&mut self, what: &'static str, min_bytes: u64) -> Result<u64, PrecheckError> {
        let count = self.uleb()?;
        if count.saturating_mul(min_bytes) > self.bytes.len() as u64 {
            return Err(PrecheckError::CountExceedsBytes {
                what,
                count,
                remaining: self.bytes.len(),
            });
        }
        Ok(count)
    }

    /// An unsigned LEB128 number of at most 64 bits.
    fn uleb(&mut self) -> Result<u64, PrecheckError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(PrecheckError::Malformed("a number beyond 64 bits"));
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PrecheckError::Malformed("a number beyond 64 bits"))
    }

    /// A signed LEB128 number of at most 64 bits.
    fn sleb(&mut self) -> Result<i64, PrecheckError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift == 63 && b != 0 && b != 0x7f {
                return Err(PrecheckError::Malformed("a number beyond 64 bits"));
            }
            value |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= u64::MAX << shift;
                }
                return Ok(value as i64);
            }
        }
    }

    /// Skips a LEB128 number (signed or unsigned) of at most 10 bytes.
    fn skip_leb(&mut self) -> Result<(), PrecheckError> {
        for _ in 0..10 {
            if self.byte()? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(PrecheckError::Malformed("a number beyond 64 bits"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{
        ClientDraft, ContactDraft, KeySource, RecordKind, StorageKey, TeamSetup, Workspace,
    };
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// The memory bomb the `document` fuzz target found: a document chunk whose change actor
    /// column declares a run of about 2^30 entries (4 GiB once Automerge expands it).
    const OOM: &[u8] = include_bytes!(
        "../../../fuzz/regressions/document/oom-881a4fa6c07a44abf1381bc75c9c47498e5057a6"
    );

    fn fuzz_dir(kind: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz")
            .join(kind)
            .join("document")
    }

    fn files(kind: &str) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(fuzz_dir(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    // ---- encoders for hand-built chunks ---------------------------------------------------

    fn uleb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn sleb(mut n: i64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if (n == 0 && b & 0x40 == 0) || (n == -1 && b & 0x40 != 0) {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn chunk(chunk_type: u8, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend([0; 4]); // checksum: not this check's business
        out.push(chunk_type);
        uleb(body.len() as u64, &mut out);
        out.extend(body);
        out
    }

    fn columns(cols: &[(u32, Vec<u8>)], meta: &mut Vec<u8>, data: &mut Vec<u8>) {
        uleb(cols.len() as u64, meta);
        for (spec, bytes) in cols {
            uleb(u64::from(*spec), meta);
            uleb(bytes.len() as u64, meta);
            data.extend(bytes);
        }
    }

    /// A document chunk with `actors`, no heads, and the given change and operation columns.
    fn document(
        actors: &[Vec<u8>],
        change_cols: &[(u32, Vec<u8>)],
        op_cols: &[(u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        uleb(actors.len() as u64, &mut body);
        for a in actors {
            uleb(a.len() as u64, &mut body);
            body.extend(a);
        }
        uleb(0, &mut body); // heads
        let mut data = Vec::new();
        columns(change_cols, &mut body, &mut data);
        columns(op_cols, &mut body, &mut data);
        body.extend(data);
        chunk(0, &body)
    }

    /// The body of a change chunk by a 16-byte actor, with the given operation columns.
    fn change_body(op_cols: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        uleb(0, &mut body); // deps
        uleb(16, &mut body);
        body.extend([7; 16]);
        uleb(1, &mut body); // seq
        uleb(1, &mut body); // start op
        sleb(0, &mut body); // time
        uleb(0, &mut body); // message
        uleb(0, &mut body); // other actors
        let mut data = Vec::new();
        columns(op_cols, &mut body, &mut data);
        body.extend(data);
        body
    }

    const ACTOR: u32 = 0x01; // id 0, actor
    const GROUP: u32 = 0x80; // id 8, group
    const BOOLEAN: u32 = 0x34; // id 3, boolean
    const STRING: u32 = 0x15; // id 1, string
    const VALUE_META: u32 = 0x56; // id 5, value metadata
    const VALUE: u32 = 0x57; // id 5, raw values

    /// An RLE column of one run: `count` times `value`.
    fn run(count: i64, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        sleb(count, &mut out);
        uleb(value, &mut out);
        out
    }

    fn one_actor() -> Vec<Vec<u8>> {
        vec![vec![1; 16]]
    }

    /// Runs `f`, which must return in seconds even on a loaded machine and an unoptimised build:
    /// an input that was not refused would allocate gigabytes or walk billions of rows.
    fn timed<T>(f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        out
    }

    // ---- the memory bomb and other declared sizes --------------------------------------------

    #[test]
    fn the_memory_bomb_found_by_the_fuzzer_is_refused_at_once() {
        // Its change columns: the sequence numbers (`0x03`) end in a truncated number, which
        // Automerge never reads because it expands the maximum ops (`0x13`: a run of 2^37 - 1
        // deltas, `ff ff ff ff ff 03`) first.
        assert!(matches!(
            timed(|| check(OOM)),
            Err(PrecheckError::Malformed(_))
        ));
        // With the sequence numbers repaired, the run is what is refused.
        let seq = [0x03, 0x04, 0x13, 0x08];
        let at = OOM.windows(4).position(|w| w == seq).unwrap();
        let data = OOM
            .windows(4)
            .position(|w| w == [0x05, 0x01, 0xff, 0xff])
            .unwrap();
        assert!(data > at);
        let mut repaired = OOM.to_vec();
        repaired[data + 2..data + 4].copy_from_slice(&[0x7f, 0x00]);
        assert_eq!(timed(|| check(&repaired)), Err(PrecheckError::TooManyRows));
        let err = check(&repaired).unwrap_err().to_string();
        assert!(err.contains(&format!("{MAX_ROWS} rows")), "{err}");
    }

    #[test]
    fn the_merging_entry_point_refuses_it_as_a_protocol_error() {
        let id = streetsync_wire::RecordId::from_bytes([3; 16]);
        let doc = crate::doc::new();
        let err = timed(|| crate::doc::foreign::open_for_merge(id, Some(doc), OOM, None))
            .err()
            .unwrap();
        assert!(
            matches!(&err, crate::error::Error::Protocol(m) if m.contains("refused before loading")),
            "{err}"
        );
        let err = timed(|| crate::doc::foreign::open_for_merge(id, None, OOM, None))
            .err()
            .unwrap();
        assert!(matches!(&err, crate::error::Error::Protocol(_)), "{err}");
    }

    #[test]
    fn a_huge_run_of_one_value_is_refused() {
        let doc = document(&one_actor(), &[(ACTOR, run(1 << 30, 0))], &[]);
        assert_eq!(timed(|| check(&doc)), Err(PrecheckError::TooManyRows));
        // The same run at the limit passes.
        let doc = document(&one_actor(), &[(ACTOR, run(MAX_ROWS as i64, 0))], &[]);
        assert_eq!(check(&doc), Ok(()));
    }

    #[test]
    fn a_huge_null_run_is_refused() {
        let mut col = Vec::new();
        sleb(0, &mut col);
        uleb(1 << 40, &mut col);
        let doc = document(&one_actor(), &[], &[(ACTOR, col)]);
        assert_eq!(timed(|| check(&doc)), Err(PrecheckError::TooManyRows));
    }

    #[test]
    fn a_huge_boolean_run_is_refused() {
        let mut col = Vec::new();
        uleb(3, &mut col); // three false
        uleb(u64::MAX, &mut col); // then "all" true
        let doc = document(&one_actor(), &[], &[(BOOLEAN, col)]);
        assert_eq!(timed(|| check(&doc)), Err(PrecheckError::TooManyRows));
    }

    #[test]
    fn a_huge_literal_count_is_refused() {
        let mut col = Vec::new();
        sleb(-(1 << 40), &mut col);
        col.extend([0; 8]);
        let doc = document(&one_actor(), &[], &[(ACTOR, col)]);
        assert!(matches!(
            timed(|| check(&doc)),
            Err(PrecheckError::CountExceedsBytes { count, .. }) if count == 1 << 40
        ));
        // i64::MIN, whose absolute value does not fit an i64.
        let mut col = Vec::new();
        sleb(i64::MIN, &mut col);
        let doc = document(&one_actor(), &[], &[(ACTOR, col)]);
        assert!(matches!(
            check(&doc),
            Err(PrecheckError::CountExceedsBytes { .. })
        ));
    }

    #[test]
    fn huge_group_counts_are_refused() {
        // Two rows, each declaring 2^40 successors (or dependencies).
        let doc = document(&one_actor(), &[], &[(GROUP, run(2, 1 << 40))]);
        assert_eq!(timed(|| check(&doc)), Err(PrecheckError::TooManyRows));
        // And many rows of a smaller count that add up beyond the limit.
        let doc = document(&one_actor(), &[], &[(GROUP, run(MAX_ROWS as i64, 4))]);
        assert_eq!(check(&doc), Err(PrecheckError::TooManyRows));
    }

    #[test]
    fn an_actor_index_beyond_the_actors_is_refused() {
        // Automerge grows vectors to the largest actor index it meets (`resize(actor + 1)`).
        let doc = document(&one_actor(), &[], &[(ACTOR, run(1, u64::from(u32::MAX)))]);
        assert_eq!(
            check(&doc),
            Err(PrecheckError::ActorIndex {
                index: u64::from(u32::MAX),
                actors: 1
            })
        );
        let doc = document(&one_actor(), &[], &[(ACTOR, run(3, 0))]);
        assert_eq!(check(&doc), Ok(()));
        // In a change chunk the indexes count the change's actor and its other actors.
        let body = change_body(&[(ACTOR, run(1, 1))]);
        assert!(matches!(
            check(&chunk(1, &body)),
            Err(PrecheckError::ActorIndex {
                index: 1,
                actors: 1
            })
        ));
    }

    #[test]
    fn value_lengths_beyond_the_chunk_are_refused() {
        let doc = document(
            &one_actor(),
            &[],
            &[
                (VALUE_META, run(1, (1 << 50) << 4 | 6)),
                (VALUE, vec![0; 4]),
            ],
        );
        assert!(matches!(check(&doc), Err(PrecheckError::ValueBytes { .. })));
        let doc = document(
            &one_actor(),
            &[],
            &[(VALUE_META, run(1, 4 << 4 | 6)), (VALUE, vec![0; 4])],
        );
        assert_eq!(check(&doc), Ok(()));
    }

    #[test]
    fn declared_counts_beyond_the_bytes_are_refused() {
        for (what, body) in [
            ("actors", {
                let mut b = Vec::new();
                uleb(1 << 40, &mut b);
                b
            }),
            ("heads", {
                let mut b = vec![0]; // no actors
                uleb(1000, &mut b);
                b.extend([0; 64]);
                b
            }),
            ("columns", {
                let mut b = vec![0, 0]; // no actors, no heads
                uleb(1 << 33, &mut b);
                b
            }),
        ] {
            assert!(
                matches!(
                    timed(|| check(&chunk(0, &body))),
                    Err(PrecheckError::CountExceedsBytes { what: w, .. }) if w == what
                ),
                "{what}"
            );
        }
        let mut deps = Vec::new();
        uleb(1 << 50, &mut deps);
        assert!(matches!(
            check(&chunk(1, &deps)),
            Err(PrecheckError::CountExceedsBytes {
                what: "dependencies",
                ..
            })
        ));
        // A chunk longer than the input, and a column longer than its chunk.
        let mut short = chunk(1, &change_body(&[]));
        short.truncate(short.len() - 1);
        assert!(matches!(
            check(&short),
            Err(PrecheckError::Truncated { .. })
        ));
        let mut body = vec![0, 0, 1];
        uleb(u64::from(STRING), &mut body);
        uleb(1 << 40, &mut body);
        body.push(0);
        assert!(matches!(
            check(&chunk(0, &body)),
            Err(PrecheckError::Truncated { .. })
        ));
    }

    #[test]
    fn the_row_budget_is_for_the_whole_input() {
        let half = document(
            &one_actor(),
            &[(ACTOR, run(MAX_ROWS as i64 / 2 + 1, 0))],
            &[],
        );
        assert_eq!(check(&half), Ok(()));
        let twice = [half.clone(), half].concat();
        assert_eq!(check(&twice), Err(PrecheckError::TooManyRows));
        // Change chunks add up as well.
        let big = chunk(1, &change_body(&[(ACTOR, run(MAX_ROWS as i64 / 2, 0))]));
        assert_eq!(check(&big), Ok(()));
        assert_eq!(
            check(&[big.clone(), big.clone(), big].concat()),
            Err(PrecheckError::TooManyRows)
        );
    }

    #[test]
    fn many_changes_by_many_actors_are_refused() {
        // 2^16 two-byte actor ids and 2^13 changes: Automerge would cache 2^9 clocks of 2^16
        // actors (128 MiB), more with fragments; at 2^21 changes it would be 32 GiB.
        let actors: Vec<Vec<u8>> = (0..=u16::MAX).map(|a| a.to_be_bytes().to_vec()).collect();
        let doc = document(&actors, &[(ACTOR, run(1 << 13, 0))], &[]);
        assert_eq!(
            timed(|| check(&doc)),
            Err(PrecheckError::ClockTooLarge {
                changes: 1 << 13,
                actors: 1 << 16
            })
        );
        let doc = document(&actors, &[(ACTOR, run(1 << 8, 0))], &[]);
        assert_eq!(check(&doc), Ok(()));
        // Distinct actors of concatenated change chunks count once each.
        let one = chunk(1, &change_body(&[(ACTOR, run(1, 0))]));
        assert_eq!(check(&one.repeat(5000)), Ok(()));
    }

    #[test]
    fn too_many_actor_ids_are_refused() {
        let actors = vec![Vec::new(); MAX_ACTOR_ENTRIES as usize + 1];
        let doc = document(&actors, &[], &[]);
        assert_eq!(timed(|| check(&doc)), Err(PrecheckError::TooManyActors));
    }

    /// A raw deflate stream of `mib` MiB of zeros, made of one fully flushed block repeated (as an
    /// attacker would build it, without compressing gigabytes).
    fn deflate_bomb(mib: usize) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::best(), false);
        let mut block = Vec::with_capacity(64 << 10);
        c.compress_vec(&vec![0; 1 << 20], &mut block, flate2::FlushCompress::Full)
            .unwrap();
        let mut end = Vec::with_capacity(64);
        c.compress_vec(&[], &mut end, flate2::FlushCompress::Finish)
            .unwrap();
        let mut out = block.repeat(mib);
        out.extend(end);
        out
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, flate2::FlushCompress::Finish)
            .unwrap();
        out
    }

    #[test]
    fn the_deflate_bomb_helper_inflates_as_declared() {
        let bomb = deflate_bomb(3);
        let mut out = Vec::new();
        flate2::bufread::DeflateDecoder::new(&bomb[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 3 << 20);
    }

    #[test]
    fn a_deflate_bomb_in_a_compressed_change_is_refused() {
        let bomb = chunk(2, &deflate_bomb(80));
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        assert_eq!(timed(|| check(&bomb)), Err(PrecheckError::InflatedTooLarge));
        // A compressed change that inflates to a change passes, and so does its huge run inside.
        let body = change_body(&[(ACTOR, run(3, 0))]);
        assert_eq!(check(&chunk(2, &deflate(&body))), Ok(()));
        let body = change_body(&[(ACTOR, run(1 << 30, 0))]);
        assert_eq!(
            check(&chunk(2, &deflate(&body))),
            Err(PrecheckError::TooManyRows)
        );
        assert_eq!(
            check(&chunk(2, b"not deflate at all")),
            Err(PrecheckError::Inflate)
        );
    }

    #[test]
    fn a_deflate_bomb_in_a_document_column_is_refused() {
        let doc = document(
            &one_actor(),
            &[],
            &[(VALUE | DEFLATE_BIT, deflate_bomb(80))],
        );
        assert_eq!(timed(|| check(&doc)), Err(PrecheckError::InflatedTooLarge));
        let doc = document(
            &one_actor(),
            &[],
            &[(ACTOR | DEFLATE_BIT, deflate(&run(1 << 30, 0)))],
        );
        assert_eq!(check(&doc), Err(PrecheckError::TooManyRows));
        // Change chunks may not have deflated columns (Automerge refuses them).
        let body = change_body(&[(ACTOR | DEFLATE_BIT, deflate(&run(1, 0)))]);
        assert_eq!(
            check(&chunk(1, &body)),
            Err(PrecheckError::DeflatedChangeColumn)
        );
    }

    #[test]
    fn what_is_not_an_automerge_chunk_is_refused() {
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(b"hello"), Err(PrecheckError::NotAChunk { offset: 0 }));
        let good = chunk(1, &change_body(&[]));
        assert_eq!(check(&good), Ok(()));
        assert_eq!(
            check(&[&good[..], b"trailing"].concat()),
            Err(PrecheckError::NotAChunk { offset: good.len() })
        );
        assert_eq!(check(&chunk(3, &[])), Err(PrecheckError::Bundle));
        assert_eq!(
            check(&chunk(9, &[])),
            Err(PrecheckError::UnknownChunkType(9))
        );
        let mut doc = document(&one_actor(), &[], &[]);
        doc.extend([0, 0]); // head indices of no heads, then a stray byte
        assert!(check(&doc).is_err());
    }

    #[test]
    fn leb128_numbers_are_read_as_automerge_reads_them() {
        for n in [
            0,
            1,
            63,
            64,
            -1,
            -64,
            -65,
            1 << 40,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = Vec::new();
            sleb(n, &mut b);
            assert_eq!(Reader::new(&b).sleb(), Ok(n), "{n}");
        }
        for n in [0, 127, 128, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            uleb(n, &mut b);
            assert_eq!(Reader::new(&b).uleb(), Ok(n), "{n}");
        }
        assert!(Reader::new(&[0xff; 11]).uleb().is_err());
        assert!(Reader::new(&[0xff; 11]).sleb().is_err());
        assert!(Reader::new(&[0xff; 11]).skip_leb().is_err());
        assert!(Reader::new(&[0x80]).uleb().is_err());
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert!(Reader::new(&too_big).uleb().is_err());
    }

    // ---- what the core and Automerge make passes -----------------------------------------

    #[test]
    fn every_document_seed_passes() {
        let seeds = files("seeds");
        assert!(seeds.len() >= 10);
        for (name, bytes) in seeds {
            assert_eq!(check(&bytes), Ok(()), "{name}");
        }
    }

    #[test]
    fn every_regression_input_is_decided_quickly() {
        let inputs = files("regressions");
        assert!(inputs.iter().any(|(name, _)| name.starts_with("oom-")));
        for (_, bytes) in inputs {
            let _ = timed(|| check(&bytes));
        }
    }

    /// Real documents as the core makes them, made once for the tests that read them.
    struct RealRecords {
        /// Every outbox entry: (kind, record, change bytes).
        outbox: Vec<(RecordKind, streetsync_wire::RecordId, Vec<u8>)>,
        /// Every record's saved document.
        saved: Vec<(streetsync_wire::RecordId, Vec<u8>)>,
        /// The contact with the long, much edited note.
        contact: streetsync_wire::RecordId,
    }

    /// A store with a team, a partner with long notes, a client and a contact whose long note was
    /// edited many times, with comments.
    fn real_records() -> &'static RealRecords {
        static RECORDS: std::sync::OnceLock<RealRecords> = std::sync::OnceLock::new();
        RECORDS.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let ws = Workspace::open(
                dir.path().join("device.db"),
                KeySource::Key(StorageKey::from_bytes(&[5; 32]).unwrap()),
            )
            .unwrap();
            ws.create_team(TeamSetup {
                team_name: "Streetwork Mitte".into(),
                member_name: "Lea".into(),
                areas: vec!["Hauptbahnhof".into(), "Stadtpark".into()],
                topics: vec![],
                materials: vec![],
            })
            .unwrap();
            ws.add_partner(crate::model::team::PartnerDraft {
                name: "Suchtberatung Mitte".into(),
                offers: vec!["Beratung".into()],
                contact_person: "Frau Öztürk".into(),
                phone: "+49 30 1234567".into(),
                address: "Lindenallee 5".into(),
                notes: "Offene Sprechstunde dienstags. ".repeat(100),
            })
            .unwrap();
            let mut client = ClientDraft::new("MA-1990-K");
            client.notes = "Kennt das Café Auszeit. ".repeat(300);
            ws.create_client(client).unwrap();
            let mut d = ContactDraft::new(
                chrono::NaiveDate::from_ymd_opt(2026, 9, 3).unwrap(),
                chrono::NaiveTime::from_hms_opt(14, 30, 0).unwrap(),
                "hauptbahnhof",
            );
            d.note = "Schläft seit zwei Wochen draußen, möchte zur Suchtberatung. ".repeat(80);
            let contact = ws.create_contact(d.clone()).unwrap().id;
            for i in 0..40 {
                // Insertions in the middle, and now and then a part cut, as a person types.
                let at = d.note.char_indices().nth(100 + 37 * i).unwrap().0;
                d.note
                    .insert_str(at, &format!(" [Nachtrag {i}: Termin am Donnerstag] "));
                if i % 10 == 9 {
                    d.note = d.note.chars().skip(300).collect();
                }
                ws.update_contact(contact, d.clone()).unwrap();
            }
            ws.submit_contact(contact).unwrap();
            ws.request_changes(contact, "Welche Beratungsstelle genau?")
                .unwrap();
            ws.answer_contact(contact, &"Die Suchtberatung Mitte. ".repeat(100))
                .unwrap();
            let outbox: Vec<_> = ws
                .pending_outbox(10_000)
                .unwrap()
                .into_iter()
                .map(|e| (e.kind, e.doc_id, e.changes.to_vec()))
                .collect();
            let mut ids: Vec<_> = outbox.iter().map(|(_, id, _)| *id).collect();
            ids.sort();
            ids.dedup();
            let saved = ids
                .into_iter()
                .map(|id| (id, ws.export_document(id).unwrap()))
                .collect();
            RealRecords {
                outbox,
                saved,
                contact,
            }
        })
    }

    #[test]
    fn every_document_and_change_the_core_makes_passes() {
        let real = real_records();
        assert!(real.outbox.len() > 40);
        let kinds: std::collections::HashSet<_> = real.outbox.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(kinds.len(), 3, "contacts, clients and the team document");
        for (kind, id, changes) in &real.outbox {
            assert_eq!(check(changes), Ok(()), "{kind:?} {id}");
        }
        let mut deflated = 0;
        for (id, saved) in &real.saved {
            // All the changes of a record, concatenated.
            let changes: Vec<u8> = real
                .outbox
                .iter()
                .filter(|(_, r, _)| r == id)
                .flat_map(|(_, _, c)| c.iter().copied())
                .collect();
            let walked = walk(&changes).unwrap();
            let chunks = walked.change_chunks + walked.documents;
            assert!(chunks > if *id == real.contact { 40 } else { 0 });
            // Its saved document, alone and followed by its changes.
            let walked = walk(saved).unwrap();
            assert_eq!(walked.documents, 1);
            deflated += walked.deflated_columns;
            assert_eq!(check(&[&saved[..], &changes].concat()), Ok(()));
        }
        assert!(deflated > 0, "save() deflates the long notes' columns");

        // Compressed change chunks, as Automerge's `Change::bytes` makes them for other peers.
        let (_, saved) = real
            .saved
            .iter()
            .find(|(id, _)| *id == real.contact)
            .unwrap();
        let mut doc = crate::doc::load(saved).unwrap();
        let mut compressed = Vec::new();
        for mut c in doc.get_changes(&[]) {
            compressed.extend_from_slice(&c.bytes());
        }
        let walked = walk(&compressed).unwrap();
        assert!(walked.compressed_chunks > 0);
        assert!(walked.inflated > 0);
        // Automerge reads them back as the same contact.
        let mut again = crate::doc::foreign::open_for_merge(
            real.contact,
            Some(crate::doc::new()),
            &compressed,
            None,
        )
        .unwrap()
        .doc;
        assert_eq!(again.get_heads(), doc.get_heads());
        let contact: crate::doc::contact::ContactDoc = autosurgeon::hydrate(&again).unwrap();
        assert!(
            contact
                .to_contact()
                .unwrap()
                .fields
                .note
                .contains("Nachtrag 39")
        );
    }

    #[test]
    fn mutated_real_documents_never_make_the_check_panic() {
        let real = real_records();
        let (_, saved) = real
            .saved
            .iter()
            .find(|(id, _)| *id == real.contact)
            .unwrap();
        let changes: Vec<u8> = real.outbox[..10]
            .iter()
            .flat_map(|(_, _, c)| c.iter().copied())
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for base in [saved, &changes] {
            for _ in 0..1500 {
                let mut m = base.clone();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() % m.len() as u64) as usize;
                    m[i] = next() as u8;
                }
                let _ = timed(|| check(&m));
            }
        }
    }
}
