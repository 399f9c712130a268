//! Real phones on the switch's default digest offer (no `algorithm` key): baresip
//! registers, calls another baresip (answered, media peer to peer: the SDP
//! addresses are the phones' own) and hangs up from either side.
#![allow(clippy::unwrap_used)]

use coventry_tests::baresip::Baresip;
use coventry_tests::{secret, Conf, Switch};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn phone(sw: &Switch, ext: u16) -> Baresip {
    let acc = format!(
        "<sip:{ext}@{}>;auth_pass={};regint=60\n",
        sw.addr(),
        secret(ext)
    );
    let mut b = Baresip::start(&acc);
    b.wait_registered(WAIT);
    b
}

#[test]
fn baresip_registers_calls_and_hangs_up_from_either_side() {
    let sw = Switch::start(&Conf::new(&[10, 11]).build());
    let mut a = phone(&sw, 10);
    let mut b = phone(&sw, 11);
    assert!(!sw.contacts(10).is_empty(), "10 registered:\n{}", sw.log());

    for caller_hangs_up in [true, false] {
        a.clear_events();
        b.clear_events();
        a.command("dial", &format!("sip:11@{}", sw.addr()));
        b.wait_event("CALL_INCOMING", WAIT);
        b.request("accept", "");
        a.wait_event("CALL_ESTABLISHED", WAIT);
        b.wait_event("CALL_ESTABLISHED", WAIT);
        if caller_hangs_up {
            a.command("hangup", "");
        } else {
            b.command("hangup", "");
        }
        a.wait_event("CALL_CLOSED", WAIT);
        b.wait_event("CALL_CLOSED", WAIT);
    }
}
