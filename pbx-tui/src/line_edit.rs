//! A one-line text editor for prompts, the command line and the log filter.

use crate::sanitize::is_unsafe;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Longest input accepted, in characters (a control line is at most 1024 bytes;
/// a text, at most 160 characters).
pub const MAX_INPUT: usize = 500;

/// Text being typed and the cursor in it (a character index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineEdit {
    text: String,
    cursor: usize,
}

impl LineEdit {
    /// An empty line.
    pub fn new() -> LineEdit {
        LineEdit::default()
    }

    /// A line holding `text`, cursor at its end.
    pub fn with_text(text: &str) -> LineEdit {
        let mut l = LineEdit::new();
        l.set(text);
        l
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The text before the cursor.
    pub fn before_cursor(&self) -> &str {
        &self.text[..self.byte_at(self.cursor)]
    }

    /// Replace the text; the cursor goes to its end.
    pub fn set(&mut self, text: &str) {
        self.text = text.chars().filter(|c| !is_unsafe(*c)).collect();
        self.cursor = self.text.chars().count();
    }

    /// Replace the text before the cursor with `head`, keeping what follows.
    pub fn set_before_cursor(&mut self, head: &str) {
        let tail = self.text[self.byte_at(self.cursor)..].to_string();
        self.set(head);
        let cursor = self.cursor;
        self.text.push_str(&tail);
        self.cursor = cursor;
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Insert `c` at the cursor (control characters are refused).
    pub fn insert(&mut self, c: char) {
        if is_unsafe(c) || self.text.chars().count() >= MAX_INPUT {
            return;
        }
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// Apply an editing key; `false` when the key is not an editing key.
    pub fn handle(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.replace_range(..at, "");
                self.cursor = 0;
            }
            KeyCode::Char('w') if ctrl => {
                let before: Vec<char> = self.before_cursor().chars().collect();
                let mut start = before.len();
                while start > 0 && before[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && before[start - 1] != ' ' {
                    start -= 1;
                }
                let (a, b) = (self.byte_at(start), self.byte_at(self.cursor));
                self.text.replace_range(a..b, "");
                self.cursor = start;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.text.chars().count(),
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
                self.insert(c)
            }
            KeyCode::Backspace => {
                if self.cursor > 0 {
                    let at = self.byte_at(self.cursor - 1);
                    self.text.remove(at);
                    self.cursor -= 1;
                }
            }
            KeyCode::Delete => {
                if self.cursor < self.text.chars().count() {
                    let at = self.byte_at(self.cursor);
                    self.text.remove(at);
                }
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.text.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.chars().count(),
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn edits() {
        let mut l = LineEdit::new();
        for c in "héllo world".chars() {
            l.handle(&key(KeyCode::Char(c)));
        }
        assert_eq!(l.text(), "héllo world");
        l.handle(&key(KeyCode::Left));
        l.handle(&key(KeyCode::Backspace));
        assert_eq!(l.text(), "héllo word");
        l.handle(&key(KeyCode::Home));
        l.handle(&key(KeyCode::Delete));
        assert_eq!(l.text(), "éllo word");
        l.handle(&key(KeyCode::End));
        l.handle(&ctrl('w'));
        assert_eq!(l.text(), "éllo ");
        l.handle(&ctrl('u'));
        assert_eq!(l.text(), "");
        assert!(!l.handle(&key(KeyCode::Enter)));
    }

    #[test]
    fn refuses_control_characters() {
        let mut l = LineEdit::new();
        l.insert('\x1b');
        l.insert('\u{202E}');
        l.set("a\nb");
        assert_eq!(l.text(), "ab");
    }

    #[test]
    fn replaces_the_head() {
        let mut l = LineEdit::with_text("forw 21");
        l.cursor = 4;
        l.set_before_cursor("forward ");
        assert_eq!(l.text(), "forward  21");
        assert_eq!(l.before_cursor(), "forward ");
    }
}
