//! `pbxctl records`: the call records the daemon keeps in its state directory,
//! filtered by extension, time and outcome: "who called reception last night" is
//! one command.

use crate::error::Error;
use crate::output::Out;
use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
use coventry_shared::event::CallOutcome;
use coventry_shared::record::{parse_lines, Book, CallRecord};
use coventry_shared::runtime::{Kind, SafeDir, TrustError};
use std::io::Read;
use std::path::Path;

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Calls this extension (or number) made, was called on, answered or
    /// forwarded.
    pub ext: Option<String>,
    /// Calls that started at or after this (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Calls with this outcome.
    pub outcome: Option<CallOutcome>,
    /// The last N of what matches.
    pub last: Option<usize>,
}

impl Filter {
    fn keeps(&self, r: &CallRecord) -> bool {
        let ext_ok = self.ext.as_deref().is_none_or(|e| {
            r.caller == e
                || r.dialled == e
                || r.answered_by.as_deref() == Some(e)
                || r.forwards
                    .iter()
                    .any(|h| h.from.to_string() == e || h.to == e)
        });
        ext_ok
            && self.since_ms.is_none_or(|s| r.start_ms >= s)
            && self.outcome.is_none_or(|o| r.outcome == o)
    }
}

/// `--since`: `today`, `yesterday`, a duration back from now (`90m`, `12h`, `2d`),
/// a date (`2026-12-02`) or a local date and time (`2026-12-02 18:00`,
/// `2026-12-02T18:00`); ms since the epoch.
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    let midnight = |d: NaiveDate| -> Result<u64, String> {
        let t = d.and_hms_opt(0, 0, 0).ok_or("bad date")?;
        local_ms(t)
    };
    let today = Local::now().date_naive();
    match s {
        "today" => return midnight(today),
        "yesterday" => return midnight(today.pred_opt().ok_or("bad date")?),
        _ => {}
    }
    let unit = |c: char| match c {
        'm' => Some(60_000u64),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    if let Some(last) = s.chars().last() {
        if let (Some(ms), Ok(n)) = (unit(last), s[..s.len() - 1].parse::<u64>()) {
            return Ok(now_ms.saturating_sub(n.saturating_mul(ms)));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return midnight(d);
    }
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return local_ms(t);
        }
    }
    Err(format!(
        "`{s}` is not a time: use today, yesterday, 12h, 2d, 2026-12-02 or 2026-12-02 18:00"
    ))
}

fn local_ms(t: NaiveDateTime) -> Result<u64, String> {
    Local
        .from_local_datetime(&t)
        .earliest()
        .map(|t| t.timestamp_millis().max(0) as u64)
        .ok_or_else(|| format!("{t} does not exist in the local time zone"))
}

/// Every record of `book` in the state directory `dir`, oldest first, and how
/// many lines could not be read.
pub fn read_all(dir: &Path, book: Book) -> Result<(Vec<CallRecord>, usize), Error> {
    let safe = SafeDir::trusted(dir).map_err(|e| match e {
        TrustError::Missing(_) => Error::failed(format!(
            "no state directory {} (see --state-dir)",
            dir.display()
        )),
        e => Error::failed(e.to_string()),
    })?;
    let mut all = Vec::new();
    let mut bad = 0;
    for name in book.files_oldest_first() {
        let mut file = match safe.open_checked(&name, Kind::Regular, false) {
            Ok(f) => f,
            Err(TrustError::Missing(_)) => continue,
            Err(e) => return Err(Error::failed(e.to_string())),
        };
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| Error::failed(format!("{}: {e}", dir.join(&name).display())))?;
        let (records, b) = parse_lines(&text);
        all.extend(records);
        bad += b;
    }
    Ok((all, bad))
}

fn when(ms: u64) -> String {
    Local
        .timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn secs(ms: u64) -> String {
    format!("{}s", ms.div_ceil(1000))
}

/// Print the records of `book` in state directory `dir` that `filter` keeps (a
/// JSON array with `json`).
pub fn run(
    out: &mut Out,
    json: bool,
    (dir, book): (&Path, Book),
    filter: &Filter,
) -> Result<(), Error> {
    let (all, bad) = read_all(dir, book)?;
    let mut kept: Vec<&CallRecord> = all.iter().filter(|r| filter.keeps(r)).collect();
    if let Some(n) = filter.last {
        kept = kept.split_off(kept.len().saturating_sub(n));
    }
    if bad > 0 {
        eprintln!("pbxctl: {bad} unreadable line(s) in the records skipped");
    }
    if json {
        let v = serde_json::to_value(&kept).map_err(|e| Error::failed(e.to_string()))?;
        return out.json_doc(&v);
    }
    if kept.is_empty() {
        return out.line("no call records match");
    }
    let mut t = out.table(&[
        "CALL",
        "START",
        "FROM",
        "DIALLED",
        "ANSWERED BY",
        "OUTCOME",
        "SIP",
        "RING",
        "TALK",
        "ROUTE",
        "FORWARDS",
    ]);
    for r in &kept {
        let forwards: Vec<String> = r
            .forwards
            .iter()
            .map(|h| format!("{}>{}", h.from, h.to))
            .collect();
        let route = serde_json::to_value(r.route)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        t.add_row([
            r.call.to_string(),
            when(r.start_ms),
            r.caller.clone(),
            r.dialled.clone(),
            r.answered_by.clone().unwrap_or_else(|| "-".into()),
            r.outcome.name().to_string(),
            r.status.to_string(),
            secs(r.ring_ms),
            secs(r.talk_ms),
            route,
            forwards.join(" "),
        ]);
    }
    out.print_table(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_what_people_type() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("12h", now), Ok(now - 12 * 3_600_000));
        assert_eq!(parse_since("90m", now), Ok(now - 90 * 60_000));
        assert_eq!(parse_since("2d", now), Ok(now - 2 * 86_400_000));
        let y = parse_since("yesterday", now).expect("yesterday");
        let t = parse_since("today", now).expect("today");
        assert!(t > y && t - y >= 23 * 3_600_000, "{y} {t}");
        let d = parse_since("2026-12-02", now).expect("date");
        assert_eq!(parse_since("2026-12-02 00:00", now), Ok(d));
        assert_eq!(parse_since("2026-12-02T06:00", now), Ok(d + 6 * 3_600_000));
        assert!(parse_since("last tuesday", now).is_err());
    }
}
