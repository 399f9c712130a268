//! Shell completion: clap's scripts for the commands and options, and on top of
//! them live words from the running switch (extension and group numbers, run
//! states) for the arguments that take them, through `pbxctl complete KIND`.

use crate::cli::CompleteKind;
use crate::daemon;
use coventry_shared::client::view;
use std::io::Write;
use std::path::Path;

/// The subcommands whose first argument is an extension.
const EXT_FIRST: &str = "forward dnd release why dial regs calls hangup";

/// The words of `kind` from the switch in `dir`, one a line; nothing (and no
/// error: a shell is completing) when it cannot be read.
pub fn words(dir: &Path, kind: CompleteKind) -> Vec<String> {
    let Ok(snap) = daemon::open_state(dir).and_then(|r| daemon::snapshot(&r)) else {
        return Vec::new();
    };
    let exts = || {
        view::extensions(&snap)
            .into_iter()
            .filter(|e| e.configured)
            .map(|e| e.number.to_string())
            .collect::<Vec<_>>()
    };
    let groups = || {
        view::group_numbers(&snap)
            .into_iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
    };
    match kind {
        CompleteKind::Exts => exts(),
        CompleteKind::Groups => groups(),
        CompleteKind::Runstates => view::runstate_names(&snap),
        CompleteKind::Targets => {
            let mut all = exts();
            all.extend(groups());
            all.push("all".to_string());
            all
        }
    }
}

/// Print the words of `kind`.
pub fn print_words(dir: &Path, kind: CompleteKind) {
    let mut out = std::io::stdout().lock();
    for w in words(dir, kind) {
        if writeln!(out, "{w}").is_err() {
            return;
        }
    }
}

/// clap's completion script for pbxctl in `shell` (`clap`), with pbxctl's
/// arguments completing the switch's live words on top (bash, zsh and fish;
/// the others get clap's script as it is).
pub fn with_live_words(shell: clap_complete::Shell, clap: String) -> String {
    use clap_complete::Shell;
    match shell {
        Shell::Bash => clap + &bash_live(),
        Shell::Fish => clap + &fish_live(),
        Shell::Zsh => zsh_with_live(&clap).unwrap_or(clap),
        _ => clap,
    }
}

/// bash: a function in front of clap's `_pbxctl` that answers the live words
/// itself and hands everything else to clap's.
fn bash_live() -> String {
    format!(
        r#"
# Live words from the running switch for the first argument of some commands.
_pbxctl_live() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" sub="" i kind=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --runtime-dir|--timeout) i=$((i + 1)) ;;
            -*) ;;
            *) sub="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    if [[ "$cur" != -* && -n "$sub" && $COMP_CWORD -eq $((i + 1)) ]]; then
        case " {EXT_FIRST} " in *" $sub "*) kind=exts ;; esac
        [[ "$sub" == message ]] && kind=targets
        [[ "$sub" == runstate ]] && kind=runstates
    fi
    if [[ -n "$kind" ]]; then
        COMPREPLY=($(compgen -W "$(pbxctl complete "$kind" 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _pbxctl "$@"
}}
complete -F _pbxctl_live -o bashdefault -o default pbxctl
"#
    )
}

/// fish: conditions on the subcommand, each asking `pbxctl complete`.
fn fish_live() -> String {
    format!(
        "\n# Live words from the running switch for the first argument of some commands.\n\
         complete -c pbxctl -n '__fish_seen_subcommand_from {EXT_FIRST}' -f -a '(pbxctl complete exts 2>/dev/null)'\n\
         complete -c pbxctl -n '__fish_seen_subcommand_from message' -f -a '(pbxctl complete targets 2>/dev/null)'\n\
         complete -c pbxctl -n '__fish_seen_subcommand_from runstate' -f -a '(pbxctl complete runstates 2>/dev/null)'\n"
    )
}

/// The line that opens clap's zsh completion function.
const ZSH_CLAP_FN: &str = "\n_pbxctl() {\n";
/// The lines that end clap's zsh script: call the function when autoloaded
/// from `fpath` (as `_pbxctl`), else register it.
const ZSH_TRAILER: &str = "\nif [ \"$funcstack[1]\" = \"_pbxctl\" ]; then";

/// zsh: clap's `_pbxctl` renamed `_pbxctl_clap`, and a `_pbxctl` in front of it
/// that answers the live words itself. The file stays one an `fpath`
/// autoload runs (its last lines call `_pbxctl`). None when clap's script is
/// not shaped as expected (then it is used as it is).
fn zsh_with_live(clap: &str) -> Option<String> {
    let trailer = clap.rfind(ZSH_TRAILER)?;
    let (body, end) = clap.split_at(trailer);
    if body.matches(ZSH_CLAP_FN).count() != 1 {
        return None;
    }
    let body = body.replacen(ZSH_CLAP_FN, "\n_pbxctl_clap() {\n", 1);
    let live = format!(
        r#"
# Live words from the running switch for the first argument of some commands;
# everything else is clap's (_pbxctl_clap).
_pbxctl() {{
    local sub="" i kind=""
    for ((i = 2; i < CURRENT; i++)); do
        case "${{words[i]}}" in
            --runtime-dir|--timeout) i=$((i + 1)) ;;
            -*) ;;
            *) sub="${{words[i]}}"; break ;;
        esac
    done
    if [[ "${{words[CURRENT]}}" != -* && -n "$sub" && $CURRENT -eq $((i + 1)) ]]; then
        case " {EXT_FIRST} " in *" $sub "*) kind=exts ;; esac
        [[ "$sub" == message ]] && kind=targets
        [[ "$sub" == runstate ]] && kind=runstates
    fi
    if [[ -n "$kind" ]]; then
        local -a live
        live=(${{(f)"$(pbxctl complete $kind 2>/dev/null)"}})
        compadd -a live
        return
    fi
    _pbxctl_clap "$@"
}}
"#
    );
    Some(body + &live + end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn clap_script(shell: clap_complete::Shell) -> String {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut crate::cli::Cli::command(), "pbxctl", &mut text);
        String::from_utf8(text).expect("clap writes UTF-8")
    }

    #[test]
    fn zsh_script_wraps_clap_function_and_keeps_its_autoload_trailer() {
        let script = with_live_words(
            clap_complete::Shell::Zsh,
            clap_script(clap_complete::Shell::Zsh),
        );
        assert!(script.starts_with("#compdef pbxctl"), "{script}");
        assert_eq!(script.matches("\n_pbxctl_clap() {\n").count(), 1);
        assert_eq!(script.matches("\n_pbxctl() {\n").count(), 1);
        let live = script.find("\n_pbxctl() {\n");
        assert!(
            live < script.rfind(ZSH_TRAILER),
            "defined before the trailer calls it"
        );
        assert!(script.contains("pbxctl complete $kind"));
    }
}
