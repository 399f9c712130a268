//! Nothing the switch writes names an unspecified address (issue 21): the
//! daemon on its default `listen = 0.0.0.0:PORT`, phones on a LAN address in a
//! network namespace joined by a veth pair (made here, removed at the end); what
//! the switch sends them itself — an operator's text, click-to-dial, busy-lamp
//! NOTIFYs — names the address they reach it at, never 0.0.0.0.
#![allow(clippy::unwrap_used)]

use coventry_tests::netns::Netns;
use coventry_tests::ua::{Msg, Ua};
use coventry_tests::{Conf, Switch, T};
use std::net::SocketAddr;

/// Every header of `m` that names an address, for the assertions' messages.
fn assert_names(m: &Msg, ours: &str) {
    let text = m.dump();
    assert!(
        !text.contains("0.0.0.0"),
        "an unspecified address written:\n{text}"
    );
    assert!(text.contains(ours), "{ours} missing:\n{text}");
}

#[test]
fn on_0_0_0_0_the_switch_names_the_address_the_phones_reach() {
    let ns = Netns::new().unwrap_or_else(|e| panic!("a network namespace (root, iproute2): {e}"));
    let conf = Conf::new(&[21, 35])
        .build()
        .replace("listen = 127.0.0.1:0", "listen = 0.0.0.0:0");
    assert!(conf.contains("listen = 0.0.0.0:0"), "{conf}");
    let sw = Switch::start(&conf);
    let switch = SocketAddr::from((ns.host_ip, sw.addr().port()));
    let ours = switch.to_string();
    let phone = |ext: u16| {
        let sock = ns.udp_socket(0).unwrap();
        let mut p = Ua::with_socket(sock, switch, &ext.to_string(), &coventry_tests::secret(ext));
        p.register(300);
        p
    };
    let p21 = phone(21);
    let mut p35 = phone(35);

    // The operator's text.
    let out = sw.pbxctl(&["message", "21", "shutdown at 5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = p21.expect_method("MESSAGE", "the operator's text", T);
    assert_names(&text, &ours);
    p21.respond(&text, 200, None);

    // A busy-lamp subscription: the NOTIFY's Contact is where to send refreshes.
    let ex = p35.out_of_dialog(
        "SUBSCRIBE",
        "21",
        &["Event: dialog".to_string(), "Expires: 600".to_string()],
        None,
    );
    assert_eq!(
        ex.response().status(),
        Some(200),
        "{}",
        ex.response().dump()
    );
    let notify = p35.expect_method("NOTIFY", "the first NOTIFY", T);
    assert_names(&notify, &ours);
    assert!(
        notify.header("Contact").is_some_and(|c| c.contains(&ours)),
        "{}",
        notify.dump()
    );
    p35.respond(&notify, 200, None);

    // Click-to-dial rings 21 first.
    sw.fifo_write(b"#1 dial 21 35\n").unwrap();
    let inv = p21.expect_invite("click-to-dial rings 21", T);
    assert_names(&inv, &ours);
    p21.respond(&inv, 486, None);
}
