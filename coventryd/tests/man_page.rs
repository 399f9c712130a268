//! man/coventryd.8 is generated from coventryd's command-line definition and must
//! match the checked-in file (UPDATE_MAN=1 rewrites it).

#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod cli;

use clap::CommandFactory;
use clap_mangen::roff::Roff;
use clap_mangen::Man;
use std::path::Path;

/// Render with clap_mangen's section renderer, without the repeated roff preamble.
fn section(f: impl Fn(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("render to memory");
    let text = String::from_utf8(buf).expect("utf-8");
    let preamble = Roff::new().render();
    text.strip_prefix(preamble.as_str())
        .map(str::to_string)
        .unwrap_or(text)
}

const EXTRA_SECTIONS: &str = r##".SH SIGNALS
.TP
.BR SIGTERM ", " SIGINT
Stop cleanly: registrations and operator settings are saved, the state block and the
control FIFO are removed.
.TP
.B SIGHUP
Reload the configuration file, as
.BR "pbxctl reload" .
A file with errors is reported and the configuration in force is kept.
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
Both files are created with owner and group permissions only: operators need to be
in the daemon's group.
.SH LOGGING
coventryd logs to standard error, one line per event, with its level in brackets
(\fB[WARN ]\fR); under systemd the journal stamps the lines. The level is chosen with
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
For fail2ban, the repository ships a filter and a jail in \fIcontrib/fail2ban/\fR:
copy \fIfilter.d/coventry.conf\fR to \fI/etc/fail2ban/filter.d/\fR and
\fIjail.d/coventry.conf\fR to \fI/etc/fail2ban/jail.d/\fR. The filter matches
the address after \fBsource=\fR at the start of these lines only, so text a caller
puts in its request cannot make it ban another address. Check it against a log with
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
.I /var/lib/coventry/
The state directory: registrations and operator settings (forwards, do not disturb,
speed dials), saved atomically so that they survive a restart, and the generated
.I secrets
of the built\-in default configuration.
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
coventryd \-\-check\-config \-c /etc/coventry.conf
coventryd \-c /etc/coventry.conf
COVENTRY_RUNTIME_DIR=/tmp/pbx coventryd \-\-listen 127.0.0.1:0
.EE
.SH "SEE ALSO"
.BR pbxctl (1),
.BR pbx\-tui (1),
.BR coventry.conf (5)
"##;

fn render() -> String {
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

#[test]
fn coventryd_man_page_is_current() {
    let page = render();
    for needle in [".SH OPTIONS", ".SH SIGNALS", ".SH FILES", "COVENTRY_CONFIG"] {
        assert!(page.contains(needle), "coventryd.8 lacks {needle}");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/coventryd.8");
    if let Err(e) = coventry_shared::manpage::check_current(&path, &page, "coventryd") {
        panic!("{e}");
    }
}
