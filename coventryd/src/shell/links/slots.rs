//! Who gets an inbound slot (pure rules, no sockets). A trusted address is not
//! proof of who is calling: on loopback every local user shares 127.0.0.1 with
//! a local peer. So an inbound connection is a stranger until the core says it
//! carried what only the real peer can send (a digest answered as the peer, a
//! response to a request the switch sent it: `Outbox::proven`). A stranger
//! has [`UNPROVEN_DEADLINE`] to prove itself, at most [`PER_SOURCE`] strangers
//! stay open per source address, and when room is needed strangers give way,
//! oldest first; a proven connection is never evicted.

use std::net::IpAddr;
use std::time::Duration;

/// Most inbound connections open at once.
pub const MAX_INBOUND: usize = 64;

/// Most unproven inbound connections from one source address: a quarter of the
/// slots, so strangers on one address (a local user on the peer's loopback
/// address) leave the rest to others.
pub const PER_SOURCE: usize = MAX_INBOUND / 4;

/// How long an inbound connection may stay open without proving it is the
/// real peer.
pub const UNPROVEN_DEADLINE: Duration = Duration::from_secs(5);

/// One open inbound connection as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Its source address (canonical form).
    pub ip: IpAddr,
    /// Whether it has proven itself.
    pub proven: bool,
}

/// Why a connection is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// Its source already has [`PER_SOURCE`] unproven connections.
    Source,
    /// All [`MAX_INBOUND`] slots are taken.
    Slots,
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Open it.
    Open,
    /// Open it and evict the connection at this index of the list given.
    Evict(usize, Pressure),
    /// Close it: every slot holds a proven connection.
    Refuse,
}

/// The decision for a new connection from `ip`, given the open ones oldest
/// first.
pub fn admit(open: &[Held], ip: IpAddr) -> Admit {
    let ip = ip.to_canonical();
    let oldest = |same_source: bool| {
        open.iter()
            .position(|h| !h.proven && (!same_source || h.ip == ip))
    };
    let strangers = open.iter().filter(|h| !h.proven && h.ip == ip).count();
    if strangers >= PER_SOURCE {
        if let Some(i) = oldest(true) {
            return Admit::Evict(i, Pressure::Source);
        }
    }
    if open.len() >= MAX_INBOUND {
        return match oldest(false) {
            Some(i) => Admit::Evict(i, Pressure::Slots),
            None => Admit::Refuse,
        };
    }
    Admit::Open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ip: [u8; 4], proven: bool) -> Held {
        Held {
            ip: IpAddr::from(ip),
            proven,
        }
    }

    const LOCAL: [u8; 4] = [127, 0, 0, 1];
    const OTHER: [u8; 4] = [127, 0, 0, 2];

    #[test]
    fn strangers_from_one_address_hold_a_quarter_of_the_slots() {
        let mut open: Vec<Held> = Vec::new();
        for _ in 0..PER_SOURCE {
            assert_eq!(admit(&open, LOCAL.into()), Admit::Open);
            open.push(held(LOCAL, false));
        }
        // The next stranger from there pushes out the oldest from there...
        assert_eq!(
            admit(&open, LOCAL.into()),
            Admit::Evict(0, Pressure::Source)
        );
        // ... while another address still just opens.
        assert_eq!(admit(&open, OTHER.into()), Admit::Open);
        // Proven connections from the address do not count against it.
        open.insert(0, held(LOCAL, true));
        assert_eq!(
            admit(&open, LOCAL.into()),
            Admit::Evict(1, Pressure::Source)
        );
        // IPv4-mapped IPv6 is the same address.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert_eq!(admit(&open, mapped), Admit::Evict(1, Pressure::Source));
    }

    #[test]
    fn with_every_slot_taken_the_oldest_stranger_gives_way_and_proven_ones_never() {
        // Proven connections first, then strangers from many addresses.
        let mut open: Vec<Held> = (0..MAX_INBOUND - 3)
            .map(|i| held([10, 0, 0, (i % 200) as u8], true))
            .collect();
        open.push(held([10, 0, 1, 1], false));
        open.push(held([10, 0, 1, 2], false));
        open.push(held([10, 0, 1, 3], false));
        assert_eq!(
            admit(&open, [10, 0, 2, 1].into()),
            Admit::Evict(MAX_INBOUND - 3, Pressure::Slots)
        );
        // All proven: the newcomer is refused.
        let all: Vec<Held> = (0..MAX_INBOUND).map(|_| held(LOCAL, true)).collect();
        assert_eq!(admit(&all, LOCAL.into()), Admit::Refuse);
        // A source's own stranger goes first when its cap is reached.
        let mut full: Vec<Held> = (0..MAX_INBOUND - PER_SOURCE)
            .map(|i| held([10, 0, 0, (i % 200) as u8], false))
            .collect();
        full.extend((0..PER_SOURCE).map(|_| held(LOCAL, false)));
        assert_eq!(
            admit(&full, LOCAL.into()),
            Admit::Evict(MAX_INBOUND - PER_SOURCE, Pressure::Source)
        );
    }
}
