//! Who may speak where. The switch relays a request only inside a dialog it
//! created and only from that dialog's own parties (their transport addresses),
//! and passes a response back only when it comes from where the request went.
//! Requests it relays without keeping state carry a branch only the switch can
//! mint: an HMAC over where the response must come from and where it goes back,
//! so a forged or reflected response cannot borrow the switch's hand.
//!
//! Pure rules; the dialogs themselves live with their owners (calls,
//! subscriptions passed through).

use crate::sip::dest::Dest;
use crate::sip::parse::parse_via;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Prefix of the Via branches of requests the switch forwards statelessly
/// (in-dialog requests): the rest is the MAC of [`RelayKey::stateless_branch`].
pub const STATELESS_BRANCH: &str = "z9hG4bKcvs";

/// Hex digits of MAC in a stateless branch (80 bits).
const MAC_HEX: usize = 20;

/// Identity headers a phone may not set: the switch asserts identity itself
/// (RFC 3325 §5: a trusted node removes them from untrusted sources), and who
/// diverted or referred a call is the switch's to say (a phone could claim a
/// forward from anyone: RFC 5806 Diversion, RFC 7044 History-Info, RFC 3892
/// Referred-By).
pub const UNTRUSTED_IDENTITY: &[&str] = &[
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Remote-Party-ID",
    "Diversion",
    "History-Info",
    "Referred-By",
];

/// Where a response goes back to, as the Via the switch left below its own says:
/// over TCP the connection whose remote end received/rport recorded, over UDP
/// the received/rport address (RFC 3261 §18.2.2, RFC 3581).
pub fn back_of(via: &str) -> Option<Dest> {
    let addr = parse_via(via)?.response_addr(5060)?;
    let tcp = via
        .split_whitespace()
        .next()
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/2.0/TCP"));
    Some(if tcp {
        Dest::Tcp(addr)
    } else {
        Dest::Udp(addr)
    })
}

/// The secret behind stateless branches, drawn afresh at every start.
pub struct RelayKey([u8; 32]);

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(<secret>)")
    }
}

impl RelayKey {
    /// A key from the operating system's CSPRNG.
    pub fn random() -> RelayKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        RelayKey(key)
    }

    fn mac(&self, incoming: &str, method: &str, back: Dest, to: Dest) -> String {
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC takes keys of any length; this cannot happen.
            Err(_) => return String::new(),
        };
        for part in [
            incoming.as_bytes(),
            method.as_bytes(),
            back.to_string().as_bytes(),
            party_id(to).as_bytes(),
        ] {
            m.update(&(part.len() as u32).to_be_bytes());
            m.update(part);
        }
        let mut hex = hex::encode(m.finalize().into_bytes());
        hex.truncate(MAC_HEX);
        hex
    }

    /// The branch for a request with branch `incoming` and `method`, relayed to
    /// `to`, whose response goes back to `back`. The same for its retransmissions,
    /// so they take the same path.
    pub fn stateless_branch(&self, incoming: &str, method: &str, back: Dest, to: Dest) -> String {
        format!("{STATELESS_BRANCH}{}", self.mac(incoming, method, back, to))
    }

    /// Whether `branch` (the top Via of a response from `from`) was minted by
    /// [`RelayKey::stateless_branch`] for a request with branch `incoming` and
    /// `method` sent to `from`, whose response goes back to `back`.
    pub fn verify(
        &self,
        branch: &str,
        incoming: &str,
        method: &str,
        back: Dest,
        from: Dest,
    ) -> bool {
        let Some(given) = branch.strip_prefix(STATELESS_BRANCH) else {
            return false;
        };
        let want = self.mac(incoming, method, back, from);
        bool::from(want.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// A party as the MAC names it: over TCP the host alone (see [`Dest::same_party`]).
fn party_id(d: Dest) -> String {
    match d {
        Dest::Udp(a) => a.to_string(),
        Dest::Tcp(a) => format!("tcp:{}", a.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(s: &str) -> Dest {
        Dest::Udp(s.parse().expect("addr"))
    }

    #[test]
    fn stateless_branches_bind_both_ends() {
        let key = RelayKey::random();
        let (back, to) = (udp("127.0.0.1:5080"), udp("127.0.0.1:5090"));
        let b = key.stateless_branch("z9hG4bKin", "BYE", back, to);
        assert!(b.starts_with(STATELESS_BRANCH));
        assert_eq!(b, key.stateless_branch("z9hG4bKin", "BYE", back, to));
        assert!(key.verify(&b, "z9hG4bKin", "BYE", back, to));
        // From anywhere else, back to anywhere else, another method: no.
        assert!(!key.verify(&b, "z9hG4bKin", "BYE", back, udp("127.0.0.2:5090")));
        assert!(!key.verify(&b, "z9hG4bKin", "BYE", udp("127.0.0.9:9"), to));
        assert!(!key.verify(&b, "z9hG4bKin", "INFO", back, to));
        assert!(!key.verify(&b, "z9hG4bKother", "BYE", back, to));
        // Over TCP any connection of the peer's host.
        let tcp = |s: &str| Dest::Tcp(s.parse().expect("addr"));
        let b = key.stateless_branch("z9hG4bKin", "BYE", back, tcp("127.0.0.1:5070"));
        assert!(key.verify(&b, "z9hG4bKin", "BYE", back, tcp("127.0.0.1:41000")));
        assert!(!key.verify(&b, "z9hG4bKin", "BYE", back, udp("127.0.0.1:5070")));
        // Another instance's key (a forgery) does not verify.
        assert!(!RelayKey::random().verify(&b, "z9hG4bKin", "BYE", back, to));
        assert!(!key.verify("z9hG4bKcvs0000", "z9hG4bKin", "BYE", back, to));
    }

    #[test]
    fn back_follows_received_and_rport() {
        assert_eq!(
            back_of("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;received=127.0.0.5;rport=7000"),
            Some(udp("127.0.0.5:7000"))
        );
        assert_eq!(
            back_of("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKa"),
            Some(Dest::Tcp("10.0.0.1:5060".parse().expect("addr")))
        );
    }
}
