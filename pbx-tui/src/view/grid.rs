//! The extension grid: one cell per extension of the plan, ten to a row (10–19,
//! 20–29, ...), each its number and state letter, coloured by state. The 3-digit
//! plan is shown a page of rows at a time, the page that holds the selection.

use super::theme::Theme;
use crate::model::Model;
use crate::site::Site;
use coventry_shared::dialplan::Plan;
use coventry_shared::stateblock::Lamp;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Borders, Paragraph};
use ratatui::Frame;

/// Cells per row: one decade.
pub const PER_ROW: usize = 10;

/// The letters of the legend under the grid and their short meaning.
const LEGEND: [(Lamp, &str); 6] = [
    (Lamp::Ringing, "ring"),
    (Lamp::Busy, "busy"),
    (Lamp::Dnd, "dnd"),
    (Lamp::Forwarded, "fwd"),
    (Lamp::Registered, "reg"),
    (Lamp::Offline, "off"),
];

/// Width of one cell: marker, number, letter.
pub fn cell_width(plan: Plan) -> u16 {
    u16::from(plan.digits()) + 2
}

/// Width of the grid.
pub fn width(plan: Plan) -> u16 {
    cell_width(plan) * PER_ROW as u16
}

/// The first row shown and how many, for `visible` rows of the plan's `total`.
pub fn page(selected_row: usize, visible: usize, total: usize) -> (usize, usize) {
    let visible = visible.clamp(1, total.max(1));
    let first = (selected_row / visible * visible).min(total.saturating_sub(visible));
    (first, visible)
}

/// Draw the grid into `area` (title row, rows of cells, legend row).
pub fn draw(model: &Model, site: &Site, theme: Theme, frame: &mut Frame, area: Rect) {
    let plan = site.plan;
    let total = plan.count().div_ceil(PER_ROW);
    let sel_row = plan.index_of(model.selected).unwrap_or(0) / PER_ROW;
    let (first, visible) = page(sel_row, usize::from(area.height.saturating_sub(2)), total);
    let row_number = |r: usize| usize::from(plan.first()) + r * PER_ROW;
    let mut title = format!(" Extensions {}\u{2013}{} ", plan.first(), plan.last());
    if visible < total {
        title = format!(
            " Ext {}\u{2013}{} of {}\u{2013}{} {}{} ",
            row_number(first),
            (row_number(first + visible) - 1).min(usize::from(plan.last())),
            plan.first(),
            plan.last(),
            if first > 0 { "\u{25b2}" } else { "" },
            if first + visible < total {
                "\u{25bc}"
            } else {
                ""
            },
        );
    }
    let block = theme.panel(title, Borders::TOP);
    let mut lines: Vec<Line> = Vec::new();
    for r in first..first + visible {
        let mut spans = Vec::with_capacity(PER_ROW * 2);
        for e in site.exts.iter().skip(r * PER_ROW).take(PER_ROW) {
            let state = e.lamp();
            let selected = e.number == model.selected;
            let mut style = theme.state(state);
            if selected {
                style = style.patch(theme.selected());
            }
            spans.push(Span::raw(if selected { ">" } else { " " }));
            spans.push(Span::styled(
                format!("{}{}", e.number, state.letter()),
                style,
            ));
        }
        lines.push(Line::from(spans));
    }
    let mut legend = vec![Span::raw(" ")];
    for (i, (state, word)) in LEGEND.iter().enumerate() {
        if i > 0 {
            legend.push(Span::raw(" "));
        }
        legend.push(Span::styled(
            state.letter().to_string(),
            theme.state(*state),
        ));
        legend.push(Span::styled(format!(" {word}"), theme.label()));
    }
    while lines.len() < usize::from(area.height.saturating_sub(2)) {
        lines.push(Line::from(""));
    }
    lines.push(Line::from(legend));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        assert_eq!(page(0, 8, 8), (0, 8));
        assert_eq!(page(7, 20, 8), (0, 8));
        assert_eq!(page(0, 7, 60), (0, 7));
        assert_eq!(page(8, 7, 60), (7, 7));
        assert_eq!(page(59, 7, 60), (53, 7));
        assert_eq!(page(3, 0, 60), (3, 1));
    }
}
