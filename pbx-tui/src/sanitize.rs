//! Making text from the network safe to draw.
//!
//! Message texts, user agents, contact URIs and names reach the console from phones
//! (through the daemon's state block). Drawn as they are, a control character could
//! move the cursor, change colours or rewrite the operator's terminal title, and a
//! bidirectional override could make a line read differently from what it says. Every
//! such string goes through [`clean`] before it is stored in the model.

/// Replacement shown for a character that must not reach the terminal.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Longest text kept from one field, in characters (the rest becomes `…`).
pub const MAX_CHARS: usize = 400;

/// Whether `c` must not be drawn: C0/C1 controls, DEL, and the Unicode format
/// characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// zero-width joiners, the BOM, line and paragraph separators).
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

/// `s` with every unsafe character replaced (tabs and line breaks become spaces, so
/// a multi-line text stays one readable line), cut to [`MAX_CHARS`] characters.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_CHARS * 4));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        out.push(match c {
            '\t' | '\n' | '\r' => ' ',
            c if is_unsafe(c) => REPLACEMENT,
            c => c,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(clean("hello wörld ✓ 日本"), "hello wörld ✓ 日本");
    }

    #[test]
    fn escapes_and_controls_are_replaced() {
        assert_eq!(clean("a\x1b[2Jb"), "a\u{FFFD}[2Jb");
        assert_eq!(clean("x\x07\x00\x7fy"), "x\u{FFFD}\u{FFFD}\u{FFFD}y");
        assert_eq!(clean("c1\u{9b}31m"), "c1\u{FFFD}31m");
        assert_eq!(clean("two\nlines\tand\rcr"), "two lines and cr");
    }

    #[test]
    fn reordering_characters_are_replaced() {
        assert_eq!(clean("ab\u{202E}cd\u{2066}"), "ab\u{FFFD}cd\u{FFFD}");
        assert_eq!(clean("z\u{200B}w\u{FEFF}"), "z\u{FFFD}w\u{FFFD}");
    }

    #[test]
    fn long_text_is_cut() {
        let s = clean(&"x".repeat(MAX_CHARS + 10));
        assert_eq!(s.chars().count(), MAX_CHARS + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn nothing_unsafe_survives() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!clean(&all).chars().any(is_unsafe));
    }
}
