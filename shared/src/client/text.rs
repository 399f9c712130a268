//! Text as clients show it: one display-safe form of strings that came from the
//! network, and one format for durations.
//!
//! Names, user agents, contact URIs and message texts reach the clients from phones.
//! Printed as they are, a control character could move the cursor, change colours or
//! retitle the operator's terminal, and a bidirectional override could make a line
//! read differently from what it says. Clients pass every such string through
//! [`display_safe`] before it reaches a terminal (JSON output carries the raw text,
//! escaped by JSON itself).

/// What is shown in place of a character that must not reach the terminal.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether `c` must not be drawn: C0/C1 controls, DEL, and the Unicode format
/// characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// zero-width characters, the BOM, line and paragraph separators).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `s` made safe for a terminal: tabs and line breaks become spaces (a multi-line
/// text stays one readable line) and every other unsafe character becomes
/// [`REPLACEMENT`].
pub fn display_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => ' ',
            c if is_unsafe(c) => REPLACEMENT,
            c => c,
        })
        .collect()
}

/// [`display_safe`], cut to `max` characters (the rest becomes `…`).
pub fn display_safe_cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return display_safe(s);
    }
    let mut out: String = s.chars().take(max).collect();
    out = display_safe(&out);
    out.push('…');
    out
}

/// A span of time, two units at most, compact enough for an 80-column header:
/// `45s`, `12m05s`, `3h02m`, `2d03h`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600)
    }
}

/// A call's running time as a clock: `0:07`, `12:34`, `1:02:03`.
pub fn call_clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(display_safe("hello wörld ✓ 日本"), "hello wörld ✓ 日本");
    }

    #[test]
    fn escapes_and_controls_are_replaced() {
        assert_eq!(display_safe("a\x1b[2Jb"), "a\u{FFFD}[2Jb");
        assert_eq!(display_safe("x\x07\x00\x7fy"), "x\u{FFFD}\u{FFFD}\u{FFFD}y");
        assert_eq!(display_safe("c1\u{9b}31m"), "c1\u{FFFD}31m");
        assert_eq!(display_safe("two\nlines\tand\rcr"), "two lines and cr");
    }

    #[test]
    fn reordering_characters_are_replaced() {
        assert_eq!(display_safe("ab\u{202E}cd\u{2066}"), "ab\u{FFFD}cd\u{FFFD}");
        assert_eq!(display_safe("z\u{200B}w\u{FEFF}"), "z\u{FFFD}w\u{FFFD}");
    }

    #[test]
    fn cut_marks_the_cut() {
        assert_eq!(display_safe_cut("abc", 3), "abc");
        assert_eq!(display_safe_cut("abcd\x1b", 3), "abc…");
        assert_eq!(display_safe_cut("a\x1bcd", 3), "a\u{FFFD}c…");
    }

    #[test]
    fn nothing_unsafe_survives() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!display_safe(&all).chars().any(is_unsafe));
    }

    #[test]
    fn spans_and_clocks() {
        assert_eq!(span(5_000), "5s");
        assert_eq!(span(65_000), "1m05s");
        assert_eq!(span(723_000), "12m03s");
        assert_eq!(span(3_720_000), "1h02m");
        assert_eq!(span(273_600_000), "3d04h");
        assert_eq!(call_clock(7_900), "0:07");
        assert_eq!(call_clock(754_000), "12:34");
        assert_eq!(call_clock(3_723_000), "1:02:03");
    }
}
