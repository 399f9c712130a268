//! Styles: colours on a colour terminal; with `NO_COLOR` (or `--no-color`) only
//! bold, dim and reverse video, so every state still reads by its letter.

use crate::model::Tone;
use coventry_shared::stateblock::Lamp;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

/// The styles of one console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colours when `color`, else monochrome.
    pub fn new(color: bool) -> Theme {
        Theme { color }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// A grid cell's letter and number in state `s`.
    pub fn state(self, s: Lamp) -> Style {
        match s {
            Lamp::Ringing => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Lamp::Busy => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Lamp::Dnd => self.fg(Color::Magenta),
            Lamp::Forwarded => self.fg(Color::Cyan),
            Lamp::Registered => self.fg(Color::Green),
            Lamp::Offline => Style::new(),
            Lamp::Unconfigured => Style::new().add_modifier(Modifier::DIM),
        }
    }

    /// The selected cell (added to its state's style).
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// Section titles.
    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Labels and other quiet text.
    pub fn label(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    /// Borders and rules.
    pub fn border(self) -> Style {
        self.label()
    }

    /// A panel: `borders` drawn as rules, `title` on the top one.
    pub fn panel(self, title: String, borders: Borders) -> Block<'static> {
        Block::new()
            .borders(borders)
            .border_style(self.border())
            .title(Span::styled(title, self.title()))
    }

    /// The banner when the daemon is down or stale.
    pub fn banner(self) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD);
        if self.color {
            s.fg(Color::White).bg(Color::Red)
        } else {
            s.add_modifier(Modifier::REVERSED)
        }
    }

    /// The daemon's condition in the header: good or bad.
    pub fn health(self, good: bool) -> Style {
        if good {
            self.fg(Color::Green).add_modifier(Modifier::BOLD)
        } else {
            self.fg(Color::Red).add_modifier(Modifier::BOLD)
        }
    }

    /// The status line in `tone`.
    pub fn tone(self, tone: Tone) -> Style {
        match tone {
            Tone::Info => Style::new(),
            Tone::Waiting => self.fg(Color::Yellow),
            Tone::Good => self.fg(Color::Green),
            Tone::Bad => self.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }

    /// Keys in the hint line and the help screen.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// A log line of `kind`'s label.
    pub fn log_kind(self, kind: crate::log::LogKind) -> Style {
        use crate::log::LogKind;
        match kind {
            LogKind::Registration => self.fg(Color::Green),
            LogKind::Call => self.fg(Color::Yellow),
            LogKind::Message => self.fg(Color::Cyan),
            LogKind::Result | LogKind::Notice => self.label(),
            LogKind::Failure | LogKind::Auth | LogKind::Warning => {
                self.fg(Color::Red).add_modifier(Modifier::BOLD)
            }
            LogKind::Console => self.fg(Color::Magenta).add_modifier(Modifier::BOLD),
        }
    }
}
