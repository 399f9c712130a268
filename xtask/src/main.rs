//! `cargo xtask man`: write the generated man pages into `man/`;
//! `cargo xtask man --check`: say which are stale (status 1) and write nothing.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    match args.first().map(String::as_str) {
        Some("man") => {}
        _ => {
            eprintln!("usage: cargo xtask man [--check]");
            return ExitCode::from(2);
        }
    }
    let dir = xtask::man_dir();
    let mut failed = false;
    for page in xtask::pages() {
        if check {
            for p in xtask::problems(&page, &dir) {
                eprintln!("{p}");
                failed = true;
            }
        } else if let Err(e) = std::fs::write(dir.join(&page.file), &page.text) {
            eprintln!("{}: {e}", page.file);
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
