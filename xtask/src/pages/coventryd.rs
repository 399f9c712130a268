//! coventryd(8): from coventryd's clap definition and the sections below.

use super::section;
use clap::CommandFactory;
use clap_mangen::roff::Roff;
use clap_mangen::Man;
use coventryd::cli;

const EXTRA_SECTIONS: &str = r##".SH SIGNALS
.TP
.BR SIGTERM ", " SIGINT
Stop cleanly: registrations, operator settings and answered calls are saved, the
state block and the control FIFO are removed. Answered calls are never hung up by
a stop: their media flows between the phones, and the next start takes them back
and goes on relaying their dialogs (a hang\-up reaches the other phone, the call
gets one record noting the restart); the same after a crash, for calls answered
a second or more before it. At the start each side of such a call is asked with an
in\-dialog OPTIONS; a call one side no longer has (hung up while the switch was
down) ends with its record. Calls still ringing end: the phones ringing get a CANCEL with
.B "Reason: SIP;cause=503"
and the caller
.B "503"
with
.BR Retry\-After .
.TP
.B SIGHUP
Reload the configuration file, as
.BR "pbxctl reload" .
A reload applies all of a change or refuses it, saying which: a file with errors,
or a change only a restart can make (the dial plan, the listen address,
.BR max_message ),
is reported and the configuration in force is kept; adding
.B [upstream]
opens its TCP listener, removing it closes the listener.
.SH SECURITY
Nobody acts through the switch without a secret. Every request that claims an
extension (REGISTER, INVITE, MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH) is challenged for
that extension's digest. A request inside a dialog is relayed only when the switch
created the dialog (it proxied the call, or passed the subscription through) and
the request comes from one of the dialog's parties \(em the UDP address and port
the switch saw or reached it at, or a current registration of that party's
extension \(em and goes to the other party; a Route header naming the switch earns
a stranger nothing. A response is accepted only from where its request went; the
switch's branches and tags are random (CSPRNG), and the branches of requests it
relays without keeping state carry an HMAC it checks on the way back. Identity
headers from phones (\fBP\-Asserted\-Identity\fR, \fBP\-Preferred\-Identity\fR,
\fBRemote\-Party\-ID\fR), and their claims of who diverted or referred a call
(\fBDiversion\fR, \fBHistory\-Info\fR, \fBReferred\-By\fR), are removed on every path; the phones' credentials
(\fBProxy\-Authorization\fR) never leave the switch. What is refused is counted
(\fBrefused\fR in \fBpbxctl status\fR) and logged.
.PP
Identity is the switch's to assert. A phone a call reaches sees the caller's
extension with the line's \fBdisplay\fR name when the operator set one, whatever
the calling phone wrote (the caller's own From comes back to it unchanged). A
caller from the upstream whose number reads like a local one (an extension, a
group, \fBall\fR, \fBsystem\fR, anything of the plan's shape) is shown as
\fB"21 (outside)" <sip:outside\-21@...>\fR, without the peer's identity headers,
and recorded as caller \fBoutside\-21\fR with route \fBinbound\fR: no phone takes
it for extension 21 and no call\-back from a phone's list rings 21. A call the
switch forwards carries a \fBDiversion\fR (RFC 5806) per forward, naming the
extension that forwarded and why, inside and towards the upstream.
.PP
No source address can size the switch's memory or take its time from others.
A thread of its own drains the UDP socket as fast as datagrams arrive, so that
reading never waits on handling. Before anything is parsed, each source address
spends a token of its own bucket (\fB[security] source_rate\fR a second, default
2000, as Kamailio's pike does), and an address the guard below has told to wait
gets 100 a second (its known phones excepted); the rest is dropped unread.
What is read is queued per source address (4096 datagrams and 8 MiB in all) and
handled one per waiting source in turn; when the queues are full, the source
holding the most loses datagrams. Both count as \fBshed\fR in \fBpbxctl status\fR,
so a phone on another address is served within one round however hard one
address floods; \fBkernel_drops\fR counts what the kernel dropped because the
socket's buffer was full (the reader fell behind the wire), and should stay at
or near zero. The answers kept to absorb retransmissions
(5 seconds each) are bounded in bytes: 8 MiB per source address, 32 MiB in all,
the oldest forgotten first; a request's size, such as 75 Via headers copied into
its answer, costs its sender's share and nobody else's. Subscriptions the switch
serves itself (busy lamps, the \fBsystem\fR state package) are bounded too: 200 per
extension, 10,000 in all (beyond them a SUBSCRIBE gets 503 with Retry\-After), and
only the extension that made one may refresh or end it. An authenticated phone's
own work in flight is bounded too: calls at once (\fB[calls] max_per_line\fR,
default 8) and texts in flight (16 texts or 16 KiB per sender, to phones and the SMS route together); beyond,
its request gets 503 with Retry\-After, \fBlimited\fR in \fBpbxctl status\fR
counts it, and one log line a minute per sender says so. A REGISTER whose contact
no phone can have \(em a multicast, broadcast or unspecified address, or the
switch's own address and port \(em gets 403: calls to it would only come back
to the switch or go to everyone. Their NOTIFYs go where the
authenticated SUBSCRIBE came from, or to a contact the subscriber registered,
never to an address its Contact merely names; a subscription whose NOTIFY is
refused or unanswered ends (RFC 6665), so nobody can aim a stream of NOTIFYs at
a third party.
.PP
The upstream peer is trusted by its address unless \fB[upstream] peer_secret\fR
makes it answer a digest challenge; a peer on this host without one is named in a
warning at start and by \fB\-\-check\-config\fR, since any local user could
connect from its address. A trusted address is no proof on its own, since on
loopback every local user shares it: an inbound TCP connection is on probation
until it carries what only the real peer can send \(em a request that answered
the digest challenge as \fBpeer_user\fR (without \fBpeer_secret\fR, a call or
text the switch takes from the peer's address), or a response to a request the
switch sent the peer. An OPTIONS, a ping or a request inside a dialog proves
nothing. A connection on probation is closed 5 seconds after it opened; at most
16 of them (a quarter of the 64 inbound slots) stay open per source address, a
seventeenth from that address evicting its oldest; when all 64 slots are taken
a newcomer evicts the oldest connection on probation, and only when every slot
holds a proven connection is it refused. Every message must also be complete
within 10 seconds of its first byte. Evictions, refusals and connections closed
on probation are logged one line a minute with their count, not one line each.
.PP
The switch's own bursts never close a link: the BYEs of a mass hang-up (say
\fBpbxctl hangup\fR of a phone holding 10,000 calls outside) are held, up to
32 MiB per outbound link (4 MiB per inbound connection, whose traffic answers
what the peer sent), and fed to the socket as fast as the peer takes them, so
they go out paced by TCP. Only a peer that takes no byte for 10 seconds while
output waits is not reading and is cut off (and reconnected). A message that
cannot be sent \(em no connection, or beyond that budget \(em is dropped and
counted in \fBtcp_dropped\fR (\fBpbxctl status\fR), logged one line a minute
with the count.
.SH "CONTROL AND MONITORING"
coventryd publishes its state in a memory\-mapped state block and takes commands on a
FIFO, both in the runtime directory.
.BR pbxctl (1)
and
.BR pbx\-tui (1)
use them, and so can a script: write one command per line to the FIFO, optionally
with a request id (\fB#42 reload\fR), and read the command\-result event with that id
with
.BR "pbxctl watch" .
Both files are created with owner and group permissions only (the state block 0640,
the FIFO 0660): operators need to be in the daemon's group. A line is at most 1024
bytes; a writer should put a newline before its line and write both in one
\fBwrite\fR(2), as pbxctl does, so that a partial line another writer left behind
cannot join it. Empty lines are ignored; a line whose newline does not come within 2
seconds is dropped and answered with a bad\-syntax result.
.SH "RUNTIME AND STATE DIRECTORIES"
coventryd keeps its files only in a runtime and a state directory that are real
directories (not symbolic links) owned by the user it runs as and not writable by
group or others. It creates a missing one with mode 0750 (its group may read: the
state block, and the call records; the secrets and settings are the owner's only),
and refuses to start with an existing one that fails this, naming the directory, its
owner and mode and the fix: another user could have made it, for example
\fI/tmp/coventry\-$UID\fR, to capture the FIFO or to have the daemon write through
planted links. Every file is created afresh under an unpredictable temporary name,
never through a link, with its mode set at creation, and renamed into place;
temporary files a crash left behind are removed at start.
.PP
For a service, let the service manager make the runtime directory: with
.BR systemd (1),
\fBUser=coventry\fR and \fBRuntimeDirectory=coventry\fR give
\fI/run/coventry\fR owned by the service; operators in its group then run
.BR pbxctl (1)
with \fBCOVENTRY_RUNTIME_DIR=/run/coventry\fR.
.SH "RUNNING AS A SERVICE"
The Debian package (\fIscripts/package\-deb\fR in the source) installs
\fIcoventryd.service\fR: \fBType=notify\fR \(em coventryd tells systemd
\fBREADY=1\fR once it listens, \fBWATCHDOG=1\fR from its main loop at half of
\fBWatchdogSec\fR (30 s), \fBRELOADING=1\fR around a reload and \fBSTOPPING=1\fR
\(em run as user \fBcoventry\fR with only \fBCAP_NET_BIND_SERVICE\fR, with
\fBRuntimeDirectory=coventry\fR and \fBStateDirectory=coventry\fR,
\fBcoventryd \-\-check\-config\fR before each start and \fBExecReload\fR sending
\fBSIGHUP\fR. Operators in group \fBcoventry\fR use
.BR pbxctl (1)
with \fBCOVENTRY_RUNTIME_DIR=/run/coventry\fR.
.SH HOOKS
Executables in the hook directory (\fB[hooks] dir\fR, default
\fI/usr/libexec/coventry\fR) run on the switch's activity, by file name:
.TP
.B register
a contact registered (a new phone, or a phone with a new contact);
.TP
.B release
a contact is gone (unregistered, expired, released by the operator, removed
from the configuration);
.TP
.B call
a call ended, whatever its outcome: its record, as in the records file
(outcome, SIP status, caller, number dialled, who answered, start, answer and
end times, ring and talk time, route: \fBlocal\fR, \fBupstream\fR,
\fBemergency\fR, \fBfeature\fR or \fBclick\-to\-dial\fR, and the forwards
followed);
.TP
.BI msg\- NAME
an extension sent \fB/msg\fR \fINAME TEXT\fR to \fBsystem\fR: the chat service
\fINAME\fR (lower\-case letters, digits, \fB\-\fR and \fB_\fR). Each line the hook
prints (at most 4) goes back to the sender as a text from \fBsystem\fR.
.PP
A hook gets one JSON object on its standard input, never arguments or a shell
string, and an environment of \fBPATH\fR, \fBLANG\fR, \fBCOVENTRY_HOOK\fR (its
name) and \fBCOVENTRY_RUNTIME_DIR\fR, so that it can answer with
.BR pbxctl (1)
or by writing the control FIFO. Examples:
.PP
.EX
{"event":"register","time_ms":1796293582045,"ext":21,
 "contact":"sip:21@192.0.2.7:5062","user_agent":"Linphone/5.1"}
{"event":"release","time_ms":1796293590120,"ext":21,
 "contact":"sip:21@192.0.2.7:5062","why":"expired"}
{"event":"call","time_ms":1796293650000,"call":1004,"outcome":"completed",
 "status":200,"caller":"21","dialled":"35","answered_by":"36",
 "start_ms":1796293600000,"answer_ms":1796293604000,"end_ms":1796293650000,
 "ring_ms":4000,"talk_ms":46000,"route":"local",
 "forwards":[{"from":35,"to":"36","why":"busy"}]}
{"event":"message","time_ms":1796293700000,"name":"weather","from":21,
 "text":"london tomorrow"}
.EE
.PP
The switch never waits on a hook: at most \fB[hooks] max_running\fR run at once,
others wait in a queue of \fB[hooks] queue\fR runs (beyond it a run is dropped and
logged), a hook still running after \fB[hooks] timeout\fR seconds is killed with
its process group, and its output is capped. Its exit status and the first lines
of its standard error are logged. A hook that is missing is not run; one that is
not executable, or that someone but the daemon's user or root owns or may write
(or whose directory they may), is skipped with one log line. Hooks still running
when the switch stops are killed.
.SH LOGGING
coventryd logs to standard error, one line per event, with its level in brackets
(\fB[WARN ]\fR) after a UTC timestamp (\fB2026\-12\-04T00:53:54.415Z\fR); under
systemd, when standard error is the journal (\fBJOURNAL_STREAM\fR), the journal stamps
the lines and coventryd writes none. With \fB\-\-syslog\fR the lines go to syslog
instead (facility \fBdaemon\fR, ident \fBcoventryd\fR, through \fI/dev/log\fR or the
socket given), which the fail2ban filter reads as well. The level is chosen with
\fBCOVENTRY_LOG\fR (default \fBinfo\fR). Every field taken from a request (user
names, methods, user agents, contact URIs) is written in double quotes, with
\fB"\fR and \fB\e\fR escaped, control characters and anything outside printable
ASCII written as escapes, and long values cut: only text outside quotes is the
switch's own. Addresses are those the request came from, as the switch saw them.
.PP
A failed authentication (wrong password, unknown user, a nonce that already failed,
credentials of another extension) or a request refused while its address waits
after such failures (see \fB[security]\fR in
.BR coventry.conf (5))
gives one line that starts with the source address:
.PP
.EX
[WARN ] auth failed: source=203.0.113.9:5060 user="21" method="REGISTER" reason="wrong response" ua="friendly\-scanner"
[WARN ] auth failed: source=203.0.113.9:5060 user="21" method="REGISTER" reason="waiting after failed authentications" retry_after=40 ua="friendly\-scanner"
[WARN ] auth failed: source=203.0.113.9 suppressed=995 (more failed authentications from this address within a minute)
.EE
.PP
At most \fB[security] log_failures\fR such lines (default 10) are written per
address and minute; the rest are counted, and one summary line per address says how
many were left out, when the minute ends or when the daemon stops. Each written line
also puts an \fBAuthFailed\fR event in the event ring. The counters
\fBauth_failures\fR, \fBauth_refused\fR and \fBdigests_checked\fR
.RB ( "pbxctl status" )
count them all.
.PP
The upstream peer's failures (its requests over TCP, with \fB[upstream] peer_user\fR
and \fBpeer_secret\fR) are written apart, counted and limited the same way:
.PP
.EX
[WARN ] upstream peer auth failed: peer=198.51.100.7:5060 user="provider" method="INVITE" reason="wrong response" ua=""
.EE
.PP
For fail2ban, the repository ships a filter and a jail in \fIcontrib/fail2ban/\fR:
copy \fIfilter.d/coventry.conf\fR to \fI/etc/fail2ban/filter.d/\fR and
\fIjail.d/coventry.conf\fR to \fI/etc/fail2ban/jail.d/\fR. The filter matches
the address after \fBsource=\fR at the start of \fBauth failed:\fR lines only, so
text a caller puts in its request cannot make it ban another address, and the
upstream peer's lines never ban the peer: a peer with a wrong secret is a
configuration to fix, not an address to block. Answers spoofed from the peer's
address cannot be pinned on it either: a nonce is good only from the address it
was sent to. Check it against a log with
\fBfail2ban\-regex /var/log/syslog /etc/fail2ban/filter.d/coventry.conf\fR.
.SH FILES
.TP
.I /etc/coventry.conf
The configuration, see
.BR coventry.conf (5).
Without it (and without \fB\-\-config\fR) the built\-in default configuration is used.
.TP
.I /run/coventry/state
The state block (in the runtime directory): extensions, registrations, calls,
counters and the event ring, for readers such as
.BR pbxctl (1).
.TP
.I /run/coventry/control
The control FIFO (in the runtime directory).
.TP
.I /run/coventry/trace
The trace ring (in the runtime directory, mode 0640 like the state block): the
latest SIP messages copied for
.BR "pbxctl trace" ,
as they came on the wire or went out, credentials masked and texts' words hidden
unless
.B show_texts
says otherwise. It exists only while a trace runs; the switch copies nothing
and keeps no such file otherwise. A trace lasts as long as its client holds a
read lock on a byte of the state block (past its end), which the kernel releases
when the client exits however it exits; the switch checks those locks every
tenth of a second and removes the ring with the last trace.
.TP
.I /var/lib/coventry/
The state directory: registrations, operator settings (forwards, do not disturb,
speed dials) and answered calls
.RI ( calls.json ),
saved atomically so that they survive a restart, and the generated
.I secrets
of the built\-in default configuration (the owner's only); the call records
.I records.jsonl
and its rotated copies, and
.I attempts.jsonl
(readable by the daemon's group, see
.BR "pbxctl records" )
and
.IR next\-call ,
the first call number of the next start: after a clean stop the next call
gets the next number; after a crash (\fBkill \-9\fR, power) at most 100 numbers
are skipped, never one used twice.
.PP
The paths are those of a daemon run by root; see \fB\-\-runtime\-dir\fR and
\fB\-\-state\-dir\fR for the others.
.SH ENVIRONMENT
Besides the variables named with the options above:
.TP
.B XDG_RUNTIME_DIR
For a user other than root, the runtime directory defaults to
\fI$XDG_RUNTIME_DIR/coventry\fR (or \fI/tmp/coventry\-$UID\fR without it).
.TP
.BR XDG_STATE_HOME ", " HOME
For a user other than root, the state directory defaults to
\fI$XDG_STATE_HOME/coventry\fR, else \fI$HOME/.local/state/coventry\fR.
.SH "EXIT STATUS"
.TP
.B 0
Stopped by SIGTERM or SIGINT, or, with \fB\-\-check\-config\fR, the configuration is
valid.
.TP
.B 1
The configuration is invalid, or the switch could not start (for example, its
address is in use).
.TP
.B 2
Usage error in the command line.
.PP
Errors are logged on standard error; a configuration error names the file, line,
section and key (\fIFILE\fR:\fILINE\fR: [\fISECTION\fR] \fIKEY\fR: \fImessage\fR).
.SH EXAMPLES
.EX
coventryd \-\-check\-config
coventryd
COVENTRY_RUNTIME_DIR=$(mktemp \-d) coventryd \-\-listen 127.0.0.1:0
.EE
.SH "SEE ALSO"
.BR pbxctl (1),
.BR pbx\-tui (1),
.BR coventry.conf (5)
"##;

/// coventryd(8).
pub fn render() -> String {
    let mut cmd = cli::Cli::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd).section("8");
    let mut page = Roff::new().render();
    page.push_str(&format!(
        ".TH COVENTRYD 8 \"\" \"coventryd {version}\" \"Coventry Manual\"\n"
    ));
    page.push_str(&section(|w| man.render_name_section(w)));
    page.push_str(&section(|w| man.render_synopsis_section(w)));
    page.push_str(&section(|w| man.render_description_section(w)));
    page.push_str(&section(|w| man.render_options_section(w)));
    page.push_str(EXTRA_SECTIONS);
    page.push_str(&section(|w| man.render_version_section(w)));
    page
}

/// What the page must say, not only exist.
pub const NEEDLES: &[&str] = &[".SH OPTIONS", ".SH SIGNALS", ".SH FILES", "COVENTRY_CONFIG"];
