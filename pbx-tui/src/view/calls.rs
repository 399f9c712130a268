//! Live calls (and those that ended in the last seconds): number, caller, callee,
//! state with the ring count, duration.

use super::theme::Theme;
use crate::clock;
use crate::model::Model;
use crate::site::Site;
use coventry_shared::client::view::CallView as Call;
use coventry_shared::event::CallPhase;
use coventry_shared::stateblock::Lamp;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Borders, Paragraph};
use ratatui::Frame;

/// The state of a call in words: `ringing ×3`, `answered`, `ended busy 486`.
pub fn call_state_text(c: &Call) -> String {
    match c.phase {
        CallPhase::Ringing => format!("ringing \u{d7}{}", c.rings),
        CallPhase::Ended => match c.outcome {
            Some((outcome, status)) => format!("ended {} {status}", outcome.name()),
            None => "ended".to_string(),
        },
        p => p.name().to_string(),
    }
}

fn style(theme: Theme, c: &Call) -> Style {
    match c.phase {
        CallPhase::Dialing | CallPhase::Ringing => theme.state(Lamp::Ringing),
        CallPhase::Answered => theme.state(Lamp::Busy),
        CallPhase::Ended => theme.label(),
    }
}

/// Draw the calls into `area` (title row, one row per call).
pub fn draw(model: &Model, site: &Site, theme: Theme, frame: &mut Frame, area: Rect) {
    let live = site.live_calls().count();
    let ended = site.calls.len() - live;
    let room = usize::from(area.height.saturating_sub(1));
    let mut title = format!(" Calls: {live} live ");
    if ended > 0 {
        title.push_str(&format!("\u{b7} {ended} ended "));
    }
    if site.calls.len() > room {
        title.push_str(&format!("\u{b7} {} not shown ", site.calls.len() - room));
    }
    let block = theme.panel(title, Borders::TOP);
    let mut lines: Vec<Line> = site
        .calls
        .iter()
        .take(room)
        .map(|c| {
            Line::from(vec![
                Span::styled(format!(" {:<5} ", c.id), theme.label()),
                Span::raw(format!("{:>6} \u{2192} {:<12} ", c.from, c.to)),
                Span::styled(format!("{:<26}", call_state_text(c)), style(theme, c)),
                Span::raw(format!("{:>8}", clock::duration(c.shown_ms(model.now_ms)))),
            ])
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled(" no calls", theme.label()));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
