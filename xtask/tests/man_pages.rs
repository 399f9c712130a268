//! The man pages in `man/` are current (what `cargo xtask man` would write), say
//! what they must, and render with groff without a warning.

use std::path::PathBuf;

#[test]
fn generated_man_pages_are_current() {
    let dir = xtask::man_dir();
    let problems: Vec<String> = xtask::pages()
        .iter()
        .flat_map(|p| xtask::problems(p, &dir))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_page_renders_without_warnings() {
    let pages: Vec<PathBuf> = std::fs::read_dir(xtask::man_dir())
        .expect("man/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| ["1", "5", "8"].iter().any(|s| x == *s))
        })
        .collect();
    assert!(pages.len() >= 7, "expected the seven pages, got {pages:?}");
    let Ok(probe) = std::process::Command::new("groff")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: groff is not installed");
        return;
    };
    assert!(probe.status.success());
    for page in pages {
        let o = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .expect("groff");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && err.is_empty(),
            "{}: {err}",
            page.display()
        );
    }
}
