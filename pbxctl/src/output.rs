//! Output helpers: a stdout writer that flushes every line and turns a closed pipe
//! into a clean exit, colour only on terminals, tables, text sanitising.

use crate::error::Error;
use comfy_table::{presets, Table};
use std::io::{IsTerminal, Write};

/// Where pbxctl's results go, with the presentation settings for it.
pub struct Out {
    stdout: std::io::Stdout,
    /// Whether stdout is a terminal (decides the table preset).
    pub tty: bool,
    /// Whether ANSI colour may be used (a terminal and `NO_COLOR` not set).
    pub colour: bool,
    /// `--json`: machine output.
    pub json: bool,
    /// `--quiet`: nothing on stdout (errors still go to stderr).
    pub quiet: bool,
}

/// ANSI styles pbxctl uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// Good news.
    Green,
    /// Worth a look.
    Yellow,
    /// Bad news.
    Red,
    /// Less important (times, separators).
    Dim,
    /// Emphasis.
    Bold,
    /// Set aside (do not disturb).
    Magenta,
    /// Redirected (forwarded).
    Cyan,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "31",
            Paint::Dim => "2",
            Paint::Bold => "1",
            Paint::Magenta => "35",
            Paint::Cyan => "36",
        }
    }
}

/// Whether colour is allowed for a stream that is (`tty`) or is not a terminal,
/// given the value of `NO_COLOR` (<https://no-color.org>: set and not empty = none).
pub fn colour_allowed(tty: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    tty && !matches!(no_color, Some(v) if !v.is_empty())
}

impl Out {
    /// Standard output, with presentation decided from the environment.
    pub fn stdout(json: bool, quiet: bool) -> Out {
        let stdout = std::io::stdout();
        let tty = stdout.is_terminal();
        let colour = colour_allowed(tty, std::env::var_os("NO_COLOR").as_deref());
        Out {
            stdout,
            tty,
            colour,
            json,
            quiet,
        }
    }

    /// Write `text` and a newline, then flush (pbxctl is used in pipes).
    pub fn line(&mut self, text: &str) -> Result<(), Error> {
        if self.quiet {
            return Ok(());
        }
        let mut lock = self.stdout.lock();
        lock.write_all(text.as_bytes())
            .and_then(|()| lock.write_all(b"\n"))
            .and_then(|()| lock.flush())
            .map_err(Error::output)
    }

    /// Print a JSON value on one line.
    pub fn json_line(&mut self, value: &serde_json::Value) -> Result<(), Error> {
        self.line(&value.to_string())
    }

    /// Print a JSON value pretty-printed when on a terminal, compact otherwise.
    pub fn json_doc(&mut self, value: &serde_json::Value) -> Result<(), Error> {
        let text = if self.tty {
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        } else {
            value.to_string()
        };
        self.line(&text)
    }

    /// `text` in the given style when colour is allowed, else unchanged.
    pub fn paint(&self, paint: Paint, text: &str) -> String {
        if self.colour {
            format!("\x1b[{}m{text}\x1b[0m", paint.code())
        } else {
            text.to_string()
        }
    }

    /// A table with `header`, boxed on a terminal and plain (space-separated
    /// columns, no borders) otherwise.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_preset(if self.tty {
            presets::UTF8_FULL_CONDENSED
        } else {
            presets::NOTHING
        });
        t.set_header(header.to_vec());
        t
    }

    /// Print a table.
    pub fn print_table(&mut self, table: &Table) -> Result<(), Error> {
        self.print_table_painted(table, &[])
    }

    /// Print a table whose data rows are painted as `rows` says (one entry per row,
    /// in order; missing entries are unpainted). Whole lines are painted after the
    /// table is laid out, so escape codes never upset the column widths.
    pub fn print_table_painted(
        &mut self,
        table: &Table,
        rows: &[Option<Paint>],
    ) -> Result<(), Error> {
        let text = table.to_string();
        // Plain tables pad every cell; the blanks at either end only get in the way
        // of scripts.
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                if self.tty {
                    l
                } else {
                    l.strip_prefix(' ').unwrap_or(l)
                }
            })
            .map(|l| l.trim_end().to_string())
            .collect();
        if self.colour && rows.iter().any(Option::is_some) {
            // Boxed (terminal) tables: top border, header, rule, the rows, bottom
            // border; every row is one line (cells never hold line breaks).
            let n = table.row_count();
            if lines.len() == n + 4 {
                for (line, paint) in lines[3..3 + n].iter_mut().zip(rows) {
                    if let Some(p) = paint {
                        *line = self.paint(*p, line);
                    }
                }
            }
        }
        self.line(&lines.join("\n"))
    }
}

/// Print `pbxctl: MESSAGE` on stderr (ignoring a closed stderr).
pub fn warn(message: &str) {
    let mut err = std::io::stderr().lock();
    for line in message.lines() {
        let _ = writeln!(err, "pbxctl: {line}");
    }
}

/// Local wall-clock time of `ms` (since the epoch) as `HH:MM:SS.mmm`.
pub fn clock(ms: u64) -> String {
    use chrono::TimeZone;
    match i64::try_from(ms)
        .ok()
        .and_then(|ms| chrono::Local.timestamp_millis_opt(ms).single())
    {
        Some(t) => t.format("%H:%M:%S%.3f").to_string(),
        None => "??:??:??.???".to_string(),
    }
}

/// Local time of `ms` as `HH:MM:SS`, with the date in front when it is not the same
/// local day as `now_ms`.
pub fn start_time(ms: u64, now_ms: u64) -> String {
    use chrono::TimeZone;
    let local = |ms: u64| {
        i64::try_from(ms)
            .ok()
            .and_then(|ms| chrono::Local.timestamp_millis_opt(ms).single())
    };
    match (local(ms), local(now_ms)) {
        (Some(t), Some(now)) if t.date_naive() == now.date_naive() => {
            t.format("%H:%M:%S").to_string()
        }
        (Some(t), _) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        (None, _) => "?".to_string(),
    }
}

/// Local date and time of `ms` as `YYYY-MM-DD HH:MM:SS`.
pub fn date_time(ms: u64) -> String {
    use chrono::TimeZone;
    match i64::try_from(ms)
        .ok()
        .and_then(|ms| chrono::Local.timestamp_millis_opt(ms).single())
    {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_rules() {
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some(OsStr::new(""))));
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        assert!(!colour_allowed(false, None));
    }

    #[test]
    fn clock_format() {
        let c = clock(1_700_000_000_123);
        assert_eq!(c.len(), 12, "{c}");
        assert!(c.ends_with(".123"), "{c}");
        assert_eq!(&c[2..3], ":");
    }
}
