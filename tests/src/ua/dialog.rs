//! Calls with the in-test UA: the caller side (INVITE answering the 407 challenge,
//! provisional and final responses, hop-by-hop ACK for non-2xx finals, ACK for the
//! 2xx, CANCEL), the callee side (INVITEs are queued and the test answers them with
//! [`Ua::respond`]; CANCEL is answered by the reader thread with 200 + 487), and
//! dialogs with in-dialog requests (BYE, re-INVITE, UPDATE, INFO, REFER, NOTIFY)
//! sent along the route set the switch's Record-Route made.

use super::{lock, response_with, txn_key, uas_tag, unique, Exchange, Msg, Ua};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A dialog as one side sees it (RFC 3261 §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our name-addr (From of our requests), without tag.
    pub local_uri: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's name-addr (To of our requests), without tag.
    pub remote_uri: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Request-URI of our in-dialog requests (the peer's Contact URI).
    pub remote_target: String,
    /// Route header values of our in-dialog requests, in order.
    pub route: Vec<String>,
    /// CSeq number of our last request in the dialog.
    pub local_cseq: u32,
}

/// One outgoing call (the caller's INVITE client transaction and what came back).
#[derive(Debug, Clone)]
pub struct UaCall {
    /// The number dialled.
    pub target: String,
    /// Request-URI of the INVITE.
    pub ruri: String,
    /// Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: String,
    /// CSeq number of the current INVITE.
    pub cseq: u32,
    /// Top Via branch of the current INVITE.
    pub branch: String,
    /// The current INVITE as sent.
    pub invite: Vec<u8>,
    /// The offer sent.
    pub sdp: Vec<u8>,
    /// The 407/401 the first INVITE got, if any.
    pub challenge: Option<Msg>,
    /// Every response to the current INVITE, in arrival order (retransmissions too).
    pub responses: Vec<Msg>,
    /// The first final response to the current INVITE.
    pub final_response: Option<Msg>,
    /// The dialog, once a 2xx arrived.
    pub dialog: Option<Dialog>,
    /// The ACK sent for the 2xx (sent again when the 2xx is retransmitted).
    pub ack: Option<Vec<u8>>,
    /// When the authenticated INVITE was sent.
    pub sent_at: Instant,
    /// ACK non-2xx final responses automatically (true unless a test wants to
    /// watch the switch retransmit them).
    pub auto_ack: bool,
}

impl UaCall {
    /// Status codes received so far for the current INVITE, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().filter_map(Msg::status).collect()
    }

    /// Status of the final response (0: none yet).
    pub fn final_status(&self) -> u16 {
        self.final_response
            .as_ref()
            .and_then(Msg::status)
            .unwrap_or(0)
    }

    /// The dialog; panics when the call was not answered.
    pub fn dialog(&mut self) -> &mut Dialog {
        match self.dialog.as_mut() {
            Some(d) => d,
            None => panic!(
                "call {} has no dialog (responses {:?})",
                self.call_id,
                self.responses.iter().map(Msg::status).collect::<Vec<_>>()
            ),
        }
    }

    /// A one-line description for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "call to {} (Call-ID {}), responses {:?}",
            self.target,
            self.call_id,
            self.statuses()
        )
    }
}

/// The value of parameter `name` in a header value (after the name-addr).
pub fn header_param(value: &str, name: &str) -> Option<String> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    params
        .split(';')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .next()
}

/// The tag of a From/To value.
pub fn tag_of(value: &str) -> Option<String> {
    header_param(value, "tag")
}

/// A From/To value without its tag parameter.
pub fn without_tag(value: &str) -> String {
    let (head, params) = match value.rfind('>') {
        Some(i) => (&value[..=i], &value[i + 1..]),
        None => match value.split_once(';') {
            Some((h, p)) => (h, p),
            None => (value, ""),
        },
    };
    let mut out = head.trim().to_string();
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let k = p.split('=').next().unwrap_or("").trim();
        if !k.eq_ignore_ascii_case("tag") {
            let _ = write!(out, ";{p}");
        }
    }
    out
}

/// The URI inside a name-addr (`"x" <sip:a@b;lr>;p=1` → `sip:a@b;lr`), or the
/// addr-spec without header parameters.
pub fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_string(),
        _ => value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string(),
    }
}

/// An SDP offer/answer for tests: unique origin, `direction` (`sendrecv`,
/// `sendonly`, `recvonly`, `inactive`), session version `version`. Lines end in
/// CRLF; the body exercises what must pass untouched: a session name with spaces
/// and UTF-8, several media attributes.
pub fn sdp(user: &str, version: u32, direction: &str) -> Vec<u8> {
    let id = unique("");
    let port = 20_000 + (id.len() as u32 % 7) * 2;
    format!(
        "v=0\r\n\
         o={user} {id} {version} IN IP4 127.0.0.1\r\n\
         s=coventry test call ✓ {user}\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a={direction}\r\n"
    )
    .into_bytes()
}

/// Content type of SDP bodies.
pub const SDP: &str = "application/sdp";

impl Ua {
    /// Build a request with explicit Via branch, From, To and CSeq. `extra` are whole
    /// header lines without CRLF; `body` is `(content type, bytes)`.
    #[allow(clippy::too_many_arguments)]
    pub fn build_request(
        &self,
        method: &str,
        ruri: &str,
        branch: &str,
        from: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let mut s = format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             User-Agent: {}\r\n",
            self.local, self.user_agent
        );
        for l in extra {
            let _ = write!(s, "{l}\r\n");
        }
        match body {
            Some((ctype, b)) => {
                let _ = write!(
                    s,
                    "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                );
                let mut v = s.into_bytes();
                v.extend_from_slice(b);
                v
            }
            None => {
                s.push_str("Content-Length: 0\r\n\r\n");
                s.into_bytes()
            }
        }
    }

    /// `Contact: <sip:USER@127.0.0.1:PORT>`.
    pub fn contact_header(&self) -> String {
        format!("Contact: <{}>", self.contact_uri())
    }

    fn invite_bytes(&self, call: &UaCall, extra: &[String], auth: Option<(&str, &str)>) -> Vec<u8> {
        let mut ex = vec![self.contact_header()];
        ex.extend(extra.iter().cloned());
        if let Some((n, v)) = auth {
            ex.push(format!("{n}: {v}"));
        }
        self.build_request(
            "INVITE",
            &call.ruri,
            &call.branch,
            &format!("<{}>;tag={}", self.aor(), call.from_tag),
            &format!("<{}>", call.ruri),
            &call.call_id,
            call.cseq,
            &ex,
            Some((SDP, &call.sdp)),
        )
    }

    /// Send the next response that satisfies `pred`, first from the stash, then
    /// from the socket until `deadline` (others are stashed for later).
    pub fn next_response_where(
        &self,
        deadline: Instant,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        {
            let mut st = lock(&self.resp_stash);
            if let Some(i) = st.iter().position(&pred) {
                return st.remove(i);
            }
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.responses.recv_timeout(left) {
                Ok(m) if pred(&m) => return Some(m),
                Ok(m) => lock(&self.resp_stash).push_back(m),
                Err(_) => return None,
            }
        }
    }

    /// The next request whose method is `method` within `timeout` (other requests
    /// stay queued for [`Ua::recv_request`]).
    pub fn recv_method(&self, method: &str, timeout: Duration) -> Option<Msg> {
        {
            let mut st = lock(&self.req_stash);
            if let Some(i) = st
                .iter()
                .position(|m| m.method().as_deref() == Some(method))
            {
                return st.remove(i);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.requests.recv_timeout(left) {
                Ok(m) if m.method().as_deref() == Some(method) => return Some(m),
                Ok(m) => lock(&self.req_stash).push_back(m),
                Err(_) => return None,
            }
        }
    }

    /// The next `method` request, or panic naming `what` and listing what came.
    pub fn expect_method(&self, method: &str, what: &str, timeout: Duration) -> Msg {
        match self.recv_method(method, timeout) {
            Some(m) => m,
            None => {
                let other: Vec<String> = lock(&self.req_stash).iter().map(Msg::summary).collect();
                panic!(
                    "{} ({}): no {method} within {timeout:?} ({what}); other requests: {other:?}; \
                     unparsed datagrams: {:?}",
                    self.user,
                    self.local,
                    self.unparsed()
                )
            }
        }
    }

    /// The next INVITE (the phone rings), or panic naming `what`.
    pub fn expect_invite(&self, what: &str, timeout: Duration) -> Msg {
        self.expect_method("INVITE", what, timeout)
    }

    /// Answer `req` (an INVITE or any request) with `status`, adding our Contact to
    /// responses to INVITE (other than 100) and `body`; for an INVITE the response
    /// is remembered (repeated on retransmissions; a final one stops a later CANCEL
    /// from producing 487). Returns the bytes sent.
    pub fn respond(&self, req: &Msg, status: u16, body: Option<(&str, &[u8])>) -> Vec<u8> {
        self.respond_with(req, status, &[], body)
    }

    /// [`Ua::respond`] with `extra` header lines (without CRLF).
    pub fn respond_with(
        &self,
        req: &Msg,
        status: u16,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let invite = req.method().as_deref() == Some("INVITE");
        let mut ex = if invite && status > 100 && status < 300 {
            vec![self.contact_header()]
        } else {
            Vec::new()
        };
        ex.extend(extra.iter().cloned());
        let bytes = response_with(req, status, &ex, body);
        if invite {
            let mut inv = lock(&self.invites);
            if let Some(t) = inv.get_mut(&txn_key(req)) {
                t.last = Some(bytes.clone());
                if status >= 200 {
                    t.final_status = Some(status);
                }
            }
            if status >= 200 {
                // Resent until the ACK comes (§13.3.1.4, §17.2.1).
                if let (Some(cid), Some((cseq, _))) = (req.call_id(), req.cseq()) {
                    lock(&self.timers).final_sent(cid, cseq, bytes.clone(), req.src);
                }
            }
        }
        if let Err(e) = self.sock.send_to(&bytes, req.src) {
            panic!("UA send response: {e}");
        }
        bytes
    }

    /// Answer an INVITE with `status` and the SDP `sdp`.
    pub fn respond_sdp(&self, req: &Msg, status: u16, sdp: &[u8]) -> Vec<u8> {
        self.respond(req, status, Some((SDP, sdp)))
    }

    /// The final status this UA sent for the INVITE `req` (e.g. 487 after CANCEL).
    pub fn invite_final(&self, req: &Msg) -> Option<u16> {
        lock(&self.invites)
            .get(&txn_key(req))
            .and_then(|t| t.final_status)
    }

    /// The dialog of a call this UA received (callee side), from the INVITE.
    pub fn dialog_as_callee(&self, invite: &Msg) -> Dialog {
        let from = invite.header("From").unwrap_or("");
        let to = invite.header("To").unwrap_or("");
        Dialog {
            call_id: invite.call_id().unwrap_or("").to_string(),
            local_uri: without_tag(to),
            local_tag: uas_tag(invite),
            remote_uri: without_tag(from),
            remote_tag: tag_of(from).unwrap_or_default(),
            remote_target: invite
                .list("Contact")
                .first()
                .map(|c| uri_of(c))
                .unwrap_or_default(),
            route: invite.list("Record-Route"),
            local_cseq: 0,
        }
    }

    /// Start a call to `target` with the offer `sdp`: INVITE, ACK the 407 (same
    /// branch), INVITE again with Proxy-Authorization (digest URI = Request-URI).
    /// Returns once the authenticated INVITE is sent (or the first INVITE got a
    /// final response that is not a challenge). `extra`: more header lines.
    pub fn call_start_with(&mut self, target: &str, sdp: &[u8], extra: &[String]) -> UaCall {
        let ruri = self.target_uri(target);
        let mut call = UaCall {
            target: target.to_string(),
            ruri,
            call_id: unique("call-"),
            from_tag: unique("ft"),
            cseq: 1,
            branch: unique("z9hG4bK"),
            invite: Vec::new(),
            sdp: sdp.to_vec(),
            challenge: None,
            responses: Vec::new(),
            final_response: None,
            dialog: None,
            ack: None,
            sent_at: Instant::now(),
            auto_ack: true,
        };
        call.invite = self.invite_bytes(&call, extra, None);
        self.send_raw(&call.invite);
        self.retransmit(&call.invite);
        let first = self.call_final(&mut call, self.timeout);
        let Some(first) = first else {
            return call;
        };
        if first.status() != Some(407) && first.status() != Some(401) {
            return call;
        }
        let Some((n, v)) = self.credentials(&first, "INVITE", &call.ruri) else {
            return call;
        };
        self.last_auth = Some((n.clone(), v.clone()));
        call.challenge = Some(first);
        call.cseq += 1;
        call.branch = unique("z9hG4bK");
        call.responses.clear();
        call.final_response = None;
        call.invite = self.invite_bytes(&call, extra, Some((&n, &v)));
        call.sent_at = Instant::now();
        self.send_raw(&call.invite);
        self.retransmit(&call.invite);
        call
    }

    /// [`Ua::call_start_with`] without extra headers.
    pub fn call_start(&mut self, target: &str, sdp: &[u8]) -> UaCall {
        self.call_start_with(target, sdp, &[])
    }

    /// The INVITE of `call` with credentials `auth` (a header line) instead of an
    /// answer to the challenge: for spoofing tests. Sends it and returns the call.
    pub fn call_start_raw(&mut self, target: &str, sdp: &[u8], auth: Option<&str>) -> UaCall {
        let ruri = self.target_uri(target);
        let mut call = UaCall {
            target: target.to_string(),
            ruri,
            call_id: unique("call-"),
            from_tag: unique("ft"),
            cseq: 1,
            branch: unique("z9hG4bK"),
            invite: Vec::new(),
            sdp: sdp.to_vec(),
            challenge: None,
            responses: Vec::new(),
            final_response: None,
            dialog: None,
            ack: None,
            sent_at: Instant::now(),
            auto_ack: true,
        };
        let extra: Vec<String> = auth.map(str::to_string).into_iter().collect();
        call.invite = self.invite_bytes(&call, &extra, None);
        self.send_raw(&call.invite);
        self.retransmit(&call.invite);
        call
    }

    /// The next response to the current INVITE of `call` within `timeout` (the
    /// reader thread retransmits the INVITE until a response comes, Timer A, and
    /// ACKs a retransmitted 2xx again). A non-2xx final is ACKed (hop-by-hop,
    /// every time it comes); the first 2xx makes the dialog.
    pub fn call_next(&self, call: &mut UaCall, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        let cid = call.clone_key();
        let m = self.next_response_where(deadline, |m| Self::is_invite_response_key(&cid, m))?;
        let status = m.status().unwrap_or(0);
        call.responses.push(m.clone());
        if status >= 200 && call.final_response.is_none() {
            call.final_response = Some(m.clone());
        }
        if (200..300).contains(&status) {
            if call.dialog.is_none() {
                call.dialog = Some(self.dialog_as_caller(call, &m));
            }
        } else if status >= 300 && call.auto_ack {
            let ack = self.ack_non2xx(call, &m);
            self.send_raw(&ack);
        }
        Some(m)
    }

    fn is_invite_response_key(key: &(String, u32), m: &Msg) -> bool {
        m.call_id() == Some(key.0.as_str()) && m.cseq() == Some((key.1, "INVITE".to_string()))
    }

    /// The first final response to the current INVITE (provisional ones are
    /// collected in `call.responses`), within `timeout`.
    pub fn call_final(&self, call: &mut UaCall, timeout: Duration) -> Option<Msg> {
        if let Some(f) = &call.final_response {
            return Some(f.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.call_next(call, left)?;
            if m.status().unwrap_or(0) >= 200 {
                return Some(m);
            }
        }
    }

    /// Wait for a response with `status` to the current INVITE (it may have
    /// arrived already); panics with what came instead.
    pub fn call_expect(&self, call: &mut UaCall, status: u16, timeout: Duration) -> Msg {
        if let Some(m) = call.responses.iter().find(|m| m.status() == Some(status)) {
            return m.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.call_next(call, left) {
                Some(m) if m.status() == Some(status) => return m,
                Some(m) if m.status().unwrap_or(0) >= 300 => panic!(
                    "{}: expected {status}, got final {}:\n{}",
                    call.describe(),
                    m.status().unwrap_or(0),
                    m.dump()
                ),
                Some(_) => {}
                None => panic!(
                    "{}: no {status} within {timeout:?}; unparsed: {:?}",
                    call.describe(),
                    self.unparsed()
                ),
            }
        }
    }

    /// Wait for the final response; panics unless it is `status`.
    pub fn call_expect_final(&self, call: &mut UaCall, status: u16, timeout: Duration) -> Msg {
        match self.call_final(call, timeout) {
            Some(m) if m.status() == Some(status) => m,
            Some(m) => panic!(
                "{}: expected final {status}, got:\n{}",
                call.describe(),
                m.dump()
            ),
            None => panic!(
                "{}: no final response within {timeout:?} (expected {status})",
                call.describe()
            ),
        }
    }

    /// The (early) dialog a response to `call`'s INVITE makes, caller side: the
    /// route set is its Record-Route reversed, the target its Contact.
    pub fn dialog_as_caller(&self, call: &UaCall, resp: &Msg) -> Dialog {
        let to = resp.header("To").unwrap_or("");
        let mut route = resp.list("Record-Route");
        route.reverse();
        Dialog {
            call_id: call.call_id.clone(),
            local_uri: format!("<{}>", self.aor()),
            local_tag: call.from_tag.clone(),
            remote_uri: without_tag(to),
            remote_tag: tag_of(to).unwrap_or_default(),
            remote_target: resp
                .list("Contact")
                .first()
                .map(|c| uri_of(c))
                .unwrap_or_default(),
            route,
            local_cseq: call.cseq,
        }
    }

    /// The ACK for a non-2xx final response: same branch and Request-URI as the
    /// INVITE, To from the response (RFC 3261 §17.1.1.3).
    pub fn ack_non2xx(&self, call: &UaCall, resp: &Msg) -> Vec<u8> {
        self.build_request(
            "ACK",
            &call.ruri,
            &call.branch,
            &format!("<{}>;tag={}", self.aor(), call.from_tag),
            resp.header("To").unwrap_or(""),
            &call.call_id,
            call.cseq,
            &[],
            None,
        )
    }

    /// ACK the 2xx of `call` (along the dialog's route) and return the bytes sent.
    pub fn ack(&self, call: &mut UaCall) -> Vec<u8> {
        let cseq = call.cseq;
        let d = call.dialog().clone();
        let bytes = self.dialog_request_bytes(&d, "ACK", cseq, &unique("z9hG4bK"), &[], None);
        self.send_raw(&bytes);
        self.ack_sent(&d, cseq, &bytes);
        call.ack = Some(bytes.clone());
        bytes
    }

    /// An out-of-dialog `method` (SUBSCRIBE, NOTIFY, PUBLISH, OPTIONS...) to
    /// `target`, answering one 407 challenge (digest URI = Request-URI). `extra`
    /// are header lines; our Contact is added.
    pub fn out_of_dialog(
        &mut self,
        method: &str,
        target: &str,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> Exchange {
        let ruri = self.target_uri(target);
        let call_id = unique("ood-");
        let tag = unique("t");
        let mut ex = vec![self.contact_header()];
        ex.extend(extra.iter().cloned());
        let mk = |ua: &Ua, cseq: u32, ex: &[String]| {
            ua.build_request(
                method,
                &ruri,
                &unique("z9hG4bK"),
                &format!("<{}>;tag={tag}", ua.aor()),
                &format!("<{ruri}>"),
                &call_id,
                cseq,
                ex,
                body,
            )
        };
        let matches = |cseq: u32| {
            let (cid, m) = (call_id.clone(), method.to_string());
            move |r: &Msg| r.call_id() == Some(cid.as_str()) && r.cseq() == Some((cseq, m.clone()))
        };
        let req = mk(self, 1, &ex);
        let first = self.transact_where(&req, false, matches(1));
        let challenged = first
            .as_ref()
            .is_some_and(|r| r.status() == Some(407) || r.status() == Some(401));
        if !challenged {
            return Exchange {
                challenge: None,
                response: first,
                request: req,
            };
        }
        let Some(first) = first else {
            return Exchange {
                challenge: None,
                response: None,
                request: req,
            };
        };
        let Some((n, v)) = self.credentials(&first, method, &ruri) else {
            return Exchange {
                challenge: None,
                response: Some(first),
                request: req,
            };
        };
        ex.push(format!("{n}: {v}"));
        let req2 = mk(self, 2, &ex);
        let resp = self.transact_where(&req2, false, matches(2));
        Exchange {
            challenge: Some(first),
            response: resp,
            request: req2,
        }
    }

    /// CANCEL the current INVITE of `call`; returns the response to the CANCEL
    /// (the INVITE's own responses stay for [`Ua::call_next`]).
    pub fn cancel(&self, call: &UaCall) -> Option<Msg> {
        let bytes = self.build_request(
            "CANCEL",
            &call.ruri,
            &call.branch,
            &format!("<{}>;tag={}", self.aor(), call.from_tag),
            &format!("<{}>", call.ruri),
            &call.call_id,
            call.cseq,
            &[],
            None,
        );
        let key = (call.call_id.clone(), call.cseq);
        self.transact_where(&bytes, false, move |m| {
            m.call_id() == Some(key.0.as_str()) && m.cseq() == Some((key.1, "CANCEL".to_string()))
        })
    }

    /// Send `req` and wait for a final response satisfying `pred`, bounded by
    /// `self.timeout`; the reader thread retransmits `req` meanwhile (Timer A until
    /// a provisional for an INVITE, Timer E until a final otherwise).
    pub fn transact_where(
        &self,
        req: &[u8],
        invite: bool,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        self.send_raw(req);
        self.transact_where_sent(req, invite, pred)
    }

    /// [`Ua::transact_where`] for a request already sent once. (`invite` is
    /// known from the request itself; kept for callers.)
    pub fn transact_where_sent(
        &self,
        req: &[u8],
        _invite: bool,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        let txn = self.retransmit(req);
        let deadline = Instant::now() + self.timeout;
        let got = loop {
            match self.next_response_where(deadline, &pred) {
                Some(m) if m.status().is_some_and(|s| s >= 200) => break Some(m),
                Some(_) => {} // provisional: the reader thread took note
                None => break None,
            }
        };
        self.stop_retransmitting(txn);
        got
    }

    /// Remember the ACK `bytes` of the 2xx to the INVITE with `cseq` in `d`, for
    /// the reader thread to send again if that 2xx is retransmitted.
    fn ack_sent(&self, d: &Dialog, cseq: u32, bytes: &[u8]) {
        let to = self.server;
        lock(&self.timers).ack_sent(&d.call_id, cseq, bytes.to_vec(), to);
    }

    /// An in-dialog request as bytes (Route from the dialog's route set).
    pub fn dialog_request_bytes(
        &self,
        d: &Dialog,
        method: &str,
        cseq: u32,
        branch: &str,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let mut ex: Vec<String> = d.route.iter().map(|r| format!("Route: {r}")).collect();
        if method == "INVITE" || method == "UPDATE" || method == "REFER" {
            ex.push(self.contact_header());
        }
        ex.extend(extra.iter().cloned());
        self.build_request(
            method,
            &d.remote_target,
            branch,
            &format!("{};tag={}", d.local_uri, d.local_tag),
            &format!("{};tag={}", d.remote_uri, d.remote_tag),
            &d.call_id,
            cseq,
            &ex,
            body,
        )
    }

    /// Send an in-dialog `method` (not ACK) once and return at once; finish it
    /// with [`Ua::finish`] (which retransmits and waits). For when the peer is
    /// driven by the same thread (a re-INVITE the test answers itself).
    pub fn send_in_dialog(
        &self,
        d: &mut Dialog,
        method: &str,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> Pending {
        d.local_cseq += 1;
        let branch = unique("z9hG4bK");
        let req = self.dialog_request_bytes(d, method, d.local_cseq, &branch, extra, body);
        self.send_raw(&req);
        Pending {
            method: method.to_string(),
            cseq: d.local_cseq,
            branch,
            request: req,
        }
    }

    /// Wait for the final response to `p` (retransmitting it: Timer A/E), and ACK
    /// a re-INVITE's final response (2xx: end to end along the route; others:
    /// hop-by-hop with the same branch).
    pub fn finish(&self, d: &Dialog, p: Pending) -> Exchange {
        let cid = d.call_id.clone();
        let (cseq, m) = (p.cseq, p.method.clone());
        let resp = self.transact_where_sent(&p.request, p.method == "INVITE", move |r| {
            r.call_id() == Some(cid.as_str()) && r.cseq() == Some((cseq, m.clone()))
        });
        if p.method == "INVITE" {
            if let Some(r) = &resp {
                let ack = if r.status().is_some_and(|s| (200..300).contains(&s)) {
                    let a =
                        self.dialog_request_bytes(d, "ACK", cseq, &unique("z9hG4bK"), &[], None);
                    self.ack_sent(d, cseq, &a);
                    a
                } else {
                    let mut a = self.dialog_request_bytes(d, "ACK", cseq, &p.branch, &[], None);
                    // The To of a non-2xx ACK is the response's.
                    let text = String::from_utf8_lossy(&a).into_owned();
                    if let Some(to) = r.header("To") {
                        let old = format!("To: {};tag={}", d.remote_uri, d.remote_tag);
                        a = text.replacen(&old, &format!("To: {to}"), 1).into_bytes();
                    }
                    a
                };
                self.send_raw(&ack);
            }
        }
        Exchange {
            challenge: None,
            response: resp,
            request: p.request,
        }
    }

    /// Send an in-dialog `method` (not ACK) and wait for its final response (see
    /// [`Ua::finish`]).
    pub fn in_dialog(
        &self,
        d: &mut Dialog,
        method: &str,
        extra: &[String],
        body: Option<(&str, &[u8])>,
    ) -> Exchange {
        let p = self.send_in_dialog(d, method, extra, body);
        self.finish(d, p)
    }

    /// BYE in the dialog; the final response.
    pub fn bye(&self, d: &mut Dialog) -> Exchange {
        self.in_dialog(d, "BYE", &[], None)
    }

    /// A re-INVITE with `sdp` (hold: `a=sendonly`; resume: `a=sendrecv`), ACKed.
    pub fn reinvite(&self, d: &mut Dialog, sdp: &[u8]) -> Exchange {
        self.in_dialog(d, "INVITE", &[], Some((SDP, sdp)))
    }
}

/// An in-dialog request sent by [`Ua::send_in_dialog`], not finished yet.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Method.
    pub method: String,
    /// CSeq number.
    pub cseq: u32,
    /// Via branch.
    pub branch: String,
    /// The request as sent.
    pub request: Vec<u8>,
}

impl UaCall {
    fn clone_key(&self) -> (String, u32) {
        (self.call_id.clone(), self.cseq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_helpers() {
        let v = "\"Bob\" <sip:22@1.2.3.4:5;transport=udp>;tag=abc;x=1";
        assert_eq!(tag_of(v).as_deref(), Some("abc"));
        assert_eq!(
            without_tag(v),
            "\"Bob\" <sip:22@1.2.3.4:5;transport=udp>;x=1"
        );
        assert_eq!(uri_of(v), "sip:22@1.2.3.4:5;transport=udp");
        assert_eq!(uri_of("sip:22@h;tag=1"), "sip:22@h");
        assert_eq!(tag_of("sip:22@h;tag=1").as_deref(), Some("1"));
        assert_eq!(header_param("<sip:h;lr>", "lr"), None);
        assert!(sdp("21", 1, "sendonly").ends_with(b"a=sendonly\r\n"));
    }
}
