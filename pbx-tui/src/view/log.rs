//! The message and event log: time, kind, text; newest at the bottom.

use super::theme::Theme;
use crate::clock;
use crate::model::{Mode, Model};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
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
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(theme.border())
        .title(Span::styled(title, theme.title()));
    let height = usize::from(area.height.saturating_sub(1));
    let lines: Vec<Line> = log
        .window(height)
        .into_iter()
        .map(|l| {
            Line::from(vec![
                Span::styled(
                    format!(" {} ", clock::time_of_day(l.time_ms, model.utc_offset_s)),
                    theme.label(),
                ),
                Span::styled(l.kind.label(), theme.log_kind(l.kind)),
                Span::raw(" "),
                Span::raw(l.text.as_str()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
