//! pbxctl(1): from pbxctl's clap definition, its exit-status table and the
//! sections below.

use super::section;
use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

fn paragraphs(roff: &mut Roff, text: &str) {
    for (i, para) in text.split("\n\n").enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(para.split_whitespace().collect::<Vec<_>>().join(" "))]);
    }
}

/// The value name of an option that takes a value (`N` of `--count N`).
fn value_name(a: &clap::Arg) -> Option<String> {
    if !a.get_num_args().is_some_and(|r| r.takes_values()) {
        return None;
    }
    a.get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
}

/// The COMMANDS section: each subcommand with its synopsis, description and own
/// arguments (the global options are described once, above); a command with
/// commands of its own (`ext`) first with its options, then each of those.
fn commands_section(cmd: &clap::Command) -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    let top: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        command_entry(&mut roff, &top, &[], sub);
        let own: Vec<&str> = sub
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !top.contains(id))
            .collect();
        for inner in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut seen = top.clone();
            seen.extend(&own);
            command_entry(&mut roff, &seen, &[sub.get_name()], inner);
        }
    }
    roff.to_roff()
}

/// One command's entry: `.SS`, synopsis, alias, description, arguments (those
/// not in `described`, the options of the commands above it).
fn command_entry(roff: &mut Roff, described: &[&str], parents: &[&str], sub: &clap::Command) {
    let args: Vec<&clap::Arg> = sub
        .get_arguments()
        .filter(|a| {
            !described.contains(&a.get_id().as_str()) && a.get_id() != "help" && !a.is_hide_set()
        })
        .collect();
    let mut name = parents.join(" ");
    if !name.is_empty() {
        name.push(' ');
    }
    name.push_str(sub.get_name());
    roff.control("SS", [name.as_str()]);
    let mut synopsis = vec![
        bold("pbxctl"),
        roman(" ["),
        italic("global options"),
        roman("] "),
    ];
    for p in parents {
        synopsis.push(bold(*p));
        synopsis.push(roman(" ["));
        synopsis.push(italic(format!("{p} options")));
        synopsis.push(roman("] "));
    }
    synopsis.push(bold(sub.get_name()));
    for a in args.iter().filter(|a| !a.is_positional()) {
        let long = a.get_long().expect("options are long");
        synopsis.push(roman(" ["));
        synopsis.push(bold(format!("--{long}")));
        if let Some(v) = value_name(a) {
            synopsis.push(roman(" "));
            synopsis.push(italic(v.as_str()));
        }
        synopsis.push(roman("]"));
    }
    for a in args.iter().filter(|a| a.is_positional()) {
        let name = a
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| a.get_id().to_string(), |v| v.to_string());
        let many = a.get_num_args().is_some_and(|r| r.max_values() > 1);
        let dots = if many { "..." } else { "" };
        synopsis.push(roman(" "));
        if a.is_required_set() {
            synopsis.push(italic(name));
            synopsis.push(roman(dots));
        } else {
            synopsis.push(roman("["));
            synopsis.push(italic(name));
            synopsis.push(roman(format!("]{dots}")));
        }
    }
    if sub.has_subcommands() {
        synopsis.push(roman(" "));
        synopsis.push(italic("COMMAND"));
    }
    roff.text(synopsis);
    if let Some(alias) = sub.get_visible_aliases().next() {
        roff.control("br", []);
        roff.text([roman("(also: "), bold(alias), roman(")")]);
    }
    roff.control("PP", []);
    let about = sub
        .get_long_about()
        .or_else(|| sub.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    paragraphs(roff, &about);
    for a in &args {
        roff.control("TP", []);
        let mut head = Vec::new();
        if let Some(long) = a.get_long() {
            head.push(bold(format!("--{long}")));
            if let Some(v) = value_name(a) {
                head.push(roman(" "));
                head.push(italic(v.as_str()));
            }
        } else {
            let name = a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| a.get_id().to_string(), |v| v.to_string());
            head.push(italic(name));
        }
        roff.text(head);
        let help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(|s| s.to_string())
            .unwrap_or_default();
        roff.text([roman(help)]);
    }
}

const JSON_SECTION: &str = r##".SH "JSON OUTPUT"
With \fB\-\-json\fR every command prints JSON on standard output: one object
(\fBstatus\fR and the commands sent to the daemon), one array
(\fBregs\fR, \fBcalls\fR, \fBexts\fR), or one object per line (\fBwatch\fR).
Times are milliseconds since the Unix epoch.
Errors still go to standard error as text, and the exit status tells what happened.
.TP
.B status
\fBstate\fR ("running", "stale" or "gone"), \fBrunning\fR, \fBstale\fR, \fBpid\fR,
\fBstart_ms\fR, \fBuptime_s\fR, \fBdigits\fR, \fBplan\fR, \fBbound\fR, \fBrealm\fR,
\fBheartbeat_ms\fR, \fBheartbeat_age_ms\fR, \fBregistered\fR, \fBconfigured\fR,
\fBevents\fR (events written so far) and \fBcounters\fR, an object of the daemon's
counters (\fBsip_in\fR, \fBsip_out\fR, \fBmalformed\fR, \fBtoo_large\fR,
\fBretransmissions\fR, \fBregisters\fR, \fBauth_failures\fR, \fBmessages_delivered\fR,
\fBmessages_failed\fR, \fBcommands_ok\fR, \fBcommands_failed\fR, \fBcalls\fR,
\fBrefused\fR (requests and responses refused at a trust boundary),
\fBdigests_checked\fR (credentials compared with a computed digest),
\fBauth_refused\fR (refused unchecked after failed authentications),
\fBshed\fR (datagrams dropped unread from a source that had used its share while
others waited), \fBkernel_drops\fR (datagrams the kernel dropped before the switch
read them), \fBlimited\fR (requests refused over a party's bound) and
\fBtcp_dropped\fR (SIP messages for upstream peers that could not be sent: no
connection, or more waiting than the connection may hold));
and \fBsettings\fR, an array with one \fB{"ext", "name", "dnd", "dnd_until_ms",
"forward_always", "forward_busy", "forward_noanswer", "forward_until_ms"}\fR object
per extension on do not disturb or with a forward (the same fields as in \fBexts\fR).
.TP
.B regs
An array of \fB{"ext", "name", "contact", "source", "user_agent", "algorithm",
"registered_ms", "expires_ms", "expires_in"}\fR objects, \fBexpires_in\fR in seconds,
\fBalgorithm\fR the digest algorithm the registration authenticated with
("md5" or "sha256"; null when not recorded).
.TP
.B calls
An array of \fB{"call", "from", "to", "state", "ended", "rings", "start_ms",
"answer_ms", "end_ms", "duration_s", "talk_s", "outcome", "status", "call_id"}\fR
objects, live calls first.
\fBstate\fR is \fBdialing\fR, \fBringing\fR, \fBanswered\fR or \fBended\fR;
\fBanswer_ms\fR and \fBend_ms\fR are 0 until the call is answered or ends;
\fBduration_s\fR counts from the start and \fBtalk_s\fR from the answer (0 if never
answered), both up to now or to the end.
\fBoutcome\fR and \fBstatus\fR (the SIP status behind it) are null until the call
ends, then one of \fBcompleted\fR, \fBbusy\fR, \fBno\-answer\fR, \fBrejected\fR,
\fBcancelled\fR, \fBunknown\-number\fR, \fBincomplete\-number\fR,
\fBunavailable\fR, \fBtimed\-out\fR, \fBfailed\fR.
\fBcall_id\fR is the SIP Call-ID (as much of it as the state block keeps).
.TP
.B exts
An array of one \fB{"ext", "name", "state", "configured", "registered", "ringing",
"busy", "dnd", "forwarded", "contacts", "forward_always", "forward_busy",
"forward_noanswer", "dnd_until_ms", "forward_until_ms"}\fR object per extension of the
dial plan (80 or 600), in order: \fBstate\fR is the letter of the grid, \fBcontacts\fR
the number of registered contacts, the forwards their targets (null when not set),
\fBdnd_until_ms\fR when do not disturb and \fBforward_until_ms\fR when the first of
its forwards reverts by itself (null: never), the others true or false.
.TP
.BR hangup ", " release ", " reload ", " forward ", " dnd ", " dial ", " speed ", " why
\fB{"id", "code", "ok", "text", "command"}\fR: the request id, the daemon's result code
(\fBok\fR, \fBbad\-syntax\fR, \fBunknown\-verb\fR, \fBnot\-found\fR, \fBfailed\fR),
whether it is \fBok\fR, the daemon's text and the command as sent (for \fBwhy\fR the
text is the conclusion, and \fBsteps\fR the explanation's steps in order, each from
a typed event of the daemon; for \fBspeed\fR without arguments, \fBdials\fR, one
\fB{"code", "target", "config", "source"}\fR object per speed dial from a typed
event of the daemon: \fBtarget\fR null when cleared, \fBconfig\fR what coventry.conf
says or null, \fBsource\fR \fBconfig\fR, \fBset\fR or \fBcleared\fR).
.TP
.B ext
\fB{"ext", "action", "file", "secret", "reloaded", "ok"}\fR: the extension, \fBadd\fR,
\fBremove\fR or \fBsecret\fR, the file written, the new secret (null for
\fBremove\fR), the daemon's reload result (null when it is not running) and
whether all went well.
.TP
.B message
\fB{"id", "command", "to", "done", "code", "ok", "text", "delivered", "waiting",
"total", "lost", "receipts"}\fR: \fBdone\fR whether the daemon's result came within
\fB\-\-timeout\fR (\fBcode\fR is null when not), \fBok\fR whether every target has the
text, \fBtext\fR the summary line, the counts, \fBlost\fR events overwritten
unread, and \fBreceipts\fR, one \fB{"ext", "result", "status"}\fR object per target,
\fBresult\fR being \fBdelivered\fR, \fBrefused\fR, \fBno\-answer\fR, \fBoffline\fR or
\fBwaiting\fR and \fBstatus\fR the SIP status behind it (null while waiting). The
receipts come from typed events of the daemon (\fBdelivering\fR, then one
\fBmessage\fR per target carrying the command's id), never from its text.
.TP
.B watch
One object per event with \fBseq\fR, \fBtime_ms\fR, \fBkind\fR and the event's fields:
\fBregistered\fR (ext, contact, user_agent), \fBunregistered\fR (ext, contact, why),
\fBmessage\fR (id, from, to, status, text; id is the command's for a text sent by
one, else null), \fBdelivering\fR (id, to, targets, offline: whom a command's text
went to), \fBdialing\fR (id, call, step: started, a\-ringing, calling\-b,
b\-ringing: how a click\-to\-dial command's call gets on), \fBwhy\-step\fR (id, step,
text), \fBspeed\-dial\fR (id, code, target, config), \fBresult\fR (id, code, text),
\fBauth\-failed\fR (user, source), \fBwarning\fR and \fBnotice\fR (text),
\fBcall\fR (call, from, to, phase, rings: one per state change and per ring) and
\fBcall\-record\fR (call, from, to, start_ms, answer_ms, end_ms, duration_s, talk_s,
outcome, status: one when a call ends).
pbxctl adds \fB{"kind":"lost","count":N}\fR when N events were overwritten before it
could read them, and \fB\%{"kind":"daemon\-stopped","pid":N,"time_ms":T}\fR and
\fB\%{"kind":"daemon\-restarted",...}\fR when the daemon goes away or comes back.
.TP
.B trace
One object per message: \fBseq\fR, \fBtime_ms\fR, \fBdir\fR (\fBin\fR: received
from the peer, \fBout\fR: sent to it), \fBtransport\fR (\fBudp\fR or \fBtcp\fR),
\fBpeer\fR (address:port), \fBmethod\fR (null for a response), \fBstatus\fR and
\fBreason\fR (null for a request), \fBcall_id\fR, \fBcseq\fR, \fBcseq_method\fR,
\fBlen\fR (bytes), \fBcut\fR (true when the message was longer than the 8192
bytes a trace keeps) and \fBmessage\fR, the message as the daemon copied it
(credentials masked; a text's words only with \fBshow_texts = yes\fR).
\fB{"kind":"lost","count":N}\fR when N messages were overwritten in the trace
ring before pbxctl could read them;
\fB\%{"kind":"daemon\-stopped","pid":N,"time_ms":T}\fR and
\fB\%{"kind":"daemon\-restarted",...}\fR when the daemon goes away and when
pbxctl traces again on the new one.
"##;

const REQUESTS_SECTION: &str = r##".SH "HOW COMMANDS ARE SENT"
\fBmessage\fR, \fBhangup\fR, \fBrelease\fR, \fBreload\fR, \fBforward\fR, \fBdnd\fR,
\fBdial\fR, \fBspeed\fR and \fBwhy\fR are checked locally with the daemon's own
grammar, then written as one line, \fB#\fR\fIID\fR \fIcommand\fR, to the control FIFO
with a single \fBwrite\fR(2) (lines are at most 1024 bytes, so concurrent writers never
interleave).
The FIFO is opened without blocking: when no daemon reads it, pbxctl says so at once
(status 3) instead of hanging.
The request id is unique per invocation (time and pid); pbxctl then waits, up to
\fB\-\-timeout\fR seconds, for the command-result event carrying that id in the event
ring of the state block.
\fBext\fR writes no control line but \fBreload\fR, after the edited file has been
written.
A shell script can do the same with \fBecho "#42 reload" > /run/coventry/control\fR and
\fBpbxctl watch\fR.
.PP
\fB\-\-until\fR \fIHH:MM\fR and \fB\-\-for\fR \fIDURATION\fR become
\fBuntil=\fR\fIUNIX\fR, seconds since the epoch: \fBpbxctl forward 11 12 \-\-for 2h\fR
writes \fB#\fR\fIID\fR \fBforward 11 12 always until=\fR\fIT\fR with \fIT\fR two hours
from now (rounded up to a whole second); \fB\-\-until 17:00\fR is 17:00 local time
(\fBTZ\fR) today, or tomorrow when it has passed.
"##;

const TRACE_SECTION: &str = r##".SH "THE SIP TRACE"
\fBpbxctl trace\fR \fIEXT\fR follows the messages whose From, To or Request\-URI user
is \fIEXT\fR (so a call's INVITE, its answers, ACK and BYE on both legs, and
texts from or to it) and every message to or from an address one of the
extension's contacts is registered from (address and port, as \fBpbxctl regs\fR
shows it: what the phone sends before it names itself, and what the switch sends
to its contact). \fIIP\fR follows every message to or from that host,
\fIIP:PORT\fR that one socket; \fBall\fR (the default) everything. Messages are
shown as they came on the wire (a datagram, or the bytes of one message framed
from a TCP stream, spelled as the peer spelled it) and as the switch sent them,
in the order it handled them.
.PP
The daemon masks before a message leaves it: in \fBAuthorization\fR,
\fBProxy\-Authorization\fR, \fBAuthentication\-Info\fR and
\fBProxy\-Authentication\-Info\fR the digest \fBresponse\fR and \fBrspauth\fR
values become \fB"***"\fR and the credentials of any other scheme are masked whole,
always. The body of a \fBMESSAGE\fR (a resident's text) is replaced by its
length, \fB[text of\fR \fIN\fR \fBbytes not shown]\fR, unless the
configuration says \fBshow_texts = yes\fR in \fB[security]\fR
.RB ( coventry.conf (5)):
then a trace shows a text's words, as \fBpbxctl watch\fR does. No secret is ever
in a trace.
.PP
While nobody traces, the switch copies nothing and there is no trace file. pbxctl
takes a lease first \(em a read lock on one byte of the state block file, which
the kernel lets go when pbxctl ends, however it ends (Ctrl\-C, SIGPIPE, SIGKILL, a
closed terminal) \(em then sends \fBtrace\fR \fITOKEN\fR \fIFILTER\fR on the
control FIFO. The daemon checks its leases every tenth of a second, ends a trace
whose lock is gone and removes the trace ring with the last one; \fBpbxctl status
\-\-json\fR (\fBtraces\fR) and the state block show the traces running, and each
start and end is a notice in \fBpbxctl watch\fR. Up to 8 traces run at once. The
ring holds the latest 512 messages; a pbxctl that falls further behind is told
how many it lost. Only root and the daemon's group can read it (mode 0640, like
the state block).
.PP
A lease lives in the daemon it was taken on. When that daemon stops or
restarts (\fBsystemctl restart coventryd\fR, a crash and a new start), pbxctl
prints what the old ring still held, says on stderr that the daemon went away,
waits for one to run again (looking four times a second) and then takes a new
lease on the new state block, asks again and says so; the trace goes on with
what the new daemon handles. Should the new daemon refuse the trace (its
configuration no longer has the extension), pbxctl ends with status 1.
"##;

const TAIL_SECTIONS: &str = r##".SH ENVIRONMENT
.TP
.B COVENTRY_RUNTIME_DIR
The runtime directory, as \fB\-\-runtime\-dir\fR (which takes precedence).
.TP
.B COVENTRY_CONFIG
The configuration file \fBext\fR edits, as its \fB\-\-config\fR (the same variable
.BR coventryd (8)
reads).
.TP
.B XDG_RUNTIME_DIR
Without the two above, a user other than root finds the daemon in
\fI$XDG_RUNTIME_DIR/coventry\fR, or in \fI/tmp/coventry\-$UID\fR when it is not set.
.TP
.B NO_COLOR
When set to a non-empty value, output has no colour even on a terminal.
Tables are drawn with borders only on a terminal; otherwise their columns are
separated by spaces, for \fBawk\fR(1) and friends.
.TP
.B TZ
The time zone of the times shown by \fBwatch\fR, \fBcalls\fR and \fBstatus\fR, and of
\fB\-\-until\fR.
.SH FILES
.TP
.I /etc/coventry.conf
The configuration \fBext\fR edits unless told otherwise; the new file is written
next to it as \fI.coventry.conf.pbxctl\-PID\fR and renamed into place.
.TP
.I /run/coventry/state
The state block: a fixed-size file the daemon maps read-write and pbxctl reads
(registrations, extension states, calls, counters, the event ring).
Its absence, or a truncated file, means the daemon is not running.
.TP
.I /run/coventry/control
The control FIFO: one command per line; pbxctl writes a newline first, so that a
partial line another writer left behind cannot join its command.
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
owner. A refusal says why and exits with status 1.
.SH EXAMPLES
.EX
pbxctl status
pbxctl regs 11
pbxctl exts
pbxctl calls
pbxctl hangup 11
pbxctl calls \-\-json | jq '.[] | select(.state == "ringing" and .rings >= 5)'
pbxctl message all "Dinner is ready"
pbxctl forward 11 12
pbxctl forward 11 12 \-\-no\-answer
pbxctl forward 11 off
pbxctl dnd 11 on \-\-until 17:00
pbxctl forward 11 12 \-\-busy \-\-for 1h30m
pbxctl dial 11 12
pbxctl speed 9 0123456789
pbxctl speed
pbxctl ext add 23 \-\-display "Front desk"
pbxctl ext secret 23
pbxctl ext remove 23
pbxctl why 11
pbxctl \-\-timeout 2 release 12 || echo "release failed: $?"
pbxctl watch \-\-json | jq \-c 'select(.kind == "message")'
pbxctl watch \-\-duration 3600 >> ~/coventry\-events.log
pbxctl trace 11 \-v
.EE
.SH "SEE ALSO"
.BR coventryd (8),
.BR coventry.conf (5),
.BR pbx\-tui (1)
"##;

/// The whole pbxctl(1) page.
/// pbxctl(1).
pub fn render() -> String {
    let mut cmd = pbxctl::cli::Cli::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone()).section("1");
    let mut page = Roff::new().render();
    page.push_str(&format!(
        ".TH PBXCTL 1 \"\" \"pbxctl {version}\" \"Coventry Manual\"\n"
    ));
    page.push_str(&section(|w| man.render_name_section(w)));
    page.push_str(&section(|w| man.render_synopsis_section(w)));
    page.push_str(&section(|w| man.render_description_section(w)));
    page.push_str(&section(|w| man.render_options_section(w)));
    page.push_str(&commands_section(&cmd));
    let mut exit = Roff::new();
    exit.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in pbxctl::cli::EXIT_CODES {
        exit.control("TP", []);
        exit.text([bold(code.to_string())]);
        exit.text([roman(*meaning)]);
    }
    exit.control("PP", []);
    exit.text([roman(
        "Errors are reported on standard error as one line starting with \"pbxctl: \". \
         A closed output pipe (as in pbxctl watch | head) ends pbxctl quietly with status 0.",
    )]);
    page.push_str(&exit.to_roff());
    page.push_str(REQUESTS_SECTION);
    page.push_str(JSON_SECTION);
    page.push_str(TRACE_SECTION);
    page.push_str(TAIL_SECTIONS);
    page.push_str(&section(|w| man.render_version_section(w)));
    page
}

/// What the page must say, not only exist.
pub const NEEDLES: &[&str] = &[
    ".SH \"EXIT STATUS\"",
    ".SH ENVIRONMENT",
    ".SH FILES",
    ".SS watch",
    ".SS trace",
    ".SH \"THE SIP TRACE\"",
    ".SS calls",
    ".SS exts",
    ".SS hangup",
    ".SS forward",
    ".SS dnd",
    ".SS dial",
    ".SS speed",
    ".SS ext",
    ".SS \"ext add\"",
    "\\-\\-keep\\-builtin",
    ".SS why",
    "\\-\\-no\\-answer",
    "until=",
    "receipts",
    "forward_noanswer",
    "\\-\\-from\\-start",
    "COVENTRY_RUNTIME_DIR",
];
