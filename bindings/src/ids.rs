//! How ids cross the FFI: as 32 hexadecimal characters, parsed back here into the core's typed ids.
//!
//! Record, team and device ids are 16 bytes in the core; hosts see them as text. Parsing is shared
//! by the contact, client, record and sync modules, so a mistyped id always fails the same way:
//! with [`StreetsyncError::InvalidInput`](crate::StreetsyncError::InvalidInput) naming the field.

use streetsync_core::RecordId;

use crate::Result;
use crate::error::invalid;

/// Parses a 32-hex-character id (record, team or device) for `field`.
pub(crate) fn parse_id<T: std::str::FromStr>(field: &str, s: &str) -> Result<T> {
    s.trim().parse().map_err(|_| {
        invalid(
            field,
            format!("expected an id of 32 hexadecimal characters, got '{s}'"),
        )
    })
}

/// Parses the `id` argument of a record method (contact or client).
pub(crate) fn record_id(s: &str) -> Result<RecordId> {
    parse_id("id", s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreetsyncError;

    #[test]
    fn ids_parse_or_fail_typed() {
        let id = RecordId::random();
        let back: RecordId = parse_id("id", &id.to_string()).expect("id");
        assert_eq!(back, id);
        assert!(matches!(
            parse_id::<RecordId>("id", "xyz"),
            Err(StreetsyncError::InvalidInput { field, .. }) if field == "id"
        ));
    }
}
