//! How dates and times cross the FFI: as text (`"2026-11-23"`, `"14:30"`), parsed back here.
//!
//! uniffi has no calendar-date or time-of-day type, so records carry ISO strings. Every domain
//! module parses and formats them through these four functions, so a date looks the same in every
//! record and a bad one fails the same way everywhere: with
//! [`StreetsyncError::InvalidInput`](crate::StreetsyncError::InvalidInput) naming the field, so a
//! form can point at it.

use chrono::{NaiveDate, NaiveTime, Timelike};

use crate::Result;
use crate::error::invalid;

/// Parses an ISO date (`2026-11-23`) for `field`.
pub(crate) fn parse_date(field: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(field, format!("expected a date like 2026-11-23, got '{s}'")))
}

/// Parses a time of day (`14:30` or `14:30:15`) for `field`.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<NaiveTime> {
    let t = s.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| invalid(field, format!("expected a time like 14:30, got '{s}'")))
}

/// Formats a date as `2026-11-23`.
pub(crate) fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Formats a time as `14:30` (or `14:30:15` when it has seconds).
pub(crate) fn fmt_time(t: NaiveTime) -> String {
    if t.second() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreetsyncError;

    #[test]
    fn dates_and_times_round_trip_and_bad_ones_name_the_field() {
        let d = parse_date("date", "2026-11-23").expect("date");
        assert_eq!(fmt_date(d), "2026-11-23");
        let t = parse_time("start_time", "14:30").expect("time");
        assert_eq!(fmt_time(t), "14:30");
        assert_eq!(
            fmt_time(parse_time("t", "09:05:07").expect("time")),
            "09:05:07"
        );
        match parse_date("referrals[0].consent.given_on", "23.11.2026") {
            Err(StreetsyncError::InvalidInput { field, .. }) => {
                assert_eq!(field, "referrals[0].consent.given_on")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_time("end_time", "25:00"),
            Err(StreetsyncError::InvalidInput { .. })
        ));
    }
}
