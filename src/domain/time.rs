//! Timestamps as the database keeps them: UTC RFC 3339 with milliseconds and a `Z`.
//!
//! One fixed width means text order is time order, so SQL can compare and sort the columns
//! as plain text and an admin can read them in the `sqlite3` shell.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn to_db(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Truncates to the stored precision, so a value read back compares equal to the one written.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_timestamps_sort_as_text_in_time_order() {
        let a = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.9Z")
            .unwrap()
            .to_utc();
        let b = DateTime::parse_from_rfc3339("2026-01-02T03:04:06Z")
            .unwrap()
            .to_utc();
        assert_eq!(to_db(a), "2026-01-02T03:04:05.900Z");
        assert_eq!(to_db(b), "2026-01-02T03:04:06.000Z");
        assert!(to_db(a) < to_db(b));
    }
}
