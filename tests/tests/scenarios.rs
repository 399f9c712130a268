//! Self-test of the harness: the sipp scenarios against a tiny mock registrar
//! that checks sipp's digest answers with the harness's own digest code. This
//! needs no coventryd, so it tells a broken scenario from a broken switch.
#![allow(clippy::unwrap_used)]

use coventry_tests::sipp::{logged, Sipp};
use coventry_tests::ua::{digest_response, parse_params, response_to, Algo, Msg, Ua};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Mock {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Msg>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A registrar/proxy for user `user` with `password`: challenges REGISTER (401)
/// and MESSAGE (407) with MD5 qop=auth, answers a correct digest with 200 (echoing
/// the Contact with ;expires=) and a wrong one with 403.
fn mock(password: &'static str) -> Mock {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Msg>>> = Arc::default();
    let (stop2, seen2) = (stop.clone(), seen.clone());
    let thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !stop2.load(Ordering::Relaxed) {
            let Ok((n, src)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let m = Msg::parse(&buf[..n], src).unwrap();
            seen2.lock().unwrap().push(m.clone());
            let method = m.method().unwrap();
            let auth_name = if method == "REGISTER" {
                "Authorization"
            } else {
                "Proxy-Authorization"
            };
            let head = String::from_utf8(response_to(&m, 200)).unwrap();
            let reply = match m.header(auth_name) {
                None => {
                    let (code, h) = if method == "REGISTER" {
                        (401, "WWW-Authenticate")
                    } else {
                        (407, "Proxy-Authenticate")
                    };
                    head.replacen("200 OK", &format!("{code} Challenge"), 1).replacen(
                        "Content-Length: 0",
                        &format!("{h}: Digest realm=\"test\", nonce=\"n0nce\", algorithm=MD5, qop=\"auth\"\r\nContent-Length: 0"),
                        1,
                    )
                }
                Some(a) => {
                    let p = parse_params(a.strip_prefix("Digest ").unwrap());
                    let g = |k: &str| {
                        p.iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let want = digest_response(
                        Algo::Md5,
                        &g("username"),
                        &g("realm"),
                        password,
                        &method,
                        &g("uri"),
                        &g("nonce"),
                        Some((&g("qop"), &g("nc"), &g("cnonce"))),
                    );
                    let uri_ok = Some(g("uri")) == m.uri();
                    if want == g("response") && uri_ok {
                        let contacts: String = m
                            .header_all("Contact")
                            .iter()
                            .map(|c| {
                                format!(
                                    "Contact: {c};expires={}\r\n",
                                    m.header("Expires").unwrap_or("60")
                                )
                            })
                            .collect();
                        head.replacen(
                            "Content-Length: 0",
                            &format!("{contacts}Content-Length: 0"),
                            1,
                        )
                    } else {
                        head.replacen("200 OK", "403 Forbidden", 1)
                    }
                }
            };
            sock.send_to(reply.as_bytes(), src).unwrap();
        }
    });
    Mock {
        addr,
        stop,
        seen,
        thread: Some(thread),
    }
}

#[test]
fn register_scenarios_against_a_mock() {
    let m = mock("pw21");
    let s = Sipp::new("uac_register.xml").remote(m.addr);
    let contact = s.contact_uri("21");
    let run = s
        .key("ext", "21")
        .key("contact", &contact)
        .key("expires", "120")
        .auth("21", "pw21")
        .auth_uri(&format!("sip:{}", m.addr))
        .run();
    run.assert_success("uac_register.xml");
    assert!(run.logs.contains("granted expires=120"), "{}", run.report());

    let s = Sipp::new("uac_register_403.xml").remote(m.addr);
    let contact = s.contact_uri("21");
    s.key("ext", "21")
        .key("contact", &contact)
        .key("expires", "120")
        .auth("21", "wrong")
        .auth_uri(&m.addr.to_string())
        .run()
        .assert_success("uac_register_403.xml");

    Sipp::new("uac_unregister.xml")
        .remote(m.addr)
        .key("ext", "21")
        .key("contact", "*")
        .auth("21", "pw21")
        .auth_uri(&m.addr.to_string())
        .run()
        .assert_success("uac_unregister.xml");
    let seen = m.seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.header("Contact"), Some("*"));
    assert_eq!(last.header("Expires"), Some("0"));
}

#[test]
fn message_scenarios() {
    let m = mock("pw21");
    Sipp::new("uac_message.xml")
        .remote(m.addr)
        .key("ext", "21")
        .key("target", "22")
        .key("text", "hello there ✓")
        .auth("21", "pw21")
        .auth_uri(&format!("22@{}", m.addr))
        .run()
        .assert_success("uac_message.xml");
    let last = m.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last.text(),
        "hello there ✓",
        "the body must be exactly the text"
    );
    assert!(last.header("Proxy-Authorization").is_some());

    // The UAS: the harness's UA plays the switch delivering a MESSAGE.
    let uas = Sipp::new("uas_message.xml")
        .timeout(Duration::from_secs(10))
        .spawn();
    let mut switch = Ua::new(SocketAddr::from(([127, 0, 0, 1], uas.port())), "21", "x");
    let st = switch.message("22", "to the phone");
    assert_eq!(st, 200);
    let run = uas.wait();
    run.assert_success("uas_message.xml");
    assert_eq!(
        logged(&run.logs, "text"),
        Some("to the phone"),
        "{}",
        run.report()
    );
    assert!(
        logged(&run.logs, "from").unwrap().contains("sip:21@"),
        "{}",
        run.report()
    );
    assert_eq!(
        logged(&run.logs, "type"),
        Some("text/plain"),
        "{}",
        run.report()
    );
}
