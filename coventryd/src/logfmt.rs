//! Log fields that came from the network, written so that they cannot forge
//! anything: always in double quotes, with `"` and `\` escaped, control
//! characters and everything outside printable ASCII written as escapes, and
//! long values cut. A log reader (a person, grep, fail2ban) can then trust that
//! every `key=value` outside quotes was written by the switch itself.
//!
//! Addresses are the switch's own view of the peer (`SocketAddr`), never text from
//! a message, and are written without quotes.

use std::fmt;
use std::os::unix::fs::MetadataExt;

/// Whether standard error goes to the systemd journal (`JOURNAL_STREAM` names
/// its device and inode, systemd.exec(5)): the journal stamps every line itself,
/// so the switch's lines carry no timestamp there and one everywhere else.
pub fn under_journald() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Most characters of a network field written to the log; longer ones end in `...`.
pub const MAX_FIELD_CHARS: usize = 64;

/// A network-supplied text, quoted and escaped when displayed (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

/// Quote `s` for a log line: `format!("user={}", quoted(user))`.
pub fn quoted(s: &str) -> Quoted<'_> {
    Quoted(s)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_FIELD_CHARS) {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                ' '..='~' => write!(f, "{c}")?,
                c if u32::from(c) < 0x80 => write!(f, "\\x{:02x}", u32::from(c))?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        if chars.next().is_some() {
            f.write_str("...")?;
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn plain_text_is_quoted() {
        assert_eq!(quoted("21").to_string(), "\"21\"");
        assert_eq!(quoted("").to_string(), "\"\"");
        assert_eq!(
            quoted("Linphone/5.2 (belle-sip)").to_string(),
            "\"Linphone/5.2 (belle-sip)\""
        );
    }

    #[test]
    fn nothing_can_leave_the_quotes() {
        assert_eq!(
            quoted("x source=6.6.6.6:1").to_string(),
            "\"x source=6.6.6.6:1\""
        );
        assert_eq!(
            quoted("x\" source=6.6.6.6 \"").to_string(),
            "\"x\\\" source=6.6.6.6 \\\"\""
        );
        assert_eq!(quoted("a\\\"b").to_string(), "\"a\\\\\\\"b\"");
        let s = quoted("x\r\n[WARN ] auth failed: source=6.6.6.6:1").to_string();
        assert_eq!(s, "\"x\\x0d\\x0a[WARN ] auth failed: source=6.6.6.6:1\"");
        assert!(!s.contains(['\r', '\n']));
        // Bidirectional overrides and other non-ASCII text are escaped.
        assert_eq!(
            quoted("a\u{202e}b é").to_string(),
            "\"a\\u{202e}b \\u{e9}\""
        );
        assert_eq!(quoted("\u{0}\u{7f}").to_string(), "\"\\x00\\x7f\"");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "9".repeat(1000);
        let s = quoted(&long).to_string();
        assert_eq!(s.len(), 1 + super::MAX_FIELD_CHARS + 3 + 1);
        assert!(s.ends_with("...\""));
        let exact = "9".repeat(super::MAX_FIELD_CHARS);
        assert!(!quoted(&exact).to_string().contains("..."));
    }
}
