//! Bytes typed on the terminal → keys. No I/O: [`crate::input`] reads the bytes.
//!
//! The console reads its terminal itself (so that end-of-file and errors end it,
//! which crossterm's reader does not report) and decodes what a terminal in raw
//! mode sends: UTF-8 text, control characters (Ctrl-letter, Enter, Tab,
//! Backspace, Esc), and the escape sequences of the keys the console uses
//! (arrows, Home/End, PgUp/PgDn, Insert/Delete, F1–F12, Shift-Tab), with their
//! modifiers. Alt-key arrives as Esc then the key. Anything else is dropped whole;
//! nothing typed can grow memory: an unfinished sequence is held up to
//! [`MAX_PENDING`] bytes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The longest unfinished escape sequence or character kept between reads.
pub const MAX_PENDING: usize = 32;

const ESC: u8 = 0x1b;

/// Turns the bytes of successive reads into keys, holding an escape sequence or a
/// UTF-8 character split across two reads until its end arrives.
#[derive(Debug, Default)]
pub struct KeyDecoder {
    pending: Vec<u8>,
}

/// What the bytes at the start of a buffer are.
enum Step {
    /// A key and the bytes it took.
    Key(KeyEvent, usize),
    /// Bytes that are no key the console knows (dropped).
    Skip(usize),
    /// The start of something whose end has not arrived yet.
    Unfinished,
}

impl KeyDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> KeyDecoder {
        KeyDecoder::default()
    }

    /// The keys in `bytes` (one read), after what was pending from the read before.
    /// A lone Esc at the end of a read is the Esc key (a terminal sends a whole
    /// sequence in one write).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<KeyEvent> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            match step(&buf[at..]) {
                Step::Key(key, n) => {
                    keys.push(key);
                    at += n;
                }
                Step::Skip(n) => at += n,
                Step::Unfinished if buf[at..] == [ESC] => {
                    keys.push(plain(KeyCode::Esc));
                    at += 1;
                }
                Step::Unfinished => {
                    if buf.len() - at <= MAX_PENDING {
                        self.pending = buf[at..].to_vec();
                    }
                    break;
                }
            }
        }
        keys
    }
}

fn plain(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn with(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
    KeyEvent::new(code, modifiers)
}

fn step(buf: &[u8]) -> Step {
    match buf[0] {
        ESC => escape(buf),
        b => match single(b) {
            Some(key) => Step::Key(key, 1),
            None => utf8(buf),
        },
    }
}

/// A key that is one byte (ASCII), other than Esc.
fn single(b: u8) -> Option<KeyEvent> {
    let key = match b {
        b'\r' | b'\n' => plain(KeyCode::Enter),
        b'\t' => plain(KeyCode::Tab),
        0x7f | 0x08 => plain(KeyCode::Backspace),
        0x00 => with(KeyCode::Char(' '), KeyModifiers::CONTROL),
        0x01..=0x1a => with(
            KeyCode::Char(char::from(b - 1 + b'a')),
            KeyModifiers::CONTROL,
        ),
        0x1c..=0x1f => with(
            KeyCode::Char(char::from(b - 0x1c + b'4')),
            KeyModifiers::CONTROL,
        ),
        b'A'..=b'Z' => with(KeyCode::Char(char::from(b)), KeyModifiers::SHIFT),
        0x20..=0x7e => plain(KeyCode::Char(char::from(b))),
        _ => return None,
    };
    Some(key)
}

/// A UTF-8 character (its first byte is not ASCII).
fn utf8(buf: &[u8]) -> Step {
    let len = match buf[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Step::Skip(1),
    };
    let have = buf.len().min(len);
    if buf[1..have].iter().any(|b| b & 0xc0 != 0x80) {
        return Step::Skip(1);
    }
    if have < len {
        return Step::Unfinished;
    }
    match std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Step::Key(plain(KeyCode::Char(c)), len),
        None => Step::Skip(len),
    }
}

/// Esc, an escape sequence, or Alt with a key.
fn escape(buf: &[u8]) -> Step {
    match buf.get(1) {
        None => Step::Unfinished,
        Some(b'[') => csi(buf),
        Some(b'O') => ss3(buf),
        Some(&ESC) => Step::Key(plain(KeyCode::Esc), 1),
        Some(_) => match step(&buf[1..]) {
            Step::Key(mut key, n) => {
                key.modifiers |= KeyModifiers::ALT;
                Step::Key(key, n + 1)
            }
            Step::Skip(n) => Step::Skip(n + 1),
            Step::Unfinished => Step::Unfinished,
        },
    }
}

/// The modifiers of xterm's parameter (1 + shift 1, alt 2, ctrl 4).
fn modifiers(param: Option<u16>) -> KeyModifiers {
    let bits = param.unwrap_or(1).saturating_sub(1);
    let mut m = KeyModifiers::NONE;
    if bits & 1 != 0 {
        m |= KeyModifiers::SHIFT;
    }
    if bits & 2 != 0 {
        m |= KeyModifiers::ALT;
    }
    if bits & 4 != 0 {
        m |= KeyModifiers::CONTROL;
    }
    m
}

/// A key named by the last byte of a cursor-key sequence (`ESC [ A`, `ESC O A`).
fn cursor_key(last: u8) -> Option<KeyCode> {
    Some(match last {
        b'A' => KeyCode::Up,
        b'B' => KeyCode::Down,
        b'C' => KeyCode::Right,
        b'D' => KeyCode::Left,
        b'H' => KeyCode::Home,
        b'F' => KeyCode::End,
        b'P' => KeyCode::F(1),
        b'Q' => KeyCode::F(2),
        b'R' => KeyCode::F(3),
        b'S' => KeyCode::F(4),
        _ => return None,
    })
}

/// `ESC O X`: cursor keys in application mode, F1–F4.
fn ss3(buf: &[u8]) -> Step {
    match buf.get(2) {
        None => Step::Unfinished,
        Some(&b) => match cursor_key(b) {
            Some(code) => Step::Key(plain(code), 3),
            None => Step::Skip(3),
        },
    }
}

/// `ESC [ params final`.
fn csi(buf: &[u8]) -> Step {
    let body = &buf[2..];
    let mut end = None;
    for (i, b) in body.iter().enumerate() {
        match b {
            0x20..=0x3f => {}
            0x40..=0x7e => {
                end = Some(i);
                break;
            }
            // Not part of a sequence (an Esc starts the next one): drop what came before.
            _ => return Step::Skip(2 + i),
        }
    }
    let Some(end) = end else {
        return Step::Unfinished;
    };
    let len = 2 + end + 1;
    let params = &body[..end];
    if !params.iter().all(|b| b.is_ascii_digit() || *b == b';') {
        return Step::Skip(len);
    }
    let mut numbers = params.split(|b| *b == b';').map(|p| {
        std::str::from_utf8(p)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
    });
    let first = numbers.next().flatten();
    let mods = modifiers(numbers.next().flatten());
    let code = match body[end] {
        b'Z' => return Step::Key(with(KeyCode::BackTab, KeyModifiers::SHIFT), len),
        b'~' => match first {
            Some(1 | 7) => KeyCode::Home,
            Some(2) => KeyCode::Insert,
            Some(3) => KeyCode::Delete,
            Some(4 | 8) => KeyCode::End,
            Some(5) => KeyCode::PageUp,
            Some(6) => KeyCode::PageDown,
            Some(n @ 11..=15) => KeyCode::F((n - 10) as u8),
            Some(n @ 17..=21) => KeyCode::F((n - 11) as u8),
            Some(n @ 23..=24) => KeyCode::F((n - 12) as u8),
            _ => return Step::Skip(len),
        },
        last => match cursor_key(last) {
            Some(code) => code,
            None => return Step::Skip(len),
        },
    };
    Step::Key(with(code, mods), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<KeyEvent> {
        KeyDecoder::new().push(bytes)
    }

    fn ctrl(c: char) -> KeyEvent {
        with(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn text_and_control_characters() {
        assert_eq!(
            keys(b"q?2\r\t\x7f\x03\x0c"),
            vec![
                plain(KeyCode::Char('q')),
                plain(KeyCode::Char('?')),
                plain(KeyCode::Char('2')),
                plain(KeyCode::Enter),
                plain(KeyCode::Tab),
                plain(KeyCode::Backspace),
                ctrl('c'),
                ctrl('l'),
            ]
        );
        assert_eq!(
            keys(b"M"),
            vec![with(KeyCode::Char('M'), KeyModifiers::SHIFT)]
        );
        assert_eq!(keys("é€😀".as_bytes()).len(), 3);
        assert_eq!(keys("é".as_bytes()), vec![plain(KeyCode::Char('é'))]);
    }

    #[test]
    fn escape_sequences() {
        assert_eq!(
            keys(b"\x1b[A\x1b[B\x1bOC\x1b[D\x1b[5~\x1b[6~\x1b[H\x1b[4~\x1b[3~\x1bOP\x1b[11~\x1b[24~\x1b[Z"),
            vec![
                plain(KeyCode::Up),
                plain(KeyCode::Down),
                plain(KeyCode::Right),
                plain(KeyCode::Left),
                plain(KeyCode::PageUp),
                plain(KeyCode::PageDown),
                plain(KeyCode::Home),
                plain(KeyCode::End),
                plain(KeyCode::Delete),
                plain(KeyCode::F(1)),
                plain(KeyCode::F(1)),
                plain(KeyCode::F(12)),
                with(KeyCode::BackTab, KeyModifiers::SHIFT),
            ]
        );
        assert_eq!(
            keys(b"\x1b[1;5C"),
            vec![with(KeyCode::Right, KeyModifiers::CONTROL)]
        );
        assert_eq!(
            keys(b"\x1bx"),
            vec![with(KeyCode::Char('x'), KeyModifiers::ALT)]
        );
    }

    #[test]
    fn a_lone_esc_is_the_key_and_a_split_sequence_waits() {
        assert_eq!(keys(b"\x1b"), vec![plain(KeyCode::Esc)]);
        assert_eq!(
            keys(b"\x1b\x1b[A"),
            vec![plain(KeyCode::Esc), plain(KeyCode::Up)]
        );
        let mut d = KeyDecoder::new();
        assert!(d.push(b"\x1b[1;").is_empty());
        assert_eq!(
            d.push(b"2Bq"),
            vec![
                with(KeyCode::Down, KeyModifiers::SHIFT),
                plain(KeyCode::Char('q'))
            ]
        );
        let e = "é".as_bytes();
        assert!(d.push(&e[..1]).is_empty());
        assert_eq!(d.push(&e[1..]), vec![plain(KeyCode::Char('é'))]);
    }

    #[test]
    fn garbage_is_dropped_and_nothing_grows() {
        assert_eq!(
            keys(b"\x1b[?1;2c\xff\xc3(\x1b[99~a"),
            vec![plain(KeyCode::Char('(')), plain(KeyCode::Char('a'))]
        );
        let mut d = KeyDecoder::new();
        let mut endless = b"\x1b[".to_vec();
        endless.extend([b'1'; 1000]);
        assert!(d.push(&endless).is_empty());
        assert!(d.pending.len() <= MAX_PENDING);
        assert_eq!(d.push(b"q"), vec![plain(KeyCode::Char('q'))]);
        for _ in 0..100 {
            d.push(b"\x1b[1;");
            assert!(d.pending.len() <= MAX_PENDING);
        }
    }
}
