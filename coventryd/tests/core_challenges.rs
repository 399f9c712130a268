//! Challenges offer only algorithms the claimed extension can answer.

use coventry_shared::config::Config;
use coventryd::registrar::Registrar;
use coventryd::switch::Switch;
use std::path::Path;

fn challenge_for(user: &str) -> String {
    let conf = "[server]\nrealm = test\nalgorithm = sha256, md5\n\
                [21]\nsecret = pw21\n\
                [22]\nmd5 = 0123456789abcdef0123456789abcdef\n\
                [23]\nsha256 = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    let config = Config::parse(Path::new("t.conf"), conf).expect("config");
    let mut sw = Switch::new(
        config,
        "127.0.0.1:5060".parse().expect("addr"),
        Registrar::new(),
    );
    let req = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK{user}\r\n\
         From: <sip:{user}@test>;tag=1\r\nTo: <sip:{user}@test>\r\nCall-ID: c{user}\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:6000>\r\nContent-Length: 0\r\n\r\n"
    );
    sw.on_datagram(0, "127.0.0.1:6000".parse().expect("addr"), req.as_bytes());
    let out = sw.take_out();
    String::from_utf8(out.sends[0].1.clone()).expect("utf8")
}

fn algorithms(resp: &str) -> Vec<&str> {
    resp.lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
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
fn secret_lines_get_every_algorithm_sha256_first() {
    let r = challenge_for("21");
    assert!(r.starts_with("SIP/2.0 401"), "{r}");
    assert_eq!(algorithms(&r), vec!["SHA-256", "MD5"]);
}

#[test]
fn hash_only_lines_get_their_algorithm_only() {
    assert_eq!(algorithms(&challenge_for("22")), vec!["MD5"]);
    assert_eq!(algorithms(&challenge_for("23")), vec!["SHA-256"]);
}

#[test]
fn unknown_users_are_challenged_like_everyone_else() {
    // No hint that 24 does not exist: the same challenge as a real line.
    assert_eq!(algorithms(&challenge_for("24")), vec!["SHA-256", "MD5"]);
}
