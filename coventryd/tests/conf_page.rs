//! The hand-written coventry.conf(5) against the configuration parser: it covers
//! every key the parser accepts, its full example is accepted, the error it quotes
//! is the parser's, and its hashes are right.

use std::path::{Path, PathBuf};

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
}

fn conf_page() -> String {
    std::fs::read_to_string(man_dir().join("coventry.conf.5")).expect("man/coventry.conf.5")
}

/// The page as plain text: roff escapes for dashes, backslashes and zero-width
/// characters undone.
fn unroff(s: &str) -> String {
    s.replace("\\-", "-")
        .replace("\\e", "\\")
        .replace("\\&", "")
        .replace("\\(aq", "'")
        .replace("\\(ga", "`")
}

/// Every key, section and value name in `match` arms of the config parser
/// (`coventryd/src/config/`), e.g.
/// `"noanswer" | "no_answer" =>`, must appear in coventry.conf(5) as a word.
#[test]
fn conf_page_documents_every_key_the_parser_accepts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let mut src = String::new();
    for entry in std::fs::read_dir(&dir).expect("coventryd/src/config/") {
        let path = entry.expect("a file of src/config").path();
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            src += &std::fs::read_to_string(&path).expect("a source file");
        }
    }
    let mut names = Vec::new();
    for line in src.lines() {
        let t = line.trim();
        let Some((pat, _)) = t.split_once("=>") else {
            continue;
        };
        if !t.starts_with('"') {
            continue;
        }
        for alt in pat.split('|') {
            let alt = alt.trim();
            if let Some(name) = alt.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                if !name.is_empty() {
                    names.push(name.to_string());
                }
            }
        }
    }
    assert!(
        names.len() >= 20,
        "found too few keys in src/config/: {names:?}"
    );
    for must in [
        "listen",
        "max_message",
        "noanswer",
        "secret",
        "sha256",
        "lines",
    ] {
        assert!(names.iter().any(|n| n == must), "parser scan missed {must}");
    }
    let page = unroff(&conf_page());
    let words: std::collections::HashSet<&str> = page
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !words.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "coventry.conf.5 does not mention {missing:?}"
    );
}

/// Text between `.EX` and `.EE` in the page.
fn examples(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in page.lines() {
        match (line.trim(), cur.as_mut()) {
            (".EX", None) => cur = Some(String::new()),
            (".EE", Some(_)) => out.extend(cur.take()),
            (_, Some(c)) => {
                c.push_str(&unroff(line));
                c.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The full example in coventry.conf(5) is accepted by the real parser, and the
/// documented error message is the one the parser gives.
#[test]
fn conf_page_examples_are_right() {
    use coventryd::config::Config;
    let page = conf_page();
    let ex = examples(&page);
    let full = ex
        .iter()
        .find(|e| e.contains("[server]") && e.contains("[groups]"))
        .expect("a full example with [server] and [groups]");
    let c = Config::parse(Path::new("/etc/coventry.conf"), full)
        .unwrap_or_else(|e| panic!("the example in coventry.conf.5 is invalid: {e}\n{full}"));
    assert!(!c.lines.is_empty() && !c.groups.is_empty());

    let bad = ex
        .iter()
        .find(|e| e.starts_with("[server]\ndigits = 2\n\n[21]"))
        .expect("the error example");
    let err = Config::parse(Path::new("/etc/coventry.conf"), bad).expect_err("invalid");
    let plain = unroff(&page);
    assert!(
        plain.contains(&err.to_string()),
        "coventry.conf.5 should quote the parser's message: {err}"
    );
}

/// The hashes shown in coventry.conf(5) are SHA-256 and MD5 of `21:coventry:correct-horse`.
#[test]
fn conf_page_hashes_are_right() {
    use md5::Digest as _;
    let input = b"21:coventry:correct-horse";
    let sha = hex(&sha2::Sha256::digest(input));
    let md = hex(&md5::Md5::digest(input));
    let page = conf_page();
    assert!(page.contains(&sha), "SHA-256 example should be {sha}");
    assert!(page.contains(&md), "MD5 example should be {md}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
