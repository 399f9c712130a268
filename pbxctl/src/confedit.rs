//! Editing coventry.conf as text, keeping every byte that is not part of the
//! change: comments, blank lines, spacing, key order, line endings (`\n` or
//! `\r\n`, and a last line without one).
//!
//! Lines are read the way the daemon's parser reads them: a line whose trimmed
//! text starts with `[` and ends with `]` opens a section, one starting with `;`
//! or `#` is a comment, any other non-blank line is a `key = value` property of
//! the section above it. An extension's section is `[N]` (N its number, up to
//! three digits).
//!
//! - [`add_section`] puts a new extension section before the first extension
//!   section with a higher number (and before the comment lines directly above
//!   that one's header, which are taken to be about it), else at the end, with a
//!   blank line between it and its neighbours.
//! - [`remove_section`] takes away an extension's header and its lines up to its
//!   last property, with the comments among them; comments and blank lines
//!   above the header or after the last property stay, as they may be about
//!   what follows. One of two blank lines left next to each other goes with it.
//! - [`set_key`] replaces the value of a key in an extension's section (every
//!   line that sets it), keeping the spacing around `=`; a key the section does
//!   not have is added after its last property.
//!
//! Nothing here checks what the result means: the daemon's own parser does that
//! before anything is written.

/// One line of the file: its text and its line ending (empty for a last line
/// without one).
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    eol: &'a str,
}

/// What a line is, as the daemon's parser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    Blank,
    Comment,
    /// A section header with its (trimmed) name.
    Section(&'a str),
    /// A property with its (trimmed) key.
    Property(&'a str),
}

impl<'a> Line<'a> {
    fn kind(&self) -> Kind<'a> {
        let t = self.text.trim();
        if t.is_empty() {
            Kind::Blank
        } else if t.starts_with(';') || t.starts_with('#') {
            Kind::Comment
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Kind::Section(name.trim())
        } else {
            Kind::Property(t.split('=').next().unwrap_or("").trim())
        }
    }

    /// The extension number this line's section header names, if it is one.
    fn extension(&self) -> Option<u16> {
        match self.kind() {
            Kind::Section(name) => extension_number(name),
            _ => None,
        }
    }
}

/// The number of an extension section's name (`23`, up to three digits).
fn extension_number(name: &str) -> Option<u16> {
    if name.is_empty() || name.len() > 3 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Split `text` into lines with their endings (`\r\n` or `\n`).
fn lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|l| {
            if let Some(t) = l.strip_suffix("\r\n") {
                Line {
                    text: t,
                    eol: "\r\n",
                }
            } else if let Some(t) = l.strip_suffix('\n') {
                Line { text: t, eol: "\n" }
            } else {
                Line { text: l, eol: "" }
            }
        })
        .collect()
}

/// The line ending the file uses: that of its first line, `\n` when it has none.
fn eol_of(lines: &[Line]) -> &'static str {
    match lines.iter().find(|l| !l.eol.is_empty()) {
        Some(l) if l.eol == "\r\n" => "\r\n",
        _ => "\n",
    }
}

fn join(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l.text);
        s.push_str(l.eol);
    }
    s
}

/// The extension numbers with a section in `text`, in file order.
pub fn extensions(text: &str) -> Vec<u16> {
    lines(text).iter().filter_map(Line::extension).collect()
}

/// Whether `text` has a section for extension `n`.
pub fn has_section(text: &str, n: u16) -> bool {
    extensions(text).contains(&n)
}

/// Where the section of extension `n` is: its header's index and the index of
/// its last property (the header's own when it has none).
fn span(lines: &[Line], n: u16) -> Option<(usize, usize)> {
    let start = lines.iter().position(|l| l.extension() == Some(n))?;
    let mut last = start;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        match l.kind() {
            Kind::Section(_) => break,
            Kind::Property(_) => last = i,
            Kind::Blank | Kind::Comment => {}
        }
    }
    Some((start, last))
}

/// `text` with a new section `[n]` holding `keys` (`key = value` lines, in
/// order). `None` when `text` already has a section for `n`.
pub fn add_section(text: &str, n: u16, keys: &[(&str, &str)]) -> Option<String> {
    let old = lines(text);
    if old.iter().any(|l| l.extension() == Some(n)) {
        return None;
    }
    let eol = eol_of(&old);
    let mut block: Vec<String> = vec![format!("[{n}]")];
    block.extend(keys.iter().map(|(k, v)| format!("{k} = {v}")));
    // Before the first extension section numbered above `n`, and above the
    // comments directly over its header.
    let before = old
        .iter()
        .position(|l| l.extension().is_some_and(|e| e > n))
        .map(|mut at| {
            while at > 0 && old[at - 1].kind() == Kind::Comment {
                at -= 1;
            }
            at
        });
    let mut out = String::with_capacity(text.len() + 64);
    match before {
        Some(at) => {
            out.push_str(&join(&old[..at]));
            if at > 0 && old[at - 1].kind() != Kind::Blank {
                out.push_str(eol);
            }
            for l in &block {
                out.push_str(l);
                out.push_str(eol);
            }
            out.push_str(eol);
            out.push_str(&join(&old[at..]));
        }
        None => {
            out.push_str(text);
            if let Some(last) = old.last() {
                if last.eol.is_empty() {
                    out.push_str(eol);
                }
                if last.kind() != Kind::Blank {
                    out.push_str(eol);
                }
            }
            for l in &block {
                out.push_str(l);
                out.push_str(eol);
            }
        }
    }
    Some(out)
}

/// `text` without the section of extension `n` (see the module's rules).
/// `None` when it has none.
pub fn remove_section(text: &str, n: u16) -> Option<String> {
    let old = lines(text);
    let (start, last) = span(&old, n)?;
    let mut kept: Vec<Line> = Vec::with_capacity(old.len());
    kept.extend_from_slice(&old[..start]);
    let rest = &old[last + 1..];
    let blank_before = kept.last().is_some_and(|l| l.kind() == Kind::Blank);
    let blank_after = rest.first().is_some_and(|l| l.kind() == Kind::Blank);
    if blank_before && (blank_after || rest.is_empty()) {
        // Two blank lines would meet (or one would trail the file): one goes.
        kept.pop();
    }
    kept.extend_from_slice(rest);
    Some(join(&kept))
}

/// `text` with `key` of extension `n`'s section set to `value`: every line that
/// sets the key (any case) gets the new value, with the spacing around `=` and
/// after the value kept; without one, a `key = value` line is added after the
/// section's last property. `None` when `text` has no section for `n`.
pub fn set_key(text: &str, n: u16, key: &str, value: &str) -> Option<String> {
    let old = lines(text);
    let (start, last) = span(&old, n)?;
    let eol = eol_of(&old);
    let mut out = String::with_capacity(text.len() + 64);
    let mut found = false;
    for (i, l) in old[..=last].iter().enumerate() {
        match l.kind() {
            Kind::Property(k) if i > start && k.eq_ignore_ascii_case(key) => {
                found = true;
                out.push_str(&replace_value(l.text, value));
            }
            _ => out.push_str(l.text),
        }
        // A new line follows the section's last line even when it ended the
        // file without a newline.
        let added_next = i == last && !found;
        out.push_str(if added_next && l.eol.is_empty() {
            eol
        } else {
            l.eol
        });
    }
    if !found {
        out.push_str(&format!("{key} = {value}"));
        out.push_str(if old[last].eol.is_empty() { "" } else { eol });
    }
    out.push_str(&join(&old[last + 1..]));
    Some(out)
}

/// `line` (`key = value`) with its value replaced by `value`: what comes before
/// the value (key, spacing, `=`, spacing) and the spacing after it are kept.
fn replace_value(line: &str, value: &str) -> String {
    let Some((head, tail)) = line.split_once('=') else {
        return line.to_string();
    };
    let trimmed = tail.trim();
    let (lead, trail) = if trimmed.is_empty() {
        (tail, "")
    } else {
        let lead_len = tail.len() - tail.trim_start().len();
        let trail_len = tail.len() - tail.trim_end().len();
        (&tail[..lead_len], &tail[tail.len() - trail_len..])
    };
    format!("{head}={lead}{value}{trail}")
}

/// The value of `key` in extension `n`'s section (the last line that sets it),
/// trimmed as the daemon reads it.
pub fn get_key(text: &str, n: u16, key: &str) -> Option<String> {
    let old = lines(text);
    let (start, last) = span(&old, n)?;
    old[start + 1..=last]
        .iter()
        .filter(|l| matches!(l.kind(), Kind::Property(k) if k.eq_ignore_ascii_case(key)))
        .filter_map(|l| l.text.split_once('=').map(|(_, v)| v.trim().to_string()))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "\
; Coventry at the Old Mill
[server]
listen = 0.0.0.0:5060   
realm = mill

# the office
[21]
secret = correct-horse
display = Reception

; The lobby phone.
[25]
secret =lobby
  ; its lines
lines = 2

; end of file
";

    #[test]
    fn add_goes_in_number_order_and_keeps_every_other_byte() {
        let out = add_section(CONF, 23, &[("secret", "S3cret"), ("display", "Bob")]).expect("new");
        let want = CONF.replace(
            "; The lobby phone.\n[25]",
            "[23]\nsecret = S3cret\ndisplay = Bob\n\n; The lobby phone.\n[25]",
        );
        assert_eq!(out, want);
        assert_eq!(extensions(&out), vec![21, 23, 25]);
        // Round trip: removing it gives the file back, byte for byte.
        assert_eq!(remove_section(&out, 23).as_deref(), Some(CONF));
        assert!(add_section(CONF, 21, &[]).is_none(), "exists");
    }

    #[test]
    fn add_at_the_end_and_after_a_last_line_without_newline() {
        let out = add_section(CONF, 30, &[("secret", "x")]).expect("new");
        assert_eq!(out, format!("{CONF}\n[30]\nsecret = x\n"));
        assert_eq!(remove_section(&out, 30).as_deref(), Some(CONF));
        let bare = "[server]\nrealm = mill";
        let out = add_section(bare, 30, &[("secret", "x")]).expect("new");
        assert_eq!(out, "[server]\nrealm = mill\n\n[30]\nsecret = x\n");
        assert_eq!(
            add_section("", 30, &[("secret", "x")]).as_deref(),
            Some("[30]\nsecret = x\n")
        );
        // A section at the very end, without newline, then removed.
        let text = "[server]\nrealm = mill\n\n[30]\nsecret = x";
        assert_eq!(
            remove_section(text, 30).as_deref(),
            Some("[server]\nrealm = mill\n")
        );
        let out = set_key(text, 30, "secret", "y").expect("set");
        assert_eq!(out, "[server]\nrealm = mill\n\n[30]\nsecret = y");
        let out = set_key(text, 30, "display", "Ann").expect("set");
        assert_eq!(
            out,
            "[server]\nrealm = mill\n\n[30]\nsecret = x\ndisplay = Ann"
        );
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let crlf = CONF.replace('\n', "\r\n");
        let out = add_section(&crlf, 23, &[("secret", "s")]).expect("new");
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        assert!(out.contains("\r\n[23]\r\nsecret = s\r\n\r\n; The lobby phone."));
        assert_eq!(remove_section(&out, 23).as_deref(), Some(crlf.as_str()));
        let out = set_key(&crlf, 25, "secret", "new").expect("set");
        assert_eq!(out, crlf.replace("secret =lobby", "secret =new"));
        let out = set_key(&crlf, 25, "display", "Lobby").expect("set");
        assert_eq!(
            out,
            crlf.replace("lines = 2\r\n", "lines = 2\r\ndisplay = Lobby\r\n")
        );
    }

    #[test]
    fn set_key_keeps_the_spacing_and_touches_nothing_else() {
        let out = set_key(CONF, 21, "secret", "battery-staple").expect("set");
        assert_eq!(
            out,
            CONF.replace("secret = correct-horse", "secret = battery-staple")
        );
        let out = set_key(CONF, 25, "SECRET", "x").expect("set");
        assert_eq!(out, CONF.replace("secret =lobby", "secret =x"));
        let odd = "[21]\n\tSecret\t=  old  \n";
        assert_eq!(
            set_key(odd, 21, "secret", "new").as_deref(),
            Some("[21]\n\tSecret\t=  new  \n")
        );
        let bare = "[21]\nsecret=old\n";
        assert_eq!(
            set_key(bare, 21, "secret", "new").as_deref(),
            Some("[21]\nsecret=new\n")
        );
        // Added after the last property, not after the comments that follow it.
        let out = set_key(CONF, 21, "lines", "2").expect("set");
        assert_eq!(
            out,
            CONF.replace("display = Reception\n", "display = Reception\nlines = 2\n")
        );
        // An empty section gets its first key under the header.
        let empty = "[21]\n; nothing yet\n\n[22]\nsecret = b\n";
        assert_eq!(
            set_key(empty, 21, "secret", "a").as_deref(),
            Some("[21]\nsecret = a\n; nothing yet\n\n[22]\nsecret = b\n")
        );
        assert!(set_key(CONF, 22, "secret", "x").is_none());
        assert_eq!(get_key(CONF, 25, "secret").as_deref(), Some("lobby"));
        assert_eq!(get_key(CONF, 21, "lines"), None);
    }

    #[test]
    fn odd_whitespace_and_numbers_are_read_as_the_daemon_reads_them() {
        let text = "  [ 021 ]  \r\nsecret = a\n[server]\n[1234]\n";
        assert_eq!(extensions(text), vec![21]);
        assert!(has_section(text, 21) && !has_section(text, 1234));
        assert_eq!(
            remove_section(text, 21).as_deref(),
            Some("[server]\n[1234]\n")
        );
        // Keys of the next section are not the removed one's.
        let text = "[21]\nsecret = a\n[22]\nsecret = b\n";
        assert_eq!(
            remove_section(text, 21).as_deref(),
            Some("[22]\nsecret = b\n")
        );
        assert_eq!(
            set_key(text, 22, "secret", "c").as_deref(),
            Some("[21]\nsecret = a\n[22]\nsecret = c\n")
        );
    }

    #[test]
    fn removing_keeps_the_comments_around_a_section() {
        let out = remove_section(CONF, 21).expect("removed");
        assert_eq!(
            out,
            CONF.replace("[21]\nsecret = correct-horse\ndisplay = Reception\n", "")
        );
        assert!(out.contains("# the office\n\n; The lobby phone."));
        let out = remove_section(CONF, 25).expect("removed");
        // The comment inside [25] goes with it; the one after it stays.
        assert_eq!(
            out,
            CONF.replace("[25]\nsecret =lobby\n  ; its lines\nlines = 2\n", "")
        );
        assert!(remove_section(CONF, 22).is_none());
    }
}
