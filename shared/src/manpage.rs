//! The check every program's man-page test makes: a page generated from the code
//! must match the checked-in file under `man/`, or be rewritten with `UPDATE_MAN=1`.

use std::path::Path;

/// Compare `rendered` with the file at `path`; with `UPDATE_MAN=1` (not `0`) in the
/// environment, write it there instead. The error names the first differing line
/// and the command (`cargo test -p PACKAGE --test man_page`) that regenerates it.
pub fn check_current(path: &Path, rendered: &str, package: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_MAN").is_some_and(|v| !v.is_empty() && v != "0") {
        return std::fs::write(path, rendered).map_err(|e| format!("{}: {e}", path.display()));
    }
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current == rendered {
        return Ok(());
    }
    let line = current
        .lines()
        .zip(rendered.lines())
        .position(|(a, b)| a != b)
        .map_or_else(
            || current.lines().count().min(rendered.lines().count()) + 1,
            |i| i + 1,
        );
    Err(format!(
        "{} is stale (first difference at line {line}): \
         run UPDATE_MAN=1 cargo test -p {package} --test man_page",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_difference() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.1");
        std::fs::write(&path, "a\nb\nc\n").expect("write");
        assert_eq!(check_current(&path, "a\nb\nc\n", "p"), Ok(()));
        let e = check_current(&path, "a\nB\nc\n", "p").expect_err("stale");
        assert!(e.contains("line 2") && e.contains("cargo test -p p"), "{e}");
        let e = check_current(&path, "a\nb\nc\nd\n", "p").expect_err("longer");
        assert!(e.contains("line 4"), "{e}");
    }
}
