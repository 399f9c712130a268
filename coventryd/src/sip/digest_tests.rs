use super::*;
use proptest::prelude::*;

const REALM: &str = "coventry";
const URI: &str = "sip:192.168.1.1";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn authority() -> DigestAuthority {
    DigestAuthority::new(
        REALM.into(),
        vec![Algorithm::Sha256, Algorithm::Md5],
        secs(300),
    )
}

fn users(name: &str) -> Option<Credentials> {
    match name {
        "21" => Some(Credentials::from_password("s3cret")),
        "22" => Some(Credentials {
            password: None,
            ha1_sha256: Some(compute_ha1(Algorithm::Sha256, "22", REALM, "pw22").to_uppercase()),
            ha1_md5: None,
        }),
        "23" => Some(Credentials {
            password: None,
            ha1_sha256: None,
            ha1_md5: Some(compute_ha1(Algorithm::Md5, "23", REALM, "pw23")),
        }),
        _ => None,
    }
}

/// The challenge for `alg` from a fresh 401.
fn challenge(auth: &mut DigestAuthority, now: SystemTime, alg: Algorithm) -> String {
    auth.challenges(now, false)
        .into_iter()
        .find(|c| c.contains(&format!("algorithm={}", alg.as_str())))
        .expect("challenge offered")
}

fn answer(ch: &str, user: &str, pw: &str, nc: u32) -> String {
    answer_challenge(ch, "REGISTER", URI, user, pw, "0a4f113b", nc).expect("answerable")
}

fn ok(user: &str) -> Verdict {
    Verdict::Ok {
        username: user.into(),
    }
}

fn rejected(reason: &'static str) -> Verdict {
    Verdict::Rejected { reason }
}

#[test]
fn rfc2617_md5_vector() {
    let ha1 = compute_ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    let r = compute_response(
        Algorithm::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some(("auth", "00000001", "0a4f113b")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_vectors() {
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    for (alg, expected) in [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let ha1 = compute_ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
        let r = compute_response(
            alg,
            &ha1,
            nonce,
            Some(("auth", "00000001", cnonce)),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, expected, "{alg}");
        // The client helper produces the same response from the RFC's challenge.
        let ch = format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, nonce=\"{nonce}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        );
        let a = answer_challenge(
            &ch,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            cnonce,
            1,
        )
        .expect("answer");
        let p = parse_credentials(&a).expect("parse own answer");
        assert_eq!(p.response.as_deref(), Some(expected));
        assert_eq!(p.nc.as_deref(), Some("00000001"));
        assert_eq!(
            p.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }
}

#[test]
fn algorithm_names() {
    assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
    assert_eq!(Algorithm::parse("MD5"), Some(Algorithm::Md5));
    assert_eq!(Algorithm::parse("MD5-sess"), None);
    assert_eq!(Algorithm::Sha256.to_string(), "SHA-256");
}

#[test]
fn challenges_shape() {
    let mut a = authority();
    let ch = a.challenges(t0(), false);
    assert_eq!(ch.len(), 2);
    assert!(
        ch[0].starts_with("Digest realm=\"coventry\", nonce=\""),
        "{}",
        ch[0]
    );
    assert!(ch[0].contains("algorithm=SHA-256, qop=\"auth\""));
    assert!(ch[1].contains("algorithm=MD5"));
    assert!(!ch[0].contains("stale"));
    let nonce0 = parse_credentials(&ch[0])
        .expect("p")
        .nonce
        .map(|n| n.into_owned());
    let nonce1 = parse_credentials(&ch[1])
        .expect("p")
        .nonce
        .map(|n| n.into_owned());
    assert_eq!(nonce0, nonce1);
    assert_eq!(nonce0.as_deref().map(str::len), Some(64));
    let stale = a.challenges(t0(), true);
    assert!(stale.iter().all(|c| c.ends_with(", stale=true")));
    // Fresh nonce every time.
    assert_ne!(stale[0], ch[0]);
    // Default algorithm list and de-duplication.
    let b = DigestAuthority::new("r\"x".into(), vec![], secs(10));
    assert_eq!(b.algorithms(), [Algorithm::Sha256, Algorithm::Md5]);
    let mut c = DigestAuthority::new(
        "r\"x".into(),
        vec![Algorithm::Md5, Algorithm::Md5],
        secs(10),
    );
    assert_eq!(c.algorithms(), [Algorithm::Md5]);
    let ch = c.challenges(t0(), false);
    assert!(ch[0].starts_with("Digest realm=\"r\\\"x\""));
    assert_eq!(
        parse_credentials(&ch[0]).expect("p").realm.as_deref(),
        Some("r\"x")
    );
}

#[test]
fn accepts_correct_responses_for_both_algorithms() {
    let mut a = authority();
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let ch = challenge(&mut a, t0(), alg);
        let h = answer(&ch, "21", "s3cret", 1);
        assert!(h.contains(&format!("algorithm={alg}")));
        assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), ok("21"));
    }
}

#[test]
fn wrong_password_unknown_user_wrong_realm() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "guess", 1);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, users),
        rejected("wrong response")
    );
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "99", "s3cret", 1);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, users),
        rejected("unknown user")
    );
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(
        &ch.replace("realm=\"coventry\"", "realm=\"other\""),
        "21",
        "s3cret",
        1,
    );
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, users),
        rejected("wrong realm")
    );
    // Method is part of the digest.
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(
        a.verify(t0(), "INVITE", URI, &h, users),
        rejected("wrong response")
    );
    // The nonce got wrong answers: it is dead, even for the right one.
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), Verdict::Dead);
    // A fresh nonce and the right answer work.
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), ok("21"));
}

#[test]
fn a_wrong_answer_kills_the_nonce_without_more_work() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Md5);
    let before = a.digests_checked();
    assert_eq!(
        a.verify(
            t0(),
            "REGISTER",
            URI,
            &answer(&ch, "21", "guess1", 1),
            users
        ),
        rejected("wrong response")
    );
    assert_eq!(a.digests_checked(), before + 1);
    // Guess after guess on the same nonce: refused, no digest computed.
    for (i, pw) in ["guess2", "guess3", "s3cret"].iter().enumerate() {
        let h = answer(&ch, "21", pw, 2 + i as u32);
        assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), Verdict::Dead);
    }
    assert_eq!(a.digests_checked(), before + 1);
    // Unknown users cost the same work and kill the nonce the same way.
    let ch = challenge(&mut a, t0(), Algorithm::Md5);
    let h = answer(&ch, "99", "anything", 1);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, users),
        rejected("unknown user")
    );
    assert_eq!(a.digests_checked(), before + 2);
    let h = answer(&ch, "21", "s3cret", 2);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), Verdict::Dead);
    // A nonce answered rightly lives on (nc counting as before), until a wrong
    // answer comes with it.
    let ch = challenge(&mut a, t0(), Algorithm::Md5);
    assert_eq!(
        a.verify(
            t0(),
            "REGISTER",
            URI,
            &answer(&ch, "21", "s3cret", 1),
            users
        ),
        ok("21")
    );
    assert_eq!(
        a.verify(
            t0(),
            "REGISTER",
            URI,
            &answer(&ch, "21", "s3cret", 2),
            users
        ),
        ok("21")
    );
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &answer(&ch, "21", "bad", 3), users),
        rejected("wrong response")
    );
    assert_eq!(
        a.verify(
            t0(),
            "REGISTER",
            URI,
            &answer(&ch, "21", "s3cret", 4),
            users
        ),
        Verdict::Dead
    );
}

#[test]
fn dead_nonces_are_bounded_and_stay_dead_past_eviction() {
    let mut a = authority();
    let n = MAX_TRACKED_NONCES + 50;
    let mut first = None;
    for i in 0..n {
        let when = t0() + secs((i * 100 / n) as u64);
        let ch = challenge(&mut a, when, Algorithm::Md5);
        let h = answer(&ch, "21", "wrong", 1);
        assert_eq!(
            a.verify(when, "REGISTER", URI, &h, users),
            rejected("wrong response")
        );
        first.get_or_insert(ch);
        assert!(a.tracked_nonces() <= MAX_TRACKED_NONCES);
    }
    // The first dead nonce was evicted: it lies below the floor, so even the
    // right answer only gets a fresh challenge (stale), never a success.
    let h = answer(&first.expect("first"), "21", "s3cret", 2);
    assert_eq!(
        a.verify(t0() + secs(100), "REGISTER", URI, &h, users),
        Verdict::Stale
    );
}

#[test]
fn replay_protection_with_qop() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h1 = answer(&ch, "21", "s3cret", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h1, users), ok("21"));
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h1, users),
        rejected("replayed nonce")
    );
    let h2 = answer(&ch, "21", "s3cret", 2);
    assert_eq!(
        a.verify(t0() + secs(10), "REGISTER", URI, &h2, users),
        ok("21")
    );
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h1, users),
        rejected("replayed nonce")
    );
    // Skipping ahead is fine, going back is not.
    let h9 = answer(&ch, "21", "s3cret", 9);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h9, users), ok("21"));
    let h5 = answer(&ch, "21", "s3cret", 5);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h5, users),
        rejected("replayed nonce")
    );
    assert_eq!(a.tracked_nonces(), 1);
}

#[test]
fn responses_without_qop_are_single_use() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Md5).replace(", qop=\"auth\"", "");
    let h = answer(&ch, "21", "s3cret", 1);
    assert!(!h.contains("qop"));
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), ok("21"));
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, users),
        rejected("replayed nonce")
    );
}

#[test]
fn stale_nonce() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    // Still valid exactly at the TTL.
    let h2 = answer(&ch, "21", "s3cret", 2);
    assert_eq!(
        a.verify(t0() + secs(300), "REGISTER", URI, &h2, users),
        ok("21")
    );
    assert_eq!(
        a.verify(t0() + secs(301), "REGISTER", URI, &h, users),
        Verdict::Stale
    );
    // A wrong password with an expired nonce is still a rejection.
    let bad = answer(&ch, "21", "nope", 3);
    assert_eq!(
        a.verify(t0() + secs(301), "REGISTER", URI, &bad, users),
        rejected("wrong response")
    );
    // Nonces from the far future (clock stepped back) are stale too.
    let ch = challenge(&mut a, t0() + secs(3600), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), Verdict::Stale);
}

#[test]
fn uri_must_match() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(
        a.verify(t0(), "REGISTER", "sip:192.168.1.2", &h, users),
        rejected("uri mismatch")
    );
    let mut n = 1;
    for equivalent in [
        "SIP:192.168.1.1",
        "sip:192.168.1.1:5060",
        "sip:192.168.1.1;transport=udp",
    ] {
        n += 1;
        let h = answer(&ch, "21", "s3cret", n);
        assert_eq!(
            a.verify(t0(), "REGISTER", equivalent, &h, users),
            ok("21"),
            "{equivalent}"
        );
    }
    for different in [
        "sip:192.168.1.1:5070",
        "sips:192.168.1.1",
        "sip:21@192.168.1.1",
        "garbage",
    ] {
        n += 1;
        let h = answer(&ch, "21", "s3cret", n);
        assert_eq!(
            a.verify(t0(), "REGISTER", different, &h, users),
            rejected("uri mismatch"),
            "{different}"
        );
    }
    // User part is case-sensitive, host is not.
    let ch2 = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer_challenge(
        &ch2,
        "INVITE",
        "sip:Bob@Example.com",
        "21",
        "s3cret",
        "c",
        1,
    )
    .expect("a");
    assert_eq!(
        a.verify(t0(), "INVITE", "sip:Bob@example.COM", &h, users),
        ok("21")
    );
    let h = answer_challenge(
        &ch2,
        "INVITE",
        "sip:Bob@Example.com",
        "21",
        "s3cret",
        "c",
        2,
    )
    .expect("a");
    assert_eq!(
        a.verify(t0(), "INVITE", "sip:bob@example.com", &h, users),
        rejected("uri mismatch")
    );
}

#[test]
fn ha1_only_credentials() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "22", "pw22", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), ok("22"));
    let h = answer(&ch, "23", "pw23", 1);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, users),
        rejected("no credentials for algorithm")
    );
    let ch = challenge(&mut a, t0(), Algorithm::Md5);
    let h = answer(&ch, "23", "pw23", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), ok("23"));
    // A malformed stored HA1 falls back to the password (absent here).
    let broken = |_: &str| {
        Some(Credentials {
            password: None,
            ha1_sha256: None,
            ha1_md5: Some("not-hex".into()),
        })
    };
    let h = answer(&ch, "23", "pw23", 2);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &h, broken),
        rejected("no credentials for algorithm")
    );
}

#[test]
fn absent_algorithm_means_md5() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Md5).replace(", algorithm=MD5", "");
    let h = answer(&ch, "21", "s3cret", 1);
    let h = h.replace(", algorithm=MD5", "");
    assert!(!h.contains("algorithm"));
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), ok("21"));
    // ... which is refused when MD5 is not offered.
    let mut strict = DigestAuthority::new(REALM.into(), vec![Algorithm::Sha256], secs(300));
    let ch = challenge(&mut strict, t0(), Algorithm::Sha256).replace("SHA-256", "MD5");
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(
        strict.verify(t0(), "REGISTER", URI, &h, users),
        rejected("algorithm not offered")
    );
}

#[test]
fn forged_and_foreign_nonces_get_a_fresh_challenge() {
    let mut a = authority();
    let mut other = authority();
    let ch = challenge(&mut other, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), Verdict::Stale);
    // Tampering with the timestamp breaks the MAC.
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let nonce = parse_credentials(&ch)
        .expect("p")
        .nonce
        .expect("n")
        .into_owned();
    let mut forged = nonce.clone().into_bytes();
    forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("ascii");
    let h = answer(&ch.replace(&nonce, &forged), "21", "s3cret", 1);
    assert_eq!(a.verify(t0(), "REGISTER", URI, &h, users), Verdict::Stale);
    for junk in ["", "zz", "00", &"0".repeat(64), &nonce[..62]] {
        let h = answer(&ch.replace(&nonce, junk), "21", "s3cret", 1);
        assert_eq!(
            a.verify(t0(), "REGISTER", URI, &h, users),
            Verdict::Stale,
            "{junk}"
        );
    }
    // The same key accepts its own nonces across instances.
    let key = [7u8; 32];
    let mut k1 = DigestAuthority::with_key(REALM.into(), vec![], secs(300), key);
    let mut k2 = DigestAuthority::with_key(REALM.into(), vec![], secs(300), key);
    let ch = challenge(&mut k1, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    assert_eq!(k2.verify(t0(), "REGISTER", URI, &h, users), ok("21"));
}

#[test]
fn unsupported_and_malformed_fields() {
    let mut a = authority();
    let ch = challenge(&mut a, t0(), Algorithm::Sha256);
    let h = answer(&ch, "21", "s3cret", 1);
    let cases = [
        (h.replace("qop=auth", "qop=auth-int"), "unsupported qop"),
        (h.replace(", nc=00000001", ""), "qop without nc or cnonce"),
        (h.replace("nc=00000001", "nc=xyz"), "bad nonce count"),
        (h.replace("nc=00000001", "nc=123456789"), "bad nonce count"),
        (
            h.replace("algorithm=SHA-256", "algorithm=SHA-512"),
            "unsupported algorithm",
        ),
        (h.replace("Digest ", "Basic "), "not a Digest credential"),
        (
            h.replace("username=\"21\", ", ""),
            "missing digest parameter",
        ),
        (format!("{h}, userhash=true"), "userhash not supported"),
        (format!("{h}, nonce=\"x\""), "duplicate digest parameter"),
        (
            h.replace("response=\"", "response=\"zz"),
            "malformed response",
        ),
    ];
    for (header, reason) in cases {
        assert_eq!(
            a.verify(t0(), "REGISTER", URI, &header, users),
            rejected(reason),
            "{header}"
        );
    }
    // A short (MD5-length) response for SHA-256 is malformed, not a crash.
    let p = parse_credentials(&h).expect("p");
    let resp = p.response.expect("r").into_owned();
    let short = h.replace(&resp, &resp[..32]);
    assert_eq!(
        a.verify(t0(), "REGISTER", URI, &short, users),
        rejected("malformed response")
    );
    // Upper-case hex in the response is accepted.
    let upper = h.replace(&resp, &resp.to_uppercase());
    assert_eq!(a.verify(t0(), "REGISTER", URI, &upper, users), ok("21"));
}

#[test]
fn parser_tolerates_real_world_spelling() {
    let v = "  digest   username = \"21\" ,realm=\"co\\\"ven\\\\try\",, nonce=abc ,uri=\"sip:h\",\tresponse=\"ff\", \
             qop=\"auth\", nc=00000001, cnonce=\"x, y\", opaque=\"\", X-Unknown=\"1\", another=tok";
    let p = parse_credentials(v).expect("parse");
    assert_eq!(p.username.as_deref(), Some("21"));
    assert_eq!(p.realm.as_deref(), Some("co\"ven\\try"));
    assert_eq!(p.nonce.as_deref(), Some("abc"));
    assert_eq!(p.uri.as_deref(), Some("sip:h"));
    assert_eq!(p.qop.as_deref(), Some("auth"));
    assert_eq!(p.cnonce.as_deref(), Some("x, y"));
    assert_eq!(p.opaque.as_deref(), Some(""));
    for bad in [
        "Digest username=\"unterminated",
        "Digest username",
        "Digest =x",
        "Digest a=b c=d",
        "Digest a=\"b\"junk",
        "Basic abc",
        "",
    ] {
        assert!(parse_credentials(bad).is_err(), "{bad}");
    }
    assert!(parse_credentials("Digest").is_ok());
    assert_eq!(claimed_username(v).as_deref(), Some("21"));
    assert_eq!(
        claimed_username("Digest username=\"a\u{7}b\"").as_deref(),
        Some("ab")
    );
}

#[test]
fn credentials_debug_is_redacted() {
    let c = Credentials::from_password("topsecret");
    let d = format!("{c:?}");
    assert!(!d.contains("topsecret"), "{d}");
    let a = authority();
    assert!(!format!("{a:?}").contains("key"));
}

#[test]
fn replay_map_is_bounded_and_pruned() {
    let mut a = authority();
    let n = MAX_TRACKED_NONCES + 50;
    let mut first = None;
    for i in 0..n {
        // Spread issue times over 100 s so eviction has an order to follow.
        let when = t0() + secs((i * 100 / n) as u64);
        let ch = challenge(&mut a, when, Algorithm::Md5);
        let h = answer(&ch, "21", "s3cret", 1);
        assert_eq!(a.verify(when, "REGISTER", URI, &h, users), ok("21"));
        if i == 0 {
            first = Some(ch);
        }
        assert!(a.tracked_nonces() <= MAX_TRACKED_NONCES);
    }
    // The oldest nonce was evicted while still valid: it must not become
    // replayable, so it is reported stale.
    let first = first.expect("first");
    let h = answer(&first, "21", "s3cret", 1);
    assert_eq!(
        a.verify(t0() + secs(100), "REGISTER", URI, &h, users),
        Verdict::Stale
    );
    let h = answer(&first, "21", "s3cret", 2);
    assert_eq!(
        a.verify(t0() + secs(100), "REGISTER", URI, &h, users),
        Verdict::Stale
    );
    // Once everything has expired, a later call prunes the map.
    let later = t0() + secs(1000);
    let _ = a.challenges(later, false);
    assert_eq!(a.tracked_nonces(), 0);
}

/// Rough timing, run with `cargo test --release -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing_verify() {
    let mut a = authority();
    let n = 20_000u32;
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let ch = challenge(&mut a, t0(), alg);
        let headers: Vec<String> = (1..=n).map(|i| answer(&ch, "21", "s3cret", i)).collect();
        let creds = Credentials {
            password: None,
            ha1_sha256: Some(compute_ha1(Algorithm::Sha256, "21", REALM, "s3cret")),
            ha1_md5: Some(compute_ha1(Algorithm::Md5, "21", REALM, "s3cret")),
        };
        let start = std::time::Instant::now();
        for h in &headers {
            let v = a.verify(t0(), "REGISTER", URI, h, |_| Some(creds.clone()));
            assert_eq!(v, ok("21"));
        }
        let per = start.elapsed() / n;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(a.challenges(t0(), false));
        }
        let per_ch = start.elapsed() / n;
        println!("{alg}: verify {per:?}, challenges {per_ch:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parser_never_panics(s in "\\PC{0,200}", t in "[ -~]{0,200}") {
        let _ = parse_credentials(&s);
        let _ = parse_credentials(&t);
        let _ = parse_credentials(&format!("Digest {t}"));
        let _ = claimed_username(&s);
        let _ = answer_challenge(&format!("Digest {t}"), "REGISTER", URI, "21", "pw", "c", 1);
    }

    #[test]
    fn verify_never_panics_on_mutations(
        edits in proptest::collection::vec((any::<usize>(), "[ -~]{0,3}"), 0..6),
        now_off in 0u64..1000,
    ) {
        let mut a = authority();
        let ch = challenge(&mut a, t0(), Algorithm::Sha256);
        let mut h = answer(&ch, "21", "s3cret", 1);
        for (pos, ins) in &edits {
            let pos = pos % (h.len() + 1);
            if h.is_char_boundary(pos) {
                h.insert_str(pos, ins);
            }
        }
        let v = a.verify(t0() + secs(now_off), "REGISTER", URI, &h, users);
        if edits.iter().all(|(_, s)| s.is_empty()) && now_off <= 300 {
            prop_assert_eq!(v, ok("21"));
        }
    }
}

#[test]
fn a_nonce_is_good_only_from_the_address_it_was_sent_to() {
    let mut auth = authority();
    let (here, there): (IpAddr, IpAddr) = (
        "127.0.0.2".parse().expect("ip"),
        "10.0.0.7".parse().expect("ip"),
    );
    let ch = auth
        .challenges_to(t0(), false, &[Algorithm::Md5], Some(here))
        .remove(0);
    // A wrong answer spoofed from elsewhere with that nonce checks nothing,
    // kills nothing and is no failure: the nonce is simply not ours for it.
    let spoofed = answer(&ch, "21", "guess", 1);
    let before = auth.digests_checked();
    let v = auth.verify_from(t0(), ("REGISTER", URI), &spoofed, Some(there), users);
    assert_eq!(v, Verdict::Stale);
    assert_eq!(auth.digests_checked(), before);
    // The right answer from where it was sent works, and still works after.
    let good = answer(&ch, "21", "s3cret", 1);
    let v = auth.verify_from(t0(), ("REGISTER", URI), &good, Some(here), users);
    assert_eq!(v, ok("21"));
    // Unbound nonces are not good from any address that binds.
    let plain = challenge(&mut auth, t0(), Algorithm::Md5);
    let v = auth.verify_from(
        t0(),
        ("REGISTER", URI),
        &answer(&plain, "21", "s3cret", 1),
        Some(here),
        users,
    );
    assert_eq!(v, Verdict::Stale);
}
