//! The help screen: every key (from [`crate::keymap::KEYS`]) and the grid letters,
//! in two columns when they fit.

use super::theme::Theme;
use crate::keymap::{KEYS, LEFT_TOPICS};
use crate::model::Model;
use coventry_shared::stateblock::Lamp;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Borders, Paragraph};
use ratatui::Frame;

const KEY_W: usize = 10;

fn topic_lines(theme: Theme, topics: &[crate::keymap::Topic]) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (i, (title, keys)) in topics.iter().enumerate() {
        if i > 0 {
            lines.push(Line::from(""));
        }
        lines.push(Line::styled(format!(" {title}"), theme.title()));
        for (key, what) in keys.iter() {
            lines.push(Line::from(vec![
                Span::styled(format!("  {key:<KEY_W$}"), theme.key()),
                Span::raw(*what),
            ]));
        }
    }
    lines
}

/// The help text as lines: the keys, then the grid letters (also used by tests).
pub fn help_lines(theme: Theme) -> (Vec<Line<'static>>, Vec<Line<'static>>) {
    let mut left = topic_lines(theme, &KEYS[..LEFT_TOPICS]);
    let mut right = topic_lines(theme, &KEYS[LEFT_TOPICS..]);
    right.push(Line::styled("  e.g. :forward 21 35 busy", theme.label()));
    right.push(Line::from(""));
    right.push(Line::styled(" Grid letters", theme.title()));
    for chunk in Lamp::ALL.chunks(3) {
        let mut spans = vec![Span::raw(" ")];
        for s in chunk {
            spans.push(Span::styled(format!(" {}", s.letter()), theme.state(*s)));
            spans.push(Span::raw(format!(" {:<9}", s.name())));
        }
        right.push(Line::from(spans));
    }
    left.push(Line::from(""));
    left.push(Line::styled(
        " Every action shows the daemon's",
        theme.label(),
    ));
    left.push(Line::styled(" answer on the status line.", theme.label()));
    (left, right)
}

/// Draw the help screen into `area`, scrolled down by `scroll` lines.
pub fn draw(model: &Model, theme: Theme, frame: &mut Frame, area: Rect, scroll: u16) {
    let mut title = " Help: every key ".to_string();
    if model.readonly {
        title.push_str("(read-only: actions are disabled) ");
    }
    let block = theme.panel(title, Borders::TOP);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (left, right) = help_lines(theme);
    if inner.width >= 78 {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(inner);
        frame.render_widget(Paragraph::new(left).scroll((scroll, 0)), l);
        frame.render_widget(Paragraph::new(right).scroll((scroll, 0)), r);
    } else {
        let mut all = left;
        all.push(Line::from(""));
        all.extend(right);
        frame.render_widget(Paragraph::new(all).scroll((scroll, 0)), inner);
    }
}
