//! The parser against whole files.

use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/coventry.conf"), s)
}

#[test]
fn full_file() {
    let c = parse(
        "; site\n[server]\nlisten = 127.0.0.1:5070\ndigits = 2\nrealm = home\n\
         algorithm = md5\n\n[calls]\nring = 4\nnoanswer = 3\n\n[groups]\n100 = 21, 22\n\n\
         [21]\nsecret = s21\ndisplay = Reception\nlines = 3\n[22]\nmd5 = 0123456789abcdef0123456789ABCDEF\n",
    )
    .expect("valid");
    assert_eq!(c.server.listen, "127.0.0.1:5070".parse().expect("addr"));
    assert_eq!(c.server.realm, "home");
    assert_eq!(c.server.algorithms, vec![DigestAlgorithm::Md5]);
    assert_eq!(
        c.calls,
        CallsConfig {
            ring: 4,
            noanswer: 3,
            max_duration: 43_200,
            max_per_line: DEFAULT_MAX_CALLS_PER_LINE,
        }
    );
    assert_eq!(c.groups[&100], vec![21, 22]);
    assert_eq!(c.lines[&21].display, "Reception");
    assert_eq!(c.lines[&21].lines, 3);
    assert_eq!(
        c.lines[&22].md5.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(c.lines[&22].display, "Extension 22");
}

#[test]
fn errors_name_line_and_key() {
    let e = parse("[server]\ndigits = 2\n\n[21]\nsecret = x\nlines = 9\n").expect_err("bad");
    assert_eq!(e.line, 6);
    assert_eq!(e.key.as_deref(), Some("[21] lines"));
    assert_eq!(
        e.to_string(),
        "/etc/coventry.conf:6: [21] lines: `9` must be a whole number from 1 to 4"
    );
    let e = parse("[21]\ndisplay = x\n").expect_err("no secret");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("no secret"));
    let e = parse("[server]\nlisten = nowhere\n").expect_err("listen");
    assert_eq!((e.line, e.key.as_deref()), (2, Some("[server] listen")));
    let e = parse("[server]\ncolour = red\n").expect_err("unknown");
    assert!(e.to_string().contains("unknown key"));
    let e = parse("[150]\nsecret = x\n").expect_err("plan");
    assert!(e.message.contains("not an extension"));
    let e = parse("[groups]\n100 = 21\n").expect_err("member");
    assert!(e.message.contains("member 21"));
    let e = parse("[oops\n").expect_err("header");
    assert!(e.message.contains("malformed"));
    let e = parse("[21]\nsecret = a\n[21]\nsecret = b\n").expect_err("dup");
    assert_eq!(e.line, 3);
    let e = parse("[server]\ndigits = 3\n[groups]\n150 = 150\n[150]\nsecret=x\n")
        .expect_err("group in plan");
    assert!(e.message.contains("cannot be a group"));
}

#[test]
fn security_section() {
    let c = parse("[21]\nsecret = a\n").expect("valid");
    assert_eq!(c.security, SecurityConfig::default());
    let c = parse(
        "[security]\nsource_failures = 3\nextension_failures = 7\nbackoff = 5\n\
         max_backoff = 60\nforget_after = 120\nlog_failures = 2\nsource_rate = 0\n\
         [21]\nsecret = a\n",
    )
    .expect("valid");
    assert_eq!(
        c.security,
        SecurityConfig {
            source_failures: 3,
            extension_failures: 7,
            backoff: 5,
            max_backoff: 60,
            forget_after: 120,
            log_failures: 2,
            source_rate: 0,
            show_texts: false,
        }
    );
    let e = parse("[security]\nbackoff = 0\n").expect_err("zero");
    assert_eq!((e.line, e.key.as_deref()), (2, Some("[security] backoff")));
    let e =
        parse("[security]\nbackoff = 60\nmax_backoff = 30\n[21]\nsecret = a\n").expect_err("order");
    assert_eq!(e.key.as_deref(), Some("[security] max_backoff"));
    let e = parse("[security]\nmax_backoff = 7200\n[21]\nsecret = a\n").expect_err("forget");
    assert_eq!(e.key.as_deref(), Some("[security] forget_after"));
    let e = parse("[security]\nlockout = 1\n").expect_err("unknown");
    assert!(e.to_string().contains("unknown key"));
}

#[test]
fn a_line_may_have_its_own_offer() {
    let sha = "sha256 = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // A SHA-256-only line on the default (MD5) server offer: with its own offer.
    let c = parse(&format!("[22]\n{sha}\nalgorithm = sha256\n")).expect("own offer");
    let l = &c.lines[&22];
    assert_eq!(l.offer(&c.server.algorithms), &[DigestAlgorithm::Sha256]);
    // Its own offer must be answerable too.
    let e = parse(&format!("[22]\n{sha}\nalgorithm = sha256, md5\n")).expect_err("no md5");
    assert!(e.message.contains("its algorithm key offers md5"), "{e}");
    let e = parse("[22]\nsecret = x\nalgorithm = sha512\n").expect_err("unknown");
    assert!(e.message.contains("unknown algorithm"), "{e}");
}

#[test]
fn a_local_peer_without_secret_is_named() {
    let c = parse("[upstream]\nroute = 127.0.0.1:5070\n[21]\nsecret = a\n").expect("ok");
    assert_eq!(
        c.upstream.local_peers_without_secret(),
        vec!["127.0.0.1:5070"]
    );
    assert!(c.upstream.local_trust_warning().is_some());
    let c = parse("[upstream]\nroute = localhost\ntrust = ::1, 10.0.0.7\n[21]\nsecret = a\n")
        .expect("ok");
    assert_eq!(
        c.upstream.local_peers_without_secret(),
        vec!["localhost:5060", "::1"]
    );
    let c = parse("[upstream]\nroute = 127.0.0.1\npeer_secret = s3cret-long\n[21]\nsecret = a\n")
        .expect("ok");
    assert!(c.upstream.local_trust_warning().is_none());
    let c = parse("[upstream]\nroute = 192.0.2.7\n[21]\nsecret = a\n").expect("ok");
    assert!(c.upstream.local_trust_warning().is_none());
}

#[test]
fn every_line_answers_every_offered_algorithm() {
    let md5 = "md5 = 0123456789abcdef0123456789abcdef";
    let sha = "sha256 = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // The default offer is MD5 alone: a line with only a SHA-256 hash cannot answer.
    let e = parse(&format!("[21]\nsecret = a\n[22]\n{sha}\n")).expect_err("sha only");
    assert_eq!((e.line, e.key.as_deref()), (3, Some("[22]")));
    assert!(e.message.contains("no md5 hash"), "{e}");
    parse(&format!("[22]\n{md5}\n")).expect("md5 on the default offer");
    // Offering both: a line with one hash cannot answer both.
    let both = "[server]\nalgorithm = sha256, md5\n";
    let e = parse(&format!("{both}[22]\n{md5}\n")).expect_err("md5 only");
    assert!(e.message.contains("no sha256 hash"), "{e}");
    parse(&format!("[server]\nalgorithm = md5\n[22]\n{md5}\n")).expect("md5 offer");
    parse(&format!("[server]\nalgorithm = sha256\n[22]\n{sha}\n")).expect("sha offer");
    parse(&format!("[22]\n{md5}\n{sha}\n")).expect("both hashes");
}

#[test]
fn features_speed_and_coverage() {
    let c = parse(
        "[features]\ndnd_on = *5\n[speed]\n*1 = 0123456\n9 = 35\n\
         [21]\nsecret = a\ncoverage = 22\ndelayed = 23, 24\ndelay = 3\n\
         [22]\nsecret = b\n[23]\nsecret = c\n[24]\nsecret = d\n",
    )
    .expect("valid");
    assert_eq!(c.features.dnd_on, "*5");
    assert_eq!(c.features.dnd_off, "*79");
    assert_eq!(c.speed["*1"], "0123456");
    assert_eq!(c.lines[&21].coverage, vec![22]);
    assert_eq!(c.lines[&21].delayed, vec![23, 24]);
    assert_eq!(c.lines[&21].delay, 3);
    let e = parse("[21]\nsecret = a\ncoverage = 25\n").expect_err("unknown coverage");
    assert_eq!((e.line, e.key.as_deref()), (3, Some("[21] coverage")));
    let e = parse("[features]\ndnd_on = 78\n").expect_err("no star");
    assert!(e.message.contains("starts with"));
    let e = parse("[features]\ndnd_on = *73\n").expect_err("clash");
    assert!(e.message.contains("also"), "{e}");
    let e = parse("[speed]\n*1 = sip:x\n").expect_err("bad speed");
    assert_eq!(e.line, 2);
}

#[test]
fn speed_codes_shadow_nothing() {
    let conf = |speed: &str| {
        parse(&format!(
            "[groups]\n100 = 21\n[speed]\n{speed} = 35\n[21]\nsecret = a\n"
        ))
    };
    for (code, why) in [
        ("21", "extension number"),
        ("35", "extension number"),
        ("100", "group 100"),
        ("*78", "feature code"),
        ("*7235", "feature code"),
    ] {
        let e = conf(code).expect_err(code);
        assert_eq!(e.key.as_deref(), Some(format!("[speed] {code}").as_str()));
        assert!(e.message.contains(why), "{code}: {e}");
    }
    for code in ["9", "*1", "0", "999", "*7"] {
        assert!(conf(code).is_ok(), "{code}");
    }
}

#[test]
fn a_site_prefix_names_the_building_route_and_keeps_its_numbers_local() {
    let c =
        parse("[upstream]\nroute = 10.0.0.1\nsite_prefix = 71\n[21]\nsecret = a\n").expect("valid");
    assert_eq!(c.upstream.site_prefix.as_deref(), Some("71"));
    assert_eq!(
        c.upstream.link_name(&[RouteKind::Default, RouteKind::Sms]),
        "building+sms"
    );
    assert_eq!(c.target_of("7121"), Target::Extension(21));
    assert_eq!(c.target_of("21"), Target::Extension(21));
    assert_eq!(c.target_of("7122"), Target::External("7122".into()));
    assert_eq!(c.target_of("71"), Target::Unknown("71".into()));
    assert_eq!(c.target_of("7221"), Target::External("7221".into()));
    assert_eq!(c.building_number("21"), "7121");
    let alone = parse("[21]\nsecret = a\n").expect("valid");
    assert_eq!(alone.target_of("7121"), Target::External("7121".into()));
    assert_eq!(alone.upstream.link_name(&[RouteKind::Default]), "default");
    let e = parse("[upstream]\nsite_prefix = 71\n").expect_err("no route");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (2, Some("[upstream] site_prefix"))
    );
    for bad in ["7a", "12345", ""] {
        let e = parse(&format!(
            "[upstream]\nroute = 10.0.0.1\nsite_prefix = {bad}\n"
        ))
        .expect_err(bad);
        assert_eq!(e.line, 3, "{bad}: {e}");
    }
}

#[test]
fn upstream_section() {
    let c = parse(
        "[upstream]\nroute = 127.0.0.1:5070\nemergency = 112 911, 999\n\
         emergency_route = [::1]:5071\nsms_route = sms.example.net\nidentity = from\n\
         trust = 10.0.0.7\nemergency_local = 21\n[21]\nsecret = a\n",
    )
    .expect("valid");
    let u = &c.upstream;
    assert_eq!(
        u.route.as_ref().map(|h| h.to_string()).as_deref(),
        Some("127.0.0.1:5070")
    );
    assert_eq!(u.emergency, vec!["112", "911", "999"]);
    assert!(u.is_emergency("999") && !u.is_emergency("99"));
    assert_eq!(
        u.route_for(RouteKind::Emergency)
            .map(|h| h.to_string())
            .as_deref(),
        Some("[::1]:5071")
    );
    assert_eq!(
        u.route_for(RouteKind::Sms)
            .map(|h| h.to_string())
            .as_deref(),
        Some("sms.example.net:5060")
    );
    assert_eq!(u.identity, Identity::From);
    assert_eq!(u.links().len(), 3);
    let c = parse("[upstream]\nroute = 127.0.0.1:5070\n").expect("valid");
    assert_eq!(
        c.upstream.links(),
        vec![(
            "127.0.0.1:5070".parse().expect("hp"),
            vec![RouteKind::Default, RouteKind::Emergency, RouteKind::Sms]
        )]
    );
    assert!(parse("").expect("empty").upstream.links().is_empty());
    let e = parse("[upstream]\nroute = bad host:1\n").expect_err("host");
    assert_eq!((e.line, e.key.as_deref()), (2, Some("[upstream] route")));
    let e = parse("[server]\ndigits = 3\n[upstream]\nemergency = 112\n[112]\nsecret = x\n")
        .expect_err("clash");
    assert!(e.message.contains("emergency"), "{e}");
    // The default list gives way to an extension 112.
    let c = parse("[server]\ndigits = 3\n[112]\nsecret = x\n").expect("default yields");
    assert_eq!(c.upstream.emergency, vec!["911"]);
    let e = parse("[upstream]\nemergency_local = 30\n").expect_err("local");
    assert_eq!(e.line, 2);
    let e = parse("[upstream]\nidentity = both\n").expect_err("identity");
    assert!(e.message.contains("pai or from"));
}

#[test]
fn builtin_is_secured() {
    let c = Config::builtin("127.0.0.1:0".parse().expect("addr"), |n| format!("s{n}"));
    assert_eq!(c.lines.len(), 10);
    assert!(c.lines.values().all(|l| l.secret.is_some()));
    assert!(!format!("{:?}", c.lines[&10]).contains("s10"));
}

#[test]
fn a_file_without_extension_sections_may_name_the_builtin_ones() {
    let text = "[groups]\n700 = 12 13\n[runstate night]\nforward.10 = 19\ndnd.11 = on\n\
                group.700 = 18 19\n";
    let c = parse(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_builtin_lines(|n| format!("s{n}"))
        .expect("builtin lines");
    assert_eq!(c.groups[&700], vec![12, 13]);
    assert!(c.runstates.contains_key("night"));
    assert_eq!(c.lines.len(), 10);
    // Numbers outside them are still refused, and a file with extension
    // sections names only its own.
    assert!(parse("[runstate night]\ndnd.20 = on\n").is_err());
    assert!(parse("[12]\nsecret = x\n[runstate night]\ndnd.11 = on\n").is_err());
}
