//! Making text from the network safe to draw.
//!
//! Message texts, user agents, contact URIs and names reach the console from phones
//! (through the daemon's state block). Every such string goes through [`clean`]
//! before it is stored in the model: the shared display-safe form
//! (`coventry_shared::client::text`), cut to a length the console can show.

use coventry_shared::client::text::display_safe_cut;
pub use coventry_shared::client::text::is_unsafe;

/// Longest text kept from one field, in characters (the rest becomes `…`).
pub const MAX_CHARS: usize = 400;

/// `s` safe to draw, cut to [`MAX_CHARS`] characters.
pub fn clean(s: &str) -> String {
    display_safe_cut(s, MAX_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_nothing_unsafe_survives() {
        let s = clean(&"x\u{202E}".repeat(MAX_CHARS));
        assert_eq!(s.chars().count(), MAX_CHARS + 1);
        assert!(s.ends_with('…'));
        assert!(!s.chars().any(is_unsafe));
    }
}
