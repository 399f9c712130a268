//! pbx-tui(1): from pbx-tui's clap definition, its key table (`keymap::KEYS`, the
//! same table as the help screen) and the grid letters.

use super::section;
use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;
use coventry_shared::stateblock::Lamp;
use pbx_tui::keymap::KEYS;

/// A key label in roff: arrows as groff glyphs, hyphens escaped.
fn roff_key(key: &str) -> String {
    key.replace('-', "\\-")
        .replace('\u{2190}', "\\(<-")
        .replace('\u{2193}', "\\(da")
        .replace('\u{2191}', "\\(ua")
        .replace('\u{2192}', "\\(->")
}

fn roff_text(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// The usage line of every verb the daemon knows, from its own parser (an empty
/// argument list earns the usage; for a verb that is complete without
/// arguments, a stray one does), so a new verb shows up here by itself.
fn grammar() -> String {
    use coventry_shared::control::{ParseError, Request, VERBS};
    let mut s = String::new();
    for verb in VERBS {
        let usage = match (
            Request::parse(verb.as_bytes()),
            Request::parse(format!("{verb} ?").as_bytes()),
        ) {
            (Err((_, ParseError::Usage(u))), _) | (Ok(_), Err((_, ParseError::Usage(u)))) => {
                u.to_string()
            }
            _ => verb.to_string(),
        };
        s.push_str(&roff_text(&usage));
        s.push('\n');
    }
    s
}

/// The KEYS section, from the table the help screen shows.
fn keys_section() -> String {
    let mut s = String::from(".SH KEYS\n");
    for (topic, keys) in KEYS {
        s.push_str(&format!(".SS \"{topic}\"\n"));
        for (key, what) in keys.iter() {
            s.push_str(&format!(".TP\n.B {}\n{}\n", roff_key(key), roff_text(what)));
        }
    }
    s
}

/// The grid letters, from the code that draws them.
fn letters() -> String {
    let mut s = String::new();
    for st in Lamp::ALL {
        s.push_str(&format!(
            ".TP\n.B {}\n{}\n",
            roff_key(&st.letter().to_string()),
            roff_text(st.name())
        ));
    }
    s
}

const SCREEN_HEAD: &str = r##".SH SCREEN
From top to bottom:
.TP
.B header
The switch's condition (\fBup\fR with its uptime, \fBSTALE\fR, \fBDOWN\fR), registered
of configured extensions, live calls, the upstream when one is configured
(\fBupstream ok\fR, or the first route that is not connected:
\fBupstream emergency retrying\fR), the daemon's pid and address, and the time.
.TP
.B banner
Only when something is wrong: the daemon is down (no state block, or its process is
gone) or not responding (its heartbeat is more than 3 seconds old).
The last known state stays on the screen below it, and the console keeps looking
for the daemon: when a new one starts (or the old one answers again) the banner goes
and the log says so.
.TP
.B grid
Every extension of the dial plan, ten to a row: its number and a letter, coloured by
state.
The selected extension is marked \fB>\fR and drawn in reverse video.
All 80 extensions of the 2\-digit plan fit on an 80x24 screen; the 3\-digit plan is
shown a page of rows at a time (the page holding the selection; \fB[\fR and \fB]\fR move
by a hundred).
The letters, in order of priority:
"##;

const SCREEN_TAIL: &str = r##".TP
.B detail
The selected extension: name, state, how many of its lines are registered, its
forwards and do-not-disturb (with the time they revert, if any), its calls, and every
registered contact with its expiry countdown, user agent and source address.
.TP
.B calls
Live calls (and calls that ended in the last seconds): call number, caller, callee as
dialled, state with the rings so far, and the duration (talk time once answered).
.TP
.B log
Registrations, calls, messages with their text, command results, failed
authentications, warnings and the console's own notes, newest at the bottom.
Text that came from phones (messages, user agents) is shown with control characters
replaced, so it cannot change the terminal.
.TP
.B trace
In the log's place while \fBT\fR has it open: the live SIP trace of the selected
extension, one line per message (time, direction, peer, transport, method or
status, Call\-ID, CSeq), as \fBpbxctl trace\fR shows it.
When the switch stops or restarts, a line says so and the trace goes on with the
new switch (with a new lease), and another line says when it does.
.TP
.B status line
The result of the last action, as the daemon answered it, or the question being
asked.
.TP
.B hints
The keys that work now.
"##;

const ACTIONS: &str = r##".SH ACTIONS
Every action goes to the daemon as one line on its control FIFO, with a request id;
the status line then shows the daemon's result for that id (ok, or the reason it
failed), or says so when none comes within 5 seconds.
Hanging up, releasing and messaging all extensions ask for \fBy\fR first.
With \fB\-\-readonly\fR all of them are refused and nothing is written to the FIFO.
.PP
The \fB:\fR command line takes the commands of \fBpbxctl\fR(1) that change something,
with the daemon's own grammar:
.PP
.EX
@GRAMMAR@.EE
.PP
Tab completes the verb, then extension numbers, call numbers and keywords where the
verb expects them.
\fBhelp\fR shows the keys, \fBquit\fR leaves.
"##;

const TAIL: &str = r##".SH SIGNALS
.TP
.B SIGTERM, SIGHUP, SIGINT, SIGQUIT
End the console at once, whatever is on the screen (a prompt, a confirmation, the
help, the command line, a command awaiting its result, a banner for a daemon that is
down): the terminal is put back as it was, where it still exists, and the exit status
is 128 plus the signal's number.
Should the console not have finished half a second later (its terminal stopped taking
output, as over a stalled SSH link), it puts the terminal modes back and ends anyway,
with the same status.
.TP
.B SIGWINCH
The terminal changed size: the screen is drawn again to fit.
.PP
The console ends with its terminal.
When the terminal goes away (the SSH connection drops, the tmux session is killed)
the console ends at once, on whichever it sees first: the SIGHUP the hang-up brings
(status 129), or reading the terminal giving end-of-file or an error (status 1, with
a word on standard error); it never keeps running without a terminal.
In the console's raw mode Ctrl\-C is a key (quit, or cancel what is being typed),
not SIGINT.
.SH "EXIT STATUS"
.TP
.B 0
The operator quit.
.TP
.B 1
The console could not run (no terminal, a terminal error), or its terminal went
away (end-of-file or an error reading it).
.TP
.B 129, 130, 131, 143
A signal ended it: SIGHUP, SIGINT, SIGQUIT, SIGTERM (128 plus its number).
.PP
The terminal is restored on every exit, and on a panic.
A missing or stopped daemon is not an error: the console waits for it.
.SH ENVIRONMENT
.TP
.B COVENTRY_RUNTIME_DIR
The runtime directory, as \fB\-\-runtime\-dir\fR (which takes precedence).
.TP
.B XDG_RUNTIME_DIR
Without the two above, a user other than root finds the daemon in
\fI$XDG_RUNTIME_DIR/coventry\fR, or in \fI/tmp/coventry\-$UID\fR when it is not set.
.TP
.B NO_COLOR
When set to a non-empty value, no colour (as \fB\-\-no\-color\fR); so does
\fBTERM=dumb\fR.
.TP
.B TZ
The time zone of the times shown.
.SH FILES
.TP
.I /run/coventry/state
The state block, read (never mapped, so a truncated file is reported as the
daemon being down) every \fB\-\-poll\-ms\fR
milliseconds; the console redraws only when what it shows changed (and once a second
for the clocks), and only the characters that changed are sent to the terminal.
.TP
.I /run/coventry/control
The control FIFO, opened without blocking for each action.
.PP
Both live in the runtime directory (\fI/run/coventry\fR for root); see
\fB\-\-runtime\-dir\fR.
Reading them needs membership in the daemon's group.
.PP
Neither is used unless it may be trusted: the runtime directory must be a real
directory (not a symbolic link) that neither its group nor others may write to, owned
by you, by root, or by another user (the daemon's service account) when its parent
directory belongs to root and nobody else may write there \- as
.BR systemd (1)
makes a service's \fBRuntimeDirectory=\fR \- so that only root could have made it. A
directory of another user under \fI/tmp\fR is refused. The state block must be a
regular file and the FIFO a FIFO, neither a link, both owned by the directory's
owner. A refusal is shown in the banner, as when the daemon is down.
.SH EXAMPLES
.EX
pbx\-tui
pbx\-tui \-\-readonly
ssh pbx.example.org \-t pbx\-tui
NO_COLOR=1 pbx\-tui \-\-runtime\-dir /tmp/coventry\-test/run
.EE
.SH "SEE ALSO"
.BR pbxctl (1),
.BR coventryd (8),
.BR coventry.conf (5)
"##;

/// pbx-tui(1).
pub fn render() -> String {
    let mut cmd = pbx_tui::cli::Cli::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone()).section("1");
    let mut page = Roff::new().render();
    page.push_str(&format!(
        ".TH PBX\\-TUI 1 \"\" \"pbx-tui {version}\" \"Coventry Manual\"\n"
    ));
    page.push_str(&section(|w| man.render_name_section(w)));
    page.push_str(&section(|w| man.render_synopsis_section(w)));
    page.push_str(&section(|w| man.render_description_section(w)));
    page.push_str(&section(|w| man.render_options_section(w)));
    page.push_str(SCREEN_HEAD);
    page.push_str(&letters());
    page.push_str(SCREEN_TAIL);
    page.push_str(&keys_section());
    page.push_str(&ACTIONS.replace("@GRAMMAR@", &grammar()));
    let mut note = Roff::new();
    note.control("PP", []);
    note.text([
        roman("Keys are shown on the screen too: "),
        bold("?"),
        roman(" opens the same list."),
    ]);
    page.push_str(&note.to_roff());
    page.push_str(TAIL);
    page.push_str(&section(|w| man.render_version_section(w)));
    page
}

/// What the page must say, not only exist.
pub const NEEDLES: &[&str] = &[
    ".SH KEYS",
    ".SH SCREEN",
    ".SH \"EXIT STATUS\"",
    ".SH SIGNALS",
    "\\-\\-readonly",
    "NO_COLOR",
    "\\(<-",
    ".SS \"Command line\"",
];
