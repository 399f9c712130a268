//! The two bottom lines: the status line (the last result, or the prompt being
//! answered, with the cursor) and the hints (the keys that work now).

use super::theme::Theme;
use crate::actions::MAX_TEXT;
use crate::model::{Ask, Mode, Model};
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// The question a prompt asks.
pub fn prompt_text(ask: &Ask, typed: &str) -> String {
    match ask {
        Ask::Forward { ext } => format!("Forward {ext} to (number [busy|noanswer], or off): "),
        Ask::Message { target } if target == "all" => {
            format!("Message to ALL ({}/{MAX_TEXT}): ", typed.chars().count())
        }
        Ask::Message { target } => format!(
            "Message to {target} ({}/{MAX_TEXT}): ",
            typed.chars().count()
        ),
        Ask::Dial { ext } => format!("Dial: ring {ext}, then connect to: "),
    }
}

/// Draw `prefix` + `input` with the cursor after `before` (the input up to the
/// cursor), scrolled left when it would not fit.
fn draw_input(
    frame: &mut Frame,
    area: Rect,
    theme: Theme,
    prefix: &str,
    input: &str,
    before: &str,
) {
    let width = usize::from(area.width.max(1));
    let cursor = Span::raw(prefix).width() + Span::raw(before).width();
    let skip = (cursor + 1).saturating_sub(width);
    let text: String = format!("{prefix}{input}").chars().skip(skip).collect();
    frame.render_widget(
        Paragraph::new(Line::from(vec![Span::styled(text, theme.title())])),
        area,
    );
    let x = area.x + u16::try_from(cursor - skip).unwrap_or(area.width);
    frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
}

/// Draw the status line.
pub fn draw_status(model: &Model, theme: Theme, frame: &mut Frame, area: Rect) {
    match &model.mode {
        Mode::Jump(digits) => draw_input(frame, area, theme, "Go to extension: ", digits, digits),
        Mode::Prompt(p) => {
            let prefix = prompt_text(&p.ask, p.input.text());
            draw_input(
                frame,
                area,
                theme,
                &prefix,
                p.input.text(),
                p.input.before_cursor(),
            )
        }
        Mode::Command(c) => draw_input(
            frame,
            area,
            theme,
            ":",
            c.input.text(),
            c.input.before_cursor(),
        ),
        Mode::Filter { input, .. } => {
            draw_input(frame, area, theme, "/", input.text(), input.before_cursor())
        }
        Mode::Confirm(c) => frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(c.question.clone(), theme.title()),
                Span::styled(" (y/n)", theme.key()),
            ])),
            area,
        ),
        Mode::Normal | Mode::Help { .. } => {
            if let Some(s) = &model.status {
                frame.render_widget(
                    Paragraph::new(Line::styled(s.text.clone(), theme.tone(s.tone))),
                    area,
                );
            }
        }
    }
}

fn keys<'a>(theme: Theme, items: &[(&'a str, &'a str)], width: u16) -> Line<'a> {
    let width = usize::from(width);
    let mut spans = Vec::new();
    let mut used = 0;
    for (key, what) in items {
        let w = key.chars().count() + what.chars().count() + 3;
        if used + w > width + 2 {
            break;
        }
        if used > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(*key, theme.key()));
        spans.push(Span::styled(format!(" {what}"), theme.label()));
        used += w;
    }
    Line::from(spans)
}

/// Draw the hint line.
pub fn draw_hints(model: &Model, theme: Theme, frame: &mut Frame, area: Rect) {
    let line = match &model.mode {
        Mode::Normal if model.readonly => keys(
            theme,
            &[
                ("?", "help"),
                ("q", "quit"),
                ("/", "filter log"),
                ("PgUp/PgDn", "scroll log"),
                ("READ-ONLY", "actions disabled"),
            ],
            area.width,
        ),
        Mode::Normal => keys(
            theme,
            &[
                ("?", "help"),
                ("q", "quit"),
                ("f", "fwd"),
                ("d", "dnd"),
                ("m", "msg"),
                ("c", "dial"),
                ("x", "hangup"),
                ("r", "release"),
                (":", "cmd"),
                ("/", "filter"),
            ],
            area.width,
        ),
        Mode::Jump(_) => keys(
            theme,
            &[("digits", "the rest of the number"), ("Esc", "cancel")],
            area.width,
        ),
        Mode::Prompt(p) => match &p.error {
            Some(e) => Line::styled(e.clone(), theme.tone(crate::model::Tone::Bad)),
            None => keys(
                theme,
                &[("Enter", "send"), ("Esc", "cancel"), ("empty", "cancels")],
                area.width,
            ),
        },
        Mode::Command(c) => {
            if let Some(e) = &c.error {
                Line::styled(e.clone(), theme.tone(crate::model::Tone::Bad))
            } else if !c.candidates.is_empty() {
                Line::styled(c.candidates.join(" "), theme.label())
            } else {
                keys(
                    theme,
                    &[
                        ("Tab", "complete"),
                        ("Enter", "run"),
                        ("Esc", "cancel"),
                        ("e.g.", "forward 21 35 busy"),
                    ],
                    area.width,
                )
            }
        }
        Mode::Filter { .. } => keys(
            theme,
            &[
                ("text", "or reg call msg cmd warn"),
                ("Enter", "keep"),
                ("Esc", "undo"),
            ],
            area.width,
        ),
        Mode::Confirm(_) => keys(theme, &[("y", "yes"), ("other keys", "cancel")], area.width),
        Mode::Help { .. } => keys(
            theme,
            &[
                ("\u{2191}\u{2193} PgUp PgDn", "scroll"),
                ("other keys", "close help"),
            ],
            area.width,
        ),
    };
    frame.render_widget(Paragraph::new(line), area);
}
