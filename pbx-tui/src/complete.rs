//! Tab completion on the `:` command line: verbs in the first word, then extension
//! numbers, call numbers and keywords where the verb's grammar expects them.

use coventry_shared::control::VERBS;

/// Verbs the console handles itself (not sent to the daemon).
pub const LOCAL_VERBS: &[&str] = &["help", "quit"];

/// What a word of a command can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ext,
    ExtOrAll,
    ExtOrCall,
    ExtOrOff,
    Kind,
    OnOff,
    Free,
}

fn slot(verb: &str, index: usize) -> Slot {
    match (verb, index) {
        ("message" | "msg", 1) => Slot::ExtOrAll,
        ("release" | "why", 1) => Slot::Ext,
        ("hangup", 1) => Slot::ExtOrCall,
        ("forward" | "fwd", 1) => Slot::Ext,
        ("forward" | "fwd", 2) => Slot::ExtOrOff,
        ("forward" | "fwd", 3) => Slot::Kind,
        ("dnd", 1) => Slot::Ext,
        ("dnd", 2) => Slot::OnOff,
        ("dial" | "call", 1 | 2) => Slot::Ext,
        _ => Slot::Free,
    }
}

/// The result of one Tab press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The new text before the cursor.
    pub head: String,
    /// Every candidate that matched (shown when there is more than one).
    pub candidates: Vec<String>,
}

/// Complete the last word of `before` (the text before the cursor), given the
/// configured extensions `exts` and the live call numbers `calls`.
pub fn complete(before: &str, exts: &[u16], calls: &[u32]) -> Completion {
    let words: Vec<&str> = before.split_whitespace().collect();
    let (index, word) = if before.is_empty() || before.ends_with(char::is_whitespace) {
        (words.len(), "")
    } else {
        (words.len() - 1, words[words.len() - 1])
    };
    let mut pool: Vec<String> = Vec::new();
    if index == 0 {
        pool.extend(VERBS.iter().chain(LOCAL_VERBS).map(|v| v.to_string()));
    } else {
        let verb = words[0].to_ascii_lowercase();
        let ext_words = || exts.iter().map(u16::to_string);
        match slot(&verb, index) {
            Slot::Ext => pool.extend(ext_words()),
            Slot::ExtOrAll => {
                pool.push("all".into());
                pool.extend(ext_words());
            }
            Slot::ExtOrCall => {
                pool.extend(ext_words());
                pool.extend(calls.iter().map(u32::to_string));
            }
            Slot::ExtOrOff => {
                pool.push("off".into());
                pool.extend(ext_words());
            }
            Slot::Kind => pool.extend(["always", "busy", "noanswer"].map(String::from)),
            Slot::OnOff => pool.extend(["on", "off"].map(String::from)),
            Slot::Free => {}
        }
    }
    let lower = word.to_ascii_lowercase();
    let candidates: Vec<String> = pool.into_iter().filter(|c| c.starts_with(&lower)).collect();
    let stem = &before[..before.len() - word.len()];
    let head = match candidates.as_slice() {
        [] => before.to_string(),
        [one] => format!("{stem}{one} "),
        many => format!("{stem}{}", common_prefix(many)),
    };
    let candidates = if candidates.len() > 1 {
        candidates
    } else {
        Vec::new()
    };
    Completion { head, candidates }
}

fn common_prefix(words: &[String]) -> String {
    let Some(first) = words.first() else {
        return String::new();
    };
    let mut n = first.len();
    for w in &words[1..] {
        n = n.min(
            first
                .bytes()
                .zip(w.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(n) {
        n -= 1;
    }
    first[..n].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTS: &[u16] = &[21, 22, 35];

    fn c(before: &str) -> Completion {
        complete(before, EXTS, &[1001])
    }

    #[test]
    fn verbs() {
        assert_eq!(c("fo").head, "forward ");
        assert_eq!(c("re").head, "rel");
        assert_eq!(c("re").candidates, vec!["release", "reload"]);
        assert_eq!(c("rel").head, "rel");
        assert_eq!(c("rele").head, "release ");
        assert_eq!(c("q").head, "quit ");
        assert!(c("").candidates.len() >= 8);
    }

    #[test]
    fn extensions_and_keywords() {
        assert_eq!(c("forward 2").head, "forward 2");
        assert_eq!(c("forward 2").candidates, vec!["21", "22"]);
        assert_eq!(c("forward 3").head, "forward 35 ");
        assert_eq!(c("forward 21 o").head, "forward 21 off ");
        assert_eq!(c("forward 21 35 n").head, "forward 21 35 noanswer ");
        assert_eq!(c("dnd 21 of").head, "dnd 21 off ");
        assert_eq!(c("message a").head, "message all ");
        assert_eq!(c("hangup 1").head, "hangup 1001 ");
        assert_eq!(c("release ").candidates, vec!["21", "22", "35"]);
        assert_eq!(c("message 21 hel").head, "message 21 hel", "free text");
        assert_eq!(c("FORWARD 3").head, "FORWARD 35 ");
    }
}
