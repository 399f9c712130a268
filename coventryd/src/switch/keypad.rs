//! Feature codes dialled from a phone's keypad (`*78`, `*7235`, ...): the setting
//! is applied, the call is answered (`200` with every media stream declined) and
//! hung up by the switch as soon as the phone ACKs, and a text message from
//! `system` confirms what happened.

use super::delivery::{Origin, Request as Delivery};
use super::refusal::Refusal;
use super::reply::Replier;
use super::Incoming;
use super::Switch;
use crate::sip::dest::Dest;
use crate::sip::request::Own;
use coventry_shared::event::CallOutcome;
use coventry_shared::record::{CallRecord, Route};

/// A feature-code call the switch answered itself, waiting for the ACK.
#[derive(Debug, Clone)]
pub struct LocalDialog {
    /// Where the BYE goes.
    pub dest: Dest,
    /// The phone's Contact.
    pub contact: String,
    /// From of the BYE (our side: the INVITE's To with our tag).
    pub from: String,
    /// To of the BYE (the phone: the INVITE's From).
    pub to: String,
    /// CSeq for the BYE.
    pub cseq: u32,
    /// Forget it by then.
    pub expires_ms: u64,
}

/// An SDP answer that declines every stream of `offer` (RFC 3264 §6: port 0).
pub fn decline_all(offer: &[u8], host: &str) -> String {
    let mut sdp = format!(
        "v=0\r\no=coventry 1 1 IN IP4 {host}\r\ns=coventry\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    );
    let text = String::from_utf8_lossy(offer);
    let mut any = false;
    for line in text.lines().filter(|l| l.starts_with("m=")) {
        let parts: Vec<&str> = line[2..].split_whitespace().collect();
        if let [media, _port, proto, fmt, ..] = parts.as_slice() {
            sdp.push_str(&format!("m={media} 0 {proto} {fmt}\r\n"));
            any = true;
        }
    }
    if !any {
        sdp.push_str("m=audio 0 RTP/AVP 0\r\n");
    }
    sdp
}

impl Switch {
    /// Answer a feature-code INVITE with the outcome of applying it.
    pub(super) fn answer_feature(
        &mut self,
        inc: &Incoming<'_>,
        r: Replier,
        ext: u16,
        outcome: Result<String, Refusal>,
    ) {
        let Incoming { now_ms, req, f, .. } = *inc;
        let text = match &outcome {
            Ok(t) => t.clone(),
            Err(e) => format!("not done: {e}"),
        };
        log::info!("feature code from {ext}: {text}");
        let dialled = req
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let (call_outcome, status, answered_by) = match outcome {
            Ok(_) => (CallOutcome::Completed, 200, Some("system".to_string())),
            Err(_) => (CallOutcome::Failed, 403, None),
        };
        let call = self.call_number();
        let served = outcome.is_ok();
        let record = CallRecord {
            call,
            outcome: call_outcome,
            status,
            caller: ext.to_string(),
            dialled,
            answer_ms: answered_by.as_ref().map(|_| now_ms),
            answered_by,
            start_ms: now_ms,
            end_ms: now_ms,
            ring_ms: 0,
            talk_ms: 0,
            route: Route::Feature,
            forwards: Vec::new(),
            restarts: 0,
        };
        self.record_call(now_ms, record, served);
        match outcome {
            Ok(_) => {
                let host = self.via_host(r.dest.ip());
                let sdp = decline_all(&req.body, host.split(':').next().unwrap_or("0.0.0.0"));
                let contact = format!("<sip:system@{host}>");
                let bytes = r.build_body(
                    200,
                    None,
                    &[("Contact", &contact)],
                    Some(("application/sdp", sdp.as_bytes())),
                );
                self.server_tx
                    .answered(r.key.clone(), r.dest, bytes.clone(), now_ms);
                self.send(r.dest, bytes);
                let phone_contact = f.contact_uri();
                self.local_dialogs.insert(
                    f.call_id.to_string(),
                    LocalDialog {
                        dest: super::invite::uri_addr(&phone_contact)
                            .map(Dest::Udp)
                            .unwrap_or(r.dest),
                        contact: phone_contact,
                        from: format!("{};tag={}", f.to, r.to_tag),
                        to: f.from.to_string(),
                        cseq: 1,
                        expires_ms: now_ms + crate::switch::transaction::TIMEOUT_MS,
                    },
                );
            }
            Err(e) => {
                let reason = format!("Forbidden ({e})");
                let reason: String = reason.chars().take(80).collect();
                self.answer(now_ms, r, 403, Some(&reason), &[]);
            }
        }
        self.system_reply(now_ms, ext, &text);
    }

    /// The phone ACKed our 200 to a feature code: hang up.
    pub(super) fn local_dialog_ack(&mut self, now_ms: u64, call_id: &str) -> bool {
        let Some(d) = self.local_dialogs.remove(call_id) else {
            return false;
        };
        let branch = self.branch('b');
        let via = format!(
            "SIP/2.0/UDP {};branch={branch};rport",
            self.via_host(d.dest.ip())
        );
        let bytes = Own {
            from: &d.from,
            to: &d.to,
            cseq: d.cseq,
            ..Own::new("BYE", &d.contact, &via, call_id)
        }
        .to_bytes();
        self.client_tx.start(
            branch,
            d.dest,
            bytes.clone(),
            super::ClientTag::Fire,
            now_ms,
        );
        self.send(d.dest, bytes);
        true
    }

    /// A text from `system` to `ext` (split into 160-character messages).
    pub(super) fn system_reply(&mut self, now_ms: u64, ext: u16, text: &str) {
        if self.registrar.contacts(ext).is_empty() {
            return;
        }
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(super::message::MAX_TEXT_CHARS).take(4) {
            self.deliver(
                now_ms,
                Delivery {
                    origin: Origin::Broadcast,
                    from: "system".into(),
                    from_user: "system".into(),
                    from_display: "Coventry".into(),
                    to: ext.to_string(),
                    text: chunk.iter().collect(),
                    targets: vec![ext],
                    offline: vec![],
                    relayed: None,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decline_all;

    #[test]
    fn declines_every_stream() {
        let offer = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                      m=audio 4000 RTP/AVP 0 8\r\nm=video 4002 RTP/AVP 96\r\n";
        let a = decline_all(offer, "127.0.0.1");
        assert!(a.contains("m=audio 0 RTP/AVP 0\r\n"));
        assert!(a.contains("m=video 0 RTP/AVP 96\r\n"));
        assert!(decline_all(b"", "h").contains("m=audio 0 "));
    }
}
