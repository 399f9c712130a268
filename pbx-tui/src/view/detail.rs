//! The selected extension in detail: name, state, forward and DND settings, its
//! calls, and each registered contact with its user agent and expiry countdown.

use super::calls::call_state_text;
use super::theme::Theme;
use crate::clock;
use crate::model::Model;
use crate::site::Site;
use coventry_shared::client::view::ExtView as Ext;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Borders, Paragraph};
use ratatui::Frame;

const LABEL_W: usize = 8;

fn row<'a>(theme: Theme, label: &str, value: Vec<Span<'a>>) -> Line<'a> {
    let mut spans = vec![Span::styled(
        format!(" {label:<w$} ", w = LABEL_W - 1),
        theme.label(),
    )];
    spans.extend(value);
    Line::from(spans)
}

fn until(model: &Model, ms: Option<u64>) -> String {
    match ms {
        None => String::new(),
        Some(ms) => format!(" until {}", clock::hour_minute(ms, model.utc_offset_s)),
    }
}

fn forwards(model: &Model, e: &Ext) -> String {
    let parts: Vec<String> = e
        .forwards()
        .iter()
        .map(|(kind, target)| format!("{kind}\u{2192}{target}"))
        .collect();
    if parts.is_empty() {
        return if e.forwarded {
            "on".into()
        } else {
            "none".into()
        };
    }
    format!("{}{}", parts.join(", "), until(model, e.forward_until_ms))
}

/// Draw the detail of the selected extension into `area`.
pub fn draw(model: &Model, site: &Site, theme: Theme, frame: &mut Frame, area: Rect) {
    let Some(e) = site.ext(model.selected) else {
        return;
    };
    let title = if e.name.is_empty() {
        format!(" {} ", e.number)
    } else {
        format!(" {} {} ", e.number, e.name)
    };
    let block = theme.panel(title, Borders::TOP | Borders::LEFT);
    let state = e.lamp();
    let mut lines = vec![row(
        theme,
        "state",
        vec![
            Span::styled(state.letter().to_string(), theme.state(state)),
            Span::raw(format!(" {}", state.name())),
        ],
    )];
    let lines_text = if e.configured {
        format!("{} of {} registered", e.contacts.len(), e.lines.max(1))
    } else {
        "not configured".into()
    };
    lines.push(row(theme, "lines", vec![Span::raw(lines_text)]));
    lines.push(row(theme, "forward", vec![Span::raw(forwards(model, e))]));
    let dnd = if e.dnd {
        format!("on{}", until(model, e.dnd_until_ms))
    } else {
        "off".into()
    };
    lines.push(row(theme, "dnd", vec![Span::raw(dnd)]));
    let mut calls = site.calls_of(e.number).peekable();
    if calls.peek().is_none() {
        lines.push(row(theme, "call", vec![Span::raw("none")]));
    }
    for c in calls {
        lines.push(row(
            theme,
            "call",
            vec![Span::raw(format!(
                "{} {}\u{2192}{} {} {}",
                c.id,
                c.from,
                c.to,
                call_state_text(c),
                clock::duration(c.shown_ms(model.now_ms))
            ))],
        ));
    }
    for c in &e.contacts {
        lines.push(row(theme, "contact", vec![Span::raw(c.uri.clone())]));
        let left = c.expires_ms.saturating_sub(model.now_ms);
        let mut about = format!("expires in {}", clock::duration(left));
        if !c.user_agent.is_empty() {
            about.push_str(&format!(" \u{b7} {}", c.user_agent));
        }
        about.push_str(&format!(" \u{b7} from {}", c.source));
        if let Some(a) = c.algorithm {
            about.push_str(&format!(" \u{b7} {a}"));
        }
        lines.push(row(theme, "", vec![Span::raw(about)]));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
