//! Project chores, in one place: the generated man pages (`man/coventryd.8`,
//! `pbxctl.1`, `pbx-tui.1`, `pbx-message.1`, `pbx-registry.1`, `pbx-runstate.1`)
//! are rendered here from the programs' definitions and written or checked with
//! `cargo xtask man [--check]`; `tests/man_pages.rs` runs the check.
//! `man/coventry.conf.5` is written by hand and checked against the parser by
//! coventryd's `conf_page` test.

pub mod pages;

use pbxctl::legacy::Tool;
use std::path::{Path, PathBuf};

/// The repository's `man/` directory.
pub fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
}

/// A generated page: its file name in `man/`, its text, and what it must say.
pub struct Page {
    /// File name (`pbxctl.1`).
    pub file: String,
    /// The rendered roff.
    pub text: String,
    /// Strings the page must contain (it must describe, not only exist).
    pub needles: Vec<String>,
}

/// Every generated page.
pub fn pages() -> Vec<Page> {
    let mut out = vec![
        Page {
            file: "coventryd.8".into(),
            text: pages::coventryd::render(),
            needles: strs(pages::coventryd::NEEDLES),
        },
        Page {
            file: "pbxctl.1".into(),
            text: pages::pbxctl::render(),
            needles: strs(pages::pbxctl::NEEDLES),
        },
        Page {
            file: "pbx-tui.1".into(),
            text: pages::pbx_tui::render(),
            needles: strs(pages::pbx_tui::NEEDLES)
                .into_iter()
                .chain(
                    coventry_shared::control::VERBS
                        .iter()
                        .map(|v| format!("\n{v}")),
                )
                .collect(),
        },
    ];
    for tool in Tool::ALL {
        let text = pages::legacy::render(tool);
        out.push(Page {
            file: format!("{}.1", tool.name()),
            needles: tool
                .exit_codes()
                .iter()
                .map(|(c, _)| format!("\\fB{c}\\fR"))
                .collect(),
            text,
        });
    }
    out
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What is wrong with `page` as it stands in `dir`: missing contents, non-ASCII
/// text, or a checked-in file that differs (the first differing line named).
pub fn problems(page: &Page, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for n in &page.needles {
        if !page.text.contains(n.as_str()) {
            out.push(format!("{} lacks {n:?}", page.file));
        }
    }
    if !page.text.is_ascii() {
        out.push(format!("{} is not ASCII (groff warns)", page.file));
    }
    let path = dir.join(&page.file);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != page.text {
        let line = current
            .lines()
            .zip(page.text.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || current.lines().count().min(page.text.lines().count()) + 1,
                |i| i + 1,
            );
        out.push(format!(
            "{} is stale (first difference at line {line}): run cargo xtask man",
            path.display()
        ));
    }
    out
}
