//! Raw deflate with a preset dictionary, for the store's own copies of notes and documents.
//!
//! Records are small: a note of a few hundred bytes, a contact document under a kilobyte. Deflate
//! alone saves little on inputs that short, because every string is new to it; a dictionary of
//! what such inputs are made of (German field-note words, a document's map keys) lets the first
//! occurrence refer back to it. The dictionaries are part of the stored formats: each caller keeps
//! its own, fixed for that format.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::{Error, Result};

thread_local! {
    /// One compressor and one decompressor per thread, reset for each input: a fresh pair
    /// allocates and clears a few hundred KiB of tables, which costs more than deflating a note
    /// (about 0.17 ms a save, measured, against 9 µs with reuse).
    static CODEC: RefCell<(Compress, Decompress)> = RefCell::new((
        Compress::new(Compression::default(), false),
        Decompress::new(false),
    ));
}

fn failed<E>(_: E) -> Error {
    Error::Internal("compression")
}

/// `input` as raw deflate against `dictionary`.
pub(super) fn deflate(input: &[u8], dictionary: &[u8]) -> Result<Vec<u8>> {
    CODEC.with_borrow_mut(|(c, _)| {
        c.reset();
        c.set_dictionary(dictionary).map_err(failed)?;
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            let fed = usize::try_from(c.total_in()).map_err(failed)?;
            if out.len() == out.capacity() {
                out.reserve(input.len() + 64);
            }
            let rest = input.get(fed..).ok_or(Error::Internal("compression"))?;
            if c.compress_vec(rest, &mut out, FlushCompress::Finish)
                .map_err(failed)?
                == Status::StreamEnd
            {
                return Ok(out);
            }
        }
    })
}

/// What [`deflate`] made of an input with the same `dictionary`, or `None` if `deflated` is not a
/// whole stream or inflates to more than `cap` bytes (so a hostile input cannot inflate without
/// bound).
pub(super) fn inflate(deflated: &[u8], dictionary: &[u8], cap: usize) -> Option<Vec<u8>> {
    CODEC.with_borrow_mut(|(_, d)| {
        d.reset(false);
        d.set_dictionary(dictionary).ok()?;
        let mut out = Vec::with_capacity(deflated.len().saturating_mul(4).min(cap));
        loop {
            if out.len() == out.capacity() {
                if out.len() >= cap {
                    return None;
                }
                // At least 64 bytes more, at most up to `cap` (which is past `out.len()` here).
                let grown = out.len().saturating_mul(2).max(64).min(cap);
                out.reserve(grown - out.len());
            }
            let fed = usize::try_from(d.total_in()).ok()?;
            let before = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(deflated.get(fed..)?, &mut out, FlushDecompress::Finish)
                .ok()?;
            if status == Status::StreamEnd {
                break;
            }
            // No progress with room to spare: the stream is cut short.
            if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() {
                return None;
            }
        }
        (out.len() <= cap).then_some(out)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DICT: &[u8] = b"Notunterkunft Jobcenter Termin Gespraech";

    #[test]
    fn what_goes_in_comes_out() {
        for input in [
            &b""[..],
            b"Termin beim Jobcenter",
            &[0u8; 100_000],
            &(0..=255u8).cycle().take(70_000).collect::<Vec<_>>(),
        ] {
            let d = deflate(input, DICT).unwrap();
            assert_eq!(inflate(&d, DICT, 1 << 20).unwrap(), input);
        }
    }

    #[test]
    fn the_dictionary_pays_on_short_inputs_and_must_match() {
        let input = b"Termin beim Jobcenter, danach Notunterkunft";
        let with = deflate(input, DICT).unwrap();
        let without = deflate(input, b"").unwrap();
        assert!(
            with.len() + 10 < without.len(),
            "{} vs {}",
            with.len(),
            without.len()
        );
        assert_ne!(
            inflate(&with, b"another dictionary", 1 << 20).as_deref(),
            Some(&input[..])
        );
    }

    #[test]
    fn cut_garbage_and_oversized_streams_are_refused() {
        let d = deflate(&[7u8; 10_000], DICT).unwrap();
        assert!(inflate(&d, DICT, 9_999).is_none());
        assert_eq!(inflate(&d, DICT, 10_000).unwrap().len(), 10_000);
        for cut in 0..d.len() {
            assert!(inflate(&d[..cut], DICT, 1 << 20).is_none(), "cut at {cut}");
        }
        assert!(inflate(&[0xff; 64], DICT, 1 << 20).is_none());
    }
}
