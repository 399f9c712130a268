//! The message and event log: time, kind, text; newest at the bottom.

use super::theme::Theme;
use crate::clock;
use crate::model::{Mode, Model, TracePane};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Borders, Paragraph};
use ratatui::Frame;

/// Draw the log into `area` (title row, then lines).
pub fn draw(model: &Model, theme: Theme, frame: &mut Frame, area: Rect) {
    let log = &model.log;
    let mut title = " Log ".to_string();
    let filtering = matches!(model.mode, Mode::Filter { .. });
    if !log.filter().is_empty() || filtering {
        title.push_str(&format!(
            "\u{b7} filter \u{201c}{}\u{201d}: {} lines ",
            log.filter(),
            log.matching()
        ));
    }
    if log.scroll() > 0 {
        title.push_str(&format!("\u{b7} {} newer below (End) ", log.scroll()));
    }
    let block = theme.panel(title, Borders::TOP);
    let height = usize::from(area.height.saturating_sub(1));
    let width = usize::from(area.width);
    // Each entry wraps at the width, its continuation rows under its text; the
    // newest rows are kept when the entries need more rows than there are.
    let mut lines: Vec<Line> = log
        .window(height)
        .into_iter()
        .flat_map(|l| {
            let prefix = vec![
                Span::styled(
                    format!(" {} ", clock::time_of_day(l.time_ms, model.utc_offset_s)),
                    theme.label(),
                ),
                Span::styled(l.kind.label(), theme.log_kind(l.kind)),
                Span::raw(" "),
            ];
            wrapped(prefix, &l.text, width)
        })
        .collect();
    if lines.len() > height {
        lines.drain(..lines.len() - height);
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Draw the live SIP trace of one extension into `area`, where the log goes:
/// newest at the bottom, long lines wrapped under their text.
pub fn draw_trace(t: &TracePane, theme: Theme, frame: &mut Frame, area: Rect) {
    let mut title = format!(" SIP trace of {} (T closes) ", t.ext);
    if t.lost > 0 {
        title.push_str(&format!("\u{b7} {} missed ", t.lost));
    }
    if let Some(why) = &t.ended {
        title.push_str(&format!("\u{b7} ended: {why} "));
    }
    let block = theme.panel(title, Borders::TOP);
    let height = usize::from(area.height.saturating_sub(1));
    let width = usize::from(area.width);
    let mut lines: Vec<Line> = t
        .lines
        .iter()
        .rev()
        .take(height)
        .rev()
        .flat_map(|l| wrapped(vec![Span::raw(" ")], l, width))
        .collect();
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            " waiting for its SIP messages...",
            theme.label(),
        )));
    }
    if lines.len() > height {
        lines.drain(..lines.len() - height);
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The rows of one log entry: `prefix` then `text`, cut into rows of `width`
/// display columns, each continuation indented to where the text starts.
fn wrapped<'a>(prefix: Vec<Span<'a>>, text: &'a str, width: usize) -> Vec<Line<'a>> {
    let indent: usize = prefix.iter().map(|s| s.width()).sum();
    let room = width.saturating_sub(indent);
    let mut rows: Vec<Line> = Vec::new();
    let mut chunks: Vec<&str> = Vec::new();
    let mut rest = text;
    // Rows break after the last space that fits (a word longer than a row is
    // cut); too narrow a window is left to cut the line.
    while room >= 8 && unicode_width::UnicodeWidthStr::width(rest) > room {
        let (mut used, mut cut, mut space) = (0, rest.len(), None);
        for (i, c) in rest.char_indices() {
            let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if used + w > room {
                cut = i;
                break;
            }
            if c == ' ' {
                space = Some(i + 1);
            }
            used += w;
        }
        let at = space
            .filter(|&s| s < cut || cut == rest.len())
            .unwrap_or(cut);
        if at == 0 {
            break;
        }
        chunks.push(&rest[..at]);
        rest = &rest[at..];
    }
    chunks.push(rest);
    let mut prefix = Some(prefix);
    for chunk in chunks {
        let mut spans = prefix
            .take()
            .unwrap_or_else(|| vec![Span::raw(" ".repeat(indent))]);
        spans.push(Span::raw(chunk));
        rows.push(Line::from(spans));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn a_long_entry_wraps_under_its_text_and_a_short_one_stays_one_row() {
        let prefix = || vec![Span::raw(" 12:00:00 "), Span::raw("warn"), Span::raw(" ")];
        let rows = wrapped(prefix(), "short", 40);
        assert_eq!(rows.len(), 1);
        let long = "upstream 10.0.0.1:5060 (building) reconnecting: Connection refused";
        let rows = wrapped(prefix(), long, 40);
        assert_eq!(rows.len(), 3);
        let texts: Vec<String> = rows.iter().map(text_of).collect();
        assert!(texts
            .iter()
            .all(|t| unicode_width::UnicodeWidthStr::width(t.as_str()) <= 40));
        assert!(texts[1].starts_with(&" ".repeat(15)));
        let joined: String = texts
            .iter()
            .map(|t| t.trim_start())
            .collect::<Vec<_>>()
            .join("");
        assert!(joined.contains("Connection refused"), "{texts:?}");
        // Wide characters count double.
        let wide = "\u{4e2d}".repeat(20);
        let rows = wrapped(prefix(), &wide, 35);
        assert!(rows.iter().all(|r| r.width() <= 35), "{rows:?}");
    }
}
