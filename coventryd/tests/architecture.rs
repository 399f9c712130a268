//! docs/ARCHITECTURE.md against the code, as the man pages are: every file and
//! folder it names exists, every `Type::item` and `module::item` it names is
//! defined, the numbers it gives are the constants', and no source file
//! outgrows the limit it states.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md")
}

/// Every file and folder of the repository (paths relative to its root, with
/// `/` at the end of folders), build output and git aside.
fn tree() -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder of the repository") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name == "target" || name.starts_with('.') {
                continue;
            }
            let rel = path
                .strip_prefix(root())
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                todo.push(path);
            } else {
                out.push(rel);
            }
        }
    }
    out
}

/// The Rust sources of the repository, with their paths.
fn sources(tree: &[String]) -> Vec<(String, String)> {
    tree.iter()
        .filter(|p| p.ends_with(".rs"))
        .map(|p| {
            let text = std::fs::read_to_string(root().join(p)).expect("a source file");
            (p.clone(), text)
        })
        .collect()
}

/// The code spans of the page.
fn spans(page: &str) -> Vec<&str> {
    page.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_file_and_folder_it_names_exists() {
    let tree = tree();
    let mut missing = Vec::new();
    for span in spans(&architecture()) {
        for word in span.split_whitespace() {
            let is_path = word.ends_with(".rs") || (word.ends_with('/') && word.len() > 1);
            if !is_path || word.starts_with('/') {
                continue; // `/commands` is a console command, not a path
            }
            // Named from its crate or folder: a suffix of a real path.
            let found = tree
                .iter()
                .any(|p| p == word || p.ends_with(&format!("/{word}")));
            if !found {
                missing.push(word.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names {missing:?}, which do not exist"
    );
}

/// Whether `name` is defined in `text`: an item, a field, a variant or a
/// module.
fn defines(text: &str, name: &str) -> bool {
    let kinds = [
        "fn",
        "struct",
        "enum",
        "const",
        "static",
        "type",
        "trait",
        "mod",
        "macro_rules!",
    ];
    text.lines().any(|line| {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub(super) "))
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        let t = t.strip_prefix("async ").unwrap_or(t);
        let item = kinds.iter().any(|k| {
            t.strip_prefix(k)
                .and_then(|r| r.strip_prefix(' '))
                .is_some_and(|r| {
                    r.strip_prefix(name).is_some_and(|after| {
                        !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
        });
        // A field (`name: Type`) or a variant (`Name,`, `Name {`, `Name(`).
        let member = t.strip_prefix(name).is_some_and(|after| {
            after.starts_with(':') && !after.starts_with("::")
                || after.starts_with(',')
                || after.starts_with(" {")
                || after.starts_with('(')
        });
        item || member
    })
}

#[test]
fn every_item_it_names_is_defined() {
    let tree = tree();
    let sources = sources(&tree);
    let mut missing = Vec::new();
    for span in spans(&architecture()) {
        for word in span.split_whitespace() {
            if !word.contains("::") || word.contains(['<', '"', '=']) {
                continue;
            }
            let word = word.split('(').next().unwrap_or(word);
            let Some(last) = word.split("::").filter(|p| !p.is_empty()).last() else {
                continue;
            };
            // A module is a file or a folder; an item is defined somewhere.
            let module = tree
                .iter()
                .any(|p| p.ends_with(&format!("/{last}.rs")) || p.ends_with(&format!("/{last}/")));
            if !module && !sources.iter().any(|(_, text)| defines(text, last)) {
                missing.push(word.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names {missing:?}, defined nowhere"
    );
}

#[test]
fn the_numbers_it_gives_are_the_constants() {
    use coventry_shared::{control, stateblock};
    let page = architecture()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let said = [
        format!(
            "at most {} bytes with its newline (`control::MAX_LINE`)",
            control::MAX_LINE
        ),
        format!(
            "(at most {} bytes, `control::MAX_FRAME`",
            control::MAX_FRAME
        ),
        format!(
            "a partial line that waits {} s for its newline",
            control::PARTIAL_LINE_TIMEOUT_MS / 1000
        ),
        format!("a {}-byte header", stateblock::HEADER_SIZE),
        format!(
            "a ring of {} event slots of {} bytes",
            stateblock::RING_SLOTS,
            std::mem::size_of::<coventry_shared::event::EventSlot>()
        ),
        format!("{} fixed slots", stateblock::trace::SLOTS),
        format!("a {} ms tick", coventryd::shell::app::TICK.as_millis()),
    ];
    let wrong: Vec<&String> = said
        .iter()
        .filter(|s| !page.to_lowercase().contains(&s.to_lowercase()))
        .collect();
    assert!(wrong.is_empty(), "ARCHITECTURE.md does not say {wrong:#?}");
}

/// The limit the page states for a source file, in lines.
fn line_limit(page: &str) -> usize {
    let page = page.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, after) = page
        .split_once("No source file of the programs is longer than ")
        .expect("ARCHITECTURE.md states the line limit");
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.replace(',', "").parse().ok())
        .expect("a number of lines")
}

#[test]
fn no_source_file_outgrows_the_stated_limit() {
    let limit = line_limit(&architecture());
    let programs = [
        "coventryd/src/",
        "pbxctl/src/",
        "pbx-tui/src/",
        "shared/src/",
    ];
    let long: Vec<(String, usize)> = sources(&tree())
        .into_iter()
        .filter(|(p, _)| programs.iter().any(|d| p.starts_with(d)))
        .filter(|(p, _)| !p.ends_with("/tests.rs"))
        .map(|(p, text)| (p, text.lines().count()))
        .filter(|(_, n)| *n > limit)
        .collect();
    assert!(
        long.is_empty(),
        "longer than the {limit} lines ARCHITECTURE.md allows: {long:?}"
    );
}
