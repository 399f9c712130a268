//! `view`: draws the model. It only reads the model (`&self`) and the clock in it,
//! so the same model always draws the same screen.
//!
//! ```text
//! header   switch status, counts, upstream, clock
//! banner   only when the daemon is down or stale
//! grid | detail of the selected extension
//! calls
//! log
//! status   the last action's result, or the prompt being answered
//! hints    the keys that work now
//! ```

mod calls;
mod detail;
mod footer;
mod grid;
mod header;
mod help;
mod log;
pub mod theme;

use crate::model::{Mode, Model};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use theme::Theme;

pub use help::help_lines;

/// Rows of the top section (grid and detail) for a body `body_h` rows high.
fn top_height(model: &Model, body_h: u16) -> u16 {
    let rows = match model.site.as_ref().map(|s| s.plan.count() / grid::PER_ROW) {
        Some(n) if n <= 8 => n as u16,
        // The 3-digit plan: as many rows as fit in about half the body.
        Some(n) => (body_h * 9 / 20).saturating_sub(2).clamp(4, n as u16),
        None => 8,
    };
    (rows + 2).min(body_h.saturating_sub(5)).max(3)
}

impl Model {
    /// Draw the whole screen.
    pub fn view(&self, frame: &mut Frame) {
        let theme = Theme::new(self.color);
        let area = frame.area();
        let banner = header::banner(self);
        let banner_h = banner.as_ref().map_or(0, |b| {
            let w = usize::from(area.width.max(1));
            Span::raw(b.as_str()).width().div_ceil(w).clamp(1, 2) as u16
        });
        let [head, ban, body, status, hints] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(banner_h),
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        header::draw(self, theme, frame, head);
        if let Some(text) = banner {
            frame.render_widget(
                Paragraph::new(Line::from(text))
                    .style(theme.banner())
                    .wrap(Wrap { trim: false }),
                ban,
            );
        }
        if let Mode::Help { scroll } = self.mode {
            help::draw(self, theme, frame, body, scroll);
        } else {
            self.body(theme, frame, body);
        }
        footer::draw_status(self, theme, frame, status);
        footer::draw_hints(self, theme, frame, hints);
    }

    fn body(&self, theme: Theme, frame: &mut Frame, area: Rect) {
        let Some(site) = &self.site else {
            let text = vec![
                Line::from(""),
                Line::from("Waiting for coventryd\u{2026}"),
                Line::from(format!("(state block in {})", self.runtime_dir)),
            ];
            frame.render_widget(Paragraph::new(text).centered(), area);
            return;
        };
        let top_h = top_height(self, area.height);
        let rest = area.height.saturating_sub(top_h);
        let max_calls = (rest.saturating_sub(3) / 2).max(1);
        let calls_h = 1 + (site.calls.len() as u16).clamp(1, max_calls);
        let [top, calls_area, log_area] = Layout::vertical([
            Constraint::Length(top_h),
            Constraint::Length(calls_h.min(rest)),
            Constraint::Fill(1),
        ])
        .areas(area);
        let grid_w = grid::width(site.plan).min(top.width);
        let [grid_area, detail_area] =
            Layout::horizontal([Constraint::Length(grid_w), Constraint::Fill(1)]).areas(top);
        grid::draw(self, site, theme, frame, grid_area);
        detail::draw(self, site, theme, frame, detail_area);
        calls::draw(self, site, theme, frame, calls_area);
        match &self.trace {
            Some(t) => log::draw_trace(t, theme, frame, log_area),
            None => log::draw(self, theme, frame, log_area),
        }
    }
}
