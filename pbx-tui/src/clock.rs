//! Time as the console shows it. The model carries the time (`now_ms`) and the local
//! offset from UTC; nothing here reads a clock, so views are deterministic in tests.

/// The wall clock now, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    coventry_shared::now_ms()
}

/// The local time zone's offset from UTC at `now_ms`, in seconds.
pub fn local_offset_s(now_ms: u64) -> i32 {
    use chrono::{Local, Offset, TimeZone};
    let secs = i64::try_from(now_ms / 1000).unwrap_or(0);
    Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.offset().fix().local_minus_utc())
        .unwrap_or(0)
}

/// `HH:MM:SS` of `ms` (since the epoch) in local time.
pub fn time_of_day(ms: u64, offset_s: i32) -> String {
    let secs = (ms / 1000) as i64 + i64::from(offset_s);
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// `HH:MM` of `ms` in local time.
pub fn hour_minute(ms: u64, offset_s: i32) -> String {
    let mut t = time_of_day(ms, offset_s);
    t.truncate(5);
    t
}

pub use coventry_shared::client::text::{call_clock as duration, span};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time_of_day(0, 0), "00:00:00");
        assert_eq!(time_of_day(3_723_000, 0), "01:02:03");
        assert_eq!(time_of_day(3_723_000, 3600), "02:02:03");
        assert_eq!(time_of_day(0, -3600), "23:00:00");
        assert_eq!(hour_minute(3_723_000, 0), "01:02");
    }
}
