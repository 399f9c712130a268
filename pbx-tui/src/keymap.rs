//! Every key of the console, by topic: the help screen (`?`) and the man page's KEYS
//! section are both made from this table. The first [`LEFT_TOPICS`] topics make the
//! help screen's left column.

/// One topic: its title and its keys with what they do.
pub type Topic = (&'static str, &'static [(&'static str, &'static str)]);

/// Topics in the help screen's left column.
pub const LEFT_TOPICS: usize = 3;

/// The keys, by topic.
pub const KEYS: &[Topic] = &[
    (
        "Move",
        &[
            (
                "\u{2190}\u{2193}\u{2191}\u{2192} hjkl",
                "select an extension",
            ),
            ("0-9", "type a number to jump to it"),
            ("[  ]", "previous / next hundred"),
        ],
    ),
    (
        "Log",
        &[
            ("PgUp PgDn", "scroll the log"),
            ("Home End", "oldest / newest line"),
            ("/", "filter by text or kind"),
            ("Esc", "clear the filter and status"),
        ],
    ),
    (
        "Console",
        &[
            ("? F1", "this help"),
            ("Ctrl-L", "repaint the screen"),
            ("q Ctrl-C", "quit"),
        ],
    ),
    (
        "Act on the selected extension",
        &[
            ("f", "forward (number or off)"),
            ("d", "do not disturb on / off"),
            ("m", "send it a message"),
            ("M", "message everybody (asks)"),
            ("c", "click-to-dial from it"),
            ("x", "hang up its calls (asks)"),
            ("r", "release its contacts (asks)"),
            ("T", "its live SIP trace"),
        ],
    ),
    (
        "Command line",
        &[
            (":", "run a pbxctl command"),
            ("Tab", "complete verbs and numbers"),
        ],
    ),
];
