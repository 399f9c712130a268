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

/// What goes after clap's script for `shell` so that pbxctl's arguments
/// complete with the switch's live words (bash, zsh and fish; nothing for the
/// others).
pub fn live_words_script(shell: clap_complete::Shell) -> String {
    use clap_complete::Shell;
    match shell {
        Shell::Bash => format!(
            r#"
# Live words from the running switch for the first argument of some commands.
_pbxctl_live() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" sub="" i kind=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in -*) ;; *) sub="${{COMP_WORDS[i]}}"; break ;; esac
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
        ),
        Shell::Fish => format!(
            "\n# Live words from the running switch for the first argument of some commands.\n\
             complete -c pbxctl -n '__fish_seen_subcommand_from {EXT_FIRST}' -f -a '(pbxctl complete exts 2>/dev/null)'\n\
             complete -c pbxctl -n '__fish_seen_subcommand_from message' -f -a '(pbxctl complete targets 2>/dev/null)'\n\
             complete -c pbxctl -n '__fish_seen_subcommand_from runstate' -f -a '(pbxctl complete runstates 2>/dev/null)'\n"
        ),
        _ => String::new(),
    }
}
