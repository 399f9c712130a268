//! pbx-message(1), pbx-registry(1), pbx-runstate(1): from the personalities' clap
//! definitions and exit-status tables.

use super::section;
use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;
use pbxctl::legacy::{message, registry, runstate, Tool};

/// What each page says beyond its options: how the tool behaves, examples.
fn notes(tool: Tool) -> &'static str {
    match tool {
        Tool::Message => {
            r#".SH NOTES
The text goes to every phone registered now with
.B \-\-to all
(the default), else to one extension or group; a phone that is not online
gets nothing (texts are not stored). A subject is sent before the text as
.IR "SUBJECT: TEXT" ,
and the whole must fit in 160 characters. The limits are checked before the
switch is asked. This is
.BR pbxctl (1)
invoked through a link named
.BR pbx\-message ;
.B pbxctl message
does the same with pbxctl's options and statuses.
.SH EXAMPLES
.EX
pbx\-message \-\-subject Notice shutdown at 5
pbx\-message \-\-to 11 \-\-quiet "call reception" || echo "not delivered"
.EE
.SH "SEE ALSO"
.BR pbxctl (1),
.BR coventryd (8)
"#
        }
        Tool::Registry => {
            r#".SH NOTES
With USER alone every key is printed as
.IR key = value ,
one per line: name, state (ringing, busy, dnd, forwarded, registered, idle or
offline), registered (yes/no), contacts (how many), contact, user_agent and
expires (seconds) of the first registration, dnd (on/off), forward,
forward_busy and forward_noanswer (a number or off). With KEY only its value is
printed. With KEY and VALUE the key is set through the switch: dnd (on or
off), forward, forward_busy, forward_noanswer (a number, or off to clear).
This is
.BR pbxctl (1)
invoked through a link named
.BR pbx\-registry .
.SH EXAMPLES
.EX
pbx\-registry 11
pbx\-registry 11 forward 12
pbx\-registry \-\-message 11 && pbx\-message \-\-to 11 "your car is ready"
.EE
.SH "SEE ALSO"
.BR pbxctl (1),
.BR coventry.conf (5)
"#
        }
        Tool::Runstate => {
            r#".SH NOTES
Run states are the
.B [runstate NAME]
sections of
.BR coventry.conf (5);
.B day
is the state without overlay. While the switch runs, a new state applies at
once; while it is down, the choice is written to the state directory and
applies when it starts. Scheduled changes are cron's job.
This is
.BR pbxctl (1)
invoked through a link named
.BR pbx\-runstate .
.SH EXAMPLES
A night state in
.IR /etc/coventry.conf ,
on the built\-in extensions:
.PP
.EX
[runstate night]
; calls for 10 ring 11 at night
forward.10 = 11
.EE
.PP
and the cron job that puts it in force:
.PP
.EX
# /etc/cron.d/coventry: night ringing on weekdays from 18:00 to 08:00
0 18 * * 1\-5  coventry  pbx\-runstate night
0 8 * * 1\-5   coventry  pbx\-runstate day
.EE
.SH "SEE ALSO"
.BR pbxctl (1),
.BR coventry.conf (5)
"#
        }
    }
}

/// The page of `tool`.
pub fn render(tool: Tool) -> String {
    let mut cmd = match tool {
        Tool::Message => message::Args::command(),
        Tool::Registry => registry::Args::command(),
        Tool::Runstate => runstate::Args::command(),
    };
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd).section("1");
    let mut page = Roff::new().render();
    let name = tool.name();
    page.push_str(&format!(
        ".TH {} 1 \"\" \"{name} {version}\" \"Coventry Manual\"\n",
        name.to_uppercase().replace('-', "\\-")
    ));
    page.push_str(&section(|w| man.render_name_section(w)));
    page.push_str(&section(|w| man.render_synopsis_section(w)));
    page.push_str(&section(|w| man.render_options_section(w)));
    let mut exit = Roff::new();
    exit.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in tool.exit_codes() {
        exit.control("TP", []);
        exit.text([bold(code.to_string())]);
        exit.text([roman(*meaning)]);
    }
    page.push_str(&exit.to_roff());
    page.push_str(notes(tool));
    page
}
