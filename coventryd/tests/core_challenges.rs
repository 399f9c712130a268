//! Challenges tell nothing about the claimed user: every claim (an extension with a
//! secret, one with stored hashes only, one that does not exist, a name outside the
//! plan) gets the same header set, the switch's one offer, for 401 and 407 alike.

use coventryd::config::Config;
use coventryd::switch::registrar::Registrar;
use coventryd::switch::Switch;
use std::path::Path;

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const MD5: &str = "0123456789abcdef0123456789abcdef";

fn switch(server: &str) -> Switch {
    let conf = format!(
        "[server]\nrealm = test\n{server}\n\
         [21]\nsecret = pw21\n\
         [22]\nmd5 = {MD5}\nsha256 = {SHA}\n"
    );
    let config = Config::parse(Path::new("t.conf"), &conf).expect("config");
    Switch::new(
        config,
        "127.0.0.1:5060".parse().expect("addr"),
        Registrar::new(),
    )
}

/// The first response to an unauthenticated `method` claiming `user`.
fn challenge(sw: &mut Switch, method: &str, user: &str) -> String {
    let (to, ruri) = if method == "REGISTER" {
        (user.to_string(), "sip:127.0.0.1".to_string())
    } else {
        ("21".to_string(), "sip:21@127.0.0.1".to_string())
    };
    let id: String = format!("{method}{user}")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let req = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK{id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@test>;tag=1\r\nTo: <sip:{to}@test>\r\n\
         Call-ID: c{id}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@127.0.0.1:6000>\r\n\
         Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    );
    sw.on_datagram(0, "127.0.0.1:6000".parse().expect("addr"), req.as_bytes());
    let out = sw.take_out();
    let Some((_, bytes)) = out.sends.first() else {
        panic!("no answer to {req}");
    };
    String::from_utf8(bytes.clone()).expect("utf8")
}

/// The challenge headers with their nonces blanked: the shape of the challenge.
fn shape(resp: &str) -> Vec<String> {
    let status = resp.lines().next().unwrap_or("").to_string();
    let mut v = vec![status];
    v.extend(
        resp.lines()
            .filter(|l| l.starts_with("WWW-Authenticate:") || l.starts_with("Proxy-Authenticate:"))
            .map(|l| {
                let mut out = String::new();
                let mut rest = l;
                while let Some(i) = rest.find("nonce=\"") {
                    out.push_str(&rest[..i + 7]);
                    rest = &rest[i + 7..];
                    rest = &rest[rest.find('"').unwrap_or(0)..];
                }
                out.push_str(rest);
                out
            }),
    );
    v
}

fn algorithms(resp: &str) -> Vec<&'static str> {
    resp.lines()
        .filter(|l| l.starts_with("WWW-Authenticate:") || l.starts_with("Proxy-Authenticate:"))
        .map(|l| {
            if l.contains("algorithm=MD5") {
                "MD5"
            } else {
                "SHA-256"
            }
        })
        .collect()
}

#[test]
fn every_claimed_user_gets_the_same_challenge() {
    let mut sw = switch("");
    for method in ["REGISTER", "INVITE", "MESSAGE"] {
        let reference = challenge(&mut sw, method, "21");
        let code = if method == "REGISTER" { "401" } else { "407" };
        assert!(
            reference.starts_with(&format!("SIP/2.0 {code}")),
            "{reference}"
        );
        assert_eq!(algorithms(&reference), vec!["MD5"]);
        // 22: hashes only; 24: in the plan, not configured; the rest: not extensions.
        for user in ["22", "24", "99", "5000", "admin", "x source=6.6.6.6:1"] {
            let r = challenge(&mut sw, method, user);
            assert_eq!(
                shape(&r),
                shape(&reference),
                "{method} claiming {user}:\n{r}"
            );
        }
    }
}

#[test]
fn the_offer_follows_the_configuration_for_everyone() {
    let mut sw = switch("algorithm = md5");
    for user in ["21", "22", "24"] {
        assert_eq!(
            algorithms(&challenge(&mut sw, "REGISTER", user)),
            vec!["MD5"]
        );
    }
    let mut sw = switch("algorithm = sha256");
    for user in ["21", "22", "24"] {
        assert_eq!(
            algorithms(&challenge(&mut sw, "REGISTER", user)),
            vec!["SHA-256"]
        );
    }
}

/// A switch whose 23 has an offer of its own.
fn switch_with_line_offer(line: &str) -> Switch {
    let conf =
        format!("[server]\nrealm = test\n[21]\nsecret = pw21\n[23]\nsecret = pw23\n{line}\n");
    let config = Config::parse(Path::new("t.conf"), &conf).expect("config");
    Switch::new(
        config,
        "127.0.0.1:5060".parse().expect("addr"),
        Registrar::new(),
    )
}

#[test]
fn a_line_with_its_own_offer_gets_it_and_everyone_else_the_servers() {
    let mut sw = switch_with_line_offer("algorithm = sha256");
    assert_eq!(
        algorithms(&challenge(&mut sw, "REGISTER", "23")),
        vec!["SHA-256"]
    );
    for user in ["21", "24", "99", "admin"] {
        assert_eq!(
            algorithms(&challenge(&mut sw, "REGISTER", user)),
            vec!["MD5"],
            "{user}"
        );
    }
    let mut sw = switch_with_line_offer("algorithm = sha256, md5");
    assert_eq!(
        algorithms(&challenge(&mut sw, "REGISTER", "23")),
        vec!["SHA-256", "MD5"]
    );
}

#[test]
fn a_right_answer_in_an_algorithm_the_line_is_not_offered_is_refused() {
    let mut sw = switch_with_line_offer("algorithm = sha256");
    let ch = challenge(&mut sw, "REGISTER", "23");
    let nonce = ch
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("nonce")
        .to_string();
    // A correct MD5 answer (the phone ignored the offer): refused, not registered.
    let uri = "sip:127.0.0.1";
    let h = |s: String| {
        use md5::Digest;
        hex::encode(md5::Md5::digest(s.as_bytes()))
    };
    let ha1 = h("23:test:pw23".to_string());
    let ha2 = h(format!("REGISTER:{uri}"));
    let response = h(format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
    let req = format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKmd5try\r\n\
         Max-Forwards: 70\r\nFrom: <sip:23@test>;tag=1\r\nTo: <sip:23@test>\r\n\
         Call-ID: md5try\r\nCSeq: 2 REGISTER\r\nContact: <sip:23@127.0.0.1:6000>\r\n\
         Authorization: Digest username=\"23\", realm=\"test\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\"\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sw.on_datagram(0, "127.0.0.1:6000".parse().expect("addr"), req.as_bytes());
    let out = sw.take_out();
    let resp = String::from_utf8(out.sends[0].1.clone()).expect("utf8");
    assert!(
        resp.starts_with("SIP/2.0 403 Forbidden (algorithm not offered)"),
        "{resp}"
    );
    assert!(sw.registrar().contacts(23).is_empty());
}
