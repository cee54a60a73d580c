//! The one place rundbrev reads the clock.
//!
//! Everything else takes the time as a value, so tests can pin it: set `RUNDBREV_NOW` to an
//! RFC 3339 time (e.g. `2020-06-29T10:00:00+02:00`) and every timestamp, Date header and default
//! letter date follows it. Nothing here sleeps or formats for people.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Copenhagen;

/// The environment variable that pins the clock.
pub(crate) const PIN_VAR: &str = "RUNDBREV_NOW";

/// Now, or the pinned time.
pub(crate) fn now() -> DateTime<Utc> {
    if let Ok(pinned) = std::env::var(PIN_VAR) {
        if let Ok(t) = DateTime::parse_from_rfc3339(pinned.trim()) {
            return t.with_timezone(&Utc);
        }
    }
    #[allow(clippy::disallowed_methods)]
    Utc::now()
}

/// The calendar date in Denmark at `t`.
pub(crate) fn danish_date_at(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&Copenhagen).date_naive()
}

/// A timestamp for the ledger and reports: local Danish time with its offset, to the second.
pub(crate) fn stamp_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Copenhagen)
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_danish_date_follows_copenhagen_not_utc() {
        let t = DateTime::parse_from_rfc3339("2020-06-28T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            danish_date_at(t),
            NaiveDate::from_ymd_opt(2020, 6, 29).unwrap()
        );
        assert_eq!(stamp_time(t), "2020-06-29 01:30:00+02:00");
    }
}
