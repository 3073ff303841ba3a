//! The wall clock, in one place. A leaf: change timestamps, invite expiry, quarantine times and
//! the relay client's skew correction all read it, so none of them imports it from a layer above.

/// Unix milliseconds now (0 if the system clock is before 1970, which only a broken device has).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Today's date in UTC: the day retention periods are counted against (every device of a team
/// agrees on it, whatever its time zone).
pub(crate) fn today() -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(now_ms())
        .map(|t| t.date_naive())
        .unwrap_or_default()
}
