//! Calendar periods (day, week from Monday, month) in an IANA time zone.
//!
//! Why calendar periods and not sliding ones: budgets are read by people as
//! "this month's spend", and they reset when the month turns where the
//! team lives, not 30 days after the first request.

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// The zone `name` names; empty is UTC.
pub fn zone(name: &str) -> Option<Tz> {
    if name.is_empty() {
        return Some(Tz::UTC);
    }
    name.parse().ok()
}

/// The period containing `now_ms`: its first local day (the storage key's
/// suffix) and the instant it ends (ms since the epoch).
pub fn current(period: Period, tz: Tz, now_ms: u64) -> (NaiveDate, u64) {
    let now = DateTime::<Utc>::from_timestamp_millis(now_ms as i64)
        .unwrap_or_default()
        .with_timezone(&tz);
    let today = now.date_naive();
    let start = match period {
        Period::Day => today,
        Period::Week => today - Days::new(u64::from(today.weekday().num_days_from_monday())),
        Period::Month => today.with_day(1).unwrap_or(today),
    };
    let next = match period {
        Period::Day => start + Days::new(1),
        Period::Week => start + Days::new(7),
        Period::Month => start + Months::new(1),
    };
    (start, midnight_ms(tz, next))
}

/// The first instant of local day `day` in `tz` (a day whose midnight is
/// skipped by a DST change starts at the first hour that exists).
fn midnight_ms(tz: Tz, day: NaiveDate) -> u64 {
    for hour in 0..24 {
        let t = day.and_hms_opt(hour, 0, 0).expect("valid hour");
        match tz.from_local_datetime(&t) {
            LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => {
                return d.timestamp_millis().max(0) as u64
            }
            LocalResult::None => continue,
        }
    }
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        .timestamp_millis()
        .max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis() as u64
    }

    #[test]
    fn months_turn_at_local_midnight() {
        let paris = zone("Europe/Paris").unwrap();
        // 23:30 UTC on Nov 30 is already Dec 1 in Paris.
        let (start, end) = current(Period::Month, paris, ms("2026-11-30T23:30:00Z"));
        assert_eq!(start, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!(end, ms("2026-12-31T23:00:00Z"));
        let (start, _) = current(Period::Month, Tz::UTC, ms("2026-11-30T23:30:00Z"));
        assert_eq!(start, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
    }

    #[test]
    fn weeks_start_on_monday_and_days_follow_dst() {
        // Monday 2026-12-07.
        let (start, end) = current(Period::Week, Tz::UTC, ms("2026-12-13T23:59:59Z"));
        assert_eq!(start, NaiveDate::from_ymd_opt(2026, 12, 7).unwrap());
        assert_eq!(end, ms("2026-12-14T00:00:00Z"));
        let paris = zone("Europe/Paris").unwrap();
        // The day DST starts is 23 hours long.
        let (_, end) = current(Period::Day, paris, ms("2026-03-29T12:00:00Z"));
        assert_eq!(end, ms("2026-03-29T22:00:00Z"));
        assert!(zone("Mars/Olympus").is_none());
        assert_eq!(zone(""), Some(Tz::UTC));
    }
}
